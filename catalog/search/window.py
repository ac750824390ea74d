"""The top of a browse by a sort key without sorting every hit: a window on the key.

Browsing (no query words) at a million resources sorted every active resource by its key to
keep the top 20 (~5 ms of CPU). The page only needs the top ``need`` keys, and they all lie
beyond some bound: a range filter on a u64 fast field (``key >= bound``) is a columnar scan
that skips whole segments outside it and hands the collector a few thousand documents
instead of a million (~0.8 ms). The window is exact, not an approximation:

* The range is on the sort key itself (dates, scores: the value in the high 32 bits, the
  resource id in the low ones, ``engine._key``) or on a u64 in the same order as it (the
  name's first 8 bytes, ``engine.NAME_HEAD``): every document outside the window sorts after
  every document in it. So when the window holds at least ``need`` hits, its first ``need``
  are the query's first ``need``, in the same order, ties included.
* A window holding fewer widens (extrapolated from the hits it found), and after a few tries
  the query runs unbounded: the answer never depends on the guess, only its cost does.

Where to put the bound is a guess, learnt per (sort key, direction, need) in this process
from the last window that held enough hits (narrowed to about twice ``need``), or, the first
time, from one ``stats`` aggregation (least, greatest and count: the uniform guess). It holds
bounds, not answers: every page is read from the current index.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import tantivy

from catalog.search import engine

TRIES = 4  # windows tried before the unbounded query
_HINTS_KEPT = 512
_hints: OrderedDict[tuple[str, bool, int], int] = OrderedDict()
_hints_lock = threading.Lock()


@dataclass
class Window:
    """The page's hits (sort value, address) in order, and how many hits the window held: at
    least ``need`` (then a lower bound of the query's total), or all of them (``bounded``
    false: the query ran unbounded and ``count`` is its exact total)."""

    hits: list[tuple[Any, tantivy.DocAddress]]
    count: int
    bounded: bool


def top(searcher: tantivy.Searcher, query: tantivy.Query, field: str, ranged: str,
        shift: int, *, descending: bool, offset: int, size: int, need: int) -> Window:
    """Hits ``offset`` to ``offset + size`` of ``query`` ordered by the fast field ``field``,
    from a window on the u64 field ``ranged`` (in the same order as ``field``; bounds are its
    values shifted right by ``shift`` bits) holding at least ``need`` (≥ offset + size) hits,
    or from all of them."""
    limit = offset + size
    order = tantivy.Order.Desc if descending else tantivy.Order.Asc
    key = (field, descending, need)
    top_bound = (1 << (64 - shift)) - 1
    with _hints_lock:
        bound = _hints.get(key)
    if bound is None:
        bound = _first_guess(searcher, query, ranged, shift, descending, need)
    for _ in range(TRIES):
        if bound is None or not 0 < bound <= top_bound:
            break
        found = searcher.search(_within(query, ranged, shift, bound, descending), limit,
                                count=True, order_by_field=field, order=order)
        count = int(found.count or 0)  # type: ignore[attr-defined]  # missing from the stub
        hits = list(found.hits)
        # The first hit's value, as a bound: where the window's hits start.
        edge = int(searcher.fast_field_values(ranged, [hits[0][1]])[0] or 0) >> shift \
            if hits else None
        if count >= need and edge is not None:
            _remember(key, _tightened(bound, edge, count, need, descending))
            return Window(hits[offset:], count, True)
        bound = _widened(bound, edge, count, need, descending)
    found = searcher.search(query, limit, count=True, order_by_field=field, order=order)
    return Window(list(found.hits)[offset:], int(found.count or 0), False)  # type: ignore[attr-defined]


def _within(query: tantivy.Query, ranged: str, shift: int, bound: int,
            descending: bool) -> tantivy.Query:
    """``query`` restricted to values at or beyond ``bound`` in sort order."""
    if descending:
        low, high = bound << shift, None
    else:
        low, high = None, (bound << shift) | ((1 << shift) - 1)
    window = tantivy.Query.range_query(engine.SCHEMA, ranged, tantivy.FieldType.Unsigned,
                                       low, high)
    return tantivy.Query.boolean_query([(tantivy.Occur.Must, query),
                                        (tantivy.Occur.Must, window)])


def _first_guess(searcher: tantivy.Searcher, query: tantivy.Query, ranged: str, shift: int,
                 descending: bool, need: int) -> int | None:
    """A bound holding about twice ``need`` hits if the values were spread evenly between
    the least and the greatest (one pass over the hits' column, once per hint)."""
    stats = searcher.aggregate(query, {"s": {"stats": {"field": ranged}}})["s"]
    count = int(stats.get("count") or 0)
    if count <= 2 * need or stats.get("min") is None:
        return None  # a window would hold most of them anyway
    # (float statistics: a guess, which is all it needs to be, kept within the field)
    last = (1 << (64 - shift)) - 1
    low, high = (min(max(int(stats[k]) >> shift, 1), last) for k in ("min", "max"))
    width = max(1, (high - low) * 2 * need // count)
    return high - width + 1 if descending else low + width - 1


def _tightened(bound: int, edge: int, count: int, need: int, descending: bool) -> int:
    """The bound to try next time: the window narrowed to about twice ``need`` hits when it
    held many more (``edge``: where its hits start)."""
    if count <= 4 * need:
        return bound
    width = abs(edge - bound) + 1
    narrower = max(1, width * 2 * need // count)
    return edge - narrower + 1 if descending else edge + narrower - 1


def _widened(bound: int, edge: int | None, count: int, need: int,
             descending: bool) -> int | None:
    """A wider window after one that held ``count`` < ``need`` hits; None: unbounded."""
    if edge is None:  # nothing in it: no density to go by
        return None
    width = abs(edge - bound) + 1
    wider = max(4 * width, width * 2 * need // max(count, 1))
    return edge - wider + 1 if descending else edge + wider - 1


def _remember(key: tuple[str, bool, int], bound: int) -> None:
    with _hints_lock:
        _hints[key] = bound
        _hints.move_to_end(key)
        while len(_hints) > _HINTS_KEPT:
            _hints.popitem(last=False)


def forget() -> None:
    """Drop the learnt bounds (tests compare the windowed and the plain answers)."""
    with _hints_lock:
        _hints.clear()
