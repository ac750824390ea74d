"""Sign-in for people: local passwords with TOTP, OpenID Connect against a real provider
process (tests/oidc_provider.py), sessions that expire and end at sign-out, and one's own API
tokens. Every refusal is shown in the page's language."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pyotp
import pytest
from fastapi.testclient import TestClient
from sqlmodel import select, text

from govshare import administration
from kernel import db, identity, sessions
from kernel.identity import Role, User
from kernel.settings import get_settings
from tests.conftest import World
from tests.server_support import ROOT, free_port
from tests.web_support import csrf_of, page_csrf
from translog.models import LogEntry

PASSWORD = "correct horse battery"


def _local_user(username: str = "li-local", *, totp: str | None = None) -> None:
    with db.session_scope() as session:
        user = administration.create_user(session, administration.OPERATOR, username=username,
                                          display_name="李四", department="GA",
                                          roles=[Role.requester], password=PASSWORD)
        if totp:
            administration.set_totp(session, administration.OPERATOR, user, totp)


def _password_sign_in(client: TestClient, username: str, password: str,
                      code: str = "") -> httpx.Response:
    client.cookies.clear()
    page = client.get("/signin")
    return client.post("/signin/password", follow_redirects=False, data={
        "username": username, "password": password, "totp": code,
        "csrf_token": csrf_of(page.text)})


def _log_types() -> list[str]:
    with db.session_scope(write=False) as session:
        return [e.event_type for e in session.exec(select(LogEntry).order_by(LogEntry.seq))]


# --- local accounts ---------------------------------------------------------------------------

def test_password_sign_in_shows_the_display_name_and_sign_out_ends_the_session(
        client: TestClient, world: World) -> None:
    _local_user()
    refused = _password_sign_in(client, "li-local", "wrong password!")
    assert refused.status_code == 401 and "用户名或密码不正确" in refused.text
    assert _password_sign_in(client, "nobody", PASSWORD).status_code == 401
    response = _password_sign_in(client, "li-local", PASSWORD)
    assert response.status_code == 303 and response.headers["location"] == "/requests"
    cookie = client.cookies["govshare_session"]
    home = client.get("/catalog")
    assert 'id="me"' in home.text and "李四" in home.text
    assert client.get("/api/v1/me").json()["username"] == "li-local"  # the API takes it too
    client.post("/signout", data={"csrf_token": page_csrf(client)})
    # The copied cookie is dead too: sign-out ended the session on the server.
    client.cookies.set("govshare_session", cookie)
    again = client.get("/catalog", follow_redirects=False)
    assert again.status_code == 303 and "/signin" in again.headers["location"]
    assert client.get("/api/v1/me").status_code == 401
    assert _log_types().count("user.signed_in") == 1


def test_totp_is_asked_for_once_enrolled(client: TestClient, world: World) -> None:
    secret = pyotp.random_base32()
    _local_user(totp=secret)
    missing = _password_sign_in(client, "li-local", PASSWORD)
    assert missing.status_code == 401 and "动态验证码" in missing.text
    wrong = _password_sign_in(client, "li-local", PASSWORD, "000000")
    assert wrong.status_code == 401
    ok = _password_sign_in(client, "li-local", PASSWORD, pyotp.TOTP(secret).now())
    assert ok.status_code == 303


def test_a_person_enrols_totp_and_changes_the_password_on_the_account_page(
        client: TestClient, world: World) -> None:
    _local_user()
    _password_sign_in(client, "li-local", PASSWORD)
    page = client.get("/account?totp=new")
    secret = page.text.split('id="totp-secret">')[1].split("<")[0]
    refused = client.post("/account/totp", data={"csrf_token": csrf_of(page.text),
                                                 "secret": secret, "code": "123456"})
    assert refused.status_code == 422 and "验证码不匹配" in refused.text
    client.post("/account/totp", data={"csrf_token": csrf_of(page.text), "secret": secret,
                                       "code": pyotp.TOTP(secret).now()})
    with db.session_scope(write=False) as session:
        user = identity.get_user(session, "li-local")
        assert identity.totp_secret(user) == secret
        # Sealed at rest: neither the user rows nor the log entries hold the secret.
        stored = str(session.connection().execute(text('SELECT * FROM "user"')).all())
        stored += str(session.connection().execute(text("SELECT * FROM log_entry")).all())
        assert secret not in stored and secret.lower() not in stored
        assert user.totp_secret and user.totp_secret.count("$") == 1
    short = client.post("/account/password", data={"csrf_token": csrf_of(page.text),
                                                   "current": PASSWORD, "new": "short"})
    assert short.status_code == 422 and "密码至少需要 10 个字符" in short.text
    client.post("/account/password", data={"csrf_token": csrf_of(page.text),
                                           "current": PASSWORD, "new": "a much longer one"})
    code = pyotp.TOTP(secret).now()
    assert _password_sign_in(client, "li-local", "a much longer one", code).status_code == 303
    assert {"user.totp_enabled", "user.password_set"} <= set(_log_types())


def test_sessions_expire_and_forged_cookies_are_refused(client: TestClient,
                                                        world: World) -> None:
    _local_user()
    _password_sign_in(client, "li-local", PASSWORD)
    assert client.get("/requests").status_code == 200
    with db.session_scope() as session:
        for web in session.exec(select(sessions.WebSession)):
            web.expires_at = web.expires_at - timedelta(hours=get_settings().session_hours)
    expired = client.get("/requests", follow_redirects=False)
    assert expired.status_code == 303 and "expired=1" in expired.headers["location"]
    assert "登录已失效" in client.get(expired.headers["location"]).text
    client.cookies.set("govshare_session", "forged.value.here")
    assert client.get("/api/v1/me", headers={"Accept-Language": "zh-CN"}).json()["detail"] \
        == "登录会话无效，请重新登录。"


def test_a_disabled_user_can_sign_in_no_more(client: TestClient, world: World) -> None:
    _local_user()
    _password_sign_in(client, "li-local", PASSWORD)
    with db.session_scope() as session:
        administration.set_active(session, administration.OPERATOR,
                                  identity.get_user(session, "li-local"), False)
    assert client.get("/requests", follow_redirects=False).status_code == 303
    refused = _password_sign_in(client, "li-local", PASSWORD)
    assert refused.status_code == 401 and "已停用" in refused.text


def test_people_issue_and_revoke_their_own_api_tokens(client: TestClient,
                                                      world: World) -> None:
    _local_user()
    _password_sign_in(client, "li-local", PASSWORD)
    page = client.get("/account")
    issued = client.post("/account/tokens", data={"csrf_token": csrf_of(page.text),
                                                  "name": "my script", "days": "30"})
    plain = issued.text.split('id="new-token">')[1].split("<")[0]
    me = httpx.Headers({"Authorization": f"Bearer {plain}"})
    assert client.get("/api/v1/me", headers=me).json()["display_name"] == "李四"
    assert plain not in client.get("/account").text  # shown once only
    with db.session_scope(write=False) as session:
        token = identity.list_tokens(session, identity.get_user(session, "li-local"))[0]
    bad_days = client.post("/account/tokens", data={"csrf_token": csrf_of(page.text),
                                                    "name": "x", "days": "0"})
    assert bad_days.status_code == 422 and "1 至 3650 天" in bad_days.text
    # Another user's token cannot be revoked from here.
    other = client.post("/account/tokens/1/revoke", data={"csrf_token": csrf_of(page.text)})
    assert other.status_code == 422
    client.post(f"/account/tokens/{token.id}/revoke", data={"csrf_token": csrf_of(page.text)})
    assert client.get("/api/v1/me", headers=me).status_code == 401
    assert _log_types().count("token.issued") == 1 and "token.revoked" in _log_types()


# --- OpenID Connect -----------------------------------------------------------------------------

ACCOUNTS = {
    "sub-wang": {"preferred_username": "ga-requester", "name": "王科员"},
    "sub-new": {"preferred_username": "zhao-new", "name": "赵新", "dept": "SCJG",
                "govshare_roles": ["approver", "admin"]},
    "sub-nodept": {"preferred_username": "qian-nodept", "name": "钱", "govshare_roles": "approver"},
    "sub-late": {"preferred_username": "ga-publisher", "name": "迟到", "_expired": True},
}


@pytest.fixture(scope="module")
def provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The identity platform: a real OIDC provider process on a free loopback port."""
    accounts = tmp_path_factory.mktemp("oidc") / "accounts.json"
    accounts.write_text(json.dumps(ACCOUNTS), "utf-8")
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.oidc_provider", "--port", str(port), "--client-id",
         "govshare", "--client-secret", "s3cret", "--accounts", str(accounts)], cwd=ROOT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(url + "/jwks", timeout=1).raise_for_status()
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise
                time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture
