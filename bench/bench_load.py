"""Load test: ``govshare serve --workers 2`` and ``govshare worker`` processes on PostgreSQL
under a mixed workload, on loopback.

    python -m bench.bench_load [--requests 2000] [--concurrency 16] [--workers 2]
                               [--job-workers 1] [--quick]

Bounded: a fixed number of requests at a fixed concurrency, then it stops on its own. Needs
PostgreSQL: with GOVSHARE_TEST_DATABASE_URL set it creates a database there, otherwise it
re-runs itself under ``.ci/with-postgres`` (which installs PostgreSQL if missing and starts a
throwaway server). The world: one provider department with two conditional resources of
2,000 rows (four personal columns), and one requester department per client.

Each client runs sharing flows back to back, a search before each step:
search → apply → search → approve (which enqueues the delivery job in its transaction; a
``govshare worker`` process, separate from the web processes, produces the package) →
status polls until the delivery exists → download link → download.
Reported: throughput, p50/p99 per kind, errors (any status >= 400 or a transport error; zero
required, else exit 1), and the access log verified offline afterwards (``govshare log
verify``), which proves it stayed one linear sequence under both workers' appends.

Quality's schedule is turned off for the run (a GX run per resource would compete for the
2 cores); the periodic tick and the metrics refresh stay on in the job workers.
"""

import argparse
import asyncio
import itertools
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
API = "/api/v1"
PROVIDER = "GA"


# --- set-up, in a child process (the parent never imports the service) ----------------------

def setup_world(data_dir: str, clients: str, rows: str) -> dict[str, Any]:
    from bench.bench_delivery import ITEMS, make_parquet

    os.environ["GOVSHARE_DATA_DIR"] = data_dir
    from catalog import service
    from catalog.schemas import ResourceIn
    from govshare.migrate import upgrade
    from kernel import db, identity
    from kernel.auth import principal_of
    from kernel.identity import DepartmentKind, Role
    from translog import service as log_service

    upgrade()
    log_service.subscribe()
    tokens: dict[str, str] = {}
    with db.session_scope() as session:
        identity.create_department(session, code=PROVIDER, name_zh="市公安局", name_en="PSB")
        identity.create_department(session, code="SJJ", name_zh="市数据局", name_en="Data Bureau",
                                   kind=DepartmentKind.bureau)
        for username, role in (("ga-pub", Role.publisher), ("ga-appr", Role.approver)):
            user = identity.create_user(session, username=username, display_name=username,
                                        department=PROVIDER, roles=[role])
            tokens[username] = identity.issue_token(session, user, name="bench", days=1)[1]
        for n in range(int(clients)):
            dept = f"R{n:02d}"
            identity.create_department(session, code=dept, name_zh=f"委办局{n}", name_en=dept)
            user = identity.create_user(session, username=f"req-{n}", display_name=dept,
                                        department=dept, roles=[Role.requester])
            tokens[f"req-{n}"] = identity.issue_token(session, user, name="bench", days=1)[1]
    codes = []
    parquet = Path(data_dir).parent / "people.parquet"
    make_parquet(parquet, int(rows))
    for name in ("人口基础信息", "户籍迁移记录"):
        meta = ResourceIn.model_validate({
            "name": name, "category": "101", "items": ITEMS, "update_cycle": "daily",
            "sharing_type": "conditional", "sharing_condition": "依申请"})
        with db.session_scope() as session:
            codes.append(service.register_resource(session, principal_of(session, "ga-pub"),
                                                    meta, parquet, filename="p.parquet").code)
    parquet.unlink()
    return {"tokens": tokens, "codes": codes, "items": [i["name"] for i in ITEMS]}


