"""``govshare metrics``: refresh the dashboard's mart on demand (docs/metrics.md)."""

from __future__ import annotations

import dataclasses
import json
import sys
from typing import Annotated

import typer

from metrics import mart

app = typer.Typer(help="The sharing metrics' DuckDB mart.", no_args_is_help=True)


@app.command()
def refresh(full: Annotated[bool, typer.Option("--full", help="Rebuild from scratch (e.g. "
                                               "after replaying history with old times).")]
            = False) -> None:
    """Bring the mart up to date now (waits for a refresh another process is running)."""
    stats = mart.refresh(full=full, wait=True)
    assert stats is not None  # waited for the lock
    sys.stdout.write(json.dumps(dataclasses.asdict(stats), indent=2) + "\n")
