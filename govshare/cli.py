"""The ``govshare`` command: serve, demo, administration, registration, the access log."""

from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from govshare import administration, wiring
from kernel import db, identity, output, runtime
from kernel.auth import principal_of
from kernel.identity import AdminLevel, DepartmentKind, Role
from kernel.problems import Invalid, Problem
from kernel.settings import get_settings

app = typer.Typer(help="govshare: government data-sharing catalog, quality and access.",
                  no_args_is_help=True, pretty_exceptions_show_locals=False)
dept_app = typer.Typer(help="Departments.", no_args_is_help=True)
user_app = typer.Typer(help="Users and their roles.", no_args_is_help=True)
token_app = typer.Typer(help="API tokens (shown once, stored hashed).", no_args_is_help=True)
resource_app = typer.Typer(help="Catalog resources.", no_args_is_help=True)
db_app = typer.Typer(help="The metadata database.", no_args_is_help=True)
app.add_typer(dept_app, name="dept")
app.add_typer(user_app, name="user")
app.add_typer(token_app, name="token")
app.add_typer(resource_app, name="resource")
app.add_typer(db_app, name="db")

console = Console()
err = Console(stderr=True)
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


def _ready() -> None:
    """Schema up to date and event subscribers wired, as in the server."""
    from govshare.migrate import upgrade

    upgrade()
    wiring.subscribe_events()


runtime.on_ready(_ready)
ready = runtime.ready


def _emit(data: Any, as_json: bool, table: Table | None = None) -> None:
    output.emit(table if table is not None and not as_json else data, as_json, out=console)


def _fail(problem: Problem) -> None:
    err.print(f"[red]error:[/red] {problem.detail}")
    for line in output.problem_lines(problem):
        err.print(f"  - {line}", markup=False)
    raise typer.Exit(2)


# --- serve & demo ----------------------------------------------------------------------------


@app.command()
def serve(host: Annotated[str | None, typer.Option()] = None,
          port: Annotated[int | None, typer.Option()] = None,
          workers: Annotated[int, typer.Option(
              min=1, help="Web worker processes (docs/deployment.md); one per core is a "
                          "start.")] = 1,
          with_worker: Annotated[bool, typer.Option(
              "--with-worker", help="Also start one `govshare worker` process for the "
                                    "background jobs; both stop together (make run).")] = False,
          forwarded_allow_ips: Annotated[str | None, typer.Option(
              help="Proxies trusted for X-Forwarded-For/-Proto (comma-separated; default "
                   "127.0.0.1, or $FORWARDED_ALLOW_IPS).")] = None) -> None:
    """Run the web service (it answers and enqueues; `govshare worker` runs the jobs)."""
    import uvicorn

    from govshare import worker
    from kernel import secrets

    settings = get_settings()
    host, port = host or settings.host, port or settings.port
    try:  # before anything else: production (the default) needs a configured master secret
        source = secrets.check(settings)
    except secrets.SecretsUnavailable as exc:
        err.print(f"[red]govshare will not start:[/red] {exc}")
        raise typer.Exit(2) from None
    if settings.mode.value == "development":
        err.print("[yellow]development mode[/yellow]: not for real data "
                  f"(master secret from {source}).")
    ready()
    if workers > 1 and settings.is_sqlite:
        # Allowed: WAL lets the processes read at once and queue their writes on SQLite's
        # single write lock.
        err.print(f"note: {workers} workers share one SQLite file on this host; writes queue "
                  "one at a time. A city's load belongs on PostgreSQL (docs/deployment.md).")
    console.print(f"govshare is serving at [bold]http://{host}:{port}/[/bold] "
                  f"(API docs: http://{host}:{port}/docs)")
    beside = worker.Beside() if with_worker else None
    if beside is not None:
        beside.start()
        console.print("one `govshare worker` process runs the background jobs beside it")
    else:
        err.print("note: background jobs (deliveries, quality runs) need `govshare worker` "
                  "running too (docs/deployment.md)")
    try:
        uvicorn.run("govshare.app:create_app", factory=True, host=host, port=port,
                    workers=workers, log_level="info", proxy_headers=True,
                    forwarded_allow_ips=forwarded_allow_ips)
    finally:
        if beside is not None:
            beside.stop()


