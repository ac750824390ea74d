"""The web UI after the decision is due or made: escalation and the bureau's coordination,
revocation, bundles (一件事) and API-query grants, through the real app's forms. Each form
works for the right role and department, and is refused without its CSRF token and for a
department with no part in the application (403 page, nothing changed)."""

from __future__ import annotations

import re
from datetime import date, timedelta

from fastapi.testclient import TestClient

from access.models import Application, ApplicationState, Grant
from govshare.web import i18n
from kernel.db import session_scope
from kernel.identity import Role
from tests.conftest import World
from tests.factories import population_rows, to_csv
from tests.test_web import _register_form
from tests.web_support import csrf_of, page_csrf, sign_in


def _register(client: TestClient, world: World, dept: str, hint: str,
              sharing_type: str = "conditional") -> str:
    sign_in(client, world.tokens[(dept, Role.publisher)])
    form = _register_form(hint) | {"csrf_token": page_csrf(client, "/publish/new"),
                                   "sharing_type": sharing_type}
    created = client.post("/publish/new", data=form, headers={"Accept": "application/json"},
                          files={"file": ("p.csv", to_csv(population_rows(6)), "text/csv")})
    assert created.status_code == 200, created.text
    return str(created.json()["redirect"].split("/")[2].split("?")[0])


def _file(client: TestClient, world: World, code: str, method: str = "file") -> int:
    sign_in(client, world.tokens[("SCJG", Role.requester)])
    page = client.get(f"/requests/new?resource={code}")
    filed = client.post("/requests/new", follow_redirects=False, data={
        "csrf_token": csrf_of(page.text), "resource": code, "purpose": "核验身份信息",
        "legal_basis": "条例", "items": ["id_number", "name", "household_size"],
        "delivery_method": method,
        "period_end": (date.today() + timedelta(days=30)).isoformat()})
    assert filed.status_code == 303, filed.text
    return int(filed.headers["location"].split("/")[2].split("?")[0])


def _app(app_id: int) -> Application:
    with session_scope(write=False) as session:
        app = session.get(Application, app_id)
        assert app is not None
        session.expunge(app)
        return app


def _make_overdue(app_id: int) -> None:
    with session_scope(write=True) as session:
        app = session.get(Application, app_id)
        assert app is not None
        app.due_date = date.today() - timedelta(days=9)  # at least 5 working days late


def _refused(response_status: int, text: str) -> None:
    assert response_status == 403, text


# --- escalation and coordination -----------------------------------------------------------------

