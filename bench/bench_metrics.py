"""Dashboard metrics benchmark: every /api/v1/metrics endpoint's query over the DuckDB mart,
against the same aggregation written in SQL on the raw SQLite tables, in the same run.

    python -m bench.bench_metrics [--quick] [--applications N] [--log-entries N] [--calls N]
                                  [--data-dir DIR]

Generates (bulk ``executemany`` into SQLite, not through the pipeline) a catalog of 2,000
resources over 12 departments (bench_search's generator), N applications over 18 months with
their history (file → approve/return/reject → deliver, ~3.3 steps each), a delivery per
delivered application, quality scores, ratings, and M synthetic rows of the access-log table
(for the log-size and per-event-type figures). Then:

* the mart's refresh time: full (from scratch), and incremental after 1% more applications;
* per endpoint, p50/p95 over ``--calls`` calls of ``metrics.service`` on the mart
  (what the endpoint runs, minus HTTP and JSON), and of the baseline: the same aggregation on
  the raw tables in SQLite SQL, percentiles computed in Python over the fetched values (SQLite
  has no percentile function). Where SQLite would need the history walk (stages, replies
  against their round's due date), the baseline does that join too.

Target (issue 6): every endpoint under 200 ms at p95 with 1M applications and 10M log rows.
``--data-dir`` keeps the generated store and reuses it (skips generation).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.common import print_table

SEED = 20261123
START = datetime(2025, 6, 1, tzinfo=UTC)
DAYS = 540
REASONS = ["security_risk", "ownership_dispute", "core_data", "standards_mismatch",
           "insufficient_legal_basis", "other"]
EVENTS = ["application.filed", "application.approved", "delivery.completed",
          "delivery.downloaded", "catalog.resource_registered", "delivery.rated"]


def _ts(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S.%f")


def generate(db_path: Path, n_apps: int, n_log: int, first_id: int = 1) -> None:
    """Applications with their steps and deliveries (ids from ``first_id``), log rows."""
    rng = random.Random(SEED + first_id)
    con = sqlite3.connect(db_path)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=OFF")
    resources = con.execute("SELECT id, provider_id, sharing_type FROM resource "
                            "WHERE status = 'active' AND sharing_type <> 'not_shareable'"
                            ).fetchall()
    depts = [d for (d,) in con.execute("SELECT id FROM department")]
    # a few resources are popular, most are rarely requested, some never
    weights = [1.0 / (i + 1) ** 1.1 for i in range(len(resources))]
    chosen = rng.choices(resources, weights=weights, k=n_apps)
    apps, steps, deliveries = [], [], []
    step_id = (con.execute("SELECT coalesce(max(id), 0) FROM application_step").fetchone()[0]
               + 1)
    deliv_id = con.execute("SELECT coalesce(max(id), 0) FROM delivery").fetchone()[0] + 1
    for k, (res_id, provider, sharing) in enumerate(chosen):
        app_id = first_id + k
        requester = rng.choice([d for d in depts if d != provider])
        filed = START + timedelta(days=rng.random() * DAYS)
        fate = rng.random()
        history: list[tuple[str, str | None, str, datetime, str | None]] = [
            ("file", None, "submitted", filed, None)]
        returns = 0
        t = filed
        state, decided, approved, delivered, download = "submitted", None, None, None, None
        if sharing == "unconditional":
            history.append(("auto_approve", "submitted", "approved", t, None))
            decided = approved = t
            state = "approved"
        elif fate < 0.08:  # still waiting
            pass
        else:
            if fate < 0.25:
                t += timedelta(hours=rng.expovariate(1 / 30))
                history.append(("return", "submitted", "returned", t, None))
                returns = 1
                t += timedelta(hours=rng.expovariate(1 / 40))
                history.append(("resubmit", "returned", "submitted", t, None))
            t += timedelta(hours=rng.expovariate(1 / 60))
            decided = t
            if fate > 0.9:
                history.append(("reject", "submitted", "rejected", t, rng.choice(REASONS)))
                state = "rejected"
            else:
                history.append(("approve", "submitted", "approved", t, None))
                approved, state = t, "approved"
        if state == "approved":
            t += timedelta(minutes=rng.expovariate(1 / 20))
            history.append(("deliver", "approved", "delivered", t, None))
            delivered, state = t, "delivered"
            if rng.random() < 0.7:
                download = t + timedelta(hours=rng.expovariate(1 / 20))
            deliveries.append((deliv_id, app_id, app_id, "once", "file", "parquet", 1,
                               rng.randint(10_000, 10**8), rng.randint(10, 10**6), "{}", "",
                               "k", _ts(t)))
            deliv_id += 1
        due = (filed + timedelta(days=14)).date().isoformat()
        apps.append((app_id, res_id, provider, requester, 1, sharing, state, "bench", "bench",
                     '["name"]', filed.date().isoformat(), "2027-12-31", "file", "parquet",
                     "once", 1, due, "{}", "[]", "[]", "[]", "[]", returns, 0, 0, 0,
                     _ts(filed), decided and _ts(decided), approved and _ts(approved),
                     delivered and _ts(delivered), download and _ts(download),
                     _ts(t)))
        for seq, (action, before, after, moment, reason) in enumerate(history, start=1):
            steps.append((step_id, app_id, seq, action, before, after, "user", _ts(moment),
                          json.dumps({"reason": reason} if reason else {})))
            step_id += 1
    con.executemany(
        "INSERT INTO application (id, resource_id, provider_department_id, "
        "requester_department_id, requester_user_id, sharing_type, state, purpose, "
        "legal_basis, items, period_start, period_end, delivery_method, file_format, "
        "schedule, revision, due_date, masking_plan, row_filters, quasi_identifiers, "
        "conditions, first_return_codes, returns, escalations, reassignments, "
        "notice_violations, filed_at, decided_at, approved_at, delivered_at, "
        "first_download_at, updated_at) VALUES (" + ",".join("?" * 32) + ")", apps)
    con.executemany("INSERT INTO application_step (id, application_id, seq, action, "
                    "from_state, to_state, actor_kind, at, detail) "
                    "VALUES (?,?,?,?,?,?,?,?,?)", steps)
    con.executemany("INSERT INTO delivery (id, grant_id, application_id, run_key, method, "
                    "file_format, resource_version, bytes, row_count, manifest, signature, "
                    "key_id, created_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)", deliveries)
    size = con.execute("SELECT coalesce(max(seq) + 1, 0) FROM log_entry").fetchone()[0]
    chunk = 500_000
    for lo in range(size, size + n_log, chunk):
        hi = min(lo + chunk, size + n_log)
        con.executemany("INSERT INTO log_entry (seq, time, event_type, actor_kind, subjects, "
                        "payload_sha256) VALUES (?, ?, ?, 'user', '{}', '')",
                        ((s, _ts(START + timedelta(seconds=s)), EVENTS[s % len(EVENTS)])
                         for s in range(lo, hi)))
    con.execute("INSERT OR REPLACE INTO log_state (id, tree_size, root_hash, updated_at) "
                "VALUES (1, ?, zeroblob(32), ?)", (size + n_log, _ts(datetime.now(UTC))))
    con.commit()
    con.close()


def _ratings_and_scores(db_path: Path) -> None:
    con = sqlite3.connect(db_path)
    rng = random.Random(SEED)
    rows = con.execute("SELECT d.id, d.application_id, a.provider_department_id, "
                       "a.requester_department_id, d.created_at FROM delivery d JOIN "
                       "application a ON a.id = d.application_id WHERE d.id % 10 = 0"
                       ).fetchall()
    con.executemany("INSERT INTO delivery_rating (delivery_id, application_id, "
                    "provider_department_id, requester_department_id, rated_by, useful, "
                    "comment, rated_at) VALUES (?, ?, ?, ?, 1, ?, '', ?)",
                    [(*r[:4], rng.random() < 0.7, r[4]) for r in rows])
    con.commit()
    con.close()


# --- the baseline: the same aggregations on the raw tables ------------------------------------

def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    values.sort()
    pos = (len(values) - 1) * q
    lo = int(pos)
    hi = min(lo + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (pos - lo)


HOURS = "(julianday({a}) - julianday({b})) * 24"
LOCAL_DAY = "date({c}, '+8 hours')"


def baseline(con: sqlite3.Connection, name: str, start: str, end: str) -> Any:
    """One endpoint's figures from the raw tables (UTC+8 local days, like the mart)."""
    win = f"BETWEEN '{start}' AND '{end}'"
    fd, dd, vd = (LOCAL_DAY.format(c=c) for c in ("filed_at", "decided_at", "delivered_at"))
    if name == "overview":
        counts = con.execute(f"""SELECT sum({fd} {win}), sum({dd} {win} AND state <> 'rejected'),
            sum({vd} {win}), sum({dd} {win} AND state = 'rejected'),
            sum(state = 'submitted' AND due_date < '{end}') FROM application""").fetchone()
        lat = [r[0] for r in con.execute(f"SELECT {HOURS.format(a='delivered_at', b='filed_at')}"
                                         f" FROM application WHERE {vd} {win}")]
        vol = con.execute(f"SELECT sum(row_count), sum(bytes) FROM delivery "
                          f"WHERE {LOCAL_DAY.format(c='created_at')} {win}").fetchone()
        return counts, _pct(lat, 0.5), vol, _replies(con, win)
    if name == "volume":
        return con.execute(f"""SELECT p, sum(a), sum(ap), sum(d), sum(r), sum(b) FROM (
            SELECT date({fd}, 'weekday 1', '-7 days') p, 1 a, 0 ap, 0 d, 0 r, 0 b
              FROM application WHERE {fd} {win}
            UNION ALL SELECT date({dd}, 'weekday 1', '-7 days'), 0, 1, 0, 0, 0
              FROM application WHERE {dd} {win} AND state <> 'rejected'
            UNION ALL SELECT date({LOCAL_DAY.format(c='d.created_at')}, 'weekday 1',
              '-7 days'), 0, 0, 1, row_count, bytes FROM delivery d
              WHERE {LOCAL_DAY.format(c='d.created_at')} {win}) GROUP BY p""").fetchall()
    if name == "flows":
        return con.execute(f"""SELECT p, r, sum(a), sum(d), sum(n) FROM (
            SELECT provider_department_id p, requester_department_id r, 1 a, 0 d, 0 n
              FROM application WHERE {fd} {win}
            UNION ALL SELECT a.provider_department_id, a.requester_department_id, 0, 1,
              d.row_count FROM delivery d JOIN application a ON a.id = d.application_id
              WHERE {LOCAL_DAY.format(c='d.created_at')} {win}) GROUP BY p, r""").fetchall()
    if name in ("latency", "latency_stage"):
        if name == "latency":
            groups: dict[Any, list[float]] = {}
            for p, h in con.execute(f"SELECT provider_department_id, "
                                    f"{HOURS.format(a='delivered_at', b='filed_at')} "
                                    f"FROM application WHERE {vd} {win}"):
                groups.setdefault(p, []).append(h)
            return {k: [_pct(v, q) for q in (0.5, 0.9, 0.99)] for k, v in groups.items()}
        # stages: each state's time up to the first delivery, by walking the history
        rows = con.execute(f"""
            WITH s AS (SELECT st.application_id, st.seq, st.to_state, st.at, st.action,
                         lead(st.at) OVER (PARTITION BY st.application_id ORDER BY st.seq) nx
                       FROM application_step st JOIN application a ON a.id = st.application_id
                       WHERE {vd.replace('delivered_at', 'a.delivered_at')} {win})
            SELECT application_id,
                   sum(CASE WHEN to_state IN ('submitted','returned') THEN
                       {HOURS.format(a='nx', b='at')} ELSE 0 END),
                   sum(CASE WHEN to_state = 'approved' THEN {HOURS.format(a='nx', b='at')}
                       ELSE 0 END)
            FROM s WHERE seq < (SELECT min(seq) FROM application_step d
                                WHERE d.application_id = s.application_id
                                  AND d.action = 'deliver')
            GROUP BY application_id""").fetchall()
        return [_pct([r[i] for r in rows], 0.5) for i in (1, 2)]
    if name == "timeliness":
        return _replies(con, win), con.execute(
            f"SELECT count(*) FROM application WHERE state = 'submitted' "
            f"AND due_date < '{end}'").fetchone()
    if name == "failures":
        return con.execute(f"""SELECT json_extract(detail, '$.reason'), count(*)
            FROM application_step WHERE action = 'reject' AND {LOCAL_DAY.format(c='at')} {win}
            GROUP BY 1""").fetchall(), con.execute(
            f"SELECT returns + escalations + reassignments, count(*) FROM application "
            f"WHERE {fd} {win} GROUP BY 1").fetchall()
    if name == "quality":
        return con.execute("SELECT provider_id, avg(quality_score), count(*) FROM resource "
                           "WHERE status = 'active' AND quality_score IS NOT NULL "
                           "GROUP BY 1 ORDER BY 2 DESC").fetchall()
    if name == "resources":
        return con.execute(f"""SELECT r.id FROM resource r WHERE r.status = 'active'
            AND NOT EXISTS (SELECT 1 FROM application a WHERE a.resource_id = r.id
                            AND {fd.replace('filed_at', 'a.filed_at')} <= '{end}')
            """).fetchall(), con.execute(f"""SELECT resource_id, count(*) FROM application
            WHERE {fd} {win} GROUP BY 1 ORDER BY 2 DESC LIMIT 20""").fetchall()
    if name == "feedback":
        return con.execute(f"""SELECT provider_department_id, count(*), sum(useful)
            FROM delivery_rating WHERE {LOCAL_DAY.format(c='rated_at')} {win}
            GROUP BY 1""").fetchall()
    if name == "log":
        return con.execute("SELECT event_type, count(*) FROM log_entry GROUP BY 1").fetchall()
    raise ValueError(name)


