"""Background work in ``govshare worker`` processes beside a two-process server: a worker
SIGKILLed mid-quality-run and mid-delivery (at named crash points, kernel/crashpoints.py)
has its job finished by the other worker within the lease, and nothing is done twice; a
periodic schedule fires once per period with two workers running.

Runs on SQLite and, under ``.ci/with-postgres``, on PostgreSQL (tests/pg.py): there, the
claims are ``FOR UPDATE SKIP LOCKED`` across processes, as between hosts.
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlmodel import col, func, select

from access.models import Application, ApplicationState, Delivery
from access.planning import deliveries_dir
from kernel import crashpoints, db
from kernel.identity import Role
from kernel.jobs import Job, JobState
from kernel.settings import get_settings
from quality.models import QualityRun, QualityScore, RunStatus
from tests.server_support import Server, Worker, make_world
from tests.test_access_support import PEOPLE_ITEMS, application, people_rows, to_csv

API = "/api/v1"
LEASE = 4.0  # seconds; production's is 30


class Cluster:
    """A two-process server and worker processes over one database and data folder."""

    def __init__(self, tmp: Path, tokens: dict[tuple[str, Role], str]) -> None:
        self.tmp, self.tokens = tmp, tokens
        self.crash_dir = tmp / "crash"
        self.crash_dir.mkdir()
        self.server = Server(tmp / "server.log", workers=2)
        self.workers: list[Worker] = []

    def worker(self, name: str, crash_at: str = "") -> Worker:
        w = Worker(self.tmp / f"{name}.log", env={crashpoints.DIR_ENV: str(self.crash_dir),
                                                  crashpoints.ENV: crash_at})
        w.start()
        self.workers.append(w)
        return w

    def h(self, dept: str, role: Role) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[(dept, role)]}"}

    def register(self, name: str) -> str:
        meta = {"name": name, "category": "101", "items": PEOPLE_ITEMS,
                "sharing_type": "unconditional", "sharing_condition": "",
                "update_cycle": "daily", "sharing_method": "file", "security_level": "general"}
        r = httpx.post(self.server.url + API + "/resources", timeout=120,
                       headers=self.h("GA", Role.publisher),
                       data={"metadata": json.dumps(meta, ensure_ascii=False)},
                       files={"file": ("people.csv", to_csv(people_rows(200)), "text/csv")})
        assert r.status_code == 201, r.text
        return str(r.json()["code"])

    def reached(self, point: str, timeout: float = 120) -> None:
        marker = self.crash_dir / point
        wait_for(marker.exists, timeout, f"no worker reached {point}")
        marker.unlink()

    def close(self) -> None:
        for w in self.workers:
            w.kill()
        self.server.kill()


def wait_for(check: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


def started(w: Worker) -> bool:
    return "worker started" in w.log_path.read_text(errors="replace")


def job_of(kind: str, **payload: Any) -> Job | None:
    with db.session_scope(write=False) as session:
        for job in session.exec(select(Job).where(Job.kind == kind)
                                .order_by(col(Job.id).desc())):
            if all(job.payload.get(k) == v for k, v in payload.items()):
                return job
    return None


def count(model: type, *where: Any) -> int:
    with db.session_scope(write=False) as session:
        return int(session.exec(select(func.count()).select_from(model).where(*where)).one())


@pytest.fixture
def cluster(data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
            ) -> Iterator[Cluster]:
    monkeypatch.setenv("GOVSHARE_JOBS_LEASE_SECONDS", str(LEASE))
    monkeypatch.setenv("GOVSHARE_JOBS_POLL_SECONDS", "0.2")
    monkeypatch.setenv("GOVSHARE_ACCESS_SCHEDULER_SECONDS", "0")  # only the jobs under test
    monkeypatch.setenv("GOVSHARE_QUALITY_SCHEDULE_MINUTES", "0")
    monkeypatch.setenv("GOVSHARE_METRICS_REFRESH_SECONDS", "0")
    get_settings.cache_clear()
    c = Cluster(tmp_path, make_world())
    try:
        yield c
    finally:
        c.close()


def _take_over(c: Cluster, doomed: Worker, name: str, kind: str, **payload: Any) -> float:
    """Start a second worker, SIGKILL ``doomed`` (stuck at a crash point inside the job), and
    return how long the survivor took to finish the job."""
    survivor = c.worker(name)
    wait_for(lambda: started(survivor), 120, f"{name} did not start")
    doomed.kill()
    killed = time.monotonic()
    done = wait_for(lambda: (j := job_of(kind, **payload)) is not None
                    and j.state == JobState.done and j, 120, f"{kind} never finished")
    took = time.monotonic() - killed
    assert done.attempts == 2 and done.claimed_by is not None
    assert done.claimed_by.split(":")[1] == str(survivor.pid)
    survivor.stop()
    return took


def test_a_killed_workers_jobs_are_finished_by_another_once(cluster: Cluster) -> None:
    c = cluster
    c.server.start()
    # 1. A quality run, killed after GX validated and before the result was stored.
    first = c.worker("worker-a", "quality.run_validated")
    code = c.register("人口基础信息")
    c.reached("quality.run_validated")
    with db.session_scope(write=False) as session:
        run = session.exec(select(QualityRun)).one()
    assert run.status == RunStatus.running
    took = _take_over(c, first, "worker-b", "quality.run", run=run.id)
    assert took <= LEASE + 10, took
    with db.session_scope(write=False) as session:
        run = session.exec(select(QualityRun)).one()
    assert run.status == RunStatus.succeeded
    assert count(QualityScore, QualityScore.run_id == run.id) == 1  # one result

    # 2. A delivery, killed with the package written (masked, checked), not yet published.
    second = c.worker("worker-c", "delivery.after_write")
    filed = httpx.post(c.server.url + API + "/applications", timeout=60,
                       headers=c.h("SCJG", Role.requester),
                       json=application(code, ["id_number", "name", "mobile", "district"]))
    assert filed.status_code == 201, filed.text
    app_id = filed.json()["id"]
    assert filed.json()["state"] == ApplicationState.approved.value  # answered at once
    c.reached("delivery.after_write")
    assert list((deliveries_dir() / ".staging").glob("*.partial"))  # the dead job's file
    took = _take_over(c, second, "worker-d", "access.deliver", app=app_id)
    assert took <= LEASE + 10, took
    with db.session_scope(write=False) as session:
        app = session.get(Application, app_id)
        assert app is not None and app.state is ApplicationState.delivered
        delivery, = session.exec(select(Delivery)).all()  # one delivery
    assert (deliveries_dir() / (delivery.path or "")).is_file()
    assert not list((deliveries_dir() / ".staging").glob("*.partial"))  # swept
    r = httpx.get(c.server.url + API + "/deliveries", headers=c.h("SCJG", Role.requester))
    assert [d["id"] for d in r.json()] == [delivery.id]


def test_a_periodic_schedule_fires_once_per_period_with_two_workers(
        cluster: Cluster, monkeypatch: pytest.MonkeyPatch) -> None:
    c = cluster
    period = 2
    monkeypatch.setenv("GOVSHARE_METRICS_REFRESH_SECONDS", str(period))
    a, b = c.worker("worker-a"), c.worker("worker-b")
    wait_for(lambda: started(a) and started(b), 120, "the workers did not start")
    time.sleep(5 * period)
    pids = {str(a.pid), str(b.pid)}
    a.stop()
    b.stop()
    with db.session_scope(write=False) as session:
        fired = sorted(session.exec(select(Job.created_at).where(Job.kind == "metrics.refresh")))
        ran_by = {j.claimed_by.split(":")[1] for j in session.exec(
            select(Job).where(Job.kind == "metrics.refresh")) if j.claimed_by}
    assert len(fired) >= 3, fired
    gaps = [(y - x).total_seconds() for x, y in itertools.pairwise(fired)]
    # Once per period: a fire moves next_run_at by a period (by half a period at the least,
    # when the workers fell behind), so two fires are never closer than that.
    assert min(gaps) >= period / 2 - 0.2, gaps
    assert ran_by and ran_by <= pids


def test_a_worker_whose_server_is_gone_stops(data_dir: Path) -> None:
    """``govshare serve --with-worker`` gives its worker the server's pid: a worker whose
    server died while it was still starting stops by itself instead of running forever
    (reading its parent only once started, it would see init's pid and never notice)."""
    import os
    import subprocess
    import sys

    from govshare.worker import PARENT_ENV

    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    govshare = str(Path(sys.executable).parent / "govshare")
    worker = subprocess.Popen([govshare, "worker", "--concurrency", "1", "--exit-with-parent"],
                              env={**os.environ, PARENT_ENV: str(gone.pid)},
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        out, _ = worker.communicate(timeout=120)
    finally:
        if worker.poll() is None:
            worker.kill()
    assert worker.returncode == 0, out.decode()
    assert b"the server that started this worker is gone" in out
