"""Masking rules on edge values, executed as DuckDB SQL; keys; tightening; row filters; the
raw-PII blocker and k-anonymity (unit and end to end)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import random
import re
from datetime import date
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pytest
from sqlmodel import select
from stdnum.cn import ric

from access import masking, pii, pseudonym
from access.masking import ColumnRule, Generalization, MaskingRule, RowFilter
from access.models import PseudonymKey
from catalog.models import DataItem, ItemKind, ItemType, Sensitivity
from kernel import db, secrets
from kernel.identity import Role
from kernel.problems import Invalid
from tests.test_access_support import (  # noqa: F401  (access_world: the aw fixture)
    PEOPLE_ITEMS,
    AccessWorld,
    access_world,
    file_app,
    log_types,
    people_rows,
    register,
    resident_id,
)

AS_OF = date(2026, 5, 1)
KEY = bytes(range(32))


def item(name: str, type_: ItemType = ItemType.string, kind: ItemKind | None = None,
         sensitivity: Sensitivity = Sensitivity.personal, is_key: bool = False) -> DataItem:
    return DataItem(name=name, type=type_, kind=kind, sensitivity=sensitivity, is_key=is_key,
                    position=0, resource_id=0)


def run(it: DataItem, rule: ColumnRule, values: list[Any], *, csv: bool = False,
        key: bytes = KEY) -> list[Any]:
    """Mask ``values`` (one column) with ``rule`` in DuckDB and return the output column."""
    con = duckdb.connect()
    sql_type = {ItemType.string: "VARCHAR", ItemType.date: "DATE", ItemType.decimal: "DOUBLE",
                ItemType.integer: "BIGINT"}[it.type]
    con.execute(f'CREATE TABLE data ("{it.name}" {sql_type})')
    con.executemany("INSERT INTO data VALUES (?)", [[v] for v in values])
    pseudonym.install(con, key)
    (out,) = masking.compile_columns([it], {it.name: rule}, as_of=AS_OF, csv=csv)
    return [r[0] for r in con.execute(f"SELECT {out.sql} FROM data").fetchall()]


PARTIAL = ColumnRule(rule=MaskingRule.partial)
PSEUDO = ColumnRule(rule=MaskingRule.pseudonymize)


def gen(method: Generalization, width: float | None = None) -> ColumnRule:
    return ColumnRule(rule=MaskingRule.generalize, method=method, width=width)


# --- partial masking --------------------------------------------------------------------------

def test_partial_masking_of_resident_ids_on_edge_values() -> None:
    ids = ["44030419900307002X", "440304900307002", "4403", "", None, "44030419900307002x"]
    got = run(item("id", kind=ItemKind.resident_id), PARTIAL, ids)
    assert got == ["440304********002X", "440304******002", "****", "", None,
                   "440304********002x"]


def test_partial_masking_of_names_mobiles_cards_emails() -> None:
    assert run(item("n", kind=ItemKind.person_name), PARTIAL,
               ["张三", "欧阳娜娜", "李", "", None]) == ["张*", "欧阳**", "*", "", None]
    assert run(item("m", kind=ItemKind.mobile), PARTIAL,
               ["13812345678", "1381", "", None]) == ["138****5678", "****", "", None]
    assert run(item("c", kind=ItemKind.bank_card), PARTIAL,
               ["6222021234567890123"]) == ["***************0123"]
    assert run(item("e", kind=ItemKind.email), PARTIAL, ["zhang@example.com", "x"]) == \
        ["z***@example.com", "*"]


def test_partial_on_a_column_declared_not_personal_still_masks() -> None:
    # The approver tightened "keep" to "partial": it must not pass values through.
    plain = item("note", sensitivity=Sensitivity.none)
    assert run(plain, PARTIAL, ["备注内容", None]) == ["***", None]


# --- pseudonymisation -------------------------------------------------------------------------

def test_pseudonyms_are_hmac_sha256_computed_in_sql() -> None:
    ids = ["44030419900307002X", "44030419900307002x", " 44030419900307002X ", "", None,
           "440304900307002", "1"]
    got = run(item("id", kind=ItemKind.resident_id), PSEUDO, ids)
    expected = hmac.new(KEY, b"44030419900307002X", hashlib.sha256).hexdigest()[:32]
    assert got[0] == expected
    assert got[0] == got[1] == got[2]  # the same person however the X and spaces are written
    assert got[3] == "" and got[4] is None
    assert got[5] == pseudonym.pseudonym(KEY, "440304900307002", ItemKind.resident_id)
    assert all(re.fullmatch(pseudonym.TOKEN_PATTERN, g) for g in (got[0], got[5], got[6]))


NORMALISATION_CASES: list[str | None] = [
    "44030419900307002x", "\u300044030419900307002X\t", " 138 1234-5678 ", "１３８１２３４５６７８",
    "Zhang.San@Example.COM", "ÄÖ@x.cn", "张三", "\u3000", " \t", "x" * 300, None, ""]


@pytest.mark.parametrize("native", [True, False], ids=["native", "sql"])
def test_both_hmac_implementations_equal_pythons_hmac(native: bool) -> None:
    """The native functions and the SQL macros give Python's hmac tokens, for every
    normalisation, over whole vectors (5,000 values span several DuckDB vectors), multi-byte
    text, long values, NULLs, empty values and values that normalise to nothing."""
    from access import native as native_hmac

    if native:
        from tests.test_native import NOT_INSTALLED

        if NOT_INSTALLED:
            pytest.skip("the native extension is not built here: the sql case covers it")
        assert native_hmac.load() is not None, (
            "the native extension is missing or failed its self-test: "
            f"{native_hmac.status().detail} (build it with `pip install -e .`, or "
            "`python setup.py build_ext --inplace` in a worktree)")
    key = os.urandom(32)
    values: list[str | None] = [f"{i:018d}" for i in range(5000)] + NORMALISATION_CASES
    con = duckdb.connect()
    con.execute("CREATE TABLE t (v VARCHAR)")
    con.executemany("INSERT INTO t VALUES (?)", [[v] for v in values])
    pseudonym.install(con, key, native=native)
    for kind in (None, ItemKind.resident_id, ItemKind.mobile, ItemKind.email):
        got = [r[0] for r in con.execute(
            f"SELECT {pseudonym.hmac_sql('v', kind)} FROM t ORDER BY rowid").fetchall()]
        assert got == [None if v is None else pseudonym.pseudonym(key, v, kind)
                       for v in values], kind
    con.close()


def test_the_c_api_path_equals_pythons_hmac(tmp_path: Path) -> None:
    """Deliveries run their COPY on a connection of their own with the functions registered
    through DuckDB's C API: same tokens for every normalisation, over a stored table (its
    compressed columns arrive as dictionary vectors), NULLs, empty and long values."""
    from access import native

    lib = native.load()
    if lib is None or lib.api is None:
        pytest.skip("no C compiler or no DuckDB C API: deliveries use the Arrow function")
    key = os.urandom(32)
    values = [*NORMALISATION_CASES, *(f"{i % 50:018d}" for i in range(5000))]
    db_path, out = tmp_path / "t.duckdb", tmp_path / "t.csv"
    con = duckdb.connect(str(db_path))
    con.execute("CREATE TABLE t (i INTEGER, v VARCHAR)")
    con.executemany("INSERT INTO t VALUES (?, ?)", list(enumerate(values)))
    con.execute("CHECKPOINT")
    con.close()
    kinds = [None, ItemKind.resident_id, ItemKind.mobile, ItemKind.email]
    columns = ", ".join(f"{pseudonym.hmac_sql('v', k)} AS p{n}" for n, k in enumerate(kinds))
    rows = native.copy(lib, key, pseudonym.functions(), [
        f"ATTACH '{db_path}' AS s (READ_ONLY)", "CREATE TEMP VIEW t AS SELECT * FROM s.t",
        f"COPY (SELECT i, {columns} FROM t ORDER BY i) TO '{out}' (HEADER)"], 32)
    assert rows == len(values)
    got = duckdb.connect().execute(
        f"SELECT * FROM read_csv('{out}', header=true, all_varchar=true)").fetchall()
    for n, kind in enumerate(kinds):
        assert [r[1 + n] for r in got] == [
            None if v is None else pseudonym.pseudonym(key, v, kind) or None for v in values]


def test_the_c_api_path_reports_duckdbs_error() -> None:
    from access import native

    lib = native.load()
    if lib is None or lib.api is None:
        pytest.skip("no C compiler or no DuckDB C API")
    with pytest.raises(native.CopyFailed, match="no_such_table"):
        native.copy(lib, KEY, pseudonym.functions(), ["SELECT * FROM no_such_table"], 32)


def test_normalisation_makes_one_person_one_pseudonym() -> None:
    """Trimmed of ASCII whitespace and the ideographic space; IDs and e-mails case-folded
    (ASCII only); mobiles reduced to ASCII digits (full-width digits are not digits here:
    they are a different string, and masking never guesses)."""
    p = pseudonym.pseudonym
    rid, mob, mail = ItemKind.resident_id, ItemKind.mobile, ItemKind.email
    assert p(KEY, "\u300044030419900307002x\t", rid) == p(KEY, "44030419900307002X", rid)
    assert p(KEY, "+86 138-1234-5678", mob) == p(KEY, "8613812345678", mob)
    assert p(KEY, " Zhang@Example.COM", mail) == p(KEY, "zhang@example.com", mail)
    assert p(KEY, "ÄÖ@x.cn", mail) != p(KEY, "äö@x.cn", mail)
    assert p(KEY, "１３８１２３４５６７８", mob) == ""
    assert p(KEY, "\u3000 ", None) == "" and p(KEY, "张 三", None) != p(KEY, "张三", None)
    hmac_of = hmac.new(KEY, b"13812345678", hashlib.sha256).hexdigest()[:32]
    assert p(KEY, "138 1234 5678", mob) == hmac_of


def test_two_departments_cannot_link_their_pseudonyms() -> None:
    ids = [resident_id(i) for i in range(50)]
    mine = run(item("id", kind=ItemKind.resident_id), PSEUDO, ids, key=KEY)
    again = run(item("id", kind=ItemKind.resident_id), PSEUDO, ids, key=KEY)
    theirs = run(item("id", kind=ItemKind.resident_id), PSEUDO, ids, key=os.urandom(32))
    assert mine == again  # one department joins its own deliveries
    assert not set(mine) & set(theirs)


def test_keys_are_encrypted_at_rest_and_bound_to_their_department(aw: AccessWorld) -> None:
    with db.session_scope() as session:
        key_a = pseudonym.department_key(session, 1)
        key_b = pseudonym.department_key(session, 2)
        assert pseudonym.department_key(session, 1) == key_a and key_a != key_b
        rows = {r.department_id: r for r in session.exec(select(PseudonymKey))}
        assert key_a not in rows[1].ciphertext
        # Swapping the stored rows of two departments must not yield a usable key.
        rows[1].ciphertext, rows[1].nonce, rows[1].salt = (rows[2].ciphertext, rows[2].nonce,
                                                           rows[2].salt)
        session.flush()
        with pytest.raises(pseudonym.KeyUnavailable):
            pseudonym.department_key(session, 1)
        session.rollback()


def test_another_master_secret_cannot_decrypt(aw: AccessWorld,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from kernel.settings import get_settings

    with db.session_scope() as session:
        pseudonym.department_key(session, 1)
    monkeypatch.setenv("GOVSHARE_MASTER_SECRET", _b64(os.urandom(32)))
    get_settings.cache_clear()
    secrets.forget()
    with db.session_scope() as session, pytest.raises(pseudonym.KeyUnavailable,
                                                      match="does not hold"):
        pseudonym.department_key(session, 1)


def test_master_rotation_reseals_keys_and_keeps_pseudonyms(aw: AccessWorld) -> None:
    from kernel.settings import get_settings

    with db.session_scope() as session:
        before = pseudonym.department_key(session, 1)
        old_kid = session.get(PseudonymKey, 1).kid  # type: ignore[union-attr]
    new_master = secrets.rotate_master(get_settings())
    with db.session_scope() as session:  # still readable before the re-seal (old master kept)
        assert pseudonym.department_key(session, 1) == before
        assert pseudonym.rewrap_all(session) >= 1
    secrets.drop_old_masters(get_settings())
    with db.session_scope() as session:
        row = session.get(PseudonymKey, 1)
        assert row is not None and row.kid is not None and row.kid != old_kid
        assert row.kid.startswith(new_master)
        assert pseudonym.department_key(session, 1) == before  # same key: same pseudonyms


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


# --- generalisation and suppression -----------------------------------------------------------

def test_birth_dates_become_years_or_age_bands() -> None:
    dates = [date(1990, 3, 7), date(1985, 5, 2), date(2026, 4, 30), None]
    born = item("b", ItemType.date, ItemKind.birth_date)
    assert run(born, gen(Generalization.year), dates) == [1990, 1985, 2026, None]
    assert run(born, gen(Generalization.month), dates) == ["1990-03", "1985-05", "2026-04", None]
    # Ages on 2026-05-01: 36, 40 (birthday on 05-02 not reached: 40), 0.
    assert run(born, gen(Generalization.age_band), dates) == ["30-39", "40-49", "0-9", None]
    text = item("b", ItemType.string, ItemKind.birth_date)
    assert run(text, gen(Generalization.year), ["1990-03-07", "19900307", "", "garbage",
                                                None]) == [1990, 1990, None, None, None]


def test_addresses_become_districts() -> None:
    addresses = ["广东省深圳市福田区华强北路1号", "广西壮族自治区南宁市青秀区民族大道100号",
                 "新疆维吾尔自治区伊犁哈萨克自治州伊宁县解放路", "深圳市XX小区3栋1201",
                 "上海市浦东新区世纪大道", "北京", "", None]
    got = run(item("a", kind=ItemKind.address), gen(Generalization.district), addresses)
    assert got == ["广东省深圳市福田区", "广西壮族自治区南宁市青秀区",
                   "新疆维吾尔自治区伊犁哈萨克自治州伊宁县", "深圳市", "上海市浦东新区", None,
                   "", None]


def test_amounts_become_ranges() -> None:
    amounts = [1234.5, 0.0, -56.7, 0.35, 999.0, 1000.0, 7.0, None, 12345678.9]
    got = run(item("x", ItemType.decimal, ItemKind.amount), gen(Generalization.range), amounts)
    assert got == ["[1000, 2000)", "0", "(-60, -50]", "[0.3, 0.4)", "[900, 1000)",
                   "[1000, 2000)", "[7, 8)", None, "[10000000, 20000000)"]
    fixed = run(item("x", ItemType.decimal), gen(Generalization.range, 500), [1234.5, -1.0])
    assert fixed == ["[1000, 1500)", "[-500, 0)"]


def test_suppressed_columns_are_not_delivered() -> None:
    items = [item("a"), item("b", sensitivity=Sensitivity.confidential)]
    plan = masking.default_plan(items, ["a", "b"])
    assert plan["b"].rule is MaskingRule.suppress
    assert [c.name for c in masking.compile_columns(items, plan, as_of=AS_OF)] == ["a"]


def test_csv_cells_cannot_become_formulas() -> None:
    cells = ["=SUM(A1:A9)", "+1", "-2", "@cmd", "\tx", "safe", "", None]
    got = run(item("c", sensitivity=Sensitivity.none), ColumnRule(rule=MaskingRule.keep),
              cells, csv=True)
    assert got == ["'=SUM(A1:A9)", "'+1", "'-2", "'@cmd", "'\tx", "safe", "", None]


# --- the default plan and tightening ----------------------------------------------------------

def _people() -> list[DataItem]:
    return [DataItem(position=i, resource_id=0, **spec) for i, spec in enumerate(PEOPLE_ITEMS)]


def test_default_plan_follows_sensitivity_and_kind() -> None:
    plan = masking.plan_json(masking.default_plan(_people(), [i["name"] for i in PEOPLE_ITEMS]))
    assert plan == {
        "id_number": {"rule": "pseudonymize"}, "name": {"rule": "partial"},
        "mobile": {"rule": "partial"},
        "birth_date": {"rule": "generalize", "method": "year"},
        "address": {"rule": "generalize", "method": "district"},
        "income": {"rule": "generalize", "method": "range"},
        "district": {"rule": "keep"}, "household_size": {"rule": "keep"}}
    # A personal kind declared "none" by mistake is still masked.
    careless = item("phone", kind=ItemKind.mobile, sensitivity=Sensitivity.none)
    assert masking.default_rule(careless).rule is MaskingRule.partial


@pytest.mark.parametrize(("name", "rule", "allowed"), [
    ("name", ColumnRule(rule=MaskingRule.suppress), True),
    ("name", PSEUDO, True),
    ("name", ColumnRule(rule=MaskingRule.keep), False),
    ("id_number", PARTIAL, False),
    ("id_number", gen(Generalization.year), False),
    ("birth_date", gen(Generalization.age_band), True),
    ("birth_date", gen(Generalization.month), False),
    ("district", gen(Generalization.district), True),
    ("household_size", gen(Generalization.range, 2), True),
    ("household_size", gen(Generalization.district), False),
    ("address", gen(Generalization.year), False),
])
def test_the_plan_can_only_be_tightened(name: str, rule: ColumnRule, allowed: bool) -> None:
    items = _people()
    base = masking.default_plan(items, [i.name for i in items])
    if allowed:
        assert masking.tighten(items, base, {name: rule})[name] == rule
    else:
        with pytest.raises(Invalid):
            masking.tighten(items, base, {name: rule})


def test_suppressing_everything_is_refused() -> None:
    items = _people()[:2]
    base = masking.default_plan(items, [i.name for i in items])
    with pytest.raises(Invalid, match="suppresses every item"):
        masking.tighten(items, base, {i.name: ColumnRule(rule=MaskingRule.suppress)
                                      for i in items})


# --- row filters ------------------------------------------------------------------------------

def _filter(filters: list[dict[str, Any]]) -> list[Any]:
    con = duckdb.connect()
    con.execute("CREATE TABLE data AS SELECT * FROM (VALUES ('福田区', 1, DATE '2020-01-01'), "
                "('南山区', 2, DATE '2021-01-01'), (NULL, 3, NULL)) t(district, n, d)")
    cols = {"district": ('"district"', ItemType.string), "n": ('"n"', ItemType.integer),
            "d": ('"d"', ItemType.date)}
    where = masking.filter_sql([RowFilter.model_validate(f) for f in filters], cols)
    return [r[0] for r in con.execute(f"SELECT n FROM data WHERE {where} ORDER BY n").fetchall()]


def test_row_filters_are_structured_and_typed() -> None:
    assert _filter([{"column": "district", "op": "eq", "values": ["福田区"]}]) == [1]
    assert _filter([{"column": "district", "op": "in", "values": ["福田区", "南山区"]},
                    {"column": "n", "op": "ge", "values": [2]}]) == [2]
    assert _filter([{"column": "d", "op": "between",
                     "values": ["2020-06-01", "2022-01-01"]}]) == [2]
    assert _filter([{"column": "district", "op": "is_null"}]) == [3]
    assert _filter([{"column": "district", "op": "eq", "values": ["x' OR '1'='1"]}]) == []


@pytest.mark.parametrize("bad", [
    {"column": "nope", "op": "eq", "values": ["x"]},
    {"column": "n", "op": "eq", "values": ["1; DROP TABLE data"]},
    {"column": "n", "op": "eq", "values": [True]},
    {"column": "d", "op": "eq", "values": ["2020-13-45"]},
    {"column": "n", "op": "between", "values": [1]},
    {"column": "n", "op": "is_null", "values": [1]},
])
def test_bad_row_filters_are_refused(bad: dict[str, Any]) -> None:
    with pytest.raises(Invalid):
        _filter([bad])


# --- the raw-PII check ------------------------------------------------------------------------

@pytest.mark.parametrize(("value", "kind"), [
    (resident_id(7), "resident_id"),
    ("身份证" + resident_id(7).lower() + "号", "resident_id"),
    (resident_id(7)[:17] + ("0" if resident_id(7)[17] != "0" else "1"), None),  # bad check
    (resident_id(5), "resident_id"),  # ends in X
    (resident_id(5).lower(), "resident_id"),  # ... written as x
    (resident_id(5)[:17] + "0", None),
    ("44030419551306005" + ric.calc_check_digit("44030419551306005"), None),  # month 13
    ("440304900307002", "legacy_resident_id"),
    ("440304901307002", None),  # month 13: not a legacy ID
    ("13812345678", "mobile"),
    ("+86 138 1234 5678", "mobile"),
    ("电话138-1234-5678转", "mobile"),
    ("12812345678", None),
    ("6222021234567890128", "bank_card"),  # Luhn-valid
    ("6222021234567890123", None),
    ("440304********002X", None),
    ("gnddhjinffkbbamimkclhclidcbeohhp", None),
    ("订单号 20260501123456789012", None),
    ("", None),
])
def test_the_check_recognises_raw_personal_data(value: str, kind: str | None) -> None:
    assert pii.find_in(value) == kind


@pytest.fixture(params=["native", "sql"])
def scan_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run a scan test through the C prefilter and through the DuckDB SQL fallback."""
    from access import native

    if request.param == "sql":
        monkeypatch.setattr(native, "load", lambda: None)
    elif native.load() is None:
        pytest.skip("no native library: scans use DuckDB SQL (checked by the sql case)")
    return str(request.param)


