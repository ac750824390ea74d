"""Catalog entities in the style of the government information resource catalog.

Field names follow GB/T 21063 and the 2017 catalog compilation guideline where they have an
English equivalent, and DCAT where they map onto it (see ``catalog.dcat``).
"""


from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import Any, Optional

from sqlalchemy import JSON, Column, Text, UniqueConstraint
from sqlmodel import Field, Relationship, SQLModel

from kernel.db import UTCDateTime, utcnow


class SharingType(StrEnum):
    unconditional = "unconditional"  # 无条件共享
    conditional = "conditional"  # 有条件共享
    not_shareable = "not_shareable"  # 不予共享


class SharingMethod(StrEnum):
    file = "file"
    api = "api"


class UpdateCycle(StrEnum):
    realtime = "realtime"
    daily = "daily"
    weekly = "weekly"
    monthly = "monthly"
    quarterly = "quarterly"
    yearly = "yearly"
    irregular = "irregular"

    @property
    def period(self) -> timedelta | None:
        """The promised interval between data updates (None: no promise to measure)."""
        return _CYCLE_PERIODS[self]


_CYCLE_PERIODS: dict[UpdateCycle, timedelta | None] = {
    UpdateCycle.realtime: timedelta(hours=1),
    UpdateCycle.daily: timedelta(days=1),
    UpdateCycle.weekly: timedelta(days=7),
    UpdateCycle.monthly: timedelta(days=31),
    UpdateCycle.quarterly: timedelta(days=92),
    UpdateCycle.yearly: timedelta(days=366),
    UpdateCycle.irregular: None,
}


class SecurityLevel(StrEnum):
    general = "general"  # 一般数据
    important = "important"  # 重要数据
    core = "core"  # 核心数据: never leaves its department through govshare


class Sensitivity(StrEnum):
    none = "none"
    personal = "personal"  # 个人信息
    sensitive_personal = "sensitive_personal"  # 敏感个人信息
    confidential = "confidential"  # work secrets; suppressed by default


class ItemType(StrEnum):
    string = "string"
    integer = "integer"
    decimal = "decimal"
    boolean = "boolean"
    date = "date"
    datetime = "datetime"


# How each declared type is stored in DuckDB. A decimal is exact: DECIMAL(precision, scale),
# declared on the item or the smallest that holds the upload's values (``catalog.ingest``).
DUCKDB_TYPES: dict[ItemType, str] = {
    ItemType.string: "VARCHAR",
    ItemType.integer: "BIGINT",
    ItemType.decimal: "DECIMAL",
    ItemType.boolean: "BOOLEAN",
    ItemType.date: "DATE",
    ItemType.datetime: "TIMESTAMP",
}


class ItemKind(StrEnum):
    """What a value *is*, beyond its type: drives format checks and default masking."""

    resident_id = "resident_id"  # 居民身份证号码 (GB 11643)
    uscc = "uscc"  # 统一社会信用代码 (GB 32100)
    mobile = "mobile"
    person_name = "person_name"
    address = "address"
    bank_card = "bank_card"
    email = "email"
    birth_date = "birth_date"
    code = "code"  # a value from the item's code list
    amount = "amount"
    other = "other"


class Category(StrEnum):
    """Categories of the catalog guideline: basic (1xx), thematic (2xx), departmental (3xx)."""

    population = "101"  # 人口基础信息
    legal_entity = "102"  # 法人单位基础信息
    natural_resources = "103"  # 自然资源和空间地理基础信息
    macro_economy = "104"  # 宏观经济
    e_license = "105"  # 电子证照
    social_security = "201"  # 社会保障
    health = "202"  # 医疗卫生
    tax = "203"  # 财税
    education = "204"  # 教育
    housing = "205"  # 住房城乡建设
    transport = "206"  # 交通运输
    market = "207"  # 市场监管
    civil_affairs = "208"  # 民政
    credit = "209"  # 信用
    departmental = "301"  # 部门信息资源

    @property
    def label_zh(self) -> str:
        return CATEGORY_LABELS[self][0]

    @property
    def label_en(self) -> str:
        return CATEGORY_LABELS[self][1]


