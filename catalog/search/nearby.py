"""Candidates for the duplicate check (``catalog.similar``): the resources most likely to be
close to a draft, found by the index instead of by reading the whole catalog.

One BM25 query per side: any of the draft name's terms (CJK bigrams, Latin words) in the
name field, or any of its data items' terms (field names split at case and underscores,
titles as bigrams) in the items field. BM25 weighs a rare shared bigram (人口) above one that
every name has (信息), so the closest resources come first; the caller scores the top ones
precisely from the database. The same department is a filter (``Must``), the others its
negation (``MustNot``).

The index runs a moment behind the database (the writer applies the feed every half second,
or not at all when only the CLI runs), and a duplicate registered a second ago must still be
caught: ``same_department`` therefore adds the department's resources whose feed rows the
index has not applied yet (``feed.unindexed_codes``), and with no index at all it answers
with every active resource of the department (a department has hundreds, not the
catalog's hundred thousand). Other departments' matches are information only: they come
from the index alone, and there are none before it is first built.
"""

from __future__ import annotations

from collections.abc import Iterable

import tantivy
from sqlalchemy import select
from sqlmodel import Session

from catalog.models import Resource, ResourceStatus
from catalog.search import engine, feed
from catalog.search.analysis import analyze, split_camel

# Candidates per side, each then scored exactly from the database. More for the department:
# a miss there lets a duplicate through; other departments' matches are only shown (ten).
TOP_SAME, TOP_OTHERS = 50, 20
MAX_TERMS = 256  # a 500-item draft still makes a query tantivy answers in milliseconds
MAX_PENDING = 5_000  # unapplied feed rows beyond which the index is not worth asking
NAME_BOOST = 2.0  # a shared name bigram says more than a shared item word


def _terms(name: str, items: Iterable[tuple[str, str]]) -> tuple[list[str], list[str]]:
    names = list(dict.fromkeys(analyze(name)))
    item_terms = list(dict.fromkeys(t for item_name, title in items
                                    for t in analyze(f"{split_camel(item_name)}\n{title}")))
    return names[:MAX_TERMS], item_terms[:MAX_TERMS - min(len(names), MAX_TERMS)]


def _text_query(name: str, items: Iterable[tuple[str, str]]) -> tantivy.Query | None:
    schema, term = engine.SCHEMA, tantivy.Query.term_query
    names, item_terms = _terms(name, items)
    shoulds = [(tantivy.Occur.Should,
                tantivy.Query.boost_query(term(schema, engine.NAME.name, t), NAME_BOOST))
               for t in names]
    shoulds += [(tantivy.Occur.Should, term(schema, engine.ITEMS.name, t)) for t in item_terms]
    return tantivy.Query.boolean_query(shoulds) if shoulds else None


def _top(index: tantivy.Index, text: tantivy.Query, department_id: int, *,
         same: bool) -> list[int]:
    searcher = index.searcher()
    department = tantivy.Query.term_query(engine.SCHEMA, engine.DEPARTMENT, department_id)
    query = tantivy.Query.boolean_query([
        (tantivy.Occur.Must, text),
        (tantivy.Occur.Must if same else tantivy.Occur.MustNot, department)])
    hits = searcher.search(query, TOP_SAME if same else TOP_OTHERS).hits
    if not hits:
        return []
    values = searcher.fast_field_values("id", [address for _, address in hits])
    return [int(v) for v in values if v is not None]


def candidates(session: Session, name: str, items: list[tuple[str, str]],
               department_id: int) -> tuple[set[int], set[int]]:
    """Ids of (same department, other departments) resources worth scoring against a draft
    with this name and these (field name, title) items. Withdrawn ones may be among them
    (the index may not know yet): the caller reads the status from the database."""
    index = engine.reader()
    pending = feed.unindexed_codes(session) if index is not None else None
    text = _text_query(name, items)
    if index is None or pending is None or len(pending) > MAX_PENDING:
        # No index yet (or far behind): the department's resources, from the database.
        return set(session.execute(select(Resource.id).where(  # type: ignore[call-overload]
            Resource.provider_id == department_id,
            Resource.status == ResourceStatus.active)).scalars()), set()
    index.reload()  # after reading the cursor: the searcher sees at least what it says
    same = set(_top(index, text, department_id, same=True)) if text is not None else set()
    others = set(_top(index, text, department_id, same=False)) if text is not None else set()
    if pending:
        same.update(session.execute(select(Resource.id).where(  # type: ignore[call-overload]
            Resource.provider_id == department_id,
            Resource.code.in_(sorted(pending)))).scalars())  # type: ignore[attr-defined]
    return same, others
