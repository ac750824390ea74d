"""``govshare worker``: the process that runs all background work (kernel/jobs.py).

The composition root's other half beside the web app: it imports every context's job
handlers, declares their schedules from the settings, and runs ``concurrency`` claiming
threads until SIGTERM or SIGINT, which let the running jobs finish (a second signal stops at
once; a job cut off that way is re-run by another worker after its lease). Any number of
these processes, on any number of hosts sharing the PostgreSQL database and the data folder,
share the work (docs/deployment.md).
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
from types import FrameType

from kernel import jobs
from kernel.settings import get_settings

log = logging.getLogger("govshare.worker")


def register() -> None:
    """Import every context's handlers and declare their periodic jobs."""
    from access import scheduler as access_jobs
    from catalog import jobs as catalog_jobs
    from govshare import notifications
    from metrics import jobs as metrics_jobs
    from quality import jobs as quality_jobs
    from translog import cosigner

    settings = get_settings()
    access_jobs.declare_schedules(settings)
    catalog_jobs.declare_schedules()
    quality_jobs.declare_schedules()
    metrics_jobs.declare_schedules()
    cosigner.declare_schedules()
    notifications.declare_schedules()


def prepare() -> None:
    """What a worker needs before its first job: the schema, the event subscribers (the
    jobs' events reach the signed log in their transactions), the native HMAC and GX."""
    from access import native as access_native
    from govshare import wiring
    from govshare.migrate import upgrade
    from kernel import secrets
    from quality import validate as quality_validate

    # Refuse to start without the master secret, as the server does, rather than failing
    # every job that needs a key one by one.
    secrets.check(get_settings())
    upgrade()
    wiring.subscribe_events()
    register()
    access_native.load()
    quality_validate.preload()


def drain() -> int:
    """Run every due job and schedule now, in this process; the number of jobs run."""
    prepare()
    jobs.sync_schedules()
    jobs.fire_schedules()
    return len(jobs.run_pending())


# The pid of the server that started this worker (``Beside``), given in the environment: a
# worker that read ``getppid()`` only after its slow start could already see init's pid (the
# server killed meanwhile) and would then never notice it was orphaned.
PARENT_ENV = "GOVSHARE_WORKER_PARENT"


def run(concurrency: int = 2, *, exit_with_parent: bool = False) -> None:
    parent = int(os.environ.get(PARENT_ENV) or 0) or os.getppid()
    prepare()
    settings = get_settings()
    worker = jobs.Worker(concurrency=concurrency, poll_seconds=settings.jobs_poll_seconds)
    signals = {"count": 0}

    def stop(signum: int, _frame: FrameType | None) -> None:
        signals["count"] += 1
        if signals["count"] > 1:
            raise SystemExit(128 + signum)
        log.info("stopping after the running jobs (signal %s)", signum)
        worker.stop.set()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
    if exit_with_parent:

        def watch() -> None:  # the server beside us was killed (SIGKILL leaves no finally)
            while not worker.stop.wait(1.0):
                if os.getppid() != parent:
                    log.warning("the server that started this worker is gone: stopping")
                    worker.stop.set()

        threading.Thread(target=watch, name="parent-watch", daemon=True).start()
    log.info("worker started: %s threads, handlers %s", concurrency,
             ", ".join(sorted(jobs.handlers())))
    worker.run()


class Beside:
    """One ``govshare worker`` child of ``govshare serve --with-worker`` (``make run``):
    restarted if it exits (a worker that lost a lease exits on purpose), stopped with the
    server, and stopping by itself should the server be killed."""

    def __init__(self, concurrency: int = 2) -> None:
        self.command = [sys.executable, "-c", "from govshare.cli import main; main()",
                        "worker", "--concurrency", str(concurrency), "--exit-with-parent"]
        self.process: subprocess.Popen[bytes] | None = None
        self._stopping = threading.Event()
        # Starting a worker and stopping are one at a time: a restart racing the server's
        # stop would leave a worker nobody stops.
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._supervise, name="worker-beside",
                                        daemon=True)

    def _spawn(self) -> subprocess.Popen[bytes]:
        return subprocess.Popen(self.command, env={**os.environ, PARENT_ENV: str(os.getpid())})

    def start(self) -> None:
        self.process = self._spawn()
        self._thread.start()

    def _supervise(self) -> None:
        while not self._stopping.wait(2.0):
            if self.process is not None and self.process.poll() is not None:
                log.warning("the worker exited (%s); starting another",
                            self.process.returncode)
                if self._stopping.wait(1.0):
                    return
                with self._lock:
                    if not self._stopping.is_set():
                        self.process = self._spawn()

    def stop(self, timeout: float = 60) -> None:
        with self._lock:
            self._stopping.set()
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()  # SIGTERM: the running job finishes
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
