"""The duplicate check (one source for each piece of data) on a large catalog.

    python -m bench.bench_similar [--quick] [--resources N] [--data-dir DIR] [--drafts N]

Generates the catalog of ``bench_search`` (the same departments, names, 5-15 data items each;
~10 departments, so each holds thousands of resources: the worst case for the department-wide
check), builds its index, and times ``catalog.similar.find`` for drafts made from existing
resources (the name with 表 appended or its district dropped, the items kept or one
removed), as a registration or ``POST /api/v1/resources/similar`` runs it. In the same run:

* baseline: one page of the catalog search for the source resource's name
  (``catalog.search.search``, up to 20 hits with their items and providers, as
  ``GET /api/v1/resources?q=`` serves it), the cost of an ordinary search request;
* the naive check: every active resource of the catalog read from the database and scored
  in Python (what the index spares);
* the fallback used before the index is first built: the department's active resources.

Also reported: how many drafts found the resource they were made from (recall).
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import select
from sqlmodel import Session

from bench.bench_search import _build, _index
from bench.common import add_catalog_args, generated_catalog


def _drafts(session: Session,
            n: int) -> list[tuple[int, str, list[tuple[str, str]], str, str]]:
    """(department id, name, items, source code, source name) of n drafts made from active
    resources."""
    from catalog.models import DataItem, Resource, ResourceStatus

    rng = random.Random(7)
    ids = list(session.execute(select(Resource.id).where(  # type: ignore[call-overload]
        Resource.status == ResourceStatus.active)).scalars())
    out = []
    for rid in rng.sample(ids, n):
        resource = session.get(Resource, rid)
        assert resource is not None
        items = [(i.name, i.title) for i in session.execute(
            select(DataItem).where(DataItem.resource_id == rid)).scalars()]
        name = resource.name + "表" if rng.random() < 0.5 else \
            resource.name.replace("东城区", "").replace("南山区", "")
        if rng.random() < 0.5 and len(items) > 5:
            items = items[:-1]
        out.append((resource.provider_id, name, items, resource.code, resource.name))
    return out


def _naive(session: Session, department_id: int, name: str, items: list[tuple[str, str]],
           *, department_only: bool) -> int:
    """Score every active resource (of the department, or of the catalog) in Python."""
    from catalog import similar
    from catalog.models import DataItem, Resource, ResourceStatus

    where = [Resource.status == ResourceStatus.active]
    if department_only:
        where.append(Resource.provider_id == department_id)
    rows = session.execute(select(Resource.id, Resource.name, Resource.provider_id)  # type: ignore[call-overload]
                           .where(*where)).all()
    table = DataItem.__table__  # type: ignore[attr-defined]
    by_resource: dict[int, list[tuple[str, str]]] = {}
    query = select(table.c.resource_id, table.c.name, table.c.title)
    if department_only:
        query = query.where(table.c.resource_id.in_([r.id for r in rows]))
    for r in session.execute(query):
        by_resource.setdefault(r.resource_id, []).append((r.name, r.title))
    mine, found = similar.bigrams(name), 0
    for row in rows:
        existing = by_resource.get(row.id, [])
        matched = similar.match_items(items, existing)
        score = similar.combined(similar.name_similarity(mine, similar.bigrams(row.name)),
                                 similar.item_overlap(len(matched), len(items), len(existing)))
        found += score >= (similar.BLOCK_AT if row.provider_id == department_id
                           else similar.SHOW_AT)
    return found


def _times(fn: Callable[[Any], Any], drafts: list[Any]) -> list[float]:
    """Milliseconds of one call per draft."""
    out = []
    for draft in drafts:
        t = time.perf_counter()
        fn(draft)
        out.append((time.perf_counter() - t) * 1000)
    return out


def _summary(label: str, ms: list[float]) -> str:
    ms = sorted(ms)
    p95 = ms[min(len(ms) - 1, int(len(ms) * 0.95))]
    return f"{label:<44} p50 {statistics.median(ms):8.1f} ms   p95 {p95:8.1f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_catalog_args(parser)
    parser.add_argument("--drafts", type=int, default=30)
    parser.add_argument("--naive-drafts", type=int, default=3,
                        help="drafts for the whole-catalog scan (slow)")
    args = parser.parse_args()
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    with generated_catalog(args, _build) as (data_dir, n):
        from catalog import search, similar
        from catalog.search import engine
        from kernel import db

        with Session(db.get_engine()) as session:
            _index(data_dir)
            drafts = _drafts(session, args.drafts)

            found: list[bool] = []

            def check(d: Any) -> None:
                out = similar.find(session, d[0], d[1], d[2])
                found.append(any(m.code == d[3] for m in out.same_department))

            def baseline(d: Any) -> None:
                # The source's own name: a page with hits (the draft's may find none).
                search.search(session, search.SearchParams(q=d[4], size=20))

            check(drafts[0])  # warm the reader and the caches
            baseline(drafts[0])
            found.clear()
            checked = _times(check, drafts)
            searched = _times(baseline, drafts)
            recall = sum(found) / len(found)
            naive_dept = _times(lambda d: _naive(session, d[0], d[1], d[2],
                                                 department_only=True), drafts[:10])
            naive_all = _times(lambda d: _naive(session, d[0], d[1], d[2],
                                                department_only=False),
                               drafts[:args.naive_drafts])
            engine.forget_readers()
        print(f"\n{n:,} resources, {len(drafts)} drafts (load average "
              f"{os.getloadavg()[0]:.1f})")
        print(_summary("similar.find (index candidates)", checked))
        print(_summary("baseline: catalog search, a page of 20", searched))
        print(_summary("fallback: the department scored in Python", naive_dept))
        print(_summary("naive: the whole catalog scored in Python", naive_all))
        med = statistics.median
        print(f"\nratio to the search page: {med(checked) / med(searched):.2f}x (p50); "
              f"whole-catalog scan: {med(naive_all) / med(checked):,.0f}x slower; "
              f"department scan: {med(naive_dept) / med(checked):,.1f}x slower; "
              f"recall {recall:.0%} of the drafts found their source")


if __name__ == "__main__":
    main()
