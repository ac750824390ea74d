"""Access-log benchmark: append rate through the real service, and offline verification.

    python -m bench.bench_log [--quick] [--entries N] [--batch B] [--verify-entries M]

Append: events are published through ``kernel.events.publish`` into the DB-backed log
(SQLite, WAL), ``--batch`` per transaction, so the time includes the log lock, the Core
inserts of entries and subtree hashes, one Ed25519 head signature per batch and the commit.
A second row does one entry per transaction, what a typical request costs.

Verification: an export of ``--verify-entries`` entries (heads every ``--batch``) is written
directly with the same canonical and Merkle code (appending a million entries through the DB
would dominate the run), then ``translog.verify.verify_export`` checks it from disk.

Each figure is compared with its floor, measured in the same run: plain SHA-256 of the same
bytes (the leaf bytes of the appended entries; every line of the export file read and hashed).
"""

import argparse
import base64
import hashlib
import json
import os
import random
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from bench.common import print_table
from kernel.events import Actor, Event
from translog import canonical, merkle, verify

TYPES = ["resource.registered", "resource.version_added", "application.submitted",
         "application.approved", "delivery.downloaded", "api.queried"]


def _events(n: int, seed: int = 7) -> list[Event]:
    rng = random.Random(seed)
    return [Event(type=rng.choice(TYPES),
                  actor=Actor(user_id=rng.randrange(1, 500), department_id=rng.randrange(1, 60)),
                  subjects={"resource": f"440300-GA-101-{i:05d}",
                            "application": f"A-2026-{rng.randrange(10**6):06d}"},
                  payload={"rows": rng.randrange(10**6), "purpose": "政务服务身份核验"})
            for i in range(n)]


def _start_store(data_dir: Path) -> None:
    os.environ["GOVSHARE_DATA_DIR"] = str(data_dir)
    os.environ.setdefault("GOVSHARE_KEY_PASSPHRASE", "bench-passphrase")
    from govshare.migrate import upgrade
    from kernel import db
    from kernel.settings import get_settings

    get_settings.cache_clear()
    db.reset_engines()
    upgrade()


def _append(events: list[Event], batch: int) -> float:
    from kernel import db
    from kernel.events import publish

    start = time.perf_counter()
    for i in range(0, len(events), batch):
        with db.session_scope() as session:
            for event in events[i:i + batch]:
                publish(session, event)
    return time.perf_counter() - start


def _leaf_bytes(first: int, count: int) -> list[bytes]:
    from sqlmodel import col, select

    from kernel import db
    from translog import service
    from translog.models import LogEntry

    with db.session_scope() as session:
        rows = session.exec(select(LogEntry).where(col(LogEntry.seq) >= first)
                            .order_by(col(LogEntry.seq)).limit(count)).all()
        return [canonical.entry_bytes(service.entry_object(r)) for r in rows]


def _log_size() -> int:
    from kernel import db
    from translog import tree

    with db.session_scope() as session:
        return tree.committed_size(session)


def _sha_floor(chunks: list[bytes]) -> float:
    sha = hashlib.sha256
    start = time.perf_counter()
    for chunk in chunks:
        sha(b"\x00" + chunk).digest()
    return time.perf_counter() - start


