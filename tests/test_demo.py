"""The demo world: valid identifiers, consistent specs, exactly the recorded defects.

Generators are tested on a small world (1% of the default rows, about 12,000 rows in all);
the database build is tested once, at the tiny scale.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator
from datetime import date, timedelta
from functools import cache
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from govshare_demo import (
    DefectKind,
    ResourceSpec,
    build_world,
    ids,
    vocab,
    world_is_empty,
    world_spec,
)
from govshare_demo.build import registers_for
from govshare_demo.city import SHAPE_ITEMS
from govshare_demo.generate import generate_table, write_table
from govshare_demo.pools import Registers
from govshare_demo.spec import WorldSpec
from govshare_demo.world import default_world
from sqlmodel import func, select
from stdnum import luhn
from stdnum.cn import ric
from stdnum.cn import uscc as stdnum_uscc

from catalog.models import (
    DUCKDB_TYPES,
    DataVersion,
    ItemKind,
    ItemType,
    Resource,
    SecurityLevel,
    SharingType,
)
from catalog.schemas import DataItemIn, ResourceIn
from kernel import db, identity

AS_OF = date(2025, 6, 30)
SEED = 7
SCALE = 0.01
MOBILE = re.compile(r"^1[3-9]\d{9}$")

Generated = dict[str, tuple[ResourceSpec, pa.Table]]


@cache
def city() -> WorldSpec:
    return world_spec("city", SEED)


def small_world(seed: int = SEED) -> tuple[list[ResourceSpec], Registers]:
    world = default_world(SCALE)
    return list(world.resources), registers_for(world, seed, AS_OF)


@pytest.fixture(scope="module")
def generated() -> Generated:
    specs, registers = small_world()
    return {spec.key: (spec, generate_table(spec, registers)) for spec in specs}


def cases(generated: Generated) -> Iterator[tuple[ResourceSpec, pa.Table]]:
    yield from generated.values()


def expected(spec: ResourceSpec, table: pa.Table, kind: DefectKind, column: str | None) -> int:
    return sum(d.rows(table.num_rows) for d in spec.defects
               if d.kind is kind and d.column == column)


def columns_of(spec: ResourceSpec, kind: ItemKind) -> list[str]:
    return [i.name for i in spec.meta.items if i.kind is kind]


def values(table: pa.Table, column: str) -> list[str]:
    return [v for v in table.column(column).to_pylist() if v is not None]


# --- identifiers -----------------------------------------------------------------------------

def test_resident_ids_are_valid_except_the_deliberately_broken(generated: Generated) -> None:
    checked = 0
    for spec, table in cases(generated):
        for column in columns_of(spec, ItemKind.resident_id):
            invalid = [v for v in values(table, column) if not ric.is_valid(v)]
            assert len(invalid) == expected(spec, table, DefectKind.invalid_resident_id,
                                            column), (spec.key, column, invalid[:3])
            checked += len(values(table, column))
    assert checked > 5000


def test_some_resident_ids_end_in_x(generated: Generated) -> None:
    _, population = generated["ga.population"]
    endings = pd.Series(population.column("resident_id").to_pylist()).str[-1]
    assert 0.05 < (endings == "X").mean() < 0.15  # one in eleven, as the check digit goes


def test_credit_codes_are_valid_except_the_deliberately_broken(generated: Generated) -> None:
    checked = 0
    for spec, table in cases(generated):
        for column in columns_of(spec, ItemKind.uscc):
            invalid = [v for v in values(table, column) if not stdnum_uscc.is_valid(v)]
            assert len(invalid) == expected(spec, table, DefectKind.invalid_uscc, column), (
                spec.key, column, invalid[:3])
            checked += len(values(table, column))
    assert checked > 1000


def test_mobiles_are_chinese_mobiles_except_the_deliberately_broken(
        generated: Generated) -> None:
    for spec, table in cases(generated):
        for column in columns_of(spec, ItemKind.mobile):
            invalid = [v for v in values(table, column) if not MOBILE.match(v)]
            assert len(invalid) == expected(spec, table, DefectKind.invalid_mobile, column), (
                spec.key, column, invalid[:3])


def test_bank_cards_pass_luhn(generated: Generated) -> None:
    for spec, table in cases(generated):
        for column in columns_of(spec, ItemKind.bank_card):
            assert all(luhn.is_valid(v) and len(v) == 19 for v in values(table, column))


def id_and_birth_columns(spec: ResourceSpec) -> tuple[str, str] | None:
    """The resident ID the row's birth date belongs to, if the resource has exactly one."""
    id_columns = columns_of(spec, ItemKind.resident_id)
    if "birth_date" not in {i.name for i in spec.meta.items} or len(id_columns) != 1:
        return None
    return id_columns[0], "birth_date"


