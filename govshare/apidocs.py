"""``/docs`` (Swagger UI) and ``/redoc`` (ReDoc), working offline under our own CSP.

FastAPI's built-in pages load their scripts from a CDN and start them with an inline script;
our Content-Security-Policy (``script-src 'self'``, ``govshare.headers``) blocks both, which
left ``/docs`` blank. These pages load the vendored copies under
``/static/vendor/{swagger-ui,redoc}/`` and start them from ``/static/apidocs.js``, which reads
the OpenAPI URL from a data attribute: no inline script, no other origin, the CSP unchanged.
"""

from __future__ import annotations

from html import escape

from fastapi import APIRouter, FastAPI
from fastapi.responses import HTMLResponse

from govshare.headers import CSP

router = APIRouter(include_in_schema=False)

# ReDoc styles itself with styled-components, which writes <style> elements: this one page
# allows inline *styles* (as the web UI's pages do, govshare.web.base); scripts stay 'self'.
REDOC_CSP = CSP.replace("style-src 'self';", "style-src 'self' 'unsafe-inline';")
assert REDOC_CSP != CSP

_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<link rel="icon" href="/static/favicon.svg" type="image/svg+xml">
{head}
</head>
<body>
<div id="apidocs" data-ui="{ui}" data-openapi="{openapi}"></div>
{scripts}
<script src="/static/apidocs.js"></script>
</body>
</html>
"""


def _page(app: FastAPI, ui: str, head: str, scripts: str,
          headers: dict[str, str] | None = None) -> HTMLResponse:
    return HTMLResponse(_PAGE.format(title=escape(f"{app.title} API"), head=head, ui=ui,
                                     openapi=escape(app.openapi_url or "/openapi.json"),
                                     scripts=scripts), headers=headers)


def install(app: FastAPI) -> None:
    """Serve ``/docs`` and ``/redoc`` (create the app with ``docs_url=None, redoc_url=None``)."""

    @router.get("/docs")
    def swagger_ui() -> HTMLResponse:
        return _page(app, "swagger",
                     '<link rel="stylesheet" href="/static/vendor/swagger-ui/swagger-ui.css">',
                     '<script src="/static/vendor/swagger-ui/swagger-ui-bundle.js"></script>')

    @router.get("/redoc")
    def redoc() -> HTMLResponse:
        return _page(app, "redoc", "",
                     '<script src="/static/vendor/redoc/redoc.standalone.js"></script>',
                     headers={"Content-Security-Policy": REDOC_CSP})

    app.include_router(router)