def bench_append(data_dir: Path, n: int, batch: int) -> list[list[str]]:
    from translog import service

    _start_store(data_dir)
    service.subscribe()
    _append(_events(50, seed=1), 50)  # create the key and warm caches outside the timing
    rows = []
    for per_tx, count in ((batch, n), (1, max(n // 10, 100))):
        first = _log_size()
        seconds = _append(_events(count, seed=per_tx), per_tx)
        floor = _sha_floor(_leaf_bytes(first, count))
        rows.append([f"append, {per_tx}/transaction", f"{count:,}", f"{seconds:.2f} s",
                     f"{count / seconds:,.0f} entries/s", f"{floor * 1e3:.1f} ms",
                     f"{seconds / floor:,.0f}x"])
    return rows


# --- verification -----------------------------------------------------------------------------

def _synthetic_lines(n: int, batch: int, key: Ed25519PrivateKey, key_id: str) -> Iterator[bytes]:
    rng = random.Random(11)
    frontier = merkle.Frontier()
    base = datetime(2026, 5, 1, tzinfo=UTC)
    yield b'{"header":{"exported_at":"2026-05-01T00:00:00.000000Z","format":' \
        b'"govshare-log-export","tree_size":%d,"version":1}}\n' % n
    heads = 0
    for seq in range(n):
        user = rng.randrange(1, 500)
        obj = {"v": 1, "seq": seq,
               "time": canonical.format_time(base + timedelta(milliseconds=seq)),
               "type": TYPES[seq % len(TYPES)],
               "actor": {"user": user, "department": user % 60, "kind": "user"},
               "subjects": {"resource": f"440300-GA-101-{seq % 99999:05d}",
                            "application": f"A-2026-{rng.randrange(10**6):06d}"},
               "payload_sha256": hashlib.sha256(seq.to_bytes(8, "big")).hexdigest()}
        leaf = canonical.entry_bytes(obj)
        frontier.append(merkle.leaf_hash(leaf))
        yield b'{"entry":' + leaf + b"}\n"
        if frontier.size % batch == 0 or seq == n - 1:
            heads += 1
            yield _head_line(frontier, key, key_id, base + timedelta(milliseconds=seq))
    yield b'{"end":{"entries":%d,"heads":%d}}\n' % (n, heads)


def _head_line(frontier: merkle.Frontier, key: Ed25519PrivateKey, key_id: str,
               moment: datetime) -> bytes:
    fields = {"tree_size": frontier.size, "root_hash": frontier.root().hex(),
              "time": canonical.format_time(moment), "key_id": key_id}
    signature = key.sign(canonical.head_bytes(**fields))  # type: ignore[arg-type]
    record = fields | {"signature": base64.b64encode(signature).decode()}
    return json.dumps({"head": record}, sort_keys=True, separators=(",", ":")).encode() + b"\n"


def bench_verify(directory: Path, n: int, batch: int) -> list[list[str]]:
    key = Ed25519PrivateKey.generate()
    public: Ed25519PublicKey = key.public_key()
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    key_id = canonical.key_id_of(raw)
    path = directory / "export.jsonl"
    start = time.perf_counter()
    with path.open("wb") as fh:
        fh.writelines(_synthetic_lines(n, batch, key, key_id))
    written = time.perf_counter() - start
    start = time.perf_counter()
    result = verify.verify_export(path, {key_id: public})
    seconds = time.perf_counter() - start
    assert result.ok and result.tree_size == n, result.summary()
    start = time.perf_counter()
    with path.open("rb") as fh:
        for line in fh:
            hashlib.sha256(line).digest()
    floor = time.perf_counter() - start
    size = path.stat().st_size
    return [[f"verify export ({size / 2**20:,.0f} MiB, {result.heads:,} heads; "
             f"written in {written:.0f} s)", f"{n:,}", f"{seconds:.2f} s",
             f"{n / seconds:,.0f} entries/s", f"{floor * 1e3:.0f} ms", f"{seconds / floor:,.0f}x"]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (a few seconds)")
    parser.add_argument("--entries", type=int, help="entries to append (default 20,000)")
    parser.add_argument("--batch", type=int, default=100, help="entries per transaction")
    parser.add_argument("--verify-entries", type=int, help="export size (default 1,000,000)")
    args = parser.parse_args()
    appends = args.entries or (2_000 if args.quick else 20_000)
    exported = args.verify_entries or (50_000 if args.quick else 1_000_000)
    with tempfile.TemporaryDirectory(prefix="govshare-bench-log-") as tmp:
        rows = bench_append(Path(tmp) / "data", appends, args.batch)
        rows += bench_verify(Path(tmp), exported, args.batch)
    print_table("Access log (floor: plain SHA-256 of the same bytes, measured in this run)",
                ["operation", "entries", "time", "rate", "SHA-256 floor", "vs floor"], rows)


if __name__ == "__main__":
    main()
