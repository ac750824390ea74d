"""The admin console: departments, users with roles, tokens, settings; every change an entry
of the signed log whichever way it is made (console, API, CLI). And the error pages and
problem details people see, in their language."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from fastapi.testclient import TestClient
from sqlmodel import select

from kernel import db, identity
from kernel.identity import Role
from tests.conftest import World
from tests.english import english_sentences
from tests.web_support import csrf_of, sign_in
from translog.models import LogEntry


def _log() -> list[tuple[str, str]]:
    with db.session_scope(write=False) as session:
        return [(e.event_type, e.actor_kind) for e in
                session.exec(select(LogEntry).order_by(LogEntry.seq))]


def test_the_admin_creates_a_department_a_user_with_roles_and_a_token(
        client: TestClient, world: World) -> None:
    sign_in(client, world.tokens[("SJJ", Role.admin)])
    page = client.get("/admin/departments")
    assert page.status_code == 200 and "市公安局" in page.text
    token = csrf_of(page.text)
    client.post("/admin/departments", data={
        "csrf_token": token, "code": "MZJ", "name_zh": "市民政局", "name_en": "Civil Affairs",
        "kind": "district", "level": "district", "parent": "SJJ", "credit_code": ""})
    client.post("/admin/users", data={
        "csrf_token": token, "username": "mzj-zhang", "display_name": "张科员",
        "department": "MZJ", "roles": ["requester", "approver"], "password": ""})
    user_page = client.get("/admin/users/mzj-zhang")
    assert "张科员" in user_page.text
    issued = client.post("/admin/users/mzj-zhang/tokens", data={
        "csrf_token": token, "name": "first", "days": "7"})
    plain = issued.text.split('id="new-token">')[1].split("<")[0]
    me = client.get("/api/v1/me", headers={"Authorization": f"Bearer {plain}"}).json()
    assert me["department"] == "MZJ" and set(me["roles"]) == {"requester", "approver"}
    client.post("/admin/users/mzj-zhang/roles", data={
        "csrf_token": token, "department": "MZJ", "roles": ["requester"]})
    client.post("/admin/users/mzj-zhang/disable", data={"csrf_token": token})
    assert client.get("/api/v1/me",
                      headers={"Authorization": f"Bearer {plain}"}).status_code == 401
    with db.session_scope(write=False) as session:
        dept = identity.get_department(session, "MZJ")
        assert dept.parent_id == identity.get_department(session, "SJJ").id
    kinds = [k for k, _ in _log()]
    for kind in ("department.created", "user.created", "token.issued", "user.updated",
                 "user.disabled"):
        assert kind in kinds, kind
    assert all(actor == "user" for k, actor in _log() if k != "user.signed_in")
    tokens = client.get("/admin/tokens")
    assert "first" in tokens.text and plain not in tokens.text
    settings = client.get("/admin/settings")
    assert "GOVSHARE_SESSION_HOURS" in settings.text and "test-passphrase" not in settings.text


def test_the_console_is_for_admins_only(client: TestClient, world: World) -> None:
    sign_in(client, world.tokens[("GA", Role.publisher)])
    page = client.get("/admin/users")
    assert page.status_code == 403 and "<main>" in page.text
    assert 'href="/admin"' not in page.text  # not in the navigation either


def test_a_bad_credit_code_is_refused_in_chinese(client: TestClient, world: World) -> None:
    sign_in(client, world.tokens[("SJJ", Role.admin)])
    page = client.get("/admin/departments")
    bad = client.post("/admin/departments", data={
        "csrf_token": csrf_of(page.text), "code": "MZJ", "name_zh": "市民政局",
        "name_en": "Civil Affairs", "kind": "line", "level": "municipal",
        "credit_code": "91350100M000100Y44"})
    assert bad.status_code == 422 and "统一社会信用代码" in bad.text


def test_cli_token_commands_leave_log_entries_and_refuse_zero_days(data_dir: Path,
                                                                   world: World) -> None:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent)}
    govshare = [sys.executable, "-c", "from govshare.cli import main; main()"]
    zero = subprocess.run([*govshare, "token", "issue", "ga-leader", "--days", "0"], env=env,
                          capture_output=True, text=True, check=False)
    assert zero.returncode != 0 and "--days" in zero.stderr
    issued = subprocess.run([*govshare, "token", "issue", "ga-leader", "--days", "3"], env=env,
                            capture_output=True, text=True, check=True)
    assert "token" in issued.stdout and "datetime" not in issued.stdout
    assert "nanobind" not in issued.stderr
    token_id = issued.stdout.split("id")[1].split()[0]
    subprocess.run([*govshare, "token", "revoke", token_id], env=env, check=True,
                   capture_output=True)
    listed = subprocess.run([*govshare, "user", "list"], env=env, capture_output=True,
                            text=True, check=True).stdout
    assert "┃ username" in listed and "Role." not in listed and "<" not in listed
    entries = [e for e in _log() if e[0].startswith("token.")]
    assert entries == [("token.issued", "system"), ("token.revoked", "system")]


def test_problem_details_follow_accept_language(client: TestClient, world: World) -> None:
    zh = client.get("/api/v1/me", headers={"Accept-Language": "zh-CN,zh;q=0.9,en;q=0.5"})
    assert zh.status_code == 401 and zh.headers["content-type"] == "application/problem+json"
    assert zh.json()["title"] == "需要登录" and "API 令牌" in zh.json()["detail"]
    en = client.get("/api/v1/me", headers={"Accept-Language": "en-GB,zh;q=0.1"})
    assert en.json()["detail"].startswith("Send your API token")
    plain = client.get("/api/v1/me")
    assert plain.json()["title"] == "Sign-in required"  # no preference: English for scripts
    bad = client.post("/api/v1/departments", json={"code": ""},
                      headers={**world.headers("SJJ", Role.admin), "Accept-Language": "zh"})
    assert bad.status_code == 422 and bad.json()["detail"].startswith("以下字段缺失或有误")


def test_browser_routes_get_error_pages_in_the_ui_frame(client: TestClient,
                                                        world: World) -> None:
    sign_in(client, world.tokens[("GA", Role.requester)])
    html = {"Accept": "text/html,application/xhtml+xml"}
    missing = client.get("/no/such/page", headers=html)
    assert missing.status_code == 404 and missing.headers["content-type"].startswith("text/html")
    assert "此地址没有页面" in missing.text and 'class="top"' in missing.text
    api = client.get("/api/v1/no-such-thing", headers=html)
    assert api.headers["content-type"] == "application/problem+json"
    long_query = client.get("/catalog?q=" + "人" * 600, headers=html)
    assert long_query.headers["content-type"].startswith("text/html")


def test_each_dashboard_figure_links_to_its_applications(client: TestClient,
                                                         world: World) -> None:
    sign_in(client, world.tokens[("SJJ", Role.leader)])
    page = client.get("/dashboard?from=2026-01-01&to=2026-12-31")
    assert 'href="/dashboard/applications?list=delivered&amp;sharing_type=conditional' \
        in page.text
    listed = client.get("/dashboard/applications?list=delivered&sharing_type=conditional"
                        "&from=2026-01-01&to=2026-12-31&department=")
    assert listed.status_code == 200 and "没有申请" in listed.text
    bad = client.get("/dashboard/applications?list=everything")
    assert bad.status_code == 422


def test_resource_pages_show_owner_contact_and_a_non_personal_column_profile(
        client: TestClient, world: World) -> None:
    from tests.factories import population_meta, population_rows, to_csv

    with db.session_scope() as session:
        dept = identity.get_department(session, "GA")
        dept.commissioner, dept.contact = "王专员", "0755-12345678"
    created = client.post("/api/v1/resources", headers=world.headers("GA", Role.publisher),
                          files={"metadata": (None, __import__("json").dumps(population_meta())),
                                 "file": ("p.csv", to_csv(population_rows(6)), "text/csv")})
    assert created.status_code == 201, created.text
    code = created.json()["code"]
    sign_in(client, world.tokens[("SCJG", Role.requester)])  # another department
    page = client.get(f"/catalog/{code}").text
    assert "王专员" in page and "0755-12345678" in page
    profile = page.split('id="column-profile"')[1].split("</table>")[0]
    with db.session_scope(write=False) as session:
        from catalog.models import Resource, Sensitivity

        resource = session.exec(select(Resource).where(Resource.code == code)).one()
        shown = {i.name for i in resource.items if i.sensitivity is Sensitivity.none}
        hidden = {i.name for i in resource.items if i.sensitivity is not Sensitivity.none}
    assert shown and hidden
    assert all(f"<code>{n}</code>" in profile for n in shown)
    assert not any(f"<code>{n}</code>" in profile for n in hidden)  # personal: never profiled


# --- signing keys and background work ---------------------------------------------------------

def _visible_english(html: str) -> list[str]:
    """English sentences in a page's text, leaving out code, scripts and English-marked text
    (as the zh-CN browser run does)."""
    body = html.split("<body", 1)[1]
    body = re.sub(r"<(code|script|style)\b.*?</\1>", " ", body, flags=re.S)
    body = re.sub(r'<[^>]*lang="en"[^>]*>.*?</[^>]+>', " ", body, flags=re.S)
    return english_sentences(re.sub(r"<[^>]+>", " ", body))


def _jobs_world() -> dict[str, int]:
    """One job in each state the console shows (rows as the worker leaves them)."""
    from datetime import UTC, datetime, timedelta

    from kernel.jobs import Job

    now = datetime.now(UTC)
    rows = {
        "queued": Job(kind="test.report", payload={}, run_at=now + timedelta(hours=1)),
        "failed": Job(kind="test.report", payload={}, attempts=2, error="OSError: disk gone",
                      run_at=now + timedelta(minutes=20)),
        "running": Job(kind="test.pull", state="running", attempts=1,
                       claimed_by="worker-7:4242:abc", started_at=now,
                       lease_until=now + timedelta(seconds=30)),
        "dead": Job(kind="test.pull", state="failed", attempts=5, key="pull:GA-1",
                    error="RuntimeError: the source refused the password", finished_at=now),
    }
    with db.session_scope() as session:
        for job in rows.values():
            session.add(job)
        session.flush()
        return {name: job.id or 0 for name, job in rows.items()}


def test_background_work_is_listed_by_state_and_a_dead_job_is_retried(
        client: TestClient, world: World) -> None:
    from kernel.jobs import Job

    ids = _jobs_world()
    sign_in(client, world.tokens[("SJJ", Role.admin)])
    page = client.get("/admin/jobs")
    assert page.status_code == 200 and all(f'id="job-{i}"' in page.text for i in ids.values())
    dead = client.get("/admin/jobs?state=dead&kind=test.pull").text
    assert f'id="job-{ids["dead"]}"' in dead and f'id="job-{ids["running"]}"' not in dead
    assert "the source refused the password" in dead and "已放弃" in dead
    running = client.get("/admin/jobs?state=running").text
    assert "worker-7:4242:abc" in running and f'id="job-{ids["queued"]}"' not in running
    failed = client.get("/admin/jobs?state=failed").text
    assert "OSError: disk gone" in failed and "失败待重试" in failed
    assert _visible_english(page.text) == [] and _visible_english(running) == []
    # Retry: the dead job runs again with a fresh round of attempts, on record.
    retried = client.post(f"/admin/jobs/{ids['dead']}/retry",
                          data={"csrf_token": csrf_of(page.text)}, follow_redirects=False)
    assert retried.status_code == 303 and "ok=job_retried" in retried.headers["location"]
    with db.session_scope(write=False) as session:
        job = session.get(Job, ids["dead"])
        assert job is not None and (job.state, job.attempts) == ("pending", 0)
    assert ("job.retried", "user") in _log()
    # A queued job is not "retried"; the refusal is in Chinese.
    refused = client.post(f"/admin/jobs/{ids['queued']}/retry",
                          data={"csrf_token": csrf_of(page.text)})
    assert refused.status_code == 409 and "排队中" in refused.text
    assert client.get("/admin/jobs?state=bogus").status_code == 422


def test_a_dead_job_enqueued_again_since_is_not_revived_twice(client: TestClient,
                                                               world: World) -> None:
    from kernel import jobs

    ids = _jobs_world()
    with db.session_scope() as session:
        jobs.enqueue(session, "test.pull", {}, key="pull:GA-1")  # the same work, queued again
    sign_in(client, world.tokens[("SJJ", Role.admin)])
    page = client.get("/admin/jobs")
    again = client.post(f"/admin/jobs/{ids['dead']}/retry",
                        data={"csrf_token": csrf_of(page.text)})
    assert again.status_code == 409 and "重新加入队列" in again.text


def test_the_admin_rotates_the_signing_key_from_the_console(client: TestClient,
                                                           world: World) -> None:
    from translog import keys as log_keys
    from translog import service as log_service

    with db.session_scope() as session:
        old = log_service.ensure_key(session).key_id
    sign_in(client, world.tokens[("SJJ", Role.admin)])
    page = client.get("/admin/keys")
    assert page.status_code == 200 and old in page.text and 'id="rotate-key"' in page.text
    unconfirmed = client.post("/admin/keys/rotate", data={"csrf_token": csrf_of(page.text)})
    assert unconfirmed.status_code == 422 and "请勾选确认" in unconfirmed.text
    done = client.post("/admin/keys/rotate", data={"csrf_token": csrf_of(page.text),
                                                   "confirm": "rotate"})
    assert done.status_code == 200 and 'id="new-key"' in done.text
    with db.session_scope(write=False) as session:
        keys = {k.key_id: k for k in log_keys.all_keys(session)}
        entry = session.exec(select(LogEntry).where(
            LogEntry.event_type == "log.key_rotated")).one()
    new = next(k for k, v in keys.items() if v.retired_at is None)
    assert new != old and keys[old].retired_at is not None
    assert new in done.text and entry.actor_kind == "user"
    assert _visible_english(done.text) == []
    assert entry.subjects == {"key": new, "previous_key": old}


def test_keys_and_jobs_are_for_admins_only_and_need_the_form_token(client: TestClient,
                                                                  world: World) -> None:
    ids = _jobs_world()
    sign_in(client, world.tokens[("SJJ", Role.auditor)])  # the data bureau, but no admin
    page = client.get("/catalog")
    for path in ("/admin/jobs", "/admin/keys"):
        assert client.get(path).status_code == 403
    csrf = {"csrf_token": csrf_of(page.text)}
    assert client.post(f"/admin/jobs/{ids['dead']}/retry", data=csrf).status_code == 403
    assert client.post("/admin/keys/rotate",
                       data={**csrf, "confirm": "rotate"}).status_code == 403
    sign_in(client, world.tokens[("SJJ", Role.admin)])
    assert client.post(f"/admin/jobs/{ids['dead']}/retry").status_code == 403  # no CSRF token
    assert ("job.retried", "user") not in _log()
    assert all(kind != "log.key_rotated" for kind, _ in _log())
