"""The master secret and its purpose keys (kernel/secrets.py): what a link reveals, rotation,
the key file, and production refusing to start without a secret."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from sqlmodel import select

from access import links
from kernel import db, identity, secrets
from kernel.db import utcnow
from kernel.problems import Forbidden
from kernel.settings import get_settings
from tests.log_support import export_with_keys, fill, start_log
from translog import keys, service, verify
from translog.models import TreeHead

PASSPHRASE = "correct horse battery staple"


def _use(monkeypatch: pytest.MonkeyPatch, **env: str | None) -> None:
    for name, value in env.items():
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    secrets.forget()


def _init_key_file(monkeypatch: pytest.MonkeyPatch, folder: Path) -> None:
    _use(monkeypatch, GOVSHARE_DATA_DIR=str(folder), GOVSHARE_KEY_PASSPHRASE=PASSPHRASE)
    # The production cost is 0.2 s per unwrap; these tests open many files.
    secrets.init_file(get_settings(), PASSPHRASE.encode(), n=2**12)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


# --- what a download link reveals -----------------------------------------------------------

def test_a_download_link_gives_no_offline_test_of_a_passphrase(
        data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Before: the link key was HMAC(passphrase, constant), so one link let anyone test
    passphrase guesses offline at HMAC speed. Now the link key is HKDF of a random 256-bit
    master secret. Even an attacker who holds a link *and the right passphrase* (but not the
    key file) can compute nothing that checks against the link."""
    _init_key_file(monkeypatch, tmp_path / "a")
    expires = utcnow() + timedelta(minutes=5)
    token = links.make_token(7, 3, expires)
    body, _, mac = token.partition(".")
    claims = json.loads(_unb64(body))
    assert set(claims) == {"d", "g", "k", "e"}  # ids, expiry and the key id: nothing else
    ring = secrets.keyring()
    assert claims["k"] == f"{ring.active_id}.v1"

    # The MAC is exactly HMAC under HKDF(master secret, purpose): the master decides it.
    link_key = secrets.derive(ring.masters[ring.active_id], secrets.DOWNLOAD_LINKS, 1)
    assert _b64(hmac.new(link_key, body.encode(), hashlib.sha256).digest()) == mac

    # Every key an attacker can derive from the passphrase alone fails to check the link:
    # the old scheme, HKDF with the passphrase as input, and the key id's derivation.
    guesses = [
        hmac.new(PASSPHRASE.encode(), b"govshare download links v1", hashlib.sha256).digest(),
        secrets.derive(hashlib.sha256(PASSPHRASE.encode()).digest(), secrets.DOWNLOAD_LINKS, 1),
        secrets.derive(PASSPHRASE.encode().ljust(32, b"\0")[:32], secrets.DOWNLOAD_LINKS, 1),
    ]
    for guess in guesses:
        assert _b64(hmac.new(guess, body.encode(), hashlib.sha256).digest()) != mac
    # The key id in the link is a function of the master secret, not of the passphrase:
    # another installation with the same passphrase has another master id and link key.
    _init_key_file(monkeypatch, tmp_path / "b")
    other = secrets.keyring()
    assert other.active_id != ring.active_id
    assert secrets.derive_key(secrets.DOWNLOAD_LINKS) != link_key
    with pytest.raises(Forbidden):  # and its links are not valid here, nor ours there
        links.check_token(token, 7, 3)
    # The passphrase only opens the key file, through scrypt (slow and memory-hard).
    doc = json.loads((tmp_path / "a" / "keys" / secrets.KEY_FILE).read_text())
    assert doc["kdf"]["name"] == "scrypt"
    assert _b64(ring.masters[ring.active_id]) not in json.dumps(doc)


def test_links_survive_a_purpose_key_rotation_until_they_expire(data_dir: Path) -> None:
    expires = utcnow() + timedelta(minutes=5)
    before = links.make_token(1, 2, expires)
    assert secrets.rotate_purpose(get_settings(), secrets.DOWNLOAD_LINKS) == 2
    after = links.make_token(1, 2, expires)
    assert json.loads(_unb64(after.split(".")[0]))["k"].endswith(".v2")
    links.check_token(before, 1, 2)  # made with v1, still checks
    links.check_token(after, 1, 2)
    with pytest.raises(Forbidden):
        links.check_token(after, 1, 3)  # another department
    forged = after.split(".")[0] + "." + _b64(os.urandom(32))
    with pytest.raises(Forbidden):
        links.check_token(forged, 1, 2)


