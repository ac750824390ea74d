"""Sign-in and sign-out, CSRF, the language switch, 403 pages and the tablet layout, in
headless Chromium against the real server."""

from __future__ import annotations

from typing import Any

from tests.browser.conftest import Live, sign_in


def test_sign_in_lands_on_the_role_page_and_sign_out_ends_the_session(page: Any,
                                                                      live: Live) -> None:
    page.goto("/quality")
    assert "/signin?next=%2Fquality" in page.url
    page.click("details.token-signin summary")
    page.fill("#token", "gs_not-a-token")
    page.click("#signin")
    assert "无法识别该令牌" in page.locator(".flash.error").inner_text()
    page.fill("#token", live.token("SJJ", "auditor"))
    page.click("#signin")
    page.wait_for_url("**/quality")
    cookie = next(c for c in page.context.cookies() if c["name"] == "govshare_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert page.evaluate("() => document.cookie").find("govshare_session") == -1
    page.click("#signout")
    page.wait_for_url("**/signin")
    page.goto("/quality")
    assert "/signin" in page.url


def test_forms_and_api_calls_without_the_csrf_token_are_refused(page: Any, live: Live) -> None:
    sign_in(page, live.token("GA", "publisher"))
    page.goto("/publish")
    page.evaluate("() => document.querySelectorAll('input[name=csrf_token]')"
                  ".forEach(i => { i.value = 'forged'; })")
    page.click("#signout")
    assert "CSRF" in page.locator(".problem-detail").inner_text()
    statuses = page.evaluate("""async () => {
        const token = document.querySelector('meta[name=csrf-token]').content;
        const post = (headers) => fetch('/api/v1/resources/440300-GA-101-00001/withdraw',
            {method: 'POST', credentials: 'same-origin', headers}).then(r => r.status);
        return [await post({}), await post({'X-CSRF-Token': 'forged'}),
                await post({'X-CSRF-Token': token})];
    }""")
    assert statuses[0] == 403 and statuses[1] == 403
    assert statuses[2] != 403 or "CSRF" not in page.content()


def test_language_switch_and_html_lang(page: Any, live: Live) -> None:
    sign_in(page, live.token("SCJG", "requester"))
    page.goto("/catalog")
    assert page.get_attribute("html", "lang") == "zh-CN"
    assert page.locator("h1").inner_text() == "数据资源目录"
    page.click("#lang-en")
    assert page.get_attribute("html", "lang") == "en"
    assert page.locator("h1").inner_text() == "Data resource catalog"
    page.goto("/requests")  # remembered in the lang cookie
    assert page.get_attribute("html", "lang") == "en"
    page.click("#lang-zh")
    assert page.get_attribute("html", "lang") == "zh-CN"


def test_a_page_of_another_role_is_a_403_page(page: Any, live: Live) -> None:
    sign_in(page, live.token("SCJG", "requester"))
    response = page.goto("/inbox")
    assert response.status == 403
    assert "无权访问" in page.locator("h1").inner_text()
    assert page.locator(".problem-detail").inner_text().startswith("此页面需要“审批人”角色")


def test_pages_fit_a_tablet_without_sideways_scrolling(page: Any, live: Live) -> None:
    page.set_viewport_size({"width": 820, "height": 1180})
    sign_in(page, live.token("SJJ", "leader"))
    for path in ("/catalog", "/dashboard", "/quality"):
        page.goto(path)
        overflow = page.evaluate(
            "() => document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, (path, overflow)


def test_the_registration_form_shows_similar_resources(page: Any, live: Live) -> None:
    # One source for each piece of data: typing the name of an active resource of one's own
    # department (with 表 appended) lists it with the confirm box, before anything is sent.
    hit = live.api("GA", "publisher", "/api/v1/resources", department="GA", size=1)["hits"][0]
    sign_in(page, live.token("GA", "publisher"))
    page.goto("/publish/new")
    page.fill("#name", hit["name"] + "表")
    same = page.locator("#similar-same")
    same.wait_for(state="visible")
    assert hit["code"] in same.inner_text() and "本部门已有相近的资源" in same.inner_text()
    assert page.locator("#confirm-duplicate").is_visible()
