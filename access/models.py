"""Access: applications, approvals, desensitization, deliveries, and the signed access log.

May read ``catalog``; the catalog never imports this package. Tables of the application
pipeline (docs/access.md); the signed log's tables live in ``translog.models``.
"""

from datetime import date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Column, Float, LargeBinary, String, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

import translog.models  # noqa: F401  (the signed access log's tables)
from catalog.models import SharingType
from kernel.db import UTCDateTime, utcnow


class ApplicationState(StrEnum):
    submitted = "submitted"  # with the provider: awaiting its decision
    returned = "returned"  # with the requester: to revise and resubmit
    # approved subject to conditions the requester must accept first
    conditions_pending = "conditions_pending"
    approved = "approved"  # masking plan fixed; the first delivery is being produced
    delivered = "delivered"  # the grant is active: packages or queries are available
    rejected = "rejected"
    withdrawn = "withdrawn"
    revoked = "revoked"
    expired = "expired"


# States in which an application still counts for duplicate detection.
ACTIVE_STATES = frozenset({ApplicationState.submitted, ApplicationState.returned,
                           ApplicationState.conditions_pending, ApplicationState.approved,
                           ApplicationState.delivered})
# States after which nothing more happens to an application.
CLOSED_STATES = frozenset({ApplicationState.rejected, ApplicationState.withdrawn,
                           ApplicationState.revoked, ApplicationState.expired})


class DeliveryMethod(StrEnum):
    file = "file"  # a desensitized package (Parquet or CSV) to download
    api = "api"  # filtered, paginated queries over the desensitized view
    aggregate = "aggregate"  # counts/sums/means per group with differential privacy


class FileFormat(StrEnum):
    parquet = "parquet"
    csv = "csv"


class Schedule(StrEnum):
    once = "once"
    daily = "daily"
    weekly = "weekly"
    monthly = "monthly"
    on_new_version = "on_new_version"


class RejectionReason(StrEnum):
    security_risk = "security_risk"
    ownership_dispute = "ownership_dispute"
    core_data = "core_data"
    standards_mismatch = "standards_mismatch"
    insufficient_legal_basis = "insufficient_legal_basis"
    other = "other"


class Deficiency(StrEnum):
    """Why an application is returned; each code names the part of it to revise."""

    purpose_unclear = "purpose_unclear"
    legal_basis_insufficient = "legal_basis_insufficient"
    items_not_necessary = "items_not_necessary"
    period_too_long = "period_too_long"
    delivery_unsuitable = "delivery_unsuitable"
    other = "other"


class Bundle(SQLModel, table=True):
    """One filing (一件事) over resources of several departments, approved in parallel."""

    __tablename__ = "application_bundle"
    id: int | None = Field(default=None, primary_key=True)
    title: str = Field(max_length=200)
    requester_department_id: int = Field(foreign_key="department.id", index=True)
    requester_user_id: int = Field(foreign_key="user.id")
    # 首办责任制: the provider of the first part coordinates the bundle.
    coordinator_department_id: int = Field(foreign_key="department.id", index=True)
    filed_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime,
                                                                        nullable=False))
    completed_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime))


class Application(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    bundle_id: int | None = Field(default=None, foreign_key="application_bundle.id", index=True)
    resource_id: int = Field(foreign_key="resource.id", index=True)
    provider_department_id: int = Field(foreign_key="department.id", index=True)
    requester_department_id: int = Field(foreign_key="department.id", index=True)
    requester_user_id: int = Field(foreign_key="user.id")
    sharing_type: SharingType  # as it was at filing: decides the route
    state: ApplicationState = Field(index=True)
    purpose: str = Field(sa_column=Column(Text, nullable=False))
    legal_basis: str = Field(sa_column=Column(Text, nullable=False))
    items: list[str] = Field(sa_column=Column(JSON, nullable=False))
    period_start: date
    period_end: date
    delivery_method: DeliveryMethod
    file_format: FileFormat = FileFormat.parquet
    schedule: Schedule = Schedule.once
    revision: int = 1  # the requester's revisions (resubmissions)
    assignee_user_id: int | None = Field(default=None, foreign_key="user.id")
    # The provider's reply is due by the end of this local date (working days, docs/access.md).
    due_date: date | None = None
    escalated_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime))
    # Desensitization, fixed at approval (the provider may tighten it later, never loosen).
    masking_plan: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON,
                                                                                nullable=False))
    row_filters: list[dict[str, Any]] = Field(default_factory=list,
                                              sa_column=Column(JSON, nullable=False))
    quasi_identifiers: list[str] = Field(default_factory=list,
                                         sa_column=Column(JSON, nullable=False))
    k_min: int | None = None
    # Records of classes smaller than k_min are dropped from a delivery as outliers, up to this
    # share of the rows (None: none are, and a k below k_min blocks the delivery).
    max_suppression: float | None = None
    # What an aggregate grant releases and its privacy budget (access.aggregate.AggregateSpec).
    aggregate: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON))
    # Items whose l-diversity and t-closeness the risk report measures (empty: proposed).
    sensitive_items: list[str] = Field(default_factory=list,
                                       sa_column=Column(JSON, nullable=False,
                                                        server_default="[]"))
    conditions: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    # One-time notice (一次性告知): codes of the first return, and how many later returns broke it.
    first_return_codes: list[str] = Field(default_factory=list,
                                          sa_column=Column(JSON, nullable=False))
    notice_violations: int = 0
    returns: int = 0
    escalations: int = 0
    reassignments: int = 0
    # Why the last delivery attempt was blocked (raw PII found, k too small); cleared on success.
    delivery_blocked: str | None = Field(default=None, sa_column=Column(Text))
    # Stage times (sharing latency).
    filed_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime,
                                                                        nullable=False))
    decided_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime))
    approved_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime))
    masked_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime))
    delivered_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime))
    first_download_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime))
    closed_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime))
    updated_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime,
                                                                          nullable=False))

    @property
    def bounces(self) -> int:
        return self.returns + self.escalations + self.reassignments


