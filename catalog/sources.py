"""Database tables as sources (库表): a resource's data pulled from a department's database.

A publisher names a PostgreSQL table (or one read-only query) and the credentials to read it;
govshare pulls it into a new data version on the resource's update cycle and on demand, with
the same column and type checks and the same all-or-nothing rule as an upload.

* **Streaming through Arrow.** The ADBC PostgreSQL driver reads with PostgreSQL's binary
  COPY into Arrow record batches, and DuckDB consumes the batches as it writes the segment
  (``warehouse.ingest_arrow``): no row-by-row Python, no intermediate file.
* **Credentials** are sealed with AES-GCM under the ``source-credentials`` purpose key
  (``kernel.secrets``), bound to the resource id; only ``location`` (host:port/database) is
  ever shown, and error texts are scrubbed of the user name and password before they are
  stored or logged.
* **Read-only.** The pull runs in a READ ONLY transaction with a statement timeout, in the
  department's own database under the department's own account: the query text is theirs,
  runs there and never reaches our metadata database or DuckDB as SQL.
* **Unchanged data is not a new version**: the SHA-256 of the pulled batches is compared
  with the last pull's.
* **Failures** (server down, wrong credentials, a column dropped) leave nothing stored, are
  kept on the source (status, error, consecutive failures), recorded in the signed log
  (``resource.source_failed``) for the publishers' inbox, and retried with backoff.
"""

from __future__ import annotations

import base64
import logging
import re
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

from sqlmodel import Session, col, select

from catalog import ingest, service, warehouse
from catalog.models import DataSource, Resource, ResourceStatus, SourceStatus, UpdateCycle
from catalog.schemas import ResourceIn
from kernel import secrets
from kernel.auth import Principal, principal_of
from kernel.db import session_scope, utcnow
from kernel.events import Actor, Event, publish
from kernel.identity import Role, User
from kernel.problems import Invalid, NotFound, Phrase, Problem
from kernel.settings import get_settings

log = logging.getLogger("govshare.catalog.sources")

PURPOSE = "source-credentials"
SCHEMES = ("postgresql", "postgres")
CONNECT_TIMEOUT_S = 10
STATEMENT_TIMEOUT_MS = 30 * 60 * 1000  # one pull may read for half an hour, not forever
MAX_BACKOFF = timedelta(hours=6)
# A table: an identifier, optionally schema-qualified (Chinese names are valid in PostgreSQL).
_IDENT = r"[A-Za-z_\u4e00-\u9fff][\w\u4e00-\u9fff$]*"
_TABLE = re.compile(rf"^({_IDENT})(?:\.({_IDENT}))?$")
_SELECT = re.compile(r"^\s*(select|with)\b", re.IGNORECASE)


@dataclass(frozen=True)
class Target:
    url: str  # with credentials; never logged or shown
    location: str  # host:port/database
    user: str
    password: str


def parse_url(url: str) -> Target:
    """Check a ``postgresql://user:password@host:port/database`` URL; name what is missing."""
    parts = urlsplit(url.strip())
    if parts.scheme not in SCHEMES:
        raise Invalid("The source must be a PostgreSQL URL: "
                      "postgresql://user:password@host:port/database.")
    database = unquote(parts.path.lstrip("/"))
    if not parts.hostname or not database or not parts.username:
        raise Invalid("The source URL needs a user, a host and a database: "
                      "postgresql://user:password@host:port/database.")
    location = f"{parts.hostname}:{parts.port or 5432}/{database}"
    return Target(url.strip(), location, unquote(parts.username), unquote(parts.password or ""))


def pull_sql(query: str) -> str:
    """The statement a pull runs: ``SELECT *`` of a named table, or the publisher's single
    SELECT (it runs read-only in their own database, so it is theirs to write)."""
    text = query.strip().rstrip(";").strip()
    table = _TABLE.match(text)
    if table:
        return "SELECT * FROM " + ".".join(_ident(p) for p in table.groups() if p)
    if not _SELECT.match(text) or ";" in text:
        raise Invalid("The source query must be a table name (e.g. public.residents) or a "
                      "single SELECT statement.")
    return text


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


# --- configuring -----------------------------------------------------------------------------


