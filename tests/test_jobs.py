"""The job queue (kernel/jobs.py): enqueue in the caller's transaction, dedupe by key, retries
with backoff and a final ``failed``, leases and crash pickup, schedules that fire once.

Runs on SQLite and, under ``.ci/with-postgres``, on PostgreSQL (tests/pg.py). The
multi-process tests (real ``govshare worker`` processes, SIGKILL) are in test_workers.py.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import select

from govshare.migrate import upgrade
from kernel import db, jobs
from kernel.jobs import Job, JobState

calls: list[dict[str, Any]] = []
failures: dict[str, int] = {}


@pytest.fixture
def queue(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    upgrade()
    calls.clear()
    failures.clear()
    yield


@jobs.handler("test.record", max_attempts=3)
def _record(payload: dict[str, Any]) -> None:
    calls.append(payload)


@jobs.handler("test.flaky", max_attempts=3)
def _flaky(payload: dict[str, Any]) -> None:
    name = payload["name"]
    failures[name] = failures.get(name, 0) + 1
    if failures[name] <= payload["fail_times"]:
        raise RuntimeError(f"boom {failures[name]}")
    calls.append(payload)


@jobs.handler("test.permanent")
def _permanent(_payload: dict[str, Any]) -> None:
    raise jobs.Permanent("bad payload")


def _jobs() -> list[Job]:
    with db.session_scope(write=False) as session:
        return list(session.exec(select(Job).order_by(Job.id)))  # type: ignore[arg-type]


def test_enqueue_commits_or_rolls_back_with_the_caller(queue: None) -> None:
    with db.session_scope() as session:
        jobs.enqueue(session, "test.record", {"n": 1})
    with pytest.raises(RuntimeError), db.session_scope() as session:
        jobs.enqueue(session, "test.record", {"n": 2})
        raise RuntimeError("the change failed")
    assert [j.payload for j in _jobs()] == [{"n": 1}]
    jobs.run_pending(["test.record"])
    assert calls == [{"n": 1}]
    assert _jobs()[0].state == JobState.done


def test_a_key_dedupes_while_pending_or_running_but_not_after(queue: None) -> None:
    with db.session_scope() as session:
        first = jobs.enqueue(session, "test.record", {"n": 1}, key="k")
        again = jobs.enqueue(session, "test.record", {"n": 2}, key="k")
    assert first == again and len(_jobs()) == 1
    jobs.run_pending(["test.record"])
    with db.session_scope() as session:
        third = jobs.enqueue(session, "test.record", {"n": 3}, key="k")
    assert third != first
    jobs.run_pending(["test.record"])
    assert calls == [{"n": 1}, {"n": 3}]


def test_failures_retry_with_exponential_backoff_then_fail_with_the_error(
        queue: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GOVSHARE_JOBS_BACKOFF_SECONDS", "100")
    from kernel.settings import get_settings
    get_settings.cache_clear()
    with db.session_scope() as session:
        ok = jobs.enqueue(session, "test.flaky", {"name": "ok", "fail_times": 2})
        bad = jobs.enqueue(session, "test.flaky", {"name": "bad", "fail_times": 5})
    start = jobs._wall()
    jobs.run_pending(["test.flaky"], now=start)
    by_id = {j.id: j for j in _jobs()}
    assert by_id[ok].state == JobState.pending and by_id[ok].attempts == 1
    assert "boom 1" in (by_id[ok].error or "")
    first_delay = (by_id[ok].run_at - start).total_seconds()
    assert 75 <= first_delay <= 125  # 100 s ± jitter
    # Not due yet: nothing runs a moment later.
    assert jobs.run_pending(["test.flaky"], now=start + timedelta(seconds=10)) == []
    jobs.run_pending(["test.flaky"], now=start + timedelta(seconds=130))
    by_id = {j.id: j for j in _jobs()}
    second_delay = (by_id[ok].run_at - start).total_seconds() - 130
    assert 150 <= second_delay <= 250  # doubled
    jobs.run_pending(["test.flaky"], now=start + timedelta(seconds=400))
    by_id = {j.id: j for j in _jobs()}
    assert by_id[ok].state == JobState.done and by_id[ok].attempts == 3
    assert by_id[bad].state == JobState.failed and by_id[bad].attempts == 3
    assert by_id[bad].error == "RuntimeError: boom 3"
    assert calls == [{"name": "ok", "fail_times": 2}]


def test_permanent_errors_and_unknown_kinds_fail_at_once(queue: None) -> None:
    with db.session_scope() as session:
        jobs.enqueue(session, "test.permanent")
        jobs.enqueue(session, "test.nobody-handles-this")
    jobs.run_pending(["test.permanent", "test.nobody-handles-this"])
    states = [(j.state, j.attempts, j.error) for j in _jobs()]
    assert states == [("failed", 1, "Permanent: bad payload"),
                      ("failed", 1, "Permanent: no handler for job kind "
                                    "'test.nobody-handles-this' in this worker")]


def test_an_expired_lease_is_claimed_again_and_the_old_claim_cannot_finish(queue: None) -> None:
    with db.session_scope() as session:
        jobs.enqueue(session, "test.record", {"n": 1})
    start = jobs._wall()
    dead = jobs.claim(["test.record"], now=start)  # a worker that then dies
    assert dead is not None
    assert jobs.claim(["test.record"], now=start + timedelta(seconds=5)) is None  # leased
    later = start + jobs.lease() + timedelta(seconds=1)
    again = jobs.claim(["test.record"], now=later)
    assert again is not None and again.id == dead.id and again.attempt == 2
    assert not jobs.renew(dead)  # the first claim is no longer the owner
    assert jobs.execute(dead) is None  # its late result is discarded
    assert jobs.execute(again) == JobState.done
    assert calls == [{"n": 1}, {"n": 1}]  # (the handler ran for both; only one counts)
    job, = _jobs()
    assert job.state == JobState.done and job.attempts == 2


def test_the_last_attempt_dying_fails_the_job(queue: None) -> None:
    with db.session_scope() as session:
        jobs.enqueue(session, "test.record", {"n": 1}, max_attempts=1)
    start = jobs._wall()
    assert jobs.claim(["test.record"], now=start) is not None
    assert jobs.claim(["test.record"], now=start + jobs.lease() * 2) is None
    job, = _jobs()
    assert job.state == JobState.failed and "lease expired" in (job.error or "")


def test_a_schedule_fires_once_per_period_however_many_threads_race(queue: None) -> None:
    jobs.every("test.tick", "test.record", timedelta(minutes=10), {"tick": True})
    try:
        jobs.sync_schedules()
        jobs.sync_schedules()  # every worker syncs on start: idempotent
        fired: list[list[str]] = []
        barrier = threading.Barrier(4)

        def race() -> None:
            barrier.wait()
            fired.append(jobs.fire_schedules())

        threads = [threading.Thread(target=race) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(f.count("test.tick") for f in fired) == [0, 0, 0, 1]
        assert jobs.fire_schedules() == []
        jobs.run_pending(["test.record"])
        assert jobs.fire_schedules(jobs._wall() + timedelta(minutes=11)) == ["test.tick"]
        jobs.run_pending(["test.record"], now=jobs._wall() + timedelta(minutes=11))
        assert calls == [{"tick": True}, {"tick": True}]  # once per period
    finally:
        jobs.every("test.tick", "test.record", timedelta(0))
        jobs.sync_schedules()
