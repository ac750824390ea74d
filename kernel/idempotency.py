"""Idempotency keys for the POSTs that create things (draft-ietf-httpapi-idempotency-key-header).

A client that may retry (a timeout, a dropped connection, a crashed worker) sends
``Idempotency-Key: <unique value>``. The first request with a key does the work; its response
is stored per caller, **in the same transaction as the thing it created**, so a crash leaves
either both or neither. Later requests with the same key and the same request get the stored
response replayed (``Idempotent-Replayed: true``); the same key with a different request is
refused with 422; a key whose first request is still running gets 409.

Use: ``dependencies=[IDEMPOTENT]`` on the endpoint, and ``route_class=IdempotentRoute`` on its
router (the route class hands the built response to the dependency before the request's
transaction commits, and serves replays). ``check_routes`` enforces the pairing at start-up.

Only 2xx responses are stored: a refused request created nothing, so its key stays free and
a corrected retry may use it. Two workers racing on one key both run, but the unique
(user, key) constraint lets only one commit; the other rolls back (with every file it wrote)
and answers 409, like a request that arrived while the first was in flight.
"""

import contextlib
import hashlib
import json
import threading
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable, Iterator
from datetime import datetime, timedelta
from typing import Any

from fastapi import Depends, FastAPI, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.routing import APIRoute
from sqlalchemy import Column, Text, UniqueConstraint, delete
from sqlalchemy.exc import IntegrityError
from sqlmodel import Field, Session, SQLModel, select
from starlette.datastructures import UploadFile

from kernel import crashpoints
from kernel.auth import Principal, SignedIn, WriteSession
from kernel.db import UTCDateTime, session_scope, utcnow
from kernel.problems import Conflict, Invalid, Problem

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
# How long a key is remembered: long enough for any client's retries, short enough that
# the table stays small. After that the same key starts a new request.
LIFETIME = timedelta(hours=24)
MAX_KEY_LENGTH = 255
# Response fields never stored: a plain API token is shown once and exists only as a hash.
SECRET_FIELDS = frozenset({"token"})


class IdempotencyRecord(SQLModel, table=True):
    __tablename__ = "idempotency_key"
    __table_args__ = (UniqueConstraint("user_id", "key"),)
    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="user.id", index=True)
    key: str = Field(max_length=MAX_KEY_LENGTH)
    method: str = Field(max_length=8)
    path: str = Field(max_length=1000)
    fingerprint: str = Field(max_length=64)  # SHA-256 of the canonical request
    status_code: int
    media_type: str = Field(max_length=100)
    body: str = Field(sa_column=Column(Text, nullable=False))
    redacted: bool = False  # secret fields were dropped: the body cannot be replayed as is
    created_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime))
    expires_at: datetime = Field(sa_column=Column(UTCDateTime, nullable=False, index=True))


class KeyReused(Problem):
    status, slug, title = 422, "idempotency-key-reused", "Idempotency-Key used for another request"


class KeyInFlight(Conflict):
    slug, title = "idempotency-key-in-flight", "A request with this Idempotency-Key is running"


class _Replay(Exception):
    def __init__(self, response: Response) -> None:
        self.response = response


# Keys being worked on in this process: a second request with one of them gets 409 at once
# instead of doing the work a second time (across processes the unique constraint decides).
_running: set[tuple[int, str]] = set()
_running_lock = threading.Lock()
_STATE = "govshare_idempotent_response"


def _valid_key(raw: str) -> str:
    key = raw.strip()
    if not key or len(key) > MAX_KEY_LENGTH or not key.isascii() or not key.isprintable():
        raise Invalid(f"The {HEADER} header must be 1–{MAX_KEY_LENGTH} printable ASCII "
                      "characters, e.g. a UUID.",
                      key="problem.kernel.idempotency_key_form",
                      params={"HEADER": HEADER, "MAX_KEY_LENGTH": MAX_KEY_LENGTH})
    return key