def test_birth_dates_agree_with_ids_except_deliberate_mismatches(generated: Generated) -> None:
    checked = 0
    for spec, table in cases(generated):
        pair = id_and_birth_columns(spec)
        if pair is None:
            continue
        frame = table.select(list(pair)).to_pandas().dropna()
        from_id = pd.to_datetime(frame[pair[0]].str[6:14], format="%Y%m%d").dt.date
        mismatches = int((from_id != frame[pair[1]]).sum())
        assert mismatches == expected(spec, table, DefectKind.birth_date_mismatch, "birth_date"), (
            spec.key)
        checked += len(frame)
    assert checked > 3000


def test_sex_agrees_with_the_id_sequence_number(generated: Generated) -> None:
    for spec, table in cases(generated):
        pair = id_and_birth_columns(spec)
        if pair is None or "gender" not in table.column_names:
            continue
        frame = table.select([pair[0], "gender"]).to_pandas().dropna()
        odd = frame[pair[0]].str[16].astype(int) % 2 == 1
        assert ((frame["gender"] == "男") == odd).all(), spec.key


def test_check_characters_match_the_standards() -> None:
    rng = np.random.default_rng(1)
    bodies = rng.integers(10**16, 10**17, 2000)
    assert all(ric.calc_check_digit(n) == n[-1] for n in ids.resident_ids(bodies).to_pylist())
    codes = ids.usccs(rng, ["91", "92", "52", "12"] * 250,
                      rng.choice([440304, 440306], 1000)).to_pylist()
    assert all(stdnum_uscc.is_valid(c) for c in codes)
    assert all(_org_code_check(c[8:16]) == c[16] for c in codes)
    vin = ids.vins(np.random.default_rng(2), ["1M8"], np.array([2019]))[0].as_py()
    assert _vin_check(vin) == vin[8]
    assert _vin_check("1M8GDM9AXKP042788") == "X"  # the textbook example


def _org_code_check(code: str) -> str:
    """GB 11714, written out plainly."""
    total = sum(int(c, 36) * w for c, w in zip(code, (3, 7, 9, 10, 5, 8, 4, 2), strict=True))
    check = 11 - total % 11
    return {10: "X", 11: "0"}.get(check, str(check))


def _vin_check(vin: str) -> str:
    values = dict(zip("ABCDEFGHJKLMNPRSTUVWXYZ", [1, 2, 3, 4, 5, 6, 7, 8, 1, 2, 3, 4, 5, 7, 9,
                                                   2, 3, 4, 5, 6, 7, 8, 9], strict=True))
    weights = (8, 7, 6, 5, 4, 3, 2, 10, 0, 9, 8, 7, 6, 5, 4, 3, 2)
    total = sum((int(c) if c.isdigit() else values[c]) * w
                for c, w in zip(vin, weights, strict=True))
    return "X" if total % 11 == 10 else str(total % 11)


def test_every_birth_region_is_valid_for_some_year() -> None:
    for code in (*vocab.BIRTH_REGIONS_LOCAL, *vocab.BIRTH_REGIONS_MIGRANT):
        assert ids.region_valid_years(code), code
    assert ids.region_valid_in(440309, 2016) and not ids.region_valid_in(440309, 2015)


# --- specs -----------------------------------------------------------------------------------

def test_default_world_shape() -> None:
    world = world_spec("default")
    assert len(world.departments) == 12
    assert 45 <= len(world.resources) <= 60
    assert 500_000 <= sum(s.rows for s in world.resources) <= 1_500_000
    assert max(s.rows for s in world.resources) == 300_000
    sharing = pd.Series([s.meta.sharing_type.value for s in world.resources]).value_counts()
    assert sharing["conditional"] > sharing["unconditional"] > sharing["not_shareable"] > 0
    core = [s for s in world.resources if s.meta.security_level is SecurityLevel.core]
    assert 1 <= len(core) <= 2
    formats = {s.file_format.value for s in world.resources}
    assert formats == {"parquet", "csv", "jsonl"}
    roles = {r for d in world.departments for r in d.roles}
    assert roles == set(identity.Role)


@pytest.mark.parametrize("scale", ["default", "city"])
def test_specs_are_internally_consistent(scale: str) -> None:
    world = city() if scale == "city" else world_spec(scale, SEED)
    resources = world.resources
    codes = {d.code for d in world.departments}
    assert len({s.key for s in resources}) == len(resources)
    for spec in resources:
        check_spec(spec, codes)


