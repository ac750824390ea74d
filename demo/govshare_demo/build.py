"""Building the demo world into the database: departments, users with tokens, resources,
and six months of sharing history.

Each resource is generated into a temporary directory, registered through the catalog's own
``register_resource`` as its department's publisher would, and committed on its own, so that
progress is visible, memory stays flat and an interrupted build keeps what it finished.

With ``history`` (the default) departments, users and the catalog are created under a
simulated clock ``history.HISTORY_DAYS`` ago, and ``govshare_demo.history`` then replays the
months since through the real access and quality services, so every record and signed-log
entry carries a coherent, monotonic time. Tokens are issued afterwards, at the real time, and
the quality runs that verify answered rectification notices are run then too.
"""

from __future__ import annotations

import dataclasses
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from sqlmodel import Session, col, select

from catalog.models import DataVersion, Resource
from govshare_demo import pools
from govshare_demo.generate import generate_file
from govshare_demo.pools import Registers
from govshare_demo.spec import DepartmentSpec, ResourceSpec, WorldSpec
from govshare_demo.world import ROLE_TITLES, default_world
from kernel import identity
from kernel.auth import Principal
from kernel.db import simulated_clock, utcnow
from kernel.identity import Department, Role

SessionFactory = Callable[[], AbstractContextManager[Session]]
Progress = Callable[[str, int, int], None]
Move = Callable[[datetime], None]

# Rows at each scale relative to the default world (city scale sizes its own resources).
ROWS_SCALES = {"tiny": 0.002, "default": 1.0}
SCALES = (*ROWS_SCALES, "city")
TOKEN_DAYS = 30
# Demo data is stamped at 09:00 Beijing time on its last update day.
UPDATE_TIME_UTC = (1, 0)


@dataclass(frozen=True)
class DemoUser:
    username: str
    display_name: str
    department: str
    roles: list[str]
    token: str  # shown once; only its hash is stored


@dataclass(frozen=True)
class DemoResource:
    key: str  # the spec's key, e.g. "ga.population"
    code: str  # the catalog code it was registered under
    name: str
    provider: str
    rows: int
    file_format: str
    defects: list[str]  # DefectKind values
    stale_days: int


@dataclass
class DemoSummary:
    scale: str
    as_of: date
    departments: list[DepartmentSpec]
    users: list[DemoUser]
    resources: list[DemoResource] = field(default_factory=list)
    seconds: float = 0.0
    history: Any = None  # govshare_demo.history.HistorySummary, when built with history

    @property
    def resource_count(self) -> int:
        return len(self.resources)

    @property
    def row_count(self) -> int:
        return sum(r.rows for r in self.resources)

    def token(self, department: str, role: Role) -> str:
        """The token of the given department's user with ``role``."""
        return next(u.token for u in self.users
                    if u.department == department and role.value in u.roles)


def world_spec(scale: str = "default", seed: int = 7) -> WorldSpec:
    """The departments and resource specs of a scale, without generating any data."""
    if scale == "city":
        from govshare_demo.city import city_world

        return city_world(seed)
    if scale not in ROWS_SCALES:
        raise ValueError(f"Unknown demo scale '{scale}'; choose one of {', '.join(SCALES)}.")
    return default_world(ROWS_SCALES[scale])


def registers_for(world: WorldSpec, seed: int, as_of: date) -> Registers:
    scale = world.rows_scale
    return Registers(seed=seed, as_of=as_of,
                     population_size=max(200, round(world.population_size * scale)),
                     enterprise_size=max(200, round(world.enterprise_size * scale)),
                     rows_scale=scale)


def world_is_empty(session: Session) -> bool:
    """True if no department exists yet (``govshare demo --if-empty``)."""
    return session.exec(select(Department.id).limit(1)).first() is None


