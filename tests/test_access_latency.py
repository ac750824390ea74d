"""Working days, sharing latency by stage, percentiles, the endpoint and the CLI."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from typer.testing import CliRunner

from access import latency
from access.calendar import WorkCalendar
from access.models import Application, ApplicationState, ApplicationStep, DeliveryMethod
from catalog.models import SharingType
from kernel import db
from kernel.identity import Role
from tests.test_access_support import (  # noqa: F401  (access_world: the aw fixture)
    AccessWorld,
    access_world,
    file_app,
    register,
)

TZ = ZoneInfo("Asia/Shanghai")
# 2025-10-01..08 National Day holidays, 2025-09-28 (Sunday) and 10-11 (Saturday) make-up days.
HOLIDAYS = frozenset(date(2025, 10, d) for d in range(1, 9))
MAKEUP = frozenset({date(2025, 9, 28), date(2025, 10, 11)})
CAL = WorkCalendar(HOLIDAYS, MAKEUP, TZ)


def local(year: int, month: int, day: int, hour: int = 0) -> datetime:
    return datetime(year, month, day, hour, tzinfo=TZ).astimezone(UTC)


def test_working_days_know_weekends_holidays_and_makeup_days() -> None:
    assert CAL.is_working_day(date(2025, 9, 26))  # Friday
    assert not CAL.is_working_day(date(2025, 9, 27))  # Saturday
    assert CAL.is_working_day(date(2025, 9, 28))  # Sunday, make-up working day
    assert not CAL.is_working_day(date(2025, 10, 2))  # holiday on a Thursday
    assert CAL.is_working_day(date(2025, 10, 11))  # Saturday, make-up
    # Ten working days from Friday 26 September: 28, 29, 30 Sep, 9, 10, 11, 13, 14, 15, 16 Oct.
    assert CAL.add_working_days(date(2025, 9, 26), 10) == date(2025, 10, 16)


def test_working_day_time_between_instants() -> None:
    # Friday 18:00 → Monday 09:00: 6 h of Friday and 9 h of Monday.
    assert CAL.working_days_between(local(2025, 9, 19, 18), local(2025, 9, 22, 9)) == \
        pytest.approx(15 / 24)
    # Across the holiday week: only 29 and 30 September count.
    assert CAL.working_days_between(local(2025, 9, 29), local(2025, 10, 9)) == pytest.approx(2)
    assert CAL.working_days_between(local(2025, 9, 29), local(2025, 9, 29)) == 0


def test_settings_configure_the_calendar(monkeypatch: pytest.MonkeyPatch) -> None:
    from kernel.settings import get_settings

    monkeypatch.setenv("GOVSHARE_ACCESS_CALENDAR", "weekends")  # the lists alone
    monkeypatch.setenv("GOVSHARE_ACCESS_HOLIDAYS", '["2025-10-01", "2025-10-02"]')
    monkeypatch.setenv("GOVSHARE_ACCESS_MAKEUP_WORKDAYS", '["2025-09-28"]')
    get_settings.cache_clear()
    try:
        cal = WorkCalendar.from_settings()
        assert cal.holidays == {date(2025, 10, 1), date(2025, 10, 2)}
        assert cal.is_working_day(date(2025, 9, 28))
    finally:
        get_settings.cache_clear()


def _step(seq: int, action: str, to: str, at: datetime) -> ApplicationStep:
    return ApplicationStep(application_id=1, seq=seq, action=action, to_state=to, at=at)


def test_latency_is_split_into_stages_that_add_up() -> None:
    filed = local(2025, 9, 22, 9)  # Monday 09:00
    history = [
        _step(1, "file", "submitted", filed),
        _step(2, "return", "returned", filed + timedelta(hours=30)),
        _step(3, "resubmit", "submitted", filed + timedelta(hours=50)),
        _step(4, "set_conditions", "conditions_pending", filed + timedelta(hours=70)),
        _step(5, "accept_conditions", "approved", filed + timedelta(hours=75)),
        _step(6, "deliver", "delivered", filed + timedelta(hours=75, seconds=36)),
        _step(7, "deliver", "delivered", filed + timedelta(hours=99)),
    ]
    app = Application(id=1, resource_id=1, provider_department_id=1, requester_department_id=2,
                      requester_user_id=1, sharing_type=SharingType.conditional,
                      state=ApplicationState.delivered, purpose="p", legal_basis="l",
                      items=["a"], period_start=date(2025, 9, 22), period_end=date(2025, 12, 1),
                      delivery_method=DeliveryMethod.file, returns=1, filed_at=filed,
                      delivered_at=history[5].at, first_download_at=filed + timedelta(hours=80))
    m = latency.measure(app, history, CAL, {"provider": "GA", "requester": "SCJG",
                                            "resource": "R"})
    assert m is not None
    assert m.hours == pytest.approx(75.01)
    assert m.stages["waiting_for_approval"][0] == pytest.approx(70)
    assert m.stages["waiting_on_conditions"][0] == pytest.approx(5)
    assert m.stages["processing"][0] == pytest.approx(0.01)
    assert sum(v[0] for v in m.stages.values()) == pytest.approx(m.hours)
    assert sum(v[1] for v in m.stages.values()) == pytest.approx(m.working_days)
    assert m.with_requester_hours == pytest.approx(20)
    assert m.first_download_hours == pytest.approx(80 - 75.01)
    assert m.bounces == 1


def test_percentiles_interpolate() -> None:
    assert latency.percentile([1, 2, 3, 4], 0.5) == 2.5
    assert latency.percentile([10], 0.9) == 10
    assert latency.percentile(list(range(101)), 0.95) == pytest.approx(95)


def _some_deliveries(aw: AccessWorld, tmp_path: Path) -> None:
    fast = register(tmp_path, sharing_type="unconditional", name="开放目录")
    slow = register(tmp_path, name="户籍")
    for items in (["name"], ["district"], ["mobile"]):
        file_app(aw, fast, items=items)
    app = file_app(aw, slow, items=["name", "district"])
    aw.post(f"/applications/{app['id']}/return", "GA", Role.approver,
            json={"deficiencies": [{"code": "purpose_unclear"}]})
    aw.post(f"/applications/{app['id']}/resubmit", "SCJG", Role.requester,
            json={"purpose": "更明确的用途说明"})
    aw.post(f"/applications/{app['id']}/approve", "GA", Role.approver, json={})
    with db.session_scope() as session:  # it really took two days
        row = session.get(Application, app["id"])
        assert row is not None
        row.filed_at -= timedelta(days=2)


def test_the_latency_endpoint(aw: AccessWorld, tmp_path: Path) -> None:
    _some_deliveries(aw, tmp_path)
    by_type = aw.get("/latency?group_by=sharing_type", "SJJ", Role.auditor).json()
    assert by_type["applications"] == 4
    groups = {g["group"]: g for g in by_type["groups"]}
    assert groups["unconditional"]["count"] == 3 and groups["conditional"]["count"] == 1
    assert groups["conditional"]["p50_hours"] > 47 > groups["unconditional"]["p99_hours"]
    assert groups["conditional"]["bounced"] == 1
    stages = aw.get("/latency?group_by=stage", "GA", Role.leader).json()["groups"]
    assert [s["group"] for s in stages] == ["waiting_for_approval", "waiting_on_conditions",
                                            "processing"]
    provider = aw.get("/latency?group_by=provider", "GA", Role.leader).json()["groups"]
    assert provider[0]["group"] == "GA" and provider[0]["count"] == 4
    rows = aw.get("/latency/applications", "SJJ", Role.auditor).json()
    assert {"waiting_for_approval_hours", "processing_working_days", "bounces"} <= set(rows[0])
    assert aw.get("/latency", "SCJG", Role.requester).status_code == 403
    assert aw.get("/latency?group_by=color", "SJJ", Role.auditor).status_code == 422


def test_the_latency_cli(aw: AccessWorld, tmp_path: Path) -> None:
    from access.cli import app as cli

    _some_deliveries(aw, tmp_path)
    runner = CliRunner()
    result = runner.invoke(cli, ["latency", "--by", "requester", "--json"])
    assert result.exit_code == 0, result.output
    (group,) = json.loads(result.stdout)
    assert group["group"] == "SCJG" and group["count"] == 4
    table = runner.invoke(cli, ["latency", "--by", "stage"])
    assert table.exit_code == 0 and "Sharing latency by stage" in table.stdout
    assert runner.invoke(cli, ["latency", "--by", "weather"]).exit_code == 2
    listed = runner.invoke(cli, ["list", "--as", "ga-approver", "--json"])
    assert listed.exit_code == 0 and len(json.loads(listed.stdout)) == 4
    refused = runner.invoke(cli, ["approve", "1", "--as", "scjg-requester"])
    assert refused.exit_code == 2
