"""`govshare log …`: export, verify, keys, rotate-key.

``verify`` needs neither the database nor the server; the other commands open the metadata
store named by the settings (and bring its schema up to date first).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(help="The signed access log: export it, verify an export, manage keys.",
                  no_args_is_help=True)


def _prepare_database() -> None:
    from kernel import runtime

    runtime.ready()  # migrate and wire subscribers, as the composition root defines it


@app.command()
def export(file: Annotated[Path, typer.Argument(help="Where to write the export (JSON lines).")]
           ) -> None:
    """Write every entry and signed tree head to FILE, for `govshare log verify`."""
    from kernel.db import session_scope
    from translog.export import export_to_path

    _prepare_database()
    with session_scope() as session:
        entries, heads = export_to_path(session, file)
    typer.echo(f"Exported {entries} entries and {heads} signed tree heads to {file}")


@app.command()
def verify(
    file: Annotated[Path, typer.Argument(help="An export written by `govshare log export`.")],
    public_key: Annotated[Path, typer.Option(
        "--public-key", help="Trusted public keys: the output of `govshare log keys` (or of "
        "/.well-known/govshare-log-keys), or PEM 'PUBLIC KEY' blocks.")],
) -> None:
    """Recompute every hash and check every signature in FILE; no database or server needed."""
    from translog.verify import load_public_keys, verify_export

    try:
        keys = load_public_keys(public_key)
        result = verify_export(file, keys)
    except (OSError, ValueError) as exc:
        typer.echo(f"Cannot verify: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(result.summary())
    if not result.ok:
        raise typer.Exit(1)


@app.command()
def keys(out: Annotated[Path | None, typer.Option(
        "--out", "-o", help="Write to this file instead of standard output.")] = None) -> None:
    """Print every signing key's id and public key, retired ones included (JSON).

    Creates the signing key if the log has none yet.
    """
    from kernel.db import session_scope
    from translog import keys as log_keys
    from translog import service

    _prepare_database()
    with session_scope() as session:
        service.ensure_key(session)
        document = log_keys.key_document(log_keys.all_keys(session))
    text = json.dumps(document, indent=2, ensure_ascii=False) + "\n"
    if out is None:
        typer.echo(text, nl=False)
    else:
        out.write_text(text, encoding="utf-8")
        typer.echo(f"Wrote {len(document['keys'])} public key(s) to {out}")


@app.command("rotate-key")
def rotate_key() -> None:
    """Start a new signing key and retire the current one (which stays published)."""
    from kernel.db import session_scope
    from translog import service

    _prepare_database()
    with session_scope() as session:
        new = service.rotate_key(session)
    typer.echo(f"New log signing key {new.key_id}; the previous key is retired but still "
               "published, so older tree heads keep verifying.")