CATEGORY_LABELS: dict[Category, tuple[str, str]] = {
    Category.population: ("人口基础信息", "Population"),
    Category.legal_entity: ("法人单位基础信息", "Legal entities"),
    Category.natural_resources: ("自然资源和空间地理", "Natural resources and geospatial"),
    Category.macro_economy: ("宏观经济", "Macro economy"),
    Category.e_license: ("电子证照", "Electronic licences"),
    Category.social_security: ("社会保障", "Social security"),
    Category.health: ("医疗卫生", "Health"),
    Category.tax: ("财税", "Finance and tax"),
    Category.education: ("教育", "Education"),
    Category.housing: ("住房城乡建设", "Housing and construction"),
    Category.transport: ("交通运输", "Transport"),
    Category.market: ("市场监管", "Market regulation"),
    Category.civil_affairs: ("民政", "Civil affairs"),
    Category.credit: ("信用", "Credit"),
    Category.departmental: ("部门信息资源", "Departmental"),
}


class VersionMode(StrEnum):
    replace = "replace"  # type: ignore[assignment]  # shadows str.replace on purpose
    append = "append"


class ResourceStatus(StrEnum):
    active = "active"
    withdrawn = "withdrawn"


# --- tables ----------------------------------------------------------------------------------

class Resource(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(index=True, unique=True, max_length=40)
    name: str = Field(max_length=200, index=True)  # Chinese name, the authoritative one
    name_en: str = Field(default="", max_length=300)
    provider_id: int = Field(foreign_key="department.id", index=True)
    summary: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    summary_en: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    category: Category = Field(index=True)
    keywords: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    sharing_type: SharingType = Field(index=True)
    sharing_condition: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    sharing_method: SharingMethod = SharingMethod.file
    update_cycle: UpdateCycle = Field(index=True)
    security_level: SecurityLevel = Field(index=True)
    status: ResourceStatus = Field(default=ResourceStatus.active, index=True)
    # Item holding each row's as-of date, if any: quality checks freshness against it too.
    date_item: str | None = Field(default=None, max_length=64)
    published_at: date = Field(default_factory=lambda: utcnow().date(), index=True)
    last_data_update: datetime | None = Field(default=None,
                                              sa_column=Column(UTCDateTime, index=True))
    current_version: int = 0
    row_count: int = 0
    revision: int = 1
    # Written by the quality context (it may read and update the catalog; not vice versa).
    quality_score: float | None = Field(default=None, index=True)
    created_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime))
    updated_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime))

    items: list["DataItem"] = Relationship(
        back_populates="resource",
        sa_relationship_kwargs={"lazy": "selectin", "order_by": "DataItem.position",
                                "cascade": "all, delete-orphan"},
    )


class DataItem(SQLModel, table=True):
    __tablename__ = "data_item"
    __table_args__ = (UniqueConstraint("resource_id", "name"),)
    id: int | None = Field(default=None, primary_key=True)
    resource_id: int = Field(foreign_key="resource.id", index=True, ondelete="CASCADE")
    position: int
    # The column name in stored data and deliveries: ASCII or Chinese (姓名), or derived as
    # pinyin from the title when the publisher gave none (catalog.headers.derive_name).
    name: str = Field(max_length=64)
    # Chinese display name (数据项名称); a file's header may use it instead of the name.
    title: str = Field(default="", max_length=200)
    title_en: str = Field(default="", max_length=200)
    type: ItemType
    description: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    required: bool = False
    is_key: bool = False
    sensitivity: Sensitivity = Sensitivity.none
    kind: ItemKind | None = None
    code_list: list[str] | None = Field(default=None, sa_column=Column(JSON))
    # decimal items: DECIMAL(precision, scale) if declared; else inferred per upload
    precision: int | None = None
    scale: int | None = None

    resource: Optional["Resource"] = Relationship(back_populates="items")


