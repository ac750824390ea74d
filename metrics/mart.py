"""The metrics mart: a DuckDB file holding the columns the dashboard reads, copied from the
metadata database (SQLite or PostgreSQL) and refreshed incrementally.

Why a copy: DuckDB's sqlite/postgres scanners download at run time (we are offline), and
aggregating a million applications in SQLite per dashboard request is too slow (bench/).

Concurrency: several worker processes may serve the dashboard. A refresh takes an exclusive
``flock`` (others skip it and serve the current mart, or wait if there is none), copies the
current generation file to a new one, appends to the copy, checkpoints, fsyncs, and then
points ``current`` at it with write-then-rename. Readers open generations read-only; every
generation has its own file name because DuckDB caches open databases by path within a
process. The previous generation is kept (a reader may still be on it); older ones go.

Increments: append-only tables (history steps, deliveries, quality scores) by id high-water
mark (minus a margin on PostgreSQL, whose sequences may commit out of order); mutable
tables by a time column (applications by ``updated_at``, ratings by ``rated_at``) with an
overlap, replacing rows by id; small tables (departments, resources, notices) whole; the
access log by sequence number (counts per event type) and its tree size.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import shutil
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
from sqlalchemy import Select, func, select
from sqlmodel import Session, col

from access import latency
from access.calendar import WorkCalendar
from access.models import Application, ApplicationStep, Delivery, DeliveryRating
from catalog.models import DataItem, Resource, Sensitivity
from kernel import storage
from kernel.db import get_engine, utcnow
from kernel.identity import Department
from kernel.settings import Settings, get_settings
from metrics import latency as latency_view
from quality.models import QualityScore, RectificationNotice
from translog.models import LogEntry, LogState

SCHEMA_VERSION = "5"  # 2, 4: the latency views (metrics.latency); 3, 5: personal
# Rows changed by transactions that committed after a refresh read, but stamped before it.
OVERLAP = timedelta(minutes=5)
PG_ID_MARGIN = 1000
CAL_START = date(2000, 1, 1)
CAL_YEARS = 40
BATCH = 200_000
# A mart this many refresh periods old (at least 5 minutes) means no worker refreshes it.
STALE_FACTOR = 5

PERSONAL = [Sensitivity.personal.value, Sensitivity.sensitive_personal.value]
SUBMISSIONS = ("file", "resubmit")
# The provider's replies (auto_approve is govshare's, not the provider's: not a reply).
REPLIES = ("approve", "set_conditions", "reject", "return")

Col = tuple[str, Any, pa.DataType]
TS = pa.timestamp("us", tz="UTC")


@dataclass(frozen=True)
class Spec:
    table: str
    columns: Sequence[Col]
    mode: str  # "full" | "append" (by id) | "mutable" (by the time column ``since``)
    since: Any = None


A, S, D, R = Application, ApplicationStep, Delivery, DeliveryRating
SPECS = [
    Spec("department", [("id", Department.id, pa.int64()), ("code", Department.code, pa.string()),
                        ("name_zh", Department.name_zh, pa.string()),
                        ("name_en", Department.name_en, pa.string())], "full"),
    Spec("resource", [("id", Resource.id, pa.int64()), ("code", Resource.code, pa.string()),
                      ("name_zh", Resource.name, pa.string()),
                      ("name_en", Resource.name_en, pa.string()),
                      ("provider_id", Resource.provider_id, pa.int64()),
                      ("status", Resource.status, pa.string()),
                      ("published_at", Resource.published_at, pa.date32()),
                      ("quality_score", Resource.quality_score, pa.float64()),
                      # Does it hold persons' records? Its delivered rows count people then
                      # (kernel.privacy: small counts of them are withheld on the dashboards).
                      ("personal", select(col(DataItem.id)).where(
                          col(DataItem.resource_id) == Resource.id,
                          col(DataItem.sensitivity).in_(PERSONAL)).exists(), pa.bool_())],
         "full"),
    Spec("notice", [("id", RectificationNotice.id, pa.int64()),
                    ("resource_id", RectificationNotice.resource_id, pa.int64()),
                    ("department_id", RectificationNotice.department_id, pa.int64()),
                    ("status", RectificationNotice.status, pa.string())], "full"),
    Spec("application", [
        ("id", A.id, pa.int64()), ("resource_id", A.resource_id, pa.int64()),
        ("provider_id", A.provider_department_id, pa.int64()),
        ("requester_id", A.requester_department_id, pa.int64()),
        ("sharing_type", A.sharing_type, pa.string()), ("state", A.state, pa.string()),
        ("due_date", A.due_date, pa.date32()), ("returns", A.returns, pa.int32()),
        ("escalations", A.escalations, pa.int32()),
        ("reassignments", A.reassignments, pa.int32()),
        ("notice_violations", A.notice_violations, pa.int32()),
        ("filed_at", A.filed_at, TS), ("decided_at", A.decided_at, TS),
        ("delivered_at", A.delivered_at, TS), ("first_download_at", A.first_download_at, TS),
        ("updated_at", A.updated_at, TS)], "mutable", A.updated_at),
    Spec("step", [("id", S.id, pa.int64()), ("application_id", S.application_id, pa.int64()),
                  ("seq", S.seq, pa.int32()), ("action", S.action, pa.string()),
                  ("to_state", S.to_state, pa.string()), ("moved_at", S.at, TS),
                  ("reason", col(S.detail)["reason"].as_string(), pa.string())], "append"),
    Spec("delivery", [("id", D.id, pa.int64()), ("application_id", D.application_id, pa.int64()),
                      ("row_count", D.row_count, pa.int64()), ("bytes", D.bytes, pa.int64()),
                      ("created_at", D.created_at, TS)], "append"),
    Spec("rating", [("id", R.id, pa.int64()), ("delivery_id", R.delivery_id, pa.int64()),
                    ("application_id", R.application_id, pa.int64()),
                    ("provider_id", R.provider_department_id, pa.int64()),
                    ("requester_id", R.requester_department_id, pa.int64()),
                    ("useful", R.useful, pa.bool_()), ("comment", R.comment, pa.string()),
                    ("rated_at", R.rated_at, TS)], "mutable", R.rated_at),
    Spec("qscore", [("id", QualityScore.id, pa.int64()),
                    ("resource_id", QualityScore.resource_id, pa.int64()),
                    *[(d, getattr(QualityScore, d), pa.float64())
                      for d in ("freshness", "completeness", "validity", "uniqueness",
                                "consistency", "overall")]], "append"),
]

# Local day and working-day clock ("W", see docs/metrics.md) of a UTC timestamp column.
_LOCAL = "timezone('{tz}', timezone('UTC', {c}))"
_W = "({cal}.cum_before + CASE WHEN {cal}.working THEN " \
     "epoch({l} - CAST({l} AS DATE)) / 86400.0 ELSE 0 END)"

# How each table's new rows are stored: derived columns (local days, working-day clocks).
DERIVE = {
    "application": """
        SELECT s.* EXCLUDE (lf, lv, ld), CAST(lf AS DATE) AS filed_day,
               CAST(timezone('{tz}', timezone('UTC', decided_at)) AS DATE) AS decided_day,
               CAST(lv AS DATE) AS delivered_day,
               {wf} AS filed_w, {wv} AS delivered_w, {wd} AS first_download_w
        FROM (SELECT *, {lf} AS lf, {lv} AS lv, {ld} AS ld FROM stage) s
        LEFT JOIN cal cf ON cf.day = CAST(s.lf AS DATE)
        LEFT JOIN cal cv ON cv.day = CAST(s.lv AS DATE)
        LEFT JOIN cal cd ON cd.day = CAST(s.ld AS DATE)""",
    "step": """
        SELECT s.* EXCLUDE (lt), CAST(lt AS DATE) AS day, {wt} AS w,
               CASE WHEN s.action IN {subs} THEN due.day END AS due_date,
               ap.resource_id, ap.provider_id, ap.requester_id
        FROM (SELECT *, {lt} AS lt FROM stage) s
        LEFT JOIN application ap ON ap.id = s.application_id
        LEFT JOIN cal c ON c.day = CAST(s.lt AS DATE)
        LEFT JOIN cal due ON due.working AND due.ordinal = c.ordinal + {n}""",
    # provider, requester and resource never change: stored with each row, saving a join
    # personal: the resource held persons' records when the package was copied here
    "delivery": """
        SELECT s.*, CAST({lc} AS DATE) AS day, ap.resource_id, ap.provider_id, ap.requester_id,
               coalesce(r.personal, true) AS personal
        FROM stage s LEFT JOIN application ap ON ap.id = s.application_id
        LEFT JOIN resource r ON r.id = ap.resource_id""",
    "rating": "SELECT *, CAST({lr} AS DATE) AS day FROM stage",
}


def _derive_sql(table: str, settings: Settings) -> str:
    tz = settings.access_timezone.replace("'", "")

    def local(c: str) -> str:
        return _LOCAL.format(tz=tz, c=c)

    return DERIVE.get(table, "SELECT * FROM stage").format(
        tz=tz, lf=local("filed_at"), lv=local("delivered_at"), lt=local("moved_at"),
        ld=local("first_download_at"), lc=local("created_at"), lr=local("rated_at"),
        wf=_W.format(cal="cf", l="s.lf"), wv=_W.format(cal="cv", l="s.lv"),
        wd=_W.format(cal="cd", l="s.ld"),
        wt=_W.format(cal="c", l="s.lt"), subs=str(SUBMISSIONS),
        n=settings.access_reply_working_days)


# --- where the mart lives ---------------------------------------------------------------------

def mart_dir(settings: Settings | None = None) -> Path:
    return (settings or get_settings()).data_dir / "metrics"


def _pointer(folder: Path) -> Path:
    return folder / "current"


def current_file(folder: Path | None = None) -> Path | None:
    folder = folder or mart_dir()
    try:
        name = _pointer(folder).read_text().strip()
    except FileNotFoundError:
        return None
    path = folder / name
    return path if path.exists() else None


def fingerprint(settings: Settings) -> str:
    """What the derived columns depend on: a change forces a full rebuild."""
    cal = WorkCalendar.from_settings(settings)
    text = json.dumps([SCHEMA_VERSION, settings.access_timezone,
                       sorted(map(str, cal.holidays)), sorted(map(str, cal.makeup_workdays)),
                       settings.access_reply_working_days, settings.sqlalchemy_url])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


# --- refreshing -------------------------------------------------------------------------------

@dataclass
class RefreshStats:
    full: bool
    seconds: float
    rows: dict[str, int] = field(default_factory=dict)
    generation: str = ""


@contextlib.contextmanager
def _refresh_lock(folder: Path, wait: bool) -> Iterator[bool]:
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "refresh.lock", "a") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def refresh(*, full: bool = False, wait: bool = True) -> RefreshStats | None:
    """Bring the mart up to date; None if another process is refreshing it and ``wait`` is
    False (the caller then serves the current mart)."""
    settings = get_settings()
    folder = mart_dir(settings)
    with _refresh_lock(folder, wait) as locked:
        if not locked:
            return None
        started = time.perf_counter()
        old = current_file(folder)
        if old is not None and not full and _meta(old).get("fingerprint") != \
                fingerprint(settings):
            full = True
        full = full or old is None
        new = folder / f"mart-{time.time_ns()}.duckdb"
        if not full and old is not None:
            shutil.copyfile(old, new)
        try:
            rows = _refresh_into(new, settings, full)
            storage.fsync_file(new)
        except BaseException:
            new.unlink(missing_ok=True)
            Path(str(new) + ".wal").unlink(missing_ok=True)
            raise
        _switch(folder, new, old)
        return RefreshStats(full, time.perf_counter() - started, rows, new.name)


def _switch(folder: Path, new: Path, old: Path | None) -> None:
    # The new mart file's name becomes durable with the folder fsync of the pointer.
    storage.publish_text(_pointer(folder), new.name)
    keep = {new.name, old.name if old else ""}
    for stale in folder.glob("mart-*.duckdb"):
        if stale.name not in keep:
            stale.unlink(missing_ok=True)


def _meta(path: Path) -> dict[str, str]:
    try:
        con = duckdb.connect(str(path), read_only=True)
    except duckdb.Error:
        return {}
    try:
        return dict(con.execute("SELECT key, value FROM meta").fetchall())
    except duckdb.Error:
        return {}
    finally:
        con.close()


def _refresh_into(path: Path, settings: Settings, full: bool) -> dict[str, int]:
    con = duckdb.connect(str(path))
    try:
        if full:
            _create_calendar(con, settings)
            con.execute("CREATE TABLE meta (key VARCHAR PRIMARY KEY, value VARCHAR)")
        meta = dict(con.execute("SELECT key, value FROM meta").fetchall())
        engine = get_engine()
        pg = engine.dialect.name == "postgresql"
        rows: dict[str, int] = {}
        with Session(engine) as session:
            if pg:  # one snapshot for every table read below
                session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
            as_of = utcnow()
            for spec in SPECS:
                rows[spec.table] = _copy(con, session, spec, meta, settings, full, pg)
            rows["log"] = _copy_log(con, session, meta, full)
        con.execute("BEGIN")
        _reply_due_dates(con, full)
        rows["app_stage"] = _stages(con, full)
        latency_view.create_view(con)  # the one evaluation of sharing latency
        meta |= {"as_of": as_of.isoformat(), "refreshed_epoch": str(time.time()),
                 "fingerprint": fingerprint(settings), "schema": SCHEMA_VERSION}
        con.execute("DELETE FROM meta")
        con.executemany("INSERT INTO meta VALUES (?, ?)", list(meta.items()))
        con.execute("COMMIT")
        con.execute("CHECKPOINT")
    finally:
        con.close()
    return rows


def _create_calendar(con: duckdb.DuckDBPyConnection, settings: Settings) -> None:
    """One row per local day: is it a working day, working days before it (the working-day
    clock at its midnight) and its ordinal among working days (for deadlines)."""
    cal = WorkCalendar.from_settings(settings)
    days = [CAL_START + timedelta(days=i) for i in range(366 * CAL_YEARS)]
    working = [cal.is_working_day(d) for d in days]
    cum, ordinal, before, count = [], [], 0, 0
    for w in working:
        cum.append(float(before))
        count += w
        ordinal.append(count)
        before += w
    table = pa.table({"day": pa.array(days, pa.date32()), "working": working,
                      "cum_before": cum, "ordinal": pa.array(ordinal, pa.int32())})
    con.register("cal_in", table)
    con.execute("CREATE TABLE cal AS SELECT * FROM cal_in ORDER BY day")
    con.unregister("cal_in")


def _where(spec: Spec, meta: dict[str, str], full: bool, pg: bool) -> Any:
    if full or spec.mode == "full":
        return None
    id_col = spec.columns[0][1]
    if spec.mode == "append":
        hwm = int(meta.get(f"hwm:{spec.table}", "0")) - (PG_ID_MARGIN if pg else 0)
        return id_col > hwm
    since = datetime.fromisoformat(meta["as_of"]) - OVERLAP
    return (id_col > int(meta.get(f"hwm:{spec.table}", "0"))) | (spec.since >= since)


def _copy(con: duckdb.DuckDBPyConnection, session: Session, spec: Spec,
          meta: dict[str, str], settings: Settings, full: bool, pg: bool) -> int:
    stmt: Select[Any] = select(*[c.label(n) for n, c, _ in spec.columns])
    where = _where(spec, meta, full, pg)
    if where is not None:
        stmt = stmt.where(where)
    schema = pa.schema([(n, pa.timestamp("us") if t == TS else t) for n, _, t in spec.columns])
    con.execute("DROP TABLE IF EXISTS stage")
    con.register("batch", schema.empty_table())
    con.execute("CREATE TEMP TABLE stage AS SELECT * FROM batch")
    count = 0
    result = session.connection().execution_options(yield_per=BATCH).execute(stmt)
    for part in result.partitions():
        con.register("batch", _arrow(part, spec.columns))
        con.execute("INSERT INTO stage SELECT * FROM batch")
        count += len(part)
    con.unregister("batch")
    derive = _derive_sql(spec.table, settings)
    exists = bool(con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = ? "
                              "AND NOT temporary", [spec.table]).fetchone()[0])  # type: ignore[index]
    if not exists:
        con.execute(f"CREATE TABLE {spec.table} AS {derive}")
    else:
        if spec.mode == "full":
            con.execute(f"DELETE FROM {spec.table}")
        else:
            con.execute(f"DELETE FROM {spec.table} WHERE id IN (SELECT id FROM stage)")
        con.execute(f"INSERT INTO {spec.table} BY NAME {derive}")
    hwm = con.execute(f"SELECT max(id) FROM {spec.table}").fetchone()
    meta[f"hwm:{spec.table}"] = str((hwm[0] if hwm else None) or 0)
    if spec.table == "step":
        # the new steps' applications, for the reply due dates and stage times
        con.execute("CREATE OR REPLACE TEMP TABLE touched AS "
                    "SELECT DISTINCT application_id FROM stage")
    return count


def _arrow(rows: Sequence[Any], columns: Sequence[Col]) -> pa.Table:
    arrays = []
    for i, (_, _, kind) in enumerate(columns):
        values = [r[i] for r in rows]
        if kind == TS:
            arrays.append(pa.array(values, TS).cast(pa.timestamp("us")))
        elif kind == pa.bool_():  # SQLite answers EXISTS with 0/1
            arrays.append(pa.array([None if v is None else bool(v) for v in values], kind))
        elif kind == pa.string():
            arrays.append(pa.array([None if v is None else str(getattr(v, "value", v))
                                    for v in values], kind))
        else:
            arrays.append(pa.array(values, kind))
    return pa.Table.from_arrays(arrays, names=[n for n, _, _ in columns])


def _copy_log(con: duckdb.DuckDBPyConnection, session: Session, meta: dict[str, str],
              full: bool) -> int:
    """Log size, and entries per event type counted on the database side (one scan the
    first time, then only the new sequence numbers)."""
    size = int(session.execute(select(col(LogState.tree_size))).scalar() or 0)
    start = 0 if full else int(meta.get("log_size", "0"))
    seq = col(LogEntry.seq)
    counts = session.execute(select(col(LogEntry.event_type), func.count())
                             .where(seq >= start, seq < size)
                             .group_by(col(LogEntry.event_type))).all()
    if full:
        con.execute("CREATE TABLE log_count (event_type VARCHAR PRIMARY KEY, n BIGINT)")
    for event_type, n in counts:
        con.execute("INSERT INTO log_count VALUES (?, ?) ON CONFLICT (event_type) "
                    "DO UPDATE SET n = n + excluded.n", [event_type, n])
    meta["log_size"] = str(size)
    return int(size) - start


def _reply_due_dates(con: duckdb.DuckDBPyConnection, full: bool) -> None:
    """Each provider reply gets the due date of the submission it answers (the latest file
    or resubmit step before it)."""
    scope = "" if full else "AND application_id IN (SELECT application_id FROM touched)"
    con.execute(f"""
        UPDATE step SET due_date = x.due FROM (
            SELECT r.id, sub.due_date AS due
            FROM (SELECT id, application_id, seq FROM step
                  WHERE action IN {REPLIES} AND due_date IS NULL {scope}) r
            ASOF JOIN (SELECT application_id, seq, due_date FROM step
                       WHERE action IN {SUBMISSIONS} {scope}) sub
              ON r.application_id = sub.application_id AND r.seq > sub.seq) x
        WHERE step.id = x.id""")


_STAGE_SUM = "coalesce(sum(CASE WHEN to_state IN ({states}) THEN {what} END), 0)"
# The one definition of the stages (access.latency): the same states, the same names.
STAGES = {stage: ", ".join(f"'{s}'" for s in states)
          for stage, states in latency.STAGE_STATES.items()}


def _stages(con: duckdb.DuckDBPyConnection, full: bool) -> int:
    """Time each newly delivered application spent in each stage up to its first delivery
    (as access.latency measures it: each state's time is charged to its stage)."""
    if full:
        cols = ", ".join(f"{k}_h DOUBLE, {k}_wd DOUBLE" for k in STAGES)
        con.execute(f"CREATE TABLE app_stage (application_id BIGINT, {cols})")
    sums = ", ".join(
        _STAGE_SUM.format(states=states, what="epoch(next_at - moved_at) / 3600.0") + f" AS {k}_h, "
        + _STAGE_SUM.format(states=states, what="next_w - w") + f" AS {k}_wd"
        for k, states in STAGES.items())
    before = con.execute("SELECT count(*) FROM app_stage").fetchone()
    con.execute(f"""
        INSERT INTO app_stage
        WITH todo AS (SELECT id FROM application a WHERE delivered_at IS NOT NULL
                      AND NOT EXISTS (SELECT 1 FROM app_stage s WHERE s.application_id = a.id)),
        st AS (SELECT application_id, seq, action, to_state, moved_at, w,
                      lead(moved_at) OVER win AS next_at, lead(w) OVER win AS next_w
               FROM step WHERE application_id IN (SELECT id FROM todo)
               WINDOW win AS (PARTITION BY application_id ORDER BY seq)),
        first AS (SELECT application_id, min(seq) AS dseq FROM st
                  WHERE action = 'deliver' GROUP BY application_id)
        SELECT st.application_id, {sums}
        FROM st JOIN first USING (application_id) WHERE st.seq < first.dseq
        GROUP BY st.application_id""")
    after = con.execute("SELECT count(*) FROM app_stage").fetchone()
    return int(after[0] if after else 0) - int(before[0] if before else 0)


# --- reading ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Snapshot:
    con: duckdb.DuckDBPyConnection  # a cursor of this thread
    as_of: datetime
    refreshed_epoch: float
    log_size: int


_readers: dict[str, duckdb.DuckDBPyConnection] = {}
_readers_lock = threading.Lock()


def _reader(path: Path) -> duckdb.DuckDBPyConnection:
    key = str(path)
    with _readers_lock:
        if key not in _readers:
            for old in [k for k in _readers if Path(k).parent == path.parent]:
                _readers.pop(old)  # closed when its last cursor goes
            _readers[key] = duckdb.connect(key, read_only=True)
        return _readers[key].cursor()


def open_snapshot() -> Snapshot | None:
    path = current_file()
    if path is None:
        return None
    con = _reader(path)
    meta = dict(con.execute("SELECT key, value FROM meta").fetchall())
    return Snapshot(con, datetime.fromisoformat(meta["as_of"]),
                    float(meta["refreshed_epoch"]), int(meta.get("log_size", "0")))


def snapshot(max_age: float | None = None) -> Snapshot:
    """The current mart. The ``metrics.refresh`` job (``metrics.jobs``) keeps it within
    ``max_age`` seconds (default: ``GOVSHARE_METRICS_REFRESH_SECONDS``) from a worker
    process; a request refreshes it itself only when there is none yet, when ``max_age`` is
    0 (refresh per request: tests, the browser story), or when it is so stale that no worker
    can be running (``STALE_FACTOR`` periods), and then only if nobody else is refreshing."""
    age = get_settings().metrics_refresh_seconds if max_age is None else max_age
    snap = open_snapshot()
    if snap is None:
        refresh(wait=True)
    elif age > 0 and time.time() - snap.refreshed_epoch < max(age * STALE_FACTOR, 300):
        return snap
    elif age == 0 or time.time() - snap.refreshed_epoch >= age:
        refresh(wait=False)
    found = open_snapshot()
    assert found is not None
    return found


def close_readers() -> None:
    """Forget open generations (tests switch data directories)."""
    with _readers_lock:
        _readers.clear()
