"""Great Expectations' own SQL execution engine, running over DuckDB segments.

GX 1.24 validates SQL data through ``SqlAlchemyExecutionEngine``: every metric becomes a SQL
expression and GX bundles the aggregate ones into a single ``SELECT`` per domain, so the
database does the scanning. Over ``duckdb-engine`` this failed with ``MetricResolutionError:
list index out of range`` (GX issues #10738, #11579). The root cause, found here:

1. ``SqlAlchemyExecutionEngine.execute_query`` returns the ``CursorResult`` *after* leaving
   ``with engine.connect()``; the pool then resets the connection with a ROLLBACK. Most
   drivers have buffered the rows by then, but a DuckDB DB-API cursor *is* its connection
   (duckdb-engine's ``CursorWrapper`` delegates ``fetchall`` to it), so the ROLLBACK discards
   the pending result and GX's ``fetchall()`` gets ``[]`` → ``res[0]`` → IndexError.
   Fix: an execution context that buffers every row set right after execution
   (SQLAlchemy's own ``FullyBufferedCursorFetchStrategy``, as its MSSQL dialect does).
2. GX has no DuckDB dialect, so its dialect-specific expressions (regex) and type lookups
   find nothing (``Regex is not supported for dialect duckdb``). DuckDB's SQL follows
   PostgreSQL's and duckdb-engine is built on SQLAlchemy's PostgreSQL dialect, so the engine
   below tells GX to use PostgreSQL's expressions, with one correction: PostgreSQL's ``~`` is
   a regex *search*, DuckDB's ``~`` a *full match*; our compiler emits ``regexp_matches``
   (search), matching GX's pandas semantics.
3. duckdb-engine's column reflection queries ``pg_catalog.pg_collation``, which DuckDB 2.0
   lacks, so ``table.column_types`` came back without types. ``get_columns`` uses DESCRIBE.

Everything else is stock GX: a fluent SQL datasource (``type: govshare_duckdb``), table
asset, batch definition, expectation suite and ``ExpectationSuiteValidationResult``.

A *dataset* is the list of segment files whose union is one data version; ``dataset``
registers it under a random key for GX to connect to by URL. Each connection made for that
URL is a private in-memory DuckDB that attaches the segments read-only and exposes them as a
view ``data`` (as ``catalog.warehouse.open_data`` does), plus the rule macros.
"""

from __future__ import annotations

import builtins
import os
import shutil
import tempfile
import threading
import types
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")  # no telemetry from a government host

import duckdb_engine
import sqlalchemy as sa
from great_expectations.compatibility.sqlalchemy import (
    sqlalchemy as gx_sa,
)
from great_expectations.datasource.fluent import SQLDatasource
from great_expectations.execution_engine import SqlAlchemyExecutionEngine
from sqlalchemy.dialects import registry
from sqlalchemy.dialects.postgresql.base import PGCompiler
from sqlalchemy.dialects.postgresql.psycopg2 import PGExecutionContext_psycopg2
from sqlalchemy.engine import cursor as sa_cursor
from sqlalchemy.engine.interfaces import ReflectedColumn

from catalog.warehouse import DUCKDB_MEMORY_LIMIT, TABLE, quote
from quality.sql_rules import MACROS

DRIVER = "govshare"


@dataclass(frozen=True)
class Dataset:
    """The segments of one data version, registered for one validation."""

    key: str
    segments: tuple[Path, ...]
    spill: Path  # DuckDB's temp directory root: a large unique check may not fit in memory
    threads: int | None = None

    @property
    def url(self) -> str:
        return f"duckdb+{DRIVER}:///:memory:?dataset={self.key}"


_datasets: dict[str, Dataset] = {}
_lock = threading.Lock()


@contextmanager
def dataset(segments: Sequence[Path], *, threads: int | None = None) -> Iterator[Dataset]:
    """Register the segments for the duration of a validation (GX connects by ``url``)."""
    if not segments:
        raise ValueError("a dataset needs at least one segment")
    spill = Path(tempfile.mkdtemp(prefix="govshare-quality-"))
    registered = Dataset(uuid.uuid4().hex, tuple(segments), spill, threads)
    with _lock:
        _datasets[registered.key] = registered
    try:
        yield registered
    finally:
        with _lock:
            _datasets.pop(registered.key, None)
        shutil.rmtree(spill, ignore_errors=True)


def _escape(path: Path) -> str:
    return str(path).replace("'", "''")


def open_dataset(dataset: Dataset) -> Any:
    """A fresh in-memory DuckDB with the segments attached read-only as view ``data``."""
    import duckdb

    con = duckdb.connect(":memory:")
    con.execute(f"SET memory_limit='{DUCKDB_MEMORY_LIMIT}'")
    con.execute(f"SET temp_directory='{_escape(Path(tempfile.mkdtemp(dir=dataset.spill)))}'")
    con.execute("SET enable_progress_bar = false")
    if dataset.threads:
        con.execute(f"SET threads={int(dataset.threads)}")
    parts = []
    for i, seg in enumerate(dataset.segments):
        if not seg.exists():  # ATTACH would create an empty database instead of failing
            raise FileNotFoundError(f"data segment missing: {seg.name}")
        con.execute(f"ATTACH '{_escape(seg)}' AS seg{i} (READ_ONLY)")
        parts.append(f"SELECT * FROM seg{i}.{TABLE}")
    con.execute(f"CREATE VIEW {TABLE} AS " + " UNION ALL ".join(parts))
    for macro in MACROS:
        con.execute(macro)
    # From here on SQL can read the attached segments and nothing else: no file functions
    # (read_csv('/etc/…')), no further ATTACH, whatever a custom expectation contains.
    con.execute("SET enable_external_access = false")
    con.execute("SET lock_configuration = true")
    return con


