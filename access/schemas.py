"""Request and response bodies of the access API (tables live in ``access.models``)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from access.aggregate import AggregateSpec
from access.masking import ColumnRule, RowFilter
from access.models import (
    Deficiency,
    DeliveryMethod,
    FileFormat,
    RejectionReason,
    Schedule,
)


class ApplicationIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    resource: str = Field(description="Resource code", examples=["440300-GA-101-00001"])
    purpose: str = Field(min_length=4, max_length=2000, description="What the data is for")
    legal_basis: str = Field(min_length=2, max_length=2000,
                             description="Law, regulation or mandate that allows the use")
    items: list[str] = Field(min_length=1, max_length=500,
                             description="Data items needed (minimum necessary)")
    period_start: date | None = Field(default=None, description="Default: today")
    period_end: date
    delivery_method: DeliveryMethod = DeliveryMethod.file
    file_format: FileFormat = FileFormat.parquet
    schedule: Schedule = Schedule.once
    aggregate: AggregateSpec | None = Field(
        default=None, description="For delivery_method aggregate: groups, measures, ε per "
        "release and the grant's privacy budget (docs/access.md)")


class BundleIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    title: str = Field(min_length=2, max_length=200, examples=["新生儿出生一件事"])
    parts: list[ApplicationIn] = Field(min_length=2, max_length=20)


class ApprovalIn(BaseModel):
    """The approver's decision; with ``conditions`` the requester must accept them first."""

    model_config = ConfigDict(extra="forbid")
    masking: dict[str, ColumnRule] = Field(
        default_factory=dict, description="Tightenings of the default plan, by item")
    row_filters: list[RowFilter] = Field(default_factory=list, max_length=20)
    quasi_identifiers: list[str] = Field(default_factory=list, max_length=20)
    k_min: int | None = Field(default=None, ge=2, le=1000)
    max_suppression: float | None = Field(
        default=None, ge=0, le=0.2, description="Share of rows that may be dropped as outliers "
        "(classes smaller than k_min); needs k_min")
    sensitive_items: list[str] = Field(default_factory=list, max_length=20, description=
                                       "Items whose l-diversity and t-closeness are reported")
    conditions: list[str] = Field(default_factory=list, max_length=20,
                                  description="e.g. a data-use responsibility commitment")
    note: str = Field(default="", max_length=2000)


class DeficiencyIn(BaseModel):
    code: Deficiency
    note: str = Field(default="", max_length=1000)


class ReturnIn(BaseModel):
    deficiencies: list[DeficiencyIn] = Field(
        min_length=1, max_length=20, description="Every deficiency at once (一次性告知)")


class RejectIn(BaseModel):
    reason: RejectionReason
    text: str = Field(min_length=2, max_length=2000)


class RevisionIn(BaseModel):
    """What the requester changes when resubmitting (omitted fields stay)."""

    model_config = ConfigDict(extra="forbid")
    purpose: str | None = Field(default=None, min_length=4, max_length=2000)
    legal_basis: str | None = Field(default=None, min_length=2, max_length=2000)
    items: list[str] | None = Field(default=None, min_length=1, max_length=500)
    period_start: date | None = None
    period_end: date | None = None
    delivery_method: DeliveryMethod | None = None
    file_format: FileFormat | None = None
    schedule: Schedule | None = None
    note: str = Field(default="", max_length=2000)


class NoteIn(BaseModel):
    note: str = Field(default="", max_length=2000)


class ReassignIn(BaseModel):
    assignee: str = Field(description="Username of an approver of the provider department")
    note: str = Field(default="", max_length=2000)


class CoordinationIn(BaseModel):
    kind: Literal["remind", "convene", "outcome"]
    note: str = Field(min_length=2, max_length=4000)


class TightenIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    masking: dict[str, ColumnRule] = Field(default_factory=dict)
    row_filters: list[RowFilter] | None = Field(
        default=None, description="Replaces the filters; may only add conditions")
    quasi_identifiers: list[str] | None = None
    k_min: int | None = Field(default=None, ge=2, le=1000)
    max_suppression: float | None = Field(default=None, ge=0, le=0.2)
    sensitive_items: list[str] | None = Field(default=None, max_length=20)


class RiskIn(BaseModel):
    """A plan to measure: the application's, with tentative tightenings (approvers only)."""

    model_config = ConfigDict(extra="forbid")
    masking: dict[str, ColumnRule] = Field(default_factory=dict)
    quasi_identifiers: list[str] | None = Field(default=None, max_length=20)
    sensitive_items: list[str] | None = Field(default=None, max_length=20)
    k_target: int | None = Field(default=None, ge=2, le=1000)
    max_suppression: float | None = Field(default=None, ge=0, le=0.2)


class SuggestIn(RiskIn):
    """A privacy target for the least generalization that meets it."""

    k: int = Field(default=5, ge=2, le=1000)
    l: int | None = Field(default=None, ge=2, le=100)  # noqa: E741
    prosecutor_max: float | None = Field(default=None, gt=0, le=1)
    suppression: float = Field(default=0.01, ge=0, le=0.2,
                               description="Share of rows that may be suppressed as outliers")