def test_an_overdue_application_is_escalated_and_coordinated_through_the_forms(
        client: TestClient, world: World) -> None:
    app_id = _file(client, world, _register(client, world, "GA", "Escalation"))
    url = f"/applications/{app_id}"
    page = client.get(url)
    assert 'id="escalate-form"' not in page.text  # not overdue yet
    early = client.post(f"{url}/escalate", data={"csrf_token": csrf_of(page.text)})
    assert early.status_code == 409 and "尚未超期" in early.text  # the zh-CN page

    _make_overdue(app_id)
    page = client.get(url)
    assert 'id="escalate-form"' in page.text
    overdue = re.search(r'id="overdue-state">([^<]+)<', page.text)
    assert overdue and str(_app(app_id).due_date) in overdue.group(1)
    assert re.search(r"已逾期 \d+ 个工作日", overdue.group(1))
    token = csrf_of(page.text)

    # without the token, and from a department with no part in it: refused, nothing changed
    assert client.post(f"{url}/escalate", data={"note": "x"}).status_code == 403
    sign_in(client, world.tokens[("SJJ", Role.requester)])
    outsider = client.post(f"{url}/escalate", data={"csrf_token": page_csrf(client)})
    assert outsider.status_code == 403 and "无权访问" in outsider.text
    assert _app(app_id).escalations == 0

    # the bureau cannot coordinate before the escalation
    sign_in(client, world.tokens[("SJJ", Role.auditor)])
    assert f'href="/applications/{app_id}"' not in client.get("/coordination").text
    too_soon = client.post(f"{url}/coordination", data={
        "csrf_token": page_csrf(client), "kind": "remind", "note": "请答复"})
    assert too_soon.status_code == 409

    sign_in(client, world.tokens[("SCJG", Role.requester)])
    token = page_csrf(client, url)
    done = client.post(f"{url}/escalate", data={"csrf_token": token, "note": "已超期"},
                       follow_redirects=False)
    assert done.status_code == 303 and done.headers["location"].endswith("?ok=escalated")
    assert _app(app_id).escalations == 1
    page = client.get(url)
    assert 'id="escalated-at"' in page.text and 'id="escalate-form"' in page.text
    assert 'id="coordination-form"' not in page.text  # the requester cannot coordinate

    # the bureau's in-tray lists it; the auditor navigates there and records coordination
    sign_in(client, world.tokens[("SJJ", Role.auditor)])
    intray = client.get("/coordination")
    assert intray.status_code == 200 and 'href="/coordination"' in intray.text
    assert f'href="/applications/{app_id}"' in intray.text and "尚未协调" in intray.text
    page = client.get(url)
    assert 'id="coordination-form"' in page.text and "不代替提供方" in page.text
    assert 'id="approve-form"' not in page.text
    token = csrf_of(page.text)
    assert client.post(f"{url}/coordination",
                       data={"kind": "remind", "note": "请答复"}).status_code == 403
    bad = client.post(f"{url}/coordination", data={"csrf_token": token, "kind": "decide",
                                                   "note": "同意"})
    assert bad.status_code == 422
    for kind, note in [("remind", "请三日内答复"), ("convene", "召开协调会"),
                       ("outcome", "提供方同意脱敏后共享")]:
        r = client.post(f"{url}/coordination", follow_redirects=False,
                        data={"csrf_token": token, "kind": kind, "note": note})
        assert r.status_code == 303, r.text
    assert _app(app_id).state is ApplicationState.submitted  # never decided by the bureau
    page = client.get(url + "?lang=en")
    assert "Meeting convened" in page.text and "提供方同意脱敏后共享" in page.text
    assert "Outcome" in client.get("/coordination").text

    # another department's auditor: no in-tray, no coordination
    sign_in(client, world.tokens[("GA", Role.auditor)])
    assert client.get("/coordination").status_code == 403
    sign_in(client, world.tokens[("SCJG", Role.auditor)])
    refused = client.post(f"{url}/coordination", data={
        "csrf_token": page_csrf(client), "kind": "remind", "note": "催办"})
    assert refused.status_code == 409  # involved department, but not the bureau
    with session_scope(write=False) as session:
        from access import service as svc
        assert [s.action for s in svc.steps(session, app_id)].count("coordinate") == 3

    # once the provider decides, the bureau's page lists it as settled, with the provider
    sign_in(client, world.tokens[("GA", Role.approver)])
    page = client.get(url)
    assert client.post(f"{url}/approve", data={"csrf_token": csrf_of(page.text)},
                       follow_redirects=False).status_code == 303
    sign_in(client, world.tokens[("SJJ", Role.auditor)])
    settled = client.get("/coordination").text.split("协调后已办结")[1]
    assert f'href="/applications/{app_id}"' in settled and "市公安局" in settled


# --- revocation -----------------------------------------------------------------------------------

def test_the_provider_revokes_a_delivered_grant_with_a_reason(client: TestClient,
                                                               world: World) -> None:
    code = _register(client, world, "GA", "Revocation", sharing_type="unconditional")
    app_id = _file(client, world, code)
    url = f"/applications/{app_id}"
    assert _app(app_id).state is ApplicationState.delivered
    assert 'id="revoke-form"' not in client.get(url).text  # the requester cannot revoke

    sign_in(client, world.tokens[("GA", Role.approver)])
    page = client.get(url)
    assert 'id="revoke-form"' in page.text
    grant_id = int(re.search(r'action="/grants/(\d+)/revoke"', page.text).group(1))  # type: ignore[union-attr]
    token = csrf_of(page.text)
    assert client.post(f"/grants/{grant_id}/revoke", data={"reason": "泄露风险"}
                       ).status_code == 403
    no_reason = client.post(f"/grants/{grant_id}/revoke", data={"csrf_token": token,
                                                                "reason": " "})
    assert no_reason.status_code == 422

    sign_in(client, world.tokens[("SJJ", Role.approver)])
    outsider = client.post(f"/grants/{grant_id}/revoke", data={
        "csrf_token": page_csrf(client, "/inbox"), "reason": "泄露风险"})
    assert outsider.status_code == 403 and "无权访问" in outsider.text
    with session_scope(write=False) as session:
        assert session.get(Grant, grant_id).revoked_at is None  # type: ignore[union-attr]

    sign_in(client, world.tokens[("GA", Role.approver)])
    done = client.post(f"/grants/{grant_id}/revoke", follow_redirects=False,
                       data={"csrf_token": page_csrf(client, url), "reason": "用途已变更"})
    assert done.status_code == 303 and done.headers["location"] == f"{url}?ok=revoked"
    assert _app(app_id).state is ApplicationState.revoked
    sign_in(client, world.tokens[("SCJG", Role.requester)])
    page = client.get(url)
    assert 'id="revoked"' in page.text and "用途已变更" in page.text


# --- API-query grants -----------------------------------------------------------------------------

