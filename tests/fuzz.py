"""Property-based fuzzing of the whole OpenAPI schema with schemathesis, against a real server.

``python -m tests.fuzz`` (``make fuzz``) runs the long version; tests/test_fuzz.py a short one.
A uvicorn server on loopback serves a fresh data directory with one resource and one
application, and schemathesis sends generated requests to every operation: as a publisher,
a requester, the data bureau's auditor, an admin, and with no token at all. Checks: no 5xx
(``not_a_server_error``) and every error answered as application/problem+json
(tests/fuzz_hooks.py).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx

from kernel import db
from kernel.identity import Role
from kernel.settings import get_settings
from tests.server_support import ROOT, Server, make_world

CALLERS: list[tuple[str, Role] | None] = [("GA", Role.publisher), ("SCJG", Role.requester),
                                          ("SJJ", Role.auditor), ("GA", Role.admin), None]


def _seed(server: Server, tokens: dict[tuple[str, Role], str]) -> None:
    """One resource, one application: so path parameters sometimes hit real things."""
    from tests.test_access_support import PEOPLE_ITEMS, application, people_rows, to_csv

    meta = {"name": "人口基础信息", "category": "101", "items": PEOPLE_ITEMS,
            "sharing_type": "conditional", "sharing_condition": "用于政务服务",
            "update_cycle": "daily", "security_level": "general"}
    pub = {"Authorization": f"Bearer {tokens[('GA', Role.publisher)]}"}
    r = httpx.post(server.url + "/api/v1/resources", headers=pub, timeout=60,
                   data={"metadata": json.dumps(meta, ensure_ascii=False)},
                   files={"file": ("p.csv", to_csv(people_rows(30)), "text/csv")})
    r.raise_for_status()
    req = {"Authorization": f"Bearer {tokens[('SCJG', Role.requester)]}"}
    httpx.post(server.url + "/api/v1/applications", headers=req, timeout=60,
               json=application(r.json()["code"])).raise_for_status()


def run(*, max_examples: int, max_time: int, workdir: Path, seed: int = 1,
        phases: str = "examples,coverage,fuzzing") -> list[str]:
    """Fuzz as every caller; returns the failing runs' output (empty: all passed)."""
    data = workdir / "data"
    os.environ.update({"GOVSHARE_DATA_DIR": str(data), "GOVSHARE_KEY_PASSPHRASE": "fuzz",
                       # The fuzzer sends many bad tokens on purpose.
                       "GOVSHARE_AUTH_FAILURES_PER_IP": "1000000",
                       "GOVSHARE_AUTH_FAILURES_PER_PREFIX": "1000000"})
    get_settings.cache_clear()
    db.reset_engines()
    tokens = make_world()
    server = Server(workdir / "server.log")
    failures: list[str] = []
    try:
        server.start()
        _seed(server, tokens)
        for caller in CALLERS:
            cmd = [sys.executable, "-m", "schemathesis.cli", "run",
                   server.url + "/openapi.json", "--checks", "not_a_server_error,problem_json",
                   "--max-examples", str(max_examples), "--max-time", str(max_time),
                   "--seed", str(seed), "--no-shrink", "--workers", "2",
                   "--phases", phases, "--request-timeout", "30",
                   "--suppress-health-check", "all", "--warnings", "off"]
            if caller is not None:
                cmd += ["-H", f"Authorization: Bearer {tokens[caller]}"]
            # Run in the work directory: schemathesis keeps a .schemathesis/ cache in its cwd.
            env = {**os.environ, "SCHEMATHESIS_HOOKS": "tests.fuzz_hooks",
                   "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
            done = subprocess.run(cmd, cwd=workdir, env=env, capture_output=True, text=True,
                                  timeout=max_time * 3 + 120)
            if done.returncode != 0:
                who = f"{caller[0]} {caller[1].value}" if caller else "no token"
                failures.append(f"--- as {who} ---\n{done.stdout[-6000:]}{done.stderr[-2000:]}")
    finally:
        server.stop()
    return failures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--max-examples", type=int, default=50)
    parser.add_argument("--max-time", type=int, default=300, help="seconds per caller")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="govshare-fuzz-") as tmp:
        failures = run(max_examples=args.max_examples, max_time=args.max_time,
                       workdir=Path(tmp), seed=args.seed)
    print("\n".join(failures) or "fuzz: no 5xx, every error is problem+json")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
