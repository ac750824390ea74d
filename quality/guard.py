"""No raw value leaves through quality.

The principle: what anyone outside a resource's provider department learns from quality —
results, counts, examples, reports, scores — is an aggregate, never one person's value or
membership. A check is a question asked of every row; asked of one row it is an oracle (a
regex per digit position under a ``row_condition`` that selects one person spells out their
ID; a value set of one ID tells whether that person is on the welfare list). So:

1. **Who may ask what** (``check_custom``). The provider department's publishers may write
   any check on their own data. Anyone else (the data bureau) may not
   * select rows: no ``row_condition`` at all, on any check;
   * name a *protected* item — personal, sensitive or confidential (``Sensitivity`` not
     ``none``) — except through the catalog's vocabulary for it: not-null, unique, and the
     rule its kind implies (resident ID check, the mobile/email/bank-card pattern), with the
     parameters derived from the kind, never supplied by the caller (only ``mostly``);
   * put a protected item into a check over several items (pairs, lists, row expressions).
2. **What others see** (``for_outsider``). Counts of failing values between 1 and
   ``SMALL_COUNT - 1`` are suppressed (shown as ``suppressed: true``, no count, no share);
   example rows and GX's partial value lists are the provider's only.

The rule "outside the provider department" is ``viewer.department_id !=
resource.provider_id``; the data bureau is outside every department but its own.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from catalog.models import DataItem, ItemKind, Resource, Sensitivity
from kernel.auth import Principal
from kernel.problems import Invalid, Phrase
from quality.sql_rules import BANK_CARD_REGEX, EMAIL_REGEX, MOBILE_REGEX

# Failing counts below this (but above 0) are not shown outside the provider department.
SMALL_COUNT = 5

# The catalog's vocabulary for protected items: type → kwargs derived from the item's kind.
_ALWAYS: dict[str, dict[str, Any]] = {"expect_column_values_to_not_be_null": {},
                                      "expect_column_values_to_be_unique": {}}
_BY_KIND: dict[ItemKind, tuple[str, dict[str, Any]]] = {
    ItemKind.resident_id: ("expect_column_values_to_be_valid_cn_resident_id", {}),
    ItemKind.uscc: ("expect_column_values_to_be_valid_cn_uscc", {}),
    ItemKind.mobile: ("expect_column_values_to_match_regex", {"regex": MOBILE_REGEX}),
    ItemKind.email: ("expect_column_values_to_match_regex", {"regex": EMAIL_REGEX}),
    ItemKind.bank_card: ("expect_column_values_to_match_regex", {"regex": BANK_CARD_REGEX}),
}
_CALLER_KWARGS = {"column", "mostly"}


def is_provider(who: Principal, resource: Resource) -> bool:
    return who.department_id == resource.provider_id


def protected(item: DataItem) -> bool:
    return Sensitivity(item.sensitivity) is not Sensitivity.none


def vocabulary(item: DataItem) -> dict[str, dict[str, Any]]:
    """The checks anyone outside the provider may put on a protected item, with the
    arguments derived from its kind."""
    allowed = {t: dict(k) for t, k in _ALWAYS.items()}
    by_kind = _BY_KIND.get(ItemKind(item.kind)) if item.kind else None
    if by_kind:
        allowed[by_kind[0]] = dict(by_kind[1])
    return allowed


def _refuse(message: Phrase, field: str) -> Invalid:
    return Invalid(message.english, errors=[{"field": field, "message": message}],
                   key=message.key, params=dict(message.params))


def check_custom(who: Principal, resource: Resource, type_: str,
                 kwargs: dict[str, Any], expression_items: list[str]) -> dict[str, Any]:
    """Refuse (422, saying why) a check that would let someone outside the provider
    department learn one row's value; returns the kwargs to store (for a vocabulary check
    on a protected item: the kind's derived parameters added)."""
    if is_provider(who, resource):
        return kwargs
    if kwargs.get("row_condition") not in (None, ""):
        raise _refuse(Phrase("problem.quality.guard_row_condition",
                             "Checks on another department's data cannot select rows "
                             "(row_condition): a check on selected rows can reveal one "
                             "person's values. Ask for checks over all rows."),
                      "kwargs.row_condition")
    items = {i.name: i for i in resource.items}
    named = [str(kwargs[k]) for k in ("column", "column_A", "column_B") if k in kwargs]
    named += [str(c) for c in kwargs.get("column_list") or []] + expression_items
    guarded = [n for n in dict.fromkeys(named) if n in items and protected(items[n])]
    if not guarded:
        return kwargs
    if len(set(named)) > 1 or "column" not in kwargs:
        names = ", ".join(guarded)
        raise _refuse(Phrase("problem.quality.guard_alone",
                             f"{names} is personal or sensitive: outside the provider "
                             "department it can only be checked on its own, with the "
                             "catalog's checks for its kind.", {"names": names}), "kwargs")
    item = items[guarded[0]]
    allowed = vocabulary(item)
    if type_ not in allowed:
        checks = ", ".join(sorted(allowed))
        raise _refuse(Phrase("problem.quality.guard_vocabulary",
                             f"{item.name} is personal or sensitive: outside the provider "
                             f"department only these checks apply to it: {checks}.",
                             {"name": item.name, "checks": checks}), "type")
    extra = sorted(set(kwargs) - _CALLER_KWARGS)
    if extra:
        names = ", ".join(extra)
        raise _refuse(Phrase("problem.quality.guard_parameters",
                             f"On {item.name} (personal or sensitive) the check's parameters "
                             f"come from its kind; only column and mostly may be given, not "
                             f"{names}.", {"name": item.name, "names": names}),
                      f"kwargs.{extra[0]}")
    return {**kwargs, **allowed[type_]}


# --- what others see ---------------------------------------------------------------------------

_COUNT_KEYS = ("unexpected_count", "unexpected_percent", "unexpected_percent_total",
               "unexpected_percent_nonmissing")
_VALUE_KEYS = ("partial_unexpected_list", "partial_unexpected_counts", "details",
               "partial_unexpected_index_list")


def small(count: Any) -> bool:
    return isinstance(count, int) and 0 < count < SMALL_COUNT


def outcome_for_outsider(outcome: Mapping[str, Any]) -> dict[str, Any]:
    """One stored outcome as someone outside the provider department sees it."""
    out = dict(outcome)
    out["examples"] = []
    if small(out.get("unexpected_count")):
        out["unexpected_count"] = None
        out["suppressed"] = True
    return out


def gx_result_for_outsider(gx_result: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if gx_result is None:
        return None
    shown = copy.deepcopy(dict(gx_result))
    for result in shown.get("results") or []:
        found = result.get("result") or {}
        for key in _VALUE_KEYS:
            found.pop(key, None)
        if small(found.get("unexpected_count")):
            for key in _COUNT_KEYS:
                found.pop(key, None)
            found["suppressed"] = True
    return shown
