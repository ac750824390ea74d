"""``govshare keys init|rotate|status``: the master secret and its purpose keys.

Never prints a secret, except ``init --print``, which makes one for the operator's secret
store and writes nothing. Re-sealing what is stored under derived keys lives here, in the
composition root, because it reaches into two contexts (the log's signing keys, the access
pipeline's pseudonymisation keys).
"""

from __future__ import annotations

import base64
import json
import os
import sys
from typing import Annotated

import typer
from rich.console import Console

from kernel import db, identity, secrets
from kernel.settings import get_settings

app = typer.Typer(help="The master secret and the keys derived from it (docs/security.md).",
                  no_args_is_help=True)
console = Console()
err = Console(stderr=True)


def _fail(message: str) -> None:
    err.print(f"[red]error:[/red] {message}")
    raise typer.Exit(2)


@app.command()
def init(print_secret: Annotated[bool, typer.Option(
            "--print", help="Print a new random master secret for GOVSHARE_MASTER_SECRET "
                            "(your secret store) and write nothing.")] = False) -> None:
    """Create the master key file, protected by GOVSHARE_KEY_PASSPHRASE through scrypt, and
    re-seal any keys from before the master secret."""
    if print_secret:
        secret = os.urandom(secrets.MASTER_BYTES)
        sys.stdout.write(base64.urlsafe_b64encode(secret).rstrip(b"=").decode() + "\n")
        return
    settings = get_settings()
    if settings.master_secret is not None or settings.master_secret_file is not None:
        _fail("GOVSHARE_MASTER_SECRET is set: the master secret comes from your secret store, "
              "so there is no key file to create.")
    if settings.key_passphrase is None:
        _fail("Set GOVSHARE_KEY_PASSPHRASE (a long passphrase kept out of the data folder) "
              "first: it protects the key file.")
    assert settings.key_passphrase is not None
    try:
        mid = secrets.init_file(settings, settings.key_passphrase.get_secret_value().encode())
    except secrets.SecretsUnavailable as exc:
        _fail(str(exc))
    console.print(f"created {settings.keys_dir / secrets.KEY_FILE} (master secret {mid})")
    _rewrap()


@app.command()
def rotate(purpose: Annotated[str | None, typer.Option(
               help=f"Rotate one purpose key only: {', '.join(secrets.PURPOSES)}.")] = None,
           rewrap_only: Annotated[bool, typer.Option(
               "--rewrap-only", help="Only re-seal stored keys under the active master secret "
                                     "(after changing GOVSHARE_MASTER_SECRET).")] = False,
           new_passphrase: Annotated[bool, typer.Option(
               "--new-passphrase", help="Re-wrap the key file under the passphrase in "
                                        "GOVSHARE_NEW_KEY_PASSPHRASE.")] = False,
           drop_old: Annotated[bool, typer.Option(
               "--drop-old", help="After re-sealing, forget the older master secrets.")] = False
           ) -> None:
    """Start a new master secret (default) or purpose key version, and re-seal what is stored
    under the old one. Old log heads stay verifiable: signing keys are re-sealed, not
    replaced (a new signing key is `govshare log rotate-key`)."""
    settings = get_settings()
    try:
        if new_passphrase:
            text = os.environ.get("GOVSHARE_NEW_KEY_PASSPHRASE")
            if not text:
                _fail("Set GOVSHARE_NEW_KEY_PASSPHRASE to the new passphrase.")
            assert text is not None
            secrets.rewrap_file(settings, text.encode())
            console.print("the key file is now protected by the new passphrase: set "
                          "GOVSHARE_KEY_PASSPHRASE to it and restart the servers")
            return
        if purpose is not None:
            version = secrets.rotate_purpose(settings, purpose)
            console.print(f"{purpose} key is now version {version}")
        elif not rewrap_only:
            console.print(f"new master secret {secrets.rotate_master(settings)}")
        _rewrap()
        if drop_old:
            dropped = secrets.drop_old_masters(settings)
            console.print(f"forgot {len(dropped)} older master secret(s)")
    except (secrets.SecretsUnavailable, ValueError) as exc:
        _fail(str(exc))
    console.print("restart the servers and workers so that they seal with the new key")


def _rewrap() -> None:
    from access import pseudonym
    from govshare.migrate import upgrade
    from translog import keys as log_keys

    settings = get_settings()
    upgrade()
    files = log_keys.rewrap_all(settings)
    with db.session_scope() as session:
        rows = pseudonym.rewrap_all(session)
        totps = identity.reseal_totp_all(session)
    console.print(f"re-sealed {files} log signing key(s), {rows} pseudonymisation key(s) and "
                  f"{totps} TOTP secret(s)")


@app.command()
def status(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Where the master secret comes from, key ids and versions (never a secret)."""
    try:
        info = secrets.status()
    except secrets.SecretsUnavailable as exc:
        _fail(str(exc))
    if as_json:
        sys.stdout.write(json.dumps(info, indent=2) + "\n")
        return
    console.print(f"mode: {info['mode']}; master secret from: {info['source']}")
    console.print(f"active master secret: {info['active_master']} "
                  f"({len(info['masters'])} held)")
    for purpose, kid in info["purposes"].items():
        console.print(f"  {purpose}: {kid}")