def test_the_requester_queries_an_api_grant_and_sees_masked_rows(client: TestClient,
                                                                 world: World) -> None:
    code = _register(client, world, "GA", "Query", sharing_type="unconditional")
    app_id = _file(client, world, code, method="api")
    url = f"/applications/{app_id}"
    page = client.get(url)
    assert _app(app_id).state is ApplicationState.delivered, page.text
    assert 'id="query-form"' in page.text
    grant_id = int(re.search(r'action="/grants/(\d+)/query"', page.text).group(1))  # type: ignore[union-attr]
    token = csrf_of(page.text)
    assert client.post(f"/grants/{grant_id}/query", data={"page": "1"}).status_code == 403

    result = client.post(f"/grants/{grant_id}/query", data={"csrf_token": token, "page": "1"})
    assert result.status_code == 200, result.text
    rows = re.findall(r"<tr>(<td>.*?)</tr>", result.text.split('id="query-rows"')[1])
    assert len(rows) == 6
    raw = population_rows(6)
    assert all(r["id_number"] not in result.text for r in raw)  # pseudonymized
    assert "household_size" in result.text
    size = raw[0]["household_size"]
    filtered = client.post(f"/grants/{grant_id}/query", data={
        "csrf_token": token, "column": "household_size", "op": "eq", "value": str(size),
        "page": "1"})
    assert filtered.status_code == 200
    expected = sum(1 for r in raw if str(r["household_size"]) == str(size))
    body = filtered.text.split('id="query-rows"')[1]
    assert len(re.findall(r"<tr><td>", body)) == expected

    # the provider and another department cannot query
    for dept, role in [("GA", Role.approver), ("SJJ", Role.requester)]:
        sign_in(client, world.tokens[(dept, role)])
        refused = client.post(f"/grants/{grant_id}/query", data={
            "csrf_token": page_csrf(client), "page": "1"})
        assert refused.status_code == 403, (dept, role)


# --- bundles (一件事) ---------------------------------------------------------------------

def test_bundles_show_their_parts_and_the_coordinator_reminds(client: TestClient,
                                                              world: World) -> None:
    first = _register(client, world, "GA", "Bundle GA")
    second = _register(client, world, "SJJ", "Bundle SJJ")
    part = {"purpose": "企业开办一件事", "legal_basis": "条例", "items": ["id_number", "name"],
            "period_end": (date.today() + timedelta(days=30)).isoformat()}
    filed = client.post("/api/v1/bundles", headers=world.headers("SCJG", Role.requester),
                        json={"title": "企业开办一件事", "parts": [
                            part | {"resource": first}, part | {"resource": second}]})
    assert filed.status_code == 201, filed.text
    bundle_id = filed.json()["id"]

    sign_in(client, world.tokens[("SCJG", Role.requester)])
    mine = client.get("/requests")
    section = mine.text.split(f'id="bundle-{bundle_id}"')[1].split("</section>")[0]
    assert "企业开办一件事" in section and section.count("state-submitted") >= 2
    assert "各部分用时之和" in section and f'id="remind-{bundle_id}"' not in section

    # the coordinator (first part's provider) reminds; the other provider cannot
    sign_in(client, world.tokens[("SJJ", Role.approver)])
    assert f'id="remind-{bundle_id}"' not in client.get("/inbox").text
    other = client.post(f"/bundles/{bundle_id}/remind", data={
        "csrf_token": page_csrf(client, "/inbox"), "note": "请办理"})
    assert other.status_code == 409
    sign_in(client, world.tokens[("GA", Role.approver)])
    inbox = client.get("/inbox")
    assert f'id="remind-{bundle_id}"' in inbox.text
    assert client.post(f"/bundles/{bundle_id}/remind", data={"note": "x"}).status_code == 403
    reminded = client.post(f"/bundles/{bundle_id}/remind", follow_redirects=False,
                           data={"csrf_token": csrf_of(inbox.text), "note": "请尽快办理"})
    assert reminded.status_code == 303 and reminded.headers["location"] == "/inbox?ok=reminded"
    parts = [p["id"] for p in filed.json()["parts"]]
    with session_scope(write=False) as session:
        from access import service as svc
        assert all([s.action for s in svc.steps(session, p)].count("coordinate") == 1
                   for p in parts)


def test_labels_of_coordination_kinds_and_filter_operators_exist() -> None:
    from govshare.web.pages.followup import OPS

    for lang in ("zh-CN", "en"):
        messages = i18n.catalog(lang)
        for key in [*(f"coordination.{k}" for k in ("remind", "convene", "outcome")),
                    *(f"op.{o}" for o in OPS)]:
            assert key in messages, (lang, key)


def test_working_days_overdue_count_from_the_day_after_the_due_date(client: TestClient) -> None:
    from govshare.web.pages.followup import working_days_overdue

    friday = date(2026, 11, 20)
    assert working_days_overdue(friday, friday) == 0
    assert working_days_overdue(friday, date(2026, 11, 22)) == 0  # the weekend is not late
    assert working_days_overdue(friday, date(2026, 11, 23)) == 1
    assert working_days_overdue(friday, date(2026, 11, 27)) == 5
    assert working_days_overdue(None) == 0