def test_the_scan_validates_candidates(scan_path: str) -> None:
    con = duckdb.connect()
    con.execute("CREATE TABLE out (a VARCHAR, b VARCHAR)")
    con.executemany("INSERT INTO out VALUES (?, ?)", [
        ["138****5678", "ok"], ["20260501123456789012", "ok"], [None, "13812345678"]])
    hits = pii.scan(con, "out", ["a", "b"])
    assert [(h.column, h.kind) for h in hits] == [("b", "mobile")]
    assert "1381" not in hits[0].sample  # the report itself leaks nothing


def test_the_scan_reads_every_batch_and_stops_at_five_hits(scan_path: str) -> None:
    con = duckdb.connect()
    con.execute(f"CREATE TABLE out AS SELECT CASE WHEN i IN (299990, 299995) "
                f"THEN '{resident_id(4)}' ELSE '张*' END AS a FROM range(300000) t(i)")
    assert [h.kind for h in pii.scan(con, "out", ["a"])] == ["resident_id"] * 2
    con.execute("CREATE TABLE many AS SELECT '13812345678' AS a FROM range(50)")
    assert len(pii.scan(con, "many", ["a"])) == pii.MAX_HITS
    assert pii.k_anonymity(con, "many", ["a"]) == 50  # the connection is free again


