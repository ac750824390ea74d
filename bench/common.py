"""Helpers shared by the benchmarks: child-process timing with peak memory, tables."""

import json
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any


def measure_in_child(module: str, func: str, *args: str) -> dict[str, Any]:
    """Run ``module.func(*args)`` in a fresh interpreter; return its result, wall time and
    peak RSS, so each contender's memory is its own and not the parent's high-water mark."""
    code = (
        "import json, resource, sys, time\n"
        f"from {module} import {func} as f\n"
        "t = time.perf_counter()\n"
        f"out = f(*{list(args)!r})\n"
        "dt = time.perf_counter() - t\n"
        "rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024\n"
        "print(json.dumps({'seconds': dt, 'peak_rss': rss, 'result': out}))\n"
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
