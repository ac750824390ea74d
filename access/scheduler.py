"""Periodic deliveries: a background thread that, every few seconds, ends grants past their
period, retries first deliveries that did not happen (a crash, a restart) and produces the
packages periodic grants are due (daily, weekly, monthly, on every new data version).

Several processes may run it at once (``govshare serve --workers N``): only the one holding
the lead (``kernel.leader``) ticks, so a package is not masked twice. Should two runs meet
anyway (a ``govshare access run-due`` beside the server, a lead changing hands mid-tick), a
run is unique per grant and period, so the second commit is discarded, and each run sweeps
only files whose job is provably dead (``access.delivery.sweep``).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from access import delivery
from access import service as svc
from access.calendar import WorkCalendar
from kernel import db, leader
from kernel.db import utcnow
from kernel.problems import Problem
from kernel.settings import Settings

log = logging.getLogger("govshare")
# A first delivery not done this long after its approval is retried (crash, restart).
RETRY_AFTER = timedelta(minutes=2)


@dataclass
class TickReport:
    expired: list[int] = field(default_factory=list)
    delivered: list[int] = field(default_factory=list)
    failed: dict[int, str] = field(default_factory=dict)
    swept: list[str] = field(default_factory=list)


def run_due(now: datetime | None = None) -> TickReport:
    """One scheduler tick (also ``govshare access run-due``)."""
    now = now or utcnow()
    report = TickReport(swept=delivery.sweep())
    with db.session_scope(write=True) as session:
        report.expired = svc.expire_due(session, now)
    with db.session_scope(write=False) as session:
        today = WorkCalendar.from_settings().local_date(now)
        jobs: list[tuple[int, str | None]] = [
            (a, None) for a in delivery.pending_first_deliveries(session, now - RETRY_AFTER)]
        jobs += [(a, k) for a, k in delivery.due_periodic(session, today)]
    for app_id, run_key in jobs:
        try:
            delivery.deliver(app_id, run_key=run_key)
            report.delivered.append(app_id)
        except Problem as problem:  # blocked, revoked meanwhile, not yet in its period
            report.failed[app_id] = problem.detail
        except Exception as exc:  # one bad grant must not stop the others
            log.exception("delivery of application %s failed", app_id)
            report.failed[app_id] = type(exc).__name__
    return report


class Scheduler:
    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="govshare-deliveries",
                                        daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=30)

    def _loop(self) -> None:
        # The first tick waits one interval: start-up (migrations, other workers) comes first.
        while not self._stop.wait(self.interval):
            try:
                if leader.is_leader():  # one of the N server processes (kernel.leader)
                    run_due()
            except Exception:
                log.exception("delivery scheduler tick failed")


_scheduler: Scheduler | None = None


def start(settings: Settings) -> None:
    global _scheduler
    if settings.access_scheduler_seconds > 0 and _scheduler is None:
        _scheduler = Scheduler(settings.access_scheduler_seconds)
        _scheduler.start()


def stop() -> None:
    global _scheduler
    if _scheduler is not None:
        _scheduler.stop()
        _scheduler = None
