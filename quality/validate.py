"""Run an expectation suite over a data version with GX, and make its result safe to keep.

GX validates through its SQL execution engine over DuckDB (``quality.gx_duckdb``): metrics
are pushed down as SQL, so memory stays flat however large the data. The result kept is
GX's own ``ExpectationSuiteValidationResult`` as JSON, with every value from a personal or
confidential column masked (``catalog.masking``, evaluated by DuckDB) and GX's internal
failing-row queries removed. Example failing rows are read with those queries, masked in the
same SQL statement, so raw personal values never leave DuckDB for them.

This module touches no metadata database: ``quality.runs`` feeds it and stores its outcome.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import duckdb

from catalog.warehouse import TABLE, quote
from quality.masked import (
    ColumnMask,
    columns_of,
    jsonable,
    mask_configs,
    mask_result_values,
    scrub_error,
)

log = logging.getLogger("govshare.quality")


@dataclass
class ExpectationOutcome:
    """One expectation's result, reduced to what scoring and the audit need."""

    rule: str
    type: str
    dimension: str
    source: str
    columns: list[str]
    kwargs: dict[str, Any]
    success: bool
    element_count: int | None = None
    missing_count: int | None = None
    unexpected_count: int | None = None
    observed_value: Any = None
    error: str | None = None
    examples: list[dict[str, Any]] = field(default_factory=list)

    @property
    def checked(self) -> int | None:
        """Values actually judged (present values of a map expectation)."""
        if self.element_count is None:
            return None
        return self.element_count - (self.missing_count or 0)

    def as_json(self) -> dict[str, Any]:
        return {"rule": self.rule, "type": self.type, "dimension": self.dimension,
                "source": self.source, "columns": self.columns, "kwargs": self.kwargs,
                "success": self.success, "element_count": self.element_count,
                "missing_count": self.missing_count,
                "unexpected_count": self.unexpected_count,
                "observed_value": self.observed_value, "error": self.error,
                "examples": self.examples}


@dataclass
class Validation:
    gx_result: dict[str, Any]
    expectations: list[ExpectationOutcome]
    row_count: int
    newest: Any = None  # newest as-of date in the data (for freshness), unmasked


def _newest(raw: dict[str, Any]) -> Any:
    for result in raw["results"]:
        rule = str((result["expectation_config"].get("meta") or {}).get("rule", ""))
        if rule.startswith("newest:"):
            return (result.get("result") or {}).get("observed_value")
    return None


def preload() -> None:
    """Import Great Expectations and govshare's expectations now, in one thread.

    They are imported lazily (seconds of work a CLI command should not pay), but two server
    threads importing them for the first time at once can trip Python's import-lock deadlock
    detection (``_DeadlockError``: found by the fuzz test, a request adding an expectation
    while the quality worker started a run). Servers call this at startup, before any worker
    thread or request runs."""
    import great_expectations  # noqa: F401

    from quality import gx_duckdb, gx_rules  # noqa: F401


def run_suite(segments: Sequence[Path], configs: Sequence[Mapping[str, Any]],
              masks: Mapping[str, ColumnMask], *, run_date: date, max_examples: int = 3,
              threads: int | None = None) -> Validation:
    """Validate ``configs`` (GX expectation configurations) against the data."""
    from quality import gx_duckdb  # imports Great Expectations: seconds, so only when used

    _check_segments(segments)
    with gx_duckdb.dataset(segments, threads=threads) as registered:
        raw = _gx_validate(registered.url, configs, list(masks), run_date, max_examples)
        newest = _newest(raw)
        con = gx_duckdb.open_dataset(registered)
        try:
            mask_configs(raw, masks, con)
            outcomes = [_outcome(r, masks, con, max_examples) for r in raw["results"]]
            row = con.execute(f"SELECT count(*) FROM {TABLE}").fetchone()
        finally:
            con.close()
    return Validation(raw, outcomes, int(row[0]) if row else 0, newest)


def _check_segments(segments: Sequence[Path]) -> None:
    if not segments:
        raise FileNotFoundError("the resource has no data segments")
    missing = [s.name for s in segments if not s.is_file()]
    if missing:
        raise FileNotFoundError("data segment missing: " + ", ".join(missing))