@app.command("worker")
def worker_command(
        concurrency: Annotated[int, typer.Option(
            min=1, max=64, help="Jobs run at once by this process (threads); quality runs "
                                "stay one at a time per process, so with 2 or more a "
                                "quality run never holds up a delivery.")] = 2,
        drain: Annotated[bool, typer.Option(
            "--drain", help="Run every due job now, then exit (cron, tests).")] = False,
        exit_with_parent: Annotated[bool, typer.Option(
            "--exit-with-parent", hidden=True,
            help="Stop when the process that started this one is gone.")] = False) -> None:
    """Run the background jobs: deliveries, quality runs, periodic deliveries and expiry,
    metrics refreshes. Run as many as you like, on any hosts sharing the database and the
    data folder (docs/deployment.md); SIGTERM lets the running jobs finish."""
    import logging

    from govshare import worker

    logging.basicConfig(level=logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("govshare").setLevel(logging.INFO)  # ours; GX's INFO is noise
    if drain:
        console.print(f"ran {worker.drain()} jobs")
        return
    worker.run(concurrency, exit_with_parent=exit_with_parent)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply schema migrations."""
    from govshare.migrate import upgrade

    upgrade()
    console.print("schema is up to date")


@app.command()
def screenshots(out_dir: Path,
                scale: Annotated[str, typer.Option(help="Demo scale: tiny or default")] = "tiny",
                quality_wait: Annotated[float, typer.Option(
                    help="Seconds to let the quality worker score the catalog")] = 240) -> None:
    """PNGs of every main web page for every role, on a fresh demo world (needs the dev
    extras and Chromium: .ci/ensure-chromium)."""
    from govshare.web import screenshots as shots

    try:
        written = shots.take(out_dir, scale=scale, quality_wait=quality_wait,
                             report=console.print)
    except (RuntimeError, ImportError) as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None
    console.print(f"{len(written)} screenshots in {out_dir}")


def _progress() -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(),
                    TimeElapsedColumn(), console=err)


# --- departments, users, tokens -------------------------------------------------------------


@dept_app.command("create")
def dept_create(code: str, name_zh: str, name_en: str,
                kind: DepartmentKind = DepartmentKind.line,
                level: AdminLevel = AdminLevel.municipal,
                parent: Annotated[str | None, typer.Option(help="Parent department code")] = None,
                credit_code: Annotated[str | None, typer.Option(
                    help="Unified social credit code (GB 32100)")] = None,
                as_json: JsonOpt = False) -> None:
    """Create a department (an entry of the signed log)."""
    ready()
    try:
        with db.session_scope() as session:
            d = administration.create_department(
                session, administration.OPERATOR, code=code, name_zh=name_zh, name_en=name_en,
                kind=kind, level=level, parent=parent, credit_code=credit_code)
            out = d.model_dump(mode="json", exclude={"created_at"})
    except Problem as p:
        _fail(p)
    _emit(out, as_json)


@dept_app.command("list")
def dept_list(as_json: JsonOpt = False) -> None:
    ready()
    with db.session_scope(write=False) as session:
        depts = identity.list_departments(session)
        codes = {d.id: d.code for d in depts}
        rows = [{"code": d.code, "name_zh": d.name_zh, "name_en": d.name_en, "kind": d.kind,
                 "level": d.level, "parent": codes.get(d.parent_id), "credit_code": d.credit_code}
                for d in depts]
    _emit(rows, as_json)


@user_app.command("create")
def user_create(username: str, department: str,
                role: Annotated[list[Role], typer.Option(help="Repeat for several roles.")],
                display_name: Annotated[str | None, typer.Option()] = None,
                password: Annotated[bool, typer.Option(
                    "--password", help="Prompt for a password (a local account).")] = False,
                as_json: JsonOpt = False) -> None:
    """Create a user (an entry of the signed log)."""
    ready()
    secret = typer.prompt("Password", hide_input=True, confirmation_prompt=True) \
        if password else None
    try:
        with db.session_scope() as session:
            u = administration.create_user(session, administration.OPERATOR, username=username,
                                           display_name=display_name or username,
                                           department=department, roles=role, password=secret)
            out = {"id": u.id, "username": u.username, "display_name": u.display_name,
                   "roles": sorted(r.value for r in u.roles)}
    except Problem as p:
        _fail(p)
    _emit(out, as_json)


@user_app.command("list")
def user_list(as_json: JsonOpt = False) -> None:
    from sqlmodel import select

    ready()
    with db.session_scope(write=False) as session:
        depts = {d.id: d.code for d in identity.list_departments(session)}
        rows: list[dict[str, Any]] = [
            {"username": u.username, "display_name": u.display_name,
             "department": depts[u.department_id], "roles": sorted(r.value for r in u.roles),
             "active": u.is_active, "password": u.password_hash is not None,
             "totp": u.totp_secret is not None}
            for u in session.exec(select(identity.User).order_by(identity.User.username))]
    _emit(rows, as_json)


@user_app.command("password")
def user_password(username: str) -> None:
    """Set a user's password (prompted; an entry of the signed log)."""
    ready()
    secret = typer.prompt("New password", hide_input=True, confirmation_prompt=True)
    try:
        with db.session_scope() as session:
            user = identity.get_user(session, username)
            administration.set_password(session, administration.OPERATOR, user, secret)
    except Problem as p:
        _fail(p)
    console.print(f"password set for {username}")


@user_app.command("disable")
def user_disable(username: str,
                 enable: Annotated[bool, typer.Option("--enable", help="Enable again.")] = False,
                 ) -> None:
    """Disable a user: their sessions and tokens stop working at once."""
    ready()
    try:
        with db.session_scope() as session:
            user = identity.get_user(session, username)
            administration.set_active(session, administration.OPERATOR, user, enable)
    except Problem as p:
        _fail(p)
    console.print(f"{username} is {'enabled' if enable else 'disabled'}")


@token_app.command("issue")
def token_issue(username: str, name: Annotated[str, typer.Option()] = "cli",
                days: Annotated[int | None, typer.Option(
                    min=1, max=3650, help="Lifetime (default GOVSHARE_TOKEN_DEFAULT_DAYS)")] = None,
                as_json: JsonOpt = False) -> None:
    """Issue a token; its value is printed once and never stored (an entry of the log)."""
    ready()
    try:
        with db.session_scope() as session:
            user = identity.get_user(session, username)
            token, secret = administration.issue_token(
                session, administration.OPERATOR, user, name=name,
                days=get_settings().token_default_days if days is None else days)
            out = {"id": token.id, "username": username, "expires_at": token.expires_at,
                   "token": secret}
    except Problem as p:
        _fail(p)
    _emit(out, as_json)


@token_app.command("list")
def token_list(username: Annotated[str | None, typer.Argument()] = None,
               as_json: JsonOpt = False) -> None:
    from sqlmodel import select

    ready()
    with db.session_scope(write=False) as session:
        user = identity.get_user(session, username) if username else None
        names = {u.id: u.username for u in session.exec(select(identity.User))}
        rows = [{"id": t.id, "user": names.get(t.user_id), "name": t.name, "prefix": t.prefix,
                 "expires_at": t.expires_at, "revoked_at": t.revoked_at,
                 "last_used_at": t.last_used_at}
                for t in identity.list_tokens(session, user)]
    _emit(rows, as_json)


@token_app.command("revoke")
def token_revoke(token_id: int, as_json: JsonOpt = False) -> None:
    """Revoke a token (an entry of the signed log)."""
    ready()
    try:
        with db.session_scope() as session:
            t = administration.revoke_token(session, administration.OPERATOR, token_id)
            out = {"id": t.id, "revoked_at": t.revoked_at}
    except Problem as p:
        _fail(p)
    _emit(out, as_json)


# --- resources -------------------------------------------------------------------------------


ConfirmOpt = Annotated[bool, typer.Option(
    "--confirm-duplicate", help="Register even where the department already has a similar "
    "active resource (one source for each piece of data): confirms it is a different "
    "resource; the log entry records it")]


@resource_app.command("register")
def resource_register(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="The data file")],
    metadata: Annotated[Path, typer.Option(exists=True, dir_okay=False,
                                           help="ResourceIn as a JSON file")],
    publisher: Annotated[str, typer.Option(help="Username of a publisher of the provider")],
    confirm_duplicate: ConfirmOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Register a resource with its data (all or nothing). A resource close to an active one
    of the same department is refused unless --confirm-duplicate (docs/catalog.md)."""
    from catalog import service
    from catalog.schemas import ResourceIn

    ready()
    try:
        meta = ResourceIn.model_validate_json(metadata.read_text(encoding="utf-8"))
    except ValidationError as exc:  # one line per field, not pydantic's dump of the input
        _fail(Invalid.of(exc.errors(), str(metadata)))
    try:
        with db.session_scope(write=False) as read:
            who = principal_of(read, publisher)
        # The write session is first used after the load, so the load holds no lock.
        with db.session_scope() as session:
            with err.status(f"loading {file.name} …"):
                r = service.register_resource(session, who, meta, file, filename=file.name,
                                              confirm_duplicate=confirm_duplicate)
            out = {"code": r.code, "name": r.name, "rows": r.row_count,
                   "version": r.current_version}
    except Problem as p:
        _fail(p)
    _emit(out, as_json)


@resource_app.command("import-catalog")
def resource_import_catalog(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False,
                                         help="The catalog register (.xlsx or .xls)")],
    publisher: Annotated[str, typer.Option(help="Username of a publisher of the department")],
    confirm_duplicate: ConfirmOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Register or update many resources' metadata from a catalog register spreadsheet, one
    row per data item (docs/catalog.md): all of it, or nothing with every problem listed."""
    from catalog import register_sheet

    ready()
    try:
        with db.session_scope(write=False) as read:
            who = principal_of(read, publisher)
        with db.session_scope() as session:
            applied = register_sheet.import_catalog(session, who, file,
                                                    confirm_duplicate=confirm_duplicate)
            out = [{"code": a.code, "name": a.name, "action": a.action, "items": a.items}
                   for a in applied]
    except Problem as p:
        _fail(p)
    _emit(out, as_json)


