"""A column profile of a resource's non-personal data items, for everyone signed in: row
count, share of empty values, distinct count, smallest and largest value. Items marked
personal, sensitive or confidential are never profiled (their values never leave the provider
except through an approved, desensitized delivery)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

from sqlmodel import Session

from catalog import warehouse
from catalog.models import ItemType, Resource, Sensitivity


def profile(session: Session, resource: Resource) -> list[dict[str, Any]]:
    """One row per non-personal item of the current version (empty before any data)."""
    if not resource.current_version:
        return []
    from catalog.service import segments_for

    items = tuple((i.name, i.type.value) for i in resource.items
                  if i.sensitivity is Sensitivity.none)
    if not items:
        return []
    segments = tuple(segments_for(session, resource))
    return [dict(row) for row in _profile(segments, items)]


@lru_cache(maxsize=256)
def _profile(segments: tuple[Path, ...], items: tuple[tuple[str, str], ...]
             ) -> tuple[tuple[tuple[str, Any], ...], ...]:
    """Cached per set of segment files (immutable: a new version means new files)."""
    parts = []
    for name, kind in items:
        q = warehouse.quote(name)
        ordered = kind not in (ItemType.boolean.value,)
        parts.append(
            f"count(*) FILTER (WHERE {q} IS NULL), count(DISTINCT {q}), "
            + (f"CAST(min({q}) AS VARCHAR), CAST(max({q}) AS VARCHAR)" if ordered
               else "NULL, NULL"))
    with warehouse.open_data(list(segments)) as con:
        row = con.execute(f"SELECT count(*), {', '.join(parts)} FROM {warehouse.TABLE}"
                          ).fetchone() or ()
    total = int(row[0]) if row else 0
    out = []
    for i, (name, _) in enumerate(items):
        nulls, distinct, low, high = row[1 + 4 * i: 5 + 4 * i]
        out.append((("item", name), ("rows", total),
                    ("null_share", round(nulls / total, 4) if total else None),
                    ("distinct", int(distinct)), ("min", low), ("max", high)))
    return tuple(out)
