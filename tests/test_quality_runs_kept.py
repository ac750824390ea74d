"""Runs are never lost: many at once at the worker's concurrency in a fresh process (the GX
suite-parameter race), bounded retries with backoff, a killed run picked up again; and a
run that fails for good says why in the bureau's view."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import select

from kernel import db
from kernel.db import utcnow
from kernel.identity import Role
from quality import runs
from quality.models import QualityRun, RunStatus
from tests.conftest import World
from tests.test_quality_support import API, people, quiet_quality, register, run_queued
from tests.web_support import sign_in

__all__ = ["quiet_quality"]
pytestmark = pytest.mark.usefixtures("quiet_quality")
ROOT = Path(__file__).resolve().parent.parent

# A fresh interpreter: GX's parser state is per process, and in this one earlier tests have
# long since warmed it. Every run uses the run_date suite parameter, as generated suites do.
_CONCURRENT = textwrap.dedent("""
    import sys, tempfile, threading
    from concurrent.futures import ThreadPoolExecutor
    from datetime import date
    from pathlib import Path
    import duckdb
    from catalog.models import Sensitivity
    from quality.masked import ColumnMask
    from quality.settings import get_quality_settings
    from quality.validate import preload, run_suite

    preload()  # as the server does at startup
    workers = get_quality_settings().workers

    # Line the threads up where GX evaluates an expectation's suite parameters, so that they
    # all get there at the same moment (in a server that is a matter of luck: the demo's
    # first start hit it in 52 of 75 runs).
    import great_expectations.expectations.expectation_configuration as gx_config
    lined_up = threading.Barrier(workers)
    first = threading.local()
    original = gx_config.build_suite_parameters

    def synchronised(*args, **kwargs):
        if not getattr(first, "done", False):
            first.done = True
            try:
                lined_up.wait(timeout=30)
            except threading.BrokenBarrierError:
                pass
        return original(*args, **kwargs)

    gx_config.build_suite_parameters = synchronised
    folder = Path(tempfile.mkdtemp())
    runs = 4 * workers
    segments = []
    for i in range(runs):
        path = folder / f"s{i}.duckdb"
        con = duckdb.connect(str(path))
        con.execute("CREATE TABLE data AS SELECT range AS n, DATE '2020-01-01' + "
                    "CAST(range AS INTEGER) AS d FROM range(100)")
        con.close()
        segments.append(path)
    configs = [
        {"type": "expect_column_max_to_be_between",
         "kwargs": {"column": "d", "max_value": {"$PARAMETER": "run_date"}},
         "meta": {"rule": "newest:d", "dimension": "freshness", "source": "generated"}},
        {"type": "expect_column_values_to_be_between",
         "kwargs": {"column": "d", "min_value": "1900-01-01",
                    "max_value": {"$PARAMETER": "run_date"}},
         "meta": {"rule": "date:d", "dimension": "validity", "source": "generated"}},
        {"type": "expect_column_values_to_be_between",
         "kwargs": {"column": "n", "min_value": 0, "max_value": 99},
         "meta": {"rule": "n", "dimension": "validity", "source": "generated"}},
    ]
    masks = {"n": ColumnMask(None, Sensitivity.none), "d": ColumnMask(None, Sensitivity.none)}
    start = threading.Barrier(workers)

    def one(path):
        try:
            start.wait(timeout=30)
        except threading.BrokenBarrierError:
            pass
        v = run_suite([path], configs, masks, run_date=date(2026, 1, 1))
        bad = [o.rule for o in v.expectations if o.error or not o.success]
        return bad

    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = list(pool.map(one, segments))
    failed = [r for r in results if r]
    print(f"{runs} runs on {workers} workers, {len(failed)} failed: {failed[:2]}")
    sys.exit(1 if failed else 0)
