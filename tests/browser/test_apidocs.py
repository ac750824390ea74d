"""/docs and /redoc work offline: vendored Swagger UI and ReDoc, our CSP intact, and no
request leaving the server (the README tour's API pages; tests/test_readme_tour.py runs the
tour's commands). In the browser suite, so it shares its one Playwright session."""

from __future__ import annotations

from typing import Any

from tests.browser.conftest import Live


def test_docs_and_redoc_render_offline_in_chromium(chromium: Any, live: Live) -> None:
    for path, ready in (("/docs", ".swagger-ui .info .title"),
                        ("/redoc", "h1")):
        context = chromium.new_context()
        page = context.new_page()
        requests: list[str] = []
        problems: list[str] = []
        page.on("request", lambda r, seen=requests: seen.append(r.url))
        page.on("console", lambda m, seen=problems: seen.append(m.text)
                if m.type == "error" else None)
        page.on("pageerror", lambda e, seen=problems: seen.append(str(e)))
        page.on("response", lambda r, seen=problems: seen.append(f"{r.status} {r.url}")
                if r.status >= 400 else None)
        response = page.goto(live.url + path)
        assert response is not None
        assert "script-src 'self'" in response.headers["content-security-policy"]
        page.wait_for_selector(ready, timeout=60_000)
        assert "govshare" in page.inner_text(ready)
        if path == "/docs":
            # The operations are listed (the metadata schema: tests/test_readme_tour.py).
            page.wait_for_selector("[data-path='/api/v1/resources']", timeout=30_000)
            page.wait_for_selector("text=Schemas", timeout=30_000)
        outside = [u for u in requests if not u.startswith(live.url)
                   and not u.startswith(("data:", "blob:"))]
        assert outside == [], outside
        assert problems == [], problems
        context.close()
