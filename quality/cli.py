"""`govshare quality …`: re-check a logged run (``verify``) and write a run's report."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(help="Data quality: re-check logged scores, write reports.",
                  no_args_is_help=True)


def _prepare_database() -> None:
    from kernel import runtime

    runtime.ready()  # migrate and wire subscribers, as the composition root defines it


@app.command()
def verify(run: Annotated[int, typer.Argument(help="The quality run id")],
           as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
           ) -> None:
    """Re-run RUN's suite on its data version, at its time, with its weights, and check the
    scores against the run's entry in the signed log. Exit 0 when it reproduces, 1 when not
    (saying whether the data or the suite changed), 2 when it cannot be checked."""
    from kernel.db import session_scope
    from kernel.problems import Problem
    from quality.attest import verify as verify_run

    _prepare_database()
    try:
        with session_scope(write=False) as session:
            verdict = verify_run(session, run)
    except Problem as exc:
        typer.echo(f"Cannot verify run {run}: {exc.detail}", err=True)
        raise typer.Exit(2) from None
    if as_json:
        typer.echo(json.dumps(verdict.as_json(), ensure_ascii=False, indent=2, default=str))
    elif verdict.reproduced:
        scores = verdict.logged["scores"]
        typer.echo(f"Run {run} reproduces its signed log entry #{verdict.log_entry}: "
                   f"overall {scores['overall']}, suite {verdict.logged['suite_sha256'][:12]}…, "
                   f"data {verdict.logged['data_sha256'][:12]}…, GX "
                   f"{verdict.logged['gx_version']}.")
    else:
        typer.echo(f"Run {run} does NOT reproduce its logged scores:")
        for finding in verdict.findings:
            typer.echo(f"  - {finding}")
    raise typer.Exit(0 if verdict.reproduced else 1)


@app.command()
def report(code: Annotated[str, typer.Argument(help="Resource code")],
           out: Annotated[Path, typer.Argument(help="Where to write the HTML report")],
           run: Annotated[int | None, typer.Option(help="Run id; default newest")] = None,
           ) -> None:
    """Write the self-contained HTML report of a resource's newest (or a given) run."""
    from quality.report import write_report

    _prepare_database()
    typer.echo(f"Wrote {write_report(code, out, run)}")
