"""Request and response bodies of the catalog API (the tables live in ``catalog.models``)."""

import json
from datetime import date, datetime
from pathlib import Path
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError

from catalog.headers import derive_name, header_key
from catalog.models import (
    Category,
    ItemKind,
    ItemType,
    SecurityLevel,
    Sensitivity,
    SharingMethod,
    SharingType,
    UpdateCycle,
    VersionMode,
)

# A field name: letters of any script (姓名, id_number), digits and underscores. SQL quotes every
# name (catalog.warehouse.quote), so Chinese names work everywhere; no spaces or punctuation,
# so a name is one token in API filters and delivery requests. The same pattern is the web
# form's (JavaScript ``v`` flag) and the JSON schema's.
ITEM_NAME_PATTERN = r"^[\p{L}_][\p{L}\p{N}_]{0,63}$"


# The example in the OpenAPI document; docs/examples/meta.json is the same (a test keeps them
# equal), and the README's tour registers it.
EXAMPLE_METADATA: dict[str, Any] = json.loads(
    (Path(__file__).parent / "example_metadata.json").read_text(encoding="utf-8"))


class DataItemIn(BaseModel):
    name: str = Field(default="", pattern=r"^$|" + ITEM_NAME_PATTERN, description=(
        "Field name: the column name in stored data and deliveries. Chinese is allowed (姓名). "
        "Leave empty to derive it from the title as pinyin (公民身份号码 → "
        "gong_min_shen_fen_hao_ma)."), examples=["id_number"])
    title: str = Field(default="", max_length=200, description=(
        "Chinese display name (数据项名称). A data file's header may name the item by its "
        "title or by its field name."), examples=["公民身份号码"])
    title_en: str = Field(default="", max_length=200)
    type: ItemType
    precision: int | None = Field(default=None, ge=1, le=38, description=(
        "decimal items: total digits. With scale, fixes DECIMAL(precision, scale); without, "
        "each upload gets the smallest exact DECIMAL that holds its values."))
    scale: int | None = Field(default=None, ge=0, le=38,
                              description="decimal items: digits after the decimal point")
    description: str = Field(default="", max_length=2000)
    required: bool = False
    is_key: bool = Field(default=False, description="Part of the resource's unique key")
    sensitivity: Sensitivity = Sensitivity.none
    kind: ItemKind | None = None
    code_list: list[str] | None = Field(default=None, max_length=10000)

    @model_validator(mode="after")
    def _named(self) -> Self:
        if not self.name and not self.title.strip():
            raise ValueError("a data item needs a field name or a title (数据项名称)")
        if (self.precision is not None or self.scale is not None) and \
                self.type is not ItemType.decimal:
            # The error type names the catalogue message (validation.<type>), in any language.
            raise PydanticCustomError(
                "item_decimal_only", "precision and scale apply to decimal items only "
                "({item} is {type})", {"item": self.name or self.title, "type": self.type.value})
        if self.precision is not None and self.scale is not None and \
                self.scale > self.precision:
            raise PydanticCustomError("item_scale", "scale {scale} exceeds precision {precision}",
                                      {"scale": self.scale, "precision": self.precision})
        return self


class ResourceIn(BaseModel):
    """What a publisher declares when registering a resource (the ``metadata`` part of
    ``POST /api/v1/resources``; a complete example: docs/examples/meta.json)."""

    model_config = ConfigDict(json_schema_extra={"examples": [EXAMPLE_METADATA]})

    name: str = Field(min_length=2, max_length=200, examples=["人口基础信息"])
    name_en: str = Field(default="", max_length=300, examples=["Basic population information"])
    summary: str = Field(default="", max_length=5000)
    summary_en: str = Field(default="", max_length=5000)
    category: Category
    keywords: list[str] = Field(default_factory=list, max_length=30)
    items: list[DataItemIn] = Field(min_length=1, max_length=500)
    sharing_type: SharingType
    sharing_condition: str = Field(default="", max_length=2000)
    sharing_method: SharingMethod = SharingMethod.file
    update_cycle: UpdateCycle
    security_level: SecurityLevel = SecurityLevel.general
    date_item: str | None = Field(default=None, description="Item holding each row's as-of date")
    code: str | None = Field(default=None, max_length=40,
                             description="Leave empty to have govshare assign one")
    provider: str | None = Field(default=None, description="Provider department code; "
                                 "defaults to, and must be, the publisher's own department")

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        taken = {i.name for i in self.items if i.name}
        for item in self.items:
            if not item.name:
                item.name = derive_name(item.title, taken)
                taken.add(item.name)
        names = [i.name for i in self.items]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise PydanticCustomError("item_names_repeated",
                                      "data item names must be unique; repeated: {names}",
                                      {"names": ", ".join(dupes)})
        # A header matches an item by name or by title: neither may name two items.
        labels = [header_key(x) for i in self.items for x in {i.name, i.title} if x]
        clashes = sorted({x for x in labels if labels.count(x) > 1})
        if clashes:
            raise PydanticCustomError(
                "item_labels_repeated", "data item names and titles must be distinct (a file's "
                "header names an item by either); repeated: {names}",
                {"names": ", ".join(clashes)})
        if self.sharing_type is SharingType.conditional and not self.sharing_condition.strip():
            raise ValueError("a conditional resource must state its sharing condition")
        if self.date_item is not None and self.date_item not in names:
            raise PydanticCustomError("date_item_unknown",
                                      "date_item '{date_item}' is not one of the data items",
                                      {"date_item": self.date_item})
        return self


