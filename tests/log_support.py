"""Helpers for the access-log tests: fill a log through the real service, export it."""

import json
import random
from pathlib import Path

from govshare.migrate import upgrade
from kernel import db
from kernel.events import Actor, Event, publish
from translog import export, keys, service

EVENT_TYPES = ["resource.registered", "resource.version_added", "application.submitted",
               "application.approved", "delivery.downloaded", "api.queried", "grant.revoked"]
SECRET = "11010119900307001X"  # a resident ID in every payload; must never reach the database


def start_log() -> None:
    upgrade()
    service.subscribe()


def random_event(rng: random.Random, n: int) -> Event:
    user = rng.randrange(1, 6)
    return Event(
        type=rng.choice(EVENT_TYPES),
        actor=Actor(user_id=user, department_id=user % 3 + 1),
        subjects={"resource": f"GS-101-{n:04d}", "application": f"A-{rng.randrange(999)}"},
        payload={"id_number": SECRET, "rows": rng.randrange(10**6), "share": rng.random()},
    )


def fill(batches: list[int], seed: int = 1) -> int:
    """Publish events in one transaction per batch; returns the number of entries."""
    rng = random.Random(seed)
    n = 0
    for size in batches:
        with db.session_scope() as session:
            for _ in range(size):
                publish(session, random_event(rng, n))
                n += 1
    return n


def export_with_keys(directory: Path) -> tuple[Path, Path]:
    """(export file, key document) as `govshare log export` and `govshare log keys` write them."""
    export_path, keys_path = directory / "log.jsonl", directory / "keys.json"
    with db.session_scope() as session:
        export.export_to_path(session, export_path)
        keys_path.write_text(json.dumps(keys.key_document(keys.all_keys(session))))
    return export_path, keys_path
