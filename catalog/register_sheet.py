"""A department's catalog register (目录) kept in a spreadsheet: one row per data item.

``import_catalog`` reads every sheet that has a register header, groups the rows into
resources (by 信息资源代码 when given, else by 信息资源名称), and registers the new resources
(metadata only: data follows as data versions) and updates the existing ones of the
publisher's department. All or nothing: every problem of the file is listed by sheet, row and
column, and then nothing is applied.

Columns (Chinese or English header; order free; see docs/catalog.md for the values):
信息资源代码 code · 信息资源名称 name · 英文名称 name_en · 摘要 summary · 资源分类 category ·
关键词 keywords · 共享类型 sharing_type · 共享条件 sharing_condition · 共享方式 sharing_method ·
更新周期 update_cycle · 安全级别 security_level · 数据项名称 item_title · 字段名 item_name ·
数据类型 item_type · 是否主键 is_key · 是否必填 required · 敏感级别 sensitivity ·
数据项说明 item_description.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from python_calamine import CalamineError, CalamineWorkbook
from sqlmodel import Session, select

from catalog import messages, service, similar
from catalog.excel import HEADER_SCAN_ROWS
from catalog.headers import column_label, header_key
from catalog.models import (
    CATEGORY_LABELS,
    Category,
    ItemType,
    Resource,
    SecurityLevel,
    Sensitivity,
    SharingMethod,
    SharingType,
    UpdateCycle,
)
from catalog.schemas import ResourceIn, ResourceUpdate
from kernel.auth import Principal
from kernel.identity import Department
from kernel.problems import Invalid, Phrase, Phrases

# field → the header texts that name it
COLUMNS: dict[str, tuple[str, ...]] = {
    "code": ("信息资源代码", "资源代码", "code"),
    "name": ("信息资源名称", "资源名称", "name"),
    "name_en": ("英文名称", "name_en"),
    "summary": ("信息资源摘要", "摘要", "summary"),
    "category": ("资源分类", "分类", "category"),
    "keywords": ("关键词", "keywords"),
    "sharing_type": ("共享类型", "sharing_type"),
    "sharing_condition": ("共享条件", "sharing_condition"),
    "sharing_method": ("共享方式", "sharing_method"),
    "update_cycle": ("更新周期", "update_cycle"),
    "security_level": ("安全级别", "security_level"),
    "item_title": ("数据项名称", "信息项名称", "item_title"),
    "item_name": ("字段名", "字段名称", "item_name"),
    "item_type": ("数据类型", "item_type"),
    "is_key": ("是否主键", "主键", "is_key"),
    "required": ("是否必填", "必填", "required"),
    "sensitivity": ("敏感级别", "sensitivity"),
    "item_description": ("数据项说明", "数据项描述", "item_description"),
}
REQUIRED = ("name", "category", "sharing_type", "update_cycle", "item_title", "item_type")
RESOURCE_FIELDS = ("code", "name", "name_en", "summary", "category", "keywords", "sharing_type",
                   "sharing_condition", "sharing_method", "update_cycle", "security_level")

# Chinese values of the code lists, as registers write them (the English values work too).
VALUES: dict[str, dict[str, str]] = {
    "sharing_type": {"无条件共享": "unconditional", "有条件共享": "conditional",
                     "不予共享": "not_shareable"},
    "sharing_method": {"文件": "file", "文件下载": "file", "库表": "file", "接口": "api",
                       "接口调用": "api"},
    "update_cycle": {"实时": "realtime", "每日": "daily", "每天": "daily", "每周": "weekly",
                     "每月": "monthly", "每季度": "quarterly", "每年": "yearly",
                     "不定期": "irregular"},
    "security_level": {"一般": "general", "一般数据": "general", "重要": "important",
                       "重要数据": "important", "核心": "core", "核心数据": "core"},
    "item_type": {"字符型": "string", "字符串": "string", "文本": "string", "整数": "integer",
                  "整型": "integer", "小数": "decimal", "数值": "decimal", "金额": "decimal",
                  "布尔": "boolean", "布尔型": "boolean", "日期": "date", "日期型": "date",
                  "日期时间": "datetime", "时间": "datetime"},
    "sensitivity": {"无": "none", "不敏感": "none", "个人信息": "personal",
                    "敏感个人信息": "sensitive_personal", "工作秘密": "confidential"},
}
ENUMS: dict[str, type[Any]] = {"sharing_type": SharingType, "sharing_method": SharingMethod,
                               "update_cycle": UpdateCycle, "security_level": SecurityLevel,
                               "item_type": ItemType, "sensitivity": Sensitivity}
YES, NO = {"是", "y", "yes", "true", "1", "√"}, {"否", "n", "no", "false", "0", ""}
_CATEGORY_BY_LABEL = {zh: c.value for c, (zh, _) in CATEGORY_LABELS.items()}


@dataclass
class _Row:
    sheet: str
    number: int  # 1-based sheet row
    cells: dict[str, str]
    letters: dict[str, str]  # field → the column letter, for messages
    positions: dict[str, int]  # field → the 1-based column, for ordering problems


@dataclass
class _Group:
    rows: list[_Row] = field(default_factory=list)


@dataclass(frozen=True)
class Applied:
    code: str
    name: str
    action: str  # created, updated, unchanged
    items: int


class _Problems:
    """The file's problems, found check by check (a cell's value, then its resource's, then
    the similarity of the resources) and listed in the order of the workbook."""

    def __init__(self) -> None:
        self.errors: list[dict[str, Any]] = []
        self.sheets: list[str] = []  # the workbook's sheets, in its order
        self._places: list[tuple[int, int, int]] = []  # (sheet, row, column) of each error

    def add(self, row: _Row | None, column: str | None, problem: Phrase, *,
            sheet: str | None = None) -> None:
        self.errors.append({
            "sheet": row.sheet if row else sheet, "row": row.number if row else None,
            "column": (f"{COLUMNS[column][0]} ({row.letters.get(column, '?')})"
                       if row and column else column),
            "problem": problem})
        name = row.sheet if row else sheet
        # A sheet's own problems (its header) before its rows'; a row's own before its
        # cells'; a column the sheet lacks after those it has.
        self._places.append((
            self.sheets.index(name) if name in self.sheets else -1,
            row.number if row else 0,
            (row.positions.get(column, 1 << 20) if row and column else 0)))

    def in_order(self) -> None:
        """Sort the problems by sheet (in the workbook's order), row and column; stable, so
        the problems of one cell stay in the order they were found."""
        order = sorted(range(len(self.errors)), key=self._places.__getitem__)
        self.errors = [self.errors[i] for i in order]
        self._places = [self._places[i] for i in order]


def read_rows(path: Path) -> tuple[list[_Row], _Problems]:
    """Every data-item row of every sheet with a register header."""
    problems = _Problems()
    rows: list[_Row] = []
    try:
        with CalamineWorkbook.from_path(str(path)) as wb:
            problems.sheets = list(wb.sheet_names)
            for name in wb.sheet_names:
                rows += _sheet_rows(wb.get_sheet_by_name(name).to_python(
                    skip_empty_area=False), name, problems)
    except CalamineError as exc:
        raise Invalid(f"The register could not be read as a workbook: {str(exc)[:300]}",
                      key="problem.catalog.register_unreadable",
                      params={"reason": str(exc)[:300]}) from None
    if not rows and not problems.errors:
        problems.add(None, None, Phrase("problem.register.no_header",
                                        "no sheet has a register header (信息资源名称, "
                                        "数据项名称, 数据类型, …) in its first rows"))
    return rows, problems


def _header(grid: list[list[Any]]) -> tuple[int, dict[str, int]] | None:
    """The register's header row (0-based) and each field's column, if the sheet has one."""
    aliases = {header_key(a): f for f, names in COLUMNS.items() for a in names}
    for index, header in enumerate(grid[:HEADER_SCAN_ROWS]):
        found = {aliases[header_key(c)]: pos for pos, c in enumerate(header)
                 if header_key(c) in aliases}
        if "name" in found and "item_title" in found:
            return index, found
    return None


def _sheet_rows(grid: list[list[Any]], sheet: str, problems: _Problems) -> list[_Row]:
    located = _header(grid)
    if located is None:
        return []  # a sheet of notes: not part of the register
    index, found = located
    missing = [COLUMNS[f][0] for f in REQUIRED if f not in found]
    if missing:
        number, names = index + 1, ", ".join(missing)
        problems.add(None, None, Phrase("problem.register.header_lacks",
                                        f"row {number}: the header lacks the column(s) {names}",
                                        {"number": number, "names": names}), sheet=sheet)
        return []
    letters = {f: column_label(p + 1) for f, p in found.items()}
    positions = {f: p + 1 for f, p in found.items()}
    rows = []
    for n, raw in enumerate(grid[index + 1:], start=index + 2):
        cells = {f: _text(raw[p]) if p < len(raw) else "" for f, p in found.items()}
        if any(cells.values()):
            rows.append(_Row(sheet, n, cells, letters, positions))
    return rows


def _text(cell: Any) -> str:
    if isinstance(cell, float) and cell.is_integer():
        return str(int(cell))
    return "" if cell is None else str(cell).strip()


def _value(field_name: str, raw: str, row: _Row, problems: _Problems) -> str | None:
    if not raw:
        return None
    value = VALUES.get(field_name, {}).get(raw, raw)
    if field_name == "category":
        value = _CATEGORY_BY_LABEL.get(raw, raw)
        if value not in {c.value for c in Category}:
            problems.add(row, field_name, Phrase(
                "problem.register.not_category",
                f"'{raw}' is not a category (101 … 301, or its name, e.g. 人口基础信息)",
                {"raw": raw}))
            return None
    elif field_name in ENUMS:
        allowed = {e.value for e in ENUMS[field_name]}
        if value not in allowed:
            choices = "、".join(VALUES.get(field_name, {})) or ", ".join(allowed)
            problems.add(row, field_name, Phrase("problem.register.not_one_of",
                                                 f"'{raw}' is not one of: {choices}",
                                                 {"raw": raw, "choices": choices}))
            return None
    return value


def _flag(raw: str, row: _Row, column: str, problems: _Problems) -> bool:
    if raw.lower() in YES:
        return True
    if raw.lower() not in NO:
        problems.add(row, column, Phrase("problem.register.not_yes_no",
                                         f"'{raw}' is not 是 or 否", {"raw": raw}))
    return False


def build(rows: list[_Row], problems: _Problems) -> list[tuple[ResourceIn, list[_Row]]]:
    """Group the rows into resources and validate each as a ``ResourceIn``."""
    groups: dict[str, _Group] = {}
    current: tuple[str, str] | None = None  # (sheet, key) of the resource being continued
    for row in rows:
        key = row.cells.get("code") or row.cells.get("name") or ""
        if not key:
            # Registers fill the resource's cells on its first row only (often merged cells):
            # a row without them continues the resource above it on the same sheet.
            if current is None or current[0] != row.sheet:
                problems.add(row, "name", Phrase(
                    "problem.register.no_name", "the resource name (or code) is empty, and no "
                    "resource above it on this sheet to continue"))
                continue
            key = current[1]
        current = (row.sheet, key)
        groups.setdefault(key, _Group()).rows.append(row)
    out = []
    for group in groups.values():
        meta = _resource(group.rows, problems)
        if meta is not None:
            out.append((meta, group.rows))
    return out


def _resource(rows: list[_Row], problems: _Problems) -> ResourceIn | None:
    before = len(problems.errors)
    fields: dict[str, Any] = {}
    for f in RESOURCE_FIELDS:
        for row in rows:
            value = _value(f, row.cells.get(f, ""), row, problems)
            if value is None:
                continue
            if f in fields and fields[f] != value:
                earlier = fields[f]
                problems.add(row, f, Phrase(
                    "problem.register.differs", f"'{value}' differs from '{earlier}' given for "
                    "the same resource on an earlier row (leave it empty or repeat it)",
                    {"value": value, "earlier": earlier}))
            fields.setdefault(f, value)
    items = []
    for row in rows:
        c = row.cells
        item: dict[str, Any] = {"title": c.get("item_title", ""),
                                "name": c.get("item_name", ""),
                                "description": c.get("item_description", ""),
                                "is_key": _flag(c.get("is_key", ""), row, "is_key", problems),
                                "required": _flag(c.get("required", ""), row, "required",
                                                  problems)}
        for f, target in (("item_type", "type"), ("sensitivity", "sensitivity")):
            value = _value(f, c.get(f, ""), row, problems)
            if value is not None:
                item[target] = value
        if "type" not in item and not c.get("item_type"):
            problems.add(row, "item_type", Phrase("problem.register.no_type",
                                                  "the data type is empty"))
        items.append(item)
    if "keywords" in fields:
        fields["keywords"] = [k for k in re.split(r"[,，;；、\s]+", fields["keywords"]) if k]
    if len(problems.errors) > before:
        return None
    try:
        return ResourceIn.model_validate({**fields, "items": items})
    except ValidationError as exc:
        for e in exc.errors():
            loc = [str(x) for x in e["loc"]]
            row = rows[int(loc[1])] if loc[0] == "items" and len(loc) > 1 \
                and loc[1].isdigit() else rows[0]
            column = _column_of(loc)
            # pydantic's message; the catalogue's text for its error type in other languages
            problems.add(row, column, Phrase(f"validation.{e['type']}", str(e["msg"]), {
                k: str(v) for k, v in (e.get("ctx") or {}).items()}))
        return None


def _column_of(loc: list[str]) -> str | None:
    if loc[0] == "items" and len(loc) > 2:
        return {"name": "item_name", "title": "item_title", "type": "item_type"}.get(loc[2])
    return loc[0] if loc[0] in COLUMNS else None


def import_catalog(session: Session, who: Principal, path: Path, *,
                   confirm_duplicate: bool = False) -> list[Applied]:
    """Register or update every resource of the register, or refuse the whole file.

    A new resource close to an active one of the department (``catalog.similar``), or to
    another resource of the same register, refuses the file, row by row (409 when that is
    all that is wrong, else among the 422's problems), unless ``confirm_duplicate``: then
    each registration's log entry records the resources it was confirmed to differ from."""
    rows, problems = read_rows(path)
    resources = build(rows, problems)
    # Before the checks, held to the commit: a registration of the department running at the
    # same moment waits for this one, and then sees its resources (similar.lock_department).
    similar.lock_department(session, who.department_id)
    plans: list[_Plan] = []
    for meta, group in resources:
        existing = None
        if meta.code is not None:
            existing = session.exec(select(Resource).where(Resource.code == meta.code)).first()
        plan = _Plan(meta, group, existing)
        if existing is None:
            try:
                plan.provider = service.check_registration(session, who, meta)
            except Invalid as exc:
                problems.add(group[0], "code" if meta.code else "name",
                             Phrase(exc.key or "", exc.detail, exc.params))
            else:
                found = similar.find_for(session, plan.provider.id or 0, meta.name,
                                         meta.items)
                plan.confirmed = found.same_department
                if found.same_department and not confirm_duplicate:
                    text, key, params = similar.row_problem(found, len(meta.items))
                    problems.add(group[0], "name", Phrase(key, text, params))
                    plan.flagged = _Similar(meta.name, found.same_department[0].code,
                                            found.same_department[0].name)
        elif existing.provider_id != who.department_id:
            problems.add(group[0], "code", Phrase("problem.register.other_department",
                                                  f"{meta.code} belongs to another department",
                                                  {"code": meta.code}))
        elif _item_shape(existing) != _item_shape(meta):
            problems.add(group[0], "item_name", Phrase(
                "problem.register.items_differ", f"the data items of {meta.code} differ from "
                "the registered ones; items change only with new data (register a new "
                "resource, or change only their descriptions)", {"code": meta.code}))
        plans.append(plan)
    _compare_rows(plans, problems, confirm_duplicate)
    _refuse_if_any(plans, problems)
    applied: list[Applied] = []
    for plan in plans:
        meta, existing = plan.meta, plan.existing
        if existing is None:
            # The register's earlier resources it was confirmed to differ from have codes now.
            resource = service.register_metadata(
                session, who, meta, similar_to=[*plan.confirmed, *(
                    _in_register_match(plan, plans[k], _code(plans, k, applied), scored)
                    for k, scored in plan.close)])
            applied.append(Applied(resource.code, resource.name, "created", len(meta.items)))
        else:
            edit = ResourceUpdate(**{f: getattr(meta, f) for f in RESOURCE_FIELDS
                                     if f != "code"},
                                  item_descriptions={i.name: i.description
                                                     for i in meta.items})
            before = existing.revision
            resource = service.update_resource(session, who, existing.code, edit)
            applied.append(Applied(resource.code, resource.name,
                                   "updated" if resource.revision > before else "unchanged",
                                   len(meta.items)))
    return applied


@dataclass(frozen=True)
class _Similar:
    """A new resource's first similarity problem, for the refusal's summary."""

    name: str
    code: str  # the catalog's resource; "" for another resource of the register
    existing: str
    row: int = 0  # of the new resource, and of the register's other one
    other_row: int = 0


@dataclass
class _Plan:
    meta: ResourceIn
    rows: list[_Row]
    existing: Resource | None  # an update of it, or (None) a new resource
    provider: Department | None = None  # a new resource that passed check_registration
    confirmed: list[similar.SimilarMatch] = field(default_factory=list)  # in the catalog
    close: list[tuple[int, similar.Scored]] = field(default_factory=list)  # in the register
    flagged: _Similar | None = None

    def draft(self) -> similar.Draft:
        existing = self.existing
        department = existing.provider_id if existing else self.provider.id if self.provider \
            else 0
        return similar.Draft(department or 0, self.meta.name,
                             similar.item_pairs(self.meta.items), new=existing is None)

    def label(self) -> Phrase | str:
        code = self.existing.code if self.existing else self.meta.code
        return Phrase("similar.code_note", f" ({code})", {"code": code}) if code else ""


def _compare_rows(plans: list[_Plan], problems: _Problems, confirm_duplicate: bool) -> None:
    """The register's new resources compared with its other resources (``similar.within``):
    a pair the catalog check has named already (a new resource close to an existing one the
    register also updates) is not named again."""
    compared = [i for i, p in enumerate(plans) if p.provider or p.existing]
    found = similar.within([plans[i].draft() for i in compared])
    for j, close in found.items():
        plan = plans[compared[j]]
        named = {m.code for m in plan.confirmed}
        plan.close = [(compared[k], scored) for k, scored in close
                      if _code_of(plans[compared[k]]) not in named]
        if not plan.close or confirm_duplicate:
            continue
        k, scored = plan.close[0]
        other, row, at = plans[k], plan.rows[0], plans[k].rows[0]
        pct, total = round(scored.name_similarity * 100), len(plan.meta.items)
        params: dict[str, Any] = {
            "name": plan.meta.name, "code": plan.label(), "other": other.meta.name,
            "other_code": other.label(), "other_row": at.number, "other_sheet": at.sheet,
            "name_pct": pct, "shared": scored.shared, "total": total}
        problems.add(row, "name", Phrase(
            "similar.in_register_row",
            f"“{plan.meta.name}”{plan.label()} is similar to “{other.meta.name}”"
            f"{other.label()} on row {at.number} of sheet '{at.sheet}' of this register "
            f"(names {pct}% alike; {scored.shared} of the {total} data items in common): "
            "register the data once, or confirm that they are different resources "
            "(--confirm-duplicate)", params))
        plan.flagged = plan.flagged or _Similar(plan.meta.name, "", other.meta.name,
                                                row.number, at.number)


def _code_of(plan: _Plan) -> str | None:
    return plan.existing.code if plan.existing else None


def _refuse_if_any(plans: list[_Plan], problems: _Problems) -> None:
    """409 when every problem is a similar resource (confirming imports the register), else
    the 422 listing every problem, in the workbook's order."""
    problems.in_order()
    flagged = [p.flagged for p in plans if p.flagged]
    similar_problems = sum(1 for e in problems.errors
                           if e["problem"].key in ("similar.exists_row",
                                                   "similar.in_register_row"))
    if flagged and similar_problems == len(problems.errors):
        first = flagged[0]
        if first.code:
            params: dict[str, Any] = {"n": len(flagged), "name": first.name,
                                      "code": first.code, "existing": first.existing}
            raise similar.SimilarResourceExists(
                messages.text("similar.register_refused", **params),
                key="similar.register_refused", params=params, errors=problems.errors)
        params = {"n": len(flagged), "name": first.name, "row": first.row,
                  "other": first.existing, "other_row": first.other_row}
        raise similar.SimilarResourceExists(
            messages.text("similar.register_refused_in_file", **params),
            key="similar.register_refused_in_file", params=params, errors=problems.errors)
    if problems.errors:
        n = len(problems.errors)
        listed = Phrases(tuple(describe(e) for e in problems.errors[:5]), "semicolon")
        more = " …" if n > 5 else ""
        raise Invalid(f"The catalog register has {n} problem(s); nothing was applied. "
                      f"{listed}{more}", errors=problems.errors, key="problem.register.refused",
                      params={"n": n, "listed": listed, "more": more})


def _code(plans: list[_Plan], k: int, applied: list[Applied]) -> str:
    """The code of the register's resource ``k``: an update's, or a new one's once
    registered (a new resource is compared only with the new ones before it)."""
    existing = plans[k].existing
    return existing.code if existing else applied[k].code


def _in_register_match(plan: _Plan, other: _Plan, code: str,
                       scored: similar.Scored) -> similar.SimilarMatch:
    """A confirmed pair of the register, recorded as the catalog's matches are."""
    assert plan.provider is not None
    return similar.match(scored, code, other.meta.name, other.meta.name_en, plan.provider,
                         similar.item_pairs(plan.meta.items),
                         similar.item_pairs(other.meta.items))


def _item_shape(obj: Any) -> list[tuple[str, str]]:
    return [(i.name, ItemType(i.type).value) for i in obj.items]


def describe(error: dict[str, Any]) -> Phrase:
    """Where a problem is and what it is, e.g. "sheet '目录' row 4 column 数据类型 (D): …"."""
    sheet = error["sheet"]
    place = Phrase("problem.register.sheet", f"sheet '{sheet}'", {"sheet": sheet}) \
        if sheet else Phrase("problem.register.the_file", "the file")
    number, column = error["row"], error["column"]
    row = Phrase("problem.register.row", f" row {number}", {"number": number}) if number \
        else ""
    col = Phrase("problem.register.column", f" column {column}", {"column": column}) \
        if column else ""
    problem = error["problem"]
    return Phrase("problem.register.at", f"{place}{row}{col}: {problem}",
                  {"place": place, "row": row, "col": col, "problem": problem})
