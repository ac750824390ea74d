"""The whole sharing story in headless Chromium, on the demo world, against a real server:
a publisher registers a resource (upload with progress), a requester applies, an approver
approves with a tighter mask, the requester downloads the masked file and rates it, and the
leader's dashboard shows the new delivery and its latency in rendered charts."""

from __future__ import annotations

import csv
import io
import re
import time
from pathlib import Path
from typing import Any

from tests.browser.conftest import Live, sign_in
from tests.factories import POPULATION_ITEMS, population_rows, to_csv

NAME = "浏览器测试人口信息"
PUBLISHER, REQUESTER, BUREAU = "GA", "SCJG", "SJJ"


def _submit(page: Any) -> Any:
    with page.expect_response(lambda r: r.request.method == "POST"
                              and r.url.endswith("/publish/new")) as posted:
        page.click("#submit")
    return posted.value


def _register(page: Any, rows: list[dict[str, Any]]) -> str:
    page.goto("/publish")
    page.click("#register")
    page.fill("#name", NAME)
    page.fill("#name_en", "Browser test population")
    page.select_option("#category", "101")
    page.select_option("#sharing_type", "conditional")
    page.fill("#sharing_condition", "仅限身份核验")
    item_rows = page.locator("tr.item-row")
    for i, item in enumerate(POPULATION_ITEMS):
        row = item_rows.nth(i)
        row.locator("input[name=item_name]").fill(item["name"])
        row.locator("input[name=item_title]").fill(item.get("title", ""))
        row.locator("select[name=item_type]").select_option(item["type"])
        row.locator("select[name=item_kind]").select_option(item.get("kind") or "")
        row.locator("select[name=item_sensitivity]").select_option(
            item.get("sensitivity", "none"))
        if item.get("is_key"):
            row.locator(".item-key").check()
    page.set_input_files("#file", files=[{"name": "people.csv", "mimeType": "text/csv",
                                          "buffer": to_csv(rows)}])
    # Record the progress bar's values where they survive the redirect that follows.
    page.evaluate("""() => {
        const bar = document.getElementById('progress-bar');
        new MutationObserver(() => sessionStorage.setItem('progress',
            (sessionStorage.getItem('progress') || '') + ' ' + bar.value))
          .observe(bar, {attributes: true});
    }""")
    response = _submit(page)
    if response.status == 409:
        # An earlier browser test registered the same items in this department: the publisher
        # is shown it and confirms that this is a resource of its own (one source per datum).
        assert "similar-resource-exists" in response.text(), response.text()
        page.wait_for_selector("#similar-same:not([hidden])")
        assert "440300-" in page.locator("#similar-same li").first.inner_text()
        page.check("#confirm-duplicate")
        response = _submit(page)
    assert response.status == 200, response.text()
    assert response.headers["content-type"].startswith("application/json")  # the XHR path
    page.wait_for_url(re.compile(r"/catalog/[^/?]+\?ok=registered"))
    seen = page.evaluate("() => sessionStorage.getItem('progress')") or ""
    assert "100" in seen.split(), seen  # the bar reached 100 %
    assert page.locator("#sharing-type").inner_text() == "有条件共享"
    assert page.locator("#items tbody tr").count() == len(POPULATION_ITEMS)
    return page.url.split("/catalog/")[1].split("?")[0]


def _apply(page: Any, code: str) -> int:
    page.goto("/catalog?q=" + NAME)
    page.click(f"a[href='/catalog/{code}']")
    page.click("#apply")
    page.fill("#purpose", "企业开办时核验法定代表人身份")
    page.fill("#legal_basis", "《市场主体登记管理条例》第十条")
    page.select_option("#file_format", "csv")
    page.click("#file-application")
    page.wait_for_url(re.compile(r"/applications/\d+\?ok=filed"))
    assert page.locator("#state").inner_text() == "待审批"
    app_id = int(page.url.split("/applications/")[1].split("?")[0])
    page.goto("/requests")
    assert page.locator(f"#my-applications a[href='/applications/{app_id}']").count() >= 1
    return app_id


def _approve_tighter(page: Any, app_id: int) -> None:
    page.goto("/inbox")
    link = page.locator(f"#inbox a.open-application[href='/applications/{app_id}']")
    assert link.count() == 1
    link.click()
    # The default plan is shown; loosening is not even offered.
    options = page.locator("#mask-name option").evaluate_all("os => os.map(o => o.value)")
    assert "keep" not in options and page.locator("#mask-name").input_value() == "partial"
    page.select_option("#mask-birth_date", "suppress")
    page.select_option("#mask-name", "pseudonymize")
    page.click("#approve")
    page.wait_for_url(re.compile(rf"/applications/{app_id}\?ok=approved"))


