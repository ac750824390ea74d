"""What ``PRAGMA synchronous=FULL`` costs the metadata store (SQLite, WAL) against NORMAL.

    python -m bench.bench_sqlite_sync [--quick] [--commits N]

Each commit is what a typical request that writes costs: one domain event published through
``kernel.events.publish`` into the signed log (the log lock, the entry and subtree inserts,
one Ed25519 tree head) in its own transaction. The same run measures both settings on fresh
data folders on the same disk, NORMAL first as the baseline, and prints the ratio. FULL
fsyncs the WAL at every commit, so the figure depends on the disk's flush latency: on a
disk with a volatile write cache and no flush, it is close to 1×.
"""

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from bench.bench_log import _events
from bench.common import print_table


def _run(mode: str, folder: Path, commits: int) -> list[float]:
    from govshare.migrate import upgrade
    from kernel import db, events
    from kernel.settings import get_settings
    from translog import service

    os.environ["GOVSHARE_DATA_DIR"] = str(folder)
    get_settings.cache_clear()
    db.reset_engines()
    db.SQLITE_SYNCHRONOUS = mode
    upgrade()
    events.unsubscribe_all()
    service.subscribe()
    took = []
    for event in _events(commits + 5):
        start = time.perf_counter()
        with db.session_scope() as session:
            events.publish(session, event)
        took.append(time.perf_counter() - start)
    db.reset_engines()
    return took[5:]  # the first commits create the signing key and warm caches


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--commits", type=int, default=1000)
    args = parser.parse_args()
    commits = 200 if args.quick else args.commits
    rows, results = [], {}
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_DIR")) as tmp:
        for mode in ("NORMAL", "FULL"):
            took = _run(mode, Path(tmp) / mode.lower(), commits)
            results[mode] = took
            ms = sorted(t * 1000 for t in took)
            rows.append([mode, commits, f"{commits / sum(took):,.0f}",
                         f"{statistics.median(ms):.2f}", f"{ms[int(len(ms) * 0.95)]:.2f}",
                         f"{sum(took) / sum(results['NORMAL']):.2f}x"])
    print_table("SQLite synchronous: one signed log entry per commit (WAL)",
                ["synchronous", "commits", "commits/s", "median ms", "p95 ms", "time vs NORMAL"],
                rows)


if __name__ == "__main__":
    main()
