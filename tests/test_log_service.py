"""The DB-backed log: batching and signing, rollbacks, concurrency, privacy, keys and rotation."""

import base64
import hashlib
import json
import logging
import random
import stat
import threading
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import func
from sqlmodel import Session, col, select

from kernel import db, secrets
from kernel.events import Actor, Event, publish
from kernel.settings import get_settings
from tests.log_support import SECRET, export_with_keys, fill, random_event, start_log
from tests.test_log_merkle import mth
from translog import canonical, keys, service, tree, verify
from translog.models import LogEntry, LogKey, TreeHead


@pytest.fixture
def log(data_dir: Path) -> Path:
    start_log()
    return data_dir


def _count(session: Session, model: type[LogEntry] | type[TreeHead]) -> int:
    return session.exec(select(func.count()).select_from(model)).one()


def _verified(tmp_path: Path) -> verify.Result:
    export_path, keys_path = export_with_keys(tmp_path)
    return verify.verify_export(export_path, verify.load_public_keys(keys_path))


def test_each_transaction_signs_exactly_one_head(log: Path, tmp_path: Path) -> None:
    fill([5, 1, 30])
    with db.session_scope() as session:
        heads = session.exec(select(TreeHead).order_by(col(TreeHead.tree_size))).all()
        assert [h.tree_size for h in heads] == [5, 6, 36]
        assert _count(session, LogEntry) == 36
        for head in heads:
            assert head.root_hash == tree.root(session, head.tree_size)
    assert _verified(tmp_path).ok


def test_db_roots_match_the_recursive_definition_for_1_to_300_entries(log: Path) -> None:
    rng = random.Random(5)
    fill([rng.randrange(1, 25) for _ in range(40)])
    with db.session_scope() as session:
        rows = session.exec(select(LogEntry).order_by(col(LogEntry.seq)).limit(300)).all()
        leaves = [canonical.entry_bytes(service.entry_object(r)) for r in rows]
        assert len(leaves) == 300
        for size in range(1, 301):
            assert tree.root(session, size) == mth(leaves[:size]), size


def test_a_rolled_back_transaction_leaves_nothing(log: Path, tmp_path: Path) -> None:
    fill([3])
    with pytest.raises(RuntimeError), db.session_scope() as session:
        publish(session, random_event(random.Random(1), 99))
        raise RuntimeError("the service failed after publishing")
    fill([2])
    with db.session_scope() as session:
        assert session.exec(select(col(LogEntry.seq))).all() == [0, 1, 2, 3, 4]
        assert [h.tree_size for h in session.exec(select(TreeHead))] == [3, 5]
    assert _verified(tmp_path).ok


def test_savepoints_keep_the_sequence_contiguous(log: Path, tmp_path: Path) -> None:
    rng = random.Random(2)
    with db.session_scope() as session:
        publish(session, random_event(rng, 0))
        nested = session.begin_nested()
        publish(session, random_event(rng, 1))
        nested.rollback()
        publish(session, random_event(rng, 2))
        with session.begin_nested():  # a released savepoint is a commit point: it signs
            publish(session, random_event(rng, 3))
        publish(session, random_event(rng, 4))
    with db.session_scope() as session:
        assert session.exec(select(col(LogEntry.seq))).all() == [0, 1, 2, 3]
        assert [h.tree_size for h in session.exec(select(TreeHead))] == [3, 4]
    assert _verified(tmp_path).ok


def test_concurrent_writers_are_serialised_by_the_database(log: Path, tmp_path: Path) -> None:
    errors: list[BaseException] = []

    def writer(seed: int) -> None:
        try:
            fill([3] * 8, seed=seed)
        except BaseException as exc:  # surfaced by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    result = _verified(tmp_path)
    assert result.ok and result.tree_size == 96 and result.heads == 32


def test_payloads_are_digested_never_stored(log: Path, tmp_path: Path) -> None:
    fill([20])
    export_path, _ = export_with_keys(tmp_path)
    db.reset_engines()  # checkpoint the WAL so the main file holds everything
    stored = b"".join(p.read_bytes() for p in log.glob("govshare.db*"))
    assert SECRET.encode() not in stored
    assert SECRET.encode() not in export_path.read_bytes()
    with db.session_scope() as session:
        row = session.exec(select(LogEntry)).first()
        assert row is not None and len(row.payload_sha256) == 64


