"""Answering a search from the index: the query, filters, order, page, total and facets.

A query word must occur in some text field (each field weighted: name > keywords > data items
> summary), every word must occur (AND), each filter is a term on a small integer field, and
tantivy collects the top hits of the page and counts the rest, unless term statistics prove
the total past the bound (``_at_least``); browsing everything by a key reads a window on it
(``catalog.search.window``). The page's resources are then read from the database in a
constant number of queries.
"""

from __future__ import annotations

import itertools
import re
from collections import Counter
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Literal, Self

import tantivy
from pydantic import BaseModel, ConfigDict, PrivateAttr, TypeAdapter, model_validator
from pydantic import Field as PydanticField
from sqlalchemy import RowMapping
from sqlalchemy import select as sa_select
from sqlalchemy.orm import lazyload
from sqlmodel import Session, col, select

from catalog.models import (
    Category,
    DataItem,
    Resource,
    SecurityLevel,
    SharingType,
    UpdateCycle,
)
from catalog.schemas import DataItemOut
from catalog.search import engine, window
from catalog.search.analysis import (
    MAX_QUERY_TOKENS,
    QueryToken,
    analyze,
    normalize,
    parse_query,
    split_camel,
)
from kernel.identity import Department, get_department
from kernel.problems import Invalid, NotFound

TOTAL_BOUND = 10_000  # totals beyond are reported as "10,000+", and no page goes past it
MAX_EXPANSIONS = 32  # a Latin prefix with more index terms becomes one constant-score range
PREFIX_FACTOR = 0.5  # a word found only by prefix counts half as much as the word itself
CODE_BOOST = 50.0  # a code prefix outranks any word match
# Browsing everything by a key reads a window on the key (catalog.search.window) instead of
# sorting every resource. Not with filters: tantivy then walks the filter's postings and
# seeks the window's column for each (measured: slower than sorting them, at a million).
WINDOWS = True
# What could be a code's start: letters, digits and dashes, with a digit or a dash in it
# ("GA" alone is a word; "GA-" or "440300" is a code).
_CODE_PREFIX = re.compile(r"(?=.*[0-9-])[0-9a-z][0-9a-z-]{1,39}")


class SortKey(StrEnum):
    relevance = "relevance"
    name = "name"
    published = "published"
    updated = "updated"  # last data update
    quality = "quality"


class SearchParams(BaseModel):
    """Query, filters, order and page; also usable as FastAPI query parameters."""

    model_config = ConfigDict(extra="forbid")

    q: str | None = PydanticField(default=None, max_length=200,
                                  description="Words in Chinese or English; all must match")
    department: str | None = PydanticField(default=None, max_length=16,
                                           description="Provider department code (or id)")
    category: Category | None = None
    sharing_type: SharingType | None = None
    update_cycle: UpdateCycle | None = None
    security_level: SecurityLevel | None = None
    min_quality: float | None = PydanticField(default=None, ge=0)
    sort: SortKey | None = PydanticField(
        default=None, description="Default: relevance with a query, else newest published")
    order: Literal["asc", "desc"] | None = PydanticField(
        default=None, description="Default: descending, except by name")
    page: int = PydanticField(default=1, ge=1, le=TOTAL_BOUND)
    size: int = PydanticField(default=20, ge=1, le=100)
    facets: bool = PydanticField(
        default=False, description="Also count the hits by each filter's values (a second "
        "pass over all the hits: ask for it when showing the counts)")
    items: bool = PydanticField(
        default=False, description="Also return every data item of each hit (read from the "
        "database: slower; a hit names its first data items without it)")

    @model_validator(mode="after")
    def _within_bound(self) -> Self:
        if (self.page - 1) * self.size >= TOTAL_BOUND:
            raise ValueError(f"pages end at the {TOTAL_BOUND:,}th hit: narrow the search with "
                             "more words or a filter")
        return self


class SearchHit(BaseModel):
    resource_id: int
    code: str
    score: float | None  # None when not sorted by relevance
    matched: list[str]  # labels of the fields (MATCH_LABELS) some query word was found in


