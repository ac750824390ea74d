"""Crash safety of a real server and its worker: SIGKILL at named points of registration
(server), delivery (masking included; in the worker, which produces every package) and log
append, and at a random moment under load; restart on the same data.

Each kill lands exactly where named: the server runs with ``GOVSHARE_CRASH_AT`` set
(govshare/crashpoints.py), the request's thread blocks there and signals the test, which then
kills the whole process from outside. After every restart the test checks that nothing is
half-visible, nothing acknowledged is lost and every Idempotency-Key retry completes the work
exactly once; at the end the exported access log verifies.

One server generation per kill (about 5 s of start-up each) keeps the whole run near 60 s.
"""

from __future__ import annotations

import contextlib
import json
import random
import socket
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlmodel import func, select
from typer.testing import CliRunner

from access.models import Application, ApplicationState, Delivery
from access.planning import deliveries_dir
from catalog.models import DataVersion, Resource
from govshare import cli
from kernel import crashpoints, db
from kernel.idempotency import HEADER, REPLAYED_HEADER, IdempotencyRecord
from kernel.identity import Role
from kernel.settings import get_settings
from tests.server_support import Server, Worker, make_world
from tests.test_access_support import PEOPLE_ITEMS, application, people_rows, to_csv
from translog import keys as log_keys
from translog.export import export_to_path
from translog.models import LogEntry, LogState

API = "/api/v1"


def _meta(name: str) -> str:
    return json.dumps({"name": name, "category": "101", "items": PEOPLE_ITEMS,
                       "sharing_type": "unconditional", "sharing_condition": "",
                       "update_cycle": "daily", "sharing_method": "file",
                       "security_level": "general"}, ensure_ascii=False)


DATA = to_csv(people_rows(300))


class Crashes:
    def __init__(self, tmp: Path, tokens: dict[tuple[str, Role], str]) -> None:
        self.dir = tmp / "crash"
        self.dir.mkdir()
        self.server = Server(tmp / "server.log", env={crashpoints.DIR_ENV: str(self.dir)})
        # The background jobs (the approval's delivery) run in a worker process of their own.
        self.worker = Worker(tmp / "worker.log", env={crashpoints.DIR_ENV: str(self.dir)},
                             concurrency=2)  # a quality run does not hold up the delivery
        self.tokens = tokens
        self.pending: list[threading.Thread] = []

    def h(self, dept: str, role: Role, key: str | None = None) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {self.tokens[(dept, role)]}"}
        return {**headers, HEADER: key} if key else headers

    def start(self, point: str = "") -> None:
        self.server.start({crashpoints.ENV: point} if point else {crashpoints.ENV: ""})

    def register(self, key: str, name: str = "人口基础信息") -> httpx.Response:
        return httpx.post(self.server.url + API + "/resources", timeout=120,
                          headers=self.h("GA", Role.publisher, key),
                          # the same shape many times: confirmed (catalog.similar)
                          data={"metadata": _meta(name), "confirm_duplicate": "true"},
                          files={"file": ("people.csv", DATA, "text/csv")})

    def in_background(self, call: Callable[[], Any]) -> None:
        """A request that will never get its answer (the server dies first)."""
        def run() -> None:
            with contextlib.suppress(httpx.HTTPError):
                call()
        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        self.pending.append(thread)

    def kill_at(self, point: str, timeout: float = 60, *, worker: bool = False) -> None:
        marker = self.dir / point
        deadline = time.monotonic() + timeout
        while not marker.exists():
            assert time.monotonic() < deadline, f"never reached {point}"
            time.sleep(0.05)
        (self.worker if worker else self.server).kill()
        marker.unlink()
        for thread in self.pending:
            thread.join(timeout=10)
        self.pending.clear()

    def get(self, path: str, dept: str = "SCJG", role: Role = Role.requester) -> Any:
        r = httpx.get(self.server.url + API + path, headers=self.h(dept, role), timeout=30)
        assert r.status_code == 200, r.text
        return r.json()


def _count(model: type) -> int:
    with db.session_scope(write=False) as session:
        return int(session.exec(select(func.count()).select_from(model)).one())