class DataVersion(SQLModel, table=True):
    """One upload. Each version's rows live in their own immutable DuckDB file (a segment);
    the data as of version N is the segments from the last ``replace`` up to N."""

    __tablename__ = "data_version"
    __table_args__ = (UniqueConstraint("resource_id", "version"),)
    id: int | None = Field(default=None, primary_key=True)
    resource_id: int = Field(foreign_key="resource.id", index=True)
    version: int
    mode: VersionMode
    base_version: int  # the replace version this one builds on (itself for a replace)
    segment: str = Field(max_length=300)  # path relative to the warehouse directory
    row_count: int  # rows in this segment
    total_rows: int  # rows in the data as of this version
    source_format: str = Field(max_length=16)
    source_bytes: int
    source_sha256: str = Field(max_length=64)
    # Cells changed on the way in: item name → step (trimmed, half_width, upper_case) → count.
    normalised: dict[str, Any] = Field(default_factory=dict,
                                       sa_column=Column(JSON, nullable=False, default=dict))
    created_by: int | None = Field(default=None, foreign_key="user.id")
    created_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime))


class ResourceRevision(SQLModel, table=True):
    """Metadata history: who changed which fields, from what to what."""

    __tablename__ = "resource_revision"
    __table_args__ = (UniqueConstraint("resource_id", "revision"),)
    id: int | None = Field(default=None, primary_key=True)
    resource_id: int = Field(foreign_key="resource.id", index=True)
    revision: int
    changed_by: int | None = Field(default=None, foreign_key="user.id")
    changed_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime))
    changes: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


# --- search feed (owned by catalog.search; see docs/search.md) ------------------------------


class SearchFeed(SQLModel, table=True):
    """A resource changed and its search documents must be redone: the change feed each
    machine's search index tails (``catalog.search.feed``). Written in the same transaction as
    the change, from the catalog's and the quality context's events; pruned after a day."""

    __tablename__ = "search_feed"
    id: int | None = Field(default=None, primary_key=True)
    resource_code: str = Field(max_length=40)
    created_at: datetime = Field(default_factory=utcnow,
                                 sa_column=Column(UTCDateTime, nullable=False, index=True))


class SourceStatus(StrEnum):
    never = "never"  # configured, not pulled yet
    ok = "ok"  # the last pull stored a new version
    unchanged = "unchanged"  # the last pull found the same data as the current version
    failed = "failed"  # the last pull failed: ``last_error`` says why


class DataSource(SQLModel, table=True):
    """A resource whose data is pulled from a department's database table or query (库表),
    on its update cycle and on demand, into new data versions.

    The connection URL (with its credentials) is stored only sealed (AES-GCM under the
    ``source-credentials`` purpose key, ``kernel.secrets``); ``location`` is what may be shown.
    """

    __tablename__ = "data_source"
    id: int | None = Field(default=None, primary_key=True)
    resource_id: int = Field(foreign_key="resource.id", unique=True, index=True)
    kind: str = Field(default="postgresql", max_length=20)
    location: str = Field(max_length=300)  # host:port/database, never user or password
    query: str = Field(sa_column=Column(Text, nullable=False))  # a table name or one SELECT
    credentials_kid: str = Field(max_length=64)
    credentials: str = Field(sa_column=Column(Text, nullable=False))  # sealed, base64
    # The publisher answerable for the pulls (留痕): pulls act in their name and stop,
    # with a clear error, when they no longer publish for the provider department.
    configured_by: int = Field(foreign_key="user.id")
    status: SourceStatus = SourceStatus.never
    last_pull_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime))
    last_success_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime))
    next_pull_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime, index=True))
    last_error: str | None = Field(default=None, sa_column=Column(Text))
    last_sha256: str | None = Field(default=None, max_length=64)
    failures: int = 0  # consecutive
    created_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime))
