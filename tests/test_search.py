"""Catalog full-text search: Chinese and English matching, filters, order, pages, upkeep.

Runs on SQLite by default; set GOVSHARE_DATABASE_URL to a scratch PostgreSQL database to run
the same tests there (its public schema is dropped before each test).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlmodel import Session

from catalog import search
from catalog.models import (
    Category,
    DataItem,
    ItemType,
    Resource,
    ResourceStatus,
    SecurityLevel,
    SharingType,
    UpdateCycle,
)
from catalog.search import SearchParams, SortKey, analyze, parse_query
from govshare import migrate
from kernel import db, identity
from kernel.problems import Invalid
from kernel.settings import get_settings


@pytest.fixture
def session(data_dir: Path) -> Iterator[Session]:
    if not get_settings().is_sqlite:  # a scratch PostgreSQL database: start from nothing
        with db.get_engine().begin() as conn:
            conn.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
    migrate.upgrade()
    with db.session_scope() as s:
        identity.create_department(s, code="GA", name_zh="市公安局",
                                   name_en="Public Security Bureau")
        identity.create_department(s, code="SCJG", name_zh="市市场监督管理局",
                                   name_en="Market Regulation Administration")
        yield s


_counter = iter(range(1, 10_000))


def add(session: Session, name: str, *, dept: str = "GA", index: bool = True,
        items: list[tuple[str, str, str, str]] | None = None, **fields: Any) -> Resource:
    """A resource with data items (name, title, title_en, description), indexed."""
    defaults: dict[str, Any] = {
        "category": Category.population, "sharing_type": SharingType.conditional,
        "update_cycle": UpdateCycle.daily, "security_level": SecurityLevel.general,
    }
    resource = Resource(
        code=f"{dept}-{next(_counter):05d}", name=name,
        provider_id=identity.get_department(session, dept).id or 0,
        items=[DataItem(position=i, name=n, title=t, title_en=te, description=d,
                        type=ItemType.string)
               for i, (n, t, te, d) in enumerate(items or [("id", "编号", "ID", "")], 1)],
        **{**defaults, **fields},
    )
    session.add(resource)
    session.flush()
    if index:
        search.index_resource(session, resource)
    return resource


def codes(session: Session, q: str | None = None, **params: Any) -> list[str]:
    return [h.code for h in search.search(session, SearchParams(q=q, **params)).hits]


def names(session: Session, q: str | None = None, **params: Any) -> list[str]:
    page = search.search(session, SearchParams(q=q, **params))
    by_id = {r.id: r.name for r in session.query(Resource)}
    return [by_id[h.resource_id] for h in page.hits]


# --- analysis ---------------------------------------------------------------------------------


def test_analyze_cuts_chinese_into_bigrams_and_latin_into_folded_words() -> None:
    assert analyze("人口基础") == ["人口", "口基", "基础", "础"]
    assert analyze("Basic ＰＯＰＵＬＡＴＩＯＮ_info 2024年") == [
        "basic", "population", "info", "2024", "年"]


def test_query_tokens_by_kind() -> None:
    kinds = {t.text: t.kind for t in parse_query("人 人口 企业登记 id enterp")}
    assert kinds == {"人": "prefix", "人口": "term", "企业登记": "phrase", "id": "term",
                     "enterp": "prefix"}
    assert [t.text for t in parse_query("population of the city")] == ["population", "city"]
    assert [t.text for t in parse_query("of the")] == ["of", "the"]  # nothing but stopwords


def test_every_enum_member_has_a_filter_code() -> None:
    assert set(search.SHARING_CODES) == set(SharingType)
    assert set(search.CYCLE_CODES) == set(UpdateCycle)
    assert set(search.LEVEL_CODES) == set(SecurityLevel)
    assert len({search.category_code(c) for c in Category}) == len(Category)


# --- Chinese ----------------------------------------------------------------------------------


def test_chinese_substrings_of_names_keywords_and_items(session: Session) -> None:
    add(session, "人口基础信息", keywords=["社保", "户籍"],
        items=[("id_card_no", "身份证号码", "ID card number", "公民身份号码")])
    add(session, "企业登记信息", category=Category.legal_entity)
    assert names(session, "人口") == ["人口基础信息"]
    assert names(session, "企业登记") == ["企业登记信息"]
    assert names(session, "社保") == ["人口基础信息"]
    assert names(session, "身份证") == ["人口基础信息"]
    assert names(session, "信息") == ["人口基础信息", "企业登记信息"]
    assert names(session, "基础信息") == ["人口基础信息"]


def test_single_characters_match_anywhere_in_a_word(session: Session) -> None:
    add(session, "个人所得税缴纳")
    add(session, "企业所得税")
    assert sorted(names(session, "税")) == ["个人所得税缴纳", "企业所得税"]  # end of a run too
    assert names(session, "缴") == ["个人所得税缴纳"]


def test_bigrams_found_apart_are_not_a_phrase(session: Session) -> None:
    add(session, "企业年报", summary="由登记机关汇总")  # 企业 … 登记, never 企业登记
    add(session, "婚姻登记记录", summary="全市婚姻登记信息系统数据汇总")
    assert names(session, "企业登记") == []
    assert names(session, "登记机关") == ["企业年报"]
    # Longer than a posting's stored context: proven against the document text.
    assert names(session, "婚姻登记信息系统数据汇总") == ["婚姻登记记录"]
    assert names(session, "婚姻登记信息系统数据汇报") == []


def test_phrase_does_not_span_fields_or_items(session: Session) -> None:
    add(session, "人口基础", summary="信息", items=[("a", "出生", "", ""), ("b", "日期", "", "")])
    assert names(session, "基础信息") == []
    assert names(session, "出生日期") == []


# --- English ----------------------------------------------------------------------------------


def test_english_is_case_insensitive_with_prefixes(session: Session) -> None:
    add(session, "企业登记信息", name_en="Enterprise Registration",
        summary_en="Registered enterprises of the city")
    add(session, "人口基础信息", name_en="Basic population data",
        items=[("idCardNo", "身份证号码", "ID card number", "")])
    assert names(session, "enterprise") == ["企业登记信息"]
    assert names(session, "ENTERPRISE") == ["企业登记信息"]
    assert names(session, "enterp") == ["企业登记信息"]
    assert names(session, "ＥＮＴＥＲＰ") == ["企业登记信息"]  # full-width input
    assert names(session, "Population") == ["人口基础信息"]
    assert names(session, "card") == ["人口基础信息"]  # item title_en
    assert names(session, "idcardno") == ["人口基础信息"]  # item name, whole
    assert names(session, "population of the city") == []  # "city" is elsewhere
    assert names(session, "enterprises of the city") == ["企业登记信息"]


def test_all_words_must_match(session: Session) -> None:
    add(session, "人口基础信息", name_en="Basic population data")
    add(session, "人口流动统计", name_en="Migration statistics")
    assert names(session, "人口 population") == ["人口基础信息"]
    assert names(session, "人口 statistics") == ["人口流动统计"]
    assert names(session, "人口 nothing") == []


# --- filters ----------------------------------------------------------------------------------


def test_every_filter_combines_with_a_query(session: Session) -> None:
    base = add(session, "人口基础信息", quality_score=92.0)
    add(session, "人口统计年报", dept="SCJG", category=Category.macro_economy,
        sharing_type=SharingType.unconditional, update_cycle=UpdateCycle.yearly,
        security_level=SecurityLevel.important, quality_score=60.0)
    other = "人口统计年报"
    assert len(codes(session, "人口")) == 2
    assert names(session, "人口", department="SCJG") == [other]
    assert names(session, "人口", department="scjg") == [other]
    dept_id = identity.get_department(session, "GA").id
    assert codes(session, "人口", department=str(dept_id)) == [base.code]
    assert names(session, "人口", category=Category.macro_economy) == [other]
    assert names(session, "人口", sharing_type=SharingType.unconditional) == [other]
    assert names(session, "人口", update_cycle=UpdateCycle.yearly) == [other]
    assert names(session, "人口", security_level=SecurityLevel.important) == [other]
    assert names(session, "人口", min_quality=90) == ["人口基础信息"]
    assert names(session, "人口", min_quality=50, department="SCJG") == [other]
    assert names(session, "人口", department="GA", category=Category.macro_economy) == []


def test_filters_apply_without_a_query(session: Session) -> None:
    add(session, "人口基础信息", quality_score=80.0)
    add(session, "企业登记信息", dept="SCJG", category=Category.legal_entity)
    assert names(session, category=Category.legal_entity) == ["企业登记信息"]
    assert names(session, department="GA") == ["人口基础信息"]
    assert names(session, min_quality=50) == ["人口基础信息"]
    assert search.search(session, SearchParams()).total == 2


def test_filter_by_quality_reads_the_current_score(session: Session) -> None:
    resource = add(session, "人口基础信息", quality_score=40.0)
    assert names(session, "人口", min_quality=50) == []
    resource.quality_score = 70.0  # the quality context writes it without re-indexing
    session.add(resource)
    session.flush()
    assert names(session, "人口", min_quality=50) == ["人口基础信息"]


def test_unknown_department_is_a_clear_error(session: Session) -> None:
    with pytest.raises(Invalid, match="No department 'XYZ'"):
        search.search(session, SearchParams(q="人口", department="XYZ"))


# --- order and pages --------------------------------------------------------------------------


def test_name_match_ranks_above_summary_only_match(session: Session) -> None:
    add(session, "户籍迁移记录", summary="含人口变动情况")
    add(session, "人口基础信息")
    add(session, "婚姻登记记录", items=[("x", "人口编号", "", "")])
    assert names(session, "人口") == ["人口基础信息", "婚姻登记记录", "户籍迁移记录"]
    page = search.search(session, SearchParams(q="人口"))
    scores = [h.score or 0 for h in page.hits]
    assert scores == sorted(scores, reverse=True)
    assert page.hits[0].matched == ["name"]
    assert page.hits[1].matched == ["items"]
    assert page.hits[2].matched == ["summary"]


def test_english_name_match_ranks_above_prefix_and_summary(session: Session) -> None:
    add(session, "甲", name_en="Data", summary_en="registration of vehicles")
    add(session, "乙", name_en="Registry of companies")  # prefix of the query word
    add(session, "丙", name_en="Vehicle registration")
    assert names(session, "registration") == ["丙", "甲"]
    assert names(session, "regist") == ["丙", "乙", "甲"]


def test_sorting(session: Session) -> None:
    add(session, "乙人口", published_at=date(2024, 1, 1), quality_score=50.0,
        last_data_update=datetime(2024, 3, 1, tzinfo=UTC))
    add(session, "甲人口", published_at=date(2023, 1, 1), quality_score=None,
        last_data_update=datetime(2024, 5, 1, tzinfo=UTC))
    add(session, "丙人口", published_at=date(2025, 1, 1), quality_score=90.0,
        last_data_update=None)
    for q in ("人口", None):
        assert names(session, q, sort=SortKey.name) == ["丙人口", "乙人口", "甲人口"]
        assert names(session, q, sort=SortKey.name, order="desc") == ["甲人口", "乙人口", "丙人口"]
        assert names(session, q, sort=SortKey.published) == ["丙人口", "乙人口", "甲人口"]
        assert names(session, q, sort=SortKey.published, order="asc") == [
            "甲人口", "乙人口", "丙人口"]
        # Never updated / never scored: last in either direction.
        assert names(session, q, sort=SortKey.updated) == ["甲人口", "乙人口", "丙人口"]
        assert names(session, q, sort=SortKey.quality) == ["丙人口", "乙人口", "甲人口"]
        assert names(session, q, sort=SortKey.quality, order="asc") == [
            "乙人口", "丙人口", "甲人口"]
    assert names(session) == ["丙人口", "乙人口", "甲人口"]  # browsing: newest first


def test_pages_and_totals(session: Session) -> None:
    for i in range(25):
        add(session, f"人口统计{i:02d}", published_at=date(2024, 1, 1 + i))
    add(session, "企业登记信息")
    seen: list[str] = []
    for page, expected in ((1, 10), (2, 10), (3, 5)):
        result = search.search(session, SearchParams(q="人口", page=page, size=10,
                                                     sort=SortKey.name))
        assert result.total == 25
        assert (result.page, result.size, len(result.hits)) == (page, 10, expected)
        seen += [h.code for h in result.hits]
    assert len(set(seen)) == 25
    beyond = search.search(session, SearchParams(q="人口", page=4, size=10))
    assert (beyond.total, beyond.hits) == (25, [])
    assert search.search(session, SearchParams(page=3, size=10)).total == 26


def test_no_results_is_an_empty_page(session: Session) -> None:
    add(session, "人口基础信息")
    for q in ("火星基地", "nothing", "人口 nothing", "婚姻登记信息系统数据汇总"):
        page = search.search(session, SearchParams(q=q))
        assert (page.total, page.hits) == (0, [])
    assert search.search(session, SearchParams(q="!!! ？")).total == 1  # no words: browse


def test_size_is_capped() -> None:
    with pytest.raises(ValueError):
        SearchParams(size=101)


# --- upkeep -----------------------------------------------------------------------------------


def test_update_reindexes(session: Session) -> None:
    resource = add(session, "人口基础信息", items=[("a", "身份证号码", "", "")])
    resource.name = "法人单位信息"
    resource.items = [DataItem(position=1, name="uscc", title="统一社会信用代码",
                               type=ItemType.string)]
    session.add(resource)
    session.flush()
    search.index_resource(session, resource)
    assert names(session, "人口") == []
    assert names(session, "身份证") == []
    assert names(session, "法人") == ["法人单位信息"]
    assert names(session, "信用代码") == ["法人单位信息"]


def test_filter_change_reindexes(session: Session) -> None:
    resource = add(session, "人口基础信息")
    resource.category = Category.credit
    session.add(resource)
    search.index_resource(session, resource)
    assert names(session, "人口", category=Category.population) == []
    assert names(session, "人口", category=Category.credit) == ["人口基础信息"]


def test_withdrawn_resources_are_excluded(session: Session) -> None:
    resource = add(session, "人口基础信息")
    add(session, "人口统计年报")
    resource.status = ResourceStatus.withdrawn
    session.add(resource)
    search.index_resource(session, resource)
    assert names(session, "人口") == ["人口统计年报"]
    assert names(session) == ["人口统计年报"]
    resource.status = ResourceStatus.active
    search.index_resource(session, resource)
    assert len(names(session, "人口")) == 2


def test_remove_and_reindex_all(session: Session) -> None:
    first = add(session, "人口基础信息")
    add(session, "人口统计年报", index=False)  # e.g. written before search existed
    add(session, "人口迁移", index=False, status=ResourceStatus.withdrawn)
    assert names(session, "人口") == ["人口基础信息"]
    assert search.reindex_all(session) == 2
    assert sorted(names(session, "人口")) == ["人口基础信息", "人口统计年报"]
    search.remove_resource(session, first.id or 0)
    assert names(session, "人口") == ["人口统计年报"]
    assert search.reindex_all(session) == 2  # and again: starts from nothing each time
    assert len(names(session, "人口")) == 2
