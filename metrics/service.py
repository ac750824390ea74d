"""The dashboard's figures, as DuckDB SQL over the mart (metrics.mart).

Every function takes a mart cursor and a ``Window`` and returns the JSON body of one endpoint
of the contract (docs/metrics.md defines each figure). Windowed figures count events whose
local date falls in [from, to]; "now" figures (overdue, open notices, quality) are current.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Literal

import duckdb

from access import latency as sharing_latency
from access.calendar import WorkCalendar
from kernel import privacy
from kernel.db import utcnow
from kernel.problems import Invalid
from kernel.settings import get_settings
from metrics import latency as lat
from metrics.mart import REPLIES

Bucket = Literal["day", "week", "month"]
LatencyBy = Literal["overall", "provider", "requester", "sharing_type", "stage"]
TOP = 20
LIST_LIMIT = 100  # longest list in JSON; the CSV export has every row

STAGE_LABELS = {
    "waiting_for_approval": ("等待审批", "Waiting for approval"),
    "waiting_on_conditions": ("等待确认共享条件", "Waiting on conditions"),
    "processing": ("脱敏与交付处理", "Processing"),
    "to_first_download": ("交付至首次下载", "Delivery to first download"),
}
SHARING_LABELS = {"unconditional": ("无条件共享", "Unconditional"),
                  "conditional": ("有条件共享", "Conditional"),
                  "not_shareable": ("不予共享", "Not shareable")}
DIMENSIONS = ("freshness", "completeness", "validity", "uniqueness", "consistency")


@dataclass(frozen=True)
class Window:
    start: date
    end: date
    department_id: int | None = None
    today: date | None = None  # local; defaults to now

    def params(self, **extra: Any) -> dict[str, Any]:
        return {"from": self.start, "to": self.end, "dept": self.department_id,
                "today": self.today or WorkCalendar.from_settings().local_date(utcnow()),
                **extra}


def window(con: duckdb.DuckDBPyConnection, start: date | None, end: date | None,
           department: str | None, now: datetime | None = None) -> Window:
    today = WorkCalendar.from_settings().local_date(now or utcnow())
    end = end or today
    start = start or end - timedelta(days=179)
    if start > end:
        raise Invalid(f"'from' ({start}) is after 'to' ({end}); swap them.",
                      key="problem.metrics.from_after_to", params={"start": start, "end": end})
    dept_id = None
    if department:
        row = con.execute("SELECT id FROM department WHERE code = ?", [department]).fetchone()
        if row is None:
            raise Invalid(f"No department '{department}'; use a department code such as "
                          "GA (see /api/v1/departments).",
                          key="problem.metrics.no_department",
                          params={"department": department})
        dept_id = int(row[0])
    return Window(start, end, dept_id, today)


# --- helpers ----------------------------------------------------------------------------------

SCOPE_A = "($dept IS NULL OR a.provider_id = $dept OR a.requester_id = $dept)"
SCOPE_X = "($dept IS NULL OR x.provider_id = $dept OR x.requester_id = $dept)"
IN_WINDOW = "BETWEEN $from AND $to"
# Applications first delivered in the window, as seen by the department (app_latency).
DELIVERED_IN_WINDOW = f"delivered_day {IN_WINDOW} AND {SCOPE_A}"


def _rows(con: duckdb.DuckDBPyConnection, sql: str, params: dict[str, Any]
          ) -> list[dict[str, Any]]:
    # DuckDB refuses named parameters the statement does not use
    used = {k: v for k, v in params.items() if re.search(rf"\${k}\b", sql)}
    cur = con.execute(sql, used)
    names = [d[0] for d in cur.description or []]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def _one(con: duckdb.DuckDBPyConnection, sql: str, params: dict[str, Any]) -> dict[str, Any]:
    return _rows(con, sql, params)[0]


# Rows delivered from resources with personal items count persons' records (kernel.privacy).
PERSONAL_ROWS = "CASE WHEN x.personal THEN row_count ELSE 0 END"


def _min_count() -> int:
    return get_settings().metrics_min_count


def _withhold(row: dict[str, Any], *fields: str) -> None:
    """A figure that counts 1 … min_count − 1 persons' records is withheld: null, with
    ``rows_withheld`` true (bytes go with rows: they would tell the count)."""
    hidden = privacy.withheld(row.pop("personal_rows", 0) or 0, _min_count())
    row["rows_withheld"] = hidden
    if hidden:
        for f in fields:
            row[f] = None


def _int(value: Any) -> int | None:
    return None if value is None else int(value)


def _r(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(float(value), digits)


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _named(row: dict[str, Any], prefix: str) -> dict[str, Any]:
    """``{prefix}_code`` etc. of a row as the contract's {code, name_zh, name_en} object."""
    return {"code": row.pop(f"{prefix}_code"), "name_zh": row.pop(f"{prefix}_name_zh"),
            "name_en": row.pop(f"{prefix}_name_en")}


