"""Crash safety: the delivery step is SIGKILLed in a child process between writing the file
and committing, at two points (before the rename, after it). Nothing partial may be visible,
the application must still be waiting for its delivery, and a retry must complete it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
from sqlmodel import select

from access import delivery, packaging, planning, scheduler, sweep
from access import service as svc
from access.models import ApplicationState, Delivery
from access.schemas import ApplicationIn, ApprovalIn
from kernel import crashpoints, db
from kernel.auth import principal_of
from kernel.db import utcnow
from kernel.identity import Role
from tests.test_access_support import (  # noqa: F401  (access_world: the aw fixture)
    AccessWorld,
    access_world,
    application,
    register,
)

CHILD = """
import sys
from access import delivery, scheduler
from translog import service as log_service
log_service.subscribe()
delivery.deliver(int(sys.argv[1]))
print("delivered")
"""


def _approved(code: str) -> int:
    """An application approved but not yet delivered (as if the process died right after
    the approval committed)."""
    with db.session_scope() as session:
        who = principal_of(session, "scjg-requester")
        app = svc.file_application(session, who, ApplicationIn.model_validate(
            application(code, ["id_number", "name", "mobile", "district"])))
        svc.approve(session, principal_of(session, "ga-approver"), app.id or 0, ApprovalIn())
        return app.id or 0


def _run_child(app_id: int, crash_at: str, tmp: Path) -> subprocess.CompletedProcess[str]:
    """Deliver in a child that stops at ``delivery.<crash_at>`` (kernel.crashpoints), then
    SIGKILL it there."""
    point = f"delivery.{crash_at}"
    env = dict(os.environ, **{crashpoints.ENV: point, crashpoints.DIR_ENV: str(tmp)})
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(app_id)], env=env, text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             cwd=Path(__file__).parent.parent)
    deadline = time.monotonic() + 120
    while not (tmp / point).exists() and child.poll() is None:
        assert time.monotonic() < deadline, f"never reached {point}"
        time.sleep(0.05)
    child.send_signal(signal.SIGKILL)
    out, err = child.communicate(timeout=30)
    return subprocess.CompletedProcess(child.args, child.returncode, out, err)


def _visible(app_id: int) -> list[str]:
    """What a requester could ever be served: files in the application's folder that a
    committed Delivery names, plus anything at all there that is not a Delivery's file."""
    folder = planning.deliveries_dir() / str(app_id)
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def _rows(app_id: int) -> list[Delivery]:
    with db.session_scope(write=False) as session:
        return list(session.exec(select(Delivery).where(Delivery.application_id == app_id)))


@pytest.mark.parametrize("crash_at", ["after_write", "after_rename"])
def test_a_crash_between_masking_and_delivery_loses_nothing(aw: AccessWorld, tmp_path: Path,
                                                            crash_at: str) -> None:
    code = register(tmp_path)
    app_id = _approved(code)
    child = _run_child(app_id, crash_at, tmp_path)
    assert child.returncode == -signal.SIGKILL, child.stderr[-2000:]
    assert "delivered" not in child.stdout

    # Nothing was committed: the application still waits for its delivery.
    with db.session_scope(write=False) as session:
        assert svc.load(session, app_id).state is ApplicationState.approved
    assert _rows(app_id) == []
    assert aw.get("/deliveries", "SCJG", Role.requester).json() == []
    staging = planning.deliveries_dir() / ".staging"
    if crash_at == "after_write":
        assert _visible(app_id) == []  # the half-done file never left the staging area
        assert [p.suffix for p in staging.glob("*.partial")] == [".partial"]
    else:
        # Complete but uncommitted: no row names it, so it is never served, and the sweep
        # (run at start-up, by the scheduler and before every delivery) removes it.
        assert len(_visible(app_id)) == 2  # data file + manifest

    # After the "restart", the scheduler (or an explicit retry) sweeps and completes it.
    if crash_at == "after_write":
        report = scheduler.run_due(utcnow() + timedelta(minutes=3))
        assert report.swept and report.delivered == [app_id]
    else:
        assert sweep.sweep() and _visible(app_id) == []
        delivery.deliver(app_id)
    assert not list(staging.glob("*.partial"))
    done = _rows(app_id)[0]
    again = delivery.deliver(app_id)  # idempotent: the same package
    assert again.id == done.id and len(_rows(app_id)) == 1
    assert sorted(_visible(app_id)) == sorted([Path(done.path or "").name,
                                               Path(done.path or "").name + ".manifest.json"])
    with db.session_scope(write=False) as session:
        assert svc.load(session, app_id).state is ApplicationState.delivered


def test_the_sweep_never_touches_a_live_job(aw: AccessWorld, tmp_path: Path) -> None:
    """A job's files are protected by its lock while it runs (another worker's sweep)."""
    token = "0" * 32
    partial = planning.deliveries_dir() / ".staging" / f"{token}.partial"
    with packaging.job_lock(token):
        partial.write_bytes(b"half a parquet file")
        assert sweep.sweep() == []
        assert partial.exists()
    assert sweep.sweep() == [f".staging/{token}.partial"]
