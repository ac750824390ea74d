"""What the CLIs print: tables and plain values for people, JSON with ``--json`` for machines.

Never a Python repr: enums print their value, times ISO 8601 to the second, lists joined,
missing values as a dash. Shared by the composition root's CLI and the contexts' CLIs.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from enum import Enum
from typing import Any

from rich.console import Console
from rich.table import Table

console = Console()


def plain(value: Any) -> str:
    """One value as a person reads it."""
    if value is None or value == "":
        return "—"
    if isinstance(value, Enum):
        return str(value.value)
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, datetime):
        return value.isoformat(sep=" ", timespec="seconds")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float):
        return f"{value:,.2f}".rstrip("0").rstrip(".") if value % 1 else f"{value:,.0f}"
    if isinstance(value, Mapping):
        return ", ".join(f"{k}={plain(v)}" for k, v in value.items()) or "—"
    if isinstance(value, (list, tuple, set, frozenset)):
        items = sorted(value, key=str) if isinstance(value, (set, frozenset)) else value
        return ", ".join(plain(v) for v in items) or "—"
    return str(value)


def problem_lines(problem: Any) -> list[str]:
    """A refusal's entries as lines for the terminal, in English: "field: message" for a
    field's validation error, ``key=value`` pairs for entries that say more (sheet, row…)."""
    lines = []
    for e in problem.body().get("errors", []):
        simple = set(e) <= {"field", "message", "type"} and e.get("field") is not None
        lines.append(f"{e['field']}: {e.get('message')}" if simple else
                     plain({k: v for k, v in e.items() if k != "type"}))
    return lines


def jsonable(value: Any) -> Any:
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, (set, frozenset)):
        return sorted(jsonable(v) for v in value)
    return str(value)


def table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None,
          title: str | None = None) -> Table:
    columns = list(columns or (rows[0].keys() if rows else []))
    out = Table(*columns, title=title)
    for row in rows:
        out.add_row(*(plain(row.get(c)) for c in columns))
    return out


def emit(data: Any, as_json: bool, *, columns: Sequence[str] | None = None,
         title: str | None = None, out: Console | None = None) -> None:
    """JSON for machines; otherwise a table for a list of records, ``key: value`` lines for
    one record, the plain value for anything else."""
    if as_json:
        sys.stdout.write(json.dumps(data, ensure_ascii=False, indent=2, default=jsonable) + "\n")
        return
    out = out or console
    if isinstance(data, Table):
        out.print(data)
    elif isinstance(data, Sequence) and not isinstance(data, str) and all(
            isinstance(r, Mapping) for r in data):
        if not data:
            out.print("(none)")
        else:
            out.print(table(data, columns, title))
    elif isinstance(data, Mapping):
        if title:
            out.print(title)
        width = max((len(str(k)) for k in data), default=0)
        for key, value in data.items():
            out.print(f"{key:<{width}}  {plain(value)}", soft_wrap=True, highlight=False,
                      markup=False)
    else:
        out.print(plain(data), soft_wrap=True, highlight=False, markup=False)