def _dept_cols(alias: str, prefix: str) -> str:
    return (f"{alias}.code AS {prefix}_code, {alias}.name_zh AS {prefix}_name_zh, "
            f"{alias}.name_en AS {prefix}_name_en")


def _hours(col: str) -> str:
    return f"epoch({col}) / 3600.0"


# --- overview ---------------------------------------------------------------------------------

def overview(con: duckdb.DuckDBPyConnection, w: Window) -> dict[str, Any]:
    p = w.params()
    apps = _one(con, f"""
        SELECT count(*) FILTER (WHERE filed_day {IN_WINDOW}) AS applications,
               count(*) FILTER (WHERE decided_day {IN_WINDOW} AND state <> 'rejected')
                   AS approved,
               count(*) FILTER (WHERE delivered_day {IN_WINDOW}) AS delivered,
               count(*) FILTER (WHERE decided_day {IN_WINDOW} AND state = 'rejected')
                   AS rejected,
               count(*) FILTER (WHERE state = 'submitted' AND due_date < $today)
                   AS overdue_now
        FROM application a WHERE {SCOPE_A}""", p)
    volume = _one(con, f"""
        SELECT coalesce(sum(row_count), 0) AS rows, coalesce(sum(bytes), 0) AS bytes,
               coalesce(sum({PERSONAL_ROWS}), 0) AS personal_rows
        FROM delivery x WHERE day {IN_WINDOW} AND {SCOPE_X}""", p)
    _withhold(volume, "rows", "bytes")
    replies = _replies_totals(con, p)
    quality = _one(con, """
        SELECT avg(quality_score) AS q FROM resource
        WHERE status = 'active' AND ($dept IS NULL OR provider_id = $dept)""", p)
    notices = _one(con, """
        SELECT count(*) AS n FROM notice
        WHERE status <> 'closed' AND ($dept IS NULL OR department_id = $dept)""", p)
    # One statement: the median per sharing type (the headline) and over all (key None).
    medians = lat.figures(con, "total", DELIVERED_IN_WINDOW, p, group="sharing_type",
                          quantiles=(0.5,), total=True)
    total = next((r for r in medians if r["key"] is None), None)
    sharing = _by_sharing_type([r for r in medians if r["key"] is not None])
    sharing["conditional"]["on_time_rate"] = _rate(replies["on_time"], replies["replied"])
    sharing["conditional"]["replied"] = replies["replied"]
    return {"applications": apps["applications"], "approved": apps["approved"],
            "delivered": apps["delivered"], "rejected": apps["rejected"],
            "rows_delivered": _int(volume["rows"]), "bytes_delivered": _int(volume["bytes"]),
            "latency_p50_hours": _r(total["h"][0]) if total and total["h"] else None,
            "on_time_rate": _rate(replies["on_time"], replies["replied"]),
            "overdue_now": apps["overdue_now"], "open_notices": notices["n"],
            "quality_avg": _r(quality["q"], 2), "sharing": sharing,
            "rows_delivered_withheld": volume["rows_withheld"], "min_count": _min_count()}


