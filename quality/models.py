"""Quality tables: suites and custom expectations, runs and their scores, the data bureau's
weights, and rectification notices with their history.

No ``from __future__ import annotations`` here: SQLModel reads the annotations at run time.
"""

from datetime import date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Column, Index, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from kernel.db import UTCDateTime, utcnow


class RunStatus(StrEnum):
    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"


class RunTrigger(StrEnum):
    registration = "registration"
    new_version = "new_version"
    schedule = "schedule"
    on_demand = "on_demand"
    notice = "notice"  # a department responded to a rectification notice


class NoticeStatus(StrEnum):
    open = "open"
    responded = "responded"  # the department says it is fixed; a re-run will tell
    closed = "closed"


class QualitySuite(SQLModel, table=True):
    """One version of a resource's expectation suite (GX suite JSON).

    A new version is stored whenever what would be validated changes: the catalog entry
    (items, kinds, code lists, keys), the expected row-count range, or custom expectations.
    """

    __tablename__ = "quality_suite"
    __table_args__ = (UniqueConstraint("resource_id", "version"),)
    id: int | None = Field(default=None, primary_key=True)
    resource_id: int = Field(foreign_key="resource.id", index=True)
    version: int
    fingerprint: str = Field(max_length=64)  # sha256 of the canonical expectations
    suite: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime))


class CustomExpectation(SQLModel, table=True):
    """An expectation a publisher or auditor added to a resource's suite."""

    __tablename__ = "quality_custom_expectation"
    id: int | None = Field(default=None, primary_key=True)
    resource_id: int = Field(foreign_key="resource.id", index=True)
    # GX's snake-case name, e.g. expect_column_values_to_match_regex
    type: str = Field(max_length=120)
    arguments: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))  # GX kwargs
    dimension: str = Field(max_length=20)
    note: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    added_by: int = Field(foreign_key="user.id")
    # Added by the data bureau (kernel.policy): then only the bureau may remove it.
    added_by_bureau: bool = Field(default=False)
    added_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime))
    removed_by: int | None = Field(default=None, foreign_key="user.id")
    removed_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime))


class QualityRun(SQLModel, table=True):
    """One validation of one data version: queued, then run by a worker, then stored."""

    __tablename__ = "quality_run"
    __table_args__ = (Index("ix_quality_run_status_queued", "status", "queued_at"),)
    id: int | None = Field(default=None, primary_key=True)
    resource_id: int = Field(foreign_key="resource.id", index=True)
    data_version: int
    trigger: RunTrigger
    status: RunStatus = Field(default=RunStatus.queued)
    requested_by: int | None = Field(default=None, foreign_key="user.id")
    # The notice whose response asked for this run (no foreign key: notices point at runs).
    notice_id: int | None = Field(default=None, index=True)
    suite_version: int | None = None
    queued_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime))
    started_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime))
    finished_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime))
    error: str | None = Field(default=None, sa_column=Column(Text))
    # Retries (quality.runs): attempts made so far; a retried run waits until not_before.
    attempts: int = Field(default=0)
    not_before: datetime | None = Field(default=None, sa_column=Column(UTCDateTime))
    # A running run's lease, renewed while it runs; past it, the run was cut off by a stopped
    # process and is queued again.
    lease_until: datetime | None = Field(default=None, sa_column=Column(UTCDateTime))
    row_count: int | None = None
    # GX's ExpectationSuiteValidationResult as JSON, with personal values masked.
    gx_result: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON))
    # Per expectation: rule, dimension, success, counts, masked example rows.
    expectations: list[dict[str, Any]] | None = Field(default=None, sa_column=Column(JSON))
    # What the signed log records of a finished run (quality.attest): suite and data hashes,
    # GX version, scores; anyone can recompute its digest and re-run it.
    attestation: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON))
    log_seq: int | None = None  # the signed log's entry of the finished run


class QualityScore(SQLModel, table=True):
    """The scores of one successful run (a failed run has none)."""

    __tablename__ = "quality_score"
    id: int | None = Field(default=None, primary_key=True)
    run_id: int = Field(foreign_key="quality_run.id", unique=True)
    resource_id: int = Field(foreign_key="resource.id", index=True)
    department_id: int = Field(foreign_key="department.id", index=True)
    scored_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime,
                                                                         index=True))
    freshness: float | None = None
    completeness: float | None = None
    validity: float | None = None
    uniqueness: float | None = None
    consistency: float | None = None
    overall: float
    weights: dict[str, float] = Field(sa_column=Column(JSON, nullable=False))
    details: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))


class QualityWeights(SQLModel, table=True):
    """The data bureau's scoring configuration; the newest row is in force, older rows are
    its history (who changed what, when)."""

    __tablename__ = "quality_weights"
    id: int | None = Field(default=None, primary_key=True)
    freshness: float
    completeness: float
    validity: float
    uniqueness: float
    consistency: float
    threshold: float  # scores below it are listed for the audit
    changed_by: int | None = Field(default=None, foreign_key="user.id")
    changed_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime))


class RectificationNotice(SQLModel, table=True):
    """整改通知: the data bureau tells a department what is wrong with a resource and by when
    it must be fixed; a re-run after the department's response verifies the fix."""

    __tablename__ = "quality_notice"
    id: int | None = Field(default=None, primary_key=True)
    resource_id: int = Field(foreign_key="resource.id", index=True)
    department_id: int = Field(foreign_key="department.id", index=True)
    problem: str = Field(sa_column=Column(Text, nullable=False))
    dimension: str | None = Field(default=None, max_length=20)
    min_score: float
    rules: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    deadline: date
    status: NoticeStatus = Field(default=NoticeStatus.open, index=True)
    issued_by: int = Field(foreign_key="user.id")
    issued_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime))
    run_id: int | None = Field(default=None, foreign_key="quality_run.id")  # the finding
    response: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    responded_by: int | None = Field(default=None, foreign_key="user.id")
    responded_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime))
    closed_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime))
    closing_run_id: int | None = Field(default=None, foreign_key="quality_run.id")


class NoticeEvent(SQLModel, table=True):
    """Every step of a notice: issued, responded, verified (closed) or still failing."""

    __tablename__ = "quality_notice_event"
    id: int | None = Field(default=None, primary_key=True)
    notice_id: int = Field(foreign_key="quality_notice.id", index=True)
    action: str = Field(max_length=20)
    actor_id: int | None = Field(default=None, foreign_key="user.id")  # None: the system
    at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime))
    note: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    run_id: int | None = Field(default=None, foreign_key="quality_run.id")
