"""The demo world's first start, as the quality worker sees it: in a fresh process (GX's
parser state is per process), every queued run of the tiny demo world is run by the worker's
pool at its real concurrency (GOVSHARE_QUALITY_WORKERS, default 2); none fails and every
active resource with data is scored."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

_FIRST_START = textwrap.dedent("""
    from collections import Counter
    from govshare_demo.build import build_world
    from sqlmodel import col, select
    from catalog.models import Resource, ResourceStatus
    from govshare.migrate import upgrade
    from kernel import db
    from quality import jobs, validate
    from quality.models import QualityRun, QualityScore

    from govshare import wiring

    upgrade()
    wiring.subscribe_events()  # as make run's server: registrations queue quality runs
    build_world(db.session_scope, scale="tiny", history=False)
    validate.preload()  # as the server does at startup
    outcomes = Counter(s.value if s else "claimed" for s in jobs.run_pending().values())
    with db.session_scope(write=False) as session:
        failed = [(r.id, r.error) for r in session.exec(
            select(QualityRun).where(QualityRun.status != "succeeded"))]
        active = {r.id for r in session.exec(select(Resource).where(
            Resource.status == ResourceStatus.active, col(Resource.current_version) > 0))}
        scored = {s.resource_id for s in session.exec(select(QualityScore))}
    print(dict(outcomes), "unscored:", len(active - scored), "not succeeded:", failed[:3])
    assert not failed and active <= scored and active
""")


def test_the_demo_worlds_first_runs_all_succeed(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "demo")]),
           "GOVSHARE_DATA_DIR": str(tmp_path / "data"),
           "GOVSHARE_KEY_PASSPHRASE": "test-passphrase"}
    env.pop("GOVSHARE_QUALITY_WORKERS", None)  # the default, as make run has it
    done = subprocess.run([sys.executable, "-c", _FIRST_START], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=900, check=False)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
