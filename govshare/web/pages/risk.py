"""The re-identification risk panel of the application page (``_risk.html``).

The approver sees the report of the plan as it would be delivered beside the plan before
deciding, asks for the least generalization meeting a target (``?suggest=1&k=…``), and gets
it pre-selected in the decision form: one click (approve, or tighten) applies it, and any
rule may still be tightened further before that — never loosened, the choices offer nothing
looser. The requester sees the report once the application is decided.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from fastapi import Request
from sqlmodel import Session
from starlette.datastructures import FormData

from access import assessment, generalize, masking
from access.masking import MaskingRule
from access.models import Application
from govshare.web.base import text, texts
from kernel.auth import Principal
from kernel.problems import Invalid, Problem

log = logging.getLogger("govshare")


def _number(raw: str | None, kind: type[int] | type[float], low: float, high: float
            ) -> int | float | None:
    if raw is None or raw.strip() == "":
        return None
    try:
        value = kind(raw)
    except ValueError:
        raise Invalid(f"'{raw}' is not a number.",
                      key="problem.web.not_a_number", params={"raw": raw}) from None
    if not low <= value <= high:
        raise Invalid(f"{value} is outside {low:g}–{high:g}.",
                      key="problem.web.out_of_range",
                      params={"value": value, "low": low, "high": high})
    return value


def target_from(request: Request) -> dict[str, Any]:
    """The target the approver typed (query string), with defaults."""
    q = request.query_params
    k = _number(q.get("k"), int, 2, 1000) or assessment.DEFAULT_K
    suppression = _number(q.get("suppression"), float, 0, 20)
    l_div = _number(q.get("l"), int, 2, 100)
    return {"k": int(k), "suppression": 1.0 if suppression is None else float(suppression),
            "l": int(l_div) if l_div else None}


def panel(session: Session, who: Principal, app: Application, request: Request,
          provider: bool) -> dict[str, Any]:
    """The report (and, when asked for, the suggestion) for the template; failures become a
    message in the panel rather than a broken page (e.g. a resource without data)."""
    out: dict[str, Any] = {"report": None, "suggestion": None, "error": None,
                           "target": {"k": app.k_min or assessment.DEFAULT_K,
                                      "suppression": 1.0, "l": None}}
    try:
        inp = assessment.inputs(session, who, app.id or 0)
        out["report"] = assessment.measure(inp)
        if provider and request.query_params.get("suggest"):
            target = target_from(request)
            out["target"] = target
            found = assessment.suggest(inp, generalize.Target(
                k=target["k"], max_suppression=target["suppression"] / 100, l=target["l"],
                sensitive=tuple(inp.sensitive) if target["l"] else ()))
            out["suggestion"] = found
    except Problem as problem:
        out["error"] = problem.detail
    return out


def selected_rules(suggestion: Mapping[str, Any] | None) -> dict[str, str]:
    """Rule keys the suggestion pre-selects, by item."""
    from govshare.web.pages.access import rule_key

    if not suggestion:
        return {}
    return {n: rule_key(r) for n, r in suggestion.get("changes", {}).items()}


def settings_from(form: FormData, plan: masking.Plan) -> dict[str, Any]:
    """Quasi-identifiers, sensitive items, k_min and the outlier share from the decision
    form. Items the plan suppresses are dropped from both lists: the approver suppressing a
    column that was a quasi-identifier means it is no longer delivered at all."""
    delivered = {n for n, r in plan.items() if r.rule is not MaskingRule.suppress}
    k_min = _number(text(form, "k_min"), int, 2, 1000)
    share = _number(text(form, "max_suppression"), float, 0, 20)
    return {"quasi_identifiers": [q for q in texts(form, "qi") if q in delivered],
            "sensitive_items": [s for s in texts(form, "sensitive") if s in delivered],
            "k_min": int(k_min) if k_min else None,
            "max_suppression": float(share) / 100 if share is not None else None}