def configure(session: Session, who: Principal, code: str, url: str, query: str) -> DataSource:
    """Set (or replace) the resource's database source; the first pull is due at once."""
    resource = service.get_resource(session, code)
    service.require_provider(who, resource, service.SET_SOURCE)
    target = parse_url(url)
    pull_sql(query)  # refuse a bad query now, not at the first pull
    kid, sealed = secrets.seal(PURPOSE, target.url.encode(), _aad(resource))
    sealed_text = base64.b64encode(sealed).decode("ascii")
    source = _source_of(session, resource) or DataSource(
        resource_id=resource.id or 0, location="", query="", credentials_kid="",
        credentials="", configured_by=who.user_id)
    source.location, source.query = target.location, query.strip()
    source.credentials_kid, source.credentials = kid, sealed_text
    source.configured_by, source.status, source.failures = who.user_id, SourceStatus.never, 0
    source.last_error, source.last_sha256, source.next_pull_at = None, None, utcnow()
    session.add(source)
    session.flush()
    publish(session, Event("resource.source_configured", who.actor, {"resource": code},
                           {"kind": source.kind, "location": source.location,
                            "query": source.query}))
    return source


def register(session: Session, who: Principal, meta: ResourceIn, url: str,
             query: str, *, confirm_duplicate: bool = False) -> tuple[Resource, DataSource]:
    """Register a resource with its first version pulled from the database now, all or
    nothing: a clerk sees a wrong password or a missing column at once, as with a file.

    The pull runs before ``session`` is first used, so it never holds the write lock."""
    target, statement = parse_url(url), pull_sql(query)
    with session_scope(write=False) as read:
        provider = service.check_registration(read, who, meta)
        similar_to = service.check_similar(read, provider, meta,
                                           confirm_duplicate=confirm_duplicate)
    columns = service.columns_of(meta.items)
    incoming = _incoming("new")
    try:
        try:
            result, sha256 = _read_into(target, statement, columns, incoming)
        except Problem:
            raise
        except Exception as exc:
            raise Invalid("The source could not be read: "
                          f"{_scrub(_first_line(exc), target)}",
                          key="problem.catalog.source_unreadable",
                          params={"reason": _scrub(_first_line(exc), target)}) from None
        resource = service.register_pulled_resource(
            session, who, meta, incoming, result, sha256=sha256,
            nbytes=incoming.stat().st_size, similar_to=similar_to,
            confirm_duplicate=confirm_duplicate)
    finally:
        incoming.unlink(missing_ok=True)  # moved into place on success
    source = configure(session, who, resource.code, url, query)
    _mark_row(source, resource.update_cycle, sha256, SourceStatus.ok)
    session.add(source)
    return resource, source


def remove(session: Session, who: Principal, code: str) -> None:
    session.delete(_provider_source(session, who, code, service.REMOVE_SOURCE))
    publish(session, Event("resource.source_removed", who.actor, {"resource": code}, {}))


def get(session: Session, who: Principal, code: str) -> DataSource:
    return _provider_source(session, who, code, service.SEE_SOURCE)


def _provider_source(session: Session, who: Principal, code: str,
                     action: Phrase) -> DataSource:
    """The source of resource ``code``, for its provider's publishers only (``action`` names
    what they were refused, in the caller's language)."""
    resource = service.get_resource(session, code)
    service.require_provider(who, resource, action)
    source = _source_of(session, resource)
    if source is None:
        raise NotFound(f"Resource {code} has no data source.",
                       key="problem.catalog.no_source", params={"code": code})
    return source


def request_pull(session: Session, who: Principal, code: str) -> DataSource:
    """Make the source due now (the worker pulls it within its next poll)."""
    from catalog import jobs  # the job's kind lives with the catalog's other handlers

    source = get(session, who, code)
    source.next_pull_at = utcnow()
    session.add(source)
    session.flush()
    jobs.enqueue_pull(session, source.id or 0)
    return source


def _source_of(session: Session, resource: Resource) -> DataSource | None:
    return session.exec(select(DataSource).where(DataSource.resource_id == resource.id)).first()


def _unseal(source: DataSource, resource: Resource) -> str:
    sealed = base64.b64decode(source.credentials)
    return secrets.unseal(PURPOSE, source.credentials_kid, sealed, _aad(resource)).decode()


def _aad(resource: Resource) -> bytes:
    # Bound to the resource: a sealed URL copied onto another resource's row does not open.
    return f"data_source:{resource.id}".encode()