class Facets(BaseModel):
    """Hits by filter value, for the current query and filters (codes as in the filters)."""

    department: dict[str, int]
    category: dict[str, int]
    sharing_type: dict[str, int]
    update_cycle: dict[str, int]
    security_level: dict[str, int]
    min_quality: dict[str, int]  # hits scoring at least 60, 80, 90


class SearchPage(BaseModel):
    total: int  # exact up to TOTAL_BOUND; beyond, TOTAL_BOUND with total_capped
    total_capped: bool = False
    page: int
    size: int
    hits: list[SearchHit]
    facets: Facets | None = None
    _resources: dict[int, Resource] = PrivateAttr(default_factory=dict)
    _providers: dict[int, Department] = PrivateAttr(default_factory=dict)
    _items: dict[int, list[RowMapping]] = PrivateAttr(default_factory=dict)

    @property
    def resources(self) -> list[Resource]:
        """The hits' resources, in hit order, loaded with their items."""
        return [self._resources[h.resource_id] for h in self.hits]

    def provider(self, resource: Resource) -> Department:
        """A hit's provider department, loaded with the page."""
        return self._providers[resource.provider_id]

    def items(self, resource: Resource) -> list[RowMapping]:
        """A hit's data items (rows of ``data_item``, in order), loaded with the page; its
        ``items`` relationship is not loaded."""
        return self._items[resource.id or 0]


@dataclass
class _Found:
    """The page's hits as the index found them, in order."""

    tokens: list[QueryToken]
    searcher: tantivy.Searcher
    query: tantivy.Query
    addresses: list[tantivy.DocAddress]
    ids: list[int]
    scores: list[float | None]
    total: int


def _find(session: Session, params: SearchParams) -> _Found | None:
    """Search the index: the page's hits and the total. None: nothing can match."""
    tokens = parse_query(params.q)
    if len(tokens) > MAX_QUERY_TOKENS:
        raise Invalid(f"A search may have at most {MAX_QUERY_TOKENS} words.",
                      key="problem.catalog.search_too_many_words",
                      params={"MAX_QUERY_TOKENS": MAX_QUERY_TOKENS})
    filters = _filters(session, params)
    index = engine.reader()
    if index is None:  # not built yet: the writer builds it on start
        return None
    searcher = index.searcher()
    code = _code_query(params.q)
    if not tokens and code is None and (params.q or "").strip():
        return None  # words were asked for but none can be searched (punctuation only)
    # Document frequencies of terms that each make a hit: a bound of the total of one word
    # without filters only, so looked up only then.
    floor: list[int] | None = [] if len(tokens) == 1 and not filters else None
    text = _text_query(searcher, tokens, floor) if tokens else None
    if text is not None and code is not None:
        text = tantivy.Query.boolean_query([(tantivy.Occur.Should, text),
                                            (tantivy.Occur.Should, code)])
    elif text is None:
        text = code if code is not None or not tokens else None
    if text is None and tokens:  # a word or prefix that occurs nowhere
        return None
    query = tantivy.Query.boolean_query(
        [(tantivy.Occur.Must, text or tantivy.Query.all_query())]
        + [(tantivy.Occur.Must, tantivy.Query.const_score_query(f, 0.0)) for f, _ in filters])
    sort, descending = _sort_of(params, bool(tokens))
    offset = (params.page - 1) * params.size
    # A total known to pass the bound without counting: the page alone is collected.
    capped = _at_least(searcher, floor or [], filters if text is None else []) > TOTAL_BOUND
    # Browsing everything: the total is the number of documents.
    known = searcher.num_docs if text is None and not filters else None
    if sort is SortKey.relevance:
        found = searcher.search(query, params.size, count=not capped, offset=offset)
    else:
        field, order = _sort_field(sort, descending)
        if known is not None and WINDOWS:
            return _browse(searcher, query, params, field, order, known)
        found = searcher.search(query, params.size, count=not capped and known is None,
                                order_by_field=field, offset=offset, order=order)
    addresses = [address for _, address in found.hits]
    ids = [int(i) for i in searcher.fast_field_values("id", addresses)] if addresses else []  # type: ignore[arg-type]
    scores: list[float | None] = [float(s) for s, _ in found.hits] \
        if sort is SortKey.relevance else [None] * len(ids)
    if sort is SortKey.relevance:
        # Equal scores in different segments come out in segment order: by id, as before.
        ranked = sorted(range(len(ids)), key=lambda i: (-(scores[i] or 0.0), ids[i]))
        ids, scores = [ids[i] for i in ranked], [scores[i] for i in ranked]
        addresses = [addresses[i] for i in ranked]
    total = known if known is not None else TOTAL_BOUND + 1 if capped else \
        int(found.count or 0)  # type: ignore[attr-defined]  # missing from the stub
    return _Found(tokens, searcher, query, addresses, ids, scores, total)


