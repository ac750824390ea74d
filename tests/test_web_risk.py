"""The risk panel of the application page without a browser: the approver sees the report
before deciding, asks for a suggestion, and approves the pre-filled form as it stands (one
click); the requester sees the report only once decided (tests/browser repeats it)."""

from __future__ import annotations

import time
from html.parser import HTMLParser
from pathlib import Path

from fastapi.testclient import TestClient

from access.models import Delivery
from kernel import db
from kernel.identity import Role
from tests.conftest import World
from tests.test_access_support import application, people_rows, register
from tests.web_support import sign_in


class _Form(HTMLParser):
    """The fields a browser would submit from one form, as it stands."""

    def __init__(self, form_id: str) -> None:
        super().__init__()
        self.form_id, self.inside, self.select = form_id, False, ""
        self.fields: list[tuple[str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.inside = a.get("id") == self.form_id
        if not self.inside:
            return
        if tag == "input" and a.get("name"):
            if a.get("type") == "checkbox" and "checked" not in a:
                return
            self.fields.append((a["name"], a.get("value", "")))
        elif tag == "select":
            self.select = a.get("name", "")
        elif tag == "option" and "selected" in a and self.select:
            self.fields.append((self.select, a.get("value", "")))

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self.inside = False


def form_of(html: str, form_id: str) -> list[tuple[str, str]]:
    parser = _Form(form_id)
    parser.feed(html)
    return parser.fields


def test_the_report_beside_the_plan_and_a_one_click_suggestion(
        client: TestClient, world: World, tmp_path: Path) -> None:
    code = register(tmp_path, rows=people_rows(60))
    filed = client.post("/api/v1/applications", headers=world.headers("SCJG", Role.requester),
                        json=application(code, items=["id_number", "birth_date", "district",
                                                      "household_size", "income"]))
    assert filed.status_code == 201, filed.text
    url = f"/applications/{filed.json()['id']}"

    sign_in(client, world.tokens[("SCJG", Role.requester)])
    assert 'id="risk-report"' not in client.get(url).text  # not before the decision

    sign_in(client, world.tokens[("GA", Role.approver)])
    page = client.get(url).text
    assert 'id="risk-report"' in page and 'id="risk-k" class="bad">1<' in page
    assert 'id="qi-birth_date" checked' in page and 'id="sensitive-income" checked' in page
    suggested = client.get(f"{url}?suggest=1&k=3&suppression=10").text
    assert 'id="suggestion" class="flash"' in suggested, suggested.split('id="risk"')[1][:2000]
    fields = form_of(suggested, "approve-form")
    assert ("k_min", "3") in fields, fields
    data: dict[str, list[str]] = {}
    for name, value in fields:
        data.setdefault(name, []).append(value)
    approved = client.post(f"{url}/approve", data=data, follow_redirects=False)
    assert approved.status_code == 303, approved.text

    for _ in range(100):  # delivered by a background task after the approval's commit
        with db.session_scope(write=False) as session:
            done = session.query(Delivery).all()
        if done:
            break
        time.sleep(0.1)
    (delivery,) = done
    assert delivery.manifest["risk"]["k"] >= 3
    assert delivery.manifest["risk"]["k_target"] == 3

    sign_in(client, world.tokens[("SCJG", Role.requester)])
    after = client.get(url).text
    assert 'id="risk-report"' in after and 'id="suggest-form"' not in after


def test_an_aggregate_application_through_the_forms(client: TestClient, world: World,
                                                    tmp_path: Path) -> None:
    code = register(tmp_path, rows=people_rows(80))
    sign_in(client, world.tokens[("SCJG", Role.requester)])
    form = client.get(f"/requests/new?resource={code}").text
    assert 'id="aggregate-fields"' in form and 'value="aggregate"' in form
    fields = dict(form_of(form, "apply-form"))
    filed = client.post("/requests/new", follow_redirects=False, data={
        "csrf_token": fields["csrf_token"], "resource": code, "purpose": "各区住户规模统计",
        "legal_basis": "《统计法》", "items": ["district", "household_size"],
        "period_end": fields["period_end"], "delivery_method": "aggregate",
        "file_format": "csv", "schedule": "monthly", "agg_group_by": ["district"],
        "agg_mean": "household_size", "agg_lower": "1", "agg_upper": "10",
        "agg_epsilon": "1", "agg_budget": "3", "agg_min_count": "5"})
    assert filed.status_code == 303, filed.text
    url = filed.headers["location"].split("?")[0]
    sign_in(client, world.tokens[("GA", Role.approver)])
    page = client.get(url).text
    approved = client.post(f"{url}/approve", data={k: v for k, v in form_of(page, "approve-form")},
                           follow_redirects=False)
    assert approved.status_code == 303, approved.text
    for _ in range(100):
        with db.session_scope(write=False) as session:
            done = session.query(Delivery).all()
        if done:
            break
        time.sleep(0.1)
    assert done and done[0].manifest["aggregate"]["privacy_spent"] == 1.0
    sign_in(client, world.tokens[("SCJG", Role.requester)])
    assert "ε 1 / 3" in client.get(url).text