class RevokeIn(BaseModel):
    reason: str = Field(min_length=2, max_length=2000)


class QueryIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    filters: list[RowFilter] = Field(default_factory=list, max_length=20)
    columns: list[str] | None = None
    page: int = Field(default=1, ge=1)
    size: int = Field(default=100, ge=1)


# --- out ----------------------------------------------------------------------------------------

class StepOut(BaseModel):
    seq: int
    action: str
    from_state: str | None
    to_state: str
    actor: str | None
    actor_department: str | None
    at: datetime
    detail: dict[str, Any]


class ReceiptOut(BaseModel):
    seq: int = Field(description="The log entry's sequence number.")
    type: str = Field(description="What it records: application.filed, …approved, "
                      "…rejected, delivery.completed, …")
    time: datetime
    receipt: str | None = Field(description="C2SP tlog-proof against the cosigned checkpoint "
                                "(null until one covers the entry); check it offline with "
                                "`govshare log check-receipt`.")


class ApplicationOut(BaseModel):
    id: int
    bundle_id: int | None
    resource: str
    provider: str
    requester: str
    requested_by: str
    sharing_type: str
    state: str
    purpose: str
    legal_basis: str
    items: list[str]
    period_start: date
    period_end: date
    delivery_method: DeliveryMethod
    file_format: FileFormat
    schedule: Schedule
    revision: int
    assignee: str | None
    due_date: date | None
    overdue: bool
    escalated_at: datetime | None
    masking_plan: dict[str, Any]
    row_filters: list[dict[str, Any]]
    quasi_identifiers: list[str]
    k_min: int | None
    max_suppression: float | None = None
    sensitive_items: list[str] = []
    aggregate: dict[str, Any] | None = None
    conditions: list[str]
    delivery_blocked: str | None
    bounces: int
    returns: int
    escalations: int
    reassignments: int
    notice_violations: int
    filed_at: datetime
    decided_at: datetime | None
    approved_at: datetime | None
    masked_at: datetime | None
    delivered_at: datetime | None
    first_download_at: datetime | None
    closed_at: datetime | None
    grant_id: int | None
    next_actions: list[str] = Field(description="Moves you may make now")


class BundleOut(BaseModel):
    id: int
    title: str
    requester: str
    coordinator: str
    filed_at: datetime
    completed_at: datetime | None
    parts: list[ApplicationOut]


class DeliveryOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    application_id: int
    grant_id: int
    run_key: str
    method: DeliveryMethod
    file_format: FileFormat | None
    resource_version: int
    bytes: int
    sha256: str | None
    row_count: int
    k_anonymity: int | None
    key_id: str
    created_at: datetime


class DeliveryJobOut(BaseModel):
    """Where a requested delivery stands: the job, then what it produced."""
    application: int
    job: int | None = Field(description="The `access.deliver` job; null when the period's "
                            "package existed already (nothing was queued)")
    state: Literal["queued", "running", "delivered", "blocked", "refused", "failed"] = Field(
        description="queued → running → delivered; or blocked (the desensitization check "
        "withheld the package: the provider must tighten the plan), refused (revoked, out of "
        "its period, budget spent) or failed (given up after retries)")
    final: bool = Field(description="No further change: stop polling")
    attempts: int
    queued_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    status_url: str | None = Field(description="Poll this (also the 202's Location)")
    delivery: DeliveryOut | None
    delivery_url: str | None
    problem: dict[str, Any] | None = Field(description="Why nothing was delivered (problem "
                                           "details: detail, hits, k_anonymity…)")


class ManifestOut(BaseModel):
    manifest: dict[str, Any]
    signature: str = Field(description="Base64 Ed25519 signature over the RFC 8785 bytes of "
                           "the manifest (docs/access.md)")
    key_id: str = Field(description="Verify with this key from /.well-known/govshare-log-keys")
    receipt: str | None = Field(
        default=None, description="C2SP tlog-proof that the delivery's log entry (its payload "
        "the manifest) is in the cosigned checkpoint; null for the few seconds until the "
        "witnesses cosign it. Check offline: `govshare log check-receipt FILE`.")
    logged_payload: dict[str, Any] | None = Field(
        default=None, description="The payload of the delivery's log entry (it contains the "
        "manifest verbatim): the entry's payload_sha256 is its RFC 8785 SHA-256.")


class LinkOut(BaseModel):
    url: str
    expires_at: datetime


class GrantOut(BaseModel):
    id: int
    application_id: int
    resource: str
    requester: str
    schedule: Schedule
    valid_from: datetime
    valid_until: datetime
    revoked_at: datetime | None
    revoke_reason: str
    last_version: int
    active: bool
    privacy_spent: float = 0.0
    privacy_budget: float | None = None


class QueryOut(BaseModel):
    columns: list[str]
    rows: list[list[Any]]
    page: int
    size: int
    has_more: bool
    resource_version: int


class RatingIn(BaseModel):
    useful: bool
    comment: str = Field(default="", max_length=2000,
                         description="What the data was used for, or what was missing")


class RatingOut(BaseModel):
    id: int
    delivery_id: int
    application_id: int
    provider: str
    requester: str
    rated_by: str
    useful: bool
    comment: str
    rated_at: datetime