class _BufferedExecutionContext(PGExecutionContext_psycopg2):
    def post_exec(self) -> None:
        super().post_exec()
        # Root cause 1 (module docstring): read the rows while the connection is still ours.
        strategy: Any = self.cursor_fetch_strategy
        if (self.cursor is not None and self.cursor.description is not None
                and strategy is sa_cursor._DEFAULT_FETCH):
            self.cursor_fetch_strategy = sa_cursor.FullyBufferedCursorFetchStrategy(
                self.cursor, self.cursor.description, self.cursor.fetchall())


class _Compiler(PGCompiler):
    def visit_custom_op_binary(self, element: Any, operator: Any, **kw: Any) -> str:
        if operator.opstring in ("~", "!~"):  # root cause 2: PostgreSQL regex search
            left = self.process(element.left, **kw)
            right = self.process(element.right, **kw)
            found = f"regexp_matches({left}, {right})"
            return found if operator.opstring == "~" else f"(NOT {found})"
        return str(super().visit_custom_op_binary(element, operator, **kw))


_REFLECTED_TYPES: dict[str, type[sa.types.TypeEngine[Any]]] = {
    "VARCHAR": sa.VARCHAR, "BIGINT": sa.BIGINT, "INTEGER": sa.INTEGER,
    "SMALLINT": sa.SMALLINT, "DOUBLE": sa.DOUBLE, "FLOAT": sa.FLOAT, "DECIMAL": sa.DECIMAL,
    "BOOLEAN": sa.BOOLEAN, "DATE": sa.DATE, "TIMESTAMP": sa.TIMESTAMP,
    "TIMESTAMP WITH TIME ZONE": sa.TIMESTAMP,
}


def _reflected(duck_type: str) -> sa.types.TypeEngine[Any]:
    # DECIMAL(12,2) is a DECIMAL for expect_column_values_to_be_of_type (decimal items get
    # their precision per upload).
    cls = _REFLECTED_TYPES.get(duck_type) or _REFLECTED_TYPES.get(duck_type.split("(")[0])
    return cls() if cls is not None else sa.types.NullType()


class GovshareDuckDBDialect(duckdb_engine.Dialect):
    driver = DRIVER
    execution_ctx_cls = _BufferedExecutionContext
    statement_compiler = _Compiler
    supports_statement_cache = False

    def create_connect_args(self, url: sa.engine.URL) -> Any:
        return (), {"dataset": url.query.get("dataset")}

    def connect(self, *cargs: Any, **cparams: Any) -> Any:
        key = cparams.get("dataset")
        with _lock:
            dataset = _datasets.get(str(key))
        if dataset is None:
            raise LookupError("unknown or finished quality dataset")
        return duckdb_engine.ConnectionWrapper(open_dataset(dataset))

    def get_columns(self, connection: Any, table_name: str, schema: str | None = None,
                    **kw: Any) -> list[ReflectedColumn]:
        # Root cause 3: reflect through DESCRIBE instead of PostgreSQL's catalog tables.
        rows = connection.exec_driver_sql(f"DESCRIBE {quote(table_name)}").fetchall()
        return [ReflectedColumn(name=str(r[0]), nullable=r[2] == "YES", default=None,
                                type=_reflected(str(r[1])))
                for r in rows]

    @classmethod
    def get_pool_class(cls, url: sa.engine.URL) -> type[sa.pool.Pool]:
        # One connection per thread: GX runs a validation on one thread.
        return sa.pool.SingletonThreadPool


registry.register(f"duckdb.{DRIVER}", __name__, "GovshareDuckDBDialect")


def _dialect_module() -> types.ModuleType:
    """What GX's ``dialect_module`` should be for DuckDB: PostgreSQL for its expressions, and
    DuckDB's own type names (as ``catalog.models.DUCKDB_TYPES`` stores them) for
    ``expect_column_values_to_be_of_type``."""
    module = types.ModuleType("govshare_duckdb_types")
    module.dialect = gx_sa.dialects.postgresql.dialect  # type: ignore[attr-defined]
    for name, cls in _REFLECTED_TYPES.items():
        if " " not in name:
            setattr(module, name, cls)
    return module


DIALECT_MODULE = _dialect_module()


class DuckDBExecutionEngine(SqlAlchemyExecutionEngine):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.dialect_module = DIALECT_MODULE


class DuckDBDatasource(SQLDatasource):
    """GX fluent datasource ``govshare_duckdb``: ``context.data_sources.add_govshare_duckdb``."""

    type: Literal["govshare_duckdb"] = "govshare_duckdb"  # type: ignore[assignment]

    @property
    def execution_engine_type(self) -> builtins.type[SqlAlchemyExecutionEngine]:
        return DuckDBExecutionEngine
