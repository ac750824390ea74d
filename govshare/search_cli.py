"""``govshare search``: this machine's catalog search index (docs/search.md)."""

import json
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated

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

if TYPE_CHECKING:
    from catalog.search import feed

app = typer.Typer(help="The catalog search index.", no_args_is_help=True)
console = Console(stderr=True)


@app.command("reindex")
def reindex(as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
            = False) -> None:
    """Rebuild this machine's search index from the database, with progress. Safe while the
    server runs: searches see the old index until the rebuild commits. If a server process
    of this machine writes the index, it is asked to rebuild it, and its progress is shown."""
    from catalog.search import engine, feed
    from govshare.migrate import upgrade

    upgrade()
    writer = feed.Writer()
    started = time.perf_counter()
    with Progress(TextColumn("indexing"), BarColumn(), MofNCompleteColumn(),
                  TaskProgressColumn(), TimeElapsedColumn(), TimeRemainingColumn(),
                  console=console, disable=as_json) as progress:
        task = progress.add_task("reindex", total=None)

        def report(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total or None)

        if writer.acquire():
            try:
                count = writer.rebuild(report)
            finally:
                writer.release()
        else:
            count = _by_the_server(writer, report)
    seconds = time.perf_counter() - started
    out = {"resources": count, "seconds": round(seconds, 2),
           "per_second": round(count / seconds) if seconds else None,
           "index_dir": str(engine.index_dir())}
    if as_json:
        sys.stdout.write(json.dumps(out) + "\n")
    else:
        console.print(f"indexed {count:,} resources in {seconds:.1f} s into {out['index_dir']}")


def _by_the_server(writer: "feed.Writer", report: Callable[[int, int], None]) -> int:
    """Ask the process holding the writer lock to rebuild; follow its progress file."""
    from kernel import storage

    writer.rebuild_progress.unlink(missing_ok=True)
    storage.publish_text(writer.rebuild_requested, "")
    deadline = time.monotonic() + 30
    while True:
        try:
            state = json.loads(writer.rebuild_progress.read_text())
        except (OSError, ValueError):
            if time.monotonic() > deadline:  # the server polls twice a second
                console.print("[red]The server holding the index did not start the rebuild; "
                              "is it running? Stop it and run this again.[/red]")
                raise typer.Exit(1) from None
            time.sleep(0.2)
            continue
        if "error" in state:
            console.print(f"[red]The rebuild failed: {state['error']}[/red]")
            raise typer.Exit(1)
        report(int(state["done"]), int(state["total"]))
        if state.get("finished"):
            return int(state["done"])
        time.sleep(0.2)