def test_pseudonym_columns_are_checked_by_shape(scan_path: str) -> None:
    """Hex can contain a valid-looking mobile number by chance: that is not a leak. A value
    that is not a pseudonym at all, in a pseudonymised column, is."""
    con = duckdb.connect()
    con.execute("CREATE TABLE out (p VARCHAR)")
    lucky = "a13812345678" + "b" * 20  # a real pseudonym could look like this
    con.executemany("INSERT INTO out VALUES (?)", [[lucky], [""], [None], ["0" * 32]])
    assert pii.scan(con, "out", [pii.Target("p", "pseudonym")]) == []
    con.execute(f"INSERT INTO out VALUES ('{resident_id(3)}'), ('张三')")
    hits = pii.scan(con, "out", [pii.Target("p", "pseudonym")])
    assert [h.kind for h in hits] == ["resident_id", "not_pseudonymised"]


def test_numbers_are_checked_for_long_digit_runs(scan_path: str) -> None:
    con = duckdb.connect()
    con.execute("CREATE TABLE out AS SELECT * FROM (VALUES (1990, 1.5), (13812345678, NULL), "
                "(NULL, 13812345678.00)) t(n, d)")
    con.execute("CREATE TABLE dec AS SELECT n, CAST(d AS DECIMAL(18, 2)) AS d FROM out")
    hits = pii.scan(con, "dec", [pii.Target("n", "number"), pii.Target("d", "number")])
    assert [(h.column, h.kind) for h in hits] == [("n", "mobile"), ("d", "mobile")]