async def _fingerprint(request: Request) -> str:
    """SHA-256 over method, path, query and the body's *content*: a multipart body is reduced
    to its fields and file digests, since each retry of the same upload has a new boundary."""
    digest = hashlib.sha256()
    digest.update(f"{request.method} {request.url.path}\n".encode())
    digest.update(json.dumps(sorted(request.query_params.multi_items())).encode())
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media in ("multipart/form-data", "application/x-www-form-urlencoded"):
        parts: list[tuple[str, str]] = []
        for name, value in (await request.form()).multi_items():
            if isinstance(value, UploadFile):
                parts.append((name, f"file:{value.filename}:{await _file_sha256(value)}"))
            else:
                parts.append((name, f"field:{value}"))
        digest.update(json.dumps(sorted(parts)).encode())
    else:
        body = await request.body()
        try:
            canonical = json.dumps(json.loads(body), sort_keys=True, separators=(",", ":"))
            digest.update(canonical.encode())
        except ValueError:
            digest.update(body)
    return digest.hexdigest()


async def _file_sha256(upload: UploadFile) -> str:
    digest = hashlib.sha256()
    while chunk := await upload.read(1 << 20):
        digest.update(chunk)
    await upload.seek(0)
    return digest.hexdigest()


def _lookup(user_id: int, key: str) -> IdempotencyRecord | None:
    # A read transaction of its own: using the request's write session here would take
    # SQLite's write lock before the upload is loaded (see catalog.service.register_resource).
    with session_scope(write=False) as session:
        return session.exec(select(IdempotencyRecord).where(
            IdempotencyRecord.user_id == user_id, IdempotencyRecord.key == key,
            IdempotencyRecord.expires_at > utcnow())).first()


def _replay(record: IdempotencyRecord) -> Response:
    if record.redacted:
        raise KeyInFlight(
            f"A request with this {HEADER} already succeeded; its secret was shown only in "
            "that first response and is not kept. Use the result you received then (or "
            "revoke it and ask again with a new key).",
            original_status=record.status_code, original=json.loads(record.body),
                          key="problem.kernel.idempotency_secret_gone",
                          params={"HEADER": HEADER})
    headers = {REPLAYED_HEADER: "true"}
    if record.status_code == 202:
        # An accepted request's status URL is in its body (``status_url``): the replay gives
        # it as ``Location`` again, as the first answer did (headers are not stored).
        with contextlib.suppress(ValueError, AttributeError):
            url = json.loads(record.body).get("status_url")
            if isinstance(url, str):
                headers["Location"] = url
    return Response(record.body, status_code=record.status_code, media_type=record.media_type,
                    headers=headers)


def _store(session: Session, who: Principal, key: str, request: Request, fingerprint: str,
           response: Response) -> None:
    body = bytes(response.body).decode()
    redacted = False
    try:
        parsed = json.loads(body)
    except ValueError:
        parsed = None
    if isinstance(parsed, dict) and SECRET_FIELDS & parsed.keys():
        body = json.dumps({k: v for k, v in parsed.items() if k not in SECRET_FIELDS})
        redacted = True
    now = utcnow()
    # An expired record of the same key is replaced (the unique constraint would refuse it).
    session.execute(delete(IdempotencyRecord).where(
        IdempotencyRecord.user_id == who.user_id,  # type: ignore[arg-type]
        IdempotencyRecord.key == key,  # type: ignore[arg-type]
        IdempotencyRecord.expires_at <= now))  # type: ignore[arg-type]
    session.add(IdempotencyRecord(
        user_id=who.user_id, key=key, method=request.method, path=request.url.path[:1000],
        fingerprint=fingerprint, status_code=response.status_code,
        media_type=(response.media_type or "application/json")[:100], body=body,
        redacted=redacted, created_at=now, expires_at=now + LIFETIME))
    try:
        session.flush()
    except IntegrityError:
        # Another worker committed the same key while this request ran: this one's work is
        # rolled back with the transaction, and the client's retry gets the stored response.
        raise KeyInFlight(f"Another request with this {HEADER} finished first; nothing was "
                          "done twice. Send the request again to get its response.",
                          key="problem.kernel.idempotency_raced",
                          params={"HEADER": HEADER}) from None
    crashpoints.reach("idempotency.stored")  # the key and the created thing, not yet committed


