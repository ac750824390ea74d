"""``govshare metrics``: refresh the dashboard's mart on demand (docs/metrics.md)."""

from __future__ import annotations

import dataclasses
from typing import Annotated

import typer

from kernel import output
from metrics import mart

app = typer.Typer(help="The sharing metrics' DuckDB mart.", no_args_is_help=True)


@app.command()
def refresh(full: Annotated[bool, typer.Option("--full", help="Rebuild from scratch (e.g. "
                                               "after replaying history with old times).")]
            = False,
            as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
            = False) -> None:
    """Bring the mart up to date now (waits for a refresh another process is running)."""
    stats = mart.refresh(full=full, wait=True)
    assert stats is not None  # waited for the lock
    output.emit(dataclasses.asdict(stats), as_json)
