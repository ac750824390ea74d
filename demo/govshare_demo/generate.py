"""Turning a ``ResourceSpec`` into a data file: generation context, defects and writers.

A generator (see ``generators`` and ``city``) receives a ``GenContext`` and returns its
columns. ``generate_table`` then casts them to the declared item types (an undeclared or
missing column is a bug and raises), pins the newest as-of date to the resource's last
update, and injects the spec's defects into disjoint sets of rows, so that every defect
count is exactly ``Defect.rows(n)``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any, TypeAlias

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from numpy.typing import NDArray

from catalog.models import ItemType
from govshare_demo import ids, vocab
from govshare_demo.pools import Pools, Registers, days_to_dates, numbers
from govshare_demo.spec import Defect, DefectKind, FileFormat, ResourceSpec

Column: TypeAlias = pa.Array | pa.ChunkedArray | NDArray[Any]
Columns = dict[str, Column]
RowGenerator = Callable[["GenContext"], Columns]

ARROW_TYPES: dict[ItemType, pa.DataType] = {
    ItemType.string: pa.string(),
    ItemType.integer: pa.int64(),
    ItemType.decimal: pa.float64(),
    ItemType.boolean: pa.bool_(),
    ItemType.date: pa.date32(),
    ItemType.datetime: pa.timestamp("s"),
}
EPOCH = date(1970, 1, 1)
# The newest row of a resource is stamped at this local time on its last update day.
AS_OF_TIME = time(8, 30)


def day_number(d: date) -> int:
    return (d - EPOCH).days


@dataclass
class GenContext:
    """What a generator may use: its row count, random stream, dates and the registers."""

    spec: ResourceSpec
    n: int
    rng: np.random.Generator
    registers: Registers
    as_of: date  # the world's today
    end: date  # the newest as-of date of this resource (earlier than as_of if stale)

    @property
    def pools(self) -> Pools:
        return self.registers.pools

    @property
    def end_day(self) -> int:
        return day_number(self.end)

    # -- drawing rows from the registers ----------------------------------------------------

    def people(self, n: int | None = None, *, min_age: int = 0, max_age: int = 150,
               where: NDArray[np.bool_] | None = None, replace: bool = False,
               weights: NDArray[np.float64] | None = None) -> People:
        """Residents within an age range (at the world's today), distinct unless ``replace``;
        fewer than ``n`` if the register has not enough of them."""
        population = self.registers.population
        ages = population.ages(self.as_of)
        ok = (ages >= min_age) & (ages <= max_age)
        if where is not None:
            ok &= where
        eligible = np.flatnonzero(ok)
        size = self.n if n is None else n
        if not replace:
            size = min(size, len(eligible))
        p = None
        if weights is not None:
            p = weights[eligible] / weights[eligible].sum()
        index = self.rng.choice(eligible, size, replace=replace, p=p)
        return People(population.table.take(index), index, population.birth[index],
                      population.male[index], population.district[index], ages[index])

    def firms(self, n: int | None = None, *, replace: bool = False,
              industries: str = "") -> Firms:
        """Enterprises (optionally of the given GB/T 4754 sections, e.g. "FH")."""
        register = self.registers.enterprises
        eligible = np.arange(register.table.num_rows)
        if industries:
            sections = np.array([code in industries for code, _, _ in vocab.INDUSTRIES])
            eligible = np.flatnonzero(sections[register.industry])
        size = self.n if n is None else n
        if not replace:
            size = min(size, len(eligible))
        index = self.rng.choice(eligible, size, replace=replace)
        return Firms(register.table.take(index), index, register.established[index],
                     register.district[index], register.industry[index])

    # -- values ------------------------------------------------------------------------------

    def pick(self, values: Sequence[str], n: int | None = None,
             weights: Sequence[float] | None = None) -> pa.Array:
        return pa.array(list(values)).take(self.choice(len(values), n, weights))

    def choice(self, size: int, n: int | None = None,
               weights: Sequence[float] | None = None) -> NDArray[np.int64]:
        p = None if weights is None else np.asarray(weights, dtype=float) / np.sum(weights)
        return self.rng.choice(size, self.n if n is None else n, p=p)

    def days(self, span: int, n: int | None = None, *, skew: float = 1.0,
             end: int | NDArray[np.int64] | None = None) -> NDArray[np.int64]:
        """Day numbers in the ``span`` days up to ``end`` (default: the resource's end);
        ``skew`` > 1 crowds them towards the end, as registrations grow year on year."""
        size = self.n if n is None else n
        back = (self.rng.random(size) ** skew * span).astype(np.int64)
        return (self.end_day if end is None else end) - back

    def dates(self, span: int, n: int | None = None, *, skew: float = 1.0) -> NDArray[Any]:
        return days_to_dates(self.days(span, n, skew=skew))

    def between(self, start: NDArray[np.int64], stop: int | NDArray[np.int64] | None = None,
                *, skew: float = 1.0) -> NDArray[np.int64]:
        """A day between each ``start`` and ``stop`` (default the end), nearer the end if
        skewed."""
        stop_days = self.end_day if stop is None else stop
        gap = np.maximum(np.asarray(stop_days) - start, 0)
        return stop_days - (self.rng.random(len(start)) ** skew * gap).astype(np.int64)

    def timestamps(self, day_values: NDArray[np.int64]) -> NDArray[Any]:
        """Office-hours timestamps (08:00–18:00, local time) on the given days."""
        seconds = self.rng.integers(8 * 3600, 18 * 3600, len(day_values))
        return (day_values * 86_400 + seconds).astype("datetime64[s]")

    def serial(self, prefix: str, width: int, n: int | None = None,
               start: int = 1) -> pa.Array:
        """Unique numbers: prefix + zero-padded running number."""
        size = self.n if n is None else n
        running = start + np.arange(size) * self.rng.integers(1, 4)
        return pc.binary_join_element_wise(prefix, numbers(running, width), "")

    def money(self, median: float, sigma: float = 0.6, n: int | None = None, *,
              low: float = 0.0, high: float = float("inf")) -> NDArray[np.float64]:
        size = self.n if n is None else n
        values = np.clip(median * np.exp(self.rng.normal(0.0, sigma, size)), low, high)
        return np.round(values, 2)

    def ints(self, low: int, high: int, n: int | None = None) -> NDArray[np.int64]:
        return self.rng.integers(low, high + 1, self.n if n is None else n)

    def mobiles(self, n: int | None = None) -> pa.Array:
        return ids.mobiles(self.rng, self.n if n is None else n, vocab.MOBILE_PREFIXES)

    def district_names(self, index: NDArray[np.int64]) -> pa.Array:
        return pa.array([d.name for d in vocab.DISTRICTS]).take(index)

    def district_codes(self, index: NDArray[np.int64]) -> NDArray[np.int64]:
        return np.array([d.code for d in vocab.DISTRICTS])[index]


@dataclass
class People:
    table: pa.Table
    index: NDArray[np.int64]
    birth: NDArray[np.int64]
    male: NDArray[np.bool_]
    district: NDArray[np.int64]
    age: NDArray[np.int64]

    def __len__(self) -> int:
        return self.table.num_rows

    def col(self, name: str) -> pa.ChunkedArray:
        return self.table.column(name)


@dataclass
class Firms:
    table: pa.Table
    index: NDArray[np.int64]
    established: NDArray[np.int64]
    district: NDArray[np.int64]
    industry: NDArray[np.int64]

    def __len__(self) -> int:
        return self.table.num_rows

    def col(self, name: str) -> pa.ChunkedArray:
        return self.table.column(name)


GENERATORS: dict[str, RowGenerator] = {}


def generator(name: str) -> Callable[[RowGenerator], RowGenerator]:
    def register(fn: RowGenerator) -> RowGenerator:
        GENERATORS[name] = fn
        return fn

    return register


# --- from columns to a table -----------------------------------------------------------------

def generate_table(spec: ResourceSpec, registers: Registers,
                   fixed: frozenset[DefectKind] = frozenset()) -> pa.Table:
    """The resource's rows, typed as declared, with its defects in place (but for the
    ``fixed`` kinds, whose rows keep their correct values: a department's correction)."""
    _load_generators()
    rng = registers.rng(spec.key)
    end = registers.as_of - timedelta(days=spec.stale_days)
    ctx = GenContext(spec=spec, n=spec.rows_at(registers.rows_scale), rng=rng,
                     registers=registers, as_of=registers.as_of, end=end)
    table = conform(spec, GENERATORS[spec.generator](ctx))
    newest = None
    if spec.meta.date_item is not None:
        table, newest = pin_newest(table, spec.meta.date_item, end)
    return apply_defects(table, spec, rng, protected=newest, fixed=fixed)


def _load_generators() -> None:
    # Imported for their registrations; here rather than at the top to avoid an import cycle.
    from govshare_demo import city, generators  # noqa: F401


def conform(spec: ResourceSpec, columns: Columns) -> pa.Table:
    declared = [i.name for i in spec.meta.items]
    if set(columns) != set(declared):
        extra = sorted(set(columns) - set(declared))
        missing = sorted(set(declared) - set(columns))
        raise ValueError(f"{spec.key}: generator columns differ from the declared items "
                         f"(undeclared: {extra}, missing: {missing})")
    arrays = []
    for it in spec.meta.items:
        values = columns[it.name]
        array = values if isinstance(values, pa.Array | pa.ChunkedArray) else pa.array(values)
        arrays.append(array.cast(ARROW_TYPES[it.type]))
    lengths = {len(a) for a in arrays}
    if len(lengths) != 1:
        raise ValueError(f"{spec.key}: columns have different lengths {sorted(lengths)}")
    return pa.table(arrays, names=declared)


def pin_newest(table: pa.Table, column: str, end: date) -> tuple[pa.Table, int | None]:
    """Stamp the newest as-of value with the last update day itself, so that the data's
    freshness is exactly what the catalog says (generators only promise values <= end)."""
    values = table.column(column)
    if table.num_rows == 0 or values.null_count == table.num_rows:
        return table, None
    position = int(pc.index(values, pc.max(values)).as_py())
    stamp: date | datetime = end
    if pa.types.is_timestamp(values.type):
        stamp = datetime.combine(end, AS_OF_TIME)
    mask = np.zeros(table.num_rows, dtype=bool)
    mask[position] = True
    pinned = pc.replace_with_mask(values.combine_chunks(), pa.array(mask),
                                  pa.array([stamp], type=values.type))
    return _set(table, column, pinned), position


def _set(table: pa.Table, column: str, values: pa.Array) -> pa.Table:
    return table.set_column(table.schema.get_field_index(column), column, values)


# --- defects ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Injection:
    """One defect to put into ``victims`` (sorted row positions) of ``table``."""

    table: pa.Table
    spec: ResourceSpec
    defect: Defect
    victims: NDArray[np.int64]
    clean: NDArray[np.int64]  # rows no defect touches
    rng: np.random.Generator

    @property
    def column(self) -> str:
        return str(self.defect.column)

    def values(self) -> list[Any]:
        return self.table.column(self.column).take(self.victims).to_pylist()

    def replace(self, values: pa.Array) -> pa.Table:
        current = self.table.column(self.column).combine_chunks()
        mask = np.zeros(self.table.num_rows, dtype=bool)
        mask[self.victims] = True
        return _set(self.table, self.column,
                    pc.replace_with_mask(current, pa.array(mask), values.cast(current.type)))


def apply_defects(table: pa.Table, spec: ResourceSpec, rng: np.random.Generator, *,
                  protected: int | None = None,
                  fixed: frozenset[DefectKind] = frozenset()) -> pa.Table:
    """Inject each defect into its own rows; the newest row (``protected``) stays clean so
    the resource's freshness is unaffected. Defects of a ``fixed`` kind are drawn but not
    kept, so the other defects stay exactly as they were (same rows, same values)."""
    defects = [d for d in spec.defects if d.kind is not DefectKind.stale]
    n = table.num_rows
    order = rng.permutation(n)
    if protected is not None:
        order = order[order != protected]
    counts = [d.rows(n) for d in defects]
    if sum(counts) > len(order):
        raise ValueError(f"{spec.key}: too few rows ({n}) for its defects")
    clean = order[sum(counts):]
    start = 0
    for defect, count in zip(defects, counts, strict=True):
        victims = np.sort(order[start:start + count])
        start += count
        injected = _INJECT[defect.kind](Injection(table, spec, defect, victims, clean, rng))
        if defect.kind not in fixed:
            table = injected
    return table


def _nulls(job: Injection) -> pa.Table:
    return job.replace(pa.nulls(len(job.victims), job.table.schema.field(job.column).type))


def _check_char(alphabet: str) -> Callable[[Injection], pa.Table]:
    def inject(job: Injection) -> pa.Table:
        return job.replace(pa.array(ids.corrupt_check_char(job.values(), alphabet, job.rng)))

    return inject


def _bad_mobiles(job: Injection) -> pa.Table:
    """What people actually type into a mobile field: a landline, a digit short, a typo."""
    k, rng = len(job.victims), job.rng
    landline = [f"{vocab.AREA_CODE}-8{v:07d}" for v in rng.integers(0, 10**7, k)]
    short = [f"1{v:09d}" for v in rng.integers(3 * 10**8, 10**9, k)]
    typo = [f"12{v:09d}" for v in rng.integers(0, 10**9, k)]
    form = rng.integers(0, 3, k)
    return job.replace(pa.array([(landline, short, typo)[f][i] for i, f in enumerate(form)]))


def _duplicates(job: Injection) -> pa.Table:
    """Rows loaded twice: each victim row becomes a copy of a clean row (same key)."""
    index = np.arange(job.table.num_rows)
    index[job.victims] = job.rng.choice(job.clean, len(job.victims))
    return job.table.take(index)


def _birth_mismatch(job: Injection) -> pa.Table:
    """A birth date mistyped at entry: off by a day to a few years, never by zero days."""
    current = job.table.column(job.column).take(job.victims).to_numpy(zero_copy_only=False)
    k = len(job.victims)
    shift = job.rng.integers(1, 2000, k) * job.rng.choice([-1, 1], k)
    return job.replace(pa.array(current.astype("datetime64[D]") + shift.astype("timedelta64[D]")))


OFF_LIST_VALUES = ("其他", "未知", "9", "待核实", "Z99.9")


def _off_list(job: Injection) -> pa.Table:
    declared = next(i for i in job.spec.meta.items if i.name == job.column)
    candidates = [v for v in OFF_LIST_VALUES if v not in (declared.code_list or [])]
    return job.replace(pa.array(candidates).take(
        job.rng.integers(0, len(candidates), len(job.victims))))


_INJECT: dict[DefectKind, Callable[[Injection], pa.Table]] = {
    DefectKind.null_required: _nulls,
    DefectKind.invalid_resident_id: _check_char(ids.RIC_ALPHABET),
    DefectKind.invalid_uscc: _check_char(ids.USCC_ALPHABET),
    DefectKind.invalid_mobile: _bad_mobiles,
    DefectKind.duplicate_key: _duplicates,
    DefectKind.birth_date_mismatch: _birth_mismatch,
    DefectKind.code_not_in_list: _off_list,
}


# --- files -----------------------------------------------------------------------------------

def write_table(table: pa.Table, path: Path, file_format: FileFormat) -> Path:
    """Write the rows as the publisher would upload them."""
    if file_format is FileFormat.parquet:
        pq.write_table(table, path, compression="zstd")
    elif file_format is FileFormat.csv:
        pacsv.write_csv(table, path)
    else:
        _write_jsonl(table, path)
    return path


def _write_jsonl(table: pa.Table, path: Path) -> None:
    # pyarrow has no JSON writer; DuckDB writes newline-delimited JSON, one object a row.
    with duckdb.connect() as con:
        con.register("rows", table)
        target = str(path).replace("'", "''")
        con.execute(f"COPY rows TO '{target}' (FORMAT json)")


def generate_file(spec: ResourceSpec, registers: Registers, directory: Path,
                  fixed: frozenset[DefectKind] = frozenset()) -> tuple[Path, int]:
    """Generate the resource's data into ``directory``; returns the file and its row count."""
    table = generate_table(spec, registers, fixed)
    return write_table(table, directory / spec.filename, spec.file_format), table.num_rows
