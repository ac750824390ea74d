"""`govshare access …`: applications, deliveries and sharing latency for operators.

Commands that act on an application run as a named user (``--as``), with that user's roles
and department, exactly as the API would; system steps (deliveries, the scheduler's tick,
crash recovery) run as govshare itself.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from kernel import output, runtime

app = typer.Typer(help="Data-sharing applications, deliveries and sharing latency.",
                  no_args_is_help=True)
console = Console()
err = Console(stderr=True)
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
AsUser = Annotated[str, typer.Option("--as", help="Act as this user (username).")]


def _ready() -> None:
    runtime.ready()  # migrate and wire subscribers, as the composition root defines it


def _emit(data: Any, as_json: bool, table: Table | None = None) -> None:
    """A table or ``key: value`` lines for people, JSON with --json (kernel.output)."""
    output.emit(table if table is not None and not as_json else data, as_json, out=console)


def _run(fn: Any) -> Any:
    """Run ``fn`` and turn a refusal into a clean error message and exit code 2."""
    from kernel.problems import Problem

    try:
        return fn()
    except Problem as problem:
        err.print(f"[red]error:[/red] {problem.detail}")
        for line in output.problem_lines(problem):
            err.print(f"  - {line}", markup=False)
        raise typer.Exit(2) from None


def _summary(a: Any) -> dict[str, Any]:
    return {"id": a.id, "state": a.state.value, "resource_id": a.resource_id,
            "items": a.items, "filed_at": a.filed_at, "delivered_at": a.delivered_at,
            "bounces": a.bounces, "delivery_blocked": a.delivery_blocked}


@app.command("list")
def list_(as_user: AsUser, state: Annotated[str | None, typer.Option()] = None,
          overdue: Annotated[bool, typer.Option("--overdue")] = False,
          as_json: JsonOpt = False) -> None:
    """Applications visible to a user (filed or received by their department)."""
    from access import service
    from access.models import ApplicationState
    from kernel import db
    from kernel.auth import principal_of

    _ready()

    def run() -> list[dict[str, Any]]:
        with db.session_scope(write=False) as session:
            who = principal_of(session, as_user)
            rows = service.list_applications(
                session, who, state=ApplicationState(state) if state else None,
                overdue=True if overdue else None)
            return [_summary(a) for a in rows]

    rows = _run(run)
    table = Table(title="Applications")
    for column in ("id", "state", "items", "filed_at", "bounces"):
        table.add_column(column)
    for r in rows:
        table.add_row(str(r["id"]), r["state"], ",".join(r["items"]), str(r["filed_at"]),
                      str(r["bounces"]))
    _emit(rows, as_json, table)


@app.command()
def history(application: int, as_user: AsUser, as_json: JsonOpt = False) -> None:
    """Every move of an application (its details as compact JSON in the last column)."""
    from access import service
    from kernel import db
    from kernel.auth import principal_of

    _ready()

    def run() -> list[dict[str, Any]]:
        with db.session_scope(write=False) as session:
            service.get_application(session, principal_of(session, as_user), application)
            return [s.model_dump(exclude={"id", "application_id"})
                    for s in service.steps(session, application)]

    steps = _run(run)
    table = output.table(
        [{**s, "move": f"{s['from_state'] or '—'} → {s['to_state']}",
          "by": s["actor_user_id"] or s["actor_kind"],
          "detail": json.dumps(s["detail"], ensure_ascii=False, default=str)} for s in steps],
        ["seq", "at", "action", "move", "by", "detail"], title=f"Application {application}")
    _emit(steps, as_json, table)


@app.command()
def deliver(application: int,
            queue: Annotated[bool, typer.Option(
                "--queue", help="Queue the delivery job for the workers instead of producing "
                                "the package in this process.")] = False,
            wait: Annotated[float, typer.Option(
                "--wait", help="With --queue: wait up to this many seconds for the job to "
                               "finish, then print its outcome.")] = 0.0,
            as_json: JsonOpt = False) -> None:
    """Produce the current period's package now (idempotent), here or (--queue) by a worker."""
    from access import delivery

    _ready()
    if queue:
        _emit(_queue_delivery(application, wait), as_json)
        return
    done = _run(lambda: delivery.deliver(application))
    _emit({"delivery": done.id, "run_key": done.run_key, "rows": done.row_count,
           "path": done.path, "sha256": done.sha256}, as_json)


