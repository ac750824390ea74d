"""Producing a package (no transaction open): DuckDB runs ``COPY (SELECT <masked columns>
FROM data WHERE <row filters>) TO '<staging>/<job>.partial'`` (on a connection of its own with
the HMAC registered through DuckDB's C API when available, ``access.native.copy``), the raw-PII
check and k-anonymity scan the written file, and it is fsynced and hashed. An API-query grant
is checked the same way without writing a file. A job holds an exclusive ``flock`` on
``<staging>/<job>.lock`` from start to commit (``access.sweep`` relies on it)."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from access import aggregate, assessment, masking, native, pii, pseudonym, risk
from access.masking import OutputColumn
from access.models import (
    DeliveryMethod,
    FileFormat,
)
from access.planning import Job, staging
from catalog.models import ItemType
from catalog.warehouse import (
    MEMORY_LIMIT_SQL,
    TABLE,
    data_view_sql,
    open_data,
    quote,
)
from kernel import storage
from kernel.problems import Invalid

log = logging.getLogger("govshare")


@contextlib.contextmanager
def job_lock(token: str) -> Iterator[None]:
    """Hold the job's lock file while its files are unowned by a committed row."""
    lock = staging() / f"{token}.lock"
    fd = os.open(lock, os.O_CREAT | os.O_RDWR, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        lock.unlink(missing_ok=True)
        os.close(fd)


@dataclass
class Produced:
    rows: int
    hits: list[pii.Hit]
    k: int | None
    risk: dict[str, Any] | None = None  # access.risk's report of the package as written
    aggregate: dict[str, Any] | None = None  # an aggregate release's privacy accounting
    suppressed: int = 0  # rows dropped as outliers (classes smaller than k_min)
    path: Path | None = None
    bytes: int = 0
    sha256: str | None = None
    columns: list[str] = field(default_factory=list)


def masked_select(con: duckdb.DuckDBPyConnection, job: Job, *, csv: bool = False
                  ) -> tuple[str, list[OutputColumn]]:
    """``SELECT <masked columns> FROM data WHERE <approver's row filters>``."""
    if job.key is not None:
        pseudonym.install(con, job.key)
    columns = masking.compile_columns(job.items, job.plan, as_of=job.as_of, csv=csv)
    where = masking.filter_sql(job.row_filters,
                               {i.name: (quote(i.name), i.type) for i in job.items})
    select_list = ", ".join(f"{c.sql} AS {quote(c.name)}" for c in columns)
    query = f"SELECT {select_list} FROM {TABLE} WHERE {where}"
    if _suppressing(job):
        assert job.k_min is not None
        query = assessment.suppress_outliers(query, job.quasi_identifiers, job.k_min)
    return query, columns


def _suppressing(job: Job) -> bool:
    return job.max_suppression is not None and job.k_min is not None \
        and bool(job.quasi_identifiers)


# Parquet v2 pages and encodings (DELTA_LENGTH_BYTE_ARRAY for strings) with zstd at level 1,
# whose entropy coding halves a column of hex tokens (snappy and lz4 cannot), and no
# dictionaries: DuckDB hashes every value of every column trying to build one, which a
# column of pseudonyms or masked mobiles never fits, and zstd takes repetition out anyway.
# Measured on the benchmark's masked 3M rows against v1 + snappy: ~20% less CPU, 48 MB
# instead of 115 MB (which also halves the fsync and the hash). Read by Arrow, pandas,
# polars, Spark 3 and DuckDB; CSV remains for tools that read none of them. (zstd at its
# default level 3 cost ~1 s more per 1M pseudonyms.)
_PARQUET = ("FORMAT parquet, PARQUET_VERSION v2, COMPRESSION zstd, COMPRESSION_LEVEL 1, "
            "DICTIONARY_SIZE_LIMIT 1")


def _partial(job: Job) -> Path:
    return staging() / f"{job.token}.partial"


def produce(job: Job) -> Produced:
    with open_data(job.segments) as con:
        if job.method is DeliveryMethod.api:
            return _check_view(con, job)
        if job.method is DeliveryMethod.aggregate:
            return _write_aggregate(con, job)
        return _write_file(con, job)


def _write_aggregate(con: duckdb.DuckDBPyConnection, job: Job) -> Produced:
    """Counts, sums and means per group with differential privacy (``access.aggregate``):
    groups as the plan masks them, measures over the raw numbers (only noisy aggregates of
    them leave), written as the grant's file format and checked like any package."""
    import pyarrow as pa

    spec = job.aggregate
    assert spec is not None
    suppressed = [g for g in spec.group_by if job.plan[g].rule is masking.MaskingRule.suppress]
    if suppressed:
        listed = ", ".join(suppressed)
        raise Invalid(f"The plan suppresses group items of the aggregate: {listed}; it cannot "
                      "group by them.", key="problem.access.groups_suppressed",
                      params={"names": listed})
    if job.key is not None:
        pseudonym.install(con, job.key)
    groups = masking.compile_columns(job.items, {g: job.plan[g] for g in spec.group_by},
                                     as_of=job.as_of)
    measured = sorted({m.item for m in spec.measures if m.item})
    select = ", ".join([*(f"{c.sql} AS {quote(c.name)}" for c in groups),
                        *(quote(m) for m in measured)]) or "1 AS one"
    where = masking.filter_sql(job.row_filters,
                               {i.name: (quote(i.name), i.type) for i in job.items})
    names, rows, accounting = aggregate.release(
        con, spec, f"(SELECT {select} FROM {TABLE} WHERE {where})")
    table = pa.Table.from_pylist([dict(zip(names, r, strict=True)) for r in rows]) if rows \
        else pa.table({n: pa.array([], pa.string()) for n in names})
    con.register("gs_aggregate_release", table)
    tmp = _partial(job)
    target = str(tmp).replace("'", "''")
    csv = job.file_format is FileFormat.csv
    con.execute(f"COPY gs_aggregate_release TO '{target}' "
                f"({'FORMAT csv, HEADER' if csv else _PARQUET})")
    con.unregister("gs_aggregate_release")
    relation = f"read_csv('{target}', header=true, all_varchar=true)" if csv else \
        f"read_parquet('{target}')"
    hits = pii.scan(con, relation, targets(groups, typed=not csv))
    storage.fsync_file(tmp)
    return Produced(rows=len(rows), hits=hits, k=None, path=tmp, bytes=tmp.stat().st_size,
                    sha256=_sha256(tmp), columns=names,
                    aggregate={"spec": spec.model_dump(mode="json"), **accounting})


def _check_view(con: duckdb.DuckDBPyConnection, job: Job) -> Produced:
    query, columns = masked_select(con, job)
    relation = f"({query})"
    (count,), = con.execute(f"SELECT count(*) FROM {relation}").fetchall()
    produced = Produced(rows=int(count),
                        hits=pii.scan(con, relation, targets(columns, typed=True)), k=None,
                        columns=[c.name for c in columns])
    _measure(con, job, relation, columns, produced, typed=True)
    return produced


def _write_file(con: duckdb.DuckDBPyConnection, job: Job) -> Produced:
    csv = job.file_format is FileFormat.csv
    query, columns = masked_select(con, job, csv=csv)
    tmp = _partial(job)
    target = str(tmp).replace("'", "''")
    options = "FORMAT csv, HEADER" if csv else _PARQUET
    rows = _copy(con, job, f"COPY ({query}) TO '{target}' ({options})")
    relation = f"read_csv('{target}', header=true, all_varchar=true)" if csv else \
        f"read_parquet('{target}')"
    # Flushing the file waits on the disk, hashing it on a core (hashlib releases the GIL);
    # the checks read it through DuckDB meanwhile. All finish before anything is published.
    with ThreadPoolExecutor(max_workers=2) as pool:
        flushed = pool.submit(storage.fsync_file, tmp)
        hashed = pool.submit(_sha256, tmp)
        hits = pii.scan(con, relation, targets(columns, typed=not csv))
        produced = Produced(rows=rows, hits=hits, k=None, path=tmp,
                            columns=[c.name for c in columns])
        if not hits:
            _measure(con, job, relation, columns, produced, typed=not csv)
        flushed.result()
        produced.sha256 = hashed.result()
    produced.bytes = tmp.stat().st_size
    return produced


def _measure(con: duckdb.DuckDBPyConnection, job: Job, relation: str,
             columns: list[OutputColumn], produced: Produced, *, typed: bool) -> None:
    """The risk report of the package as written (``access.risk``), for its manifest; its k
    is the k-anonymity gate's. QIs the approver did not name are proposed from the items,
    for the report only."""
    delivered = [c.name for c in columns]
    qis = job.quasi_identifiers or risk.propose_quasi_identifiers(job.items, delivered)
    sensitive = job.sensitive_items or risk.propose_sensitive(job.items, delivered, qis)
    numeric = {c.name for c in columns if typed and c.type in (ItemType.integer,
                                                                ItemType.decimal)}
    population = None
    if job.row_filters and qis:  # a sample of the table: the table is its population
        population, _ = assessment.masked_relation(job.items, job.plan, qis, [],
                                                   as_of=job.as_of, filtered=False)
    report = risk.measure(con, relation, qis, [risk.Sensitive(s, s in numeric)
                                               for s in sensitive],
                          k_target=job.k_min, population=population)
    produced.risk = report.as_dict() | {"proposed": not job.quasi_identifiers,
                                        "sensitive_items": sensitive}
    if job.quasi_identifiers:
        produced.k = report.k
    if _suppressing(job):
        where = masking.filter_sql(job.row_filters,
                                   {i.name: (quote(i.name), i.type) for i in job.items})
        (total,), = con.execute(f"SELECT count(*) FROM {TABLE} WHERE {where}").fetchall()
        produced.suppressed = int(total) - produced.rows
        produced.risk["suppressed_rows"] = produced.suppressed


def _copy(con: duckdb.DuckDBPyConnection, job: Job, statement: str) -> int:
    """Run the delivery's COPY: on a connection of its own whose pseudonym functions DuckDB
    calls through its C API (``access.native.copy``: no Arrow round trip, no GIL), or, when
    that is unavailable, on ``con`` with the Arrow functions ``masked_select`` installed.
    Both compute the same tokens with the same C loop."""
    lib = native.load()
    if lib is None or lib.api is None:
        row = con.execute(statement).fetchone()
        return int(row[0]) if row else 0
    setup = [MEMORY_LIMIT_SQL, *data_view_sql(job.segments)]
    try:
        return native.copy(lib, job.key, pseudonym.functions(), [*setup, statement],
                           pseudonym.TOKEN_HEX_CHARS)
    except native.CopyFailed as exc:
        raise duckdb.Error(str(exc)) from None


def _sha256(path: Path) -> str:
    with path.open("rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def targets(columns: list[OutputColumn], *, typed: bool) -> list[pii.Target]:
    """What the raw-PII check expects of each masked column (CSV reads back as text).
    Columns that are the pseudonym function itself hold tokens by construction and are not
    read back (``OutputColumn.tokens_only``); any other pseudonymised column is checked
    value by value for the token shape."""
    out = []
    for c in columns:
        if not c.masked or c.tokens_only:
            continue
        if c.rule == masking.MaskingRule.pseudonymize:
            out.append(pii.Target(c.name, "pseudonym"))
        elif typed and c.type in (ItemType.integer, ItemType.decimal):
            out.append(pii.Target(c.name, "number"))
        else:
            out.append(pii.Target(c.name, "text"))
    return out


def k_too_small(job: Job, produced: Produced) -> bool:
    if job.k_min is not None and produced.k is not None and produced.k < job.k_min:
        return True
    return too_many_suppressed(job, produced)


def too_many_suppressed(job: Job, produced: Produced) -> bool:
    if not _suppressing(job) or job.max_suppression is None:
        return False
    total = produced.rows + produced.suppressed
    return total > 0 and produced.suppressed > job.max_suppression * total


def discard(job: Job) -> None:
    _partial(job).unlink(missing_ok=True)
