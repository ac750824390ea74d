"""`govshare witness …`: run a C2SP witness (``translog.witness``) for one or more logs.

Needs no govshare database or settings: a witness is run by someone else (a department, the
audit office, a neighbouring city) to keep the log's operator honest.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(help="A witness: cosigns the log's checkpoints, refuses contradicting ones.",
                  no_args_is_help=True)
DataDir = Annotated[Path, typer.Option("--data-dir", help="The witness's own directory: its "
                                       "key, the last checkpoint per log, evidence.")]
Name = Annotated[str, typer.Option("--name", help="The witness's key name, a schema-less URL "
                                   "such as audit.example/witness.")]


@app.command()
def key(data_dir: DataDir, name: Name) -> None:
    """Print the witness's verifier key (creating its key on first use): give it to the log's
    operator for GOVSHARE_LOG_WITNESSES, and to whoever checks receipts."""
    from translog import note, witness

    private = witness.load_or_create_key(data_dir)
    typer.echo(note.Verifier(note.check_name(name), note.COSIGNATURE_V1,
                             note.raw_public(private)).vkey)


@app.command()
def serve(
    data_dir: DataDir, name: Name,
    log: Annotated[list[str], typer.Option("--log", help="Verifier key of a log to follow "
                                           "(its `vkey` in /.well-known/govshare-log-keys); "
                                           "repeat for several logs.")],
    host: Annotated[str, typer.Option(help="Listen address.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Listen port.")] = 8780,
) -> None:
    """Serve POST /add-checkpoint (c2sp.org/tlog-witness), GET / and GET /evidence."""
    import uvicorn

    from translog import note, witness

    try:
        logs = [note.parse_vkey(v) for v in log]
    except note.NoteError as exc:
        typer.echo(f"Cannot start: {exc}", err=True)
        raise typer.Exit(2) from None
    w = witness.Witness(data_dir, name, logs)
    typer.echo(f"witness {w.verifier.vkey} on http://{host}:{port}/", err=True)
    uvicorn.run(witness.create_app(w), host=host, port=port, log_level="warning")


@app.command()
def evidence(data_dir: DataDir) -> None:
    """Print the checkpoints this witness refused because they contradict one it cosigned."""
    from translog import witness

    records = witness.read_evidence(data_dir)
    typer.echo(json.dumps({"evidence": records}, ensure_ascii=False, indent=2))
