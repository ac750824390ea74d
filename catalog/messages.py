"""Refusals of uploads, by message-catalogue key: the English text is formatted here, and the
web catalogue (``govshare/web/i18n/*.json``, same keys) gives the Chinese one when the client
prefers it (``kernel.problems``). A test keeps the English texts here and in en.json equal."""

from __future__ import annotations

from typing import Any

from kernel.problems import Invalid

ENGLISH: dict[str, str] = {
    "upload.duplicate_headers": "The file has duplicate column headers ({names}). Nothing was "
                                "stored.",
    "upload.duplicate_header": "the header '{text}' appears twice: columns {first} "
                               "({first_letter}) and {second} ({second_letter}); rename or "
                               "remove one",
    "upload.columns_mismatch": "The file's columns do not match the declared data items "
                               "(missing from the file: {missing}; not declared: {extra}). A "
                               "header may be an item's field name or its title (数据项名称). "
                               "Nothing was stored.",
    "upload.malformed_rows": "Some rows of the file are malformed (a wrong number of fields, "
                             "or an unclosed quote). Nothing was stored.",
    "upload.no_rows": "The file has a header but no data rows.",
    "upload.decimal_too_wide": "Some decimal items cannot be stored exactly ({cols}): declare "
                               "their scale (decimal places) or round the values. Nothing was "
                               "stored.",
    "upload.bad_values_line": "{n} value(s) are not valid {type}, on lines {lines}",
    "upload.bad_values_row": "{n} value(s) are not valid {type}, on rows {lines}",
    "upload.bad_values_sheet": "{n} value(s) are not valid {type}, on rows {lines} of sheet "
                               "'{sheet}'",
    "upload.duplicate_key_line": "The key ({names}) must be unique: ({key}) appears {n} times, "
                                 "on lines {lines}. Nothing was stored.",
    "upload.duplicate_key_row": "The key ({names}) must be unique: ({key}) appears {n} times, "
                                "on rows {lines}. Nothing was stored.",
    "upload.duplicate_key_sheet": "The key ({names}) must be unique: ({key}) appears {n} "
                                  "times, on rows {lines} of sheet '{sheet}'. Nothing was "
                                  "stored.",
    "upload.key_exists_line": "The key ({names}) must stay unique when appending: ({key}) on "
                              "line {lines} is already in the resource's data. Nothing was "
                              "stored.",
    "upload.key_exists_row": "The key ({names}) must stay unique when appending: ({key}) on "
                             "row {lines} is already in the resource's data. Nothing was "
                             "stored.",
    "upload.key_exists_sheet": "The key ({names}) must stay unique when appending: ({key}) on "
                               "row {lines} of sheet '{sheet}' is already in the resource's "
                               "data. Nothing was stored.",
    "upload.bad_xlsx": "The file is not a readable .xlsx workbook (not a zip archive). Save it "
                       "again from Excel or WPS, or upload it as .xls or CSV.",
    "upload.bad_workbook": "The workbook could not be read: {reason}",
    "upload.no_sheet": "The workbook has no sheet '{sheet}'. Sheets: {sheets}.",
    "upload.no_sheet_number": "The workbook has {count} sheet(s); there is no sheet {index}. "
                              "Sheets: {sheets}.",
    "upload.no_header_sheet": "No header row naming the declared data items was found in the "
                              "first {rows} rows of sheet '{sheet}'. Give the header row "
                              "(header_row), or check the column titles.",
    "upload.no_header_any": "No header row naming the declared data items was found in the "
                            "first {rows} rows of any sheet ({sheets}). Give the sheet and the "
                            "header row (sheet, header_row), or check the column titles.",
    "similar.exists": "Your department already has a similar active resource: {code} "
                      "“{name}” (names {name_pct}% alike; {shared} of the {total} data items "
                      "in common). One source for each piece of data: add a data version to "
                      "{code} instead, or, if this really is a different resource, send the "
                      "registration again confirming it (confirm_duplicate).",
    "similar.exists_reactivate": "Reactivating {resource} would give your department two similar"
                                 " active resources: it is close to {code} “{name}” (names "
                                 "{name_pct}% alike; {shared} of the {total} data items in "
                                 "common). One source for each piece of data: keep {resource} "
                                 "withdrawn and add its data to {code}, or, if they really are "
                                 "different resources, reactivate it again confirming it "
                                 "(confirm_duplicate).",
    "similar.exists_row": "similar to {code} “{name}” of your department (names {name_pct}% "
                          "alike; {shared} of the {total} data items in common): add data to "
                          "{code}, or confirm that it is a different resource "
                          "(--confirm-duplicate)",
    "similar.register_refused": "{n} new resource(s) of the catalog register are similar to "
                                "active resources of your department (the first, “{name}”, "
                                "to {code} “{existing}”); nothing was applied. One source for "
                                "each piece of data: add data to the existing resources, or "
                                "confirm that these are different resources to import the "
                                "register anyway.",
    "similar.register_refused_in_file": "{n} new resource(s) of the catalog register are "
                                        "similar to other resources of your department (the "
                                        "first, “{name}” on row {row}, to “{other}” on row "
                                        "{other_row} of the same register); nothing was "
                                        "applied. One source for each piece of data: register "
                                        "each piece of data once, or confirm that these are "
                                        "different resources to import the register anyway.",
}


def text(key: str, /, **params: Any) -> str:
    return ENGLISH[key].format(**params)


def refuse(key: str, /, *, errors: list[dict[str, Any]] | None = None,
           error_keys: list[tuple[str, dict[str, Any]] | None] | None = None,
           **params: Any) -> Invalid:
    """An ``Invalid`` (422) with the catalogue's English text for ``key``."""
    return Invalid(text(key, **params), errors=errors, key=key, params=params,
                   error_keys=error_keys)
