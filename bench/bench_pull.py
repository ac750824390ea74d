"""Pull a PostgreSQL table into a data version, against PostgreSQL's own ``COPY … TO STDOUT``.

    python -m bench.bench_pull [--rows 10000000] [--repeat 2] [--quick]

Both sides read the same table from the same server in the same run:
* baseline: ``COPY (SELECT * FROM t) TO STDOUT`` read to the end by psycopg (the bytes
  discarded) — the fastest way to get the rows out of PostgreSQL at all;
* govshare: ``catalog.sources``' data path — ADBC's binary COPY into Arrow batches, DuckDB
  writing the typed segment from them as they arrive (the key checked unique), and the
  SHA-256 of the batches.
Target: ≤ 1.5× the baseline. Without GOVSHARE_TEST_DATABASE_URL it re-runs itself under
``.ci/with-postgres`` (a throwaway server on loopback).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg
from sqlalchemy import make_url

from bench.common import mib, print_table

ROOT = Path(__file__).resolve().parent.parent
TABLE_SQL = """
CREATE TABLE allowance AS
SELECT lpad(g::text, 18, '0') AS id_number, '张' || (g % 9973) AS name,
       ((g % 100000) / 100.0)::numeric(12,2) AS amount,
       date '2020-01-01' + (g % 2000) AS paid_on, (g % 7)::int AS household,
       '区' || (g % 10) AS district, g % 2 = 0 AS active
FROM generate_series(1, {rows}) AS g
"""
ITEMS = [("id_number", "string"), ("name", "string"), ("amount", "decimal"),
         ("paid_on", "date"), ("household", "integer"), ("district", "string"),
         ("active", "boolean")]


def _database(server: str, rows: int) -> str:
    name = f"bench_pull_{os.getpid()}"
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    url = make_url(server).set(database=name).render_as_string(hide_password=False)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(TABLE_SQL.format(rows=int(rows)))  # type: ignore[arg-type]
        conn.execute("VACUUM ANALYZE allowance")
    return url


def copy_out(url: str) -> int:
    n = 0
    with psycopg.connect(url) as conn, conn.cursor() as cur, \
            cur.copy("COPY (SELECT * FROM allowance) TO STDOUT") as copy:
        for chunk in copy:
            n += len(chunk)
    return n


def pull(url: str, folder: Path) -> tuple[int, int]:
    from catalog import ingest, sources
    from catalog.models import ItemType

    target = sources.parse_url(url)
    # id_number is the key, as in a real register of residents: checked unique as well.
    columns = [ingest.Column(name, ItemType(kind), is_key=name == "id_number")
               for name, kind in ITEMS]
    segment = folder / f"pull-{time.monotonic_ns()}.duckdb"
    result, _ = sources._read_into(target, sources.pull_sql("allowance"), columns, segment)
    rows = result.rows
    size = segment.stat().st_size
    segment.unlink()
    return rows, size


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="1M rows, once")
    args = parser.parse_args()
    if args.quick:
        args.rows, args.repeat = 1_000_000, 1
    server = os.environ.get("GOVSHARE_TEST_DATABASE_URL")
    if not server:
        return subprocess.run([str(ROOT / ".ci" / "with-postgres"), sys.executable, "-m",
                               "bench.bench_pull", *sys.argv[1:]], cwd=ROOT,
                              check=False).returncode
    # Loaded once by a worker, not per pull: imported before the clock starts (the first
    # pull of a fresh process would otherwise count ~0.7 s of imports).
    import adbc_driver_postgresql.dbapi  # noqa: F401

    import catalog.ingest
    import catalog.sources  # noqa: F401

    t = time.perf_counter()
    url = _database(server, args.rows)
    print(f"table: {args.rows:,} rows x {len(ITEMS)} columns ({time.perf_counter() - t:.1f} s)")
    results: list[list[object]] = []
    with tempfile.TemporaryDirectory(prefix="govshare-pull-") as tmp:
        for i in range(args.repeat):  # alternate, so both see the same machine
            t = time.perf_counter()
            nbytes = copy_out(url)
            base = time.perf_counter() - t
            t = time.perf_counter()
            rows, size = pull(url, Path(tmp))
            ours = time.perf_counter() - t
            assert rows == args.rows
            results.append([i + 1, f"{base:.2f} s ({mib(nbytes)} of text)",
                            f"{ours:.2f} s ({rows / ours:,.0f} rows/s, segment {mib(size)})",
                            f"{ours / base:.2f}x"])
    print_table("pull vs COPY TO STDOUT (same server, same run)",
                ["run", "COPY … TO STDOUT", "govshare pull", "ratio"], results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