def _by_sharing_type(medians: list[dict[str, Any]]) -> dict[str, Any]:
    """The headline sharing times, one per sharing type, never mixed: unconditional
    applications are delivered at once (seconds), conditional ones wait for a reply within a
    deadline counted in working days. Each with the count it was computed from."""
    rows = {r["key"]: {"delivered": r["n"], "p50_seconds": r["h"][0] * 3600,
                       "p50_working_days": r["d"][0]} for r in medians}
    empty = {"delivered": 0, "p50_seconds": None, "p50_working_days": None}
    fast, slow = rows.get("unconditional", empty), rows.get("conditional", empty)
    return {"unconditional": {"delivered": fast["delivered"],
                              "p50_seconds": _r(fast["p50_seconds"], 1)},
            "conditional": {"delivered": slow["delivered"],
                            "p50_working_days": _r(slow["p50_working_days"], 2),
                            "p50_hours": _r(None if slow["p50_seconds"] is None
                                            else slow["p50_seconds"] / 3600),
                            "deadline_working_days":
                                get_settings().access_reply_working_days}}


def _replies_totals(con: duckdb.DuckDBPyConnection, p: dict[str, Any]) -> dict[str, Any]:
    return _one(con, f"""
        SELECT count(*) AS replied, count(*) FILTER (WHERE day <= due_date) AS on_time
        FROM step x WHERE action IN {REPLIES} AND day {IN_WINDOW} AND {SCOPE_X}""", p)


# --- volume -----------------------------------------------------------------------------------

def volume(con: duckdb.DuckDBPyConnection, w: Window, bucket: Bucket) -> dict[str, Any]:
    p = w.params(bucket=bucket)
    series = _rows(con, f"""
        WITH ev AS (
            SELECT date_trunc($bucket, filed_day) AS period, 1 AS applications, 0 AS approvals,
                   0 AS deliveries, 0 AS rows, 0 AS bytes, 0 AS personal_rows
            FROM application a WHERE filed_day {IN_WINDOW} AND {SCOPE_A}
            UNION ALL
            SELECT date_trunc($bucket, decided_day), 0, 1, 0, 0, 0, 0
            FROM application a WHERE decided_day {IN_WINDOW} AND state <> 'rejected'
              AND {SCOPE_A}
            UNION ALL
            SELECT date_trunc($bucket, day), 0, 0, 1, row_count, bytes, {PERSONAL_ROWS}
            FROM delivery x WHERE day {IN_WINDOW} AND {SCOPE_X})
        SELECT CAST(period AS DATE) AS period, sum(applications)::BIGINT AS applications,
               sum(approvals)::BIGINT AS approvals, sum(deliveries)::BIGINT AS deliveries,
               sum(rows)::BIGINT AS rows, sum(bytes)::BIGINT AS bytes,
               sum(personal_rows)::BIGINT AS personal_rows
        FROM ev GROUP BY ALL ORDER BY period""", p)
    for row in series:
        row["period"] = row["period"].isoformat()
    by_dept = _rows(con, f"""
        WITH ev AS (
            SELECT provider_id AS dept, 1 AS provided, 0 AS requested, 0 AS deliveries,
                   0 AS rows, 0 AS personal_rows
            FROM application a WHERE filed_day {IN_WINDOW} AND {SCOPE_A}
            UNION ALL
            SELECT requester_id, 0, 1, 0, 0, 0
            FROM application a WHERE filed_day {IN_WINDOW} AND {SCOPE_A}
            UNION ALL
            SELECT x.provider_id, 0, 0, 1, row_count, {PERSONAL_ROWS}
            FROM delivery x WHERE day {IN_WINDOW} AND {SCOPE_X})
        SELECT * FROM (
            SELECT {_dept_cols('d', 'department')}, sum(provided)::BIGINT AS provided,
                   sum(requested)::BIGINT AS requested, sum(deliveries)::BIGINT AS deliveries,
                   sum(rows)::BIGINT AS rows, sum(personal_rows)::BIGINT AS personal_rows
            FROM ev JOIN department d ON d.id = ev.dept GROUP BY ALL)
        ORDER BY provided + requested DESC, department_code""", p)
    by_resource = _rows(con, f"""
        WITH apps AS (SELECT resource_id, count(*) AS applications FROM application a
                      WHERE filed_day {IN_WINDOW} AND {SCOPE_A} GROUP BY 1),
        dels AS (SELECT x.resource_id, count(*) AS deliveries, sum(row_count) AS rows,
                        sum({PERSONAL_ROWS}) AS personal_rows
                 FROM delivery x WHERE day {IN_WINDOW} AND {SCOPE_X}
                 GROUP BY 1)
        SELECT {_dept_cols('r', 'resource')}, {_dept_cols('d', 'provider')},
               coalesce(apps.applications, 0) AS applications,
               coalesce(dels.deliveries, 0) AS deliveries,
               coalesce(dels.rows, 0)::BIGINT AS rows,
               coalesce(dels.personal_rows, 0)::BIGINT AS personal_rows
        FROM apps FULL JOIN dels USING (resource_id)
        JOIN resource r ON r.id = resource_id JOIN department d ON d.id = r.provider_id
        ORDER BY applications DESC, deliveries DESC, resource_code LIMIT {TOP}""", p)
    for row in [*series, *by_dept, *by_resource]:
        _withhold(row, "rows", "bytes")
    return {"bucket": bucket, "min_count": _min_count(), "series": series,
            "by_department": [{"department": _named(r, "department"), **r} for r in by_dept],
            "by_resource": [{"resource": _named(r, "resource"),
                             "provider": _named(r, "provider"), **r} for r in by_resource]}


