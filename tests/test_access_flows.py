"""The application state machine, table-driven: every state × action × party, legal or not.

``LEGAL`` is written out here independently of ``access.flows.MOVES``: the machine must agree
with it on every one of the combinations. The second test drives every user-facing action
through the HTTP API from every state (built by real moves, not by poking the state column),
and checks both the new state and that an illegal move is a 409 problem+json that changes
nothing.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from access import delivery
from access import service as svc
from access.flows import Action as A
from access.flows import IllegalMove, legal_actions, next_state
from access.flows import Party as P
from access.models import Application, Grant
from access.models import ApplicationState as S
from access.schemas import ApplicationIn, ApprovalIn, RejectIn, ReturnIn
from kernel import db
from kernel.auth import principal_of
from kernel.db import utcnow
from kernel.identity import Role
from tests.test_access_support import (  # noqa: F401  (access_world: the aw fixture)
    AccessWorld,
    access_world,
    application,
    register,
)

GRANTED = (S.approved, S.delivered)

LEGAL: dict[tuple[S, A, P], S] = {
    (S.submitted, A.auto_approve, P.system): S.approved,
    (S.submitted, A.approve, P.provider): S.approved,
    (S.submitted, A.set_conditions, P.provider): S.conditions_pending,
    (S.conditions_pending, A.accept_conditions, P.requester): S.approved,
    (S.submitted, A.return_, P.provider): S.returned,
    (S.returned, A.resubmit, P.requester): S.submitted,
    (S.submitted, A.reject, P.provider): S.rejected,
    (S.submitted, A.reassign, P.provider): S.submitted,
    (S.submitted, A.escalate, P.requester): S.submitted,
    (S.submitted, A.escalate, P.bureau): S.submitted,
    **{(s, A.withdraw, P.requester): S.withdrawn
       for s in (S.submitted, S.returned, S.conditions_pending, S.approved)},
    **{(s, A.coordinate, p): s for s in (S.submitted, S.conditions_pending, S.returned)
       for p in (P.bureau, P.coordinator)},
    **{(s, A.tighten, P.provider): s for s in GRANTED},
    **{(s, A.deliver, p): S.delivered for s in GRANTED for p in (P.system, P.requester)},
    **{(s, A.block, P.system): s for s in GRANTED},
    **{(s, A.revoke, P.provider): S.revoked for s in GRANTED},
    **{(s, A.expire, P.system): S.expired for s in GRANTED},
}


@pytest.mark.parametrize("state", list(S), ids=lambda s: s.value)
def test_machine_matches_the_table(state: S) -> None:
    for action, party in itertools.product(A, P):
        expected = LEGAL.get((state, action, party))
        if expected is not None:
            assert next_state(state, action, {party}) is expected, (state, action, party)
        else:
            with pytest.raises(IllegalMove) as refused:
                next_state(state, action, {party}, app_id=7)
            assert refused.value.status == 409
            assert "application 7" in refused.value.detail


def test_closed_states_allow_nothing() -> None:
    for state in (S.rejected, S.withdrawn, S.revoked, S.expired):
        assert legal_actions(state, frozenset(P)) == []


def test_refusals_say_why() -> None:
    with pytest.raises(IllegalMove, match="it is approved; approve is allowed only when it is "
                                          "submitted"):
        next_state(S.approved, A.approve, {P.provider})
    with pytest.raises(IllegalMove, match="Only approvers of the provider department"):
        next_state(S.submitted, A.approve, {P.requester, P.bureau})


# --- through the API, from every state ----------------------------------------------------------

Call = Callable[[AccessWorld, int], Any]


def _grant_id(app_id: int) -> int:
    with db.session_scope(write=False) as session:
        app = session.get(Application, app_id)
        assert app is not None
        grant = svc.grant_of(session, app)
        return grant.id or 0 if grant else 999_999


CALLS: dict[A, tuple[P, Call]] = {
    A.approve: (P.provider, lambda w, i: w.post(f"/applications/{i}/approve", "GA",
                                                Role.approver, json={})),
    A.set_conditions: (P.provider, lambda w, i: w.post(
        f"/applications/{i}/approve", "GA", Role.approver,
        json={"conditions": ["签署数据使用安全责任承诺书"]})),
    A.accept_conditions: (P.requester, lambda w, i: w.post(
        f"/applications/{i}/accept-conditions", "SCJG", Role.requester)),
    A.return_: (P.provider, lambda w, i: w.post(
        f"/applications/{i}/return", "GA", Role.approver,
        json={"deficiencies": [{"code": "purpose_unclear"}]})),
    A.resubmit: (P.requester, lambda w, i: w.post(
        f"/applications/{i}/resubmit", "SCJG", Role.requester,
        json={"purpose": "核验企业登记人员身份（修订）"})),
    A.reject: (P.provider, lambda w, i: w.post(
        f"/applications/{i}/reject", "GA", Role.approver,
        json={"reason": "security_risk", "text": "涉及重点人员"})),
    A.withdraw: (P.requester, lambda w, i: w.post(f"/applications/{i}/withdraw", "SCJG",
                                                  Role.requester, json={})),
    A.reassign: (P.provider, lambda w, i: w.post(f"/applications/{i}/reassign", "GA",
                                                 Role.approver,
                                                 json={"assignee": "ga-approver"})),
    A.escalate: (P.requester, lambda w, i: w.post(f"/applications/{i}/escalate", "SCJG",
                                                  Role.requester, json={"note": "已超期"})),
    A.coordinate: (P.bureau, lambda w, i: w.post(
        f"/applications/{i}/coordination", "SJJ", Role.auditor,
        json={"kind": "remind", "note": "请在三个工作日内答复"})),
    A.tighten: (P.provider, lambda w, i: w.post(
        f"/applications/{i}/masking", "GA", Role.approver,
        json={"masking": {"name": {"rule": "suppress"}}})),
    A.deliver: (P.requester, lambda w, i: w.post(f"/applications/{i}/deliver", "SCJG",
                                                 Role.requester)),
    A.revoke: (P.provider, lambda w, i: w.post(f"/grants/{_grant_id(i)}/revoke", "GA",
                                               Role.approver, json={"reason": "停止共享"})),
}

_ITEMS = ["id_number", "name", "mobile", "birth_date", "address", "income", "district",
          "household_size"]


def _item_sets() -> Iterator[list[str]]:
    """Distinct item sets (so the applications are never duplicates of each other), all with
    ``name``, which the tightening call suppresses."""
    others = [i for i in _ITEMS if i != "name"]
    for n in range(1, len(others) + 1):
        for combo in itertools.combinations(others, n):
            yield ["name", *combo]


def _reach(code: str, items: list[str], state: S) -> int:
    """An application in ``state``, reached through real moves."""
    with db.session_scope() as session:
        scjg = principal_of(session, "scjg-requester")
        ga = principal_of(session, "ga-approver")
        app = svc.file_application(session, scjg, ApplicationIn.model_validate(
            application(code, items)))
        app_id = app.id or 0
        if state is S.returned:
            svc.return_application(session, ga, app_id, ReturnIn.model_validate(
                {"deficiencies": [{"code": "other", "note": "补充材料"}]}))
        elif state is S.conditions_pending:
            svc.approve(session, ga, app_id, ApprovalIn(conditions=["承诺书"]))
        elif state is S.rejected:
            svc.reject(session, ga, app_id, RejectIn(reason="other", text="不符合"))
        elif state is S.withdrawn:
            svc.withdraw(session, scjg, app_id, "不再需要")
        elif state in (S.approved, S.delivered, S.revoked, S.expired):
            svc.approve(session, ga, app_id, ApprovalIn())
        # Preconditions of escalation and coordination, harmless for everything else.
        app.due_date = app.filed_at.date() - timedelta(days=1)
        app.escalated_at = utcnow()
    if state in (S.delivered, S.revoked, S.expired):
        delivery.deliver(app_id)
    with db.session_scope() as session:
        if state is S.revoked:
            grant = svc.grant_of(session, svc.load(session, app_id))
            assert grant is not None
            svc.revoke(session, principal_of(session, "ga-approver"), grant.id or 0, "停")
        elif state is S.expired:
            svc.expire_due(session, utcnow() + timedelta(days=400))
    return app_id


def _state(app_id: int) -> S:
    with db.session_scope(write=False) as session:
        return svc.load(session, app_id).state


def _expected(state: S, action: A, party: P) -> S | None:
    target = LEGAL.get((state, action, party))
    # A move into "approved" is followed at once by the delivery (a job, drained here).
    return S.delivered if target is S.approved else target


def test_every_user_action_from_every_state(aw: AccessWorld, tmp_path: Path) -> None:
    code = register(tmp_path)
    item_sets = _item_sets()
    shared: dict[S, int] = {}  # illegal moves change nothing, so one application serves them
    wrong = []
    for state, (action, (party, call)) in itertools.product(S, CALLS.items()):
        expected = _expected(state, action, party)
        if expected is None:
            app_id = shared.get(state) or shared.setdefault(
                state, _reach(code, next(item_sets), state))
        else:
            app_id = _reach(code, next(item_sets), state)
        response = call(aw, app_id)
        if expected is not None:
            # "deliver now" is queued (202) and the worker (drained) delivers it; asked again
            # when delivered, the period's package is the answer (200).
            queued = action is A.deliver and state is S.approved
            ok = response.status_code == (202 if queued else 200) and \
                _state(app_id) is expected
        else:
            no_grant = action is A.revoke and response.status_code == 404
            ok = (response.status_code == 409 or no_grant) and _state(app_id) is state and \
                response.headers["content-type"] == "application/problem+json"
        if not ok:
            wrong.append((state.value, action.value, response.status_code, _state(app_id).value,
                          response.text[:200]))
    assert wrong == []


def test_the_three_named_illegal_moves(aw: AccessWorld, tmp_path: Path) -> None:
    code = register(tmp_path)
    app_id = _reach(code, ["name"], S.submitted)
    first = aw.post(f"/applications/{app_id}/approve", "GA", Role.approver, json={})
    assert first.status_code == 200
    twice = aw.post(f"/applications/{app_id}/approve", "GA", Role.approver, json={})
    assert twice.status_code == 409
    assert twice.json()["type"].endswith("/illegal-transition")
    assert "it is delivered" in twice.json()["detail"]

    other = _reach(code, ["mobile"], S.submitted)
    wrong_dept = aw.post(f"/applications/{other}/approve", "RS", Role.approver, json={})
    assert wrong_dept.status_code == 409
    assert "Only approvers of the provider department" in wrong_dept.json()["detail"]
    assert _state(other) is S.submitted

    rejected = _reach(code, ["address"], S.rejected)
    r = aw.post(f"/applications/{rejected}/deliver", "SCJG", Role.requester)
    assert r.status_code == 409 and "it is rejected" in r.json()["detail"]
    with db.session_scope(write=False) as session:
        assert svc.grant_of(session, svc.load(session, rejected)) is None
        assert session.get(Grant, 999_999) is None


def test_history_keeps_every_move(aw: AccessWorld, tmp_path: Path) -> None:
    code = register(tmp_path)
    app_id = _reach(code, ["name"], S.returned)
    aw.post(f"/applications/{app_id}/resubmit", "SCJG", Role.requester,
            json={"purpose": "核验企业登记人员身份（修订）"})
    aw.post(f"/applications/{app_id}/approve", "GA", Role.approver, json={})
    steps = aw.get(f"/applications/{app_id}/history", "SCJG", Role.requester).json()
    assert [(s["action"], s["to_state"]) for s in steps] == [
        ("file", "submitted"), ("return", "returned"), ("resubmit", "submitted"),
        ("approve", "approved"), ("deliver", "delivered")]
    assert steps[2]["detail"]["changes"]["purpose"][1] == "核验企业登记人员身份（修订）"
    assert steps[0]["actor"] == "scjg-requester" and steps[1]["actor_department"] == "GA"
    assert steps[4]["actor"] is None  # govshare itself delivered


def test_a_resubmission_keeps_a_start_that_passed_while_it_waited(
        aw: AccessWorld, tmp_path: Path) -> None:
    """Weeks may pass between filing and resubmitting: the original start having passed is
    not a deficiency, but a start the requester types now must not be in the past."""
    code = register(tmp_path)
    app_id = _reach(code, ["name"], S.returned)
    with db.session_scope() as session:
        app = svc.load(session, app_id)
        app.period_start -= timedelta(days=20)
        session.add(app)
    past = (utcnow() - timedelta(days=3)).date().isoformat()
    r = aw.post(f"/applications/{app_id}/resubmit", "SCJG", Role.requester,
                json={"period_start": past})
    assert r.status_code == 422 and "cannot start in the past" in r.text
    r = aw.post(f"/applications/{app_id}/resubmit", "SCJG", Role.requester,
                json={"purpose": "核验企业登记人员身份（修订）"})
    assert r.status_code == 200, r.text
    assert _state(app_id) is S.submitted