# --- pulling ---------------------------------------------------------------------------------


def due(now: datetime | None = None) -> list[int]:
    """Ids of the sources whose pull is due (active resources only)."""
    now = now or utcnow()
    with session_scope(write=False) as session:
        rows = session.exec(
            select(DataSource.id).join(Resource, Resource.id == DataSource.resource_id)  # type: ignore[arg-type]
            .where(col(DataSource.next_pull_at) <= now,
                   Resource.status == ResourceStatus.active)).all()
    return [int(r) for r in rows if r is not None]


def pull(source_id: int) -> SourceStatus:
    """Pull one source into a new data version; record the outcome on the source."""
    with session_scope(write=False) as session:
        source = session.get(DataSource, source_id)
        if source is None:
            return SourceStatus.never  # removed since it was due
        resource = session.get(Resource, source.resource_id)
        assert resource is not None
        code, cycle, previous = resource.code, resource.update_cycle, source.last_sha256
        try:
            who = _answerable(session, source, resource)
            target = parse_url(_unseal(source, resource))
            statement = pull_sql(source.query)
            columns = service.columns_of(resource.items)
        except Problem as problem:
            return _record_failure(source_id, code, problem.detail)
        except secrets.SecretsUnavailable:
            return _record_failure(source_id, code, "The stored credentials cannot be opened "
                                   "(the keys changed); a publisher must save the source again.")
    try:
        return _pull(source_id, code, cycle, previous, who, target, statement, columns)
    except Problem as problem:
        return _record_failure(source_id, code, _scrub(problem.detail, target))
    except Exception as exc:  # the driver's errors: down, refused, auth, a dropped column
        return _record_failure(source_id, code, _scrub(_first_line(exc), target))


def _pull(source_id: int, code: str, cycle: UpdateCycle, previous: str | None, who: Principal,
          target: Target, statement: str, columns: list[ingest.Column]) -> SourceStatus:
    incoming = _incoming(str(source_id))
    try:
        result, sha256 = _read_into(target, statement, columns, incoming)
        if sha256 == previous:
            incoming.unlink(missing_ok=True)
            with session_scope() as session:
                _mark(session, source_id, cycle, sha256, SourceStatus.unchanged)
            return SourceStatus.unchanged
        with session_scope() as session:
            version = service.add_pulled_version(session, who, code, incoming, result,
                                                 sha256=sha256, nbytes=incoming.stat().st_size)
            _mark(session, source_id, cycle, sha256, SourceStatus.ok)
            publish(session, Event("resource.source_pulled", who.actor, {"resource": code},
                                   {"version": version.version, "rows": result.rows,
                                    "data_sha256": sha256}))
        return SourceStatus.ok
    finally:
        incoming.unlink(missing_ok=True)


def _read_into(target: Target, statement: str, columns: list[ingest.Column],
               segment: Path) -> tuple[ingest.Ingested, str]:
    import adbc_driver_postgresql.dbapi as adbc  # a heavy import, needed by the worker only

    numbers = _numeric_columns(target, statement)
    with adbc.connect(_with_options(target.url)) as conn, conn.cursor() as cur:
        cur.execute("SET TRANSACTION READ ONLY")
        cur.execute(_numbers_as_text(statement, numbers))
        return ingest.ingest_arrow(cur.fetch_record_batch(), columns, segment,
                                   decimals=numbers.declared, exact_text=numbers.names)


_NUMERIC_OID = 1700


@dataclass(frozen=True)
class _Numbers:
    """The statement's result columns, in order, and which of them are ``numeric``."""

    columns: list[str]
    names: frozenset[str]  # the numeric columns
    declared: dict[str, tuple[int, int]]  # their numeric(p,s), where declared


def _numeric_columns(target: Target, statement: str) -> _Numbers:
    """The statement's columns and its ``numeric`` ones with their declared precision and
    scale, from PostgreSQL's description of its result (``LIMIT 0``: no rows are read).
    Knowing the type before the rows lets the segment be written as they arrive instead of
    after measuring them all. Anything going wrong here only means measuring and converting
    on our side: the pull itself reports errors."""
    import psycopg

    try:
        with psycopg.connect(_with_options(target.url)) as conn:
            cur = conn.execute(f"SELECT * FROM ({statement}) AS q LIMIT 0")
            found = list(cur.description or ())
    except psycopg.Error:
        return _Numbers([], frozenset(), {})
    numeric = [c for c in found if c.type_code == _NUMERIC_OID]
    return _Numbers([c.name for c in found], frozenset(c.name for c in numeric),
                    {c.name: (c.precision, c.scale) for c in numeric
                     if c.precision is not None and c.scale is not None})


