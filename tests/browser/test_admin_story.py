"""The admin's story in the browser, UI only: create a department, a user with roles and a
password, issue the user a token; the new user signs in with the password, sees their display
name, turns on two-step sign-in and signs in again with a one-time code."""

from __future__ import annotations

from typing import Any

import pyotp

from tests.browser.conftest import Live, sign_in


def test_admin_creates_a_department_a_user_and_a_token(page: Any, live: Live) -> None:
    sign_in(page, live.token("SJJ", "admin"))
    page.click("nav.main-nav a[href='/admin']")
    page.click("nav.subnav a[href='/admin/departments']")
    page.fill("#dept-code", "XJJ")
    page.fill("#dept-name-zh", "市乡村振兴局")
    page.fill("#dept-name-en", "Rural Revitalization Bureau")
    page.fill("#dept-commissioner", "刘专员")
    page.click("#dept-create")
    assert "部门已创建" in page.locator(".flash.ok").inner_text()
    assert "市乡村振兴局" in page.locator("#dept-XJJ").inner_text()
    page.click("nav.subnav a[href='/admin/users']")
    page.fill("#user-name", "xjj-liu")
    page.fill("#user-display", "刘科员")
    page.select_option("#user-dept", "XJJ")
    page.fill("#user-password", "a long enough password")
    page.check("#role-requester")
    page.click("#user-create")
    page.fill("#token-name", "脚本")
    page.fill("#token-days", "30")
    page.click("#issue-token")
    token = page.locator("#new-token").inner_text()
    assert token.startswith("gs_")
    page.click("#signout")

    # The new user signs in with the password and finds their display name in the header.
    page.fill("#username", "xjj-liu")
    page.fill("#password", "a long enough password")
    page.click("#signin-password")
    page.wait_for_url("**/requests")
    assert page.locator("#me").inner_text() == "刘科员"
    page.click("#me")
    page.click("#totp-start")
    secret = page.locator("#totp-secret").inner_text()
    page.fill("#totp-code", pyotp.TOTP(secret).now())
    page.click("#totp-confirm")
    assert "两步验证已开启" in page.locator(".flash.ok").inner_text()
    page.click("#signout")
    page.fill("#username", "xjj-liu")
    page.fill("#password", "a long enough password")
    page.click("#signin-password")
    assert "动态验证码" in page.locator("#signin-error").inner_text()
    page.fill("#password", "a long enough password")
    page.fill("#totp", pyotp.TOTP(secret).now())
    page.click("#signin-password")
    page.wait_for_url("**/requests")
