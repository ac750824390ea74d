"""Desensitize and deliver: packages (file), query views (api), download links.

One delivery runs in three phases, so the long DuckDB work never holds the database's write
lock and a crash at any point leaves nothing visible and nothing lost:

1. *prepare* (short write transaction): check the move is legal, find or skip the period's
   run (``(grant, run_key)`` is unique: a retry of a finished run returns it, which makes the
   step idempotent), snapshot what to deliver.
2. *produce* (no transaction): DuckDB runs ``COPY (SELECT <masked columns> FROM data WHERE
   <row filters>) TO '<staging>/<job>.partial'`` (on a connection of its own with the HMAC
   registered through DuckDB's C API when available, ``access.native.copy``), the raw-PII
   check and k-anonymity scan the written file, and it is fsynced and hashed. A job holds an
   exclusive ``flock`` on its own lock file (``<staging>/<job>.lock``) from start to commit.
3. *commit* (short write transaction): insert the Delivery row, sign the manifest, rename the
   file into ``deliveries/<application>/`` and write the manifest (both write-then-rename),
   move the application to ``delivered``, publish the event, commit. A rollback removes the
   renamed files (``on_rollback``).

A crash in phase 2 leaves a ``.partial`` file in the staging directory (never served); a crash
between the rename and the commit leaves a file no Delivery row names. ``sweep`` deletes both
once their job's lock is free (the kernel drops a dead process's flock), and every delivery
sweeps its own application's leftovers first, so a retry after a crash simply runs again.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import hmac
import json
import logging
import os
import re
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from access import assessment, masking, native, pii, pseudonym, risk
from access import service as svc
from access.calendar import WorkCalendar
from access.flows import Action, next_state
from access.masking import OutputColumn, RowFilter
from access.models import (
    Application,
    ApplicationState,
    Delivery,
    DeliveryMethod,
    FileFormat,
    Grant,
    Schedule,
)
from access.schemas import QueryIn
from catalog.models import DataItem, ItemKind, ItemType, Resource, Sensitivity
from catalog.service import segments_for
from catalog.warehouse import (
    MEMORY_LIMIT_SQL,
    TABLE,
    data_view_sql,
    open_data,
    quote,
)
from kernel import crashpoints, db, secrets, storage
from kernel.auth import Principal
from kernel.db import on_rollback, utcnow
from kernel.events import Actor, Event, publish
from kernel.identity import Department, Role
from kernel.problems import Conflict, Forbidden, Invalid, NotFound, Problem
from kernel.settings import get_settings
from translog import canonical
from translog import keys as log_keys
from translog import service as log_service

log = logging.getLogger("govshare")

MANIFEST_FORMAT = "govshare-delivery-manifest"
MANIFEST_VERSION = 1
_JOB_RE = re.compile(r"([0-9a-f]{32})")


class DeliveryBlocked(Conflict):
    slug, title = "delivery-blocked", "Delivery blocked by the desensitization check"


class Gone(Problem):
    status, slug, title = 410, "gone", "No longer available"


def deliveries_dir() -> Path:
    return get_settings().data_dir / "deliveries"


def _staging() -> Path:
    path = deliveries_dir() / ".staging"
    path.mkdir(parents=True, exist_ok=True)
    return path


# --- run keys ---------------------------------------------------------------------------------

def run_key_for(schedule: Schedule, today: date, version: int) -> str:
    """The period a package is for; one package per grant and period."""
    if schedule is Schedule.daily:
        return today.isoformat()
    if schedule is Schedule.weekly:
        year, week, _ = today.isocalendar()
        return f"{year}-W{week:02d}"
    if schedule is Schedule.monthly:
        return today.strftime("%Y-%m")
    if schedule is Schedule.on_new_version:
        return f"v{version}"
    return "once"


# --- the job ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Item:
    """A detached copy of a DataItem (the job runs outside any session)."""

    name: str
    type: ItemType
    kind: ItemKind | None
    sensitivity: Sensitivity
    is_key: bool


@dataclass
class Job:
    app_id: int
    grant_id: int
    run_key: str
    method: DeliveryMethod
    file_format: FileFormat
    resource_code: str
    version: int
    segments: list[Path]
    items: list[_Item]
    plan: masking.Plan
    row_filters: list[RowFilter]
    quasi_identifiers: list[str]
    k_min: int | None
    key: bytes | None
    as_of: date
    sensitive_items: list[str] = field(default_factory=list)
    max_suppression: float | None = None
    token: str = field(default_factory=lambda: uuid.uuid4().hex)

    @property
    def suffix(self) -> str:
        return ".csv" if self.file_format is FileFormat.csv else ".parquet"


@dataclass
class Produced:
    rows: int
    hits: list[pii.Hit]
    k: int | None
    risk: dict[str, Any] | None = None  # access.risk's report of the package as written
    suppressed: int = 0  # rows dropped as outliers (classes smaller than k_min)
    path: Path | None = None
    bytes: int = 0
    sha256: str | None = None
    columns: list[str] = field(default_factory=list)


def deliver(app_id: int, *, who: Principal | None = None,
            run_key: str | None = None) -> Delivery:
    """Produce (or return the already produced) package for the current period."""
    sweep(app_id)
    prepared = _prepare(app_id, who, run_key)
    if isinstance(prepared, Delivery):
        return prepared
    with _job_lock(prepared.token):
        try:
            produced = _produce(prepared)
        except BaseException:
            _discard(prepared)
            raise
        if produced.hits or _k_too_small(prepared, produced):
            _discard(prepared)
            _record_block(prepared, produced, who)
        crashpoints.reach("delivery.after_write")
        return _commit(prepared, produced, who)


def _prepare(app_id: int, who: Principal | None, run_key: str | None) -> Job | Delivery:
    with db.session_scope(write=True) as session:
        app = svc.load(session, app_id)
        next_state(app.state, Action.deliver, svc.parties_of(session, who, app), app_id=app.id)
        grant = svc.grant_of(session, app)
        assert grant is not None  # created with the approval
        _check_window(grant)
        resource = session.get(Resource, app.resource_id)
        assert resource is not None
        cal = WorkCalendar.from_settings()
        today = cal.local_date(utcnow())
        key = run_key or run_key_for(app.schedule, today, resource.current_version)
        done = _existing(session, grant.id or 0, key)
        if done is not None:
            return done
        return _job(session, app, grant, resource, key, today)


def _check_window(grant: Grant) -> None:
    now = utcnow()
    if now < grant.valid_from:
        raise Conflict(f"The period of use starts {grant.valid_from:%Y-%m-%d}; the first "
                       "package is produced then.")
    if now >= grant.valid_until:
        raise Gone("The period of use is over; file a new application.")


def _existing(session: Session, grant_id: int, run_key: str) -> Delivery | None:
    return session.exec(select(Delivery).where(Delivery.grant_id == grant_id,
                                               Delivery.run_key == run_key)).first()


def _job(session: Session, app: Application, grant: Grant, resource: Resource, run_key: str,
         today: date) -> Job:
    plan = masking.plan_from_json(app.masking_plan)
    needs_key = any(r.rule is masking.MaskingRule.pseudonymize for r in plan.values())
    return Job(
        app_id=app.id or 0, grant_id=grant.id or 0, run_key=run_key, method=app.delivery_method,
        file_format=app.file_format, resource_code=resource.code,
        version=resource.current_version, segments=segments_for(session, resource),
        items=[_detach(i) for i in resource.items], plan=plan,
        row_filters=[RowFilter.model_validate(f) for f in app.row_filters],
        quasi_identifiers=list(app.quasi_identifiers), k_min=app.k_min,
        key=pseudonym.department_key(session, app.requester_department_id) if needs_key
        else None, as_of=today, sensitive_items=list(app.sensitive_items),
        max_suppression=app.max_suppression)


def _detach(item: DataItem) -> _Item:
    return _Item(item.name, item.type, item.kind, item.sensitivity, item.is_key)


@contextlib.contextmanager
def _job_lock(token: str) -> Iterator[None]:
    """Hold the job's lock file while its files are unowned by a committed row."""
    lock = _staging() / f"{token}.lock"
    fd = os.open(lock, os.O_CREAT | os.O_RDWR, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        lock.unlink(missing_ok=True)
        os.close(fd)


# --- producing --------------------------------------------------------------------------------

def masked_select(con: duckdb.DuckDBPyConnection, job: Job, *, csv: bool = False
                  ) -> tuple[str, list[OutputColumn]]:
    """``SELECT <masked columns> FROM data WHERE <approver's row filters>``."""
    if job.key is not None:
        pseudonym.install(con, job.key)
    columns = masking.compile_columns(job.items, job.plan, as_of=job.as_of, csv=csv)
    where = masking.filter_sql(job.row_filters,
                               {i.name: (quote(i.name), i.type) for i in job.items})
    select_list = ", ".join(f"{c.sql} AS {quote(c.name)}" for c in columns)
    query = f"SELECT {select_list} FROM {TABLE} WHERE {where}"
    if _suppressing(job):
        assert job.k_min is not None
        query = assessment.suppress_outliers(query, job.quasi_identifiers, job.k_min)
    return query, columns


def _suppressing(job: Job) -> bool:
    return job.max_suppression is not None and job.k_min is not None \
        and bool(job.quasi_identifiers)


# Parquet v2 pages and encodings (DELTA_LENGTH_BYTE_ARRAY for strings) with zstd at level 1,
# whose entropy coding halves a column of hex tokens (snappy and lz4 cannot), and no
# dictionaries: DuckDB hashes every value of every column trying to build one, which a
# column of pseudonyms or masked mobiles never fits, and zstd takes repetition out anyway.
# Measured on the benchmark's masked 3M rows against v1 + snappy: ~20% less CPU, 48 MB
# instead of 115 MB (which also halves the fsync and the hash). Read by Arrow, pandas,
# polars, Spark 3 and DuckDB; CSV remains for tools that read none of them. (zstd at its
# default level 3 cost ~1 s more per 1M pseudonyms.)
_PARQUET = ("FORMAT parquet, PARQUET_VERSION v2, COMPRESSION zstd, COMPRESSION_LEVEL 1, "
            "DICTIONARY_SIZE_LIMIT 1")


def _partial(job: Job) -> Path:
    return _staging() / f"{job.token}.partial"


def _produce(job: Job) -> Produced:
    with open_data(job.segments) as con:
        if job.method is DeliveryMethod.api:
            return _check_view(con, job)
        return _write_file(con, job)


def _check_view(con: duckdb.DuckDBPyConnection, job: Job) -> Produced:
    query, columns = masked_select(con, job)
    relation = f"({query})"
    (count,), = con.execute(f"SELECT count(*) FROM {relation}").fetchall()
    produced = Produced(rows=int(count),
                        hits=pii.scan(con, relation, _targets(columns, typed=True)), k=None,
                        columns=[c.name for c in columns])
    _measure(con, job, relation, columns, produced, typed=True)
    return produced


def _write_file(con: duckdb.DuckDBPyConnection, job: Job) -> Produced:
    csv = job.file_format is FileFormat.csv
    query, columns = masked_select(con, job, csv=csv)
    tmp = _partial(job)
    target = str(tmp).replace("'", "''")
    options = "FORMAT csv, HEADER" if csv else _PARQUET
    rows = _copy(con, job, f"COPY ({query}) TO '{target}' ({options})")
    relation = f"read_csv('{target}', header=true, all_varchar=true)" if csv else \
        f"read_parquet('{target}')"
    # Flushing the file waits on the disk, hashing it on a core (hashlib releases the GIL);
    # the checks read it through DuckDB meanwhile. All finish before anything is published.
    with ThreadPoolExecutor(max_workers=2) as pool:
        flushed = pool.submit(storage.fsync_file, tmp)
        hashed = pool.submit(_sha256, tmp)
        hits = pii.scan(con, relation, _targets(columns, typed=not csv))
        produced = Produced(rows=rows, hits=hits, k=None, path=tmp,
                            columns=[c.name for c in columns])
        if not hits:
            _measure(con, job, relation, columns, produced, typed=not csv)
        flushed.result()
        produced.sha256 = hashed.result()
    produced.bytes = tmp.stat().st_size
    return produced


def _measure(con: duckdb.DuckDBPyConnection, job: Job, relation: str,
             columns: list[OutputColumn], produced: Produced, *, typed: bool) -> None:
    """The risk report of the package as written (``access.risk``), for its manifest; its k
    is the k-anonymity gate's. QIs the approver did not name are proposed from the items,
    for the report only."""
    delivered = [c.name for c in columns]
    qis = job.quasi_identifiers or risk.propose_quasi_identifiers(job.items, delivered)
    sensitive = job.sensitive_items or risk.propose_sensitive(job.items, delivered, qis)
    numeric = {c.name for c in columns if typed and c.type in (ItemType.integer,
                                                                ItemType.decimal)}
    population = None
    if job.row_filters and qis:  # a sample of the table: the table is its population
        population, _ = assessment.masked_relation(job.items, job.plan, qis, [],
                                                   as_of=job.as_of, filtered=False)
    report = risk.measure(con, relation, qis, [risk.Sensitive(s, s in numeric)
                                               for s in sensitive],
                          k_target=job.k_min, population=population)
    produced.risk = report.as_dict() | {"proposed": not job.quasi_identifiers,
                                        "sensitive_items": sensitive}
    if job.quasi_identifiers:
        produced.k = report.k
    if _suppressing(job):
        where = masking.filter_sql(job.row_filters,
                                   {i.name: (quote(i.name), i.type) for i in job.items})
        (total,), = con.execute(f"SELECT count(*) FROM {TABLE} WHERE {where}").fetchall()
        produced.suppressed = int(total) - produced.rows
        produced.risk["suppressed_rows"] = produced.suppressed


def _copy(con: duckdb.DuckDBPyConnection, job: Job, statement: str) -> int:
    """Run the delivery's COPY: on a connection of its own whose pseudonym functions DuckDB
    calls through its C API (``access.native.copy``: no Arrow round trip, no GIL), or, when
    that is unavailable, on ``con`` with the Arrow functions ``masked_select`` installed.
    Both compute the same tokens with the same C loop."""
    lib = native.load()
    if lib is None or lib.api is None:
        row = con.execute(statement).fetchone()
        return int(row[0]) if row else 0
    setup = [MEMORY_LIMIT_SQL, *data_view_sql(job.segments)]
    try:
        return native.copy(lib, job.key, pseudonym.functions(), [*setup, statement],
                           pseudonym.TOKEN_HEX_CHARS)
    except native.CopyFailed as exc:
        raise duckdb.Error(str(exc)) from None


def _sha256(path: Path) -> str:
    with path.open("rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def _targets(columns: list[OutputColumn], *, typed: bool) -> list[pii.Target]:
    """What the raw-PII check expects of each masked column (CSV reads back as text).
    Columns that are the pseudonym function itself hold tokens by construction and are not
    read back (``OutputColumn.tokens_only``); any other pseudonymised column is checked
    value by value for the token shape."""
    out = []
    for c in columns:
        if not c.masked or c.tokens_only:
            continue
        if c.rule == masking.MaskingRule.pseudonymize:
            out.append(pii.Target(c.name, "pseudonym"))
        elif typed and c.type in (ItemType.integer, ItemType.decimal):
            out.append(pii.Target(c.name, "number"))
        else:
            out.append(pii.Target(c.name, "text"))
    return out


def _k_too_small(job: Job, produced: Produced) -> bool:
    if job.k_min is not None and produced.k is not None and produced.k < job.k_min:
        return True
    return _too_many_suppressed(job, produced)


def _too_many_suppressed(job: Job, produced: Produced) -> bool:
    if not _suppressing(job) or job.max_suppression is None:
        return False
    total = produced.rows + produced.suppressed
    return total > 0 and produced.suppressed > job.max_suppression * total


def _discard(job: Job) -> None:
    _partial(job).unlink(missing_ok=True)


def _record_block(job: Job, produced: Produced, who: Principal | None) -> None:
    """Record why the package was withheld, then refuse (the provider tightens the plan)."""
    if produced.hits:
        kinds = sorted({f"{h.kind} in {h.column}" for h in produced.hits})
        reason = "values that look like raw personal data: " + ", ".join(kinds)
    elif _too_many_suppressed(job, produced):
        total = produced.rows + produced.suppressed
        reason = (f"{produced.suppressed} of {total} rows are in classes smaller than "
                  f"k_min {job.k_min}, more than the {job.max_suppression:.1%} that may be "
                  f"suppressed")
    else:
        reason = f"k-anonymity {produced.k} is below the required {job.k_min}"
    with db.session_scope(write=True) as session:
        app = svc.load(session, job.app_id, lock=True)
        app.delivery_blocked = reason
        detail = {"reason": reason, "hits": [h.as_dict() for h in produced.hits],
                  "k_anonymity": produced.k, "run_key": job.run_key}
        svc.record(session, app, Action.block, next_state(app.state, Action.block,
                                                          {svc.Party.system}),
                   _actor(who), detail, event="delivery.blocked", before=app.state)
    raise DeliveryBlocked(f"Delivery of application {job.app_id} was blocked: {reason}. The "
                          "provider's approver must tighten the masking plan.",
                          hits=[h.as_dict() for h in produced.hits], k_anonymity=produced.k)


def _actor(who: Principal | None) -> Actor:
    return who.actor if who is not None else svc.SYSTEM


# --- committing -------------------------------------------------------------------------------

def _commit(job: Job, produced: Produced, who: Principal | None) -> Delivery:
    try:
        with db.session_scope(write=True) as session:
            return _commit_in(session, job, produced, who)
    except IntegrityError:
        # Another worker finished this run first: its package stands, ours goes.
        _discard(job)
        with db.session_scope(write=False) as session:
            done = _existing(session, job.grant_id, job.run_key)
            assert done is not None
            return done
    except BaseException:
        _discard(job)
        raise


def _commit_in(session: Session, job: Job, produced: Produced,
               who: Principal | None) -> Delivery:
    app = svc.load(session, job.app_id, lock=True)
    before = app.state
    target = next_state(before, Action.deliver, svc.parties_of(session, who, app),
                        app_id=app.id)  # e.g. revoked while we were masking
    delivery = Delivery(grant_id=job.grant_id, application_id=job.app_id, run_key=job.run_key,
                        method=job.method, resource_version=job.version,
                        row_count=produced.rows, k_anonymity=produced.k, manifest={},
                        signature="", key_id="",
                        file_format=job.file_format if produced.path else None)
    session.add(delivery)
    session.flush()  # the id names the file; a duplicate run fails here, before any rename
    if produced.path is not None:
        _place_file(session, job, produced, delivery)
    _sign(session, job, produced, app, delivery)
    _write_manifest(session, delivery)
    crashpoints.reach("delivery.after_rename")
    _mark_delivered(session, app, delivery, before, target, who)
    return delivery


def _place_file(session: Session, job: Job, produced: Produced, delivery: Delivery) -> None:
    folder = deliveries_dir() / str(job.app_id)
    folder.mkdir(parents=True, exist_ok=True)
    safe_key = re.sub(r"[^0-9A-Za-z-]", "_", job.run_key)
    final = folder / f"{delivery.id:06d}-{safe_key}-{job.token}{job.suffix}"
    assert produced.path is not None
    storage.publish(produced.path, final, synced=True)  # fsynced while it was hashed
    on_rollback(session, lambda: final.unlink(missing_ok=True))
    delivery.path = str(final.relative_to(deliveries_dir()))
    delivery.bytes, delivery.sha256 = produced.bytes, produced.sha256


def manifest_of(job: Job, produced: Produced, app: Application, delivery: Delivery,
                requester: str, key_id: str) -> dict[str, Any]:
    file = None
    if delivery.path is not None:
        file = {"name": Path(delivery.path).name, "format": job.file_format.value,
                "bytes": produced.bytes, "sha256": produced.sha256}
    return {
        "format": MANIFEST_FORMAT, "version": MANIFEST_VERSION,
        "delivery": delivery.id, "application": app.id, "grant": job.grant_id,
        "run_key": job.run_key, "method": job.method.value,
        "resource": job.resource_code, "resource_version": job.version,
        "requester": requester, "items": produced.columns,
        "masking_plan": masking.plan_json(job.plan),
        "row_filters": [f.model_dump(mode="json") for f in job.row_filters],
        "row_count": produced.rows, "k_anonymity": produced.k,
        "quasi_identifiers": job.quasi_identifiers, "file": file,
        # The re-identification risk of the package as written (docs/access.md).
        "risk": produced.risk, "suppressed_rows": produced.suppressed,
        "created_at": canonical.format_time(utcnow()), "key_id": key_id,
    }


def _sign(session: Session, job: Job, produced: Produced, app: Application,
          delivery: Delivery) -> None:
    """Sign with the platform's Ed25519 key (the access log's; published at
    /.well-known/govshare-log-keys) over the manifest's RFC 8785 canonical bytes."""
    key = log_service.ensure_key(session)
    requester = session.get(Department, app.requester_department_id)
    manifest = manifest_of(job, produced, app, delivery, requester.code if requester else "?",
                           key.key_id)
    private = log_keys.load_private_key(get_settings(), key.key_id)
    signature = private.sign(canonical.payload_bytes(manifest))
    delivery.manifest, delivery.key_id = manifest, key.key_id
    delivery.signature = base64.b64encode(signature).decode("ascii")


def _write_manifest(session: Session, delivery: Delivery) -> None:
    if delivery.path is None:
        return
    final = deliveries_dir() / (delivery.path + ".manifest.json")
    body = {"manifest": delivery.manifest, "signature": delivery.signature,
            "key_id": delivery.key_id}
    storage.publish_text(final, json.dumps(body, ensure_ascii=False, indent=2))
    on_rollback(session, lambda: final.unlink(missing_ok=True))


def _mark_delivered(session: Session, app: Application, delivery: Delivery,
                    before: ApplicationState, target: ApplicationState,
                    who: Principal | None) -> None:
    now = utcnow()
    app.masked_at = app.masked_at or now
    app.delivered_at = app.delivered_at or now
    app.delivery_blocked = None
    grant = session.get(Grant, delivery.grant_id)
    assert grant is not None
    grant.last_version = delivery.resource_version
    session.add_all([delivery, grant])
    svc.record(session, app, Action.deliver, target, _actor(who),
               {"delivery": delivery.id, "run_key": delivery.run_key,
                "rows": delivery.row_count,
                "risk": risk.summary_of(delivery.manifest.get("risk"))},
               event="delivery.completed", before=before, payload=_completed_payload(delivery))


def _completed_payload(delivery: Delivery) -> dict[str, Any]:
    return {"delivery": delivery.id, "manifest": delivery.manifest,
            "risk": risk.summary_of(delivery.manifest.get("risk"))}


def logged_payload(delivery: Delivery) -> dict[str, Any]:
    """The payload of the delivery's ``delivery.completed`` log entry, exactly as logged
    (``service.record`` adds the new state): what its receipt proves was recorded."""
    return {"state": ApplicationState.delivered.value, **_completed_payload(delivery)}


# --- crash recovery ---------------------------------------------------------------------------

def sweep(app_id: int | None = None) -> list[str]:
    """Delete files of dead jobs: staging leftovers and renamed files no row names.

    A file is deleted only once its job's lock can be taken (its process is gone or
    finished) *and*, re-checked after taking the lock, no committed Delivery names it.
    ``app_id`` limits the sweep to one application's folder (plus the staging area).
    """
    root = deliveries_dir()
    if not root.exists():
        return []
    staging = _staging()
    candidates = list(staging.glob("*.partial"))
    folders = [root / str(app_id)] if app_id is not None else \
        [p for p in root.iterdir() if p.is_dir() and p.name.isdigit()]
    for folder in folders:
        if folder.is_dir():
            candidates += [p for p in folder.iterdir() if p.is_file()]
    referenced = _referenced(app_id)
    deleted = [str(p.relative_to(root)) for p in candidates
               if _data_path(root, p) not in referenced and _reap(root, p)]
    _drop_stale_locks(staging)
    return deleted


def _data_path(root: Path, path: Path) -> str:
    return str(path.relative_to(root)).removesuffix(".manifest.json")


def _referenced(app_id: int | None) -> set[str]:
    with db.session_scope(write=False) as session:
        query = select(Delivery.path).where(col(Delivery.path).is_not(None))
        if app_id is not None:
            query = query.where(Delivery.application_id == app_id)
        return {p for p in session.exec(query) if p}


def _reap(root: Path, path: Path) -> bool:
    match = _JOB_RE.search(path.name)
    if match is None:
        return False
    lock = _staging() / f"{match.group(1)}.lock"
    fd = os.open(lock, os.O_CREAT | os.O_RDWR, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False  # its job is alive
        if _is_referenced(_data_path(root, path)):  # committed just before we took the lock
            return False
        path.unlink(missing_ok=True)
        lock.unlink(missing_ok=True)
        return True
    finally:
        os.close(fd)


def _drop_stale_locks(staging: Path, older_than: float = 3600) -> None:
    """Lock files of jobs that died before writing anything. Only old ones: a job creates
    its lock file an instant before locking it, and must not lose it in between."""
    cutoff = time.time() - older_than
    for lock in staging.glob("*.lock"):
        with contextlib.suppress(FileNotFoundError):
            if lock.stat().st_mtime < cutoff:
                lock.unlink()


def _is_referenced(relative: str) -> bool:
    with db.session_scope(write=False) as session:
        return session.exec(select(Delivery.id).where(Delivery.path == relative)).first() \
            is not None


# --- reading deliveries -----------------------------------------------------------------------

def get_delivery(session: Session, who: Principal, delivery_id: int
                 ) -> tuple[Delivery, Application]:
    delivery = session.get(Delivery, delivery_id)
    if delivery is None:
        raise NotFound(f"No delivery {delivery_id}.")
    return delivery, svc.get_application(session, who, delivery.application_id)


def list_deliveries(session: Session, who: Principal, application_id: int | None = None,
                    limit: int = 100) -> list[Delivery]:
    query = select(Delivery).join(Application, col(Application.id) == Delivery.application_id)
    if not (who.has(Role.auditor) and svc.is_bureau(session, who.department_id)):
        query = query.where((col(Application.requester_department_id) == who.department_id)
                            | (col(Application.provider_department_id) == who.department_id))
    if application_id is not None:
        query = query.where(Delivery.application_id == application_id)
    return list(session.exec(query.order_by(col(Delivery.id).desc()).limit(limit)))


def verify_manifest(manifest: dict[str, Any], signature_b64: str, public_key: bytes) -> bool:
    """Check a manifest's signature (what a recipient does with the published key)."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(
            base64.b64decode(signature_b64), canonical.payload_bytes(manifest))
    except (InvalidSignature, ValueError):
        return False
    return True


# --- download links ---------------------------------------------------------------------------

def _link_key(kid: str | None = None) -> tuple[str, bytes]:
    # An HKDF-derived purpose key (kernel.secrets), not anything a passphrase determines: a
    # link token offers no offline test of a guessed passphrase. The key id travels in the
    # token, so links made before a key rotation keep working until they expire.
    if kid is None:
        key = secrets.current(secrets.DOWNLOAD_LINKS)
        return key.kid, key.key
    return kid, secrets.key_for(secrets.DOWNLOAD_LINKS, kid)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def make_token(delivery_id: int, department_id: int, expires: datetime) -> str:
    kid, key = _link_key()
    body = _b64(json.dumps({"d": delivery_id, "g": department_id, "k": kid,
                            "e": int(expires.timestamp())}, separators=(",", ":")).encode())
    mac = hmac.new(key, body.encode(), hashlib.sha256).digest()
    return f"{body}.{_b64(mac)}"


def check_token(token: str, delivery_id: int, department_id: int) -> None:
    body, _, mac = token.partition(".")
    try:  # the key id is read before the MAC is checked only to choose the key
        unverified = json.loads(_unb64(body))
        _, key = _link_key(str(unverified["k"]))
        expected = _b64(hmac.new(key, body.encode(), hashlib.sha256).digest())
        claims = unverified if hmac.compare_digest(mac, expected) else None
    except (ValueError, TypeError, KeyError, secrets.SecretsUnavailable):
        claims = None
    if not isinstance(claims, dict) or claims.get("d") != delivery_id \
            or claims.get("g") != department_id:
        raise Forbidden("This download link is not valid for this delivery and department.")
    if claims.get("e", 0) <= utcnow().timestamp():
        raise Forbidden("This download link has expired; ask for a new one "
                        f"(POST /api/v1/deliveries/{delivery_id}/link).")


def _downloadable(session: Session, who: Principal, delivery_id: int
                  ) -> tuple[Delivery, Application]:
    delivery, app = get_delivery(session, who, delivery_id)
    if who.department_id != app.requester_department_id or not who.has(Role.requester):
        raise Forbidden("Only requesters of the requesting department download its packages.")
    if delivery.path is None:
        raise Invalid(f"Delivery {delivery_id} is an API-query grant; query it instead.")
    grant = session.get(Grant, delivery.grant_id)
    assert grant is not None
    if grant.revoked_at is not None:
        raise Gone(f"The grant was revoked on {grant.revoked_at:%Y-%m-%d}: "
                   f"{grant.revoke_reason}")
    if utcnow() >= grant.valid_until or app.state is ApplicationState.expired:
        raise Gone("The period of use is over; the package can no longer be downloaded.")
    return delivery, app


def issue_link(session: Session, who: Principal, delivery_id: int) -> tuple[str, datetime]:
    delivery, app = _downloadable(session, who, delivery_id)
    expires = utcnow() + timedelta(minutes=get_settings().access_link_minutes)
    token = make_token(delivery_id, who.department_id, expires)
    publish(session, Event("delivery.link_issued", who.actor, _subjects(session, app, delivery),
                           {"expires_at": expires.isoformat()}))
    return token, expires


def open_download(session: Session, who: Principal, delivery_id: int,
                  token: str) -> tuple[Path, Delivery]:
    """Authorise, log and return the file to stream."""
    check_token(token, delivery_id, who.department_id)
    delivery, app = _downloadable(session, who, delivery_id)
    path = deliveries_dir() / (delivery.path or "")
    if not path.is_file():
        raise Gone(f"The package of delivery {delivery_id} is no longer stored.")
    if app.first_download_at is None:
        # updated_at too: the metrics mart copies changed applications by updated_at
        app.first_download_at = app.updated_at = utcnow()
        session.add(app)
    publish(session, Event("delivery.downloaded", who.actor, _subjects(session, app, delivery),
                           {"sha256": delivery.sha256, "bytes": delivery.bytes}))
    return path, delivery


def _subjects(session: Session, app: Application, delivery: Delivery) -> dict[str, str]:
    return svc._subjects(session, app) | {"delivery": str(delivery.id),
                                          "grant": str(delivery.grant_id)}


# --- API-query deliveries ---------------------------------------------------------------------

def query(session: Session, who: Principal, grant_id: int, q: QueryIn) -> dict[str, Any]:
    """A page of the desensitized view, filtered on its (masked) columns; logged."""
    grant, app = svc.get_grant(session, who, grant_id)
    _check_query_allowed(who, grant, app)
    limit = get_settings().access_query_max_rows
    if q.size > limit:
        raise Invalid(f"A page holds at most {limit} rows.")
    resource = session.get(Resource, app.resource_id)
    assert resource is not None
    job = _job(session, app, grant, resource, "query",
               WorkCalendar.from_settings().local_date(utcnow()))
    with open_data(job.segments) as con:
        columns, rows = _page(con, job, q)
    publish(session, Event("grant.queried", who.actor,
                           svc._subjects(session, app) | {"grant": str(grant.id)},
                           {"filters": [f.model_dump(mode="json") for f in q.filters],
                            "columns": columns, "page": q.page, "size": q.size,
                            "rows": min(len(rows), q.size)}))
    return {"columns": columns, "rows": rows[:q.size], "page": q.page, "size": q.size,
            "has_more": len(rows) > q.size, "resource_version": job.version}


def _check_query_allowed(who: Principal, grant: Grant, app: Application) -> None:
    if who.department_id != app.requester_department_id or not who.has(Role.requester):
        raise Forbidden("Only requesters of the requesting department query its grants.")
    if app.delivery_method is not DeliveryMethod.api:
        raise Invalid(f"Grant {grant.id} delivers files; download its packages instead.")
    if grant.revoked_at is not None:
        raise Gone(f"The grant was revoked on {grant.revoked_at:%Y-%m-%d}.")
    if not svc.grant_active(grant, app):
        raise Gone(f"Grant {grant.id} is not active (application {app.state.value}).")


def _page(con: duckdb.DuckDBPyConnection, job: Job,
          q: QueryIn) -> tuple[list[str], list[list[Any]]]:
    view, columns = masked_select(con, job)
    by_name = {c.name: (quote(c.name), c.type) for c in columns}
    wanted = q.columns or [c.name for c in columns]
    unknown = [c for c in wanted if c not in by_name]
    if unknown:
        raise Invalid("Unknown columns: " + ", ".join(unknown) + ".")
    where = masking.filter_sql(q.filters, by_name)
    projection = ", ".join(quote(c) for c in wanted)
    cur = con.execute(f"SELECT {projection} FROM ({view}) WHERE {where} LIMIT ? OFFSET ?",
                      [q.size + 1, (q.page - 1) * q.size])
    return wanted, [[_jsonable(v) for v in row] for row in cur.fetchall()]


def _jsonable(value: Any) -> Any:
    return value.isoformat() if hasattr(value, "isoformat") else value


def pending_first_deliveries(session: Session, approved_before: datetime) -> list[int]:
    """Approved applications still waiting for their first package (not blocked), approved
    before ``approved_before``: the request that approved one delivers it itself, and the
    scheduler should not race it (it retries after a crash or restart)."""
    rows = session.exec(select(Application.id).where(
        Application.state == ApplicationState.approved,
        col(Application.delivery_blocked).is_(None),
        col(Application.approved_at) < approved_before))
    return [r for r in rows if r is not None]


def due_periodic(session: Session, today: date) -> list[tuple[int, str]]:
    """(application, run key) of periodic grants whose current period has no package yet."""
    rows = session.exec(select(Application, Grant, Resource)
                        .join(Grant, col(Grant.application_id) == Application.id)
                        .join(Resource, col(Resource.id) == Application.resource_id)
                        .where(Application.state == ApplicationState.delivered,
                               col(Application.delivery_blocked).is_(None),
                               Application.schedule != Schedule.once,
                               col(Grant.revoked_at).is_(None))).all()
    due = []
    for app, grant, resource in rows:
        key = run_key_for(app.schedule, today, resource.current_version)
        if _existing(session, grant.id or 0, key) is None:
            due.append((app.id or 0, key))
    return due
