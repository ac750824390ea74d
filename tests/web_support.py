"""Helpers for the web UI tests: signing in through the sign-in form, reading CSRF tokens."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

CSRF_INPUT = re.compile(r'name="csrf_token" value="([0-9a-f]+)"')
CSRF_META = re.compile(r'<meta name="csrf-token" content="([0-9a-f]+)">')


def csrf_of(html: str) -> str:
    found = CSRF_META.search(html) or CSRF_INPUT.search(html)
    assert found, "page has no CSRF token"
    return found.group(1)


def sign_in(client: TestClient, token: str) -> None:
    """Sign in as a browser does: fresh cookies, the form's token, the pasted API token."""
    client.cookies.clear()
    page = client.get("/signin")
    response = client.post("/signin", data={"token": token, "csrf_token": csrf_of(page.text)},
                           follow_redirects=False)
    assert response.status_code == 303, response.text


def page_csrf(client: TestClient, path: str = "/catalog") -> str:
    return csrf_of(client.get(path).text)
