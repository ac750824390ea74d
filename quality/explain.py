"""Scores explained: per dimension, the checks that failed, with their numbers.

For each failing check of a run: how it is named (a custom check by its note, a generated one
by its rule), what was expected (bounds, pattern, set size, expression), what was found (GX's
observed value, already masked for personal items), and the failing count and share. Outside
the provider department small counts are suppressed and example rows withheld
(``quality.guard``); the provider's publishers also get the first failing rows (masked).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from sqlmodel import Session

from kernel.auth import Principal
from kernel.db import session_scope
from kernel.events import Event, publish
from quality import guard
from quality.rules import Dimension

_SHOWN_KWARGS = ("min_value", "max_value", "regex", "type_", "expression", "mostly",
                 "column_set")


def name_of(outcome: Mapping[str, Any], notes: Mapping[str, str]) -> str:
    """A custom check by its note (its rule, ``custom:<id>``, if it has none)."""
    rule = str(outcome.get("rule") or outcome.get("type"))
    return notes.get(rule) or rule


def expected_of(outcome: Mapping[str, Any]) -> dict[str, Any]:
    kwargs = outcome.get("kwargs") or {}
    shown = {k: kwargs[k] for k in _SHOWN_KWARGS if k in kwargs}
    if isinstance(kwargs.get("value_set"), list):
        shown["value_set_size"] = len(kwargs["value_set"])
    return shown


def share_of(outcome: Mapping[str, Any]) -> float | None:
    count, element = outcome.get("unexpected_count"), outcome.get("element_count")
    if count is None or not element:
        return None
    checked = element - (outcome.get("missing_count") or 0)
    return round(count / checked, 4) if checked > 0 else None


def failing(outcomes: Iterable[Mapping[str, Any]] | None, notes: Mapping[str, str], *,
            provider: bool) -> dict[str, list[dict[str, Any]]]:
    """dimension → its failing checks, as the viewer may see them."""
    out: dict[str, list[dict[str, Any]]] = {d.value: [] for d in Dimension}
    for raw in outcomes or []:
        if raw.get("success"):
            continue
        outcome = dict(raw) if provider else guard.outcome_for_outsider(raw)
        entry = {"rule": outcome.get("rule"), "name": name_of(outcome, notes),
                 "type": outcome.get("type"), "columns": outcome.get("columns") or [],
                 "expected": expected_of(outcome), "found": outcome.get("observed_value"),
                 "unexpected_count": outcome.get("unexpected_count"),
                 "checked": _checked(outcome), "share": share_of(outcome),
                 "suppressed": bool(outcome.get("suppressed")), "error": outcome.get("error")}
        if provider:
            entry["examples"] = outcome.get("examples") or []
        out.setdefault(str(outcome.get("dimension") or "validity"), []).append(entry)
    return out


def _checked(outcome: Mapping[str, Any]) -> int | None:
    element = outcome.get("element_count")
    return None if element is None else element - (outcome.get("missing_count") or 0)


def shows_examples(failing: Mapping[str, Iterable[Mapping[str, Any]]]) -> bool:
    """True when a ``failing`` view carries masked example rows (the provider's view)."""
    return any(entry.get("examples") for entries in failing.values() for entry in entries)


def record_samples_viewed(who: Principal, code: str, run_id: int | None) -> None:
    """Log that ``who`` saw failing-row samples of ``code``: every read is on record. Its own
    short write transaction, so the views that show samples stay read-only requests."""
    with session_scope(write=True) as session:
        publish_samples_viewed(session, who, code, run_id)


def publish_samples_viewed(session: Session, who: Principal, code: str,
                           run_id: int | None) -> None:
    subjects = {"resource": code} | ({"run": str(run_id)} if run_id is not None else {})
    publish(session, Event("quality.samples_viewed", who.actor, subjects, {"run": run_id}))