def assert_consistent() -> None:
    """Nothing half-visible: every committed row has its file, no partial file is where it
    could be served, every stored key names a thing that exists, every entry is signed."""
    settings = get_settings()
    with db.session_scope(write=False) as session:
        for resource in session.exec(select(Resource)):
            versions = session.exec(select(DataVersion).where(
                DataVersion.resource_id == resource.id)).all()
            assert resource.current_version == len(versions) >= 1, resource.code
            for v in versions:
                assert (settings.warehouse_dir / v.segment).is_file(), v.segment
        for d in session.exec(select(Delivery)):
            if d.path:
                assert (deliveries_dir() / d.path).is_file(), d.path
        for record in session.exec(select(IdempotencyRecord)):
            body = json.loads(record.body)
            if record.path == API + "/resources":
                assert session.exec(select(Resource).where(Resource.code == body["code"])).one()
            if record.path == API + "/applications":
                assert session.get(Application, body["id"]) is not None
        state = session.exec(select(LogState)).first()
        entries = session.exec(select(func.count()).select_from(LogEntry)).one()
        assert (state.tree_size if state else 0) == entries, "an entry without a signed head"
    root = deliveries_dir()
    if root.exists():
        for path in root.rglob("*"):
            if ".staging" not in path.parts:
                assert not path.name.endswith((".partial", ".tmp")), path