""")


def test_many_runs_at_once_in_a_fresh_process_none_fails(tmp_path: Path) -> None:
    """With GX evaluating the run_date parameter itself (the code before the fix), this
    failed in 3 of 3 tries at 8 workers (1 of 3 at 4) with ``push_first() missing 1 required
    positional argument``; at the default 2 workers the demo's first start hit it."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "GOVSHARE_QUALITY_WORKERS": "8"}
    done = subprocess.run([sys.executable, "-c", _CONCURRENT], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    assert "0 failed" in done.stdout


def _run_of(code: str) -> QualityRun:
    with db.session_scope(write=False) as session:
        from catalog.models import Resource

        resource = session.exec(select(Resource).where(Resource.code == code)).one()
        return session.exec(select(QualityRun).where(QualityRun.resource_id == resource.id)
                            .order_by(QualityRun.id.desc())).first()  # type: ignore[union-attr]


def _due_now(run_id: int) -> None:
    with db.session_scope() as session:
        run = session.get(QualityRun, run_id)
        assert run is not None
        run.not_before = utcnow() - timedelta(seconds=1)
        session.add(run)


def test_a_transient_failure_is_retried_with_backoff(client: TestClient, world: World,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    code = register(client, world, people(5))
    real = runs.run_suite
    calls: list[int] = []

    def flaky(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == 1:
            raise TypeError("SuiteParameterParser.push_first() missing 1 required argument")
        return real(*args, **kwargs)

    monkeypatch.setattr(runs, "run_suite", flaky)
    assert list(run_queued().values()) == [RunStatus.queued]
    run = _run_of(code)
    assert run.status is RunStatus.queued and run.attempts == 1
    assert run.not_before is not None and run.not_before > utcnow()  # backing off
    assert "attempt 1 of 3 failed, retrying" in (run.error or "")
    assert run_queued() == {}  # not due yet
    _due_now(run.id or 0)
    assert list(run_queued().values()) == [RunStatus.succeeded]
    assert _run_of(code).attempts == 2


def test_a_run_failing_every_time_fails_for_good_and_says_why(
        client: TestClient, world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    code = register(client, world, people(5))

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise OSError("the disk went away")

    monkeypatch.setattr(runs, "run_suite", broken)
    for _ in range(runs.MAX_ATTEMPTS - 1):
        assert list(run_queued().values()) == [RunStatus.queued]
        _due_now(_run_of(code).id or 0)
    assert list(run_queued().values()) == [RunStatus.failed]
    run = _run_of(code)
    assert run.attempts == runs.MAX_ATTEMPTS and run.error is not None
    assert "the disk went away" in run.error and "failed 3 times, not retried" in run.error
    aud = world.headers("SJJ", Role.auditor)
    failed = client.get(f"{API}/quality/failed-runs", headers=aud).json()
    assert [(f["resource"], f["attempts"]) for f in failed] == [(code, 3)]
    assert "the disk went away" in failed[0]["error"]
    ranking = client.get(f"{API}/quality/ranking/departments", headers=aud).json()
    assert ranking == []  # nothing scored; the failure is listed above, not hidden
    sign_in(client, world.tokens[("SJJ", Role.auditor)])
    page = client.get("/quality").text  # the bureau's page lists it once, under its header
    assert page.count('id="failed-runs"') == 1 and "the disk went away" in page
    assert "<table" not in page.split("<title>")[1].split("</title>")[0]


_KILLED = textwrap.dedent("""
    import sys
    from quality import runs
    runs.execute(int(sys.argv[1]))
""")


def test_a_killed_run_is_picked_up_again(client: TestClient, world: World,
                                         tmp_path: Path) -> None:
    code = register(client, world, people(5))
    run_id = _run_of(code).id or 0
    crash_dir = tmp_path / "crash"
    crash_dir.mkdir()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "GOVSHARE_CRASH_AT": "quality.run_validated",
           "GOVSHARE_CRASH_DIR": str(crash_dir)}
    worker = subprocess.Popen([sys.executable, "-c", _KILLED, str(run_id)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 180
        while not (crash_dir / "quality.run_validated").exists():
            assert worker.poll() is None, worker.stdout.read() if worker.stdout else ""
            assert time.monotonic() < deadline, "the worker never reached the crash point"
            time.sleep(0.2)
    finally:
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=30)
    killed = _run_of(code)
    assert killed.status is RunStatus.running and killed.attempts == 1
    assert killed.lease_until is not None
    # Within its lease nobody takes it; once the lease lapsed (no heartbeat), the next worker
    # loop (every LEASE/3 at most) queues it again: picked up within a minute.
    assert runs.reclaim_interrupted() == 0
    assert timedelta(minutes=1) >= runs.LEASE + runs.LEASE / 3
    assert runs.reclaim_interrupted(killed.lease_until + timedelta(seconds=1)) == 1
    assert list(run_queued().values()) == [RunStatus.succeeded]
    again = _run_of(code)
    assert again.id == run_id and again.attempts == 2 and again.status is RunStatus.succeeded
