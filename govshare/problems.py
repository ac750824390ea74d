"""RFC 9457 problem details for every API error.

Services raise ``Problem`` subclasses with a message a clerk can act on; the handlers here turn
them (and FastAPI's own validation and HTTP errors) into ``application/problem+json``.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger("govshare")

PROBLEM_JSON = "application/problem+json"
TYPE_BASE = "https://govshare.example/problems/"


class Problem(Exception):
    """An error the caller can fix or understand. ``detail`` is shown to the user."""

    status = 400
    slug = "bad-request"
    title = "Bad request"

    def __init__(self, detail: str, *, errors: list[dict[str, Any]] | None = None,
                 **extensions: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors = errors
        self.extensions = extensions

    def body(self, instance: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": TYPE_BASE + self.slug,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
        }
        if instance:
            body["instance"] = instance
        if self.errors:
            body["errors"] = self.errors
        body.update(self.extensions)
        return body


class Unauthenticated(Problem):
    status, slug, title = 401, "unauthenticated", "Sign-in required"


class Forbidden(Problem):
    status, slug, title = 403, "forbidden", "Not allowed"


class NotFound(Problem):
    status, slug, title = 404, "not-found", "Not found"


class Conflict(Problem):
    status, slug, title = 409, "conflict", "Conflict with the current state"


class Invalid(Problem):
    status, slug, title = 422, "invalid", "The request cannot be processed"


class TooLarge(Problem):
    status, slug, title = 413, "too-large", "Upload too large"


class Unsupported(Problem):
    status, slug, title = 415, "unsupported-media-type", "Unsupported file format"


class TooManyRequests(Problem):
    status, slug, title = 429, "too-many-requests", "Too many requests"


def problem_response(body: dict[str, Any], headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(body, status_code=body["status"], media_type=PROBLEM_JSON,
                        headers=headers)


_HTTP_TITLES = {
    401: "Sign-in required", 403: "Not allowed", 404: "Not found", 405: "Method not allowed",
    409: "Conflict", 413: "Upload too large", 415: "Unsupported media type",
    422: "The request cannot be processed", 429: "Too many requests",
}


def install_handlers(app: FastAPI) -> None:
    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        return problem_response(exc.body(request.url.path), headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = exc.detail if isinstance(exc.detail, str) else "Request failed"
        body = {
            "type": "about:blank",
            "title": _HTTP_TITLES.get(exc.status_code, "Error"),
            "status": exc.status_code,
            "detail": detail,
            "instance": request.url.path,
        }
        return problem_response(body, dict(exc.headers) if exc.headers else None)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {
                "field": ".".join(str(p) for p in err.get("loc", ()) if p != "body"),
                "message": err.get("msg", "invalid"),
                "type": err.get("type", "invalid"),
            }
            for err in exc.errors()
        ]
        fields = ", ".join(e["field"] or "(body)" for e in errors[:5])
        body = Invalid(f"Some fields are missing or invalid: {fields}.", errors=errors).body(
            request.url.path
        )
        return problem_response(body)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        # Log the type and path only: exception text can carry data values or secrets.
        log.error("unhandled %s on %s %s", type(exc).__name__, request.method, request.url.path,
                  exc_info=exc)
        body = {
            "type": "about:blank",
            "title": "Internal error",
            "status": 500,
            "detail": "govshare hit an internal error; nothing was changed. "
            "Try again, and report the time to your administrator if it persists.",
            "instance": request.url.path,
        }
        return problem_response(body)