def _numbers_as_text(statement: str, numbers: _Numbers) -> str:
    """The statement with its ``numeric`` columns sent as PostgreSQL's own text of them.

    The driver would otherwise turn each binary numeric into that same text on our side,
    digit by digit: the costliest part of reading a table with an amount column (half the
    client's time), where PostgreSQL's output function does it in the server's process.
    Unchanged when there are none, or when two columns share a name (the rewrite could not
    tell them apart)."""
    if not numbers.names or len(set(numbers.columns)) != len(numbers.columns):
        return statement
    picks = ", ".join(f"q.{_ident(c)}::text AS {_ident(c)}" if c in numbers.names
                      else f"q.{_ident(c)}" for c in numbers.columns)
    return f"SELECT {picks} FROM ({statement}) AS q"


def _with_options(url: str) -> str:
    """libpq options: a connect timeout, read-only by default, a statement timeout."""
    options = quote("-c default_transaction_read_only=on "
                    f"-c statement_timeout={STATEMENT_TIMEOUT_MS}")
    sep = "&" if "?" in url else "?"
    return f"{url}{sep}connect_timeout={CONNECT_TIMEOUT_S}&options={options}"


def _answerable(session: Session, source: DataSource, resource: Resource) -> Principal:
    """The publisher who configured the source, while they still publish for the provider."""
    user = session.get(User, source.configured_by)
    if (user is None or not user.is_active or user.department_id != resource.provider_id
            or Role.publisher not in user.roles):
        raise Invalid("The publisher who set up this source no longer publishes for the "
                      "department; a current publisher must save the source again.")
    return principal_of(session, user.username)


def _mark(session: Session, source_id: int, cycle: UpdateCycle, sha256: str,
          status: SourceStatus) -> None:
    source = session.get(DataSource, source_id)
    if source is not None:
        _mark_row(source, cycle, sha256, status)
        session.add(source)


def _mark_row(source: DataSource, cycle: UpdateCycle, sha256: str,
              status: SourceStatus) -> None:
    now = utcnow()
    source.status, source.last_sha256, source.failures, source.last_error = status, sha256, 0, None
    source.last_pull_at = source.last_success_at = now
    source.next_pull_at = now + cycle.period if cycle.period else None


def _incoming(tag: str) -> Path:
    root = get_settings().warehouse_dir
    return warehouse.staging_dir(root) / f"pull-{tag}-{uuid.uuid4().hex}.duckdb"


def _record_failure(source_id: int, code: str, reason: str) -> SourceStatus:
    log.warning("pull of the source of %s failed: %s", code, reason)
    with session_scope() as session:
        source = session.get(DataSource, source_id)
        if source is None:
            return SourceStatus.failed
        now = utcnow()
        source.failures += 1
        source.status, source.last_error, source.last_pull_at = SourceStatus.failed, reason, now
        source.next_pull_at = now + retry_after(source.failures)
        session.add(source)
        resource = session.get(Resource, source.resource_id)
        publish(session, Event("resource.source_failed", _system(resource), {"resource": code},
                               {"error": reason, "failures": source.failures}))
    return SourceStatus.failed


def retry_after(failures: int) -> timedelta:
    """1, 2, 4 … minutes after consecutive failures, at most ``MAX_BACKOFF``."""
    return min(timedelta(minutes=2 ** max(failures - 1, 0)), MAX_BACKOFF)


def _system(resource: Resource | None) -> Actor:
    return Actor(user_id=None, department_id=resource.provider_id if resource else None,
                 kind="system")


def _scrub(text: str, target: Target) -> str:
    """Remove the credentials from a driver's message before it is stored or logged."""
    for secret in (target.url, target.password, target.user):
        if secret:
            text = text.replace(secret, "***")
    return text[:500]


def _first_line(exc: Exception) -> str:
    lines = str(exc).strip().splitlines()
    return (lines[0] if lines else type(exc).__name__)[:500]