def _download(page: Any, app_id: int, rows: list[dict[str, Any]]) -> None:
    page.goto(f"/applications/{app_id}")
    for _ in range(60):  # delivered by a background task after the approval's commit
        if page.locator("#state").inner_text() == "已交付":
            break
        page.wait_for_timeout(500)
        page.reload()
    assert page.locator("#state").inner_text() == "已交付"
    button = page.locator("#deliveries button.download").first
    with page.expect_download() as download:
        button.click()
    text = Path(download.value.path()).read_text("utf-8")
    table = list(csv.DictReader(io.StringIO(text)))
    assert len(table) == len(rows)
    assert "birth_date" not in table[0]  # suppressed, as the approver chose
    assert set(table[0]) == {"id_number", "name", "household_size"}
    assert [r["household_size"] for r in table] == [str(r["household_size"]) for r in rows]
    originals = {r["id_number"] for r in rows} | {r["name"] for r in rows}
    for row in table:  # both pseudonymized: no original value leaves
        assert row["id_number"] not in originals and row["name"] not in originals
        assert row["id_number"] and row["name"]
    # rate it (POST /api/v1/deliveries/{id}/rating with the page's CSRF header)
    rating = page.locator("#deliveries .rating").first
    rating.locator(".rating-comment").fill("核验效率明显提高")
    rating.locator("button[data-useful=true]").click()
    page.wait_for_function("() => document.querySelector('.rating-status').textContent.length")
    assert rating.locator(".rating-status").inner_text() == "已评价，谢谢。"


def _dashboard(page: Any, live: Live, before: dict[str, Any]) -> None:
    # The metrics API counts the new delivery (the mart refreshes on each request here, but a
    # refresh already under way when the delivery committed serves the figures before it)…
    # The mart is refreshed by requests and by the worker's periodic job; wait until both the
    # overview and the stage table have taken the delivery in.
    for _ in range(60):
        after = live.api(BUREAU, "leader", "/api/v1/metrics/overview")
        stages = live.api(BUREAU, "leader", "/api/v1/metrics/latency", by="stage")["groups"]
        processing = next((g["n"] for g in stages if g["key"] == "processing"), 0)
        if (after["delivered"] > before["overview"]["delivered"]
                and processing > before["processing"]):
            break
        time.sleep(0.5)
    assert after["delivered"] == before["overview"]["delivered"] + 1, after
    assert processing == before["processing"] + 1, stages
    page.goto("/dashboard")
    charts = page.locator(".chart")
    total = charts.count()
    assert total >= 12
    page.wait_for_function(  # drawn, or marked as failed
        "() => [...document.querySelectorAll('.chart')].every(c => c.dataset.rendered)")
    assert page.locator("#dash-error").is_hidden(), page.locator("#dash-error").inner_text()
    assert page.locator('.chart[data-rendered="1"]').count() == total
    for chart in ("chart-volume", "chart-flows", "chart-latency-stage", "chart-latency-trend"):
        canvas = page.locator(f"#{chart} canvas")
        assert canvas.count() >= 1, chart
        assert canvas.first.is_visible() and canvas.first.bounding_box()["height"] > 100
    # … and so does the dashboard.
    page.wait_for_function("() => /\\d/.test(document.getElementById('kpi-delivered').textContent)")
    delivered = int(page.locator("#kpi-delivered").inner_text().replace(",", ""))
    assert delivered == before["overview"]["delivered"] + 1
    assert re.search(r"\d", page.locator("#kpi-conditional_p50").inner_text())
    # latency by stage: the new delivery is counted in the processing stage's row
    row = page.locator("#latency-stage-table tbody tr[data-key=processing]")
    assert row.count() == 1
    n = int(row.locator("td").nth(1).inner_text().replace(",", ""))
    assert n == before["processing"] + 1
    assert re.search(r"\d", row.locator("td").nth(2).inner_text())


def _settled_figures(live: Live) -> dict[str, Any]:
    """The leaders' figures once no earlier test's delivery is in flight and the mart has
    caught up (two reads in a row agree)."""
    live.settle()
    previous: dict[str, Any] | None = None
    for _ in range(60):
        overview = live.api(BUREAU, "leader", "/api/v1/metrics/overview")
        stages = live.api(BUREAU, "leader", "/api/v1/metrics/latency", by="stage")["groups"]
        figures = {"overview": {k: v for k, v in overview.items() if k != "as_of"},
                   "processing": next((g["n"] for g in stages if g["key"] == "processing"), 0)}
        if figures == previous:
            return figures
        previous = figures
        time.sleep(0.3)
    raise AssertionError(f"the metrics kept changing: {previous}")


def test_publish_apply_approve_download_and_see_it_on_the_dashboard(page: Any,
                                                                    live: Live) -> None:
    before = _settled_figures(live)
    rows = population_rows(3000)  # big enough for a few progress events

    sign_in(page, live.token(PUBLISHER, "publisher"))
    code = _register(page, rows)
    sign_in(page, live.token(REQUESTER, "requester"))
    app_id = _apply(page, code)
    sign_in(page, live.token(PUBLISHER, "approver"))
    _approve_tighter(page, app_id)
    sign_in(page, live.token(REQUESTER, "requester"))
    _download(page, app_id, rows)
    sign_in(page, live.token(BUREAU, "leader"))
    _dashboard(page, live, before)
