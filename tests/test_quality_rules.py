"""The rules under the generated suites: DuckDB macros and pandas implementations agree with
python-stdnum, the GX-on-DuckDB adapter fixes the root cause, and suite generation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pytest
import sqlalchemy as sa
from stdnum.cn import ric, uscc

from catalog.models import DataItem
from quality import gx_duckdb, gx_rules
from quality.rules import Dimension, generate
from quality.sql_rules import MACROS


def with_check(body17: str) -> str:
    """A resident ID with its correct check character (stdnum wants the full number)."""
    return body17 + ric.calc_check_digit(body17 + "0")


VALID_ID = with_check("11010119900307123")
RESIDENT_IDS = [
    VALID_ID,
    VALID_ID[:17] + ("0" if VALID_ID[17] != "0" else "1"),  # wrong check character
    with_check("11010119900230123"),  # 30 February: no such birth date
    with_check("11010119901307123"),  # month 13
    VALID_ID[:17] + VALID_ID[17].lower() if VALID_ID[17] == "X" else VALID_ID[:17] + "x",
    with_check("1101011990030712") + "",  # 17 characters
    "110101900307123",  # legacy 15-digit
    "123", "", "11010119900307123" + "Y", "1101011990030712３X",
    with_check("44030519850101001"), with_check("65010119991231999"),
]
USCCS = ["91110000600037341L", "91110000600037341M", "9111000060003734IL", "911100006000373",
         "9144030071526726XG", "91440300MA5DXXXX1X", "abc", "", "91110000600037341l"]


def _sql(function: str, values: list[str]) -> list[Any]:
    con = duckdb.connect()
    try:
        for macro in MACROS:
            con.execute(macro)
        return [con.execute(f"SELECT {function}(?)", [v]).fetchone()[0]  # type: ignore[index]
                for v in values]
    finally:
        con.close()


def _stdnum_ric(value: str) -> bool:
    """stdnum's check digit and birth date, without its historical place-of-birth table; a
    lowercase x is an X (as in pseudonyms: one person, one ID)."""
    value = value[:17] + value[17:].upper()
    if len(value) != 18 or not value[:17].isascii() or not value[:17].isdigit() \
            or value[17] not in "0123456789X":
        return False
    try:
        ric.get_birth_date(value)
    except Exception:
        return False
    return ric.calc_check_digit(value) == value[17]


def test_resident_id_rules_agree_with_stdnum() -> None:
    expected = [_stdnum_ric(v) for v in RESIDENT_IDS]
    assert expected[0] and not any(expected[1:11])
    assert _sql("gs_valid_ric", RESIDENT_IDS) == expected
    assert gx_rules.valid_resident_ids(pd.Series(RESIDENT_IDS)).tolist() == expected


def test_uscc_rules_agree_with_stdnum() -> None:
    expected = [uscc.is_valid(v) and v == v.upper() for v in USCCS]
    assert expected[0]
    assert _sql("gs_valid_uscc", USCCS) == expected
    assert gx_rules.valid_usccs(pd.Series(USCCS)).tolist() == expected


def test_embedded_birth_date() -> None:
    births = _sql("gs_ric_birth", [VALID_ID, "123", RESIDENT_IDS[2]])
    assert [b.isoformat() if b else None for b in births] == ["1990-03-07", None, None]


# --- the adapter ------------------------------------------------------------------------------

@pytest.fixture
def segment(tmp_path: Path) -> Path:
    path = tmp_path / "seg.duckdb"
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE data AS SELECT i AS n, 'a' || i::VARCHAR AS s FROM range(10) t(i)")
    con.close()
    return path


def test_rows_survive_the_connection_returning_to_the_pool(segment: Path) -> None:
    """Root cause of GX #10738/#11579: GX fetches after the pool's reset-on-return ROLLBACK.
    duckdb-engine alone loses the rows; our dialect buffers them first."""
    with gx_duckdb.dataset([segment]) as registered:
        ours = sa.create_engine(registered.url)
        with ours.connect() as conn:
            result = conn.execute(sa.text("SELECT count(*) FROM data"))
        assert result.fetchall() == [(10,)]
        ours.dispose()
    plain = sa.create_engine(f"duckdb:///{segment}")
    with plain.connect() as conn:
        lost = conn.execute(sa.text("SELECT count(*) FROM data"))
    assert lost.fetchall() == []  # if duckdb-engine ever fixes this, the adapter can go
    plain.dispose()


def test_gx_validates_on_duckdb_with_regex_search_semantics(segment: Path) -> None:
    import great_expectations as gx
    import great_expectations.expectations as gxe

    context = gx.get_context(mode="ephemeral")
    with gx_duckdb.dataset([segment]) as registered:
        source = context.data_sources.add_govshare_duckdb("t", connection_string=registered.url)
        batch = source.add_table_asset("data", table_name="data") \
            .add_batch_definition_whole_table("all").get_batch()
        suite = context.suites.add(gx.ExpectationSuite("s", expectations=[
            gxe.ExpectColumnValuesToMatchRegex(column="s", regex="[0-4]"),  # a search
            gxe.ExpectColumnValuesToBeOfType(column="n", type_="BIGINT"),
            gxe.ExpectTableRowCountToBeBetween(min_value=10, max_value=10)]))
        result = batch.validate(suite)
        source.get_engine().dispose()
    regex, of_type, rows = result.results
    assert regex.result["unexpected_count"] == 5  # a5…a9 contain no 0-4
    assert of_type.success and rows.success


def test_missing_segment_is_an_error_not_an_empty_table(tmp_path: Path) -> None:
    with gx_duckdb.dataset([tmp_path / "gone.duckdb"]) as registered, \
            pytest.raises(FileNotFoundError):
        gx_duckdb.open_dataset(registered)


def test_sql_reaches_only_the_segments(segment: Path) -> None:
    """Custom expectations end up as SQL: file functions and ATTACH are switched off."""
    with gx_duckdb.dataset([segment]) as registered:
        con = gx_duckdb.open_dataset(registered)
        assert con.execute("SELECT count(*) FROM data").fetchone() == (10,)
        for sql in ("SELECT * FROM read_csv('/etc/passwd')", f"ATTACH '{segment}' AS again",
                    "SET enable_external_access = true"):
            with pytest.raises(duckdb.Error):
                con.execute(sql)
        con.close()


# --- generation -------------------------------------------------------------------------------

def _item(position: int, **fields: Any) -> DataItem:
    return DataItem.model_validate({"position": position, "resource_id": 0, "type": "string",
                                    **fields})


def test_generated_suite_follows_the_catalog_entry() -> None:
    items = [_item(0, name="id", kind="resident_id", required=True, is_key=True),
             _item(1, name="org", kind="uscc", is_key=True),
             _item(2, name="born", type="date", kind="birth_date"),
             _item(3, name="area", kind="code", code_list=["A", "B"]),
             _item(4, name="day", type="date", required=True)]
    rules = {r.rule: r for r in generate(items, date_item="day", previous_rows=100)}
    assert rules["unique:id+org"].type == "expect_compound_columns_to_be_unique"
    assert rules["code_list:area"].kwargs["value_set"] == ["A", "B"]
    assert rules["row_count"].kwargs == {"min_value": 50, "max_value": 1000}
    assert rules["id_birth_date:id+born"].dimension is Dimension.consistency
    assert rules["newest:day"].dimension is Dimension.freshness
    assert rules["date_range:born"].kwargs["max_value"] == {"$PARAMETER": "run_date"}
    assert {r for r in rules if r.startswith("not_null:")} == {"not_null:id", "not_null:day"}


def test_id_and_birth_date_of_different_people_are_not_paired() -> None:
    """An adopter's ID and the child's birth date describe two people: no consistency rule."""
    from quality.rules import _same_person

    assert _same_person("resident_id", "birth_date")
    assert _same_person("child_id", "birth_date")
    assert _same_person("holder_id_number", "holder_birth_date")
    assert not _same_person("adopter_id", "child_birth_date")
