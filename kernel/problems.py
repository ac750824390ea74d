"""RFC 9457 problem details for every API error.

Services raise ``Problem`` subclasses with a message a clerk can act on; the handlers here turn
them (and FastAPI's own validation and HTTP errors) into ``application/problem+json``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger("govshare")

PROBLEM_JSON = "application/problem+json"
TYPE_BASE = "https://govshare.example/problems/"


# Problem details in the caller's language (Accept-Language; English when nothing matches).
# The composition root installs the message catalogue (govshare.web.i18n) with
# ``set_localizer``; the kernel knows no catalogue of its own. The localizer gets the language,
# the message key (or None) with its parameters, and the English text, and returns the text to
# show, or None to keep the English.
Localizer = Callable[[str, str | None, dict[str, Any], str], str | None]
_localizer: Localizer | None = None


def set_localizer(fn: Localizer | None) -> None:
    global _localizer
    _localizer = fn


def preferred_language(accept_language: str | None) -> str:
    """``zh-CN`` or ``en``: the first language of the header we have (q-values respected)."""
    ranked: list[tuple[float, int, str]] = []
    for i, part in enumerate((accept_language or "").split(",")):
        tag, _, params = part.strip().partition(";")
        q = 1.0
        if params.strip().startswith("q="):
            try:
                q = float(params.strip()[2:])
            except ValueError:
                q = 0.0
        ranked.append((-q, i, tag.strip().lower()))
    for _, _, tag in sorted(ranked):
        if tag.startswith("zh"):
            return "zh-CN"
        if tag.startswith("en") or tag == "*":
            return "en"
    return "en"


def localize(lang: str, key: str | None, params: dict[str, Any], english: str) -> str:
    if _localizer is None or (lang == "en" and key is None):
        return english
    return _localizer(lang, key, params, english) or english


@dataclass(frozen=True)
class Phrase:
    """A fragment of a message with its own catalogue key (an action, a state, a party), so a
    message with it as a parameter reads right in every language. Formats as its English
    text, so an f-string that uses it gives the English message."""

    key: str
    english: str
    params: Mapping[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        return self.english

    def __format__(self, spec: str) -> str:
        return format(self.english, spec)


@dataclass(frozen=True)
class Phrases:
    """Phrases joined into one parameter: ``joiner`` "list" ("a, b"), "and" ("a and b"), "or"
    ("a or b") or "semicolon" ("a; b"); each language's separator is the catalogue's
    ``phrase.join.<joiner>``."""

    items: tuple[Phrase, ...]
    joiner: str = "list"

    def __str__(self) -> str:
        return _ENGLISH_JOINERS.get(self.joiner, ", ").join(p.english for p in self.items)

    def __format__(self, spec: str) -> str:
        return format(str(self), spec)


_ENGLISH_JOINERS = {"list": ", ", "and": " and ", "or": " or ", "semicolon": "; "}


def params_to_json(params: Mapping[str, Any]) -> dict[str, Any]:
    """A problem's parameters as JSON (to keep with a job's result and localize later)."""
    def one(value: Any) -> Any:
        if isinstance(value, Phrase):
            return {"$phrase": value.key, "english": value.english,
                    "params": params_to_json(value.params)}
        if isinstance(value, Phrases):
            return {"$phrases": [one(p) for p in value.items], "joiner": value.joiner}
        if isinstance(value, datetime):
            return {"$datetime": value.isoformat()}
        if isinstance(value, date):
            return {"$date": value.isoformat()}
        return value if isinstance(value, str | int | float | bool) or value is None \
            else str(value)
    return {k: one(v) for k, v in params.items()}


def params_from_json(data: Mapping[str, Any]) -> dict[str, Any]:
    def one(value: Any) -> Any:
        if isinstance(value, dict) and "$phrase" in value:
            return Phrase(value["$phrase"], value["english"],
                          params_from_json(value.get("params") or {}))
        if isinstance(value, dict) and "$phrases" in value:
            return Phrases(tuple(one(p) for p in value["$phrases"]), value["joiner"])
        if isinstance(value, dict) and "$datetime" in value:
            return datetime.fromisoformat(value["$datetime"])
        if isinstance(value, dict) and "$date" in value:
            return date.fromisoformat(value["$date"])
        return value
    return {k: one(v) for k, v in data.items()}


class Problem(Exception):
    """An error the caller can fix or understand. ``detail`` is shown to the user, in English
    or, through ``key`` and ``params`` (a message-catalogue entry), in the caller's language;
    a message without a key is looked up by its English text."""

    status = 400
    slug = "bad-request"
    title = "Bad request"

    def __init__(self, detail: str, *, errors: list[dict[str, Any]] | None = None,
                 key: str | None = None, params: dict[str, Any] | None = None,
                 error_keys: list[tuple[str, dict[str, Any]] | None] | None = None,
                 **extensions: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors = errors
        # Per entry of ``errors``: the catalogue key and parameters of its message, if any.
        self.error_keys = error_keys or []
        self.key = key
        self.params = params or {}
        self.extensions = extensions

    def body(self, instance: str | None = None, lang: str = "en") -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": TYPE_BASE + self.slug,
            "title": localize(lang, f"problem.title.{self.slug}", {}, self.title),
            "status": self.status,
            "detail": localize(lang, self.key, self.params, self.detail),
        }
        if instance:
            body["instance"] = instance
        if self.errors:
            keys = self.error_keys + [None] * (len(self.errors) - len(self.error_keys))
            body["errors"] = [_localize_error(lang, e, k) for e, k in zip(self.errors, keys,
                                                                          strict=False)]
        body.update(self.extensions)
        return body


def _localize_error(lang: str, error: dict[str, Any],
                    keyed: tuple[str, dict[str, Any]] | None) -> dict[str, Any]:
    """One entry of ``errors``: its ``message`` (or ``problem``, for files) in the caller's
    language; the other fields are names and codes, the same in every language."""
    if any(isinstance(v, Phrase) for v in error.values()):  # the message's own catalogue key
        return {k: (v.english if lang == "en" else localize(lang, v.key, dict(v.params),
                                                             v.english))
                if isinstance(v, Phrase) else v for k, v in error.items()}
    field = "message" if "message" in error else "problem" if "problem" in error else None
    if lang == "en" or field is None:
        return error
    key, params = keyed if keyed else (None, {})
    text = str(error[field])
    if key is None and error.get("type") == "value_error":  # our validators' own messages
        own = text.removeprefix("Value error, ")
        translated = localize(lang, None, {}, own)
        if translated != own:
            return {**error, field: translated}
    if key is None and error.get("type"):  # pydantic's error types
        key = f"validation.{error['type']}"
    return {**error, field: localize(lang, key, params, text)}


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
        # Each message by its error type's catalogue entry (validation.<type>), with pydantic's
        # context as parameters; our validators' plain ValueErrors are looked up by text.
        keyed: list[tuple[str, dict[str, Any]] | None] = [
            None if e.get("type", "value_error") == "value_error" else
            (f"validation.{e['type']}", {k: str(v) for k, v in (e.get("ctx") or {}).items()})
            for e in errors]
        return cls(f"Some fields of {what} are missing or invalid: {fields}.", errors=listed,
                   error_keys=keyed,
                   key="problem.invalid_fields",
                   params={"fields": ", ".join(e["field"] or "—" for e in listed[:5])})


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
    def lang(request: Request) -> str:
        return preferred_language(request.headers.get("accept-language"))

    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else {}
        if "retry_after" in exc.extensions:  # RFC 9110 §10.2.3, for 429 and 503
            headers["Retry-After"] = str(exc.extensions["retry_after"])
        return problem_response(exc.body(request.url.path, lang(request)), headers or None)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = exc.detail if isinstance(exc.detail, str) else "Request failed"
        language = lang(request)
        body = {
            "type": "about:blank",
            "title": localize(language, f"problem.http.{exc.status_code}", {},
                              _HTTP_TITLES.get(exc.status_code, "Error")),
            "status": exc.status_code,
            "detail": localize(language, None, {}, detail),
            "instance": request.url.path,
        }
        return problem_response(body, dict(exc.headers) if exc.headers else None)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        body = Invalid.of(exc.errors(), "the request").body(request.url.path, lang(request))
        return problem_response(body)

    @app.exception_handler(OverflowError)
    @app.exception_handler(DataError)
    async def _out_of_range(request: Request, exc: Exception) -> JSONResponse:
        # A number beyond the database's 64-bit integers (found by the API fuzz, e.g.
        # ?after_size=10**25): SQLite's driver raises OverflowError, PostgreSQL a DataError.
        return problem_response(Invalid(
            "A number in the request is out of range (at most 9223372036854775807), or a "
            "value does not fit its field.").body(request.url.path, lang(request)))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        # Log the type and path only: exception text can carry data values or secrets.
        log.error("unhandled %s on %s %s", type(exc).__name__, request.method, request.url.path,
                  exc_info=exc)
        body = Problem("govshare hit an internal error; nothing was changed. Try again, and "
                       "report the time to your administrator if it persists.",
                       key="problem.internal").body(request.url.path, lang(request))
        body.update(type="about:blank", title=localize(lang(request), "problem.http.500", {},
                                                       "Internal error"), status=500)
        return problem_response(body)
