"""What the demo creates: departments, users and resource specifications with their defects.

A ``ResourceSpec`` is everything needed to generate and register one resource: the metadata a
publisher would declare (a ``ResourceIn``), which generator makes its rows and how many, the
file format, and the quality defects deliberately put into it. The defects are recorded here
so that quality tests can assert on them instead of rediscovering them.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from catalog.models import ItemKind, ItemType, Sensitivity
from catalog.schemas import DataItemIn, ResourceIn
from govshare_demo import vocab
from kernel.identity import AdminLevel, DepartmentKind, Role

# No resource is generated smaller than this, however small the scale: every defect needs
# rows to live in, and a 3-row table makes a poor demo.
MIN_ROWS = 40


class DefectKind(StrEnum):
    stale = "stale"  # last update older than the update cycle promises (``days`` ago)
    null_required = "null_required"  # nulls in a required column
    invalid_resident_id = "invalid_resident_id"  # wrong GB 11643 check character
    invalid_uscc = "invalid_uscc"  # wrong GB 32100 check character
    invalid_mobile = "invalid_mobile"  # not an 11-digit 1[3-9]… number
    # Rows repeating an earlier row (same key). Registration refuses duplicate keys, so the
    # demo world no longer uses it; kept for data registered without declared keys.
    duplicate_key = "duplicate_key"
    birth_date_mismatch = "birth_date_mismatch"  # birth date column disagrees with the ID
    code_not_in_list = "code_not_in_list"  # a value outside the item's code list


@dataclass(frozen=True)
class Defect:
    kind: DefectKind
    column: str | None = None  # the affected item (None for stale and duplicate_key)
    rate: float = 0.0  # share of rows affected
    days: int = 0  # stale only: days between the last update and the world's "today"

    def rows(self, n: int) -> int:
        """How many of ``n`` rows carry the defect (exactly; at least one)."""
        if self.kind is DefectKind.stale:
            return 0
        return max(1, round(self.rate * n))


class FileFormat(StrEnum):
    parquet = "parquet"
    csv = "csv"
    jsonl = "jsonl"


@dataclass(frozen=True)
class ResourceSpec:
    key: str  # stable slug, e.g. "ga.population"; names the data file and the generator's RNG
    provider: str  # department code
    meta: ResourceIn
    rows: int  # at rows_scale 1.0
    generator: str  # name in ``generate.GENERATORS``
    params: tuple[tuple[str, str], ...] = ()  # generator arguments (templates)
    file_format: FileFormat = FileFormat.parquet
    defects: tuple[Defect, ...] = ()

    @property
    def stale_days(self) -> int:
        """Days since the last update (0: updated when the demo is built)."""
        return max((d.days for d in self.defects if d.kind is DefectKind.stale), default=0)

    @property
    def filename(self) -> str:
        return f"{self.key.replace('.', '_')}.{self.file_format.value}"

    def rows_at(self, rows_scale: float) -> int:
        return max(MIN_ROWS, round(self.rows * rows_scale))

    def param(self, name: str, default: str = "") -> str:
        return dict(self.params).get(name, default)


@dataclass(frozen=True)
class DepartmentSpec:
    code: str
    name_zh: str
    name_en: str
    kind: DepartmentKind = DepartmentKind.line
    level: AdminLevel = AdminLevel.municipal
    roles: tuple[Role, ...] = (Role.publisher, Role.requester, Role.approver)


@dataclass(frozen=True)
class WorldSpec:
    departments: tuple[DepartmentSpec, ...]
    resources: tuple[ResourceSpec, ...]
    population_size: int  # residents in the shared register at rows_scale 1.0
    enterprise_size: int
    rows_scale: float = 1.0


# --- item declarations -----------------------------------------------------------------------

def item(name: str, title: str, title_en: str, type: ItemType = ItemType.string, *,
         required: bool = False, key: bool = False, sensitivity: Sensitivity = Sensitivity.none,
         kind: ItemKind | None = None, codes: tuple[str, ...] | None = None,
         description: str = "") -> DataItemIn:
    """A data item; key items are always required."""
    return DataItemIn(name=name, title=title, title_en=title_en, type=type,
                      required=required or key, is_key=key, sensitivity=sensitivity, kind=kind,
                      code_list=list(codes) if codes else None, description=description)


P = Sensitivity.personal
SP = Sensitivity.sensitive_personal
STR, INT, D, DT, DEC, BOOL = (ItemType.string, ItemType.integer, ItemType.date, ItemType.datetime,
                       ItemType.decimal, ItemType.boolean)


def resident_id(name: str = "resident_id", title: str = "公民身份号码",
                title_en: str = "Resident ID number", *, key: bool = False,
                required: bool = True) -> DataItemIn:
    return item(name, title, title_en, required=required, key=key, sensitivity=SP,
                kind=ItemKind.resident_id, description="18 位居民身份证号码（GB 11643）")


def person_name(name: str = "name", title: str = "姓名", title_en: str = "Name", *,
                required: bool = True) -> DataItemIn:
    return item(name, title, title_en, required=required, sensitivity=P,
                kind=ItemKind.person_name)


def gender(name: str = "gender") -> DataItemIn:
    return item(name, "性别", "Sex", required=True, kind=ItemKind.code,
                codes=("男", "女"), description="GB/T 2261.1")


def birth_date(name: str = "birth_date", *, required: bool = True) -> DataItemIn:
    return item(name, "出生日期", "Date of birth", D, required=required, sensitivity=P,
                kind=ItemKind.birth_date)


def mobile(name: str = "mobile", title: str = "联系电话", *, required: bool = False) -> DataItemIn:
    return item(name, title, "Mobile number", required=required, sensitivity=P,
                kind=ItemKind.mobile)


def address(name: str = "address", title: str = "住址", title_en: str = "Address", *,
            required: bool = False, sensitivity: Sensitivity = P) -> DataItemIn:
    return item(name, title, title_en, required=required, sensitivity=sensitivity,
                kind=ItemKind.address)


def uscc(name: str = "uscc", title: str = "统一社会信用代码",
         title_en: str = "Unified social credit code", *, key: bool = False,
         required: bool = True) -> DataItemIn:
    return item(name, title, title_en, required=required, key=key, kind=ItemKind.uscc,
                description="18 位统一社会信用代码（GB 32100）")


def org_name(name: str = "entity_name", title: str = "单位名称",
             title_en: str = "Name of the entity", *, required: bool = True) -> DataItemIn:
    return item(name, title, title_en, required=required)


def code(name: str, title: str, title_en: str, codes: tuple[str, ...], *,
         required: bool = True, key: bool = False,
         sensitivity: Sensitivity = Sensitivity.none) -> DataItemIn:
    return item(name, title, title_en, required=required, key=key, kind=ItemKind.code,
                codes=codes, sensitivity=sensitivity)


def amount(name: str, title: str, title_en: str, *, required: bool = True,
           sensitivity: Sensitivity = Sensitivity.none, unit: str = "元") -> DataItemIn:
    return item(name, title, title_en, DEC, required=required, kind=ItemKind.amount,
                sensitivity=sensitivity, description=f"单位：{unit}")


def bank_card(name: str = "bank_card", title: str = "银行卡号") -> DataItemIn:
    return item(name, title, "Bank card number", required=True, sensitivity=SP,
                kind=ItemKind.bank_card)


def district(name: str = "district", *, required: bool = True) -> DataItemIn:
    return code(name, "所属区县", "District", tuple(d.name for d in vocab.DISTRICTS),
                required=required)


def stale(days: int) -> Defect:
    return Defect(DefectKind.stale, days=days)


def nulls(column: str, rate: float) -> Defect:
    return Defect(DefectKind.null_required, column, rate)


def bad_ids(column: str = "resident_id", rate: float = 0.004) -> Defect:
    return Defect(DefectKind.invalid_resident_id, column, rate)


def bad_usccs(column: str = "uscc", rate: float = 0.005) -> Defect:
    return Defect(DefectKind.invalid_uscc, column, rate)


def bad_mobiles(column: str = "mobile", rate: float = 0.01) -> Defect:
    return Defect(DefectKind.invalid_mobile, column, rate)


def duplicates(rate: float = 0.003) -> Defect:
    return Defect(DefectKind.duplicate_key, None, rate)


def birth_mismatch(column: str = "birth_date", rate: float = 0.005) -> Defect:
    return Defect(DefectKind.birth_date_mismatch, column, rate)


def off_list(column: str, rate: float = 0.01) -> Defect:
    return Defect(DefectKind.code_not_in_list, column, rate)