# --- flows ------------------------------------------------------------------------------------

def flows(con: duckdb.DuckDBPyConnection, w: Window) -> dict[str, Any]:
    p = w.params()
    cells = _rows(con, f"""
        WITH ev AS (
            SELECT provider_id, requester_id, 1 AS applications, 0 AS deliveries, 0 AS rows,
                   0 AS personal_rows
            FROM application a WHERE filed_day {IN_WINDOW} AND {SCOPE_A}
            UNION ALL
            SELECT x.provider_id, x.requester_id, 0, 1, row_count, {PERSONAL_ROWS}
            FROM delivery x WHERE day {IN_WINDOW} AND {SCOPE_X})
        SELECT pd.code AS provider, rd.code AS requester,
               sum(applications)::BIGINT AS applications, sum(deliveries)::BIGINT AS deliveries,
               sum(rows)::BIGINT AS rows, sum(personal_rows)::BIGINT AS personal_rows
        FROM ev JOIN department pd ON pd.id = ev.provider_id
        JOIN department rd ON rd.id = ev.requester_id
        GROUP BY ALL ORDER BY provider, requester""", p)
    codes = sorted({c["provider"] for c in cells} | {c["requester"] for c in cells})
    depts = _rows(con, "SELECT code, name_zh, name_en FROM department ORDER BY code", {})
    for cell in cells:
        _withhold(cell, "rows")
    return {"departments": [d for d in depts if d["code"] in codes], "min_count": _min_count(),
            "cells": cells}


# --- latency ----------------------------------------------------------------------------------

# The names of the quantiles of sharing latency (access.latency, metrics.latency).
_QK = [sharing_latency.quantile_key(q) for q in sharing_latency.QUANTILES]


def _quantile_group(rows: list[dict[str, Any]], labels: dict[str, tuple[str, str]] | None
                    ) -> list[dict[str, Any]]:
    out = []
    for r in rows:
        h, d = r["h"] or [None] * 3, r["d"] or [None] * 3
        zh, en = (labels or {}).get(r["key"], (r.get("name_zh") or r["key"],
                                               r.get("name_en") or r["key"]))
        out.append({"key": r["key"], "label_zh": zh, "label_en": en, "n": r["n"],
                    **{f"{k}_hours": _r(v) for k, v in zip(_QK, h, strict=True)},
                    **{f"{k}_working_days": _r(v) for k, v in zip(_QK, d, strict=True)}})
    return out


