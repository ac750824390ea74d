"""Witnessed-log benchmark: C2SP tiles served per second, and checkpoint cosigning latency with
three witness processes, each against the ``/healthz`` floor measured in the same run.

    python -m bench.bench_tiles [--quick] [--entries N] [--seconds S] [--concurrency C]
                                [--rounds R]

* A log of ``--entries`` entries is appended through the real service (SQLite), then a real
  ``govshare serve`` process serves it. ``C`` concurrent HTTP clients fetch ``/healthz`` (no
  database: the floor), then random full level-0 tiles (8 KiB, one range scan of
  ``log_subtree``), then ``/checkpoint``, for ``S`` seconds each.
* Three ``govshare witness serve`` processes on loopback; ``R`` rounds of: append one entry,
  then ``translog.cosigner.publish_once`` (what the background cosigner runs): sign the
  checkpoint, POST it with a consistency proof to the three witnesses at once, verify their
  cosignatures, store the checkpoint. The floor is one ``/healthz`` round trip.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from bench.common import print_table

ROOT = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait(url: str, proc: subprocess.Popen[bytes], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{url} exited during start-up")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not start")


def _fill(entries: int, batch: int = 200) -> None:
    from kernel import db
    from kernel.events import Actor, Event, publish

    rng = random.Random(5)
    for start in range(0, entries, batch):
        with db.session_scope() as session:
            for i in range(start, min(entries, start + batch)):
                publish(session, Event("delivery.downloaded",
                                       Actor(user_id=rng.randrange(1, 500), department_id=7),
                                       {"resource": f"440300-GA-101-{i % 900:05d}"},
                                       {"bytes": rng.randrange(10**9)}))


async def _rate(base: str, paths: list[str], seconds: float, concurrency: int) -> float:
    """Requests per second over ``seconds`` with ``concurrency`` clients cycling ``paths``."""
    done = 0
    stop = time.perf_counter() + seconds

    async def loop(client: httpx.AsyncClient, k: int) -> None:
        nonlocal done
        i = k
        while time.perf_counter() < stop:
            (await client.get(paths[i % len(paths)])).raise_for_status()
            done += 1
            i += concurrency
    started = time.perf_counter()
    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30) as client:
        await asyncio.gather(*(loop(client, k) for k in range(concurrency)))
    return done / (time.perf_counter() - started)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--entries", type=int, default=50_000)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=50)
    args = parser.parse_args()
    if args.quick:
        args.entries, args.seconds, args.rounds = 5_000, 3, 15

    folder = Path(tempfile.mkdtemp(prefix="govshare-tiles-"))
    env = {"GOVSHARE_DATA_DIR": str(folder / "data"), "GOVSHARE_MODE": "development",
           "GOVSHARE_QUALITY_POLL_SECONDS": "0", "GOVSHARE_QUALITY_SCHEDULE_MINUTES": "0",
           "GOVSHARE_ACCESS_SCHEDULER_SECONDS": "0"}
    os.environ.update(env)
    from govshare.migrate import upgrade
    from kernel import db
    from kernel.settings import get_settings
    from translog import checkpoints, cosigner, note, service, tilepath, witness

    get_settings.cache_clear()
    db.reset_engines()
    upgrade()
    service.subscribe()
    t = time.perf_counter()
    _fill(args.entries)
    print(f"log: {args.entries:,} entries appended in {time.perf_counter() - t:.1f} s")
    with db.session_scope() as session:
        log_vkey = checkpoints.log_verifier(service.ensure_key(session)).vkey

    procs: list[subprocess.Popen[bytes]] = []
    try:
        port = _free_port()
        base = f"http://127.0.0.1:{port}"
        server_env = {**os.environ, "GOVSHARE_LOG_WITNESSES": ""}
        procs.append(subprocess.Popen(
            [sys.executable, "-c", "from govshare.cli import main; main()", "serve", "--port",
             str(port)], env=server_env, cwd=ROOT, stdout=subprocess.DEVNULL,
            stderr=(folder / "server.log").open("wb")))
        _wait(base + "/healthz", procs[-1])
        witnesses = []
        for i in (1, 2, 3):
            wdir, wport, name = folder / f"w{i}", _free_port(), f"bench{i}.example/witness"
            vkey = note.Verifier(name, note.COSIGNATURE_V1,
                                 note.raw_public(witness.load_or_create_key(wdir))).vkey
            procs.append(subprocess.Popen(
                [sys.executable, "-c", "from translog.witness_cli import app; app()", "serve",
                 "--data-dir", str(wdir), "--name", name, "--log", log_vkey, "--port",
                 str(wport)], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            _wait(f"http://127.0.0.1:{wport}/", procs[-1])
            witnesses.append(f"{vkey} http://127.0.0.1:{wport}")

        # --- tiles served per second ---
        full_tiles = args.entries // 256
        rng = random.Random(1)
        tile_paths = ["/" + tilepath.Tile(0, rng.randrange(full_tiles)).path()
                      for _ in range(1000)]
        assert httpx.get(base + tile_paths[0]).headers["cache-control"].endswith("immutable")
        healthz = asyncio.run(_rate(base, ["/healthz"], args.seconds, args.concurrency))
        tiles = asyncio.run(_rate(base, tile_paths, args.seconds, args.concurrency))
        checkpoint = asyncio.run(_rate(base, ["/checkpoint"], args.seconds, args.concurrency))
        print_table(f"Served over HTTP, {args.concurrency} concurrent clients, {args.seconds:g} s "
                    "each, one server process (SQLite)",
                    ["request", "per second", "vs /healthz"],
                    [["GET /healthz (floor)", f"{healthz:,.0f}", "1.00"],
                     ["GET /tile/0/<N> (8 KiB)", f"{tiles:,.0f}", f"{tiles / healthz:.2f}"],
                     ["GET /checkpoint", f"{checkpoint:,.0f}", f"{checkpoint / healthz:.2f}"]])

        # --- cosigning latency with three witnesses ---
        os.environ["GOVSHARE_LOG_WITNESSES"] = ",".join(witnesses)
        get_settings.cache_clear()
        first = cosigner.publish_once()  # the witnesses' first view: from size 0
        assert first is not None and first.published and len(first.cosignatures) == 3
        floor = []
        with httpx.Client(base_url=base) as client:
            for _ in range(args.rounds):
                t = time.perf_counter()
                client.get("/healthz").raise_for_status()
                floor.append(time.perf_counter() - t)
        rounds = []
        for _ in range(args.rounds):
            _fill(1)
            t = time.perf_counter()
            result = cosigner.publish_once()
            rounds.append(time.perf_counter() - t)
            assert result is not None and result.published and len(result.cosignatures) == 3
        f50, r50 = statistics.median(floor), statistics.median(rounds)
        r95 = sorted(rounds)[int(0.95 * (len(rounds) - 1))]
        print_table(f"Checkpoint cosigning, 3 witness processes on loopback, quorum 2, "
                    f"{args.rounds} rounds (tree size ~{args.entries:,})",
                    ["what", "p50 ms", "p95 ms", "vs /healthz p50"],
                    [["GET /healthz round trip (floor)", f"{f50 * 1000:.1f}",
                      f"{sorted(floor)[int(0.95 * (len(floor) - 1))] * 1000:.1f}", "1.0"],
                     ["one cosigning round (sign, 3 witnesses, store)", f"{r50 * 1000:.1f}",
                      f"{r95 * 1000:.1f}", f"{r50 / f50:.1f}"]])
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
    return 0


if __name__ == "__main__":
    sys.exit(main())