def check_spec(spec: ResourceSpec, departments: set[str]) -> None:
    meta = ResourceIn.model_validate(spec.meta.model_dump())  # survives a round trip
    items = {i.name: i for i in meta.items}
    assert spec.provider in departments, spec.key
    assert meta.date_item in items and items[meta.date_item].type in (ItemType.date,
                                                                     ItemType.datetime)
    assert any(i.is_key for i in meta.items), spec.key
    for it in meta.items:
        assert it.title and it.title_en, (spec.key, it.name)
        assert it.kind is not ItemKind.code or it.code_list, (spec.key, it.name)
        assert not it.is_key or it.required, (spec.key, it.name)
    if meta.security_level is SecurityLevel.core:
        assert meta.sharing_type is SharingType.not_shareable
    assert meta.name_en and meta.summary and meta.keywords
    check_defects(spec, items)


KIND_OF_DEFECT = {DefectKind.invalid_resident_id: ItemKind.resident_id,
                  DefectKind.invalid_uscc: ItemKind.uscc,
                  DefectKind.invalid_mobile: ItemKind.mobile,
                  DefectKind.birth_date_mismatch: ItemKind.birth_date,
                  DefectKind.code_not_in_list: ItemKind.code}


def check_defects(spec: ResourceSpec, items: dict[str, DataItemIn]) -> None:
    for defect in spec.defects:
        if defect.kind is DefectKind.stale:
            period = spec.meta.update_cycle.period
            assert period is not None and defect.days > period.days, spec.key
            continue
        if defect.kind is DefectKind.duplicate_key:
            continue
        item = items[str(defect.column)]
        if defect.kind is DefectKind.null_required:
            assert item.required, (spec.key, defect)
        else:
            assert item.kind is KIND_OF_DEFECT[defect.kind], (spec.key, defect)


def test_the_defects_catalogue_covers_every_kind() -> None:
    world = default_world()
    kinds = {d.kind for s in world.resources for d in s.defects}
    # Duplicate keys cannot be registered (catalog.ingest refuses them): not in the world.
    assert kinds == set(DefectKind) - {DefectKind.duplicate_key}
    stale = [s for s in world.resources if s.stale_days]
    assert len(stale) >= 5
    clean = [s for s in world.resources if not s.defects]
    assert len(clean) >= len(world.resources) // 3  # quality scores must differ


def test_city_scale_has_the_reported_size() -> None:
    world = city()
    kinds = pd.Series([d.kind.value for d in world.departments]).value_counts()
    assert len(world.departments) == 62 + 9
    assert kinds["district"] == 9
    assert all(d.level.value == "district" for d in world.departments
               if d.kind.value == "district")
    assert len(world.resources) == 2271
    providers = {s.provider for s in world.resources}
    assert providers == {d.code for d in world.departments if identity.Role.publisher in d.roles}
    assert all(200 <= s.rows <= 5000 for s in world.resources)
    names = [(s.provider, s.meta.name) for s in world.resources]
    assert len(set(names)) == len(names)


# --- generated data --------------------------------------------------------------------------

def test_generated_tables_match_the_declared_items(generated: Generated) -> None:
    for spec, table in cases(generated):
        assert table.column_names == [i.name for i in spec.meta.items], spec.key
        assert table.num_rows >= 30, spec.key


def test_files_match_the_declared_items(generated: Generated, tmp_path: Path) -> None:
    """What a registration reads back: every column is declared and casts to its type."""
    with duckdb.connect() as con:
        for spec, table in cases(generated):
            path = write_table(table, tmp_path / spec.filename, spec.file_format)
            reader = {"parquet": "read_parquet", "csv": "read_csv",
                      "jsonl": "read_json"}[spec.file_format.value]
            source = f"{reader}('{path}')"
            found = [r[0] for r in con.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()]
            assert found == [i.name for i in spec.meta.items], spec.key
            for it in spec.meta.items:
                bad = con.execute(
                    f"SELECT count(*) FROM {source} WHERE {it.name} IS NOT NULL AND "
                    f"TRY_CAST({it.name} AS {DUCKDB_TYPES[it.type]}) IS NULL").fetchone()
                assert bad == (0,), (spec.key, it.name)


def test_required_items_are_null_only_where_deliberate(generated: Generated) -> None:
    for spec, table in cases(generated):
        for it in spec.meta.items:
            if it.required:
                nulls = table.column(it.name).null_count
                assert nulls == expected(spec, table, DefectKind.null_required, it.name), (
                    spec.key, it.name)