def latency(con: duckdb.DuckDBPyConnection, w: Window, by: LatencyBy,
            bucket: Bucket) -> dict[str, Any]:
    """Percentiles of sharing latency per group: ``metrics.latency.figures`` over the mart's
    ``app_latency`` view, the one evaluation the dashboard's headline uses too."""
    p = w.params(bucket=bucket)
    where = DELIVERED_IN_WINDOW
    if by == "stage":
        measures = [*sharing_latency.STAGES, "to_first_download"]
        found = {r["measure"]: r for r in lat.figures(con, measures, where, p)}
        rows = [{**found.get(k, {"n": 0, "h": None, "d": None}), "key": k} for k in measures]
        groups = _quantile_group(rows, STAGE_LABELS)
    elif by == "overall":
        groups = _quantile_group(lat.figures(con, "total", where, p), {"all": ("全部", "All")})
    elif by == "sharing_type":
        groups = _quantile_group(lat.figures(con, "total", where, p, group="sharing_type"),
                                 SHARING_LABELS)
    else:
        side = "provider_id" if by == "provider" else "requester_id"
        names = {r["id"]: r for r in _rows(
            con, "SELECT id, code, name_zh, name_en FROM department", {})}
        rows = [{**r, "key": names[r["key"]]["code"], "name_zh": names[r["key"]]["name_zh"],
                 "name_en": names[r["key"]]["name_en"]}
                for r in lat.figures(con, "total", where, p, group=f"a.{side}")
                if r["key"] in names]
        groups = _quantile_group(sorted(rows, key=lambda r: r["key"]), None)
    trend = lat.figures(con, "total", where, p, quantiles=(0.5, 0.9),
                        group="CAST(date_trunc($bucket, delivered_day) AS DATE)")
    return {"by": by, "groups": [g for g in groups if g["n"] or by == "stage"],
            "trend": [{"period": t["key"].isoformat(), "n": t["n"],
                       "p50_hours": _r(t["h"][0]), "p90_hours": _r(t["h"][1])}
                      for t in trend]}


# --- timeliness -------------------------------------------------------------------------------

def overdue_rows(con: duckdb.DuckDBPyConnection, w: Window,
                 limit: int | None = LIST_LIMIT) -> list[dict[str, Any]]:
    rows = _rows(con, f"""
        SELECT a.id AS application_id, {_dept_cols('r', 'resource')},
               {_dept_cols('pd', 'provider')}, {_dept_cols('rd', 'requester')}, a.due_date,
               (SELECT ordinal FROM cal WHERE day = $today) - c.ordinal
                   AS working_days_overdue
        FROM application a JOIN resource r ON r.id = a.resource_id
        JOIN department pd ON pd.id = a.provider_id JOIN department rd ON rd.id = a.requester_id
        JOIN cal c ON c.day = a.due_date
        WHERE a.state = 'submitted' AND a.due_date < $today AND {SCOPE_A}
        ORDER BY working_days_overdue DESC, a.id
        {f'LIMIT {int(limit)}' if limit else ''}""", w.params())
    return [{"application_id": r["application_id"], "resource": _named(r, "resource"),
             "provider": _named(r, "provider"), "requester": _named(r, "requester"),
             "due_date": r["due_date"].isoformat(),
             "working_days_overdue": r["working_days_overdue"]} for r in rows]


def timeliness(con: duckdb.DuckDBPyConnection, w: Window) -> dict[str, Any]:
    p = w.params()
    replies = _replies_totals(con, p)
    decided = _one(con, f"""
        SELECT count(*) FILTER (WHERE state <> 'rejected') AS approved,
               count(*) FILTER (WHERE state = 'rejected') AS rejected
        FROM application a WHERE decided_day {IN_WINDOW} AND {SCOPE_A}""", p)
    overdue_now = _one(con, f"""SELECT count(*) AS n FROM application a
        WHERE state = 'submitted' AND due_date < $today AND {SCOPE_A}""", p)["n"]
    decisions = decided["approved"] + decided["rejected"]
    by_provider = _rows(con, f"""
        WITH r AS (SELECT provider_id, count(*) AS replied,
                          count(*) FILTER (WHERE day <= due_date) AS on_time
                   FROM step x WHERE action IN {REPLIES} AND day {IN_WINDOW} AND {SCOPE_X}
                   GROUP BY 1),
        o AS (SELECT provider_id, count(*) AS overdue_now FROM application a
              WHERE state = 'submitted' AND due_date < $today AND {SCOPE_A} GROUP BY 1)
        SELECT {_dept_cols('d', 'department')}, coalesce(r.replied, 0) AS replied,
               coalesce(r.on_time, 0) AS on_time, coalesce(o.overdue_now, 0) AS overdue_now
        FROM r FULL JOIN o USING (provider_id) JOIN department d ON d.id = provider_id
        ORDER BY department_code""", p)
    return {"replied": replies["replied"], "on_time": replies["on_time"],
            "on_time_rate": _rate(replies["on_time"], replies["replied"]),
            "overdue_now": overdue_now,
            "approval_rate": _rate(decided["approved"], decisions),
            "rejection_rate": _rate(decided["rejected"], decisions),
            "overdue": overdue_rows(con, w),
            "by_provider": [{"department": _named(r, "department"), "replied": r["replied"],
                             "on_time_rate": _rate(r["on_time"], r["replied"]),
                             "overdue_now": r["overdue_now"]} for r in by_provider]}


