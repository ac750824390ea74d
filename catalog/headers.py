"""Matching a file's header row to the declared data items, and deriving field names.

Department exports head their columns with the items' Chinese titles (数据项名称: 姓名,
公民身份号码), not with field names; a header cell therefore matches an item by its field name
or by its title, in any order. Duplicate header cells are refused by their text and both
column positions, before any reader renames them (DuckDB would call the second one
``姓名_1``, a name that is not in the file).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from pypinyin import lazy_pinyin

from catalog import messages

NAME_MAX = 64


class Declared(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def title(self) -> str: ...


def header_key(text: object) -> str:
    """How two header texts compare: NFKC (full-width letters and brackets fold), surrounding
    whitespace and a BOM dropped, inner whitespace removed, ASCII case ignored."""
    folded = unicodedata.normalize("NFKC", "" if text is None else str(text))
    return re.sub(r"\s+", "", folded.replace("\ufeff", "")).casefold()


def column_label(position: int) -> str:
    """1-based column number → spreadsheet letters (1 → A, 27 → AA), for messages."""
    letters = ""
    while position > 0:
        position, rest = divmod(position - 1, 26)
        letters = chr(65 + rest) + letters
    return letters


@dataclass(frozen=True)
class HeaderMatch:
    positions: list[int]  # for each declared item, its 0-based column in the file
    header: list[str]  # the header texts as they are in the file


def match_header(header: Sequence[object], items: Sequence[Declared]) -> HeaderMatch:
    """The file column of each declared item, or ``Invalid`` listing every problem."""
    texts = ["" if h is None else str(h).strip() for h in header]
    errors: list[dict[str, Any]] = []
    keys: list[tuple[str, dict[str, Any]] | None] = []
    seen: dict[str, int] = {}
    for pos, text in enumerate(texts):
        key = header_key(text)
        if not key:
            continue
        if key in seen:
            params = {"text": text, "first": seen[key] + 1,
                      "first_letter": column_label(seen[key] + 1), "second": pos + 1,
                      "second_letter": column_label(pos + 1)}
            errors.append({"column": text, "positions": [seen[key] + 1, pos + 1],
                           "problem": messages.text("upload.duplicate_header", **params)})
            keys.append(("upload.duplicate_header", params))
        else:
            seen[key] = pos
    if errors:
        names = ", ".join(f"'{e['column']}'" for e in errors)
        raise messages.refuse("upload.duplicate_headers", errors=errors, error_keys=keys,
                              names=names)
    positions: list[int] = []
    used: set[int] = set()
    missing: list[Declared] = []
    for item in items:
        found: int | None = seen.get(header_key(item.name))
        if found is None and item.title:
            found = seen.get(header_key(item.title))
        if found is None or found in used:
            missing.append(item)
            continue
        used.add(found)
        positions.append(found)
    extra = [(p, texts[p]) for p in seen.values() if p not in used]
    if missing or extra:
        errors = [{"column": i.name, "title": i.title,
                   "problem": "declared as a data item but not in the file"} for i in missing]
        errors += [{"column": t, "position": p + 1,
                    "problem": "in the file but not declared as a data item"}
                   for p, t in extra]
        keys = [("upload.missing_column", {})] * len(missing)
        keys += [("upload.extra_column", {})] * len(extra)
        raise messages.refuse(
            "upload.columns_mismatch", errors=errors, error_keys=keys,
            missing=", ".join(_label(i) for i in missing) or "—",
            extra=", ".join(t for _, t in extra) or "—")
    return HeaderMatch(positions, texts)


def _label(item: Declared) -> str:
    return f"{item.name} ({item.title})" if item.title and item.title != item.name else item.name


def score_header(row: Sequence[object], items: Sequence[Declared]) -> int:
    """How many declared items a candidate header row names (for finding the header below
    title rows in a spreadsheet)."""
    keys = {header_key(c) for c in row if c not in (None, "")}
    return sum(1 for i in items
               if header_key(i.name) in keys or (i.title and header_key(i.title) in keys))


def derive_name(title: str, taken: set[str]) -> str:
    """A field name for an item declared with a title only: its Hanyu Pinyin, one syllable
    per character joined by underscores, lower case (公民身份号码 → gong_min_shen_fen_hao_ma).

    ASCII letters and digits in the title are kept; anything else separates words. A name
    already taken gets ``_2``, ``_3``… Pinyin rather than the Chinese title itself because the
    derived name is what API clients and SQL users type.
    """
    words = lazy_pinyin(unicodedata.normalize("NFKC", title))
    parts = [p for w in words for p in re.split(r"[^0-9A-Za-z]+", w) if p]
    base = "_".join(parts).lower()[:NAME_MAX] or "item"
    if base[0].isdigit():
        base = ("_" + base)[:NAME_MAX]
    name, n = base, 1
    while name in taken:
        n += 1
        suffix = f"_{n}"
        name = base[: NAME_MAX - len(suffix)] + suffix
    return name
