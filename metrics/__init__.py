"""Sharing metrics (issue 6): a read-side DuckDB mart over the catalog, quality and access
tables, the dashboard's JSON/CSV endpoints, and the operators' Prometheus endpoint.

Lives in the composition root because it reads every bounded context's tables; no context
imports it. See docs/metrics.md.
"""