# --- failures ---------------------------------------------------------------------------------

def failures(con: duckdb.DuckDBPyConnection, w: Window) -> dict[str, Any]:
    p = w.params()
    reasons = _rows(con, f"""
        SELECT coalesce(reason, 'other') AS reason, count(*) AS count FROM step x
        WHERE action = 'reject' AND day {IN_WINDOW} AND {SCOPE_X}
        GROUP BY 1 ORDER BY count DESC, reason""", p)
    bounces = _rows(con, f"""
        SELECT (returns + escalations + reassignments)::INTEGER AS bounces,
               count(*) AS applications
        FROM application a WHERE filed_day {IN_WINDOW} AND {SCOPE_A}
        GROUP BY 1 ORDER BY 1""", p)
    counts = _one(con, f"""
        SELECT (SELECT coalesce(sum(notice_violations), 0) FROM application a
                WHERE filed_day {IN_WINDOW} AND {SCOPE_A})::BIGINT AS violations,
               (SELECT count(*) FROM step x WHERE action = 'block' AND day {IN_WINDOW}
                AND {SCOPE_X}) AS blocked""", p)
    wait = _one(con, f"""
        WITH pairs AS (
            SELECT application_id,
                   max(moved_at) FILTER (WHERE action = 'set_conditions') AS set_at,
                   max(moved_at) FILTER (WHERE action = 'accept_conditions') AS accepted_at,
                   max(day) FILTER (WHERE action = 'accept_conditions') AS accepted_day
            FROM step x WHERE action IN ('set_conditions', 'accept_conditions')
              AND {SCOPE_X} GROUP BY 1)
        SELECT count(*) AS n, quantile_cont({_hours('accepted_at - set_at')}, [0.5, 0.9]) AS h
        FROM pairs WHERE accepted_day {IN_WINDOW} AND set_at IS NOT NULL""", p)
    h = wait["h"] or [None, None]
    return {"rejections_by_reason": reasons, "bounces": bounces,
            "notice_violations": int(counts["violations"]),
            "blocked_deliveries": counts["blocked"],
            "conditions_wait": {"n": wait["n"], "p50_hours": _r(h[0]), "p90_hours": _r(h[1])}}


# --- quality ----------------------------------------------------------------------------------

