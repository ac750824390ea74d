"""Working days (moved to ``kernel.calendar``: quality counts notice deadlines with it too)."""

from kernel.calendar import WorkCalendar

__all__ = ["WorkCalendar"]
