"""Ed25519 tree-head signing keys: sealed key files plus a table every worker reads.

The private key lives in ``Settings.keys_dir`` as ``log-signing-<key id>.key``: the raw key
AES-GCM sealed under the ``log-signing-key`` purpose key (``kernel.secrets``, derived from the
master secret), with that purpose key's id, so a rotated master secret still opens older
files until ``govshare keys rotate`` re-seals them. The ``log_key`` table says which key is
active, so all workers sign with the same one. Retired keys keep their row: their public half
stays published with the range of time it signed for.

Files from before the master secret (``.pem``, PKCS#8 encrypted with GOVSHARE_KEY_PASSPHRASE)
are still read, and re-sealed by ``govshare keys init`` / ``rotate``.
"""

from __future__ import annotations

import base64
import json
import logging
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from sqlmodel import Session, col, select

from kernel import secrets, storage
from kernel.db import utcnow
from kernel.settings import Mode, Settings, get_settings
from translog import canonical, note, witnesses
from translog.models import LogKey

log = logging.getLogger("govshare")

_FORMAT = "govshare-log-signing-key-v1"
# The public development passphrase of the legacy PEM files (read only, for migration).
DEV_PASSPHRASE = secrets.DEV_PASSPHRASE
# Opening a key file on every commit would be wasted work; keys are immutable once written.
_private_keys: dict[tuple[Path, str], Ed25519PrivateKey] = {}


class KeyUnavailable(RuntimeError):
    """The signing key cannot be used; the message says what the operator should do."""


def key_path(settings: Settings, key_id: str) -> Path:
    return settings.keys_dir / f"log-signing-{key_id}.key"


def legacy_path(settings: Settings, key_id: str) -> Path:
    return settings.keys_dir / f"log-signing-{key_id}.pem"


def raw_public(private: Ed25519PrivateKey) -> bytes:
    return private.public_key().public_bytes(serialization.Encoding.Raw,
                                             serialization.PublicFormat.Raw)


def _aad(key_id: str) -> bytes:
    return f"govshare log signing key {key_id}".encode()


def _write_private_key(settings: Settings, private: Ed25519PrivateKey, key_id: str) -> None:
    """Sealed under the current purpose key, published atomically and durably, mode 0600."""
    raw = private.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                serialization.NoEncryption())
    try:
        kid, sealed = secrets.seal(secrets.LOG_SIGNING_KEY, raw, _aad(key_id))
    except secrets.SecretsUnavailable as exc:
        raise KeyUnavailable(str(exc)) from None
    doc = {"format": _FORMAT, "key_id": key_id, "kid": kid,
           "sealed": base64.b64encode(sealed).decode("ascii")}
    storage.publish_bytes(key_path(settings, key_id), json.dumps(doc).encode(), mode=0o600)


def load_private_key(settings: Settings, key_id: str) -> Ed25519PrivateKey:
    cache_key = (settings.keys_dir.resolve(), key_id)
    if cache_key not in _private_keys:
        _private_keys[cache_key] = _read_private_key(settings, key_id)
    return _private_keys[cache_key]


def _read_private_key(settings: Settings, key_id: str) -> Ed25519PrivateKey:
    path = key_path(settings, key_id)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        if legacy_path(settings, key_id).exists():
            return _read_legacy(settings, key_id)
        raise KeyUnavailable(f"The log signing key file {path} is missing. Restore it from backup"
                             ", or run `govshare log rotate-key` to start a new key.") from None
    try:
        raw = secrets.unseal(secrets.LOG_SIGNING_KEY, doc["kid"],
                             base64.b64decode(doc["sealed"]), _aad(key_id))
    except secrets.SecretsUnavailable as exc:
        raise KeyUnavailable(f"Cannot open {path}: {exc}") from None
    private = Ed25519PrivateKey.from_private_bytes(raw)
    if canonical.key_id_of(raw_public(private)) != key_id:
        raise KeyUnavailable(f"{path} does not hold the Ed25519 key {key_id}.")
    return private


def _read_legacy(settings: Settings, key_id: str) -> Ed25519PrivateKey:
    path = legacy_path(settings, key_id)
    if settings.key_passphrase is not None:
        passphrase = settings.key_passphrase.get_secret_value().encode()
    elif settings.mode is Mode.development:
        passphrase = DEV_PASSPHRASE.encode()
    else:
        raise KeyUnavailable(f"{path} predates the master secret: set the "
                             "GOVSHARE_KEY_PASSPHRASE it was written with and run "
                             "`govshare keys rotate --rewrap-only`.")
    try:
        private = serialization.load_pem_private_key(path.read_bytes(), passphrase)
    except (ValueError, TypeError):
        raise KeyUnavailable(f"Cannot decrypt {path}: check GOVSHARE_KEY_PASSPHRASE.") from None
    if not isinstance(private, Ed25519PrivateKey) \
            or canonical.key_id_of(raw_public(private)) != key_id:
        raise KeyUnavailable(f"{path} does not hold the Ed25519 key {key_id}.")
    return private


def rewrap_all(settings: Settings) -> int:
    """Re-seal every signing key file (new and legacy) under the current purpose key; returns
    how many. Called by ``govshare keys rotate`` after a new master secret or key version."""
    ids = {p.name[len("log-signing-"):-4] for p in settings.keys_dir.glob("log-signing-*.key")}
    ids |= {p.name[len("log-signing-"):-4] for p in settings.keys_dir.glob("log-signing-*.pem")}
    for key_id in sorted(ids):
        private = _read_private_key(settings, key_id)
        _write_private_key(settings, private, key_id)
        legacy = legacy_path(settings, key_id)
        if legacy.exists():
            legacy.unlink()
            storage.fsync_dir(legacy.parent)
    return len(ids)


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


def key_document(keys: list[LogKey], settings: Settings | None = None) -> dict[str, Any]:
    """What /.well-known/govshare-log-keys serves and `govshare log keys` writes.

    Besides each key (JSON heads, manifests), the checkpoint origin, each key's C2SP note
    verifier key (``vkey``), and the witnesses' verifier keys and quorum for receipts.
    """
    settings = settings or get_settings()
    origin = settings.checkpoint_origin
    return {
        "origin": origin,
        "keys": [
            {
                "key_id": k.key_id,
                "algorithm": k.algorithm,
                "public_key": base64.b64encode(k.public_key).decode("ascii"),
                "public_key_pem": public_pem(k.public_key),
                "vkey": note.Verifier(origin, note.ED25519, k.public_key).vkey,
                "created_at": canonical.format_time(k.created_at),
                "retired_at": canonical.format_time(k.retired_at) if k.retired_at else None,
                "status": "retired" if k.retired_at else "active",
            }
            for k in keys
        ],
        "witnesses": [w.verifier.vkey for w in witnesses.witnesses(settings)],
        "quorum": witnesses.quorum(settings),
    }