def quality(con: duckdb.DuckDBPyConnection, w: Window) -> dict[str, Any]:
    p = w.params()
    scoped = "r.status = 'active' AND ($dept IS NULL OR r.provider_id = $dept)"
    ranking = _rows(con, f"""
        SELECT {_dept_cols('d', 'department')}, avg(r.quality_score) AS score,
               count(*) AS resources
        FROM resource r JOIN department d ON d.id = r.provider_id
        WHERE {scoped} AND r.quality_score IS NOT NULL
        GROUP BY ALL ORDER BY score DESC, department_code""", p)
    buckets = {x["b"]: x["n"] for x in _rows(con, f"""
        SELECT least(floor(r.quality_score / 10), 9)::INTEGER AS b, count(*) AS n
        FROM resource r WHERE {scoped} AND r.quality_score IS NOT NULL GROUP BY 1""", p)}
    notices = _rows(con, """
        SELECT d.code AS department_code, d.name_zh AS department_name_zh,
               d.name_en AS department_name_en, count(*) AS open
        FROM notice n JOIN department d ON d.id = n.department_id
        WHERE n.status <> 'closed' AND ($dept IS NULL OR n.department_id = $dept)
        GROUP BY ALL ORDER BY open DESC, department_code""", p)
    dims = ", ".join(f"coalesce(q.{d}, 101)" for d in DIMENSIONS)
    failing = _rows(con, f"""
        WITH latest AS (SELECT * FROM qscore WHERE id IN
                        (SELECT max(id) FROM qscore GROUP BY resource_id))
        SELECT {_dept_cols('r', 'resource')}, r.quality_score AS score,
               CASE least({dims})
                 {' '.join(f"WHEN coalesce(q.{d}, 101) THEN '{d}'" for d in DIMENSIONS)}
               END AS dimension
        FROM resource r LEFT JOIN latest q ON q.resource_id = r.id
        WHERE {scoped} AND r.quality_score IS NOT NULL
        ORDER BY score, resource_code LIMIT {TOP}""", p)
    return {"ranking": [{"department": _named(r, "department"), "score": _r(r["score"], 2),
                         "resources": r["resources"]} for r in ranking],
            "distribution": [{"bucket": f"{b * 10}-{b * 10 + 10}",
                              "resources": buckets.get(b, 0)} for b in range(9, -1, -1)],
            "open_notices": [{"department": _named(r, "department"), "open": r["open"]}
                             for r in notices],
            "failing": [{"resource": _named(r, "resource"), "score": _r(r["score"], 2),
                         "dimension": r["dimension"]} for r in failing]}


# --- resources --------------------------------------------------------------------------------

def resource_list(con: duckdb.DuckDBPyConnection, w: Window, which: str,
                   limit: int | None) -> list[dict[str, Any]]:
    condition = {
        "never_requested": "NOT EXISTS (SELECT 1 FROM application a WHERE "
                           "a.resource_id = r.id AND a.filed_day <= $to)",
        "never_delivered": "EXISTS (SELECT 1 FROM application a WHERE a.resource_id = r.id "
                           "AND a.filed_day <= $to) AND NOT EXISTS (SELECT 1 FROM delivery x "
                           "WHERE x.resource_id = r.id AND x.day <= $to)",
    }[which]
    rows = _rows(con, f"""
        SELECT {_dept_cols('r', 'resource')}, {_dept_cols('d', 'provider')}, r.published_at
        FROM resource r JOIN department d ON d.id = r.provider_id
        WHERE r.status = 'active' AND r.published_at <= $to
          AND ($dept IS NULL OR r.provider_id = $dept) AND {condition}
        ORDER BY r.published_at, resource_code {f'LIMIT {int(limit)}' if limit else ''}""",
                 w.params())
    return [{"resource": _named(r, "resource"), "provider": _named(r, "provider"),
             "published_at": r["published_at"].isoformat()} for r in rows]


def resources(con: duckdb.DuckDBPyConnection, w: Window) -> dict[str, Any]:
    p = w.params()
    top = _rows(con, f"""
        WITH apps AS (SELECT resource_id, count(*) AS applications FROM application a
                      WHERE filed_day {IN_WINDOW} AND {SCOPE_A} GROUP BY 1),
        dels AS (SELECT resource_id, count(*) AS deliveries FROM delivery x
                 WHERE day {IN_WINDOW} AND {SCOPE_X} GROUP BY 1)
        SELECT {_dept_cols('r', 'resource')}, {_dept_cols('d', 'provider')},
               apps.applications, coalesce(dels.deliveries, 0) AS deliveries
        FROM apps LEFT JOIN dels USING (resource_id)
        JOIN resource r ON r.id = resource_id JOIN department d ON d.id = r.provider_id
        ORDER BY applications DESC, deliveries DESC, resource_code LIMIT {TOP}""", p)
    counts = _one(con, """
        SELECT count(*) AS catalogued,
               count(*) FILTER (WHERE EXISTS (SELECT 1 FROM application a
                   WHERE a.resource_id = r.id AND a.filed_day <= $to)) AS requested,
               count(*) FILTER (WHERE EXISTS (SELECT 1 FROM delivery x
                   WHERE x.resource_id = r.id AND x.day <= $to)) AS delivered
        FROM resource r WHERE r.status = 'active' AND r.published_at <= $to
          AND ($dept IS NULL OR r.provider_id = $dept)""", p)
    return {"most_requested": [{"resource": _named(r, "resource"),
                                "provider": _named(r, "provider"), **r} for r in top],
            "never_requested": resource_list(con, w, "never_requested", LIST_LIMIT),
            "never_delivered": resource_list(con, w, "never_delivered", LIST_LIMIT),
            **counts}


