"""The application state machine: every move, from which states, by which party.

Services never assign ``Application.state`` themselves; they ask ``next_state`` for the move,
which refuses anything not listed here with ``IllegalMove`` (409 problem+json, with the reason).
A move whose target is ``None`` keeps the state (it is recorded in the history all the same).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from access.models import ApplicationState as S
from kernel.problems import Conflict, Phrase, Phrases


class Party(StrEnum):
    """Who acts, relative to the application (derived server-side from the principal)."""

    requester = "requester"  # requester users of the requesting department
    provider = "provider"  # approvers of the provider department
    bureau = "bureau"  # auditors of the data bureau: coordinate, never decide
    coordinator = "coordinator"  # approvers of a bundle's coordinating department
    system = "system"  # automatic steps: auto-approval, deliveries, expiry


class Action(StrEnum):
    auto_approve = "auto_approve"
    approve = "approve"
    set_conditions = "set_conditions"
    accept_conditions = "accept_conditions"
    return_ = "return"
    resubmit = "resubmit"
    reject = "reject"
    withdraw = "withdraw"
    reassign = "reassign"
    escalate = "escalate"
    coordinate = "coordinate"
    tighten = "tighten"
    deliver = "deliver"
    block = "block"
    revoke = "revoke"
    expire = "expire"


@dataclass(frozen=True)
class Move:
    sources: frozenset[S]
    target: S | None  # None: the state stays
    parties: frozenset[Party]


def _m(sources: set[S], target: S | None, *parties: Party) -> Move:
    return Move(frozenset(sources), target, frozenset(parties))


P, R, B, C, SYS = Party.provider, Party.requester, Party.bureau, Party.coordinator, Party.system
_REVIEW = {S.submitted}
_GRANTED = {S.approved, S.delivered}

MOVES: dict[Action, Move] = {
    Action.auto_approve: _m(_REVIEW, S.approved, SYS),  # unconditional resources only
    Action.approve: _m(_REVIEW, S.approved, P),
    Action.set_conditions: _m(_REVIEW, S.conditions_pending, P),
    Action.accept_conditions: _m({S.conditions_pending}, S.approved, R),
    Action.return_: _m(_REVIEW, S.returned, P),
    Action.resubmit: _m({S.returned}, S.submitted, R),
    Action.reject: _m(_REVIEW, S.rejected, P),
    Action.withdraw: _m({S.submitted, S.returned, S.conditions_pending, S.approved},
                        S.withdrawn, R),
    Action.reassign: _m(_REVIEW, None, P),
    # Only overdue applications (checked by the service) go to the bureau.
    Action.escalate: _m(_REVIEW, None, R, B),
    Action.coordinate: _m({S.submitted, S.conditions_pending, S.returned}, None, B, C),
    Action.tighten: _m(_GRANTED, None, P),
    Action.deliver: _m(_GRANTED, S.delivered, SYS, R),
    Action.block: _m(_GRANTED, None, SYS),
    Action.revoke: _m(_GRANTED, S.revoked, P),
    Action.expire: _m(_GRANTED, S.expired, SYS),
}

_PARTY_NAMES = {
    Party.requester: "requesters of the requesting department",
    Party.provider: "approvers of the provider department",
    Party.bureau: "auditors of the data bureau",
    Party.coordinator: "approvers of the bundle's coordinating department",
    Party.system: "govshare itself",
}


class IllegalMove(Conflict):
    slug, title = "illegal-transition", "This move is not allowed now"


def next_state(state: S, action: Action, parties: set[Party] | frozenset[Party],
               *, app_id: int | None = None) -> S:
    """The state after ``action`` by someone acting as any of ``parties``, or IllegalMove."""
    move = MOVES[action]
    what = Phrase("phrase.application_n", f"application {app_id}", {"app_id": app_id}) \
        if app_id is not None else Phrase("phrase.the_application", "the application")
    verb = Phrase(f"action.{action.value}", action.value)  # the catalogue's label in Chinese
    # Who first, then the state: a caller with no part in the application (another
    # department) must not learn its state from the refusal.
    if not parties & move.parties:
        who = Phrases(tuple(Phrase(f"party.{p.value}", _PARTY_NAMES[p])
                            for p in sorted(move.parties)), "or")
        raise IllegalMove(f"Only {who} can {verb} {what}.", action=action.value,
                          key="problem.access.move_not_yours",
                          params={"who": who, "verb": verb, "what": what})
    if state not in move.sources:
        now = Phrase(f"state.{state.value}", state.value)
        allowed = Phrases(tuple(Phrase(f"state.{s.value}", s.value)
                                for s in sorted(move.sources, key=lambda s: s.value)))
        raise IllegalMove(f"Cannot {verb} {what}: it is {now}; {verb} is allowed only when "
                          f"it is {allowed}.", state=state.value, action=action.value,
                          key="problem.access.move_not_now",
                          params={"verb": verb, "what": what, "now": now, "allowed": allowed})
    return move.target or state


def legal_actions(state: S, parties: set[Party] | frozenset[Party]) -> list[Action]:
    """What this caller may do next (for clients to show the right buttons)."""
    return [a for a, m in MOVES.items() if state in m.sources and parties & m.parties]