def _replies(con: sqlite3.Connection, win: str) -> Any:
    """Replies in the window and whether each came by the due date of the round it answers
    (the latest submission before it: 10 weekdays after, weekends only, like the mart
    without holidays)."""
    return con.execute(f"""
        SELECT count(*), sum(date(r.at, '+8 hours') <= (
            SELECT date(s.at, '+8 hours', '+14 days') FROM application_step s
            WHERE s.application_id = r.application_id AND s.seq < r.seq
              AND s.action IN ('file', 'resubmit') ORDER BY s.seq DESC LIMIT 1))
        FROM application_step r
        WHERE r.action IN ('approve', 'set_conditions', 'reject', 'return')
          AND date(r.at, '+8 hours') {win}""").fetchone()


# --- measurement ------------------------------------------------------------------------------

def timed(fn: Callable[[], Any], calls: int) -> tuple[float, float]:
    times = []
    for _ in range(calls):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    times.sort()
    return statistics.median(times), times[min(len(times) - 1, math.ceil(len(times) * 0.95) - 1)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--applications", type=int)
    parser.add_argument("--log-entries", type=int)
    parser.add_argument("--calls", type=int)
    parser.add_argument("--data-dir", type=Path)
    args = parser.parse_args()
    n_apps = args.applications or (20_000 if args.quick else 1_000_000)
    n_log = args.log_entries if args.log_entries is not None else \
        (200_000 if args.quick else 10_000_000)
    calls = args.calls or (10 if args.quick else 20)
    data_dir = args.data_dir or Path(tempfile.mkdtemp(prefix="bench-metrics-"))
    os.environ["GOVSHARE_DATA_DIR"] = str(data_dir)
    os.environ.setdefault("GOVSHARE_KEY_PASSPHRASE", "bench")

    from sqlmodel import Session

    from bench.bench_search import generate as generate_catalog
    from govshare.migrate import upgrade
    from kernel import db
    from metrics import mart
    from metrics import service as svc

    db_path = data_dir / "govshare.db"
    if not db_path.exists():
        upgrade()
        t = time.perf_counter()
        with Session(db.get_engine(write=True)) as session:
            generate_catalog(session, 2_000)
            session.commit()
        generate(db_path, n_apps, n_log)
        _ratings_and_scores(db_path)
        print(f"generated {n_apps:,} applications, {n_log:,} log rows in "
              f"{time.perf_counter() - t:.0f} s ({data_dir})", flush=True)
    raw = sqlite3.connect(db_path)
    counts = {t: raw.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
              for t in ("application", "application_step", "delivery", "log_entry")}
    print("rows:", ", ".join(f"{k} {v:,}" for k, v in counts.items()), flush=True)

    full = mart.refresh(full=True)
    assert full is not None
    extra = max(n_apps // 100, 1)
    generate(db_path, extra, n_log // 100, first_id=counts["application"] + 1)
    incremental = mart.refresh()
    assert incremental is not None
    print(f"mart refresh: full {full.seconds:.1f} s, incremental (+{extra:,} applications, "
          f"+{n_log // 100:,} log rows) {incremental.seconds:.2f} s", flush=True)

    snap = mart.snapshot(max_age=10**9)
    end = date(2026, 11, 30)
    w = svc.Window(end - timedelta(days=179), end, None, today=end)
    s, e = w.start.isoformat(), w.end.isoformat()
    cases: list[tuple[str, Callable[[], Any], Callable[[], Any] | None]] = [
        ("overview", lambda: svc.overview(snap.con, w), lambda: baseline(raw, "overview", s, e)),
        ("volume", lambda: svc.volume(snap.con, w, "week"),
         lambda: baseline(raw, "volume", s, e)),
        ("flows", lambda: svc.flows(snap.con, w), lambda: baseline(raw, "flows", s, e)),
        ("latency by=provider", lambda: svc.latency(snap.con, w, "provider", "week"),
         lambda: baseline(raw, "latency", s, e)),
        ("latency by=stage", lambda: svc.latency(snap.con, w, "stage", "week"),
         lambda: baseline(raw, "latency_stage", s, e)),
        ("timeliness", lambda: svc.timeliness(snap.con, w),
         lambda: baseline(raw, "timeliness", s, e)),
        ("failures", lambda: svc.failures(snap.con, w), lambda: baseline(raw, "failures", s, e)),
        ("quality", lambda: svc.quality(snap.con, w), lambda: baseline(raw, "quality", s, e)),
        ("resources", lambda: svc.resources(snap.con, w),
         lambda: baseline(raw, "resources", s, e)),
        ("feedback", lambda: svc.feedback(snap.con, w), lambda: baseline(raw, "feedback", s, e)),
        ("log counts (/metrics)", lambda: svc.log_counts(snap.con),
         lambda: baseline(raw, "log", s, e)),
    ]
    rows = []
    worst = 0.0
    base_calls = max(calls // 5, 2)
    for name, fn, base in cases:
        p50, p95 = timed(fn, calls)
        worst = max(worst, p95)
        b50, b95 = timed(base, base_calls) if base else (float("nan"), float("nan"))
        rows.append([name, f"{p50:.1f}", f"{p95:.1f}", f"{b50:.0f}", f"{b95:.0f}",
                     f"{b95 / p95:.0f}x"])
        print(f"  {name}: mart p95 {p95:.1f} ms, raw p95 {b95:.0f} ms", flush=True)
    print_table(f"dashboard queries, {calls} calls each (raw: {base_calls}), ms",
                ["endpoint", "mart p50", "mart p95", "raw p50", "raw p95", "raw/mart"], rows)
    print(f"\nworst mart p95: {worst:.1f} ms (target < 200 ms): "
          f"{'met' if worst < 200 else 'MISSED'}")
    sys.exit(0)


if __name__ == "__main__":
    main()
