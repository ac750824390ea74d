"""Small counts of persons' records, shown the same way everywhere.

A count derived from personal records (rows of a delivery of personal data, a group of an
aggregate release) can single out a small group of people when it is small. Such a count is
never shown between 1 and ``min_count`` − 1: pages, dashboards and APIs show it as
``<min_count`` (``small_count``), APIs as null with a ``…_withheld`` flag (``withheld``).
Aggregate releases (access.aggregate) add Laplace noise first and withhold groups by their
*noisy* count; the leaders' dashboards (metrics.service) withhold by the exact count.
"""

from __future__ import annotations


def withheld(value: float | None, min_count: int) -> bool:
    """Is this count too small to show (1 … min_count − 1)? Zero concerns nobody."""
    return value is not None and 0 < value < min_count


def small_count(value: int | None, min_count: int) -> str:
    """How a count is shown on pages and dashboards: below the threshold (or withheld) as
    ``<min_count``, never the figure."""
    return f"<{min_count}" if value is None or value < min_count else f"{value:,}"