class ApplicationStep(SQLModel, table=True):
    """History: every move of an application, legal ones only (illegal ones are refused)."""

    __tablename__ = "application_step"
    __table_args__ = (UniqueConstraint("application_id", "seq"),)
    id: int | None = Field(default=None, primary_key=True)
    application_id: int = Field(foreign_key="application.id", index=True)
    seq: int
    action: str = Field(max_length=32)
    from_state: str | None = Field(default=None, max_length=32)
    to_state: str = Field(max_length=32)
    actor_user_id: int | None = Field(default=None, foreign_key="user.id")
    actor_department_id: int | None = Field(default=None, foreign_key="department.id")
    actor_kind: str = Field(default="user", max_length=16)
    at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime, nullable=False))
    detail: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


class Grant(SQLModel, table=True):
    """The right an approved application gives: what, until when, how often."""

    __tablename__ = "access_grant"  # "grant" is an SQL keyword
    id: int | None = Field(default=None, primary_key=True)
    application_id: int = Field(foreign_key="application.id", unique=True)
    requester_department_id: int = Field(foreign_key="department.id", index=True)
    resource_id: int = Field(foreign_key="resource.id", index=True)
    schedule: Schedule
    valid_from: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
    valid_until: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
    revoked_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime))
    revoked_by: int | None = Field(default=None, foreign_key="user.id")
    revoke_reason: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    last_version: int = 0  # resource version of the latest package
    # Differential privacy spent by the aggregate releases of this grant (total ε).
    privacy_spent: float = Field(default=0.0, sa_column=Column(Float, nullable=False,
                                                               server_default="0"))
    created_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime,
                                                                          nullable=False))


class Delivery(SQLModel, table=True):
    """One desensitized package (file) or the opening of a query view (api).

    ``(grant_id, run_key)`` is unique: the run key names the period a periodic grant delivers
    for ("once", "2026-05-01", "2026-W18", "2026-05", "v7"), which makes a retried delivery
    step idempotent.
    """

    __table_args__ = (UniqueConstraint("grant_id", "run_key"),)
    id: int | None = Field(default=None, primary_key=True)
    grant_id: int = Field(foreign_key="access_grant.id", index=True)
    application_id: int = Field(foreign_key="application.id", index=True)
    run_key: str = Field(max_length=32)
    method: DeliveryMethod
    file_format: FileFormat | None = None
    resource_version: int
    path: str | None = Field(default=None, max_length=300)  # relative to the deliveries dir
    bytes: int = 0
    sha256: str | None = Field(default=None, max_length=64)
    row_count: int
    k_anonymity: int | None = None
    manifest: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    signature: str = Field(sa_column=Column(Text, nullable=False))  # base64 Ed25519
    key_id: str = Field(sa_column=Column(String(16), nullable=False))
    created_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime,
                                                                          nullable=False))


class PseudonymKey(SQLModel, table=True):
    """A requester department's HMAC key, AES-GCM encrypted under the ``pseudonym-keys``
    purpose key named by ``kid`` (``kernel.secrets``; rows from before the master secret have
    no ``kid`` and a scrypt ``salt`` for GOVSHARE_KEY_PASSPHRASE, until ``govshare keys
    rotate`` re-seals them). It never leaves the server: no API or export returns it."""

    __tablename__ = "pseudonym_key"
    department_id: int = Field(foreign_key="department.id", primary_key=True)
    kid: str | None = Field(default=None, sa_column=Column(String(32), nullable=True))
    salt: bytes = Field(sa_column=Column(LargeBinary(16), nullable=False))
    nonce: bytes = Field(sa_column=Column(LargeBinary(12), nullable=False))
    ciphertext: bytes = Field(sa_column=Column(LargeBinary(64), nullable=False))
    created_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime,
                                                                          nullable=False))


class DeliveryRating(SQLModel, table=True):
    """A requester's verdict on one delivery: was the data useful? Providers see, per delivery,
    who used their data and to what effect; metrics aggregate it per provider. One rating per
    delivery and requesting user; rating again replaces the verdict."""

    __tablename__ = "delivery_rating"
    __table_args__ = (UniqueConstraint("delivery_id", "rated_by"),)
    id: int | None = Field(default=None, primary_key=True)
    delivery_id: int = Field(foreign_key="delivery.id", index=True)
    application_id: int = Field(foreign_key="application.id", index=True)
    provider_department_id: int = Field(foreign_key="department.id", index=True)
    requester_department_id: int = Field(foreign_key="department.id", index=True)
    rated_by: int = Field(foreign_key="user.id")
    useful: bool
    comment: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    rated_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime,
                                                                        nullable=False))
