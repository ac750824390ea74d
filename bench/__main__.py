"""Run every benchmark in its quick mode: ``python -m bench`` (``make bench``); ``--all`` adds
the load test on PostgreSQL."""

import subprocess
import sys

BENCHES = ["bench_upload", "bench_excel", "bench_search", "bench_log", "bench_sqlite_sync",
           "bench_quality", "bench_delivery", "bench_metrics", "bench_tiles", "bench_risk"]
# Need PostgreSQL (each starts a throwaway server with .ci/with-postgres, installing it if
# missing); the load test also two server processes: `python -m bench.bench_load`.
NOT_QUICK = ["bench_load", "bench_pull"]

if __name__ == "__main__":
    failed = []
    for name in BENCHES + (NOT_QUICK if "--all" in sys.argv[1:] else []):
        print(f"\n=== {name} (--quick) ===", flush=True)
        if subprocess.run([sys.executable, "-m", f"bench.{name}", "--quick"]).returncode:
            failed.append(name)
    sys.exit(1 if failed else 0)
