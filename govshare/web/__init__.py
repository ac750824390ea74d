"""The web UI: server-rendered pages for every role, served by the API's own app (docs/web.md)."""

from __future__ import annotations

import inspect
from importlib.resources import files

from fastapi import FastAPI, Request
from fastapi.responses import Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from kernel import problems


def install(app: FastAPI) -> None:
    """Mount the pages at the site root and their static files under /static; problem details
    in the caller's language; error pages, not JSON, for browser routes nobody defined."""
    from govshare.web import i18n
    from govshare.web.base import error_page
    from govshare.web.pages import access, admin, common, followup, oversight, publish, signin

    problems.set_localizer(i18n.localize_problem)
    for module in (signin, common, publish, access, followup, oversight, admin):
        app.include_router(module.router)
    app.mount("/static", StaticFiles(directory=str(files("govshare.web") / "static")),
              name="static")
    api_handler = app.exception_handlers[StarletteHTTPException]

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        if _is_page(request):
            problem = problems.Problem(str(exc.detail),
                                       key=f"error.http_detail.{exc.status_code}")
            problem.status = exc.status_code
            return error_page(request, problem)
        answer = api_handler(request, exc)
        return await answer if inspect.isawaitable(answer) else answer

    app.add_exception_handler(StarletteHTTPException, http_error)


def _is_page(request: Request) -> bool:
    """A person's browser asking for a page (not the API, not a script asking for JSON)."""
    path = request.url.path
    if path.startswith(("/api/", "/static/", "/.well-known/", "/metrics", "/healthz", "/docs",
                        "/openapi", "/redoc")):
        return False
    return "text/html" in request.headers.get("accept", "")