def build_world(session_factory: SessionFactory, *, scale: str = "default",
                progress: Progress | None = None, seed: int = 7,
                history: bool = True) -> DemoSummary:
    """Create the demo world; deterministic for a seed and day (tokens apart)."""
    from access.calendar import WorkCalendar
    from govshare_demo import history as hist

    started = time.perf_counter()
    world = world_spec(scale, seed)
    now = utcnow()
    as_of = now.date()
    report = progress or (lambda _step, _done, _total: None)
    total = len(world.resources) + 2
    report("Creating departments and users", 0, total)
    t0 = hist.start_time(now, WorkCalendar.from_settings()) if history else None
    with _clock(t0) as move:
        with session_factory() as session:
            people, publishers = _people(session, world.departments, seed)
        summary = DemoSummary(scale=scale, as_of=as_of, departments=list(world.departments),
                              users=[])
        registers = registers_for(world, seed, as_of)
        summary.resources += _register_all(session_factory, world, registers, publishers,
                                           report, _ticker(move, t0, len(world.resources)))
        if t0 is not None:
            report("Replaying six months of sharing", total - 1, total)
            with tempfile.TemporaryDirectory(prefix="govshare-demo-fix-") as tmp:
                summary.history = hist.replay_history(
                    move, start=t0 + timedelta(hours=8), end=now, scale=scale, seed=seed,
                    resources={r.key: r.code for r in summary.resources},
                    rows={r.key: r.rows for r in summary.resources},
                    defects={r.key: r.defects for r in summary.resources},
                    correct=_corrector(world, registers, Path(tmp)))
    with session_factory() as session:
        summary.users = _issue_tokens(session, people)
        if t0 is not None:
            _refresh(session, summary.resources, now)
    if summary.history is not None:
        # At the real time, after the refresh: the generated data runs up to today, so a run
        # dated in the replay's past would find "future" dates and stale data everywhere.
        report("Verifying answered rectification notices", total - 1, total)
        hist.verify_answered(summary.history)
    summary.seconds = time.perf_counter() - started
    report("Done", total, total)
    return summary


def _corrector(world: WorldSpec, registers: Registers,
               directory: Path) -> Callable[[str, str], Path]:
    """A department's correction: the resource's data regenerated with the rows of one
    defect kind correct again (every other defect stays as it was)."""
    from govshare_demo.spec import DefectKind

    specs = {s.key: s for s in world.resources}

    def correct(key: str, kind: str) -> Path:
        path, _ = generate_file(specs[key], registers, directory, frozenset({DefectKind(kind)}))
        return path
    return correct


@contextmanager
def _clock(start: datetime | None) -> Iterator[Move]:
    """The simulated clock from ``start``; the real one (moves ignored) without history."""
    if start is None:
        yield lambda _to: None
        return
    with simulated_clock(start) as move:
        yield move


def _ticker(move: Move, start: datetime | None, count: int) -> Callable[[int], None]:
    """Moves the clock for the n-th registration: publishers register one resource every few
    minutes on the first day (all within its working hours, whatever the scale)."""
    step = timedelta(hours=7) / max(count, 1)

    def tick(n: int) -> None:
        if start is not None:
            move(start + n * min(step, timedelta(minutes=3)))
    return tick


def _refresh(session: Session, made: list[DemoResource], now: datetime) -> None:
    """The generated data runs up to the build day, and providers keep it current: resources
    not deliberately stale were last updated now, not when they were registered."""
    fresh = {r.code for r in made if not r.stale_days}
    for resource in session.exec(select(Resource).where(col(Resource.code).in_(fresh))):
        resource.last_data_update = now
        session.add(resource)


# --- departments and users -------------------------------------------------------------------

