"""``govshare screenshots OUT_DIR``: PNGs of every main page for every role, on a fresh demo
world served by a real server and drawn by headless Chromium (so the charts are real).

A few applications are filed first so that the approvers' in-tray is not empty, and the
quality worker is given time to score the catalog so the quality pages have figures.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path
from typing import Any, cast

import httpx

from govshare.web.live import CHROMIUM, CHROMIUM_ARGS, load_demo, start_server

LAPTOP = {"width": 1440, "height": 900}
TABLET = {"width": 820, "height": 1180}


class _Api:
    def __init__(self, url: str, tokens: dict[tuple[str, str], str]) -> None:
        self.url, self.tokens = url, tokens

    def call(self, method: str, who: tuple[str, str], path: str, **kw: Any) -> Any:
        response = httpx.request(method, self.url + path, timeout=120, **kw,
                                 headers={"Authorization": f"Bearer {self.tokens[who]}"})
        response.raise_for_status()
        return response.json()


def _file_applications(api: _Api, provider: str, requester: str, n: int) -> list[int]:
    """Fresh applications to ``provider``'s conditional resources, waiting for a decision."""
    found = api.call("GET", (requester, "requester"), "/api/v1/resources",
                     params={"department": provider, "sharing_type": "conditional",
                             "size": 20, "items": "true"})["hits"]
    ids: list[int] = []
    for resource in found:
        if len(ids) == n:
            break
        body = {"resource": resource["code"], "purpose": "办理政务服务事项时核验申请人信息",
                "legal_basis": "《优化营商环境条例》第三十七条",
                "items": [i["name"] for i in resource["items"]][:6],
                "period_end": (date.today() + timedelta(days=180)).isoformat()}
        response = httpx.post(api.url + "/api/v1/applications", json=body, timeout=120,
                              headers={"Authorization":
                                       f"Bearer {api.tokens[(requester, 'requester')]}"})
        if response.status_code == 201:
            ids.append(response.json()["id"])
    return ids


def _wait_for_quality(api: _Api, resources: int, timeout: float) -> int:
    """Let the server's quality worker score the catalog (the demo queues a run each)."""
    deadline = time.monotonic() + timeout
    scored = 0
    while time.monotonic() < deadline:
        scored = len(api.call("GET", ("SJJ", "auditor"), "/api/v1/quality/ranking/resources"))
        if scored >= resources:
            break
        time.sleep(3)
    return scored