def _child(env: dict[str, str], func: str, *args: str) -> Any:
    code = (f"import json\nfrom bench.bench_load import {func}\n"
            f"print(json.dumps({func}(*{list(args)!r})))")
    proc = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, text=True,
                          capture_output=True, check=False)
    if proc.returncode:
        raise RuntimeError(f"{func} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _create_database(server_url: str) -> str:
    from sqlalchemy import create_engine, make_url, text

    name = f"bench_load_{os.getpid()}"
    engine = create_engine("postgresql+psycopg://" + server_url.split("://", 1)[1],
                           isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    return make_url(server_url).set(database=name).render_as_string(hide_password=False)


# --- the load ---------------------------------------------------------------------------------

class Load:
    def __init__(self, base: str, world: dict[str, Any], total: int) -> None:
        self.base, self.world, self.total = base, world, total
        self.issued = 0
        self.latencies: dict[str, list[float]] = {}
        self.errors: list[str] = []
        self.flows_done = 0

    def _auth(self, user: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.world['tokens'][user]}"}

    async def call(self, client: Any, kind: str, method: str, url: str, user: str,
                   **kw: Any) -> Any:
        if self.issued >= self.total:
            raise _Done
        self.issued += 1
        started = time.perf_counter()
        try:
            response = await client.request(method, url, headers=self._auth(user), **kw)
        except Exception as exc:  # a transport error counts as an error, not a crash
            self.errors.append(f"{kind}: {type(exc).__name__}: {exc}")
            raise _Failed from None
        self.latencies.setdefault(kind, []).append(time.perf_counter() - started)
        if response.status_code >= 400:
            self.errors.append(f"{kind} {method} {url}: {response.status_code} "
                               f"{response.text[:300]}")
            raise _Failed
        return response

    async def client_loop(self, client: Any, n: int) -> None:
        user = f"req-{n}"
        items = self.world["items"]
        subsets = [list(c) for k in range(len(items), 0, -1)
                   for c in itertools.combinations(items, k)]
        flows = itertools.product(subsets, self.world["codes"])
        queries = itertools.cycle(["人口", "户籍", "population", "迁移", "信息"])
        try:
            for chosen, code in flows:
                try:
                    await self.flow(client, user, code, chosen, queries)
                except _Failed:
                    continue
        except _Done:
            return

    async def flow(self, client: Any, user: str, code: str, chosen: list[str],
                   queries: Any) -> None:
        await self.call(client, "search", "GET", f"{API}/resources", user,
                        params={"q": next(queries)})
        body = {"resource": code, "purpose": "负载测试：核验申请材料", "legal_basis": "基准测试",
                "items": chosen, "period_end": (date.today() + timedelta(days=30)).isoformat()}
        app = (await self.call(client, "apply", "POST", f"{API}/applications", user,
                               json=body)).json()
        await self.call(client, "search", "GET", f"{API}/resources", user,
                        params={"q": next(queries), "sharing_type": "conditional"})
        await self.call(client, "approve", "POST", f"{API}/applications/{app['id']}/approve",
                        "ga-appr", json={})
        while True:
            found = (await self.call(client, "status", "GET", f"{API}/deliveries", user,
                                     params={"application_id": app["id"]})).json()
            if found:
                break
            await asyncio.sleep(0.05)
        link = (await self.call(client, "link", "POST",
                                f"{API}/deliveries/{found[0]['id']}/link", user)).json()
        await self.call(client, "download", "GET", link["url"], user)
        self.flows_done += 1


class _Done(Exception):
    pass


class _Failed(Exception):
    pass


async def run_load(base: str, world: dict[str, Any], total: int, concurrency: int
                   ) -> tuple[Load, float, list[float], float]:
    """The mixed load, after a same-run baseline: as many ``GET /healthz`` (no database, no
    auth) at the same concurrency, the floor of the HTTP stack and the client on this box."""
    import httpx

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base, timeout=120, limits=limits) as client:
        floor: list[float] = []

        async def ping(n: int) -> None:
            for _ in range(n):
                t = time.perf_counter()
                (await client.get("/healthz")).raise_for_status()
                floor.append(time.perf_counter() - t)

        started = time.perf_counter()
        await asyncio.gather(*(ping(total // concurrency) for _ in range(concurrency)))
        floor_elapsed = time.perf_counter() - started

        load = Load(base, world, total)
        started = time.perf_counter()
        await asyncio.gather(*(load.client_loop(client, n) for n in range(concurrency)))
        elapsed = time.perf_counter() - started
    return load, elapsed, floor, floor_elapsed


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _wait_healthy(base: str, server: subprocess.Popen[bytes], timeout: float = 120) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError("the server exited during start-up")
        try:
            if httpx.get(base + "/healthz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise RuntimeError("the server did not become healthy")


def verify_log(env: dict[str, str], folder: Path) -> str:
    govshare = str(Path(sys.executable).parent / "govshare")
    export, keys = folder / "log.jsonl", folder / "keys.json"
    for args in (["log", "export", str(export)], ["log", "keys", "--out", str(keys)]):
        subprocess.run([govshare, *args], env=env, cwd=ROOT, check=True, capture_output=True)
    proc = subprocess.run([govshare, "log", "verify", str(export), "--public-key", str(keys)],
                          env=env, cwd=ROOT, text=True, capture_output=True, check=False)
    if proc.returncode:
        raise RuntimeError(f"the access log does not verify:\n{proc.stdout}{proc.stderr}")
    return proc.stdout.strip().splitlines()[-1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2, help="web processes")
    parser.add_argument("--job-workers", type=int, default=1,
                        help="`govshare worker` processes (deliveries)")
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--quick", action="store_true", help="200 requests at 8 concurrent")
    args = parser.parse_args()
    if args.quick:
        args.requests, args.concurrency = 200, 8

    server_url = os.environ.get("GOVSHARE_TEST_DATABASE_URL")
    if not server_url:  # start a throwaway PostgreSQL and run again under it
        script = ROOT / ".ci" / "with-postgres"
        return subprocess.run([str(script), sys.executable, "-m", "bench.bench_load",
                               *sys.argv[1:]], cwd=ROOT, check=False).returncode

    folder = Path(tempfile.mkdtemp(prefix="govshare-load-"))
    env = dict(os.environ, GOVSHARE_DATA_DIR=str(folder / "data"),
               GOVSHARE_DATABASE_URL=_create_database(server_url),
               GOVSHARE_KEY_PASSPHRASE="bench-passphrase",
               GOVSHARE_QUALITY_SCHEDULE_MINUTES="0", GOVSHARE_JOBS_POLL_SECONDS="0.2")
    server = None
    job_workers: list[subprocess.Popen[bytes]] = []
    server_log = (folder / "server.log").open("wb")
    try:
        t = time.perf_counter()
        world = _child(env, "setup_world", str(folder / "data"), str(args.concurrency),
                       str(args.rows))
        print(f"world: {len(world['codes'])} resources x {args.rows:,} rows, "
              f"{args.concurrency} requester departments ({time.perf_counter() - t:.1f} s)")
        port = _free_port()
        base = f"http://127.0.0.1:{port}"
        server = subprocess.Popen(
            [str(Path(sys.executable).parent / "govshare"), "serve", "--port", str(port),
             "--workers", str(args.workers)],
            env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=server_log)
        job_workers = [subprocess.Popen(
            [str(Path(sys.executable).parent / "govshare"), "worker", "--concurrency", "2"],
            env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=server_log)
            for _ in range(args.job_workers)]
        _wait_healthy(base, server)
        load, elapsed, floor, floor_elapsed = asyncio.run(
            run_load(base, world, args.requests, args.concurrency))
    finally:
        for process in [p for p in (server, *job_workers) if p is not None]:
            process.terminate()
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
        server_log.close()
    verdict = verify_log(env, folder)

    done = sum(len(v) for v in load.latencies.values())
    print(f"\n{args.requests:,} requests at concurrency {args.concurrency}, "
          f"{args.workers} web + {args.job_workers} job worker processes on PostgreSQL: "
          f"{elapsed:.1f} s, "
          f"{done / elapsed:,.0f} requests/s, {load.flows_done} complete flows "
          f"(apply → approve → deliver → download), {len(load.errors)} errors")
    print(f"{'kind':<10}{'count':>7}{'p50 ms':>9}{'p99 ms':>9}")
    for kind in ("search", "apply", "approve", "status", "link", "download"):
        values = load.latencies.get(kind, [])
        if values:
            print(f"{kind:<10}{len(values):>7}{_percentile(values, .5) * 1000:>9.0f}"
                  f"{_percentile(values, .99) * 1000:>9.0f}")
    print(f"{'healthz':<10}{len(floor):>7}{_percentile(floor, .5) * 1000:>9.0f}"
          f"{_percentile(floor, .99) * 1000:>9.0f}   same-run baseline: "
          f"{len(floor) / floor_elapsed:,.0f} requests/s")
    throughput, baseline = done / elapsed, len(floor) / floor_elapsed
    print(f"mixed flow / floor throughput: {throughput / baseline:.2f}x")
    print(f"access log: {verdict}")
    for error in load.errors[:10]:
        print("error:", error)
    if load.errors:
        print(f"server log kept at {folder / 'server.log'}")
    else:
        shutil.rmtree(folder, ignore_errors=True)
    return 1 if load.errors else 0


if __name__ == "__main__":
    sys.exit(main())