def test_codes_come_from_their_lists_except_deliberately(generated: Generated) -> None:
    for spec, table in cases(generated):
        for it in spec.meta.items:
            if it.code_list:
                outside = [v for v in values(table, it.name) if v not in it.code_list]
                assert len(outside) == expected(spec, table, DefectKind.code_not_in_list,
                                                it.name), (spec.key, it.name, outside[:3])


def test_keys_are_unique_except_deliberate_duplicates(generated: Generated) -> None:
    for spec, table in cases(generated):
        keys = [i.name for i in spec.meta.items if i.is_key]
        repeated = int(table.select(keys).to_pandas().duplicated().sum())
        assert repeated == expected(spec, table, DefectKind.duplicate_key, None), spec.key


def test_newest_as_of_date_is_the_last_update(generated: Generated) -> None:
    for spec, table in cases(generated):
        newest = pd.Timestamp(table.column(str(spec.meta.date_item)).to_pandas().max()).date()
        assert newest == AS_OF - timedelta(days=spec.stale_days), spec.key


def test_generation_is_deterministic_with_the_seed() -> None:
    picks = ("ga.population", "rsj.pension", "zjj.contract_filing", "sjj.hotline")
    specs, first = small_world()
    chosen = [s for s in specs if s.key in picks]
    _, again = small_world()
    _, other = small_world(seed=SEED + 1)
    for spec in chosen:
        table = generate_table(spec, first)
        assert table.equals(generate_table(spec, again)), spec.key
        assert not table.equals(generate_table(spec, other)), spec.key


def test_every_city_template_generates_consistent_data() -> None:
    world = city()
    registers = Registers(seed=SEED, as_of=AS_OF, population_size=3000, enterprise_size=1000)
    shapes: dict[str, ResourceSpec] = {}
    for spec in world.resources:
        shapes.setdefault(spec.generator, spec)
    assert {g.removeprefix("template.") for g in shapes if g.startswith("template.")} == set(
        SHAPE_ITEMS)
    for full_size in shapes.values():
        spec = dataclasses.replace(full_size, rows=300)  # stdnum's validation is slow
        table = generate_table(spec, registers)
        assert table.column_names == [i.name for i in spec.meta.items], spec.key
        for column in columns_of(spec, ItemKind.resident_id):
            invalid = [v for v in values(table, column) if not ric.is_valid(v)]
            assert len(invalid) == expected(spec, table, DefectKind.invalid_resident_id, column)


# --- building into the database --------------------------------------------------------------

def test_tiny_world_builds_into_the_catalog(data_dir: Path) -> None:
    from govshare.migrate import upgrade
    from kernel.auth import authenticate

    upgrade()
    with db.session_scope() as session:
        assert world_is_empty(session)
    steps: list[tuple[str, int, int]] = []
    # Without the sharing history (tests/test_demo_history.py builds one with it).
    summary = build_world(db.session_scope, scale="tiny", history=False,
                          progress=lambda s, done, total: steps.append((s, done, total)))
    world = world_spec("tiny")
    assert summary.resource_count == len(world.resources)
    assert len(summary.users) == sum(len(d.roles) for d in world.departments)
    assert steps[-1][1] == steps[-1][2] == len(world.resources) + 2
    # A read-only session: authenticating records the token's use in a write of its own.
    with db.session_scope(write=False) as session:
        assert not world_is_empty(session)
        assert len(identity.list_departments(session)) == 12
        resources = {r.code: r for r in session.exec(select(Resource))}
        assert len(resources) == summary.resource_count
        assert session.exec(select(func.count()).select_from(DataVersion)).one() == len(resources)
        for made in summary.resources:
            stored = resources[made.code]
            assert stored.row_count == made.rows
            assert stored.last_data_update is not None
            age = summary.as_of - stored.last_data_update.date()
            assert age.days == made.stale_days, made.key
            assert stored.published_at <= stored.last_data_update.date()
        principal = authenticate(session, summary.token("SJJ", identity.Role.auditor))
        assert principal.department_code == "SJJ" and principal.roles == {identity.Role.auditor}


def test_the_cli_prints_whole_tokens_on_a_narrow_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tokens are shown once: a table cell cut them short at 80 columns or in a pipe."""
    import io
    from types import SimpleNamespace

    from govshare_demo.cli import _print_demo
    from rich.console import Console

    from govshare import cli

    out = io.StringIO()
    monkeypatch.setattr(cli, "console", Console(file=out, width=40, color_system=None))
    token = "gs_" + "A" * 20 + "-_" + "b" * 21
    user = SimpleNamespace(username="sjj-leader", department="SJJ", roles=["leader"],
                           token=token)
    _print_demo(SimpleNamespace(users=[user], resource_count=1), as_json=False)
    assert token in out.getvalue()