def test_the_native_prefilter_matches_the_regular_expression() -> None:
    """The C prefilter flags exactly the values DuckDB's PREFILTER regex matches, over
    random strings of digits, separators and other characters."""
    from access import native

    lib = native.load()
    if lib is None:
        pytest.skip("no C compiler: scans use the regular expression itself")
    rng = random.Random(7)
    alphabet = "0123456789" * 4 + "  --x*号"
    values = ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 30)))
              for _ in range(20000)]
    flagged = set(native.candidates(lib, pa.array(values), native.SCAN_TEXT).tolist())
    expected = {i for i, v in enumerate(values) if re.search(pii.PREFILTER, v)}
    assert flagged == expected and len(expected) > 1000


def test_k_anonymity_is_the_smallest_group() -> None:
    con = duckdb.connect()
    con.execute("CREATE TABLE out AS SELECT * FROM (VALUES ('a', 1), ('a', 1), ('b', 1), "
                "('b', 2)) t(x, y)")
    assert pii.k_anonymity(con, "out", ["x"]) == 2
    assert pii.k_anonymity(con, "out", ["x", "y"]) == 1
    assert pii.k_anonymity(con, "out", []) is None


def test_raw_personal_data_blocks_the_delivery(aw: AccessWorld, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """A masking rule that fails to mask (simulated) must not reach the requester."""
    code = register(tmp_path)
    app = file_app(aw, code, items=["name", "mobile", "district"])
    monkeypatch.setattr(masking, "mask_expression", lambda column, kind, sensitivity: column)
    r = aw.post(f"/applications/{app['id']}/approve", "GA", Role.approver, json={})
    assert r.status_code == 200
    blocked = aw.get(f"/applications/{app['id']}", "SCJG", Role.requester).json()
    assert blocked["state"] == "approved"
    assert "mobile in mobile" in blocked["delivery_blocked"]
    assert aw.get("/deliveries", "SCJG", Role.requester).json() == []
    root = Path(os.environ["GOVSHARE_DATA_DIR"]) / "deliveries"
    assert not [p for p in root.rglob("*") if p.is_file() and not p.name.endswith(".lock")]
    retry = aw.post(f"/applications/{app['id']}/deliver", "SCJG", Role.requester)
    assert retry.status_code == 202, retry.text  # queued; the worker (drained) blocks it again
    blocked = aw.client.get(retry.json()["status_url"], headers=aw.h("SCJG", Role.requester))
    assert blocked.json()["state"] == "blocked" and blocked.json()["final"] is True
    assert blocked.json()["problem"]["hits"][0]["kind"] == "mobile"
    # The provider tightens the plan; the next delivery goes through.
    t = aw.post(f"/applications/{app['id']}/masking", "GA", Role.approver,
                json={"masking": {"mobile": {"rule": "suppress"},
                                  "name": {"rule": "suppress"}}})
    assert t.status_code == 200
    done = aw.get(f"/applications/{app['id']}", "SCJG", Role.requester).json()
    assert done["state"] == "delivered" and done["delivery_blocked"] is None
    assert log_types("application", str(app["id"])).count("delivery.blocked") == 2


def test_a_pseudonym_rule_that_does_not_pseudonymise_is_caught(
        aw: AccessWorld, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Columns that are the token function itself are not read back (hex by construction);
    any other expression under a pseudonymize rule is checked value by value."""
    code = register(tmp_path)
    app = file_app(aw, code, items=["id_number", "district"])
    monkeypatch.setattr(pseudonym, "hmac_sql", lambda column, kind: column)  # a broken rule
    r = aw.post(f"/applications/{app['id']}/approve", "GA", Role.approver, json={})
    assert r.status_code == 200
    blocked = aw.get(f"/applications/{app['id']}", "SCJG", Role.requester).json()
    assert blocked["state"] == "approved" and "id_number" in blocked["delivery_blocked"]
    assert aw.get("/deliveries", "SCJG", Role.requester).json() == []


def test_only_the_token_function_itself_skips_the_read_back() -> None:
    items = [item("id", kind=ItemKind.resident_id), item("m", kind=ItemKind.mobile)]
    plan = {"id": PSEUDO, "m": PSEUDO}
    cols = masking.compile_columns(items, plan, as_of=date(2026, 5, 1), csv=True)
    assert [c.tokens_only for c in cols] == [True, True]
    assert not cols[0].sql.startswith("(CASE")  # hex never needs the CSV formula guard
    partial = masking.compile_columns(items, {"id": PARTIAL, "m": PARTIAL},
                                      as_of=date(2026, 5, 1))
    assert not any(c.tokens_only for c in partial)


def test_k_below_the_minimum_blocks_the_delivery(aw: AccessWorld, tmp_path: Path) -> None:
    code = register(tmp_path, rows=people_rows(40))
    app = file_app(aw, code, items=["name", "district", "household_size"])
    r = aw.post(f"/applications/{app['id']}/approve", "GA", Role.approver,
                json={"quasi_identifiers": ["district", "household_size"], "k_min": 5})
    assert r.status_code == 200
    got = aw.get(f"/applications/{app['id']}", "SCJG", Role.requester).json()
    assert got["state"] == "approved" and "k-anonymity 2 is below" in got["delivery_blocked"]
    aw.post(f"/applications/{app['id']}/masking", "GA", Role.approver,
            json={"masking": {"household_size": {"rule": "suppress"}},
                  "quasi_identifiers": ["district", "household_size"]})
    # household_size is no longer delivered, so it cannot stay a quasi-identifier.
    t = aw.post(f"/applications/{app['id']}/masking", "GA", Role.approver,
                json={"masking": {"household_size": {"rule": "suppress"}}})
    assert t.status_code == 422
    aw.post(f"/applications/{app['id']}/masking", "GA", Role.approver,
            json={"masking": {"household_size": {"rule": "generalize", "method": "range",
                                                 "width": 10}}})
    final = aw.get(f"/applications/{app['id']}", "SCJG", Role.requester).json()
    assert final["state"] == "delivered"
    (d,) = aw.get("/deliveries", "SCJG", Role.requester).json()
    assert d["k_anonymity"] == 10