def _people(session: Session, departments: tuple[DepartmentSpec, ...],
            seed: int) -> tuple[list[DemoUser], dict[str, Principal]]:
    """Departments, one user per role, and each department's publisher."""
    rng = np.random.default_rng([seed, 1])
    count = sum(len(d.roles) for d in departments)
    names = iter(pools.person_names(rng, pools.Pools.build(), rng.random(count) < 0.5)
                 .to_pylist())
    users: list[DemoUser] = []  # tokens come later (``_issue_tokens``)
    publishers: dict[str, Principal] = {}
    for spec in departments:
        dept = identity.create_department(session, code=spec.code, name_zh=spec.name_zh,
                                          name_en=spec.name_en, kind=spec.kind, level=spec.level)
        for role in spec.roles:
            user = identity.create_user(
                session, username=f"{spec.code.lower()}-{role.value}",
                display_name=f"{next(names)}（{ROLE_TITLES[role]}）", department=spec.code,
                roles=[role])
            users.append(DemoUser(user.username, user.display_name, spec.code, [role.value],
                                  token=""))
            if role is Role.publisher:
                # The publisher doubles as the department's data commissioner (数据专员).
                dept.commissioner = user.display_name.split("（")[0]
                dept.contact = f"data-{spec.code.lower()}@example.gov.cn"
                publishers[spec.code] = Principal(
                    user_id=user.id or 0, username=user.username, department_id=dept.id or 0,
                    department_code=dept.code, roles=frozenset({role}), token_id=0)
    return users, publishers


def _issue_tokens(session: Session, people: list[DemoUser]) -> list[DemoUser]:
    """Tokens at the real time (after any history), so they are valid for TOKEN_DAYS now."""
    users = []
    for person in people:
        user = session.exec(select(identity.User)
                            .where(identity.User.username == person.username)).one()
        _, plain = identity.issue_token(session, user, name="demo", days=TOKEN_DAYS)
        users.append(dataclasses.replace(person, token=plain))
    return users


# --- resources -------------------------------------------------------------------------------

def _register_all(session_factory: SessionFactory, world: WorldSpec, registers: Registers,
                  publishers: dict[str, Principal], report: Progress,
                  tick: Callable[[int], None]) -> Iterator[DemoResource]:
    total = len(world.resources) + 2
    with tempfile.TemporaryDirectory(prefix="govshare-demo-") as tmp:
        # ``done`` counts the finished steps: departments and users, then each resource.
        for done, spec in enumerate(world.resources, start=1):
            report(f"{spec.provider} · {spec.meta.name}", done, total)
            tick(done)
            path, rows = generate_file(spec, registers, Path(tmp))
            try:
                with session_factory() as session:
                    resource = _register(session, spec, publishers[spec.provider], path,
                                         registers)
            finally:
                path.unlink(missing_ok=True)
            yield DemoResource(
                key=spec.key, code=resource.code, name=spec.meta.name, provider=spec.provider,
                rows=rows, file_format=spec.file_format.value,
                defects=sorted({d.kind.value for d in spec.defects}),
                stale_days=spec.stale_days)


def _register(session: Session, spec: ResourceSpec, publisher: Principal, path: Path,
              registers: Registers) -> Resource:
    # Imported here: the catalog service pulls in the warehouse, which the specs and
    # generators (and their tests) do not need.
    from catalog.service import register_resource

    resource = register_resource(session, publisher, spec.meta, path, filename=spec.filename)
    _backdate(session, resource, spec, registers)
    return resource


def _backdate(session: Session, resource: Resource, spec: ResourceSpec,
              registers: Registers) -> None:
    """Give the resource a history: published some months ago, and, if the spec makes it
    stale, last updated ``stale_days`` ago (the data's newest as-of date says the same)."""
    rng = registers.rng(f"published:{spec.key}")
    # Published (in the department's own catalogue) before it was registered here.
    published = min(registers.as_of - timedelta(days=int(rng.integers(30, 900))),
                    utcnow().date())
    if spec.stale_days:
        updated = _update_time(registers.as_of - timedelta(days=spec.stale_days))
        resource.last_data_update = updated
        version = session.exec(select(DataVersion).where(
            DataVersion.resource_id == resource.id,
            DataVersion.version == resource.current_version)).one()
        version.created_at = updated
        session.add(version)
        published = min(published, updated.date())
    resource.published_at = published
    session.add(resource)
    session.flush()


def _update_time(day: date) -> datetime:
    hour, minute = UPDATE_TIME_UTC
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=UTC)
