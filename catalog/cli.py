"""``govshare source``: database sources of resources (catalog.sources), for operators.

The connection URL carries a password, so it is never a command-line argument (shell
history, ``ps``): it is read from ``GOVSHARE_SOURCE_URL`` or asked for without echo.
"""

from __future__ import annotations

import json
import sys
from typing import Annotated, NoReturn

import typer
from rich.console import Console
from rich.table import Table

from kernel import runtime

app = typer.Typer(help="Database tables as sources (库表): set, show, pull.",
                  no_args_is_help=True)
console = Console()
err = Console(stderr=True)
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
Publisher = Annotated[str, typer.Option(help="Username of a publisher of the provider")]


@app.command("set")
def set_source(code: str, query: Annotated[str, typer.Option(help="schema.table or a SELECT")],
               publisher: Publisher,
               url: Annotated[str, typer.Option(envvar="GOVSHARE_SOURCE_URL", prompt=True,
                                                hide_input=True, show_default=False,
                                                help="postgresql://user:password@host/db "
                                                     "(from $GOVSHARE_SOURCE_URL or asked)")],
               ) -> None:
    """Pull CODE's data from a database table from now on (sealed credentials)."""
    from catalog import sources
    from kernel.auth import principal_of
    from kernel.db import session_scope
    from kernel.problems import Problem

    runtime.ready()
    try:
        with session_scope() as session:
            source = sources.configure(session, principal_of(session, publisher), code, url,
                                       query)
            console.print(f"{code}: source {source.location} set; first pull due now")
    except Problem as problem:
        _fail(problem.detail)


@app.command("pull")
def pull(code: str, as_json: JsonOpt = False) -> None:
    """Pull CODE's source now, in this process (for cron or a one-off)."""
    from sqlmodel import select

    from catalog import service, sources
    from catalog.models import DataSource
    from kernel.db import session_scope

    runtime.ready()
    with session_scope(write=False) as session:
        resource = service.get_resource(session, code)
        source = session.exec(select(DataSource).where(
            DataSource.resource_id == resource.id)).first()
        if source is None:
            _fail(f"Resource {code} has no data source.")
        source_id = source.id or 0
    status = sources.pull(source_id)
    _show(source_id, as_json, title=f"{code}: {status.value}")


@app.command("show")
def show(code: str, publisher: Publisher, as_json: JsonOpt = False) -> None:
    """Where CODE's data comes from and how its last pull went (never the credentials)."""
    from catalog import sources
    from kernel.auth import principal_of
    from kernel.db import session_scope
    from kernel.problems import Problem

    runtime.ready()
    try:
        with session_scope(write=False) as session:
            source_id = sources.get(session, principal_of(session, publisher), code).id or 0
    except Problem as problem:
        _fail(problem.detail)
    _show(source_id, as_json, title=code)


def _show(source_id: int, as_json: bool, *, title: str) -> None:
    from catalog.models import DataSource
    from catalog.schemas import SourceOut
    from kernel.db import session_scope

    with session_scope(write=False) as session:
        out = SourceOut.model_validate(session.get(DataSource, source_id), from_attributes=True)
    data = out.model_dump(mode="json")
    if as_json:
        sys.stdout.write(json.dumps(data, ensure_ascii=False, indent=2) + "\n")
        return
    table = Table("field", "value", title=title)
    for key, value in data.items():
        table.add_row(key, "" if value is None else str(value))
    console.print(table)


def _fail(message: str) -> NoReturn:
    err.print(f"[red]error:[/red] {message}")
    raise typer.Exit(2)
