"""`govshare log …`: export, verify, keys, rotate-key.

``verify`` needs neither the database nor the server; the other commands open the metadata
store named by the settings (and bring its schema up to date first).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from kernel import storage

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
    file: Annotated[Path, typer.Argument(help="An export written by `govshare log export`, or "
                                         "a tile mirror directory (`govshare log mirror`).")],
    public_key: Annotated[Path, typer.Option(
        "--public-key", help="Trusted public keys: the output of `govshare log keys` (or of "
        "/.well-known/govshare-log-keys), or PEM 'PUBLIC KEY' blocks.")],
) -> None:
    """Recompute every hash and check every signature in FILE; no database or server needed."""
    from translog.verify import load_public_keys, verify_export
    from translog.verify_tiles import document_origin, verify_mirror

    try:
        keys = load_public_keys(public_key)
        result = verify_mirror(file, list(keys.values()), document_origin(public_key)) \
            if file.is_dir() else verify_export(file, keys)
    except (OSError, ValueError) as exc:
        typer.echo(f"Cannot verify: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(result.summary())
    if not result.ok:
        raise typer.Exit(1)


@app.command()
def mirror(
    url: Annotated[str, typer.Argument(help="The log's prefix, e.g. https://gov.example/")],
    directory: Annotated[Path, typer.Argument(help="Where to keep the mirror.")],
    token: Annotated[str | None, typer.Option(
        "--token", envvar="GOVSHARE_TOKEN", help="An auditor's API token: entry bundles say "
        "who did what, so only auditors may fetch them.")] = None,
) -> None:
    """Fetch the checkpoint and every tile it implies (C2SP tlog-tiles) into DIRECTORY; full
    tiles already there are kept, since they never change. Then: `govshare log verify DIR`."""
    import httpx

    from translog import note, tilepath

    headers = {"Authorization": f"Bearer {token}"} if token else {}
    fetched = 0
    with httpx.Client(base_url=url.rstrip("/"), headers=headers, timeout=60) as client:
        try:
            r = client.get("/checkpoint")
            r.raise_for_status()
            checkpoint = note.parse_checkpoint(note.parse_note(r.content).text)
            for tile in tilepath.tiles_for_size(checkpoint.size):
                target = directory / tile.path()
                if not tile.partial and target.exists():
                    continue
                got = client.get("/" + tile.path())
                got.raise_for_status()
                # atomic: a full tile that exists is trusted as whole (skipped next time)
                storage.publish_bytes(target, got.content)
                fetched += 1
        except (httpx.HTTPError, note.NoteError) as exc:
            typer.echo(f"Cannot mirror: {exc}", err=True)
            raise typer.Exit(2) from None
    # the checkpoint last: a mirror never names a size its tiles do not reach
    storage.publish_bytes(directory / "checkpoint", r.content)
    typer.echo(f"Mirrored tree size {checkpoint.size} ({fetched} tiles fetched) to {directory}")


@app.command("check-receipt")
def check_receipt(
    file: Annotated[Path, typer.Argument(help="A .tlog-proof receipt, or a delivery manifest "
                                         "document with its receipt (JSON).")],
    public_key: Annotated[Path, typer.Option(
        "--public-key", help="The key document: `govshare log keys` or "
        "/.well-known/govshare-log-keys (the log's keys, origin, witnesses and quorum).")],
    witness: Annotated[list[str] | None, typer.Option(
        "--witness", help="A witness verifier key you trust; repeat. Replaces the document's "
        "list: trust witnesses you chose, not the ones the log's operator names.")] = None,
    quorum: Annotated[int | None, typer.Option(
        "--quorum", min=0, help="Cosignatures required (default: the document's).")] = None,
) -> None:
    """Check a receipt offline: the entry, its inclusion proof, the log's signature and a quorum
    of witness cosignatures; for a manifest also its signature and that the log recorded
    exactly this manifest. No database or server needed."""
    from dataclasses import replace

    from translog import note, proofs

    try:
        trust = proofs.trust_from_document(json.loads(public_key.read_text(encoding="utf-8")))
        if witness:
            trust = replace(trust, witnesses=[note.parse_vkey(v) for v in witness])
        if quorum is not None:
            trust = replace(trust, quorum=quorum)
        checked = proofs.check_file(file.read_text(encoding="utf-8"), trust)
    except (OSError, ValueError, KeyError) as exc:  # NoteError is a ValueError
        typer.echo(f"FAILED: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(checked.summary())


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
        storage.publish_text(out, text)
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
