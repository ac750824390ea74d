"""Helpers shared by the benchmarks: child-process timing with peak memory, registering a
file as a publisher would (upload and Excel benchmarks), a generated catalog kept in a data
directory (search and duplicate-check benchmarks), tables."""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def measure_in_child(module: str, func: str, *args: str) -> dict[str, Any]:
    """Run ``module.func(*args)`` in a fresh interpreter; return its result, wall time, CPU
    time (all the child's threads) and peak RSS, so each contender's memory is its own and
    not the parent's high-water mark."""
    code = (
        "import json, resource, sys, time\n"
        f"from {module} import {func} as f\n"
        "t, c = time.perf_counter(), time.process_time()\n"
        f"out = f(*{list(args)!r})\n"
        "dt, dc = time.perf_counter() - t, time.process_time() - c\n"
        "rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024\n"
        "print(json.dumps({'seconds': dt, 'cpu_seconds': dc, 'peak_rss': rss, 'result': out}))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{module}.{func} failed:\n{proc.stderr[-3000:]}")
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def print_table(title: str, header: list[str], rows: list[list[Any]]) -> None:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=False)]
    print(f"\n{title}")
    print("  ".join(str(h).ljust(w) for h, w in zip(header, widths, strict=True)))
    for row in rows:
        print("  ".join(str(x).ljust(w) for x, w in zip(row, widths, strict=True)))


def mib(n: float) -> str:
    return f"{n / 1024 / 1024:,.0f} MiB"


def register_file(path: str, data_dir: str, meta_json: str, filename: str,
                  department_json: str) -> dict[str, float]:
    """In a child process (``measure_in_child``): set up a department and one publisher in a
    fresh data directory, then register ``path`` as a new resource. Returns the rows and the
    registration's own wall and CPU seconds (all threads), not the set-up's."""
    import os

    os.environ["GOVSHARE_DATA_DIR"] = data_dir
    from catalog import service
    from catalog.schemas import ResourceIn
    from govshare import wiring
    from govshare.migrate import upgrade
    from kernel import db, identity
    from kernel.auth import principal_of
    from kernel.identity import Role

    upgrade()
    wiring.subscribe_events()
    department = json.loads(department_json)
    with db.session_scope() as session:
        identity.create_department(session, **department)
        identity.create_user(session, username="pub", display_name="pub",
                             department=department["code"], roles=[Role.publisher])
    meta = ResourceIn.model_validate_json(meta_json)
    start, cpu = time.perf_counter(), time.process_time()
    with db.session_scope() as session:
        who = principal_of(session, "pub")
        resource = service.register_resource(session, who, meta, Path(path), filename=filename)
        rows = resource.row_count
    return {"rows": rows, "seconds": time.perf_counter() - start,
            "cpu_seconds": time.process_time() - cpu}


def report_registration(title: str, baseline_label: str, rows: int, base: dict[str, Any],
                        ours: dict[str, Any], **extra: Any) -> None:
    """Print the registration against its same-run baseline (wall and CPU time: on a shared
    machine the CPU ratio is the steadier one), then the figures as JSON."""
    assert base["result"] == ours["result"]["rows"] == rows, (base, ours)
    # Registration only, not the child's start-up and set-up.
    ours["seconds"], ours["cpu_seconds"] = (ours["result"]["seconds"],
                                            ours["result"]["cpu_seconds"])
    table = []
    for label, run in ((f"{baseline_label} (baseline)", base), ("govshare register", ours)):
        table.append([label, f"{rows / run['seconds']:,.0f}", f"{run['seconds']:.2f}",
                      f"{run['cpu_seconds']:.2f}", mib(run["peak_rss"]),
                      f"{run['seconds'] / base['seconds']:.2f}",
                      f"{run['cpu_seconds'] / base['cpu_seconds']:.2f}"])
    print_table(title, ["contender", "rows/s", "seconds", "CPU s", "peak RSS", "time ratio",
                        "CPU ratio"], table)
    print(json.dumps({"rows": rows, **extra, "baseline": base, "govshare": ours}))


# --- a generated catalog (bench_search, bench_similar) ----------------------------------------


def add_catalog_args(parser: argparse.ArgumentParser) -> None:
    """The options that choose the generated catalog: its size and where it is kept."""
    parser.add_argument("--quick", action="store_true", help="10,000 resources")
    parser.add_argument("--resources", type=int, default=None)
    parser.add_argument("--data-dir", type=Path, default=None, help="keep and reuse the store")


def settings_for(data_dir: Path) -> None:
    """Point this process's settings and engines at ``data_dir``."""
    os.environ["GOVSHARE_DATA_DIR"] = str(data_dir)
    os.environ["GOVSHARE_MODE"] = "development"  # a development master secret
    from kernel import db
    from kernel.settings import get_settings

    get_settings.cache_clear()
    db.reset_engines()


@contextmanager
def generated_catalog(args: argparse.Namespace,
                      build: Callable[[Any, int], None]) -> Iterator[tuple[Path, int]]:
    """(data directory, resources) of a migrated store holding the catalog ``build(session,
    n)`` generates: in ``--data-dir`` when given (generated on the first run, reused after),
    else in a temporary directory removed on exit."""
    n = args.resources or (10_000 if args.quick else 100_000)
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = args.data_dir or Path(tmp)
        fresh = not (data_dir / "govshare.db").exists()
        settings_for(data_dir)
        from sqlmodel import Session

        from govshare import migrate
        from kernel import db

        migrate.upgrade()
        if fresh:
            with Session(db.get_engine()) as session:
                build(session, n)
        yield data_dir, n