def _queue_delivery(application: int, wait: float) -> dict[str, Any]:
    """The same job the API's "deliver now" queues (one per application); polled until it
    is done when ``wait`` > 0 (exit 1 when it did not finish in time or delivered nothing)."""
    import time

    from access import scheduler
    from kernel import db, jobs

    with db.session_scope(write=True) as session:
        job_id = scheduler.enqueue_delivery(session, application)
    deadline = time.monotonic() + wait
    while True:
        with db.session_scope(write=False) as session:
            job = session.get(jobs.Job, job_id)
            assert job is not None
            state, result = job.state, job.result or {}
            out: dict[str, Any] = {"job": job_id, "state": state, "attempts": job.attempts,
                                   "result": job.result, "error": job.error}
        final = state in (jobs.JobState.done.value, jobs.JobState.failed.value)
        if final or time.monotonic() >= deadline:
            break
        time.sleep(0.5)
    if wait > 0 and not (final and result.get("outcome") == scheduler.DELIVERED):
        _emit(out, True)
        raise typer.Exit(1)
    return out


@app.command("run-due")
def run_due(as_json: JsonOpt = False) -> None:
    """One tick of the periodic-delivery scheduler: expire, retry, produce due packages."""
    from access import scheduler

    _ready()
    report = scheduler.run_due()
    _emit({"expired": report.expired, "delivered": report.delivered, "failed": report.failed,
           "swept": report.swept}, as_json)


@app.command()
def sweep(as_json: JsonOpt = False) -> None:
    """Delete files left by crashed deliveries (safe while deliveries run)."""
    from access.sweep import sweep as sweep_files

    _ready()
    _emit({"deleted": sweep_files()}, as_json)


@app.command()
def latency(by: Annotated[str, typer.Option(
                help="provider, requester, sharing_type, stage or resource")] = "provider",
            since: Annotated[datetime | None, typer.Option()] = None,
            bundles: Annotated[bool, typer.Option("--bundles",
                                                  help="Bundles: elapsed vs sum of parts")]
            = False, as_json: JsonOpt = False) -> None:
    """Sharing latency percentiles (first delivery − filing), hours and working days."""
    from access import latency as lat
    from kernel import db

    if by not in lat.GROUPS:
        err.print(f"[red]error:[/red] --by must be one of {', '.join(lat.GROUPS)}")
        raise typer.Exit(2)
    _ready()
    with db.session_scope(write=False) as session:
        measured = lat.collect(session, since)
        rows = lat.bundles(session, measured) if bundles else lat.report(measured, by)
    _emit(rows, as_json, _latency_table(rows, by, bundles))


def _latency_table(rows: list[dict[str, Any]], by: str, bundles: bool) -> Table:
    table = Table(title="Bundles" if bundles else f"Sharing latency by {by}")
    columns = ["bundle", "title", "elapsed_hours", "sum_of_parts_hours"] if bundles else \
        ["group", "count", "p50_hours", "p90_hours", "p99_hours", "p50_working_days",
         "p90_working_days"]
    for c in columns:
        table.add_column(c)
    for r in rows:
        table.add_row(*(str(r.get(c, "")) for c in columns))
    return table


@app.command()
def approve(application: int, as_user: AsUser,
            masking: Annotated[str, typer.Option(help='JSON, e.g. {"name": {"rule": '
                                                      '"suppress"}}')] = "{}",
            as_json: JsonOpt = False) -> None:
    """Approve as a provider's approver (then deliver at once)."""
    from access import delivery, service
    from access.schemas import ApprovalIn
    from kernel import db
    from kernel.auth import principal_of

    _ready()

    def run() -> dict[str, Any]:
        with db.session_scope() as session:
            who = principal_of(session, as_user)
            data = ApprovalIn.model_validate({"masking": json.loads(masking)})
            out = _summary(service.approve(session, who, application, data))
        if out["state"] == "approved":
            done = delivery.deliver(application)
            out |= {"state": "delivered", "delivery": done.id}
        return out

    _emit(_run(run), as_json)


@app.command()
def reject(application: int, as_user: AsUser,
           reason: Annotated[str, typer.Option(help="security_risk, ownership_dispute, "
                                                    "core_data, standards_mismatch, "
                                                    "insufficient_legal_basis, other")],
           text: Annotated[str, typer.Option()], as_json: JsonOpt = False) -> None:
    """Reject as a provider's approver, with a structured reason and text."""
    from access import service
    from access.schemas import RejectIn
    from kernel import db
    from kernel.auth import principal_of

    _ready()

    def run() -> dict[str, Any]:
        with db.session_scope() as session:
            who = principal_of(session, as_user)
            data = RejectIn.model_validate({"reason": reason, "text": text})
            return _summary(service.reject(session, who, application, data))

    _emit(_run(run), as_json)


@app.command()
def revoke(grant: int, as_user: AsUser, reason: Annotated[str, typer.Option()],
           as_json: JsonOpt = False) -> None:
    """Revoke a grant as the provider's approver."""
    from access import service
    from kernel import db
    from kernel.auth import principal_of

    _ready()

    def run() -> dict[str, Any]:
        with db.session_scope() as session:
            g = service.revoke(session, principal_of(session, as_user), grant, reason)
            return {"grant": g.id, "revoked_at": g.revoked_at}

    _emit(_run(run), as_json)
