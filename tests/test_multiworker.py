"""Several worker processes on one database: the access log stays one linear sequence under
concurrent appends, and ``govshare warehouse gc`` removes only what no row names. (Background
jobs shared by several ``govshare worker`` processes: tests/test_workers.py.)

Every test runs on SQLite and, under ``.ci/with-postgres``, on PostgreSQL (tests/pg.py).
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

from sqlmodel import select

from catalog import gc
from catalog.models import DataVersion
from catalog.warehouse import open_data
from govshare.migrate import upgrade
from kernel import db
from kernel.settings import get_settings
from tests.log_support import export_with_keys
from tests.test_access_support import (  # noqa: F401  (access_world: the aw fixture)
    AccessWorld,
    access_world,
    people_rows,
    register,
)
from translog import verify

ROOT = Path(__file__).parent.parent

APPENDER = """
import sys, time
from pathlib import Path
from translog import service
from kernel import db
from kernel.events import Actor, Event, publish
worker, count, go = int(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3])
service.subscribe()
while not go.exists():  # start together, so that the appends really interleave
    time.sleep(0.01)
for i in range(count):
    with db.session_scope() as session:
        for part in range(1 + i % 3):  # batches of 1 to 3 entries, one signed head each
            publish(session, Event("api.queried", Actor(user_id=None, department_id=None),
                                   {"worker": str(worker), "n": f"{i}.{part}"}, {"i": i}))
print("ok")
"""


def _spawn(code: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", code, *args], cwd=ROOT, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def test_concurrent_appends_from_processes_form_one_verifiable_log(data_dir: Path,
                                                                   tmp_path: Path) -> None:
    upgrade()
    workers, count = 4, 25
    go = tmp_path / "go"
    procs = [_spawn(APPENDER, str(w), str(count), str(go)) for w in range(workers)]
    time.sleep(1.0)  # let every child import and connect
    go.touch()
    for proc in procs:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
    expected = workers * sum(1 + i % 3 for i in range(count))

    export, keys = export_with_keys(tmp_path)
    result = verify.verify_export(export, verify.load_public_keys(keys))
    assert result.ok, result.summary()
    assert result.tree_size == expected
    entries = [line["entry"] for line in map(json.loads, export.read_text().splitlines())
               if "entry" in line]
    assert [e["seq"] for e in entries] == list(range(expected))  # one gap-free sequence
    # Each worker's entries appear in the order it appended them, interleaved with others'.
    order: dict[str, list[str]] = {}
    for e in entries:
        order.setdefault(e["subjects"]["worker"], []).append(e["subjects"]["n"])
    for w in range(workers):
        mine = order[str(w)]
        assert mine == sorted(mine, key=lambda n: tuple(map(int, n.split(".")))), w
    owners = [e["subjects"]["worker"] for e in entries]
    switches = sum(1 for a, b in itertools.pairwise(owners) if a != b)
    assert switches >= workers - 1


def test_warehouse_gc_removes_only_old_unreferenced_files(aw: AccessWorld,
                                                          tmp_path: Path) -> None:
    code = register(tmp_path)
    root = get_settings().warehouse_dir
    with db.session_scope(write=False) as session:
        kept = session.exec(select(DataVersion.segment)).one()
    orphan = root / code / "v00002-deadbeef.duckdb"  # killed between rename and commit
    orphan.write_bytes(b"x" * 100)
    young = root / code / "v00003-cafebabe.duckdb"  # a commit in flight
    young.write_bytes(b"y")
    staged = root / "_staging" / "0123.csv"  # an upload killed mid-way
    staged.write_bytes(b"id\n1\n")
    spill = root / "_staging" / "0123.duckdb.spill"
    spill.mkdir()
    (spill / "tmp.block").write_bytes(b"z" * 10)
    old = time.time() - 3 * 3600
    for path in (orphan, staged, spill, spill / "tmp.block", root / kept):
        os.utime(path, (old, old))

    dry = gc.collect(grace=timedelta(hours=1), dry_run=True)
    assert orphan.exists() and sorted(dry.removed) == sorted(
        [f"{code}/v00002-deadbeef.duckdb", "_staging/0123.csv", "_staging/0123.duckdb.spill"])

    result = subprocess.run([str(Path(sys.executable).parent / "govshare"), "warehouse", "gc",
                             "--grace-hours", "1", "--json"], cwd=ROOT, text=True,
                            capture_output=True, timeout=120)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert sorted(report["removed"]) == sorted(dry.removed)
    assert report["bytes_freed"] == 100 + 5 + 10
    assert report["young"] == [f"{code}/v00003-cafebabe.duckdb"]
    assert not orphan.exists() and not staged.exists() and not spill.exists()
    assert young.exists() and (root / kept).exists()  # referenced, however old
    # The resource still reads: its segment was never touched.
    with open_data([root / kept]) as con:
        assert con.execute("SELECT count(*) FROM data").fetchone() == (len(people_rows()),)

    (root / kept).unlink()  # a damaged store is reported, never "fixed" by deleting rows
    assert gc.collect(grace=timedelta(hours=1)).missing == [kept]

