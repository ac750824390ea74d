"""Signing in with the city's identity platform (统一身份认证) in headless Chromium: the button
on the live server's sign-in page, the real OIDC provider's login form, and back signed in
with the platform's name in the header; a refused or expired login is explained in Chinese
on the sign-in page, in the UI's own frame."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.browser.checks import english_on, serious_violations
from tests.browser.conftest import Live


def _at_the_platform(page: Any, live: Live, account: str, decision: str) -> None:
    page.context.clear_cookies()
    page.goto("/signin")
    page.click("#signin-oidc")
    page.wait_for_url(re.compile(re.escape(live.oidc) + r"/authorize\?"))
    page.select_option("#account", account)
    page.click(f"#{decision}")


def test_a_clerk_signs_in_with_the_identity_platform(page: Any, live: Live) -> None:
    _at_the_platform(page, live, "sub-zhou", "allow")
    page.wait_for_url("**/requests")  # a requester's landing page (provisioned from claims)
    assert page.locator("#me").inner_text() == "周科员"
    assert any(c["name"] == "govshare_session" for c in page.context.cookies())
    page.click("#signout")
    page.wait_for_url("**/signin")


@pytest.mark.parametrize(("account", "decision", "message"), [
    ("sub-zhou", "deny", "统一身份认证平台未完成登录"),
    ("sub-late", "allow", "登录超时或已过期"),  # the platform's ID token expired
])
def test_a_refused_or_expired_login_is_explained_in_chinese(
        a11y_page: Any, live: Live, account: str, decision: str, message: str) -> None:
    page = a11y_page
    _at_the_platform(page, live, account, decision)
    page.wait_for_url(re.compile(re.escape(live.url) + "/signin/oidc/callback"))
    assert page.get_attribute("html", "lang") == "zh-CN"
    assert message in page.locator("#signin-error").inner_text()
    assert page.locator("header.top").count() == 1  # the UI's frame, not a bare error
    assert page.locator("#signin-oidc").is_visible()  # and a way to try again
    assert not any(c["name"] == "govshare_session" for c in page.context.cookies())
    assert english_on(page) == []
    assert serious_violations(page) == []
