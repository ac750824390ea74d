"""The mart's refresh as a periodic job (kernel/jobs.py), run by ``govshare worker``
processes every ``GOVSHARE_METRICS_REFRESH_SECONDS``: the dashboard's requests read the
current mart and never wait on a refresh (``mart.snapshot``)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from kernel import jobs
from kernel.settings import get_settings
from metrics import mart

REFRESH = "metrics.refresh"


@jobs.handler(REFRESH, max_attempts=1)
def _refresh(_payload: dict[str, Any]) -> None:
    mart.refresh(wait=False)  # another process refreshing it already: nothing to do


def declare_schedules() -> None:
    jobs.every(REFRESH, REFRESH, timedelta(seconds=get_settings().metrics_refresh_seconds))