def _partial_upload(url: str, token: str) -> socket.socket:
    """Send the headers and half of a multipart body, then keep the connection open."""
    host, port = url.removeprefix("http://").split(":")
    boundary = "crashcrashcrash"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"metadata\"\r\n\r\n"
            f"{_meta('半截上传')}\r\n--{boundary}\r\nContent-Disposition: form-data; "
            f"name=\"file\"; filename=\"people.csv\"\r\nContent-Type: text/csv\r\n\r\n"
            ).encode() + DATA
    head = (f"POST {API}/resources HTTP/1.1\r\nHost: {host}\r\n"
            f"Authorization: Bearer {token}\r\n{HEADER}: mid-upload\r\n"
            f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
            f"Content-Length: {len(body) * 2}\r\n\r\n").encode()
    sock = socket.create_connection((host, int(port)))
    sock.sendall(head + body[: len(body) // 2])
    return sock


def _log_verifies(tmp: Path) -> None:
    export, keys = tmp / "log.jsonl", tmp / "keys.json"
    with db.session_scope() as session:
        export_to_path(session, export)
        keys.write_text(json.dumps(log_keys.key_document(log_keys.all_keys(session))))
    result = CliRunner().invoke(cli.app, ["log", "verify", str(export), "--public-key",
                                          str(keys)])
    assert result.exit_code == 0, result.output


@pytest.fixture
def crashes(data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Crashes:
    # The periodic scheduler would complete deliveries behind the test's back.
    monkeypatch.setenv("GOVSHARE_ACCESS_SCHEDULER_SECONDS", "0")
    # A killed worker's job is taken by the next one once its lease has run out.
    monkeypatch.setenv("GOVSHARE_JOBS_LEASE_SECONDS", "3")
    get_settings.cache_clear()
    return Crashes(tmp_path, make_world())


def test_sigkill_anywhere_loses_nothing_and_retries_complete_once(crashes: Crashes,
                                                                 tmp_path: Path) -> None:
    c = crashes
    try:
        # 1. Registration, killed mid-upload and (another request) with the upload staged,
        #    before the DuckDB load.
        c.start("catalog.staged")
        sock = _partial_upload(c.server.url, c.tokens[("GA", Role.publisher)])
        c.in_background(lambda: c.register("reg-1"))
        c.kill_at("catalog.staged")
        sock.close()
        # 2-4. The same registration retried (same key) and killed again: with the segment
        #    renamed into place, with its key record flushed, and in the log's commit hook
        #    with the tree head signed. Each time, nothing of it may be visible afterwards.
        for point in ["catalog.renamed", "idempotency.stored", "log.head_signed"]:
            c.start(point)
            assert_consistent()
            assert c.get("/resources")["total"] == 0
            c.in_background(lambda: c.register("reg-1"))
            c.kill_at(point)

        # 5. The retries complete, exactly once; then an application whose delivery (masking
        #    done, file written, not renamed) is killed in the worker after the 201 was sent.
        c.start()
        c.worker.start({crashpoints.ENV: "delivery.after_write"})
        assert_consistent()
        assert c.get("/resources")["total"] == 0
        first = c.register("reg-1")
        assert first.status_code == 201, first.text
        again = c.register("reg-1")
        assert again.status_code == 201 and again.headers[REPLAYED_HEADER] == "true"
        code = first.json()["code"]
        assert again.json()["code"] == code
        assert c.register("mid-upload", "半截上传").status_code == 201
        assert c.get("/resources")["total"] == 2
        apply = application(code, ["id_number", "name", "mobile", "district"])
        filed = httpx.post(c.server.url + API + "/applications", json=apply, timeout=60,
                           headers=c.h("SCJG", Role.requester, "app-1"))
        assert filed.status_code == 201, filed.text
        app_id = filed.json()["id"]
        c.kill_at("delivery.after_write", worker=True)  # the delivery job, in the worker
        c.server.kill()

        # 6. Acknowledged means committed: the application survived, still waiting for its
        #    delivery. The requester asks for it: 202 and the *same* job (still running on
        #    the dead worker's lease); a new worker takes it once that lease has run out and
        #    is killed between the file's rename and the commit.
        c.start()
        assert_consistent()
        assert c.get(f"/applications/{app_id}")["state"] == ApplicationState.approved.value
        assert c.get("/deliveries") == []
        asked = httpx.post(c.server.url + API + f"/applications/{app_id}/deliver", timeout=60,
                           headers=c.h("SCJG", Role.requester))
        assert asked.status_code == 202, asked.text
        status_path = asked.headers["location"].split(API, 1)[1]
        assert c.get(status_path)["job"] == asked.json()["job"]
        c.worker.start({crashpoints.ENV: "delivery.after_rename"})
        c.kill_at("delivery.after_rename", worker=True)
        assert_consistent()
        assert c.get("/deliveries") == []  # the renamed file has no row: never served
        assert c.get(status_path)["state"] in ("running", "queued")

        # 7. A worker finishes the job once the lease has run out, exactly once; the
        #    requester follows it to the delivery, and the application's retry is a replay.
        c.worker.start()
        deadline = time.monotonic() + 90
        while not (followed := c.get(status_path))["final"]:
            assert time.monotonic() < deadline, followed
            time.sleep(0.3)
        assert followed["state"] == "delivered", followed
        assert followed["attempts"] == 3  # killed after the write, killed after the rename
        assert_consistent()
        done = httpx.post(c.server.url + API + f"/applications/{app_id}/deliver", timeout=60,
                          headers=c.h("SCJG", Role.requester))
        assert done.status_code == 200, done.text  # the period's package: nothing queued
        assert done.json()["delivery"]["id"] == followed["delivery"]["id"]
        replay = httpx.post(c.server.url + API + "/applications", json=apply, timeout=60,
                            headers=c.h("SCJG", Role.requester, "app-1"))
        assert replay.status_code == 201 and replay.json()["id"] == app_id
        assert _count(Application) == 1 and len(c.get("/deliveries")) == 1
        assert c.get(f"/applications/{app_id}")["state"] == ApplicationState.delivered.value
        # The dead attempts' files are gone: the one package left is the delivery's.
        with db.session_scope(write=False) as session:
            (kept,) = session.exec(select(Delivery)).all()
        packages = [p for p in (deliveries_dir() / str(app_id)).iterdir()
                    if not p.name.endswith((".json", ".lock"))]
        assert packages == [deliveries_dir() / str(kept.path)], packages

        # 8. Random kills under load: registrations in flight, SIGKILL at a random moment.
        rng = random.Random(7)
        keys = [f"burst-{i}-{uuid.uuid4().hex[:6]}" for i in range(4)]
        for round_ in range(2):
            for i, key in enumerate(keys):
                c.in_background(lambda key=key, i=i: c.register(key, f"批量{i}"))
            time.sleep(rng.uniform(0.2, 1.5) if round_ == 0 else rng.uniform(0.05, 0.4))
            c.server.kill()
            for thread in c.pending:
                thread.join(timeout=10)
            c.pending.clear()
            c.start()
            assert_consistent()
        for _ in range(2):  # the first pass completes, the second replays
            for i, key in enumerate(keys):
                r = c.register(key, f"批量{i}")
                assert r.status_code == 201, r.text
        assert c.get("/resources")["total"] == 2 + len(keys) == _count(Resource)
        c.server.stop()
        assert_consistent()
        _log_verifies(tmp_path)
    finally:
        c.server.kill()
        c.worker.kill()
