"""RFC 9457 problem details for every API error.

Services raise ``Problem`` subclasses with a message a clerk can act on; the handlers here turn
them (and FastAPI's own validation and HTTP errors) into ``application/problem+json``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError
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

    @classmethod
    def of(cls, errors: Sequence[Any], what: str) -> Invalid:
        """From pydantic's ``errors()``: names the first fields at fault in ``detail`` and
        lists every error (``what`` is e.g. "the resource metadata")."""
        listed = [{"field": ".".join(str(p) for p in e.get("loc", ()) if p != "body"),
                   "message": e.get("msg", "invalid"), "type": e.get("type", "invalid")}
                  for e in errors]
        fields = ", ".join(e["field"] or "(whole)" for e in listed[:5])
        return cls(f"Some fields of {what} are missing or invalid: {fields}.", errors=listed)


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
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else {}
        if "retry_after" in exc.extensions:  # RFC 9110 §10.2.3, for 429 and 503
            headers["Retry-After"] = str(exc.extensions["retry_after"])
        return problem_response(exc.body(request.url.path), headers or None)

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
        body = Invalid.of(exc.errors(), "the request").body(
            request.url.path
        )
        return problem_response(body)

    @app.exception_handler(OverflowError)
    @app.exception_handler(DataError)
    async def _out_of_range(request: Request, exc: Exception) -> JSONResponse:
        # A number beyond the database's 64-bit integers (found by the API fuzz, e.g.
        # ?after_size=10**25): SQLite's driver raises OverflowError, PostgreSQL a DataError.
        return problem_response(Invalid(
            "A number in the request is out of range (at most 9223372036854775807), or a "
            "value does not fit its field.").body(request.url.path))

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