def _browse(searcher: tantivy.Searcher, query: tantivy.Query, params: SearchParams,
            field: str, order: tantivy.Order, total: int) -> _Found:
    """A page of every resource by a sort key, from a window on the key
    (``catalog.search.window``): the same hits in the same order as sorting them all."""
    offset = (params.page - 1) * params.size
    # The name's window is a range on its first bytes (engine.NAME_HEAD); the others' keys
    # have the value in their high 32 bits.
    ranged, shift = (engine.NAME_HEAD, 0) if field == engine.NAME_SORT else (field, 32)
    got = window.top(searcher, query, field, ranged, shift,
                     descending=order == tantivy.Order.Desc, offset=offset,
                     size=params.size, need=offset + params.size)
    addresses = [address for _, address in got.hits]
    ids = [int(i) for i in searcher.fast_field_values("id", addresses)] if addresses else []  # type: ignore[arg-type]
    return _Found([], searcher, query, addresses, ids, [None] * len(ids), total)


def _deleted(searcher: tantivy.Searcher) -> int:
    """Documents deleted but not yet merged away: term statistics still count them. Every
    document has exactly one security level, so the levels' document frequencies add up to
    all documents, deleted or not."""
    return sum(searcher.doc_freq(engine.LEVEL, code)
               for code in engine.LEVEL_CODES.values()) - searcher.num_docs


def _at_least(searcher: tantivy.Searcher, floor: list[int], filters: list[_Filter]) -> int:
    """A lower bound of the hits, known without visiting them (0: none known). ``floor``:
    the document frequencies of terms any of which makes a hit (one query word, no
    filter); ``filters``: those of a browse."""
    if filters and len(filters) == 1 and filters[0][1] is not None:
        field, value = filters[0][1]
        floor = [searcher.doc_freq(field, value)]
    elif filters:
        return 0
    best = max(floor, default=0)
    # Term statistics include deleted documents: what is sure is what they exceed them by.
    return best - _deleted(searcher) if best > TOTAL_BOUND else 0


def search(session: Session, params: SearchParams) -> SearchPage:
    """Active resources matching every query word and every filter: one page, and the total,
    with the page's resources loaded from the database (the web pages, the CLI)."""
    found = _find(session, params)
    if found is None:
        return SearchPage(total=0, page=params.page, size=params.size, hits=[])
    page = SearchPage(total=min(found.total, TOTAL_BOUND),
                      total_capped=found.total > TOTAL_BOUND,
                      page=params.page, size=params.size, hits=[])
    resources, page._providers, page._items = _load(session, found.ids)
    for rid, score in zip(found.ids, found.scores, strict=True):
        resource = resources.get(rid)
        if resource is None:  # the index runs a moment behind the database
            continue
        page.hits.append(SearchHit(resource_id=rid, code=resource.code,
                                   score=round(float(score), 3) if score is not None else None,
                                   matched=matched_fields(resource, page._items[rid],
                                                          found.tokens)))
    page._resources = resources
    if params.facets:
        page.facets = _facets(session, found.searcher, found.query)
    return page


@dataclass
class CardPage:
    """A result page as the API serves it: each hit's JSON (a ResourceHit) from the index."""

    total: int
    total_capped: bool
    page: int
    size: int
    ids: list[int]
    cards: list[str]
    facets: Facets | None