@resource_app.command("search")
def resource_search(q: Annotated[str | None, typer.Argument()] = None,
                    size: int = 20, as_json: JsonOpt = False) -> None:
    from catalog import search

    ready()
    search.sync(wait=False)  # no server writes the index: bring it up to date ourselves
    with db.session_scope(write=False) as session:
        page = search.search(session, search.SearchParams(q=q, size=size, facets=False))
        rows: list[dict[str, Any]] = [
            {"code": res.code, "name": res.name, "name_en": res.name_en,
             "sharing_type": res.sharing_type.value, "rows": res.row_count}
            for res in page.resources]
    shown = f"{page.total:,}+" if page.total_capped else str(page.total)
    table = Table("code", "name", "name_en", "sharing_type", "rows",
                  title=f"{shown} resource(s)")
    for r in rows:
        table.add_row(r["code"], r["name"], r["name_en"], r["sharing_type"], str(r["rows"]))
    _emit({"total": page.total, "hits": rows}, as_json, table)


def _mount_contexts() -> None:
    from access.cli import app as access_app
    from translog.cli import app as log_app

    app.add_typer(log_app, name="log", help="The signed access log.")
    from translog.witness_cli import app as witness_app

    app.add_typer(witness_app, name="witness", help="Run a witness that cosigns checkpoints.")
    app.add_typer(access_app, name="access", help="Applications, deliveries and latency.")
    from catalog.cli import app as source_app

    app.add_typer(source_app, name="source", help="Database tables as sources (库表).")
    from govshare.warehouse_cli import app as warehouse_app

    app.add_typer(warehouse_app, name="warehouse", help="The data files: segments, staging.")
    from govshare.search_cli import app as search_app

    app.add_typer(search_app, name="search", help="The catalog search index.")
    from govshare.keys_cli import app as keys_app

    app.add_typer(keys_app, name="keys", help="The master secret and its purpose keys.")
    from metrics.cli import app as metrics_app

    app.add_typer(metrics_app, name="metrics", help="The sharing metrics' mart.")
    from quality.cli import app as quality_app

    app.add_typer(quality_app, name="quality",
                  help="Data quality: re-check logged scores (verify), reports.")


def _mount_plugins() -> None:
    """Commands of separately installed distributions (e.g. ``govshare demo`` from
    govshare-demo), found through the ``govshare.cli`` entry-point group."""
    from importlib.metadata import entry_points

    for entry in entry_points(group="govshare.cli"):
        entry.load()(app)


_mount_contexts()
_mount_plugins()


def main() -> None:
    from access.pseudonym import KeyUnavailable as PseudonymKeyUnavailable
    from kernel.secrets import SecretsUnavailable
    from translog.keys import KeyUnavailable

    try:
        app()
    except (SecretsUnavailable, KeyUnavailable, PseudonymKeyUnavailable) as exc:
        # An operator's problem with a clear fix, not a bug: the message, no traceback.
        err.print(f"[red]error:[/red] {exc}")
        raise SystemExit(2) from None
