"""``govshare warehouse``: upkeep of the data files (segments, staging, deliveries)."""

import json
import sys
from datetime import timedelta
from typing import Annotated

import typer
from rich.console import Console

app = typer.Typer(help="The data files: segments, staging, deliveries.", no_args_is_help=True)
console = Console()


@app.command("gc")
def gc(grace_hours: Annotated[float, typer.Option(
           min=0, help="Leave orphans younger than this alone (uploads and commits in flight).")
       ] = 24.0,
       dry_run: Annotated[bool, typer.Option("--dry-run", help="Only list what would go.")]
       = False,
       as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
       ) -> None:
    """Remove data files no row refers to (left by killed processes); exit 1 if a row names
    a missing segment."""
    # Safe while the server runs, on any number of workers: a file goes only if the database
    # does not name it and it is older than the grace period (deliveries: once its job's lock
    # is free).
    from access import sweep
    from catalog import gc as warehouse_gc
    from govshare.migrate import upgrade

    upgrade()
    report = warehouse_gc.collect(grace=timedelta(hours=grace_hours), dry_run=dry_run)
    # Deliveries are owned by a job lock, not by age (access.sweep).
    swept = [] if dry_run else sweep.sweep()
    out = {"removed": report.removed, "bytes_freed": report.bytes_freed,
           "young": report.young, "missing": report.missing, "deliveries_removed": swept,
           "dry_run": dry_run}
    if as_json:
        sys.stdout.write(json.dumps(out, indent=2) + "\n")
    else:
        verb = "would remove" if dry_run else "removed"
        console.print(f"{verb} {len(report.removed)} orphan file(s), "
                      f"{report.bytes_freed:,} bytes; {len(report.young)} younger than "
                      f"{grace_hours:g} h kept; {len(swept)} delivery file(s) of dead jobs "
                      "removed" + (" (not checked in a dry run)" if dry_run else ""))
        for path in report.removed:
            console.print(f"  {path}")
        for path in report.missing:
            console.print(f"[red]missing:[/red] {path} is named by the database but absent; "
                          "restore it from backup")
    if report.missing:
        raise typer.Exit(1)