def take(out_dir: Path, *, scale: str = "tiny", quality_wait: float = 240,
         report: Callable[[str], None] = print) -> list[Path]:
    if not CHROMIUM.exists():
        raise RuntimeError("No /usr/bin/chromium: run .ci/ensure-chromium first.")
    from playwright.sync_api import sync_playwright

    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    with tempfile.TemporaryDirectory(prefix="govshare-screens-") as tmp:
        data_dir = Path(tmp) / "data"
        report(f"loading the demo world ({scale})…")
        tokens = load_demo(data_dir, scale)
        server = start_server(data_dir, Path(tmp) / "server.log")
        try:
            api = _Api(server.url, tokens)
            waiting = _file_applications(api, "GA", "SCJG", 3)
            total = api.call("GET", ("GA", "publisher"), "/api/v1/resources",
                             params={"size": 1})["total"]
            report(f"waiting for quality scores of {total} resources…")
            scored = _wait_for_quality(api, total, quality_wait)
            report(f"{scored} scored; taking screenshots…")
            mine = [a for a in api.call("GET", ("SCJG", "requester"), "/api/v1/applications",
                                        params={"state": "delivered", "limit": 200})
                    if a["requester"] == "SCJG"]
            ga = api.call("GET", ("GA", "publisher"), "/api/v1/resources",
                          params={"department": "GA", "size": 1})["hits"][0]["code"]
            pages: list[tuple[str, tuple[str, str] | None, str, dict[str, int]]] = [
                ("signin", None, "/signin", LAPTOP),
                ("publisher-resources", ("GA", "publisher"), "/publish", LAPTOP),
                ("publisher-register", ("GA", "publisher"), "/publish/new", LAPTOP),
                ("publisher-new-version", ("GA", "publisher"), f"/catalog/{ga}/versions/new",
                 LAPTOP),
                ("publisher-notices", ("GA", "publisher"), "/notices", LAPTOP),
                ("catalog-search", ("SCJG", "requester"), "/catalog?q=信息", LAPTOP),
                ("catalog-facet", ("SCJG", "requester"),  # a facet clicked: the filter set
                 "/catalog?q=信息&sharing_type=conditional", LAPTOP),
                ("catalog-resource", ("SCJG", "requester"), f"/catalog/{ga}", LAPTOP),
                ("requester-applications", ("SCJG", "requester"), "/requests", LAPTOP),
                ("requester-apply", ("SCJG", "requester"), f"/requests/new?resource={ga}",
                 LAPTOP),
                ("approver-inbox", ("GA", "approver"), "/inbox", LAPTOP),
                ("auditor-quality", ("SJJ", "auditor"), "/quality", LAPTOP),
                # the notice form as the quality panel's button opens it: filled in
                ("auditor-notice-form", ("SJJ", "auditor"),
                 f"/quality?resource={ga}&dimension=validity#notice-form", LAPTOP),
                ("auditor-notices", ("SJJ", "auditor"), "/notices", LAPTOP),
                ("auditor-coordination", ("SJJ", "auditor"), "/coordination", LAPTOP),
                ("leader-dashboard", ("SJJ", "leader"), "/dashboard", LAPTOP),
                ("leader-dashboard-en", ("SJJ", "leader"), "/dashboard?lang=en", LAPTOP),
                ("leader-dashboard-tablet", ("SJJ", "leader"), "/dashboard?lang=zh", TABLET),
                ("catalog-tablet", ("SCJG", "requester"), "/catalog", TABLET),
                ("account", ("SCJG", "requester"), "/account", LAPTOP),
                ("notifications", ("GA", "approver"), "/notifications", LAPTOP),
                ("admin-users", ("SJJ", "admin"), "/admin/users", LAPTOP),
                ("admin-departments", ("SJJ", "admin"), "/admin/departments", LAPTOP),
                ("admin-settings", ("SJJ", "admin"), "/admin/settings", LAPTOP),
                ("leader-dashboard-list", ("SJJ", "leader"),
                 "/dashboard/applications?list=delivered&sharing_type=conditional", LAPTOP),
            ]
            if waiting:
                pages.append(("approver-decision", ("GA", "approver"),
                              f"/applications/{waiting[0]}", LAPTOP))
            if mine:
                pages.append(("requester-application", ("SCJG", "requester"),
                              f"/applications/{mine[0]['id']}", LAPTOP))
            escalated = [a for a in api.call("GET", ("SJJ", "auditor"), "/api/v1/applications",
                                             params={"limit": 500})
                         if a["escalated_at"] and a["state"] in ("submitted", "returned",
                                                                 "conditions_pending")]
            if escalated:  # the bureau's coordination form on an escalated application
                pages.append(("auditor-coordination-application", ("SJJ", "auditor"),
                              f"/applications/{escalated[0]['id']}", LAPTOP))
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
                for name, who, path, viewport in pages:
                    context = browser.new_context(base_url=server.url,
                                                  viewport=cast(Any, viewport),
                                                  device_scale_factor=1)
                    page = context.new_page()
                    if who is not None:
                        page.goto("/signin")
                        page.click("details.token-signin summary")
                        page.fill("#token", tokens[who])
                        page.click("#signin")
                        page.wait_for_load_state()
                    page.goto(path)
                    page.wait_for_load_state("networkidle")
                    if page.locator(".chart").count():
                        page.wait_for_function(
                            "() => [...document.querySelectorAll('.chart')]"
                            ".every(c => c.dataset.rendered)", timeout=60_000)
                    target = out_dir / f"{name}.png"
                    page.screenshot(path=str(target), full_page=True)
                    written.append(target)
                    report(f"  {target}")
                    context.close()
                browser.close()
        finally:
            server.stop()
    return written
