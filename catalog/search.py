"""Full-text search over the catalog, in Chinese and English, on SQLite and PostgreSQL alike.

Neither backend's own full-text engine will do (SQLite's FTS5 does not exist on PostgreSQL,
PostgreSQL's tsvector does not exist on SQLite, neither segments Chinese, and nothing may be
downloaded at run time), so the catalog keeps its own inverted index in two plain tables
(``catalog.models``), written with portable SQLAlchemy Core in the caller's transaction:

* ``search_posting``: one row per distinct term of an *active* resource. Chinese text is cut
  into overlapping character bigrams like Elasticsearch's CJK analyzer ("人口基础" -> 人口 口基
  基础, plus each run's last character so a one-character query can be a prefix range); other
  text into case-folded words, searched by prefix with a range on the primary key. A row holds
  the precomputed BM25-style weight (name > keywords > data item names > summary), the fields
  the term occurs in, the resource's filter codes (so searches filter and count without
  joining ``resource`` per candidate) and, for bigrams, the characters that follow each
  occurrence (so "婚姻登记" is proven contiguous from the 婚姻 row alone).
* ``search_document``: the normalised text, read only for Chinese phrases longer than a
  posting's stored context.

A query is analysed the same way; every token must match (AND). The rarest token drives (one
index range), the others are probed by primary key per candidate, and the page and the total
come from two short statements. See docs/search.md for the reasoning and the figures.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict
from pydantic import Field as PydanticField
from sqlalchemy import (
    ColumnElement,
    FromClause,
    Index,
    Select,
    Table,
    and_,
    case,
    delete,
    exists,
    func,
    insert,
    literal,
    nulls_last,
    or_,
    select,
)
from sqlalchemy.sql.elements import UnaryExpression
from sqlmodel import Session, SQLModel

from catalog.models import (
    Category,
    ResourceStatus,
    SecurityLevel,
    SharingType,
    UpdateCycle,
)
from kernel.identity import get_department
from kernel.problems import Invalid, NotFound

# Core tables: the index is read and written in bulk, without ORM objects.
_RES = SQLModel.metadata.tables["resource"]
_ITEM = SQLModel.metadata.tables["data_item"]
_POST = SQLModel.metadata.tables["search_posting"]
_DOC = SQLModel.metadata.tables["search_document"]

MAX_TERM = 64  # characters; the column's width
CTX_CHARS = 6  # characters kept after each bigram: phrases up to 8 characters need no text
MAX_QUERY_TOKENS = 16
MIN_PREFIX = 3  # shorter Latin words match exactly: "in" as a prefix would hit half the index
PREFIX_FACTOR = 0.5  # a word found only by prefix counts half as much as the word itself
DF_CAP = 10_000  # document frequencies are counted up to here; idf barely changes beyond it
BATCH = 1_000  # resources per bulk (re)index round trip

# Filter codes repeated in every posting. Fixed numbers rather than enum positions, so that
# adding a member to an enum never silently renumbers an existing index.
SHARING_CODES = {SharingType.unconditional: 1, SharingType.conditional: 2,
                 SharingType.not_shareable: 3}
CYCLE_CODES = {UpdateCycle.realtime: 1, UpdateCycle.daily: 2, UpdateCycle.weekly: 3,
               UpdateCycle.monthly: 4, UpdateCycle.quarterly: 5, UpdateCycle.yearly: 6,
               UpdateCycle.irregular: 7}
LEVEL_CODES = {SecurityLevel.general: 1, SecurityLevel.important: 2, SecurityLevel.core: 3}


def category_code(category: Category) -> int:
    return int(category.value)  # the guideline's own numbers: 101, 201, ...


# --- analysis ---------------------------------------------------------------------------------

# Scripts written without spaces (Han, kana, Hangul): indexed as character bigrams.
_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af\U00020000-\U0003134f"
# A run of CJK characters, or a word of other letters and digits (the underscore splits too:
# data item names are snake_case).
_TOKEN_RE = re.compile(f"([{_CJK}]+)|([^\\W_{_CJK}]+)")
_CAMEL_RE = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
# Dropped from English queries (not from the index), so "population of the city" still
# finds "City population". Chinese needs no list: bigrams of function words are rare.
_STOPWORDS = frozenset(
    ["a", "an", "and", "at", "by", "for", "from", "in", "of", "on", "or", "the", "to", "with"]
)


def normalize(text: str) -> str:
    """Fold width and case: full-width "ＡＢＣ１" and "abc1" index alike."""
    return unicodedata.normalize("NFKC", text).casefold()


def analyze(text: str) -> list[str]:
    """The index terms of ``text``: CJK bigrams (and each run's last character), Latin words."""
    return _terms(normalize(text), None)


def _terms(text: str, ctx: dict[str, set[str]] | None) -> list[str]:
    """Terms of normalised text; with ``ctx``, also what follows each bigram occurrence."""
    terms: list[str] = []
    for cjk, word in _TOKEN_RE.findall(text):
        if not cjk:
            terms.append(word[:MAX_TERM])
            continue
        bigrams = [cjk[i : i + 2] for i in range(len(cjk) - 1)]
        terms += bigrams
        terms.append(cjk[-1])  # so a one-character query, as a prefix range, sees every use
        if ctx is not None:
            for i in range(len(cjk) - 2):
                ctx.setdefault(bigrams[i], set()).add(cjk[i + 2 : i + 2 + CTX_CHARS])
    return terms


def _split_camel(name: str) -> str:
    """ "idCardNo" -> "idCardNo id Card No": column names are searchable by their parts."""
    parts = _CAMEL_RE.sub(" ", name)
    return name if parts == name else f"{name} {parts}"


# --- documents and postings -------------------------------------------------------------------


@dataclass(frozen=True)
class SearchField:
    """A searchable field: its name in hits, its bit in ``search_posting.fields``, its weight,
    and its typical length in terms (fixed rather than measured, so that a posting's weight
    never depends on the rest of the catalog and one resource can be re-indexed alone)."""

    label: str
    bit: int
    weight: float
    avg_terms: float


# name > keywords > data item names > summary (the requirement's order); descriptions of
# single columns say least about what the resource is.
NAME = SearchField("name", 1, 10.0, 8)
NAME_EN = SearchField("name_en", 2, 10.0, 5)
KEYWORDS = SearchField("keywords", 4, 6.0, 8)
ITEMS = SearchField("items", 8, 3.0, 60)  # data item names and titles
SUMMARY = SearchField("summary", 16, 1.5, 60)
SUMMARY_EN = SearchField("summary_en", 32, 1.5, 30)
ITEM_DESCRIPTIONS = SearchField("item_descriptions", 64, 1.0, 80)
FIELDS = (NAME, NAME_EN, KEYWORDS, ITEMS, SUMMARY, SUMMARY_EN, ITEM_DESCRIPTIONS)
K1, B = 1.2, 0.75  # BM25's usual saturation and length-normalisation constants


@dataclass
class _Doc:
    """The searchable text of one resource, by field, and its filter codes."""

    resource_id: int
    active: bool
    codes: tuple[int, int, int, int, int]  # provider, category, sharing, cycle, level
    texts: dict[SearchField, list[str]] = field(default_factory=dict)

    def add(self, which: SearchField, *texts: str | None) -> None:
        self.texts.setdefault(which, []).extend(t for t in texts if t)

    def normalized(self) -> dict[SearchField, str]:
        # One line per text: a substring check must not match across two fields or items.
        return {which: normalize("\n".join(texts)) for which, texts in self.texts.items()}

    def rows(self) -> tuple[list[tuple[Any, ...]], str]:
        """Posting rows in column order, and the document text."""
        normalized = self.normalized()
        ctx: dict[str, set[str]] = {}
        rows = [
            (term, self.resource_id, round(weight * 100), bits,
             "|" + "|".join(sorted(ctx[term])) + "|" if term in ctx else "", *self.codes)
            for term, (weight, bits) in _score(normalized, ctx).items()
        ]
        return rows, "\n".join(normalized.values())


def _score(normalized: dict[SearchField, str], ctx: dict[str, set[str]]) -> dict[str, list[Any]]:
    """term -> [weight, bit set of fields]. Hot in ``reindex_all``: kept loop-lean."""
    out: dict[str, list[Any]] = {}
    for which, text in normalized.items():
        terms = _terms(text, ctx)
        if not terms:
            continue
        norm = K1 * (1 - B + B * len(terms) / which.avg_terms)
        boost, bit = which.weight * (K1 + 1), which.bit
        for term, tf in Counter(terms).items():
            entry = out.get(term)
            if entry is None:
                out[term] = [boost * tf / (tf + norm), bit]
            else:
                entry[0] += boost * tf / (tf + norm)
                entry[1] |= bit
    return out


def _doc_from_row(row: Any, items: Iterable[Any]) -> _Doc:
    """Works for an ORM ``Resource`` and for a Core row alike (same attribute names)."""
    codes = (row.provider_id, category_code(row.category), SHARING_CODES[row.sharing_type],
             CYCLE_CODES[row.update_cycle], LEVEL_CODES[row.security_level])
    doc = _Doc(row.id, row.status == ResourceStatus.active, codes)
    doc.add(NAME, row.name)
    doc.add(NAME_EN, row.name_en)
    doc.add(KEYWORDS, *(row.keywords or []))
    doc.add(SUMMARY, row.summary)
    doc.add(SUMMARY_EN, row.summary_en)
    for item in items:
        doc.add(ITEMS, _split_camel(item.name), item.title, item.title_en)
        doc.add(ITEM_DESCRIPTIONS, item.description)
    return doc


def _write(session: Session, docs: Sequence[_Doc]) -> None:
    postings: list[tuple[Any, ...]] = []
    documents: list[tuple[Any, ...]] = []
    for doc in docs:
        if doc.active:  # withdrawn resources are not searchable: leave them out entirely
            rows, text = doc.rows()
            postings.extend(rows)
            documents.append((doc.resource_id, text))
    # Sorted like the primary key: SQLite appends to each term's run instead of splitting pages.
    postings.sort()
    _bulk_insert(session, _POST, postings)
    _bulk_insert(session, _DOC, documents)


def _bulk_insert(session: Session, table: Table, rows: list[tuple[Any, ...]]) -> None:
    """Insert plain tuples in column order, as fast as the driver allows. The statement is
    ``insert(table)`` compiled by SQLAlchemy for the dialect, minus its per-row parameter
    processing, which cost more than SQLite's own work for millions of postings. psycopg gets
    COPY instead: several times faster than its executemany, for the same rows."""
    if not rows:
        return
    conn = session.connection()
    keys = [c.name for c in table.columns]
    if conn.dialect.driver == "psycopg":
        _copy(conn.connection.driver_connection, table.name, keys, rows)
        return
    compiled = insert(table).compile(dialect=conn.dialect, column_keys=keys)
    if compiled.positiontup == keys:  # qmark/format drivers (sqlite3): tuples as they are
        conn.exec_driver_sql(str(compiled), rows)
    else:  # named parameters
        conn.exec_driver_sql(str(compiled), [dict(zip(keys, row, strict=True)) for row in rows])


def _copy(driver_connection: Any, table: str, keys: list[str],
          rows: list[tuple[Any, ...]]) -> None:
    # Identifiers are our own table and column names, never user input.
    with driver_connection.cursor() as cursor, \
            cursor.copy(f"COPY {table} ({', '.join(keys)}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)


# --- index maintenance (public) ---------------------------------------------------------------


def index_resource(session: Session, resource: Any) -> None:
    """(Re)index one resource in the caller's transaction. Call after every insert or update
    of the resource, its items or its status (``resource.items`` must be current): postings
    carry the status and filter fields too. A resource that is not active is only removed."""
    if resource.id is None:
        session.flush()
    remove_resource(session, resource.id)
    _write(session, [_doc_from_row(resource, resource.items)])


def remove_resource(session: Session, resource_id: int) -> None:
    session.execute(delete(_POST).where(_POST.c.resource_id == resource_id))
    session.execute(delete(_DOC).where(_DOC.c.resource_id == resource_id))


def reindex_all(session: Session) -> int:
    """Rebuild the whole index from the catalog tables; returns the resources indexed.

    The secondary index on resource_id is dropped during the load and rebuilt at the end (in
    the same transaction: DDL is transactional on SQLite and PostgreSQL): building it once
    by sorting is several times cheaper than maintaining it per inserted posting."""
    conn = session.connection()
    by_resource = _posting_resource_index()
    by_resource.drop(conn)
    session.execute(delete(_POST))
    session.execute(delete(_DOC))
    count = 0
    for docs in _iter_docs(session):
        _write(session, docs)
        count += len(docs)
    by_resource.create(conn)
    if conn.dialect.name == "postgresql":
        # Its planner costs the probes from statistics; stale ones after a rebuild make it
        # misjudge them badly enough to switch on JIT compilation (~0.3 s per search).
        # SQLite plans these statements by their shape alone and needs none.
        conn.exec_driver_sql("ANALYZE search_posting")
        conn.exec_driver_sql("ANALYZE search_document")
    return count


def _posting_resource_index() -> Index:
    return next(i for i in _POST.indexes if i.name == "ix_search_posting_resource_id")


def _iter_docs(session: Session) -> Iterator[list[_Doc]]:
    """Active resources in id order, BATCH at a time, with their items (two queries a batch)."""
    res_cols = [_RES.c[n] for n in ("id", "name", "name_en", "keywords", "summary", "summary_en",
                                    "status", "provider_id", "category", "sharing_type",
                                    "update_cycle", "security_level")]
    item_cols = [_ITEM.c[n] for n in ("resource_id", "name", "title", "title_en", "description")]
    last = 0
    while True:
        resources = session.execute(
            select(*res_cols)
            .where(_RES.c.id > last, _RES.c.status == ResourceStatus.active)
            .order_by(_RES.c.id).limit(BATCH)
        ).all()
        if not resources:
            return
        last = resources[-1].id
        items: dict[int, list[Any]] = {}
        for item in session.execute(
            select(*item_cols)
            .where(_ITEM.c.resource_id.between(resources[0].id, last))
            .order_by(_ITEM.c.resource_id, _ITEM.c.position)
        ):
            items.setdefault(item.resource_id, []).append(item)
        yield [_doc_from_row(r, items.get(r.id, ())) for r in resources]


# --- query analysis ---------------------------------------------------------------------------


@dataclass(frozen=True)
class QueryToken:
    """One query word and how the index answers it.

    ``term``: one index term (a two-character CJK word, a short Latin word). ``phrase``: a CJK
    word of 3+ characters: its first bigram, followed by the rest per the posting's context.
    ``prefix``: index terms in [text, text + 1): a Latin word of 3+ letters (the whole word
    weighs more than longer words it begins), or one CJK character.
    """

    text: str
    kind: Literal["term", "phrase", "prefix"]
    cjk: bool
    # A prefix's index terms when there are few (see _expand): looked up by primary key.
    expansions: tuple[str, ...] | None = None

    @property
    def grouped(self) -> bool:
        """Whether one resource can have several matching postings."""
        return self.kind == "prefix" and (self.expansions is None or len(self.expansions) > 1)

    @property
    def range(self) -> tuple[str, str]:
        return self.text, self.text[:-1] + chr(ord(self.text[-1]) + 1)

    @property
    def needs_text(self) -> bool:
        """Longer than a posting's context can prove: also checked in the document text."""
        return self.kind == "phrase" and len(self.text) > CTX_CHARS + 2

    def where(self, post: FromClause) -> ColumnElement[bool]:
        term = post.c.term
        if self.expansions is not None:
            return term.in_(self.expansions) if self.grouped else term == self.expansions[0]
        if self.kind == "prefix":
            lo, hi = self.range
            return and_(term >= lo, term < hi)
        if self.kind == "term":
            return term == self.text
        rest = self.text[2:]  # CJK only: no LIKE wildcards to escape
        pattern = f"%|{rest}%" if len(rest) <= CTX_CHARS else f"%|{rest[:CTX_CHARS]}|%"
        return and_(term == self.text[:2], post.c.ctx.like(pattern))

    def matches(self, term: str, ctx: str) -> bool:
        """The same test in Python, for telling which fields matched."""
        if self.kind == "prefix":
            lo, hi = self.range
            return lo <= term < hi
        if self.kind == "term":
            return term == self.text
        rest = self.text[2:][:CTX_CHARS]
        return term == self.text[:2] and f"|{rest}" in ctx

    def score(self, post: FromClause) -> ColumnElement[Any]:
        weight = post.c.weight
        if self.kind == "prefix" and not self.cjk:
            return case((post.c.term == self.text, weight), else_=weight * PREFIX_FACTOR)
        return weight


def parse_query(q: str | None) -> list[QueryToken]:
    """Analyse a query like the text it searches. Duplicate words count once."""
    tokens: dict[tuple[str, str], QueryToken] = {}
    for cjk, word in _TOKEN_RE.findall(normalize(q or "")):
        token = _cjk_token(cjk) if cjk else _word_token(word[:MAX_TERM])
        tokens.setdefault((token.kind, token.text), token)
    found = list(tokens.values())
    # Stopwords are dropped unless the query is nothing but stopwords.
    kept = [t for t in found if t.cjk or t.text not in _STOPWORDS]
    return kept or found


def _cjk_token(run: str) -> QueryToken:
    if len(run) == 1:
        return QueryToken(run, "prefix", cjk=True)
    return QueryToken(run, "term" if len(run) == 2 else "phrase", cjk=True)


def _word_token(word: str) -> QueryToken:
    return QueryToken(word, "prefix" if len(word) >= MIN_PREFIX else "term", cjk=False)


# --- search (public) --------------------------------------------------------------------------


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
    page: int = PydanticField(default=1, ge=1, le=10_000)
    size: int = PydanticField(default=20, ge=1, le=100)


class SearchHit(BaseModel):
    resource_id: int
    code: str
    score: float | None  # None when browsing without a query
    matched: list[str]  # labels of the fields (FIELDS) some query word was found in


class SearchPage(BaseModel):
    total: int
    page: int
    size: int
    hits: list[SearchHit]


def search(session: Session, params: SearchParams) -> SearchPage:
    """Active resources matching every query word and every filter: one page, and the total."""
    tokens = parse_query(params.q)
    if len(tokens) > MAX_QUERY_TOKENS:
        raise Invalid(f"A search may have at most {MAX_QUERY_TOKENS} words.")
    filters = _Filters.of(session, params)
    if not tokens:
        return _browse(session, params, filters)
    return _full_text(session, params, tokens, filters)


@dataclass(frozen=True)
class _Filters:
    """The filters, applicable to postings (as codes) or to resources (as columns)."""

    values: dict[str, Any]  # posting column -> code
    columns: dict[str, Any]  # resource column -> value
    min_quality: float | None

    @classmethod
    def of(cls, session: Session, params: SearchParams) -> _Filters:
        values: dict[str, Any] = {}
        columns: dict[str, Any] = {}
        if params.department:
            dept_id = _department_id(session, params.department)
            values["provider_id"] = columns["provider_id"] = dept_id
        if params.category is not None:
            values["category_code"] = category_code(params.category)
            columns["category"] = params.category
        for name, column, codes in (("sharing_type", "sharing_code", SHARING_CODES),
                                    ("update_cycle", "cycle_code", CYCLE_CODES),
                                    ("security_level", "level_code", LEVEL_CODES)):
            value = getattr(params, name)
            if value is not None:
                values[column] = codes[value]
                columns[name] = value
        return cls(values, columns, params.min_quality)

    def on_postings(self, post: FromClause) -> list[ColumnElement[bool]]:
        conds = [post.c[name] == value for name, value in self.values.items()]
        if self.min_quality is not None:  # written by the quality context: only on resource
            conds.append(exists().where(_RES.c.id == post.c.resource_id,
                                        _RES.c.quality_score >= self.min_quality))
        return conds

    def on_resources(self) -> list[ColumnElement[bool]]:
        conds = [_RES.c.status == ResourceStatus.active]
        conds += [_RES.c[name] == value for name, value in self.columns.items()]
        if self.min_quality is not None:
            conds.append(_RES.c.quality_score >= self.min_quality)
        return conds


def _department_id(session: Session, code_or_id: str) -> int:
    try:
        return get_department(session, code_or_id.strip()).id or 0
    except NotFound:
        raise Invalid(f"No department '{code_or_id}' to filter by. "
                      "List departments with GET /api/v1/departments.") from None


def _sort_of(params: SearchParams, has_query: bool) -> tuple[SortKey, bool]:
    """The sort key and whether it is descending."""
    sort = params.sort or (SortKey.relevance if has_query else SortKey.published)
    if sort == SortKey.relevance and not has_query:
        sort = SortKey.published  # nothing to be relevant to
    order = params.order or ("asc" if sort == SortKey.name else "desc")
    return sort, order == "desc"


_SORT_COLUMNS = {
    SortKey.name: _RES.c.name,
    SortKey.published: _RES.c.published_at,
    SortKey.updated: _RES.c.last_data_update,
    SortKey.quality: _RES.c.quality_score,
}


def _ordering(column: Any, descending: bool, tiebreak: Any) -> list[UnaryExpression[Any]]:
    # Never-updated or never-scored resources go last either way (PostgreSQL would put NULLs
    # first when descending, SQLite last); the id keeps pages stable.
    direction = column.desc() if descending else column.asc()
    return [nulls_last(direction), tiebreak.asc()]


def _browse(session: Session, params: SearchParams, filters: _Filters) -> SearchPage:
    conds = filters.on_resources()
    total = session.execute(select(func.count()).select_from(_RES).where(*conds)).scalar_one()
    sort, descending = _sort_of(params, has_query=False)
    rows = session.execute(
        select(_RES.c.id, _RES.c.code).where(*conds)
        .order_by(*_ordering(_SORT_COLUMNS[sort], descending, _RES.c.id))
        .limit(params.size).offset((params.page - 1) * params.size)
    ).all()
    hits = [SearchHit(resource_id=r.id, code=r.code, score=None, matched=[]) for r in rows]
    return SearchPage(total=total, page=params.page, size=params.size, hits=hits)


def _full_text(session: Session, params: SearchParams, tokens: list[QueryToken],
               filters: _Filters) -> SearchPage:
    empty = SearchPage(total=0, page=params.page, size=params.size, hits=[])
    resolved = _expand(session, tokens)
    plan = _plan(session, resolved) if resolved is not None else None
    if resolved is None or plan is None:  # some word occurs nowhere
        return empty
    hits = _hits(resolved, plan, filters)
    rows = session.execute(_page(params, hits)).all()
    if rows:
        total = rows[0].total
    elif params.page > 1:  # past the last page: the page statement had no row to carry it
        total = session.execute(select(func.count()).select_from(hits)).scalar_one()
    else:
        return empty
    matched = _matched_fields(session, resolved, [r.id for r in rows])
    found = [SearchHit(resource_id=r.id, code=r.code, score=round(float(r.score) / 100, 3),
                       matched=matched.get(r.id, [])) for r in rows]
    return SearchPage(total=total, page=params.page, size=params.size, hits=found)


MAX_EXPANSIONS = 32  # beyond this, a prefix is looked up as a range


def _expand(session: Session, tokens: list[QueryToken]) -> list[QueryToken] | None:
    """Give each prefix token its index terms, if few: then it is probed by primary key, and a
    prefix that is a single word ("enterp" -> enterprise) needs no grouping. None: a prefix
    matches nothing."""
    out = []
    for token in tokens:
        if token.kind == "prefix":
            terms = _prefix_terms(session, token)
            if not terms:
                return None
            if len(terms) <= MAX_EXPANSIONS:
                token = replace(token, expansions=tuple(terms))
        out.append(token)
    return out


def _prefix_terms(session: Session, token: QueryToken) -> list[str]:
    """The distinct terms with the prefix, up to MAX_EXPANSIONS + 1, in one statement: a
    "loose index scan" (one primary-key probe per distinct term, not one per posting)."""
    lo, hi = token.range
    term = _POST.c.term
    first = select(func.min(term).label("term"), literal(1).label("n")).where(term >= lo,
                                                                                term < hi)
    walk = first.cte("walk", recursive=True)
    following = select(func.min(term)).where(term > walk.c.term, term < hi).scalar_subquery()
    walk = walk.union_all(
        select(following, walk.c.n + 1).where(walk.c.term.is_not(None),
                                              walk.c.n <= MAX_EXPANSIONS))
    found = session.execute(select(walk.c.term).where(walk.c.term.is_not(None))).scalars()
    return list(found)


@dataclass(frozen=True)
class _Plan:
    driver: int  # index of the token to scan; the others are probed per candidate
    idf: list[float]


def _plan(session: Session, tokens: list[QueryToken]) -> _Plan | None:
    """Pick the rarest token to drive and weigh tokens by BM25's idf. None: no hit possible."""
    if len(tokens) == 1:
        return _Plan(0, [1.0])  # idf cannot reorder the hits of one token
    *dfs, n_docs = _document_frequencies(session, tokens)
    if min(dfs) == 0:
        return None
    n = max(n_docs, *dfs, 1)
    idf = [max(math.log(1 + (n - df + 0.5) / (df + 0.5)), 0.05) for df in dfs]
    return _Plan(dfs.index(min(dfs)), idf)


def _document_frequencies(session: Session, tokens: list[QueryToken]) -> list[int]:
    """Capped posting counts per token, then (roughly) the number of documents: one statement.
    Ids are dense enough that the largest one stands in for the document count."""
    capped = [
        select(func.count())
        .select_from(select(literal(1)).where(t.where(_POST)).limit(DF_CAP).subquery())
        .scalar_subquery()
        for t in tokens
    ]
    capped.append(select(func.coalesce(func.max(_DOC.c.resource_id), 0)).scalar_subquery())
    return [int(v) for v in session.execute(select(*capped)).one()]


def _hits(tokens: list[QueryToken], plan: _Plan, filters: _Filters) -> FromClause:
    """(resource_id, score) of every hit, as a FROM for the page and count.

    A lone, ungrouped token is a plain index range: counting it and cutting its top page are
    two cheap scans. Otherwise the candidates are materialised once, so that the grouping,
    probes and quality lookups are not done twice (for the page and for the count) or thrice
    (a probe in both the WHERE and the score)."""
    candidates = _candidates(tokens, plan, filters)
    lone = tokens[0]
    if len(tokens) == 1 and not (lone.grouped or lone.needs_text) and filters.min_quality is None:
        return candidates.subquery("hits")
    scored = candidates.cte("scored").prefix_with("MATERIALIZED")
    return select(scored).where(scored.c.score.is_not(None)).subquery("hits")


def _candidates(tokens: list[QueryToken], plan: _Plan, filters: _Filters) -> Select[Any]:
    """(resource_id, score) for the driver's postings that pass the filters; the score is NULL
    where another token is missing. The probes are primary-key lookups, evaluated once per row
    because the caller materialises this."""
    lead = tokens[plan.driver]
    post = _POST.alias("p")
    conds = [lead.where(post), *filters.on_postings(post)]
    if lead.grouped:  # several terms of one resource may share the prefix
        drive = (select(post.c.resource_id, func.max(lead.score(post)).label("s"))
                 .where(*conds).group_by(post.c.resource_id))
    else:
        drive = select(post.c.resource_id, lead.score(post).label("s")).where(*conds)
    found = drive.subquery("d")
    score: ColumnElement[Any] = found.c.s * plan.idf[plan.driver]
    for i, token in enumerate(tokens):
        if i != plan.driver:
            score = score + _probe(token, found.c.resource_id, i) * plan.idf[i]
    for token in tokens:
        if token.needs_text:  # NULL unless the document has the whole phrase
            score = score + _text_check(token, found.c.resource_id)
    return select(found.c.resource_id, score.label("score"))


def _probe(token: QueryToken, resource_id: Any, i: int) -> Any:
    """The token's best weight in one resource (NULL if absent): primary-key lookups."""
    post = _POST.alias(f"q{i}")
    return (select(func.max(token.score(post)))
            .where(post.c.resource_id == resource_id, token.where(post))
            .scalar_subquery())


def _text_check(token: QueryToken, resource_id: Any) -> Any:
    """0 if the resource's text has the phrase, else NULL."""
    return (select(literal(0))
            .where(_DOC.c.resource_id == resource_id,
                   _DOC.c.text.contains(token.text, autoescape=True))
            .scalar_subquery())


def _page(params: SearchParams, hits: FromClause) -> Select[Any]:
    """One page of hits with resource id and code, each row carrying the total."""
    sort, descending = _sort_of(params, has_query=True)
    offset = (params.page - 1) * params.size
    total = select(func.count()).select_from(hits).scalar_subquery().label("total")
    if sort == SortKey.relevance:
        # Order and cut inside the index, then join just the page to resource for its code.
        top = (select(hits).order_by(*_ordering(hits.c.score, descending, hits.c.resource_id))
               .limit(params.size).offset(offset).subquery("top"))
        return (select(_RES.c.id, _RES.c.code, top.c.score, total)
                .join_from(top, _RES, _RES.c.id == top.c.resource_id)
                .order_by(*_ordering(top.c.score, descending, top.c.resource_id)))
    return (select(_RES.c.id, _RES.c.code, hits.c.score, total)
            .join_from(hits, _RES, _RES.c.id == hits.c.resource_id)
            .order_by(*_ordering(_SORT_COLUMNS[sort], descending, _RES.c.id))
            .limit(params.size).offset(offset))


def _matched_fields(session: Session, tokens: list[QueryToken],
                    ids: list[int]) -> dict[int, list[str]]:
    """For each hit, the fields some query token was found in (the postings' bit sets)."""
    if not ids:
        return {}
    rows = session.execute(
        select(_POST.c.resource_id, _POST.c.term, _POST.c.fields, _POST.c.ctx)
        .where(_POST.c.resource_id.in_(ids), or_(*(t.where(_POST) for t in tokens)))
    ).all()
    bits: dict[int, int] = {}
    for r in rows:
        if any(t.matches(r.term, r.ctx) for t in tokens):
            bits[r.resource_id] = bits.get(r.resource_id, 0) | r.fields
    return {rid: [f.label for f in FIELDS if b & f.bit] for rid, b in bits.items()}
