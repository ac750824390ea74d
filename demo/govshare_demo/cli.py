"""``govshare demo``: the demo world's command, added to the ``govshare`` CLI through the
``govshare.cli`` entry-point group (this distribution is not part of the runtime package)."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

import govshare_demo as demo_world
from kernel import db
from kernel.problems import Problem

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


def _root() -> Any:
    # Imported when a command runs, not at import: ``govshare.cli`` loads this module while
    # it is itself being imported (the ``govshare.cli`` entry points).
    from govshare import cli

    return cli


def register(app: typer.Typer) -> None:
    app.command()(demo)


def demo(scale: Annotated[str, typer.Option(help="tiny, default or city")] = "default",
         if_empty: Annotated[bool, typer.Option("--if-empty", help="Skip if data exists.")] = False,
         history: Annotated[bool, typer.Option(
             help="Replay six months of sharing (applications, deliveries, notices).")] = True,
         as_json: JsonOpt = False) -> None:
    """Load the demo world: departments, users for every role, resources with data, and
    six months of sharing history made through the real services."""
    root = _root()
    root.ready()
    with db.session_scope() as session:
        empty = demo_world.world_is_empty(session)
    if not empty:
        if if_empty:
            root.console.print("demo world already loaded; get a token with e.g. "
                          "govshare token issue ga-publisher")
            return
        root._fail(Problem("The database already has departments; use a fresh GOVSHARE_DATA_DIR."))
    with root._progress() as progress:
        task = progress.add_task("demo", total=None)

        def report(step: str, done: int, total: int) -> None:
            progress.update(task, description=step, completed=done, total=total)

        summary = demo_world.build_world(db.session_scope, scale=scale, progress=report,
                                         history=history)
    _print_demo(summary, as_json)




def _print_demo(summary: Any, as_json: bool) -> None:
    root = _root()
    users = [{"username": u.username, "department": u.department, "roles": u.roles,
              "token": u.token} for u in summary.users]
    table = Table(title="Demo users")
    for col in ("department", "username", "roles"):
        table.add_column(col)
    for u in users:
        table.add_row(u["department"], u["username"], ",".join(u["roles"]))
    root._emit({"users": users, "resources": summary.resource_count}, as_json, table)
    if not as_json:
        # Tokens on lines of their own: in a table cell a narrow terminal or a pipe cuts
        # them short.
        root.console.print("Their tokens, shown once (keep them; sign in with one):")
        for u in users:
            root.console.print(f"  {u['username']:<16} {u['token']}", soft_wrap=True,
                          highlight=False)
