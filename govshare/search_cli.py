"""``govshare search``: this machine's catalog search index (docs/search.md)."""

import json
import sys
import time
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

app = typer.Typer(help="The catalog search index.", no_args_is_help=True)
console = Console(stderr=True)


@app.command("reindex")
def reindex(as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
            = False) -> None:
    """Rebuild this machine's search index from the database, with progress. Safe while the
    server runs: searches see the old index until the rebuild commits; it waits for the
    server's index writer to let go of the index if one holds it."""
    from catalog.search import engine, feed
    from govshare.migrate import upgrade

    upgrade()
    writer = feed.Writer()
    waited = time.monotonic()
    while not writer.acquire():  # a server process of this machine writes: wait our turn
        if time.monotonic() - waited > 60:
            console.print("[red]The index writer of a running server holds the index; stop "
                          "it or try again.[/red]")
            raise typer.Exit(1)
        time.sleep(0.2)
    started = time.perf_counter()
    try:
        with Progress(TextColumn("indexing"), BarColumn(), MofNCompleteColumn(),
                      TaskProgressColumn(), TimeElapsedColumn(), TimeRemainingColumn(),
                      console=console, disable=as_json) as progress:
            task = progress.add_task("reindex", total=None)

            def report(done: int, total: int) -> None:
                progress.update(task, completed=done, total=total)

            count = writer.rebuild(report)
    finally:
        writer.release()
    seconds = time.perf_counter() - started
    out = {"resources": count, "seconds": round(seconds, 2),
           "per_second": round(count / seconds) if seconds else None,
           "index_dir": str(engine.index_dir())}
    if as_json:
        sys.stdout.write(json.dumps(out) + "\n")
    else:
        console.print(f"indexed {count:,} resources in {seconds:.1f} s into {out['index_dir']}")
