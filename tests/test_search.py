"""Catalog full-text search: Chinese and English matching, filters, order, pages, upkeep.

Runs on SQLite by default; set GOVSHARE_DATABASE_URL to a scratch PostgreSQL database to run
the same tests there (its public schema is dropped before each test). The index is tantivy's,
in the test's data directory; ``fresh`` commits and applies the feed, as the server's index
writer does after each commit.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
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
from catalog.schemas import SUMMARY_CHARS, ResourceHit
from catalog.search import SearchParams, SortKey, analyze, engine, feed, parse_query
from catalog.search.analysis import terms_text
from govshare import migrate
from kernel import db, identity
from kernel.events import Actor, Event
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
    feed.stop()
    engine.forget_readers()


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
        search.record(session, [resource.code])
    return resource


def fresh(session: Session) -> None:
    """Commit, and apply the feed to the index (the server's writer does it after commits)."""
    session.commit()
    search.sync()


def find(session: Session, q: str | None = None, **params: Any) -> search.SearchPage:
    fresh(session)
    return search.search(session, SearchParams(q=q, **params))


def codes(session: Session, q: str | None = None, **params: Any) -> list[str]:
    return [h.code for h in find(session, q, **params).hits]


def names(session: Session, q: str | None = None, **params: Any) -> list[str]:
    return [r.name for r in find(session, q, **params).resources]


# --- analysis ---------------------------------------------------------------------------------


def test_analyze_cuts_chinese_into_bigrams_and_latin_into_folded_words() -> None:
    assert analyze("人口基础") == ["人口", "口基", "基础", "础"]
    assert analyze("Basic ＰＯＰＵＬＡＴＩＯＮ_info 2024年") == [
        "basic", "population", "info", "2024", "年"]


def test_texts_analysed_one_by_one_give_the_terms_of_the_whole() -> None:
    # The index analyses (and caches) each text alone: the same terms as the texts joined.
    texts = ["人口基础", "", "信息 Basic", "ＰＯＰ_info", "税", "人口", "カナ・テスト", "x-y"]
    assert terms_text(*texts).split() == analyze("\n".join(texts))
    assert terms_text(*texts) == terms_text(*texts)  # from the cache: the same


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


def test_a_resource_code_or_its_start_finds_the_resource(session: Session) -> None:
    first = add(session, "人口基础信息").code  # GA-0000n
    second = add(session, "法人登记信息", dept="SCJG").code
    third = add(session, "电子证照", name_en=f"Licences, see {first}").code  # its words
    assert codes(session, first) == [first, third]  # the code itself ranks first
    assert codes(session, first.lower()) == [first, third]
    assert codes(session, second[:-1]) == [second]  # a prefix
    assert codes(session, "SCJG-") == [second]
    assert codes(session, second.split("-", 1)[1]) == [second]  # the tail after a dash
    fourth = add(session, "婚姻登记").code
    assert set(codes(session, "GA-0")) == {first, third, fourth}
    assert codes(session, "GA-9") == []
    assert codes(session, "GA") == [third]  # no digit, no dash: only a word


def test_the_stored_card_is_the_hit_as_the_api_lists_it(session: Session) -> None:
    resource = add(session, "人口基础信息", keywords=["户籍"], summary="人" * 500,
                   quality_score=87.25, last_data_update=datetime(2024, 5, 1, 8, 0, 1, 250,
                                                                  tzinfo=UTC),
                   items=[(f"item{i}", f"数据项{i}" if i % 2 else "", "", "") for i in range(25)])
    bare = add(session, 'a "quoted" \\ name', quality_score=None, last_data_update=None)
    provider = {"code": "GA", "name_zh": "市公安局", "name_en": "Public Security Bureau",
                "kind": "line", "level": "municipal"}
    for r in (resource, bare):
        assert json.loads(engine.document(r, r.items, provider))["k_name"].startswith(r.name)
        card = engine.card(r, r.items, provider)
        assert card == ResourceHit.model_validate_json(card).model_dump_json(
            exclude={"score", "items"})
    hit = ResourceHit.model_validate_json(engine.card(resource, resource.items, provider))
    assert (hit.item_count, len(hit.item_titles), hit.item_titles[:2]) == (25, 20,
                                                                           ["item0", "数据项1"])
    assert len(hit.summary) == SUMMARY_CHARS + 1 and hit.quality_score == 87.25


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
    assert find(session).total == 2


def test_a_new_quality_score_reaches_the_index_through_its_event(session: Session) -> None:
    resource = add(session, "人口基础信息", quality_score=40.0)
    assert names(session, "人口", min_quality=50) == []
    resource.quality_score = 70.0  # what the quality context writes, with its event
    session.add(resource)
    feed.on_event(session, Event("quality.run_finished", Actor(None, None, "system"),
                                 {"resource": resource.code, "run": "1"}, {"overall": 70.0}))
    assert names(session, "人口", min_quality=50) == ["人口基础信息"]
    assert names(session, "人口", sort=SortKey.quality) == ["人口基础信息"]


def test_unknown_department_is_a_clear_error(session: Session) -> None:
    with pytest.raises(Invalid, match="No department 'XYZ'"):
        find(session, "人口", department="XYZ")


# --- order and pages --------------------------------------------------------------------------


def test_name_match_ranks_above_summary_only_match(session: Session) -> None:
    add(session, "户籍迁移记录", summary="含人口变动情况")
    add(session, "人口基础信息")
    add(session, "婚姻登记记录", items=[("x", "人口编号", "", "")])
    assert names(session, "人口") == ["人口基础信息", "婚姻登记记录", "户籍迁移记录"]
    page = find(session, "人口")
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
        result = find(session, "人口", page=page, size=10, sort=SortKey.name)
        assert result.total == 25
        assert (result.page, result.size, len(result.hits)) == (page, 10, expected)
        seen += [h.code for h in result.hits]
    assert len(set(seen)) == 25
    beyond = find(session, "人口", page=4, size=10)
    assert (beyond.total, beyond.hits) == (25, [])
    assert find(session, page=3, size=10).total == 26


def test_no_results_is_an_empty_page(session: Session) -> None:
    add(session, "人口基础信息")
    for q in ("火星基地", "nothing", "人口 nothing", "婚姻登记信息系统数据汇总"):
        page = find(session, q)
        assert (page.total, page.hits) == (0, [])
    # Words asked for but none searchable (punctuation only): nothing, not the whole catalog
    # (issue 16); the catalog page says why.
    assert find(session, "!!! ？").total == 0
    assert find(session, "  ").total == 1  # a blank query browses


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
    search.record(session, [resource.code])
    assert names(session, "人口") == []
    assert names(session, "身份证") == []
    assert names(session, "法人") == ["法人单位信息"]
    assert names(session, "信用代码") == ["法人单位信息"]


def test_filter_change_reindexes(session: Session) -> None:
    resource = add(session, "人口基础信息")
    resource.category = Category.credit
    session.add(resource)
    search.record(session, [resource.code])
    assert names(session, "人口", category=Category.population) == []
    assert names(session, "人口", category=Category.credit) == ["人口基础信息"]


def test_withdrawn_resources_are_excluded(session: Session) -> None:
    resource = add(session, "人口基础信息")
    add(session, "人口统计年报")
    resource.status = ResourceStatus.withdrawn
    session.add(resource)
    search.record(session, [resource.code])
    assert names(session, "人口") == ["人口统计年报"]
    assert names(session) == ["人口统计年报"]
    resource.status = ResourceStatus.active
    search.record(session, [resource.code])
    assert len(names(session, "人口")) == 2




# --- facets, bounds -----------------------------------------------------------------------------


def test_facets_count_hits_by_each_filter_value(session: Session) -> None:
    add(session, "人口基础信息", quality_score=92.0)
    add(session, "人口统计年报", dept="SCJG", category=Category.macro_economy,
        sharing_type=SharingType.unconditional, update_cycle=UpdateCycle.yearly,
        security_level=SecurityLevel.important, quality_score=65.0)
    add(session, "企业登记信息", dept="SCJG", category=Category.legal_entity)
    facets = find(session, "人口", facets=True).facets
    assert facets is not None
    assert facets.department == {"GA": 1, "SCJG": 1}
    assert facets.category == {"101": 1, "104": 1}
    assert facets.sharing_type == {"conditional": 1, "unconditional": 1}
    assert facets.update_cycle == {"daily": 1, "yearly": 1}
    assert facets.security_level == {"general": 1, "important": 1}
    assert facets.min_quality == {"60": 2, "80": 1, "90": 1}
    # With a filter, the counts are those of the narrowed hits; browsing counts everything.
    narrowed = find(session, "人口", department="SCJG", facets=True).facets
    assert narrowed is not None and narrowed.department == {"SCJG": 1}
    browsing = find(session, facets=True).facets
    assert browsing is not None and browsing.department == {"GA": 1, "SCJG": 2}
    assert find(session, "人口").facets is None  # only when asked for


def test_totals_are_exact_up_to_the_bound(session: Session,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    for i in range(6):
        add(session, f"人口统计{i}")
    assert (find(session, "人口").total, find(session, "人口").total_capped) == (6, False)
    monkeypatch.setattr("catalog.search.query.TOTAL_BOUND", 5)
    page = find(session, "人口", size=2)
    assert (page.total, page.total_capped, len(page.hits)) == (5, True, 2)


def _page_of(session: Session, params: dict[str, Any]) -> tuple[Any, ...]:
    page = search.search_cards(session, SearchParams(**params))
    return page.total, page.total_capped, page.ids


def test_windows_and_bounds_give_the_plain_answers(session: Session,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Browsing through a window on the sort key, and totals bounded by term statistics
    (catalog.search.window, query._at_least), answer exactly as sorting and counting every
    hit: ties, missing values, filters, deep pages, deleted documents, any guessed bound."""
    from catalog.search import query, window

    rows = []
    for i in range(40):
        rows.append(add(
            session, f"{'甲乙丙丁戊己庚'[i % 7]}人口统计", dept=("GA", "SCJG")[i % 2],
            category=(Category.population, Category.legal_entity)[i % 3 == 0],
            published_at=date(2024, 1 + i % 3, 1 + i % 5),  # many ties
            quality_score=(None, 50.0, 72.5, 90.0)[i % 4],
            last_data_update=None if i % 5 == 0 else datetime(2024, 1 + i % 4, 1, tzinfo=UTC)))
    fresh(session)
    for resource in rows[::3]:  # replaced documents: deleted ones linger in term statistics
        resource.name += "年报"
        search.record(session, [resource.code])
    fresh(session)
    monkeypatch.setattr(query, "TOTAL_BOUND", 15)
    cases: list[dict[str, Any]] = [
        {"sort": s, "order": o, "page": p, "size": 5, **f}
        for s in (SortKey.published, SortKey.updated, SortKey.quality, SortKey.name)
        for o in ("asc", "desc") for p in (1, 3)
        for f in ({}, {"department": "GA"}, {"category": Category.legal_entity},
                  {"min_quality": 60}, {"category": Category.population,
                                        "min_quality": 50})]
    cases += [{"q": "人口"}, {"q": "人口", "page": 2, "size": 10}, {"q": "统计"},
              {"q": "年报"}, {"q": "人口 年报"}, {"q": "人口", "sort": SortKey.published}]
    monkeypatch.setattr(query, "WINDOWS", False)
    monkeypatch.setattr(query, "_at_least", lambda *_: 0)  # count every hit
    plain = [_page_of(session, c) for c in cases]
    assert plain[0][:2] == (15, True) and plain[-6][:2] == (15, True)  # capped ones
    # 14 resources of that category, each replaced once: its term counts 28 documents, 14
    # of them deleted (not merged away yet): not past the bound.
    assert cases[2]["category"] == Category.legal_entity and plain[2][:2] == (14, False)
    monkeypatch.undo()
    monkeypatch.setattr(query, "TOTAL_BOUND", 15)
    answered: list[bool] = []  # by a window (True) or, after it, unbounded

    def top(*args: Any, **kwargs: Any) -> window.Window:
        got = real_top(*args, **kwargs)
        answered.append(got.bounded)
        return got

    real_top = window.top
    monkeypatch.setattr(window, "top", top)
    # Guesses on a value that ties (a date, a score, an update time of several resources;
    # the keys of the descending sorts are the value + 1), beside far and wild ones.
    on_ties = (date(2024, 2, 3).toordinal(), 7251,
               int(datetime(2024, 2, 1, tzinfo=UTC).timestamp()) + 1,
               date(2024, 3, 5).toordinal(), 9001,  # fewer than a page or two: widened
               int(datetime(2024, 4, 1, tzinfo=UTC).timestamp()) + 1,
               engine.name_head(engine.name_key("丙人口统计", 0)))
    for guess in (None, 1, 2**20, *on_ties, 739_200, 2**31, 2**32 - 2):
        window.forget()
        if guess is not None:  # a learnt bound, right or wrong: only the cost changes
            monkeypatch.setattr(window, "_first_guess", lambda *_, g=guess: g)
        assert [_page_of(session, c) for c in cases] == plain, guess
        assert [_page_of(session, c) for c in cases] == plain, guess  # with learnt bounds
    assert answered.count(True) > 80 and False in answered  # both ways were taken


def test_pages_end_at_the_bound() -> None:
    assert SearchParams(page=500, size=20).page == 500  # hits 9,981 to 10,000
    with pytest.raises(ValueError, match="pages end at the 10,000th hit"):
        SearchParams(page=501, size=20)


# --- upkeep: the feed, the writer, the rebuild --------------------------------------------------

QUERIES: list[dict[str, Any]] = [
    {"q": "人口", "facets": True}, {"q": "信息", "sort": SortKey.name}, {"q": "登记"},
    {"q": "enterp"},
    {"q": "人口", "department": "SCJG"}, {}, {"sort": SortKey.quality},
    {"category": Category.legal_entity}, {"q": "税"}, {"q": "人口 统计", "page": 2, "size": 1},
]


def _answers(session: Session) -> list[Any]:
    out = []
    for params in QUERIES:
        page = find(session, **params)
        out.append((page.total, [(h.code, h.score, h.matched) for h in page.hits],
                    page.facets))
    return out


def test_a_reindex_from_scratch_gives_the_same_results(session: Session,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(feed, "PARALLEL", feed.PARALLEL)  # restored after the test
    monkeypatch.setattr(feed, "BATCH", feed.BATCH)
    add(session, "人口基础信息", name_en="Basic population", quality_score=80.0)
    add(session, "人口统计年报", dept="SCJG", quality_score=95.0)
    add(session, "企业登记信息", dept="SCJG", category=Category.legal_entity,
        name_en="Enterprise registration")
    add(session, "个人所得税缴纳", summary="人口 统计口径")
    withdrawn = add(session, "人口迁移登记", status=ResourceStatus.withdrawn)
    resource = add(session, "婚姻登记记录")
    resource.name = "婚姻登记人口统计"  # changed after indexing: the feed redoes it
    search.record(session, [resource.code])
    before = _answers(session)
    assert withdrawn.name not in names(session, "迁移")
    shutil.rmtree(engine.index_dir())  # from nothing: the writer rebuilds it on its own
    engine.forget_readers()
    search.sync()
    assert _answers(session) == before
    writer = feed.Writer()
    assert writer.acquire()
    try:
        # Again over an existing index, analysed in worker processes as large catalogs are.
        feed.PARALLEL, feed.BATCH = 0, 2
        assert writer.rebuild() == 5
    finally:
        writer.release()
    assert _answers(session) == before


def test_resources_written_without_the_feed_appear_after_a_reindex(session: Session) -> None:
    add(session, "人口基础信息")
    assert names(session, "人口") == ["人口基础信息"]  # the index is built
    add(session, "人口统计年报", index=False)  # e.g. loaded by hand into the database
    assert names(session, "人口") == ["人口基础信息"]
    from typer.testing import CliRunner

    from govshare.cli import app

    session.commit()  # let go of SQLite's write lock
    result = CliRunner().invoke(app, ["search", "reindex", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["resources"] == 2
    engine.reload_readers()
    assert sorted(names(session, "人口")) == ["人口基础信息", "人口统计年报"]


def test_one_writer_per_machine_and_readers_see_its_commits(session: Session) -> None:
    add(session, "人口基础信息")
    fresh(session)
    first, second = feed.Writer(), feed.Writer()
    assert first.acquire()
    try:
        assert not second.acquire()  # another process of this machine: it only reads
        # A reader of another process: its own handle, reloaded by tantivy on its own.
        other = engine.open_index(engine.index_dir(), create=False)
        assert other is not None
        other.config_reader(reload_policy="commit")
        query = search.query.tantivy.Query.all_query()
        assert other.searcher().search(query, 10).count == 1  # type: ignore[attr-defined]
        add(session, "人口统计年报")
        session.commit()
        assert first.catch_up() == 1
        deadline = time.monotonic() + 5
        while other.searcher().search(query, 10).count != 2:  # type: ignore[attr-defined]
            assert time.monotonic() < deadline, "the other reader never saw the commit"
            time.sleep(0.05)
    finally:
        first.release()
    assert second.acquire()  # the lock is free again
    second.release()


def test_the_feed_is_tailed_past_late_commits(session: Session) -> None:
    """An id committed after a larger one (PostgreSQL sequences) is still applied."""
    early = add(session, "人口基础信息")
    late = add(session, "人口统计年报", index=False)
    fresh(session)
    writer = feed.Writer()
    assert writer.acquire()
    try:
        writer.catch_up()
        search.record(session, [late.code])
        search.record(session, [early.code])
        session.commit()
        rows = session.execute(text("SELECT id FROM search_feed ORDER BY id")).scalars().all()
        # Pretend the last-but-one row was not yet committed when the writer first looked.
        session.execute(text("DELETE FROM search_feed WHERE id = :i"), {"i": rows[-2]})
        session.commit()
        writer.catch_up()
        session.execute(text("INSERT INTO search_feed (id, resource_code, created_at) "
                             "VALUES (:i, :c, :t)"),
                        {"i": rows[-2], "c": late.code, "t": datetime.now(UTC)})
        session.commit()
        assert writer.catch_up() == 1  # below the highest id seen, yet applied
    finally:
        writer.release()
    assert sorted(names(session, "人口")) == ["人口基础信息", "人口统计年报"]


_READER = """
import sys, time
from catalog.search import engine
import tantivy
index = engine.reader()
print("open", flush=True)
query = tantivy.Query.all_query()
deadline = time.monotonic() + 10
while index.searcher().search(query, 1).count < int(sys.argv[1]):
    if time.monotonic() > deadline:
        sys.exit("never saw the commit")
    time.sleep(0.05)
print("seen", flush=True)
"""


def test_a_reader_process_sees_the_writers_commits(session: Session) -> None:
    """Another web worker: its own process, reading while this one writes."""
    add(session, "人口基础信息")
    fresh(session)
    reader = subprocess.Popen([sys.executable, "-c", _READER, "2"], stdout=subprocess.PIPE,
                              text=True, env=dict(os.environ))
    try:
        assert reader.stdout is not None and reader.stdout.readline().strip() == "open"
        add(session, "人口统计年报")
        fresh(session)  # this process writes and commits
        out, _ = reader.communicate(timeout=20)
        assert reader.returncode == 0 and out.strip() == "seen"
    finally:
        reader.kill()
