"""Catalog search: a tantivy index of the catalog, kept up to date from its events.

``analysis``: text -> terms (CJK bigrams, Latin words). ``engine``: the index's schema,
documents and location. ``feed``: the change feed and this machine's one writer (and the
rebuild). ``query``: answering a search; ``window``: browsing by a key without sorting every
resource. See docs/search.md.
"""

from catalog.search.analysis import QueryToken, analyze, parse_query
from catalog.search.engine import (
    CYCLE_CODES,
    LEVEL_CODES,
    SHARING_CODES,
    category_code,
)
from catalog.search.feed import on_event, record, sync
from catalog.search.query import (
    TOTAL_BOUND,
    CardPage,
    Facets,
    SearchHit,
    SearchPage,
    SearchParams,
    SortKey,
    items_json,
    matched_fields,
    search,
    search_cards,
)

__all__ = [
    "CYCLE_CODES", "LEVEL_CODES", "SHARING_CODES", "TOTAL_BOUND", "CardPage", "Facets",
    "QueryToken", "SearchHit", "SearchPage", "SearchParams", "SortKey", "analyze",
    "category_code", "items_json", "matched_fields", "on_event", "parse_query", "record",
    "search", "search_cards", "sync",
]
