"""Ed25519 tree-head signing keys: encrypted PEM files plus a table every worker reads.

The private key lives in ``Settings.keys_dir`` as PKCS#8 PEM encrypted with the passphrase
(``GOVSHARE_KEY_PASSPHRASE``); the ``log_key`` table says which key is active, so all workers
sign with the same one. Retired keys keep their row: their public half stays published.
"""

from __future__ import annotations

import base64
import logging
import os
import secrets
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from sqlmodel import Session, col, select

from kernel.db import utcnow
from kernel.settings import Mode, Settings
from translog import canonical
from translog.models import LogKey

log = logging.getLogger("govshare")

# Development only: a clearly named, publicly known passphrase, so a fresh checkout runs.
DEV_PASSPHRASE = "govshare-development-passphrase-NOT-SECRET"
_warned_dev_passphrase = False
# Decrypting a PEM on every commit would be wasted work; keys are immutable once written.
_private_keys: dict[tuple[Path, str], Ed25519PrivateKey] = {}


class KeyUnavailable(RuntimeError):
    """The signing key cannot be used; the message says what the operator should do."""


def passphrase(settings: Settings) -> bytes:
    global _warned_dev_passphrase
    if settings.key_passphrase is not None:
        return settings.key_passphrase.get_secret_value().encode()
    if settings.mode is Mode.production:
        raise KeyUnavailable("GOVSHARE_KEY_PASSPHRASE is required in production mode: it "
                             "protects the log signing key.")
    if not _warned_dev_passphrase:
        log.warning("GOVSHARE_KEY_PASSPHRASE is not set: the log signing key is encrypted with "
                    "the public development passphrase. Set it before real use.")
        _warned_dev_passphrase = True
    return DEV_PASSPHRASE.encode()


def key_path(settings: Settings, key_id: str) -> Path:
    return settings.keys_dir / f"log-signing-{key_id}.pem"


def raw_public(private: Ed25519PrivateKey) -> bytes:
    return private.public_key().public_bytes(serialization.Encoding.Raw,
                                             serialization.PublicFormat.Raw)


def _write_private_key(settings: Settings, private: Ed25519PrivateKey, key_id: str) -> None:
    """Write-then-rename, mode 0600: a crash leaves either no file or a whole one."""
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(passphrase(settings)),
    )
    settings.keys_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    target = key_path(settings, key_id)
    temp = target.with_name(f".{target.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(pem)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(temp, target)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


def load_private_key(settings: Settings, key_id: str) -> Ed25519PrivateKey:
    cache_key = (settings.keys_dir.resolve(), key_id)
    if cache_key not in _private_keys:
        _private_keys[cache_key] = _read_private_key(settings, key_id)
    return _private_keys[cache_key]


def _read_private_key(settings: Settings, key_id: str) -> Ed25519PrivateKey:
    path = key_path(settings, key_id)
    try:
        pem = path.read_bytes()
    except FileNotFoundError:
        raise KeyUnavailable(f"The log signing key file {path} is missing. Restore it from backup"
                             ", or run `govshare log rotate-key` to start a new key.") from None
    try:
        private = serialization.load_pem_private_key(pem, passphrase(settings))
    except (ValueError, TypeError):
        raise KeyUnavailable(f"Cannot decrypt {path}: check GOVSHARE_KEY_PASSPHRASE.") from None
    if not isinstance(private, Ed25519PrivateKey) \
            or canonical.key_id_of(raw_public(private)) != key_id:
        raise KeyUnavailable(f"{path} does not hold the Ed25519 key {key_id}.")
    return private


def active_key(session: Session) -> LogKey | None:
    return session.exec(select(LogKey).where(col(LogKey.retired_at).is_(None))).first()


def create_key(session: Session, settings: Settings) -> LogKey:
    """Generate and store a new key (the caller holds the log lock and retires the old one)."""
    private = Ed25519PrivateKey.generate()
    public = raw_public(private)
    key_id = canonical.key_id_of(public)
    _write_private_key(settings, private, key_id)
    _private_keys[(settings.keys_dir.resolve(), key_id)] = private
    row = LogKey(key_id=key_id, public_key=public, created_at=utcnow())
    session.add(row)
    session.flush()
    log.info("created log signing key %s", key_id)
    return row


def all_keys(session: Session) -> list[LogKey]:
    return list(session.exec(select(LogKey).order_by(col(LogKey.created_at))))


def public_pem(raw: bytes) -> str:
    return Ed25519PublicKey.from_public_bytes(raw).public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode("ascii")


def key_document(keys: list[LogKey]) -> dict[str, Any]:
    """What /.well-known/govshare-log-keys serves and `govshare log keys` writes."""
    return {
        "keys": [
            {
                "key_id": k.key_id,
                "algorithm": k.algorithm,
                "public_key": base64.b64encode(k.public_key).decode("ascii"),
                "public_key_pem": public_pem(k.public_key),
                "created_at": canonical.format_time(k.created_at),
                "retired_at": canonical.format_time(k.retired_at) if k.retired_at else None,
                "status": "retired" if k.retired_at else "active",
            }
            for k in keys
        ]
    }
