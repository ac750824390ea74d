"""Dimension scores (0–100) and the weighted overall score of one run; pure functions.

The formulas (also in docs/quality.md, "Scores"):

* **freshness** — period P from the update cycle. The data is as of the last data update,
  or, if the resource has a ``date_item``, the older of that and the end of the newest date
  in the data (GX's ``expect_column_max_to_be_between`` reports it). overdue = now − as-of −
  P. Score 100 while overdue ≤ 0, then 100·(1 − overdue/P), 0 from one further cycle late.
  ``irregular`` promises no cycle: not scored.
* **completeness** — 100 · (present required cells / required cells) · (declared items
  present in the data / declared items) · (mean pass ratio of custom completeness
  expectations, 1 if none). Required cells are rows × required items, pooled.
* **validity, uniqueness, consistency** — 100 · the mean pass ratio of the dimension's
  expectations; none → not scored. A map expectation's pass ratio is 1 − unexpected /
  checked values (present values only); any other expectation scores 1 if it succeeded,
  else 0; an expectation that could not be evaluated scores 0.
* **overall** — Σ wᵢ·sᵢ / Σ wᵢ over the dimensions that were scored, with the data bureau's
  weights (``QualityWeights``).

Dimension scores are rounded to two decimals, and the overall score is computed from the
rounded figures, so anyone can recompute it from what is shown.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from typing import Any

from catalog.models import UpdateCycle
from quality.rules import Dimension

DEFAULT_WEIGHTS: dict[str, float] = {
    Dimension.freshness: 0.20, Dimension.completeness: 0.25, Dimension.validity: 0.25,
    Dimension.uniqueness: 0.15, Dimension.consistency: 0.15,
}
DEFAULT_THRESHOLD = 80.0
# Dates in government data are China Standard Time dates: a date ends at 24:00 CST.
CST = timezone(timedelta(hours=8), "CST")

Outcome = Mapping[str, Any]  # ``quality.validate.ExpectationOutcome.as_json()``


@dataclass
class Scores:
    dimensions: dict[str, float | None]
    overall: float
    details: dict[str, Any] = field(default_factory=dict)


def pass_ratio(outcome: Outcome) -> float:
    if outcome.get("error"):
        return 0.0
    element, unexpected = outcome.get("element_count"), outcome.get("unexpected_count")
    if element is not None and unexpected is not None:
        checked = element - (outcome.get("missing_count") or 0)
        return 1.0 if checked <= 0 else max(0.0, 1.0 - unexpected / checked)
    return 1.0 if outcome.get("success") else 0.0


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def ratio_dimension(outcomes: Sequence[Outcome], dimension: Dimension) -> float | None:
    mean = _mean([pass_ratio(o) for o in outcomes if o.get("dimension") == dimension])
    return None if mean is None else round(100 * mean, 2)


def completeness(outcomes: Sequence[Outcome], row_count: int) -> tuple[float, dict[str, Any]]:
    mine = [o for o in outcomes if o.get("dimension") == Dimension.completeness]
    items = _items_share(next((o for o in mine if o.get("rule") == "items_present"), None))
    required = [o for o in mine if str(o.get("rule", "")).startswith("not_null:")
                and o.get("source") == "generated"]
    present = sum(_present_cells(o, row_count) for o in required)
    total = row_count * len(required)
    cells = present / total if total else 1.0
    custom = _mean([pass_ratio(o) for o in mine if o.get("source") == "custom"])
    score = 100 * items * cells * (1.0 if custom is None else custom)
    return round(score, 2), {"required_cells": total, "present_required_cells": present,
                             "declared_items_present_share": items,
                             "custom_factor": custom}


def _items_share(outcome: Outcome | None) -> float:
    if outcome is None:
        return 1.0
    declared = list((outcome.get("kwargs") or {}).get("column_set") or [])
    observed = outcome.get("observed_value")
    if outcome.get("error") or not isinstance(observed, list):
        return 0.0
    return sum(1 for c in declared if c in observed) / len(declared) if declared else 1.0


def _present_cells(outcome: Outcome, row_count: int) -> int:
    if outcome.get("error") or outcome.get("unexpected_count") is None:
        return 0  # the column could not be read: none of its cells count as present
    return max(0, row_count - int(outcome["unexpected_count"]))


def as_of(last_update: datetime | None, newest: Any) -> datetime | None:
    """When the data is from: the last update, or the end of the newest as-of date in the
    data when that is older (re-uploading old data does not make it fresh)."""
    newest_at = _end_of(newest)
    if last_update is None:
        return newest_at
    return min(last_update, newest_at) if newest_at else last_update


def _end_of(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value) if "T" in value or " " in value \
                else date.fromisoformat(value)
        except ValueError:
            return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=CST)
    if isinstance(value, date):  # a date covers the whole day
        return datetime.combine(value + timedelta(days=1), time(), tzinfo=CST)
    return None


def freshness(cycle: UpdateCycle, data_as_of: datetime | None,
              now: datetime) -> tuple[float | None, dict[str, Any]]:
    period = cycle.period
    if period is None or data_as_of is None:
        return None, {"reason": "irregular update cycle" if period is None else "no data"}
    overdue = now - data_as_of - period
    score = 100.0 if overdue <= timedelta(0) else max(0.0, 100 * (1 - overdue / period))
    return round(score, 2), {"period_hours": period.total_seconds() / 3600,
                             "as_of": data_as_of.isoformat(),
                             "overdue_hours": round(overdue.total_seconds() / 3600, 2)}


def overall(dimensions: Mapping[str, float | None], weights: Mapping[str, float]) -> float:
    scored = {d: s for d, s in dimensions.items() if s is not None and weights.get(d, 0) > 0}
    total = sum(weights[d] for d in scored)
    if not total:
        return 0.0
    return round(sum(weights[d] * s for d, s in scored.items()) / total, 2)


def score(outcomes: Sequence[Outcome], *, row_count: int, cycle: UpdateCycle,
          data_as_of: datetime | None, now: datetime,
          weights: Mapping[str, float]) -> Scores:
    fresh, fresh_details = freshness(cycle, data_as_of, now)
    complete, complete_details = completeness(outcomes, row_count)
    dims: dict[str, float | None] = {
        Dimension.freshness: fresh, Dimension.completeness: complete,
        Dimension.validity: ratio_dimension(outcomes, Dimension.validity),
        Dimension.uniqueness: ratio_dimension(outcomes, Dimension.uniqueness),
        Dimension.consistency: ratio_dimension(outcomes, Dimension.consistency),
    }
    return Scores({str(k): v for k, v in dims.items()}, overall(dims, weights),
                  {"freshness": fresh_details, "completeness": complete_details})
