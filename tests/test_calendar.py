"""China's working calendar by default (chinese-calendar), overridable in settings."""

from __future__ import annotations

from datetime import UTC, date, datetime

from access.calendar import WorkCalendar
from kernel.settings import Settings


def test_national_day_and_its_make_up_saturday_count_by_default() -> None:
    cal = WorkCalendar.from_settings(Settings())
    assert not cal.is_working_day(date(2026, 10, 1))  # 国庆节
    assert not cal.is_working_day(date(2026, 10, 7))
    assert cal.is_working_day(date(2026, 10, 10))  # a Saturday: 调休 working day
    # Ten working days from 30 September 2026: 8, 9, 10 (Sat), 12 … 16, 19, 20 October.
    assert cal.add_working_days(date(2026, 9, 30), 10) == date(2026, 10, 20)
    assert cal.working_days_between(datetime(2026, 10, 1, tzinfo=UTC),
                                    datetime(2026, 10, 6, tzinfo=UTC)) == 0.0


def test_settings_override_the_official_calendar() -> None:
    weekends = WorkCalendar.from_settings(Settings(access_calendar="weekends"))
    assert weekends.is_working_day(date(2026, 10, 8))  # a Thursday in the holiday week
    assert not weekends.is_working_day(date(2026, 10, 10))
    own = WorkCalendar.from_settings(Settings(access_holidays=[date(2026, 10, 12)],
                                              access_makeup_workdays=[date(2026, 10, 5)]))
    assert not own.is_working_day(date(2026, 10, 12))  # a local holiday added
    assert own.is_working_day(date(2026, 10, 5))  # declared a working day after all
    assert not own.is_working_day(date(2026, 10, 6))  # the rest of the official holiday stays
