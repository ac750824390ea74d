"""A signed tree head, once served, is never contradicted after a crash.

A real server takes writes (each signs a new head) from a thread while the test fetches the
latest head and SIGKILLs the server the moment it has it; writes are in flight at the kill.
After the restart the head served before the kill must still be the head at its size (same
root, same signature), and the heads signed afterwards must prove consistent with it: the log
never signs a different root at a size someone has seen (which would look exactly like a
fork).
SIGKILL leaves the operating system's page cache intact, so this guards the ordering (head
committed before it is served, nothing rolled back at restart); surviving a power loss as
well is what ``synchronous=FULL`` adds (kernel/db.py), checked below as the pragma in force.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx
import pytest

from kernel import db
from kernel.identity import Role
from tests.server_support import Server, make_world
from translog import merkle

API = "/api/v1"


def _writer(server: Server, token: str, stop: threading.Event) -> None:
    n = 0
    with httpx.Client(base_url=server.url, timeout=5,
                      headers={"Authorization": f"Bearer {token}"}) as http:
        while not stop.is_set():
            n += 1
            try:  # each issued token is a logged admin action: a new signed head
                http.post(API + "/users/ga-requester/tokens", json={"name": f"t{n}", "days": 1})
            except httpx.HTTPError:
                return  # the server was killed under us


def test_a_served_head_is_never_contradicted_after_sigkill(data_dir: Path,
                                                           tmp_path: Path) -> None:
    tokens = make_world()
    admin, reader = tokens[("GA", Role.admin)], tokens[("GA", Role.requester)]
    server = Server(tmp_path / "server.log")
    try:
        server.start()
        stop = threading.Event()
        writer = threading.Thread(target=_writer, args=(server, admin, stop))
        writer.start()
        auth = {"Authorization": f"Bearer {reader}"}
        seen: dict[str, object] = {}
        for _ in range(500):  # until a head that is not the first is served
            seen = httpx.get(server.url + API + "/log/tree-heads/latest", headers=auth,
                             timeout=5).json()
            if int(str(seen.get("tree_size", 0))) > 1:
                break
            time.sleep(0.01)
        server.kill()  # right after the head left the server, writes still in flight
        stop.set()
        writer.join(timeout=30)
        size = int(str(seen["tree_size"]))

        server.start()
        with httpx.Client(base_url=server.url, timeout=10) as http:
            again = http.get(API + f"/log/tree-heads/{size}", headers=auth).json()
            assert again == seen, f"the log signed a different head at size {size}"
            for n in range(3):  # the log goes on from what it had acknowledged
                issued = http.post(API + "/users/ga-requester/tokens", json={
                    "name": f"after{n}", "days": 1}, headers={"Authorization": f"Bearer {admin}"})
                assert issued.status_code == 201, issued.text
            latest = http.get(API + "/log/tree-heads/latest", headers=auth).json()
            proof = http.get(API + "/log/proofs/consistency", params={"first": size},
                             headers=auth).json()
        assert latest["tree_size"] >= size + 3
        assert merkle.verify_consistency(
            size, latest["tree_size"], bytes.fromhex(str(seen["root_hash"])),
            bytes.fromhex(latest["root_hash"]), [bytes.fromhex(h) for h in proof["proof"]])
    finally:
        server.stop()


def test_sqlite_commits_are_synced(data_dir: Path) -> None:
    if not db.get_engine().url.drivername.startswith("sqlite"):
        pytest.skip("SQLite only")
    with db.get_engine(write=True).connect() as con:
        # 2 = FULL: the WAL is fsynced at every commit, not only at checkpoints.
        assert con.exec_driver_sql("PRAGMA synchronous").scalar() == 2