def search_cards(session: Session, params: SearchParams) -> CardPage:
    """Like ``search``, but the hits come from the index's stored cards: no database query
    for the page (one for a department filter's code, one more for facets by department)."""
    found = _find(session, params)
    if found is None:
        return CardPage(0, False, params.page, params.size, [], [], None)
    ids, cards = [], []
    for rid, address, score in zip(found.ids, found.addresses, found.scores, strict=True):
        stored: bytes = found.searcher.doc(address).get_first(engine.CARD) or b"{}"
        head = '{"score":null,' if score is None else f'{{"score":{round(float(score), 3)!r},'
        ids.append(rid)
        cards.append(head + stored.decode()[1:])
    facets = _facets(session, found.searcher, found.query) if params.facets else None
    return CardPage(min(found.total, TOTAL_BOUND), found.total > TOTAL_BOUND, params.page,
                    params.size, ids, cards, facets)


def items_json(session: Session, ids: list[int]) -> dict[int, str]:
    """Each resource's data items as the API shows them (a JSON list): one query."""
    table = DataItem.__table__  # type: ignore[attr-defined]
    items: dict[int, list[DataItemOut]] = {i: [] for i in ids}
    if ids:
        for row in session.execute(sa_select(table).where(table.c.resource_id.in_(ids))
                                   .order_by(table.c.resource_id, table.c.position)).mappings():
            items[row["resource_id"]].append(DataItemOut.model_validate(dict(row)))
    return {i: _ITEMS.dump_json(v).decode() for i, v in items.items()}


_ITEMS = TypeAdapter(list[DataItemOut])


def _code_query(q: str | None) -> tantivy.Query | None:
    """A query that looks like the start of a resource code ("440300-GA-1", "GA-101"): the
    resources whose code (or a tail of it) begins so, ranked above word matches."""
    text = (q or "").strip().casefold()
    if not _CODE_PREFIX.fullmatch(text):
        return None
    # The pattern admits letters, digits and dashes only: nothing to escape in the regex.
    return tantivy.Query.boost_query(
        tantivy.Query.regex_query(engine.SCHEMA, engine.CODE, f"{text}.*"), CODE_BOOST)


# --- the query --------------------------------------------------------------------------------


def _text_query(searcher: tantivy.Searcher, tokens: list[QueryToken],
                floor: list[int] | None) -> tantivy.Query | None:
    """The words' query; ``floor`` (unless None) gets the document frequency of each term of
    the index that alone makes a document match a word (for a one-word query, a bound of its
    total)."""
    musts = []
    for token in tokens:
        shoulds = []
        for field in engine.TEXT_FIELDS:
            q = _field_query(searcher, field.name, token, floor)
            if q is not None:
                shoulds.append((tantivy.Occur.Should, tantivy.Query.boost_query(q, field.boost)))
        if not shoulds:
            return None
        musts.append((tantivy.Occur.Must, tantivy.Query.boolean_query(shoulds)))
    return tantivy.Query.boolean_query(musts)


def _field_query(searcher: tantivy.Searcher, field: str, token: QueryToken,
                 floor: list[int] | None) -> tantivy.Query | None:
    schema = engine.SCHEMA
    if token.kind == "term":
        if floor is not None:
            floor.append(searcher.doc_freq(field, token.text))
        return tantivy.Query.term_query(schema, field, token.text)
    if token.kind == "phrase":
        bigrams: list[str | tuple[int, str]] = list(token.bigrams)
        return tantivy.Query.phrase_query(schema, field, bigrams)
    if token.cjk:  # one character: any bigram it begins, or a run it ends
        return tantivy.Query.regex_query(schema, field, f"{token.text}.*")
    # A Latin prefix: its index terms, scored like words (BM25, length-normalised), the whole
    # word above longer ones; too many terms and it is a constant-score range instead.
    terms = searcher.terms_with_prefix(field, token.text, limit=MAX_EXPANSIONS + 1)
    if not terms:
        return None
    if floor is not None:
        floor.extend(n for _, n in terms)
    if len(terms) > MAX_EXPANSIONS:
        return tantivy.Query.boost_query(
            tantivy.Query.regex_query(schema, field, f"{token.text}.*"), PREFIX_FACTOR)
    return tantivy.Query.boolean_query([
        (tantivy.Occur.Should, tantivy.Query.boost_query(
            tantivy.Query.term_query(schema, field, term),
            1.0 if term == token.text else PREFIX_FACTOR))
        for term, _ in terms])


