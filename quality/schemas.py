"""Request and response bodies of the quality API."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from quality.models import NoticeStatus, RunStatus, RunTrigger


class ScoreOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    run_id: int
    scored_at: datetime
    freshness: float | None
    completeness: float | None
    validity: float | None
    uniqueness: float | None
    consistency: float | None
    overall: float
    weights: dict[str, float]
    details: dict[str, Any]
    failing: dict[str, list[dict[str, Any]]] = Field(default_factory=dict, description=(
        "Per dimension, the checks that failed: name (a custom check's note), expected, "
        "found, unexpected_count, checked, share; outside the provider department counts "
        "below 5 are suppressed; the provider's publishers also get example rows"))
    report: str | None = Field(default=None, description="The run's HTML report")
    log_entry: int | None = Field(default=None, description=(
        "Sequence number of the run's entry in the signed log (its attestation)"))


class RunOut(BaseModel):
    id: int
    resource: str
    data_version: int
    trigger: RunTrigger
    status: RunStatus
    requested_by: str | None
    suite_version: int | None
    queued_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    error: str | None
    row_count: int | None
    overall: float | None
    failed_expectations: int | None


class RunDetail(RunOut):
    score: ScoreOut | None
    expectations: list[dict[str, Any]] | None = Field(
        description="Per expectation: rule, dimension, success, counts, masked example rows")
    gx_result: dict[str, Any] | None = Field(
        description="Great Expectations' ExpectationSuiteValidationResult, values masked")
    receipt: str | None = Field(
        default=None, description="C2SP tlog-proof of the run's quality.run_finished log entry "
        "against the cosigned checkpoint (null until one covers it)")


class CustomExpectationIn(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    type: str = Field(min_length=3, max_length=120,
                      examples=["expect_column_values_to_match_regex"])
    arguments: dict[str, Any] = Field(alias="kwargs", description="The expectation's kwargs",
                                      examples=[{"column": "name", "regex": "^[张王李]"}])
    dimension: str = Field(default="validity")
    note: str = Field(default="", max_length=2000)


class CustomExpectationOut(BaseModel):
    model_config = ConfigDict(populate_by_name=True)
    id: int
    type: str
    arguments: dict[str, Any] = Field(alias="kwargs")
    dimension: str
    note: str
    added_by: str | None
    added_at: datetime


class SuiteOut(BaseModel):
    # None (and ``stored`` false) for a suite the next run will store, not stored yet.
    version: int | None
    created_at: datetime | None
    stored: bool = True
    fingerprint: str
    expectations: list[dict[str, Any]]


class WeightsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    freshness: float = Field(ge=0)
    completeness: float = Field(ge=0)
    validity: float = Field(ge=0)
    uniqueness: float = Field(ge=0)
    consistency: float = Field(ge=0)
    threshold: float = Field(ge=0, le=100)


class WeightsOut(WeightsIn):
    changed_by: str | None
    changed_at: datetime | None


class RankedResource(BaseModel):
    rank: int
    code: str
    name: str
    department: str
    overall: float
    freshness: float | None
    completeness: float | None
    validity: float | None
    uniqueness: float | None
    consistency: float | None
    scored_at: datetime
    run_id: int


class RankedDepartment(BaseModel):
    rank: int
    department: str
    name_zh: str
    name_en: str
    resources: int
    average: float
    lowest: float
    below_threshold: int
    unscored: int = Field(default=0, description="Active resources with data, not scored yet")
    failed: int = Field(default=0, description="Resources whose newest run failed for good")


class FailedRunOut(BaseModel):
    run_id: int
    resource: str
    name: str
    department: str
    finished_at: datetime | None
    attempts: int
    error: str | None


class TrendPoint(BaseModel):
    date: date
    runs: int
    overall: float | None
    freshness: float | None
    completeness: float | None
    validity: float | None
    uniqueness: float | None
    consistency: float | None


class NoticeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    resource: str = Field(description="Resource code")
    problem: str = Field(min_length=2, max_length=5000, description="What is wrong")
    deadline: date
    dimension: str | None = Field(default=None, description="The dimension to bring up")
    min_score: float | None = Field(default=None, ge=0, le=100, description=(
        "Score the dimension (or, without one, the overall score) must reach; "
        "default: the audit threshold"))
    rules: list[str] = Field(default_factory=list, max_length=100,
                             description="Expectation rules that must pass, e.g. unique:id")
    run_id: int | None = Field(default=None, description="The run showing the problem")


class NoticeResponseIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    response: str = Field(min_length=2, max_length=5000, description="What was fixed")


class NoticeEventOut(BaseModel):
    action: str
    actor: str | None
    at: datetime
    note: str
    run_id: int | None


class NoticeOut(BaseModel):
    id: int
    resource: str
    department: str
    problem: str
    dimension: str | None
    min_score: float
    rules: list[str]
    deadline: date
    status: NoticeStatus
    issued_by: str | None
    issued_at: datetime
    response: str
    responded_by: str | None
    responded_at: datetime | None
    closed_at: datetime | None
    closing_run_id: int | None
    verification_run_id: int | None = None
    verifying_runs: list[int] = []
    resource_name: str = ""
    working_days_left: int | None = Field(default=None, description=(
        "Working days from today to the deadline (negative: past it); none once closed"))
    overdue: bool = False
    history: list[NoticeEventOut] = []
