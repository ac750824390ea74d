"""One definition of sharing latency, evaluated once: the metrics API, the dashboard's headline
and the access API report the same figures, and those are what the applications' history
timestamps give, per stage and per sharing type (the March world of tests/test_metrics.py)."""

from __future__ import annotations

import itertools
from collections import defaultdict
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlmodel import col, select

from access.calendar import WorkCalendar
from access.latency import QUANTILES, STAGE_STATES
from access.models import Application, ApplicationStep
from kernel import db
from kernel.identity import Role
from tests.test_access_support import AccessWorld, access_world  # noqa: F401  (aw fixture)
from tests.test_metrics import MARCH, march  # noqa: F401  (the march fixture)

WINDOW = {"from": MARCH.start.isoformat(), "to": MARCH.end.isoformat()}
KEYS = [f"p{round(q * 100)}" for q in QUANTILES]


def _from_history() -> dict[str, dict[str, list[tuple[float, float]]]]:
    """(hours, working days) per application delivered in the window, straight from the
    history steps: by sharing type (filing → first delivery) and by stage (each state's time
    up to the first delivery, charged to its stage)."""
    cal = WorkCalendar.from_settings()
    stage_of = {state: stage for stage, states in STAGE_STATES.items() for state in states}
    out: dict[str, dict[str, list[tuple[float, float]]]] = {
        "sharing_type": defaultdict(list), "stage": defaultdict(list)}
    with db.session_scope(write=False) as session:
        for app in session.exec(select(Application)):
            if app.delivered_at is None or not (
                    MARCH.start <= cal.local_date(app.delivered_at) <= MARCH.end):
                continue
            steps = list(session.exec(select(ApplicationStep).where(
                ApplicationStep.application_id == app.id).order_by(col(ApplicationStep.seq))))
            filed = steps[0].at
            delivered = next(s.at for s in steps if s.action == "deliver")
            out["sharing_type"][app.sharing_type.value].append(
                ((delivered - filed).total_seconds() / 3600,
                 cal.working_days_between(filed, delivered)))
            spent = {stage: [0.0, 0.0] for stage in STAGE_STATES}
            for step, after in itertools.pairwise(steps):
                if step.at >= delivered:
                    break
                if step.to_state in stage_of:
                    spent[stage_of[step.to_state]][0] += (after.at - step.at).total_seconds() / 3600
                    spent[stage_of[step.to_state]][1] += cal.working_days_between(step.at,
                                                                                   after.at)
            for stage, (hours, days) in spent.items():
                out["stage"][stage].append((hours, days))
    return out


def _quantiles(values: list[tuple[float, float]]) -> dict[str, float]:
    hours, days = np.array([v[0] for v in values]), np.array([v[1] for v in values])
    return {**{f"{k}_hours": float(np.quantile(hours, q)) for k, q in zip(KEYS, QUANTILES,
                                                                           strict=True)},
            **{f"{k}_working_days": float(np.quantile(days, q))
               for k, q in zip(KEYS, QUANTILES, strict=True)}}


def _api(client: TestClient, aw: AccessWorld, by: str) -> dict[str, dict[str, Any]]:
    r = client.get("/api/v1/metrics/latency", params={**WINDOW, "by": by},
                   headers=aw.h("GA", Role.leader))
    assert r.status_code == 200, r.text
    return {g["key"]: g for g in r.json()["groups"]}


@pytest.mark.usefixtures("march")
def test_the_api_the_dashboard_and_the_history_agree(aw: AccessWorld) -> None:
    from govshare.app import create_app

    expected = _from_history()
    assert set(expected["sharing_type"]) == {"conditional", "unconditional"}
    client = TestClient(create_app())
    # The metrics API (the dashboard's latency charts and stage table read exactly this).
    for by in ("sharing_type", "stage"):
        got = _api(client, aw, by)
        for key, values in expected[by].items():
            assert got[key]["n"] == len(values), (by, key)
            for name, value in _quantiles(values).items():
                assert got[key][name] == pytest.approx(value, abs=6e-4), (by, key, name)
    # The dashboard's headline cards (the overview), per sharing type.
    overview = client.get("/api/v1/metrics/overview", params=WINDOW,
                          headers=aw.h("GA", Role.leader)).json()
    by_type = _api(client, aw, "sharing_type")
    fast, slow = overview["sharing"]["unconditional"], overview["sharing"]["conditional"]
    assert fast["delivered"] == by_type["unconditional"]["n"]
    assert fast["p50_seconds"] / 3600 == pytest.approx(by_type["unconditional"]["p50_hours"],
                                                       abs=1e-3)
    assert slow["delivered"] == by_type["conditional"]["n"]
    assert slow["p50_hours"] == pytest.approx(by_type["conditional"]["p50_hours"], abs=1e-3)
    assert slow["p50_working_days"] == pytest.approx(
        by_type["conditional"]["p50_working_days"], abs=6e-3)
    overall = _api(client, aw, "overall")["all"]
    assert overview["latency_p50_hours"] == pytest.approx(overall["p50_hours"], abs=1e-3)
    # The access API's report (per application, from the same history) agrees as well.
    for group_by in ("sharing_type", "stage"):
        access = {g["group"]: g for g in aw.get(f"/latency?group_by={group_by}", "GA",
                                                Role.leader).json()["groups"]}
        mine = _api(client, aw, group_by)
        for key, g in access.items():
            assert g["count"] == mine[key]["n"]
            for k in KEYS:
                assert g[f"{k}_hours"] == pytest.approx(mine[key][f"{k}_hours"], abs=1e-3)
                assert g[f"{k}_working_days"] == pytest.approx(
                    mine[key][f"{k}_working_days"], abs=1e-3)
