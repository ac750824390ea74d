"""One person, one pseudonym: legacy 15-digit resident IDs and a lowercase x."""

from __future__ import annotations

import duckdb
import pytest
from stdnum.cn import ric

from access import masking, native, pseudonym
from access.masking import ColumnRule, MaskingRule
from catalog.models import DataItem, ItemKind, ItemType, Sensitivity

KEY = bytes(range(32))
PSEUDO = ColumnRule(rule=MaskingRule.pseudonymize)


def _legacy(i: int) -> tuple[str, str]:
    """A 15-digit ID and its 18-digit form computed by python-stdnum's check digit."""
    short = f"440304{85 + i % 14:02d}{1 + i % 12:02d}{1 + i % 28:02d}{i % 1000:03d}"
    body = short[:6] + "19" + short[6:]
    return short, body + ric.calc_check_digit(body + "0")  # stdnum wants all 18


def test_legacy_ids_convert_to_their_18_digit_form_like_stdnum() -> None:
    pairs = [_legacy(i) for i in range(200)]
    con = duckdb.connect()
    con.execute("CREATE TABLE t (v VARCHAR)")
    values = [s for s, _ in pairs] + [" " + pairs[0][0] + "\u3000", "12345", "", "4403041985010"
                                      "1001x", "44030419850101001X", "abcdefghijklmno"]
    con.executemany("INSERT INTO t VALUES (?)", [[v] for v in [*values, None]])
    got = [r[0] for r in con.execute(f"SELECT {pseudonym.ric_18_sql('v')} FROM t").fetchall()]
    want = [long for _, long in pairs] + [pairs[0][1], "12345", "", "44030419850101001x",
                                          "44030419850101001X", "abcdefghijklmno", None]
    assert got == want
    assert [pseudonym.ric_18(v) for v in values] == want[:-1]


@pytest.mark.parametrize("use_native", [True, False])
def test_one_person_one_pseudonym_across_id_forms(use_native: bool) -> None:
    if use_native and native.load() is None:
        pytest.skip("no C compiler or libcrypto")
    short, long = _legacy(7)
    lower = long[:17] + long[17].lower()
    forms = [short, long, f" {short}\t", lower, long[:17] + long[17].upper()]
    con = duckdb.connect()
    con.execute("CREATE TABLE data (id VARCHAR)")
    con.executemany("INSERT INTO data VALUES (?)", [[v] for v in forms])
    pseudonym.install(con, KEY, native=use_native)
    it = DataItem(name="id", type=ItemType.string, kind=ItemKind.resident_id,
                  sensitivity=Sensitivity.personal, is_key=False, position=0, resource_id=0)
    (col,) = masking.compile_columns([it], {"id": PSEUDO}, as_of=__import__("datetime").date(
        2026, 5, 1))
    assert col.tokens_only  # still the token function as the outermost call
    tokens = {r[0] for r in con.execute(f"SELECT {col.sql} FROM data").fetchall()}
    assert tokens == {pseudonym.pseudonym(KEY, long, ItemKind.resident_id)}
    assert pseudonym.pseudonym(KEY, short, ItemKind.resident_id) == \
        pseudonym.pseudonym(KEY, lower, ItemKind.resident_id)


def test_the_token_check_wants_the_function_as_the_outermost_call() -> None:
    fn = next(iter(pseudonym.functions()))
    col = '"id"'
    assert pseudonym.is_token_call(f"{fn}(CAST({col} AS VARCHAR))", col)
    assert pseudonym.is_token_call(f"{fn}(upper(CAST({col} AS VARCHAR)))", col)
    assert not pseudonym.is_token_call(f"{fn}(CAST({col} AS VARCHAR)) || 'x'", col)
    assert not pseudonym.is_token_call(
        f"{fn}(CAST({col} AS VARCHAR)) || {fn}(CAST({col} AS VARCHAR))", col)
    assert not pseudonym.is_token_call(f"{fn}(CAST(\"other\" AS VARCHAR))", col)
    assert not pseudonym.is_token_call(f"{fn}(CAST({col} AS VARCHAR)) || ')'", col)
