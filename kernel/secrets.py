"""Keys: one random master secret, and every purpose key derived from it with HKDF-SHA256.

The master secret is 32 random bytes, never a passphrase. It comes from, in this order:

1. the operator's secret store: ``GOVSHARE_MASTER_SECRET`` (base64url text) or
   ``GOVSHARE_MASTER_SECRET_FILE`` (a file holding that text, e.g. a systemd credential or a
   mounted secret). Several secrets may be listed, comma-separated, the first active: the
   others stay readable while data is re-wrapped (rotation);
2. the key file ``<data dir>/keys/master-key.json``, written by ``govshare keys init``: the
   secrets AES-256-GCM encrypted under a key that scrypt derives from
   ``GOVSHARE_KEY_PASSPHRASE``; scrypt is slow and memory-hard on purpose, and the file is the
   only thing the passphrase protects, so an attacker needs the file to test a guess;
3. in development mode only (``GOVSHARE_MODE=development``, which ``make run`` and the tests
   set), a key file created on first use and wrapped with a public development passphrase,
   with a warning. Production is the default mode, and without 1 or 2 nothing starts.

Each purpose key is ``HKDF(master, info="govshare/<purpose>/v<version>")``. Its key id
``<master id>.v<version>`` is stored or sent with whatever it protects (a sealed key, a link
token), so rotating the master secret (``govshare keys rotate``) or a purpose key (``govshare
keys rotate --purpose P``, which bumps the version in ``keys/key-versions.json``) leaves older
data readable: an old version is derived again on demand, and an old master secret stays in
the key ring until everything sealed under it has been re-wrapped. Nothing here ever prints
or logs a secret.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import os
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from kernel import storage
from kernel.settings import Mode, Settings, get_settings

log = logging.getLogger("govshare")

# Every purpose a key is derived for; a key for anything else is a programming error.
LOG_SIGNING_KEY = "log-signing-key"  # encrypts the transparency log's Ed25519 private keys
DOWNLOAD_LINKS = "download-links"  # MACs download-link tokens
PSEUDONYM_KEYS = "pseudonym-keys"  # encrypts each department's pseudonymisation key
SOURCE_CREDENTIALS = "source-credentials"  # encrypts credentials of pulled data sources
SESSIONS = "sessions"  # MACs server-issued session values
TOTP_SECRETS = "totp-secrets"  # encrypts local accounts' TOTP secrets (second factors)
PURPOSES = (LOG_SIGNING_KEY, DOWNLOAD_LINKS, PSEUDONYM_KEYS, SOURCE_CREDENTIALS, SESSIONS,
            TOTP_SECRETS)

MASTER_BYTES = 32
KEY_FILE = "master-key.json"
VERSIONS_FILE = "key-versions.json"
_FORMAT = "govshare-master-key-v1"
# Development only: a clearly named, publicly known passphrase, so a fresh checkout runs.
DEV_PASSPHRASE = "govshare-development-passphrase-NOT-SECRET"
# scrypt cost: n=2**16, r=8 (64 MiB, ~0.2 s) per unwrap, once per process. The development
# passphrase is public, so slowing its unwrap down would protect nothing.
SCRYPT_N, SCRYPT_N_DEV = 2**16, 2**12


class SecretsUnavailable(RuntimeError):
    """No usable master secret; the message says what the operator should set or run."""


@dataclass(frozen=True)
class PurposeKey:
    kid: str  # "<master id>.v<version>": stored with what the key protects
    key: bytes


@dataclass
class Keyring:
    masters: dict[str, bytes]  # master id → secret, the active one first
    source: str  # "environment", "file", "file (development passphrase)"
    stamp: tuple[Any, ...] = ()  # what the ring was loaded from, to notice a rotation
    versions: dict[str, int] = field(default_factory=dict)

    @property
    def active_id(self) -> str:
        return next(iter(self.masters))


def master_id(secret: bytes) -> str:
    """A public name for a master secret (an HKDF output: reveals nothing about it)."""
    return "m" + _hkdf(secret, b"govshare/master-id").hex()[:10]


def _hkdf(secret: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(secret)


def derive(master: bytes, purpose: str, version: int) -> bytes:
    if purpose not in PURPOSES:
        raise ValueError(f"unknown key purpose {purpose!r}")
    return _hkdf(master, f"govshare/{purpose}/v{version}".encode())


# --- the key ring of this process ------------------------------------------------------------

_lock = threading.Lock()
_rings: dict[Path, Keyring] = {}


def keyring(settings: Settings | None = None) -> Keyring:
    """The master secrets and purpose versions, loaded once and again when the key file or
    the versions file changes (another process rotated a key)."""
    settings = settings or get_settings()
    folder = settings.keys_dir.resolve()
    with _lock:
        ring = _rings.get(folder)
        if ring is None or ring.stamp != _stamp(settings):
            ring = _load(settings)
            ring.versions = _read_versions(settings)
            ring.stamp = _stamp(settings)  # after loading: it may have created the key file
            _rings[folder] = ring
        return ring


def forget() -> None:
    """Drop the cached key rings (tests; the CLI after a rotation)."""
    with _lock:
        _rings.clear()


def _stamp(settings: Settings) -> tuple[Any, ...]:
    def mtime(path: Path) -> int | None:
        try:
            return path.stat().st_mtime_ns
        except FileNotFoundError:
            return None
    env = settings.master_secret.get_secret_value() if settings.master_secret else None
    return (env, settings.master_secret_file, mtime(settings.keys_dir / KEY_FILE),
            mtime(settings.keys_dir / VERSIONS_FILE),
            mtime(settings.master_secret_file) if settings.master_secret_file else None)


def current(purpose: str, settings: Settings | None = None) -> PurposeKey:
    """The key to protect new data for ``purpose`` with, and its key id."""
    ring = keyring(settings)
    version = ring.versions.get(purpose, 1)
    return PurposeKey(f"{ring.active_id}.v{version}",
                      derive(ring.masters[ring.active_id], purpose, version))


def derive_key(purpose: str) -> bytes:
    """The current key for ``purpose`` (use ``current`` to store its key id with the data)."""
    return current(purpose).key


def key_for(purpose: str, kid: str, settings: Settings | None = None) -> bytes:
    """The key ``kid`` names, to read data protected with it (any version of a known master)."""
    master, _, version = kid.partition(".v")
    ring = keyring(settings)
    if master not in ring.masters or not version.isdigit():
        raise SecretsUnavailable(
            f"Data is protected by master secret {master}, which this server does not hold: "
            "keep it in GOVSHARE_MASTER_SECRET (after the active one) or in the key file until "
            "`govshare keys rotate` has re-wrapped everything.")
    return derive(ring.masters[master], purpose, int(version))


def seal(purpose: str, data: bytes, aad: bytes) -> tuple[str, bytes]:
    """(key id, nonce ‖ AES-GCM ciphertext) of ``data`` under the current ``purpose`` key,
    bound to ``aad`` (what it belongs to), so a sealed value cannot be moved elsewhere."""
    key = current(purpose)
    nonce = os.urandom(12)
    return key.kid, nonce + AESGCM(key.key).encrypt(nonce, data, aad)


def unseal(purpose: str, kid: str, sealed: bytes, aad: bytes) -> bytes:
    try:
        return AESGCM(key_for(purpose, kid)).decrypt(sealed[:12], sealed[12:], aad)
    except InvalidTag:
        raise SecretsUnavailable(
            f"A stored {purpose} value does not decrypt under key {kid}: it was altered or "
            "belongs to another installation.") from None


# A sealed value kept in one text column: "<key id>$<base64 of nonce ‖ ciphertext>". "$" never
# occurs in a key id or in base64, so the text is split unambiguously.
SEALED_TEXT_SEPARATOR = "$"


def seal_text(purpose: str, data: str, aad: bytes) -> str:
    """``seal`` as one storable text (key id and sealed bytes together)."""
    kid, sealed = seal(purpose, data.encode("utf-8"), aad)
    return kid + SEALED_TEXT_SEPARATOR + base64.b64encode(sealed).decode("ascii")


def is_sealed_text(stored: str) -> bool:
    return SEALED_TEXT_SEPARATOR in stored


def unseal_text(purpose: str, stored: str, aad: bytes) -> str:
    kid, _, sealed = stored.partition(SEALED_TEXT_SEPARATOR)
    return unseal(purpose, kid, base64.b64decode(sealed), aad).decode("utf-8")


# --- loading ---------------------------------------------------------------------------------

def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def parse_secrets(text: str) -> list[bytes]:
    """Comma-separated base64url master secrets of exactly 32 bytes each."""
    out = []
    for part in (p.strip() for p in text.split(",")):
        try:
            secret = _unb64(part)
        except ValueError:
            secret = b""
        if len(secret) != MASTER_BYTES:
            raise SecretsUnavailable(
                "GOVSHARE_MASTER_SECRET must be base64url text of 32 random bytes (several "
                "comma-separated while rotating); make one with `govshare keys init --print`.")
        out.append(secret)
    return out


def _load(settings: Settings) -> Keyring:
    if settings.master_secret is not None or settings.master_secret_file is not None:
        if settings.master_secret is not None:
            text = settings.master_secret.get_secret_value()
        else:
            assert settings.master_secret_file is not None
            try:
                text = settings.master_secret_file.read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise SecretsUnavailable(f"GOVSHARE_MASTER_SECRET_FILE cannot be read: "
                                         f"{exc.strerror}.") from None
        found = parse_secrets(text)
        return Keyring({master_id(s): s for s in found}, "environment")
    path = settings.keys_dir / KEY_FILE
    if path.exists():
        passphrase, dev = _passphrase(settings)
        masters = _unwrap(path, passphrase)
        return Keyring(masters, "file (development passphrase)" if dev else "file")
    if settings.mode is Mode.development:
        passphrase, dev = _passphrase(settings)
        with contextlib.suppress(FileExistsError):  # another process made it first: use theirs
            init_file(settings, passphrase, n=SCRYPT_N_DEV if dev else SCRYPT_N)
        return Keyring(_unwrap(path, passphrase),
                       "file (development passphrase)" if dev else "file")
    raise SecretsUnavailable(production_hint(settings))


def production_hint(settings: Settings) -> str:
    return (
        "No master secret is configured, and govshare runs in production mode by default. "
        "Either set GOVSHARE_MASTER_SECRET (or GOVSHARE_MASTER_SECRET_FILE) from your secret "
        "store, or set GOVSHARE_KEY_PASSPHRASE and run `govshare keys init` once to create "
        f"{settings.keys_dir / KEY_FILE}. For a local trial only, set "
        "GOVSHARE_MODE=development (docs/security.md, \"Keys\").")


_warned_dev = False


def _passphrase(settings: Settings) -> tuple[bytes, bool]:
    """(passphrase, is it the public development one)."""
    global _warned_dev
    if settings.key_passphrase is not None:
        return settings.key_passphrase.get_secret_value().encode(), False
    if settings.mode is not Mode.development:
        raise SecretsUnavailable(
            f"GOVSHARE_KEY_PASSPHRASE is required to open {settings.keys_dir / KEY_FILE} "
            "(or supply the master secret as GOVSHARE_MASTER_SECRET instead).")
    if not _warned_dev:
        log.warning("development mode: the master key file is protected by the public "
                    "development passphrase. Set GOVSHARE_KEY_PASSPHRASE or "
                    "GOVSHARE_MASTER_SECRET before real use.")
        _warned_dev = True
    return DEV_PASSPHRASE.encode(), True


def _kek(passphrase: bytes, kdf: dict[str, Any]) -> bytes:
    return Scrypt(salt=_unb64(kdf["salt"]), length=32, n=int(kdf["n"]), r=int(kdf["r"]),
                  p=int(kdf["p"])).derive(passphrase)


def _unwrap(path: Path, passphrase: bytes) -> dict[str, bytes]:
    doc = json.loads(path.read_text(encoding="utf-8"))
    if doc.get("format") != _FORMAT:
        raise SecretsUnavailable(f"{path} is not a govshare master key file.")
    kek = AESGCM(_kek(passphrase, doc["kdf"]))
    masters: dict[str, bytes] = {}
    for item in doc["secrets"]:
        try:
            secret = kek.decrypt(_unb64(item["nonce"]), _unb64(item["ciphertext"]),
                                 item["id"].encode())
        except InvalidTag:
            raise SecretsUnavailable(f"Cannot open {path}: GOVSHARE_KEY_PASSPHRASE is not the "
                                     "passphrase it was written with.") from None
        masters[item["id"]] = secret
    return masters


def _wrap(masters: dict[str, bytes], passphrase: bytes, n: int,
          created: dict[str, str]) -> bytes:
    kdf = {"name": "scrypt", "n": n, "r": 8, "p": 1, "salt": _b64(os.urandom(16))}
    kek = AESGCM(_kek(passphrase, kdf))
    items = []
    for mid, secret in masters.items():
        nonce = os.urandom(12)
        items.append({"id": mid, "created_at": created.get(mid) or _now(), "nonce": _b64(nonce),
                      "ciphertext": _b64(kek.encrypt(nonce, secret, mid.encode()))})
    doc = {"format": _FORMAT, "kdf": kdf, "active": next(iter(masters)), "secrets": items}
    return (json.dumps(doc, indent=2) + "\n").encode()


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _created(path: Path) -> dict[str, str]:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    return {i["id"]: i.get("created_at", "") for i in doc.get("secrets", [])}


# --- writing (govshare keys init / rotate) ---------------------------------------------------

def init_file(settings: Settings, passphrase: bytes, *, n: int = SCRYPT_N) -> str:
    """Create the key file with one new master secret; returns its id. Refuses to overwrite."""
    path = settings.keys_dir / KEY_FILE
    if path.exists():
        raise SecretsUnavailable(f"{path} already exists; `govshare keys rotate` adds a new "
                                 "master secret to it.")
    secret = os.urandom(MASTER_BYTES)
    mid = master_id(secret)
    storage.publish_bytes(path, _wrap({mid: secret}, passphrase, n, {}), mode=0o600,
                          exclusive=True)
    log.info("created master key file %s (master secret %s)", path, mid)
    return mid


def rotate_master(settings: Settings, *, keep_old: bool = True) -> str:
    """Add a new active master secret to the key file (the old ones stay, to read what is
    still sealed under them, unless ``keep_old`` is False); returns the new id."""
    if settings.master_secret is not None or settings.master_secret_file is not None:
        raise SecretsUnavailable(
            "The master secret comes from GOVSHARE_MASTER_SECRET: rotate it in your secret "
            "store (put a new secret first, keep the old one after a comma), restart, and run "
            "`govshare keys rotate --rewrap-only`.")
    ring = keyring(settings)
    passphrase, dev = _passphrase(settings)
    secret = os.urandom(MASTER_BYTES)
    masters = {master_id(secret): secret, **(ring.masters if keep_old else {})}
    path = settings.keys_dir / KEY_FILE
    storage.publish_bytes(path, _wrap(masters, passphrase, SCRYPT_N_DEV if dev else SCRYPT_N,
                                      _created(path)), mode=0o600)
    forget()
    return next(iter(masters))


def drop_old_masters(settings: Settings) -> list[str]:
    """Remove every master secret but the active one (after a re-wrap); returns their ids."""
    ring = keyring(settings)
    old = [m for m in ring.masters if m != ring.active_id]
    if old and ring.source != "environment":
        passphrase, dev = _passphrase(settings)
        path = settings.keys_dir / KEY_FILE
        storage.publish_bytes(path, _wrap({ring.active_id: ring.masters[ring.active_id]},
                                          passphrase, SCRYPT_N_DEV if dev else SCRYPT_N,
                                          _created(path)), mode=0o600)
        forget()
    return old


def rewrap_file(settings: Settings, new_passphrase: bytes) -> None:
    """Protect the key file with another passphrase (same master secrets)."""
    ring = keyring(settings)
    if ring.source == "environment":
        raise SecretsUnavailable("The master secret comes from the environment; there is no "
                                 "key file to re-wrap.")
    path = settings.keys_dir / KEY_FILE
    storage.publish_bytes(path, _wrap(ring.masters, new_passphrase, SCRYPT_N, _created(path)),
                          mode=0o600)
    forget()


def _read_versions(settings: Settings) -> dict[str, int]:
    try:
        doc = json.loads((settings.keys_dir / VERSIONS_FILE).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    return {p: int(v) for p, v in doc.get("versions", {}).items() if p in PURPOSES}


def rotate_purpose(settings: Settings, purpose: str) -> int:
    """Start a new version of one purpose key; returns it. Older versions still derive, so
    what they protect stays readable (a download link until it expires, a sealed value until
    re-wrapped)."""
    if purpose not in PURPOSES:
        raise ValueError(f"unknown key purpose {purpose!r}; one of: {', '.join(PURPOSES)}")
    versions = _read_versions(settings)
    versions[purpose] = versions.get(purpose, 1) + 1
    storage.publish_bytes(settings.keys_dir / VERSIONS_FILE,
                          (json.dumps({"versions": versions}, indent=2) + "\n").encode())
    forget()
    return versions[purpose]


def status(settings: Settings | None = None) -> dict[str, Any]:
    """What ``govshare keys status`` shows: ids, sources and versions, never a secret."""
    settings = settings or get_settings()
    ring = keyring(settings)
    return {"source": ring.source, "mode": settings.mode.value,
            "active_master": ring.active_id, "masters": list(ring.masters),
            "purposes": {p: f"{ring.active_id}.v{ring.versions.get(p, 1)}" for p in PURPOSES}}


def check(settings: Settings | None = None) -> str:
    """Load the key ring now (server start-up): raises ``SecretsUnavailable`` with what to
    set; returns where the master secret came from."""
    return keyring(settings).source
