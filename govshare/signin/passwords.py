"""Local accounts, for installations without an identity platform: argon2id password hashes
(argon2-cffi, its RFC 9106 low-memory profile) and optional TOTP second factors (pyotp)."""

from __future__ import annotations

import pyotp
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_HASHER = PasswordHasher()  # argon2id with argon2-cffi's maintained defaults
MIN_LENGTH = 10
# Verified against a fixed hash when the user does not exist, so that the time a refusal takes
# does not tell which user names exist.
_DUMMY = _HASHER.hash("govshare-no-such-user")


def hash_password(plain: str) -> str:
    if len(plain) < MIN_LENGTH:
        raise ValueError(f"at least {MIN_LENGTH} characters")
    return _HASHER.hash(plain)


def verify_password(stored: str | None, plain: str) -> bool:
    try:
        return _HASHER.verify(stored or _DUMMY, plain) and stored is not None
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(stored: str) -> bool:
    return _HASHER.check_needs_rehash(stored)


def new_totp_secret() -> str:
    return pyotp.random_base32()


def totp_uri(secret: str, username: str) -> str:
    """The otpauth:// URI an authenticator app imports (typed in by hand or as a QR code)."""
    return pyotp.TOTP(secret).provisioning_uri(name=username, issuer_name="govshare")


def verify_totp(secret: str, code: str) -> bool:
    """One 30-second step of clock drift either way is accepted."""
    code = code.strip().replace(" ", "")
    return code.isdigit() and pyotp.TOTP(secret).verify(code, valid_window=1)
