"""Sharing latency for the leaders, evaluated once: the mart's ``app_latency`` view and
``figures`` over it.

The definition is access's (``access.latency``): latency is first delivery − filing; the time
an application spends in each state before its first delivery is charged to a stage
(``STAGE_STATES``); percentiles are ``QUANTILES`` with linear interpolation (DuckDB's
``quantile_cont``); working days run on the working-day clock of the mart's calendar.

Every figure of sharing time a leader or an operator sees is ``figures`` over the one view:
``/api/v1/metrics/latency`` (the dashboard's latency charts and stage table), the overview's
headline per sharing type (the dashboard's KPI cards) and its ``latency_p50_hours``, and the
Prometheus stage quantiles — so no two of them can disagree on an application, a stage or a
percentile (``tests/test_metrics_latency.py`` checks them against the applications' history
timestamps).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import duckdb

from access import latency as definition

QUANTILES = definition.QUANTILES
STAGES = definition.STAGES
# measure → (hours column, working-days column) of app_latency
MEASURES: dict[str, tuple[str, str]] = {
    "total": ("total_h", "total_wd"),
    **{stage: (f"{stage}_h", f"{stage}_wd") for stage in STAGES},
    "to_first_download": ("to_first_download_h", "to_first_download_wd"),
}

# One row per delivered application. The stage columns come from app_stage (built at refresh
# from STAGE_STATES, metrics.mart._stages); an application delivered without a "deliver" step
# in its history has none (NULL: not counted in the stage figures). app_latency_total is the
# same rows without the stage columns.
VIEW = """
CREATE OR REPLACE VIEW app_latency_total AS
SELECT a.id AS application_id, a.provider_id, a.requester_id, a.resource_id, a.sharing_type,
       a.filed_day, a.delivered_day,
       epoch(a.delivered_at - a.filed_at) AS total_s,
       epoch(a.delivered_at - a.filed_at) / 3600.0 AS total_h,
       a.delivered_w - a.filed_w AS total_wd,
       epoch(a.first_download_at - a.delivered_at) / 3600.0 AS to_first_download_h,
       a.first_download_w - a.delivered_w AS to_first_download_wd
FROM application a
WHERE a.delivered_at IS NOT NULL;
CREATE OR REPLACE VIEW app_latency AS
SELECT t.*, {stages}
FROM app_latency_total t LEFT JOIN app_stage s ON s.application_id = t.application_id
"""
# Figures of the whole latency or of the first download need no stage: they read the view
# without the join (the dashboard's overview runs on every page load).
_SOURCE = {"total": "app_latency_total", "to_first_download": "app_latency_total"}


def create_view(con: duckdb.DuckDBPyConnection) -> None:
    stages = ", ".join(f"s.{k}_h AS {k}_h, s.{k}_wd AS {k}_wd" for k in STAGES)
    con.execute(VIEW.format(stages=stages))


def quantile_key(q: float) -> str:
    return definition.quantile_key(q)


def figures(con: duckdb.DuckDBPyConnection, measure: str | Sequence[str], where: str,
            params: dict[str, Any], *, group: str = "'all'",
            quantiles: Sequence[float] = QUANTILES, total: bool = False
            ) -> list[dict[str, Any]]:
    """Per measure and group (a SQL expression over ``app_latency``, alias ``a``): ``n`` and
    the quantiles of the measure in hours (``h``) and working days (``d``), lists in the
    order of ``quantiles``; one statement however many measures. ``where`` filters the view
    (e.g. the window and department); ``total`` adds a row over all groups (key None)."""
    measures = [measure] if isinstance(measure, str) else list(measure)
    qs = "[" + ", ".join(repr(float(q)) for q in quantiles) + "]"
    grouping = f"GROUPING SETS (({group}), ())" if total else "1, 2"
    parts = []
    for m in measures:
        hours, days = MEASURES[m]
        parts.append(f"""SELECT '{m}' AS measure, {group} AS key, count(*) AS n,
                                quantile_cont({hours}, {qs}) AS h,
                                quantile_cont({days}, {qs}) AS d
                         FROM {_SOURCE.get(m, "app_latency")} a
                         WHERE {hours} IS NOT NULL AND ({where}) GROUP BY {grouping}""")
    sql = " UNION ALL ".join(f"({part})" for part in parts)
    used = {k: v for k, v in params.items() if re.search(rf"\${k}\b", sql)}
    cur = con.execute(sql, used)
    names = [c[0] for c in cur.description or []]
    rows = [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
    order = {m: i for i, m in enumerate(measures)}
    rows.sort(key=lambda r: (order[r["measure"]], r["key"] is not None, str(r["key"])))
    return rows
