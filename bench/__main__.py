"""Run every benchmark in its quick mode: ``python -m bench`` (``make bench``)."""

import subprocess
import sys

BENCHES = ["bench_upload", "bench_search", "bench_log", "bench_quality", "bench_delivery"]

if __name__ == "__main__":
    failed = []
    for name in BENCHES:
        print(f"\n=== {name} (--quick) ===", flush=True)
        if subprocess.run([sys.executable, "-m", f"bench.{name}", "--quick"]).returncode:
            failed.append(name)
    sys.exit(1 if failed else 0)