# --- rotation of the master secret and the log ----------------------------------------------

def test_rotating_the_master_secret_keeps_old_log_heads_verifiable(
        data_dir: Path, tmp_path: Path) -> None:
    start_log()
    fill([3, 2])
    settings = get_settings()
    old_master = secrets.keyring().active_id
    new_master = secrets.rotate_master(settings)
    assert new_master != old_master
    keys._private_keys.clear()
    assert keys.rewrap_all(settings) == 1  # the signing key is re-sealed, not replaced
    assert secrets.drop_old_masters(settings) == [old_master]
    assert list(secrets.keyring().masters) == [new_master]
    keys._private_keys.clear()
    fill([4], seed=2)  # signs with the same key, opened under the new master secret
    with db.session_scope() as session:  # then a new signing key, for good measure
        service.rotate_key(session)
    fill([1], seed=3)
    export_path, keys_path = export_with_keys(tmp_path)
    result = verify.verify_export(export_path, verify.load_public_keys(keys_path))
    assert result.ok and result.tree_size == 11, result.detail
    with db.session_scope() as session:
        heads = list(session.exec(select(TreeHead).order_by(TreeHead.tree_size)))  # type: ignore[arg-type]
        document = keys.key_document(keys.all_keys(session))["keys"]
    assert len({h.key_id for h in heads}) == 2
    retired = [k for k in document if k["status"] == "retired"]
    assert len(retired) == 1 and retired[0]["created_at"] < retired[0]["retired_at"]


def test_data_sealed_under_an_unknown_master_says_what_to_keep(data_dir: Path) -> None:
    kid, sealed = secrets.seal(secrets.SOURCE_CREDENTIALS, b"db password", b"source 1")
    assert secrets.unseal(secrets.SOURCE_CREDENTIALS, kid, sealed, b"source 1") == b"db password"
    with pytest.raises(secrets.SecretsUnavailable, match="altered"):
        secrets.unseal(secrets.SOURCE_CREDENTIALS, kid, sealed, b"source 2")
    with pytest.raises(secrets.SecretsUnavailable, match="GOVSHARE_MASTER_SECRET"):
        secrets.unseal(secrets.SOURCE_CREDENTIALS, "m0000000000.v1", sealed, b"source 1")


