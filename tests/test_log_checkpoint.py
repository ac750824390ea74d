"""C2SP checkpoints, tiles and receipts, checked by our code and by Go's sumdb/note and
sumdb/tlog (an implementation we did not write), from a tile mirror of what the server served."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from kernel.identity import Role
from tests.conftest import World
from tests.log_support import fill
from translog import merkle, note, proofs, tilepath

ROOT = Path(__file__).resolve().parent.parent
GOPATH = Path("/usr/share/gocode")


def _log_vkey(api: TestClient) -> note.Verifier:
    doc = api.get("/.well-known/govshare-log-keys").json()
    active = [k for k in doc["keys"] if k["status"] == "active"]
    verifier = note.parse_vkey(active[0]["vkey"])
    assert verifier.name == doc["origin"] == "gov.example/govshare/440300"
    return verifier


def mirror(api: TestClient, world: World, into: Path) -> note.Checkpoint:
    """Fetch the checkpoint and every tile its size implies into a directory, as served."""
    r = api.get("/checkpoint")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    assert "no-cache" in r.headers["cache-control"]
    (into / "checkpoint").parent.mkdir(parents=True, exist_ok=True)
    (into / "checkpoint").write_bytes(r.content)
    checkpoint = note.parse_checkpoint(note.parse_note(r.content).text)
    auditor = world.headers("SJJ", Role.auditor)
    for tile in tilepath.tiles_for_size(checkpoint.size):
        r = api.get("/" + tile.path(), headers=auditor if tile.is_entries else {})
        assert r.status_code == 200, (tile.path(), r.text)
        assert "immutable" in r.headers["cache-control"]
        width = tile.width * (1 if tile.is_entries else tilepath.HASH_SIZE)
        assert tile.is_entries or len(r.content) == width
        target = into / tile.path()
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(r.content)
    return checkpoint


@pytest.fixture
def log_of_600(client: TestClient, world: World) -> TestClient:
    # 600 entries: two full level-0 tiles and a partial one, a partial level-1 tile of width 2
    fill([1, 255, 44, 300])
    return client


def test_checkpoint_is_a_signed_note_of_the_latest_head(log_of_600: TestClient,
                                                        world: World) -> None:
    api = log_of_600
    log_key = _log_vkey(api)
    body = api.get("/checkpoint").text
    _, checkpoint = note.open_checkpoint(body, log_key)
    head = api.get("/api/v1/log/tree-heads/latest",
                   headers=world.headers("GA", Role.requester)).json()
    assert checkpoint.size == head["tree_size"] and checkpoint.root_hash.hex() == head["root_hash"]
    lines = body.split("\n")
    assert lines[:3] == [log_key.name, str(checkpoint.size), note.b64(checkpoint.root_hash)]
    assert lines[4].startswith(f"\u2014 {log_key.name} ")
    # a changed size, root or signature no longer verifies
    for forged in (body.replace(f"\n{checkpoint.size}\n", f"\n{checkpoint.size + 1}\n"),
                   body.replace(lines[2], note.b64(bytes(32)))):
        with pytest.raises(note.NoteError):
            note.open_checkpoint(forged, log_key)


def test_tiles_rebuild_the_signed_root(log_of_600: TestClient, world: World,
                                       tmp_path: Path) -> None:
    checkpoint = mirror(log_of_600, world, tmp_path)
    assert checkpoint.size == 600
    leaves: list[bytes] = []
    for n in range(3):
        width = 256 if n < 2 else 88
        data = (tmp_path / tilepath.Tile(0, n, width).path()).read_bytes()
        bundle = tilepath.split_bundle(
            (tmp_path / tilepath.Tile(-1, n, width).path()).read_bytes())
        hashes = [data[i:i + 32] for i in range(0, len(data), 32)]
        assert hashes == [merkle.leaf_hash(e) for e in bundle]
        leaves += hashes
    assert merkle.MemoryTree(leaves).root() == checkpoint.root_hash
    level1 = (tmp_path / "tile/1/000.p/2").read_bytes()
    tree = merkle.MemoryTree(leaves)
    assert level1 == tree.lookup(8, 0) + tree.lookup(8, 1)


def test_tiles_refuse_bad_paths_and_unknown_tiles(log_of_600: TestClient, world: World) -> None:
    api = log_of_600
    for path in ("/tile/0/3", "/tile/0/002.p/89", "/tile/01/000", "/tile/0/x000/001",
                 "/tile/0/000.p/256", "/tile/64/000", "/tile/0/1"):
        r = api.get(path)
        assert r.status_code == 404, path
        assert r.headers["content-type"] == "application/problem+json"
    r = api.get("/tile/0/3", headers={"Accept-Language": "zh-CN"})
    assert r.json()["detail"].startswith("无此瓦片")
    assert api.get("/tile/entries/000").status_code == 401  # entries say who did what
    r = api.get("/tile/entries/000", headers=world.headers("GA", Role.publisher))
    assert r.status_code == 403
    # a narrower partial tile of existing hashes is a prefix, hence still immutable
    assert api.get("/tile/0/002.p/5").content == api.get("/tile/0/002.p/88").content[:160]


def test_tile_paths_follow_the_spec() -> None:
    assert tilepath.encode_index(1234067) == "x001/x234/067"
    assert tilepath.parse("0/x001/x234/067") == tilepath.Tile(0, 1234067)
    assert tilepath.parse("entries/x001/002.p/7") == tilepath.Tile(-1, 1002, 7)
    assert tilepath.Tile(2, 5, 17).path() == "tile/2/005.p/17"
    sizes = {t.level: t for t in tilepath.tiles_for_size(70_000) if t.partial}
    # the spec's example: partial level-0 width 112, level-1 width 17, level-2 width 1
    assert (sizes[0].width, sizes[1].width, sizes[2].width) == (112, 17, 1)
    assert [t for t in tilepath.tiles_for_size(256) if t.level == 1] == [tilepath.Tile(1, 0, 1)]


def test_receipt_verifies_offline_and_names_its_entry(log_of_600: TestClient,
                                                      world: World) -> None:
    api = log_of_600
    log_key = _log_vkey(api)
    r = api.get("/api/v1/log/receipts/137", headers=world.headers("SJJ", Role.auditor))
    assert r.status_code == 200, r.text
    checked = proofs.check(r.text, [log_key], [], 0)
    assert checked.entry["seq"] == 137 and checked.checkpoint.size == 600
    tampered = r.text.replace("index 137", "index 138")
    with pytest.raises(note.NoteError):
        proofs.check(tampered, [log_key], [], 0)
    # a receipt is for the entry's actor, their department and auditors
    r = api.get("/api/v1/log/receipts/137", headers=world.headers("GA", Role.requester))
    assert r.status_code in (200, 403)


def _go_env(tmp: Path) -> dict[str, str] | None:
    go = shutil.which("go")
    if go is None or not (GOPATH / "src/golang.org/x/mod/sumdb/tlog").is_dir():
        return None
    return {**os.environ, "GO111MODULE": "off", "GOPATH": str(GOPATH), "GOFLAGS": "",
            "GOPROXY": "off", "GOCACHE": str(tmp / "gocache"), "HOME": str(tmp)}


def test_go_sumdb_verifies_checkpoint_tiles_and_receipt(log_of_600: TestClient, world: World,
                                                         tmp_path: Path) -> None:
    env = _go_env(tmp_path)
    if env is None:
        pytest.skip("Go or golang.org/x/mod is not installed (Debian: golang-go "
                    "golang-golang-x-mod-dev; `make test` installs them via .ci/ensure-go)")
    api = log_of_600
    mirror(api, world, tmp_path / "mirror")
    receipt = api.get("/api/v1/log/receipts/300", headers=world.headers("SJJ", Role.auditor))
    (tmp_path / "receipt.tlog-proof").write_text(receipt.text)
    vkey = _log_vkey(api).vkey
    run = subprocess.run(["go", "run", str(ROOT / "tests/gocheck/main.go"),
                          str(tmp_path / "mirror"), vkey, str(tmp_path / "receipt.tlog-proof")],
                         env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "OK: gov.example/govshare/440300 size 600" in run.stdout
    # the same checker must fail on a tile that lies
    tile = tmp_path / "mirror/tile/0/001"
    data = bytearray(tile.read_bytes())
    data[40] ^= 1
    tile.write_bytes(bytes(data))
    run = subprocess.run(["go", "run", str(ROOT / "tests/gocheck/main.go"),
                          str(tmp_path / "mirror"), vkey, str(tmp_path / "receipt.tlog-proof")],
                         env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 1 and "FAIL" in run.stderr


def test_log_verify_reads_a_tile_mirror(log_of_600: TestClient, world: World,
                                        tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from translog.cli import app as log_cli

    api = log_of_600
    mirror(api, world, tmp_path / "m")
    (tmp_path / "keys.json").write_text(api.get("/.well-known/govshare-log-keys").text)

    def verify() -> tuple[int, str]:
        result = CliRunner().invoke(log_cli, ["verify", str(tmp_path / "m"), "--public-key",
                                              str(tmp_path / "keys.json")])
        return result.exit_code, result.output

    status, out = verify()
    assert status == 0 and out.startswith("OK: tree size 600"), out
    # an entry changed inside a bundle
    bundle = tmp_path / "m/tile/entries/001"
    original = bundle.read_bytes()
    bundle.write_bytes(original.replace(b'"kind":"user"', b'"kind":"USER"', 1))
    status, out = verify()
    assert status == 1 and "entry 256 is not a canonical entry" in out
    bundle.write_bytes(original)
    # a hash changed in the level-1 tile (the leaves still match the root: only the tile lies)
    tile = tmp_path / "m/tile/1/000.p/2"
    tile.write_bytes(bytes(32) + tile.read_bytes()[32:])
    status, out = verify()
    assert status == 1 and "tile/1/000.p/2: hash 0 differs" in out
    tile.unlink()
    status, out = verify()
    assert status == 1 and "lacks tile/1/000.p/2" in out


def test_mirror_command_copies_a_real_server(data_dir: Path, tmp_path: Path) -> None:
    """`govshare log mirror` against uvicorn serving the log, then `govshare log verify`."""
    from typer.testing import CliRunner

    from tests.server_support import Server, make_world
    from translog import service
    from translog.cli import app as log_cli

    tokens = make_world()
    service.subscribe()
    fill([300])
    server = Server(tmp_path / "server.log",
                    env={"GOVSHARE_QUALITY_POLL_SECONDS": "0",
                         "GOVSHARE_QUALITY_SCHEDULE_MINUTES": "0",
                         "GOVSHARE_ACCESS_SCHEDULER_SECONDS": "0"})
    server.start()
    try:
        keys = tmp_path / "keys.json"
        keys.write_text(httpx.get(server.url + "/.well-known/govshare-log-keys").text)
        runner = CliRunner()
        target = tmp_path / "mirror"
        refused = runner.invoke(log_cli, ["mirror", server.url, str(target)])
        assert refused.exit_code == 2 and "401" in refused.output  # entry bundles: auditors
        token = tokens[("SJJ", Role.auditor)]
        done = runner.invoke(log_cli, ["mirror", server.url, str(target), "--token", token])
        assert done.exit_code == 0, done.output
        fill([1])  # the next mirror keeps the full tiles and fetches only the partial ones
        again = runner.invoke(log_cli, ["mirror", server.url, str(target), "--token", token])
        assert again.exit_code == 0 and "(3 tiles fetched)" in again.output, again.output
        checked = runner.invoke(log_cli, ["verify", str(target), "--public-key", str(keys)])
        assert checked.exit_code == 0 and "tree size 301" in checked.output, checked.output
    finally:
        server.stop()
