"""Working days: weekends off, China's official holidays and make-up working days (调休) from
the ``chinese-calendar`` package (``GOVSHARE_ACCESS_CALENDAR=china``, the default), plus
holidays and make-up working days configured by hand.

Deadlines count whole working days in the local time zone; durations are measured in
*working-day time*: the part of an interval that falls on working days, in days (so a stage
from Friday 18:00 to Monday 09:00 costs 0.625 working days: Friday's last 6 h + Monday's 9 h).
That measure is additive, so stage durations add up to the total.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from kernel.settings import Settings, get_settings

_DAY = 86400.0


@lru_cache(maxsize=1)
def _china() -> tuple[frozenset[date], frozenset[date]]:
    """The official holidays and make-up working days the package knows (it is updated each
    year when the State Council publishes the next year's arrangement; a year it does not know
    yet counts weekends only, so keep the package current)."""
    from chinese_calendar import constants

    return frozenset(constants.holidays), frozenset(constants.workdays)


@dataclass(frozen=True)
class WorkCalendar:
    holidays: frozenset[date]
    makeup_workdays: frozenset[date]
    tz: ZoneInfo

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> WorkCalendar:
        s = settings or get_settings()
        holidays, makeup = set(s.access_holidays), set(s.access_makeup_workdays)
        if s.access_calendar == "china":
            official_holidays, official_makeup = _china()
            holidays |= official_holidays - makeup
            makeup |= official_makeup - set(s.access_holidays)
        return cls(frozenset(holidays), frozenset(makeup), ZoneInfo(s.access_timezone))

    def is_working_day(self, day: date) -> bool:
        if day in self.makeup_workdays:
            return True
        return day.weekday() < 5 and day not in self.holidays

    def local_date(self, moment: datetime) -> date:
        return moment.astimezone(self.tz).date()

    def add_working_days(self, start: date, n: int) -> date:
        """The n-th working day after ``start`` (``start`` itself never counts)."""
        day, left = start, n
        while left > 0:
            day += timedelta(days=1)
            if self.is_working_day(day):
                left -= 1
        return day

    def end_of_day(self, day: date) -> datetime:
        """The first instant after ``day`` ends locally, in UTC."""
        return datetime.combine(day + timedelta(days=1), time.min, self.tz).astimezone(UTC)

    def working_days_between(self, start: datetime, end: datetime) -> float:
        """Working-day time between two instants, in days (0 if end <= start)."""
        if end <= start:
            return 0.0
        total = 0.0
        day = self.local_date(start)
        last = self.local_date(end)
        while day <= last:
            if self.is_working_day(day):
                lo = max(start, datetime.combine(day, time.min, self.tz))
                hi = min(end, self.end_of_day(day))
                total += max((hi - lo).total_seconds(), 0.0) / _DAY
            day += timedelta(days=1)
        return total