def test_master_secrets_from_the_environment_rotate_by_listing_the_old_one_second(
        data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first, second = os.urandom(32), os.urandom(32)
    _use(monkeypatch, GOVSHARE_MASTER_SECRET=_b64(first))
    kid, sealed = secrets.seal(secrets.SOURCE_CREDENTIALS, b"x", b"a")
    assert secrets.status()["source"] == "environment"
    _use(monkeypatch, GOVSHARE_MASTER_SECRET=f"{_b64(second)},{_b64(first)}")
    assert secrets.current(secrets.SOURCE_CREDENTIALS).kid.startswith(secrets.master_id(second))
    assert secrets.unseal(secrets.SOURCE_CREDENTIALS, kid, sealed, b"a") == b"x"
    _use(monkeypatch, GOVSHARE_MASTER_SECRET="too-short")
    with pytest.raises(secrets.SecretsUnavailable, match="32 random bytes"):
        secrets.keyring()
    secret_file = data_dir.parent / "master.secret"
    secret_file.write_text(_b64(first) + "\n")
    _use(monkeypatch, GOVSHARE_MASTER_SECRET=None, GOVSHARE_MASTER_SECRET_FILE=str(secret_file))
    assert secrets.unseal(secrets.SOURCE_CREDENTIALS, kid, sealed, b"a") == b"x"


def test_the_key_file_needs_its_passphrase(tmp_path: Path, data_dir: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    _init_key_file(monkeypatch, tmp_path / "p")
    with pytest.raises(secrets.SecretsUnavailable, match="already exists"):
        secrets.init_file(get_settings(), PASSPHRASE.encode())
    _use(monkeypatch, GOVSHARE_KEY_PASSPHRASE="a wrong guess")
    with pytest.raises(secrets.SecretsUnavailable, match="not the passphrase"):
        secrets.keyring()
    _use(monkeypatch, GOVSHARE_KEY_PASSPHRASE=PASSPHRASE)
    master = secrets.keyring().active_id
    secrets.rewrap_file(get_settings(), b"a new passphrase")
    _use(monkeypatch, GOVSHARE_KEY_PASSPHRASE="a new passphrase")
    assert secrets.keyring().active_id == master
    assert (tmp_path / "p" / "keys" / secrets.KEY_FILE).stat().st_mode & 0o077 == 0


# --- production is the default --------------------------------------------------------------

def _govshare(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", "from govshare.cli import main; main()",
                           *args], capture_output=True, text=True, timeout=120, env=env,
                          check=False)


def test_the_server_refuses_to_start_in_production_without_a_secret(data_dir: Path) -> None:
    env = {k: v for k, v in os.environ.items()
           if k not in ("GOVSHARE_MODE", "GOVSHARE_KEY_PASSPHRASE", "GOVSHARE_MASTER_SECRET")}
    env["GOVSHARE_DATA_DIR"] = str(data_dir / "prod")
    refused = _govshare("serve", "--port", "1", env=env)  # port 1: never reached
    assert refused.returncode == 2, refused.stdout + refused.stderr
    said = " ".join(refused.stderr.split())
    assert "will not start" in said and "GOVSHARE_MASTER_SECRET" in said
    assert "GOVSHARE_MODE=development" in said
    assert not (data_dir / "prod" / "govshare.db").exists()  # nothing was touched

    # A passphrase and `keys init` is enough; status names keys, never a secret.
    env["GOVSHARE_KEY_PASSPHRASE"] = PASSPHRASE
    made = _govshare("keys", "init", env=env)
    assert made.returncode == 0, made.stderr
    status = _govshare("keys", "status", "--json", env=env)
    info = json.loads(status.stdout)
    assert info["mode"] == "production" and info["source"] == "file"
    key_file = json.loads((data_dir / "prod" / "keys" / secrets.KEY_FILE).read_text())
    for item in key_file["secrets"]:
        assert item["ciphertext"] not in status.stdout + made.stdout


def test_the_app_refuses_to_start_in_production_without_a_secret(
        data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from fastapi.testclient import TestClient

    from govshare.app import create_app

    _use(monkeypatch, GOVSHARE_MODE="production")
    with pytest.raises(RuntimeError, match="GOVSHARE_MASTER_SECRET"), \
            TestClient(create_app()):
        pass


def test_keys_from_before_the_master_secret_are_resealed(
        data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An installation upgraded from the passphrase scheme: its PEM signing key and its
    scrypt-sealed pseudonymisation keys still open (with the old passphrase), and re-sealing
    (`govshare keys init` / `rotate`) moves them under the master secret, same keys."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

    from access import pseudonym
    from access.models import PseudonymKey
    from translog import canonical
    from translog.models import LogKey

    _use(monkeypatch, GOVSHARE_KEY_PASSPHRASE="the old passphrase")
    start_log()
    settings = get_settings()
    private = Ed25519PrivateKey.generate()
    public = keys.raw_public(private)
    key_id = canonical.key_id_of(public)
    settings.keys_dir.mkdir(parents=True, exist_ok=True)
    keys.legacy_path(settings, key_id).write_bytes(private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"the old passphrase")))
    hmac_key, salt, nonce = os.urandom(32), os.urandom(16), os.urandom(12)
    kek = Scrypt(salt=salt, length=32, n=2**14, r=8, p=1).derive(b"the old passphrase")
    with db.session_scope() as session:
        dept = identity.create_department(session, code="GA", name_zh="市公安局",
                                          name_en="Public Security Bureau")
        assert dept.id == 1
        session.add(LogKey(key_id=key_id, public_key=public, created_at=utcnow()))
        session.add(PseudonymKey(department_id=1, salt=salt, nonce=nonce, ciphertext=AESGCM(
            kek).encrypt(nonce, hmac_key, b"govshare pseudonym key v1 department 1")))
    fill([2])  # signs with the legacy key
    with db.session_scope() as session:
        assert pseudonym.department_key(session, 1) == hmac_key

    keys._private_keys.clear()
    assert keys.rewrap_all(settings) == 1
    with db.session_scope() as session:
        assert pseudonym.rewrap_all(session) == 1
    assert not keys.legacy_path(settings, key_id).exists()
    assert keys.load_private_key(settings, key_id).private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
        serialization.NoEncryption()) == private.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
        serialization.NoEncryption())
    with db.session_scope() as session:
        row = session.get(PseudonymKey, 1)
        assert row is not None and row.kid is not None
        assert pseudonym.department_key(session, 1) == hmac_key