def oidc_client(provider: str, data_dir: Path,
                monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    monkeypatch.setenv("GOVSHARE_OIDC_ISSUER", provider)
    monkeypatch.setenv("GOVSHARE_OIDC_CLIENT_ID", "govshare")
    monkeypatch.setenv("GOVSHARE_OIDC_CLIENT_SECRET", "s3cret")
    monkeypatch.setenv("GOVSHARE_OIDC_DEPARTMENT_CLAIM", "dept")
    monkeypatch.setenv("GOVSHARE_OIDC_ROLES_CLAIM", "govshare_roles")
    monkeypatch.setenv("GOVSHARE_OIDC_PROVISION", "true")
    get_settings.cache_clear()
    from govshare.app import create_app
    from tests.conftest import DEPARTMENTS
    from tests.world import create_departments

    with TestClient(create_app()) as client:
        create_departments(DEPARTMENTS)
        yield client


def _oidc(client: TestClient, account: str, decision: str = "allow") -> httpx.Response:
    """What a browser does: govshare → the provider's login form → back to govshare."""
    start = client.get("/signin/oidc?next=/catalog", follow_redirects=False)
    assert start.status_code == 303, start.text
    authorize = start.headers["location"]
    form = httpx.get(authorize)
    assert "Test identity platform" in form.text
    params = {k: v[0] for k, v in parse_qs(urlsplit(authorize).query).items()}
    assert params["code_challenge_method"] == "S256" and params["nonce"]
    back = httpx.post(authorize.split("?")[0], data={**params, "account": account,
                                                     "decision": decision})
    assert back.status_code == 303
    callback = urlsplit(back.headers["location"])
    return client.get(f"{callback.path}?{callback.query}", follow_redirects=False)


def test_oidc_signs_in_a_user_matched_by_the_configured_claim(oidc_client: TestClient) -> None:
    response = _oidc(oidc_client, "sub-wang")
    assert response.status_code == 303 and response.headers["location"] == "/catalog"
    page = oidc_client.get("/catalog")
    assert "王科员" in page.text  # the platform's name claim is the display name
    with db.session_scope(write=False) as session:
        assert identity.get_user(session, "ga-requester").oidc_subject == "sub-wang"


def test_oidc_provisions_a_new_user_from_claims_but_never_as_admin(
        oidc_client: TestClient) -> None:
    assert _oidc(oidc_client, "sub-new").status_code == 303
    with db.session_scope(write=False) as session:
        user = identity.get_user(session, "zhao-new")
        dept = identity.get_department(session, user.department_id)
        assert dept.code == "SCJG" and user.roles == frozenset({Role.approver})
    assert "user.created" in _log_types()


@pytest.mark.parametrize(("account", "decision", "message"), [
    ("sub-wang", "deny", "统一身份认证平台未完成登录"),
    ("sub-late", "allow", "登录超时或已过期"),  # the ID token expired twenty minutes ago
    ("sub-nodept", "allow", "没有本系统可识别的部门或角色"),
])
def test_oidc_refusals_are_explained(oidc_client: TestClient, account: str, decision: str,
                                     message: str) -> None:
    response = _oidc(oidc_client, account, decision)
    assert response.status_code == 401 and message in response.text
    assert "govshare_session" not in response.cookies
    with db.session_scope(write=False) as session:
        assert session.exec(select(sessions.WebSession)).first() is None


def test_an_oidc_answer_without_its_browser_cookie_is_refused(oidc_client: TestClient) -> None:
    start = oidc_client.get("/signin/oidc", follow_redirects=False)
    params = {k: v[0] for k, v in parse_qs(urlsplit(start.headers["location"]).query).items()}
    back = httpx.post(start.headers["location"].split("?")[0],
                      data={**params, "account": "sub-wang", "decision": "allow"})
    oidc_client.cookies.clear()  # another browser, or the ten minutes have passed
    callback = urlsplit(back.headers["location"])
    response = oidc_client.get(f"{callback.path}?{callback.query}", follow_redirects=False)
    assert response.status_code == 401 and "登录超时或已过期" in response.text


def test_the_sign_in_page_offers_the_identity_platform_only_when_configured(
        client: TestClient, world: World) -> None:
    assert 'id="signin-oidc"' not in client.get("/signin").text
    assert client.get("/signin/oidc").status_code == 404


def test_users_without_a_password_cannot_sign_in_with_one(client: TestClient,
                                                          world: World) -> None:
    with db.session_scope(write=False) as session:
        assert session.exec(select(User).where(User.username == "ga-requester")).one() \
            .password_hash is None
    assert _password_sign_in(client, "ga-requester", "").status_code == 401
