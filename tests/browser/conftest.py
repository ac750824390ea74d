"""A real server on the demo world and headless Chromium (Debian's, through Playwright).

The server is a ``uvicorn`` subprocess on a free port with its own data directory, loaded with
``govshare demo --scale tiny`` (six months of sharing history). It signs people in with the
city's identity platform too: the tests' real OpenID Connect provider (tests/oidc_provider.py),
one process per session beside the server. Chromium is /usr/bin/chromium
(`.ci/ensure-chromium` installs it); Playwright's own browser download is never used.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from govshare.web.live import CHROMIUM, CHROMIUM_ARGS, free_port, load_demo, start_server
from tests.server_support import ROOT, wait_serving

# The identity platform's accounts (subject -> claims). Provisioned on first sign-in from the
# department and roles claims, so no demo user is changed; "_expired" gets a stale ID token.
OIDC_ACCOUNTS = {
    "sub-zhou": {"preferred_username": "oidc-zhou", "name": "周科员", "dept": "SCJG",
                 "govshare_roles": ["requester"]},
    "sub-late": {"preferred_username": "oidc-late", "name": "迟到", "dept": "SCJG",
                 "govshare_roles": ["requester"], "_expired": True},
}
OIDC_CLIENT, OIDC_SECRET = "govshare", "browser-s3cret"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/browser" in str(item.fspath):
            item.add_marker(pytest.mark.browser)


@dataclass
class Live:
    url: str
    data_dir: Path
    tokens: dict[tuple[str, str], str]  # (department, role) -> token
    oidc: str  # the identity platform's issuer URL

    def token(self, dept: str, role: str) -> str:
        return self.tokens[(dept, role)]

    def api(self, dept: str, role: str, path: str, **params: Any) -> Any:
        response = httpx.get(self.url + path, params=params, timeout=60,
                             headers={"Authorization": f"Bearer {self.token(dept, role)}"})
        response.raise_for_status()
        return response.json()

    def register(self, dept: str, meta: dict[str, Any], filename: str, body: bytes) -> str:
        """Register a resource with its CSV through the API as ``dept``'s publisher (the set-up
        of a story about something else: registering in the UI is test_story's); its code.
        ``meta`` over conditional sharing, category 101, daily updates, general security."""
        metadata = {"category": "101", "sharing_type": "conditional", "update_cycle": "daily",
                    "security_level": "general", **meta}
        r = httpx.post(self.url + "/api/v1/resources", timeout=120,
                       headers={"Authorization": f"Bearer {self.token(dept, 'publisher')}"},
                       data={"metadata": json.dumps(metadata, ensure_ascii=False)},
                       files={"file": (filename, body, "text/csv")})
        assert r.status_code == 201, r.text
        return str(r.json()["code"])

    def settle(self, timeout: float = 120) -> None:
        """Wait until no delivery is queued or running in the server's worker.

        Tests in one process share this server: a delivery an earlier test caused may still be
        in the worker's hands and would otherwise land in the middle of a later test's
        before/after counts.
        """
        deadline = time.monotonic() + timeout
        uri = f"file:{self.data_dir / 'govshare.db'}?mode=ro"
        while time.monotonic() < deadline:
            con = sqlite3.connect(uri, uri=True, timeout=30)
            try:
                (busy,) = con.execute(
                    "SELECT count(*) FROM job WHERE kind LIKE 'access.%' "
                    "AND state IN ('pending', 'running')").fetchone()
            finally:
                con.close()
            if not busy:
                return
            time.sleep(0.2)
        raise AssertionError("deliveries still queued or running after the timeout")


@pytest.fixture(scope="session")
def oidc_provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The city's identity platform: a real OIDC provider process on a free loopback port."""
    accounts = tmp_path_factory.mktemp("oidc") / "accounts.json"
    accounts.write_text(json.dumps(OIDC_ACCOUNTS), "utf-8")
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.oidc_provider", "--port", str(port), "--client-id",
         OIDC_CLIENT, "--client-secret", OIDC_SECRET, "--accounts", str(accounts)], cwd=ROOT)
    url = f"http://127.0.0.1:{port}"
    try:
        state = wait_serving(process, url + "/jwks", 30)
        if state != "up":
            raise RuntimeError(f"the OIDC provider did not start: {state}")
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture(scope="session")
def live(tmp_path_factory: pytest.TempPathFactory, oidc_provider: str) -> Iterator[Live]:
    root = tmp_path_factory.mktemp("browser")
    data_dir = root / "data"
    tokens = load_demo(data_dir)
    server = start_server(data_dir, root / "server.log", env={
        "GOVSHARE_OIDC_ISSUER": oidc_provider, "GOVSHARE_OIDC_CLIENT_ID": OIDC_CLIENT,
        "GOVSHARE_OIDC_CLIENT_SECRET": OIDC_SECRET, "GOVSHARE_OIDC_DEPARTMENT_CLAIM": "dept",
        "GOVSHARE_OIDC_ROLES_CLAIM": "govshare_roles", "GOVSHARE_OIDC_PROVISION": "true",
        # The demo's runs are months old: the daily schedule would queue a re-run of every
        # resource at start, and the stories' own runs (a registration's, a notice's
        # verifying run) would wait minutes behind them on the worker's one quality slot.
        "GOVSHARE_QUALITY_SCHEDULE_MINUTES": "0"})
    try:
        yield Live(server.url, data_dir, tokens, oidc_provider)
    finally:
        server.stop()


@pytest.fixture(scope="session")
def chromium() -> Iterator[Any]:
    if not CHROMIUM.exists():
        message = "no /usr/bin/chromium: run .ci/ensure-chromium"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS,
                                    headless=True)
        yield browser
        browser.close()


@pytest.fixture
def page(chromium: Any, live: Live) -> Iterator[Any]:
    context = chromium.new_context(base_url=live.url, viewport={"width": 1366, "height": 900},
                                   accept_downloads=True)
    context.set_default_timeout(30_000)
    page = context.new_page()
    yield page
    context.close()


@pytest.fixture
def a11y_page(chromium: Any, live: Live) -> Iterator[Any]:
    """A page for axe-core: injected as a script of the test's own, which the page's CSP would
    refuse (so this context bypasses it; the other tests keep the CSP)."""
    context = chromium.new_context(base_url=live.url, viewport={"width": 1366, "height": 900},
                                   bypass_csp=True)
    context.set_default_timeout(30_000)
    page = context.new_page()
    yield page
    context.close()


def sign_in(page: Any, token: str) -> None:
    """Through the sign-in form, as a person would (the cookie jar is the context's)."""
    page.context.clear_cookies()
    page.goto("/signin")
    page.click("details.token-signin summary")
    page.fill("#token", token)
    page.click("#signin")
    page.wait_for_load_state()
    assert "/signin" not in page.url, page.content()[:2000]


def read_all(page: Any) -> None:
    """Start from an empty inbox: what is counted next is what the story caused."""
    page.click("#notifications-link")
    if page.locator("#mark-read").count():
        page.click("#mark-read")
    assert page.locator("#unread-count").count() == 0