async def idempotency(request: Request, who: SignedIn, session: WriteSession,
                      ) -> AsyncIterator[None]:
    """The dependency behind ``IDEMPOTENT``."""
    raw = request.headers.get(HEADER)
    if raw is None:
        yield
        return
    key = _valid_key(raw)
    fingerprint = await _fingerprint(request)
    stored = await run_in_threadpool(_lookup, who.user_id, key)
    if stored is not None:
        if stored.fingerprint != fingerprint:
            raise KeyReused(f"This {HEADER} was already used for a different request "
                            f"({stored.method} {stored.path}). Use a new key for a new request.",
                            key="problem.kernel.idempotency_reused",
                            params={"HEADER": HEADER,
                                    "method": stored.method,
                                    "path": stored.path})
        raise _Replay(_replay(stored))
    slot = (who.user_id, key)
    with _running_lock:
        if slot in _running:
            raise KeyInFlight(f"A request with this {HEADER} is still being processed. "
                              "Wait a moment and send it again to get its response.",
                              key="problem.kernel.idempotency_in_flight", params={"HEADER": HEADER})
        _running.add(slot)
    try:
        yield
        response = getattr(request.state, _STATE, None)
        if isinstance(response, Response) and 200 <= response.status_code < 300:
            await run_in_threadpool(_store, session, who, key, request, fingerprint, response)
    finally:
        # The request's transaction commits right after this (LIFO exit); a request arriving
        # in between finds no record yet and runs into the unique constraint instead.
        with _running_lock:
            _running.discard(slot)


# Function scope: the record is written before the response leaves, inside the transaction.
IDEMPOTENT: Any = Depends(idempotency, scope="function")


class IdempotentRoute(APIRoute):
    """Hands each built response to ``idempotency`` (which runs its exit before the request's
    function-scoped write session commits) and serves replays."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route_handler(request: Request) -> Response:
            try:
                response = await handler(request)
            except _Replay as replay:
                return replay.response
            setattr(request.state, _STATE, response)
            return response

        return route_handler


def _uses_idempotency(route: APIRoute) -> bool:
    stack = list(route.dependant.dependencies)
    while stack:
        dep = stack.pop()
        if dep.call is idempotency:
            return True
        stack.extend(dep.dependencies)
    return False


def _api_routes(routes: Iterable[Any], prefix: str = "") -> Iterator[tuple[str, APIRoute]]:
    """Every APIRoute with its full path, also inside included routers (which this FastAPI
    keeps as nested, lazily resolved routers rather than copying their routes)."""
    for route in routes:
        if isinstance(route, APIRoute):
            yield prefix + route.path, route
        included = getattr(route, "original_router", None)
        if included is not None:
            context = getattr(route, "include_context", None)
            yield from _api_routes(included.routes, prefix + getattr(context, "prefix", ""))


def check_routes(app: FastAPI) -> None:
    """Fail at start-up if an endpoint takes ``IDEMPOTENT`` on a router without
    ``IdempotentRoute`` (its keys would never be stored)."""
    for path, route in _api_routes(app.routes):
        if _uses_idempotency(route) and not isinstance(route, IdempotentRoute):
            raise RuntimeError(f"{path}: IDEMPOTENT needs route_class=IdempotentRoute")


def idempotent_paths(app: FastAPI) -> set[tuple[str, str]]:
    """(method, path) of every endpoint that honours Idempotency-Key (tests, docs)."""
    return {(m, path) for path, r in _api_routes(app.routes) if _uses_idempotency(r)
            for m in r.methods or ()}