def test_signing_key_is_sealed_private_and_identified(log: Path) -> None:
    fill([1])
    with db.session_scope() as session:
        key = session.exec(select(LogKey)).one()
    path = keys.key_path(get_settings(), key.key_id)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    doc = json.loads(path.read_text())
    current = secrets.current(secrets.LOG_SIGNING_KEY)
    assert doc["kid"] == current.kid and doc["key_id"] == key.key_id
    sealed = base64.b64decode(doc["sealed"])
    raw_private = AESGCM(current.key).decrypt(sealed[:12], sealed[12:],
                                              f"govshare log signing key {key.key_id}".encode())
    private = Ed25519PrivateKey.from_private_bytes(raw_private)
    raw = private.public_key().public_bytes(serialization.Encoding.Raw,
                                            serialization.PublicFormat.Raw)
    assert raw == key.public_key
    assert key.key_id == canonical.key_id_of(raw) == hashlib.sha256(raw).hexdigest()[:16]
    # Sealed to its key id: the same bytes under another key's name do not open.
    other = keys.key_path(get_settings(), "0" * 16)
    other.write_text(json.dumps(doc | {"key_id": "0" * 16}))
    with pytest.raises(keys.KeyUnavailable, match="altered"):
        keys.load_private_key(get_settings(), "0" * 16)


def test_development_mode_without_passphrase_uses_the_named_default(
        log: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(secrets, "_warned_dev", False)
    with caplog.at_level(logging.WARNING, logger="govshare"):
        fill([1])
    assert "development passphrase" in caplog.text
    assert secrets.status()["source"] == "file (development passphrase)"


def test_production_mode_without_a_master_secret_refuses_to_sign(
        log: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GOVSHARE_MODE", "production")
    get_settings.cache_clear()
    secrets.forget()
    with pytest.raises(keys.KeyUnavailable, match="GOVSHARE_MASTER_SECRET"):
        fill([1])
    with db.session_scope() as session:
        assert _count(session, LogEntry) == 0  # nothing committed unsigned


def test_a_missing_key_file_says_how_to_recover(log: Path) -> None:
    fill([1])
    with db.session_scope() as session:
        key_id = session.exec(select(LogKey)).one().key_id
    keys.key_path(get_settings(), key_id).unlink()
    keys._private_keys.clear()
    with pytest.raises(keys.KeyUnavailable, match="rotate-key"):
        fill([1])


def test_key_rotation_keeps_old_heads_verifiable(log: Path, tmp_path: Path) -> None:
    fill([4, 4])
    with db.session_scope() as session:
        old = service.ensure_key(session).key_id
        new = service.rotate_key(session).key_id
    fill([3])
    with db.session_scope() as session:
        heads = {h.tree_size: h.key_id for h in session.exec(select(TreeHead))}
        rotation = session.exec(select(LogEntry).where(
            LogEntry.event_type == "log.key_rotated")).one()
        published = keys.key_document(keys.all_keys(session))["keys"]
    assert heads == {4: old, 8: old, 9: new, 12: new}
    assert rotation.seq == 8 and rotation.subjects == {"key": new, "previous_key": old}
    assert {(k["key_id"], k["status"]) for k in published} == {(old, "retired"), (new, "active")}

    export_path, keys_path = export_with_keys(tmp_path)
    trusted = verify.load_public_keys(keys_path)
    result = verify.verify_export(export_path, trusted)
    assert result.ok and result.tree_size == 12 and result.heads == 4
    only_new = {new: trusted[new]}
    refused = verify.verify_export(export_path, only_new)
    assert refused.problem == verify.UNKNOWN_KEY and old in refused.detail


def test_direct_append_without_a_subscriber(log: Path, tmp_path: Path) -> None:
    with db.session_scope() as session:
        seq = service.append(session, Event("log.checked", Actor(None, None, "system"), {}))
        row = session.get(LogEntry, seq)  # visible at once inside the transaction
        assert seq == 0 and row is not None and row.actor_kind == "system"
    with db.session_scope() as session:
        head = service.latest_head(session)
        row = session.exec(select(LogEntry)).one()
        assert head.tree_size == 1 and head.root_hash == service.leaf_hash(row)
    assert _verified(tmp_path).ok


def test_cli_keys_rotate_export_and_verify(log: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from translog.cli import app

    runner = CliRunner()
    keys_file, export_file = tmp_path / "keys.json", tmp_path / "log.jsonl"
    assert runner.invoke(app, ["keys", "--out", str(keys_file)]).exit_code == 0  # creates it
    fill([3, 2])
    rotated = runner.invoke(app, ["rotate-key"])
    assert rotated.exit_code == 0 and "still published" in rotated.output
    fill([4])
    out = runner.invoke(app, ["export", str(export_file)])
    assert out.exit_code == 0 and "10 entries and 4 signed tree heads" in out.output
    stale = runner.invoke(app, ["verify", str(export_file), "--public-key", str(keys_file)])
    assert stale.exit_code == 1 and "unknown key" in stale.output  # the file predates rotation
    assert runner.invoke(app, ["keys", "--out", str(keys_file)]).exit_code == 0
    ok = runner.invoke(app, ["verify", str(export_file), "--public-key", str(keys_file)])
    assert ok.exit_code == 0 and ok.output.startswith("OK: tree size 10"), ok.output