def _gx_validate(url: str, configs: Sequence[Mapping[str, Any]], columns: list[str],
                 run_date: date, max_examples: int) -> dict[str, Any]:
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig
    from great_expectations.expectations.expectation_configuration import (
        ExpectationConfiguration,
    )

    import quality.gx_rules  # noqa: F401  (registers our custom expectations with GX)

    # GX sets this module's logger to INFO when imported, announcing the temporary folder of
    # every ephemeral context: one line per quality run in the worker's log, and noise.
    logging.getLogger("great_expectations.data_context.types.base").setLevel(logging.WARNING)
    context = gx.get_context(mode="ephemeral")
    # No tqdm bars on stderr for every run (the worker's log, ``govshare demo``'s output).
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    name = f"govshare-{uuid.uuid4().hex[:8]}"
    source = context.data_sources.add_govshare_duckdb(name, connection_string=url)
    try:
        batch_definition = source.add_table_asset("data", table_name=TABLE) \
            .add_batch_definition_whole_table("whole")
        parameters = {"run_date": run_date.isoformat()}
        suite = context.suites.add(gx.ExpectationSuite(name=name, expectations=[
            ExpectationConfiguration(**resolve_parameters(c, parameters)).to_domain_obj()
            for c in configs]))
        result = batch_definition.get_batch().validate(
            suite, result_format={
                "result_format": "BASIC", "partial_unexpected_count": max_examples,
                # GX then also hands us the SQL selecting failing rows (unrun):
                "return_unexpected_index_query": True,
                "unexpected_index_column_names": columns})
        return dict(result.to_json_dict())
    finally:
        source.get_engine().dispose()
        # GX keeps its last context in a module global; dropping the datasource lets the
        # engine, its pool and the DuckDB connection be freed before the interpreter exits
        # (else DuckDB's bindings report them as leaked at shutdown).
        context.data_sources.delete(name)


def resolve_parameters(config: Mapping[str, Any], values: Mapping[str, Any]) -> dict[str, Any]:
    """The configuration with each ``{"$PARAMETER": name}`` replaced by its value.

    Why not let GX do it (``validate(expectation_parameters=…)``): GX evaluates parameters
    with one process-wide ``SuiteParameterParser`` (``great_expectations.core.
    suite_parameters.EXPR``), a pyparsing grammar that is not thread-safe in two ways.
    Its parse actions are wrapped by pyparsing's ``_trim_arity``, which finds a callback's
    arity by trial: it calls ``push_first(s, loc, toks)``, catches the TypeError, and retries
    with fewer arguments, counting in a closure variable shared by every thread. Two worker
    threads doing their first validation at once both bump that counter, one of them ends at
    ``push_first()`` with no argument — ``TypeError: SuiteParameterParser.push_first()
    missing 1 required positional argument`` — and, as the counter is past its limit and
    marked as found, every later evaluation in that process fails the same way (until a
    restart). And the parser keeps its operand stack on the shared instance, so concurrent
    evaluations interleave. Substituting the values here needs no parser and no lock; the
    stored suite keeps the parameter, so it does not change every day."""
    kwargs = {k: values[v["$PARAMETER"]]
              if isinstance(v, dict) and set(v) == {"$PARAMETER"} and v["$PARAMETER"] in values
              else v for k, v in config["kwargs"].items()}
    return {**config, "kwargs": kwargs}


# --- per-expectation outcome -----------------------------------------------------------------

def _outcome(raw: dict[str, Any], masks: Mapping[str, ColumnMask], con: Any,
             max_examples: int) -> ExpectationOutcome:
    config = raw["expectation_config"]
    meta = config.get("meta") or {}
    result = raw.get("result") or {}
    columns = columns_of(config["kwargs"])
    query = result.get("unexpected_index_query")
    examples = _examples(con, query, masks, max_examples) \
        if not raw["success"] and isinstance(query, str) else []
    mask_result_values(result, config["type"], columns, masks, con)
    error = _error_of(raw.get("exception_info"))
    raw["exception_info"] = {"raised_exception": error is not None, "exception_message": error}
    return ExpectationOutcome(
        rule=str(meta.get("rule") or config["type"]), type=config["type"],
        dimension=str(meta.get("dimension") or "validity"),
        source=str(meta.get("source") or "custom"), columns=columns,
        kwargs=dict(config["kwargs"]), success=bool(raw["success"]) and error is None,
        element_count=result.get("element_count"), missing_count=result.get("missing_count"),
        unexpected_count=result.get("unexpected_count"),
        observed_value=result.get("observed_value"), error=error, examples=examples)


def _error_of(info: Any) -> str | None:
    """GX reports an expectation that could not be evaluated either directly or per metric."""
    if not isinstance(info, dict):
        return None
    if info.get("raised_exception"):
        return scrub_error(str(info.get("exception_message") or "error"))
    for value in info.values():
        if isinstance(value, dict) and value.get("raised_exception"):
            return scrub_error(str(value.get("exception_message") or "error"))
    return None


def _examples(con: Any, query: str, masks: Mapping[str, ColumnMask],
              limit: int) -> list[dict[str, Any]]:
    """A few failing rows: GX's own failing-row query, masked inside DuckDB."""
    select = ", ".join(f"{m.sql('q.' + quote(c))} AS {quote(c)}" for c, m in masks.items())
    sql = f"SELECT {select} FROM ({query.strip().rstrip(';')}) AS q LIMIT {int(limit)}"
    try:
        cur = con.execute(sql)
    except duckdb.Error as exc:
        # GX leaves bind parameters in a few of its queries (compound keys, column pairs
        # with literals): examples are illustration, the counts stand without them.
        log.info("no example rows for a failing expectation: %s", type(exc).__name__)
        return []
    names = [d[0] for d in cur.description or []]
    return [{n: jsonable(v) for n, v in zip(names, row, strict=True)} for row in cur.fetchall()]