# A filter's query and, for a term filter, its (field, value): term statistics bound totals.
_Filter = tuple[tantivy.Query, tuple[str, int] | None]


def _filters(session: Session, params: SearchParams) -> list[_Filter]:
    terms: list[tuple[str, int]] = []
    if params.department:
        terms.append((engine.DEPARTMENT, _department_id(session, params.department)))
    if params.category is not None:
        terms.append((engine.CATEGORY, engine.category_code(params.category)))
    if params.sharing_type is not None:
        terms.append((engine.SHARING, engine.SHARING_CODES[params.sharing_type]))
    if params.update_cycle is not None:
        terms.append((engine.CYCLE, engine.CYCLE_CODES[params.update_cycle]))
    if params.security_level is not None:
        terms.append((engine.LEVEL, engine.LEVEL_CODES[params.security_level]))
    out: list[_Filter] = [(tantivy.Query.term_query(engine.SCHEMA, f, v), (f, v))
                          for f, v in terms]
    if params.min_quality is not None:
        # Over the field's indexed terms: counting 100,000 hits so costs 1 ms at a million
        # resources, over its column 5 ms (measured).
        out.append((tantivy.Query.range_query(engine.SCHEMA, engine.QUALITY,
                                              tantivy.FieldType.Float,
                                              float(params.min_quality), None,
                                              use_inverted_index=True), None))
    return out


def _department_id(session: Session, code_or_id: str) -> int:
    try:
        return get_department(session, code_or_id.strip()).id or 0
    except NotFound:
        raise Invalid(f"No department '{code_or_id}' to filter by. "
                      "List departments with GET /api/v1/departments.",
                      key="problem.catalog.no_filter_department",
                      params={"code_or_id": code_or_id}) from None


def _sort_field(sort: SortKey, descending: bool) -> tuple[str, tantivy.Order]:
    """The fast field to order by, and the direction (see engine for the keys' layout)."""
    direction = tantivy.Order.Desc if descending else tantivy.Order.Asc
    if sort is SortKey.name:
        return engine.NAME_SORT, direction
    if sort is SortKey.published:
        return engine.PUBLISHED, direction
    # Nullable: a key per direction, both descending, so that missing values come last.
    if sort is SortKey.updated:
        return (engine.UPDATED_DESC if descending else engine.UPDATED_ASC), tantivy.Order.Desc
    return (engine.QUALITY_DESC if descending else engine.QUALITY_ASC), tantivy.Order.Desc


def _sort_of(params: SearchParams, has_query: bool) -> tuple[SortKey, bool]:
    """The sort key and whether it is descending."""
    sort = params.sort or (SortKey.relevance if has_query else SortKey.published)
    if sort == SortKey.relevance and not has_query:
        sort = SortKey.published  # nothing to be relevant to
    order = params.order or ("asc" if sort == SortKey.name else "desc")
    return sort, order == "desc"


# --- the page ---------------------------------------------------------------------------------


def _load(session: Session, ids: list[int]) -> tuple[
        dict[int, Resource], dict[int, Department], dict[int, list[RowMapping]]]:
    """The page's resources, their providers and their data items: three queries, whatever
    the page size, and nothing looked up per hit afterwards. The items are plain rows: ten
    or so per resource, they cost more as ORM objects than the rest of the search."""
    if not ids:
        return {}, {}, {}
    resources = {r.id or 0: r for r in session.exec(
        select(Resource).where(col(Resource.id).in_(ids)).options(lazyload("*")))}
    wanted = {r.provider_id for r in resources.values()}
    providers = {d.id or 0: d for d in session.exec(
        select(Department).where(col(Department.id).in_(wanted)))}
    items: dict[int, list[RowMapping]] = {i: [] for i in ids}
    table = DataItem.__table__  # type: ignore[attr-defined]
    for row in session.execute(sa_select(table).where(table.c.resource_id.in_(ids))
                               .order_by(table.c.resource_id, table.c.position)).mappings():
        items[row["resource_id"]].append(row)
    return resources, providers, items