class ResourceUpdate(BaseModel):
    """Metadata edits (each one is a new revision). Data items change only with new data."""

    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(default=None, min_length=2, max_length=200)
    name_en: str | None = Field(default=None, max_length=300)
    summary: str | None = Field(default=None, max_length=5000)
    summary_en: str | None = Field(default=None, max_length=5000)
    category: Category | None = None
    keywords: list[str] | None = Field(default=None, max_length=30)
    sharing_type: SharingType | None = None
    sharing_condition: str | None = Field(default=None, max_length=2000)
    sharing_method: SharingMethod | None = None
    update_cycle: UpdateCycle | None = None
    security_level: SecurityLevel | None = None
    item_descriptions: dict[str, str] | None = Field(
        default=None, description="Item name → new description")


class DataItemOut(DataItemIn):
    model_config = ConfigDict(from_attributes=True)


class ProviderOut(BaseModel):
    code: str
    name_zh: str
    name_en: str
    kind: str
    level: str


class ResourceOut(BaseModel):
    code: str
    name: str
    name_en: str
    provider: ProviderOut
    summary: str
    summary_en: str
    category: Category
    category_label: str
    category_label_en: str
    keywords: list[str]
    items: list[DataItemOut]
    sharing_type: SharingType
    sharing_condition: str
    sharing_method: SharingMethod
    update_cycle: UpdateCycle
    security_level: SecurityLevel
    status: str
    date_item: str | None
    published_at: date
    last_data_update: datetime | None
    current_version: int
    row_count: int
    revision: int
    quality_score: float | None
    normalised: dict[str, dict[str, int]] = Field(default_factory=dict, description=(
        "In the registration reply: the cells changed on the way in (see DataVersionOut)."))


SUMMARY_CHARS = 300  # a search hit shows the summary's start; the resource, all of it
HIT_ITEM_TITLES = 20  # a search hit names its first data items; the resource, all of them


class ResourceHit(BaseModel):
    """A resource as a search result lists it: what a result list shows, served from the
    search index without touching the database (docs/search.md). The whole resource, with
    every data item: ``GET /api/v1/resources/{code}``, or ``items=true`` on the search."""

    score: float | None = Field(default=None, description="Relevance, when sorted by it")
    code: str
    name: str
    name_en: str
    provider: ProviderOut
    summary: str = Field(description=f"The first {SUMMARY_CHARS} characters")
    category: Category
    category_label: str
    category_label_en: str
    keywords: list[str]
    sharing_type: SharingType
    sharing_method: SharingMethod
    update_cycle: UpdateCycle
    security_level: SecurityLevel
    published_at: date
    last_data_update: datetime | None
    current_version: int
    row_count: int
    quality_score: float | None
    item_count: int
    item_titles: list[str] = Field(description=(
        f"The first {HIT_ITEM_TITLES} data items' titles (their names when untitled)"))
    items: list[DataItemOut] | None = Field(default=None, description=(
        "Every data item, only when the search asked for them (items=true)"))


class DataVersionOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    version: int
    mode: VersionMode
    row_count: int
    total_rows: int
    source_format: str
    source_bytes: int
    source_sha256: str
    normalised: dict[str, dict[str, int]] = Field(default_factory=dict, description=(
        "Cells changed on the way in, per data item: trimmed (surrounding whitespace), "
        "half_width (full-width digits and letters in codes, IDs, phones and numbers), "
        "upper_case (the x of a resident ID)."))
    created_at: datetime


class RevisionOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    revision: int
    changed_by: str | None
    changed_at: datetime
    changes: dict[str, object]


class Preview(BaseModel):
    columns: list[str]
    rows: list[list[object]]
    total_rows: int


class SourceIn(BaseModel):
    """A database source: where to read (with credentials, which are never shown back) and
    what (a table name or one SELECT)."""

    url: str = Field(min_length=1, max_length=2000,
                     description="postgresql://user:password@host:port/database",
                     examples=["postgresql://reader:secret@db.mzj.example:5432/welfare"])
    query: str = Field(min_length=1, max_length=20000,
                       description="A table name (schema.table) or a single SELECT statement",
                       examples=["public.elderly_allowance"])


class SourceOut(BaseModel):
    kind: str
    location: str  # host:port/database: never the user or the password
    query: str
    status: str
    last_pull_at: datetime | None
    last_success_at: datetime | None
    next_pull_at: datetime | None
    last_error: str | None
    failures: int


class SourceRegistration(BaseModel):
    """Register a resource whose first data version is pulled from a database."""

    metadata: ResourceIn
    source: SourceIn
    confirm_duplicate: bool = Field(default=False, description=(
        "Register even though the department already has a similar active resource (else "
        "409 similar-resource-exists); recorded in the registration's log entry"))