# --- feedback ---------------------------------------------------------------------------------

def feedback(con: duckdb.DuckDBPyConnection, w: Window) -> dict[str, Any]:
    p = w.params()
    by_provider = _rows(con, f"""
        SELECT {_dept_cols('d', 'department')}, count(*) AS ratings,
               count(*) FILTER (WHERE useful) AS useful
        FROM rating x JOIN department d ON d.id = x.provider_id
        WHERE day {IN_WINDOW} AND {SCOPE_X}
        GROUP BY ALL ORDER BY ratings DESC, department_code""", p)
    recent = _rows(con, f"""
        SELECT x.delivery_id, {_dept_cols('r', 'resource')}, {_dept_cols('d', 'requester')},
               x.useful, x.comment, x.rated_at
        FROM rating x JOIN application a ON a.id = x.application_id
        JOIN resource r ON r.id = a.resource_id JOIN department d ON d.id = x.requester_id
        WHERE x.day {IN_WINDOW} AND {SCOPE_X}
        ORDER BY x.rated_at DESC, x.id DESC LIMIT {TOP}""", p)
    return {"by_provider": [{"department": _named(r, "department"), "ratings": r["ratings"],
                             "useful": r["useful"],
                             "useful_rate": _rate(r["useful"], r["ratings"])}
                            for r in by_provider],
            "recent": [{"delivery_id": r["delivery_id"], "resource": _named(r, "resource"),
                        "requester": _named(r, "requester"), "useful": r["useful"],
                        "comment": r["comment"],
                        "rated_at": r["rated_at"].isoformat() + "Z"} for r in recent]}


# --- operators (Prometheus) -------------------------------------------------------------------

def states(con: duckdb.DuckDBPyConnection) -> list[tuple[str, int]]:
    return [(s, int(n)) for s, n in con.execute(
        "SELECT state, count(*) FROM application GROUP BY 1 ORDER BY 1").fetchall()]


def stage_seconds(con: duckdb.DuckDBPyConnection, since: date) -> list[dict[str, Any]]:
    """Stage durations of applications first delivered since ``since`` (operators), in
    seconds: ``metrics.latency.figures`` like every other latency figure."""
    sums = _one(con, "SELECT " + ", ".join(f"sum({k}_h) * 3600 AS {k}"
                                           for k in sharing_latency.STAGES)
                + " FROM app_latency WHERE delivered_day >= $since", {"since": since})
    return [{"stage": r["measure"], "n": r["n"], "total": sums[r["measure"]],
             "q": [h * 3600 for h in r["h"]]}
            for r in lat.figures(con, list(sharing_latency.STAGES), "delivered_day >= $since",
                                 {"since": since})]


def log_counts(con: duckdb.DuckDBPyConnection) -> list[tuple[str, int]]:
    return [(t, int(n)) for t, n in
            con.execute("SELECT event_type, n FROM log_count ORDER BY 1").fetchall()]


def _flat(row: dict[str, Any], prefix: str) -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in row.items():
        if isinstance(value, dict):  # nested objects too (the overview's sharing types)
            flat |= _flat(value, f"{prefix}{key}_")
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def flatten(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Nested {code, name_zh, name_en} objects as ``<key>_code`` … columns (CSV)."""
    out = []
    for row in rows:
        out.append(_flat(row, ""))
    return out