# Labels of the hits' ``matched``: (label, the resource's texts for it).
MATCH_LABELS = ("name", "name_en", "keywords", "items", "summary", "summary_en",
                "item_descriptions")


def _texts(resource: Resource, items: list[RowMapping], label: str) -> list[str]:
    if label == "keywords":
        return list(resource.keywords or [])
    if label == "items":
        return [t for i in items for t in (split_camel(i["name"]), i["title"], i["title_en"])]
    if label == "item_descriptions":
        return [i["description"] for i in items]
    return [getattr(resource, label) or ""]


def matched_fields(resource: Resource, items: list[RowMapping],
                   tokens: list[QueryToken]) -> list[str]:
    """The fields some query word was found in, for the page's hits only (in Python: 20
    resources cost less than asking the index field by field)."""
    out = []
    for label in MATCH_LABELS:
        # One text per line: neither a phrase nor a word runs across two of them.
        text = normalize("\n".join(_texts(resource, items, label)))
        present = [t for t in tokens if t.text in text]  # necessary, and enough for CJK:
        if not present:  # a CJK substring lies within one run, so its bigrams are there
            continue
        if any(t.cjk for t in present):
            out.append(label)
            continue
        terms = analyze(text)  # Latin words and prefixes: whole words only
        if any(t.matches(terms, "") for t in present):
            out.append(label)
    return out


# --- facets -----------------------------------------------------------------------------------

_QUALITY_STEPS = (60.0, 80.0, 90.0)


def _facets(session: Session, searcher: tantivy.Searcher, query: tantivy.Query) -> Facets:
    """Hits per value of each filter, in one pass over the hits (tantivy's aggregations on the
    filter fields' columnar values)."""
    aggs: dict[str, Any] = {f: {"terms": {"field": f, "size": 1000}}
                            for f in engine.FILTER_FIELDS}
    ranges = [{"to": _QUALITY_STEPS[0]}] + [
        {"from": lo, "to": hi} for lo, hi in itertools.pairwise(_QUALITY_STEPS)
    ] + [{"from": _QUALITY_STEPS[-1]}]
    aggs[engine.QUALITY] = {"range": {"field": engine.QUALITY, "ranges": ranges}}
    result = searcher.aggregate(query, aggs)
    counts = {f: {int(b["key"]): int(b["doc_count"]) for b in result[f]["buckets"]}
              for f in engine.FILTER_FIELDS}
    codes = dict(session.exec(select(Department.id, Department.code).where(
        col(Department.id).in_(list(counts[engine.DEPARTMENT]))
    )).all()) if counts[engine.DEPARTMENT] else {}
    by_quality: Counter[str] = Counter()
    for bucket in result[engine.QUALITY]["buckets"]:
        start = bucket.get("from")
        for step in _QUALITY_STEPS:
            if start is not None and start >= step:
                by_quality[f"{step:g}"] += int(bucket["doc_count"])
    return Facets(
        department={codes[k]: n for k, n in counts[engine.DEPARTMENT].items() if k in codes},
        category={str(k): n for k, n in counts[engine.CATEGORY].items()},
        sharing_type=_named(counts[engine.SHARING], engine.SHARING_CODES),
        update_cycle=_named(counts[engine.CYCLE], engine.CYCLE_CODES),
        security_level=_named(counts[engine.LEVEL], engine.LEVEL_CODES),
        min_quality={f"{s:g}": by_quality[f"{s:g}"] for s in _QUALITY_STEPS},
    )


def _named(counts: dict[int, int], codes: dict[Any, int]) -> dict[str, int]:
    names = {code: member.value for member, code in codes.items()}
    return {names[k]: n for k, n in counts.items() if k in names}
