"""catalog.masking: type-aware partial masking, evaluated by DuckDB on edge values."""

from __future__ import annotations

from typing import Any

import duckdb
import pytest

from catalog.masking import COMPOUND_SURNAMES, mask_expression
from catalog.models import ItemKind, Sensitivity

PERSONAL = Sensitivity.personal


def masked(values: list[Any], kind: ItemKind | None, sensitivity: Sensitivity = PERSONAL,
           sql_type: str = "VARCHAR") -> list[Any]:
    """Mask ``values`` as a DuckDB column of ``sql_type``, in one vectorised query."""
    expr = mask_expression('"v"', kind, sensitivity)
    con = duckdb.connect()
    try:
        con.execute(f'CREATE TABLE t (i INTEGER, "v" {sql_type})')
        con.executemany("INSERT INTO t VALUES (?, ?)", list(enumerate(values)))
        return [r[0] for r in con.execute(f"SELECT {expr} FROM t ORDER BY i").fetchall()]
    finally:
        con.close()


def test_resident_ids_keep_six_and_four() -> None:
    assert masked(["110101199003071234", "11010119900307123X"], ItemKind.resident_id) == [
        "110101********1234", "110101********123X"]


def test_legacy_fifteen_digit_ids_keep_six_and_three() -> None:
    assert masked(["110101900307123"], ItemKind.resident_id) == ["110101******123"]


@pytest.mark.parametrize("value", ["123", "1101011990", "11010119900307123XX", "abc"])
def test_malformed_ids_are_masked_in_full(value: str) -> None:
    assert masked([value], ItemKind.resident_id) == ["*" * len(value)]


def test_null_stays_null_and_empty_stays_empty() -> None:
    for kind in [*ItemKind, None]:
        assert masked([None, ""], kind) == [None, ""], kind


def test_mobiles_keep_three_and_four() -> None:
    assert masked(["13812345678", "+8613812345678", "12345"], ItemKind.mobile) == [
        "138****5678", "+86*******5678", "*****"]


def test_names_keep_the_surname_including_compound_ones() -> None:
    values = ["张三", "王小明", "欧阳娜娜", "诸葛亮", "司马相如", "上官婉儿", "欧阳", "张", "A"]
    assert masked(values, ItemKind.person_name) == [
        "张*", "王**", "欧阳**", "诸葛*", "司马**", "上官**", "欧*", "*", "*"]


@pytest.mark.parametrize("surname", COMPOUND_SURNAMES)
def test_every_listed_compound_surname_is_kept(surname: str) -> None:
    assert masked([surname + "某某"], ItemKind.person_name) == [surname + "**"]


def test_bank_cards_keep_the_last_four() -> None:
    assert masked(["6222021234567890123", "1234567"], ItemKind.bank_card) == [
        "***************0123", "*******"]


def test_addresses_keep_up_to_the_district() -> None:
    values = ["广东省深圳市南山区科技园路1号", "北京市东城区", "某某街道12号楼3单元", "北京"]
    assert masked(values, ItemKind.address) == [
        "广东省深圳市南山区***", "北京市东城区", "某某街道12***", "**"]


def test_emails_keep_the_first_character_and_the_domain() -> None:
    assert masked(["zhang.san@example.gov.cn", "@nobody", "plain"], ItemKind.email) == [
        "z***@example.gov.cn", "*******", "*****"]


def test_other_personal_values_become_a_fixed_mask() -> None:
    assert masked(["1990-03-07"], ItemKind.birth_date) == ["***"]
    assert masked(["anything"], None, Sensitivity.sensitive_personal) == ["***"]
    assert masked(["1990-03-07"], ItemKind.birth_date, sql_type="DATE") == ["***"]


def test_confidential_is_suppressed_and_none_is_unchanged() -> None:
    assert masked(["secret", None], ItemKind.other, Sensitivity.confidential) == [None, None]
    assert masked([42, None], None, Sensitivity.none, sql_type="BIGINT") == [42, None]
    assert masked(["110101199003071234"], ItemKind.resident_id, Sensitivity.none) == [
        "110101199003071234"]
