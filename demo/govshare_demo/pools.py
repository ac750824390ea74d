"""The city's shared registers: word pools, its residents and its enterprises.

Faker is only used here, and only to build pools (its zh_CN surnames with their frequencies,
given names by sex, trade-name prefixes); rows are then assembled by drawing indices into the
pools with numpy and joining the pieces with Arrow compute, which is what makes 300,000
residents take well under a second. Resources sample their people and enterprises from these
registers, so the same person appears consistently in the population register, the pension
roll and the hospital visits, as in a real city.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from functools import cached_property
from typing import Any, TypeVar

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from faker.providers.company.zh_CN import Provider as CompanyProvider
from faker.providers.person.zh_CN import Provider as PersonProvider
from numpy.typing import NDArray

from govshare_demo import ids, vocab

T = TypeVar("T")

# Age pyramid of a Chinese city (share of residents per 5-year band from 0-4 to 95-99),
# after the 2020 census: few children, a bulge in the 30s and 50s.
AGE_BAND_WEIGHTS = (0.05, 0.055, 0.05, 0.045, 0.05, 0.075, 0.09, 0.085, 0.075, 0.08, 0.085,
                    0.075, 0.06, 0.05, 0.035, 0.02, 0.01, 0.004, 0.001, 0.0005)


def join(*parts: pa.Array | str) -> pa.Array:
    """Element-wise concatenation of string arrays and constants."""
    return pc.binary_join_element_wise(*parts, "")


def numbers(values: NDArray[np.integer], width: int = 0) -> pa.Array:
    """Integers as strings, zero-padded to ``width``."""
    text = pa.array(values.astype(np.int64)).cast(pa.string())
    return pc.utf8_lpad(text, width, "0") if width else text


def repeats(values: NDArray[Any]) -> NDArray[np.int64]:
    """Positions holding a value already seen earlier in the array."""
    return np.flatnonzero(pd.Series(values).duplicated().to_numpy())


def days_to_dates(days: NDArray[np.integer]) -> NDArray[np.datetime64]:
    return np.datetime64("1970-01-01", "D") + days.astype("timedelta64[D]")


@dataclass(frozen=True)
class Pools:
    """Word pools; every array is indexed by numpy-drawn positions."""

    surnames: pa.Array
    surname_p: NDArray[np.float64]
    given_male: pa.Array
    given_female: pa.Array
    chars_male: pa.Array
    chars_female: pa.Array
    trade_names: pa.Array
    communities: pa.Array

    @classmethod
    def build(cls) -> Pools:
        # Faker's zh_CN word lists; their order is fixed, so the pools need no seed.
        last_names: dict[str, float] = dict(PersonProvider.last_names)
        weights = np.array(list(last_names.values()), dtype=np.float64)
        male = list(dict.fromkeys(PersonProvider.first_names_male))
        female = list(dict.fromkeys(PersonProvider.first_names_female))
        return cls(
            surnames=pa.array(list(last_names)),
            surname_p=weights / weights.sum(),
            given_male=pa.array(male),
            given_female=pa.array(female),
            chars_male=pa.array(sorted(set("".join(male)))),
            chars_female=pa.array(sorted(set("".join(female)))),
            trade_names=pa.array(_trade_names(list(CompanyProvider.company_prefixes))),
            communities=pa.array([p + s for p in vocab.COMMUNITY_PREFIXES
                                  for s in vocab.COMMUNITY_SUFFIXES]),
        )


def _trade_names(faker_prefixes: list[str]) -> list[str]:
    """Two-syllable trade names plus Faker's short prefixes that are not industry words."""
    industry_words = ("公司", "电子", "计算机", "科技", "信息", "软件", "网络", "国际", "数字",
                      "开发区")
    faker_names = sorted({p for p in faker_prefixes
                          if 2 <= len(p) <= 3 and not any(w in p for w in industry_words)})
    pairs = [a + b for a in vocab.TRADE_SYLLABLES for b in vocab.TRADE_SYLLABLES if a != b]
    return pairs + faker_names


# --- people ----------------------------------------------------------------------------------

def person_names(rng: np.random.Generator, pools: Pools, male: NDArray[np.bool_]) -> pa.Array:
    """Surname by national frequency + a given name: half a common one, half two characters."""
    n = len(male)
    surname = pools.surnames.take(rng.choice(len(pools.surnames), n, p=pools.surname_p))
    common = pc.if_else(male, pools.given_male.take(rng.integers(0, len(pools.given_male), n)),
                        pools.given_female.take(rng.integers(0, len(pools.given_female), n)))

    def chars() -> pa.Array:
        return pc.if_else(male, pools.chars_male.take(rng.integers(0, len(pools.chars_male), n)),
                          pools.chars_female.take(rng.integers(0, len(pools.chars_female), n)))

    composed = join(chars(), chars())
    return join(surname, pc.if_else(rng.random(n) < 0.5, common, composed))


def district_indices(rng: np.random.Generator, n: int) -> NDArray[np.int64]:
    weights = np.array([d.weight for d in vocab.DISTRICTS])
    return rng.choice(len(vocab.DISTRICTS), n, p=weights / weights.sum())


def addresses(rng: np.random.Generator, pools: Pools, district: NDArray[np.int64], *,
              residential: bool = True) -> pa.Array:
    """Street addresses in the given districts: a real road of the district, a house number,
    then a residential compound and flat, or an office floor and room."""
    n = len(district)
    names = pa.array([d.name for d in vocab.DISTRICTS]).take(district)
    street_lists = [d.streets for d in vocab.DISTRICTS]
    sizes = np.array([len(s) for s in street_lists])
    offsets = np.cumsum(sizes) - sizes
    flat_streets = pa.array([s for streets in street_lists for s in streets])
    street = flat_streets.take(offsets[district] + rng.integers(0, 1000, n) % sizes[district])
    number = numbers(rng.integers(1, 900, n))
    head = join(vocab.CITY, names, street, number, "号")
    if residential:
        community = pools.communities.take(rng.integers(0, len(pools.communities), n))
        room = numbers(rng.integers(1, 33, n) * 100 + rng.integers(1, 5, n))
        return join(head, community, numbers(rng.integers(1, 30, n)), "栋", room, "室")
    return join(head, numbers(rng.integers(1, 30, n)), "楼", numbers(rng.integers(1, 40, n)),
                "0", numbers(rng.integers(1, 10, n)), "室")


def birth_days(rng: np.random.Generator, n: int, as_of: date, min_age: int = 0,
               max_age: int = 99) -> NDArray[np.int64]:
    """Birth dates (days since 1970) following the age pyramid, within [min_age, max_age]."""
    bands = np.array(AGE_BAND_WEIGHTS)
    lows = np.arange(len(bands)) * 5
    bands = np.where((lows + 4 >= min_age) & (lows <= max_age), bands, 0.0)
    age_days = (rng.choice(len(bands), n, p=bands / bands.sum()) * 5 * 365.25
                 + rng.random(n) * 5 * 365.25).astype(np.int64)
    age_days = np.clip(age_days, int(min_age * 365.25) + 1, int((max_age + 1) * 365.25) - 2)
    return np.int64((as_of - date(1970, 1, 1)).days) - age_days


def identities(rng: np.random.Generator, birth: NDArray[np.int64],
               male: NDArray[np.bool_], migrant_share: float = vocab.MIGRANT_SHARE) -> pa.Array:
    """Unique valid resident ID numbers for people born on ``birth`` (days since 1970)."""
    n = len(birth)
    dates = days_to_dates(birth)
    years = dates.astype("datetime64[Y]").astype(np.int64) + 1970
    local = _local_region_weights()
    region = ids.birth_regions(rng, years, list(local), list(local.values()))
    migrant = rng.random(n) < migrant_share
    region[migrant] = ids.birth_regions(
        rng, years[migrant], vocab.BIRTH_REGIONS_MIGRANT,
        [1.0] * len(vocab.BIRTH_REGIONS_MIGRANT))
    seq = ids.sequence_numbers(rng, male)
    bodies = ids.ric_bodies(region, dates, seq)
    # Two people with the same place, birthday and sequence would share an ID: redraw those.
    for _ in range(20):
        repeated = repeats(bodies)
        if len(repeated) == 0:
            break
        seq[repeated] = ids.sequence_numbers(rng, male[repeated])
        bodies = ids.ric_bodies(region, dates, seq)
    return ids.resident_ids(bodies)


def _local_region_weights() -> dict[int, float]:
    """Birth-place weights of the city's codes: today's districts by population, each former
    code (before a division was renamed or split) with its successor's weight."""
    weights = {d.code: d.weight for d in vocab.DISTRICTS}
    weights.update({old: weights[new] for old, new in vocab.FORMER_REGIONS.items()})
    return {code: weights[code] for code in vocab.BIRTH_REGIONS_LOCAL}


@dataclass
class Population:
    """The resident register: one row per living resident."""

    table: pa.Table
    birth: NDArray[np.int64]  # days since 1970
    male: NDArray[np.bool_]
    district: NDArray[np.int64]  # index into vocab.DISTRICTS

    def ages(self, as_of: date) -> NDArray[np.int64]:
        today = (as_of - date(1970, 1, 1)).days
        return ((today - self.birth) / 365.25).astype(np.int64)


def build_population(rng: np.random.Generator, pools: Pools, n: int,
                     as_of: date) -> Population:
    male = rng.random(n) < 0.51
    birth = birth_days(rng, n, as_of)
    district = district_indices(rng, n)
    age = ((as_of - date(1970, 1, 1)).days - birth) / 365.25
    table = pa.table({
        "resident_id": identities(rng, birth, male),
        "name": person_names(rng, pools, male),
        "gender": pc.if_else(male, "男", "女"),
        "birth_date": pa.array(days_to_dates(birth)),
        "ethnicity": _draw(rng, vocab.ETHNICITIES, n, vocab.ETHNICITY_WEIGHTS),
        "education": _education(rng, age),
        "marital_status": _marital(rng, age),
        "district_code": numbers(np.array([d.code for d in vocab.DISTRICTS])[district]),
        "district": pa.array([d.name for d in vocab.DISTRICTS]).take(district),
        "address": addresses(rng, pools, district),
        "mobile": ids.mobiles(rng, n, vocab.MOBILE_PREFIXES),
    })
    return Population(table=table, birth=birth, male=male, district=district)


def _draw(rng: np.random.Generator, values: tuple[str, ...], n: int,
          weights: tuple[float, ...] | None = None) -> pa.Array:
    p = None if weights is None else np.array(weights) / np.sum(weights)
    return pa.array(values).take(rng.choice(len(values), n, p=p))


def _education(rng: np.random.Generator, age: NDArray[np.float64]) -> pa.Array:
    """Education level: drawn for adults, the current school stage for children."""
    level = rng.choice(len(vocab.EDUCATION_LEVELS), len(age),
                       p=np.array(vocab.EDUCATION_WEIGHTS) / sum(vocab.EDUCATION_WEIGHTS))
    # Indices into EDUCATION_LEVELS: 7 none yet, 6 primary, 5 junior, 4 senior high.
    stage = np.select([age < 7, age < 13, age < 16, age < 19], [7, 6, 5, 4], default=-1)
    level = np.where(stage >= 0, stage, level)
    level = np.where((age >= 19) & (age < 22), np.maximum(level, 2), level)
    return pa.array(vocab.EDUCATION_LEVELS).take(level)


def _marital(rng: np.random.Generator, age: NDArray[np.float64]) -> pa.Array:
    r = rng.random(len(age))
    status = np.select(
        [age < 20, age < 30, r < 0.82, r < 0.9],
        [0, np.where(r < 0.55, 0, 1), 1, 2], default=3)
    status = np.where((age >= 70) & (r > 0.6), 3, status)  # many of the elderly are widowed
    return pa.array(vocab.MARITAL_STATUSES).take(status)


# --- enterprises -----------------------------------------------------------------------------

@dataclass
class Enterprises:
    """The market-entity register (companies, partnerships, cooperatives)."""

    table: pa.Table
    established: NDArray[np.int64]  # days since 1970
    district: NDArray[np.int64]  # index into vocab.DISTRICTS
    industry: NDArray[np.int64]  # index into vocab.INDUSTRIES


def build_enterprises(rng: np.random.Generator, pools: Pools, population: Population, n: int,
                      as_of: date) -> Enterprises:
    district = district_indices(rng, n)
    region = np.array([d.code for d in vocab.DISTRICTS])[district]
    industry = rng.choice(len(vocab.INDUSTRIES), n,
                          p=np.array(vocab.INDUSTRY_WEIGHTS) / sum(vocab.INDUSTRY_WEIGHTS))
    type_p = np.array(vocab.ENTERPRISE_TYPE_WEIGHTS) / sum(vocab.ENTERPRISE_TYPE_WEIGHTS)
    kind = rng.choice(len(vocab.ENTERPRISE_TYPES), n, p=type_p)
    prefixes = np.where(kind == len(vocab.ENTERPRISE_TYPES) - 1, "93", "91")  # cooperatives: 93
    today = (as_of - date(1970, 1, 1)).days
    # Registrations grew fast after the 2014 commercial registration reform: skew to recent.
    established = today - (rng.power(0.7, n) * 35 * 365).astype(np.int64) - 1
    adults = np.flatnonzero(population.ages(as_of) >= 22)
    reps = population.table.take(rng.choice(adults, n))
    table = pa.table({
        "uscc": ids.usccs(rng, list(prefixes), region),
        "name": company_names(rng, pools, industry),
        "enterprise_type": pa.array(vocab.ENTERPRISE_TYPES).take(kind),
        "legal_representative": reps.column("name"),
        "legal_representative_id": reps.column("resident_id"),
        "registered_capital": np.round(np.exp(rng.normal(4.5, 1.6, n)), 2),
        "established": pa.array(days_to_dates(established)),
        "industry": pa.array(vocab.INDUSTRY_LABELS).take(industry),
        "district_code": numbers(region),
        "district": pa.array([d.name for d in vocab.DISTRICTS]).take(district),
        "address": addresses(rng, pools, district, residential=False),
        "status": _draw(rng, vocab.ENTERPRISE_STATUSES, n, vocab.ENTERPRISE_STATUS_WEIGHTS),
        "mobile": ids.mobiles(rng, n, vocab.MOBILE_PREFIXES),
    })
    return Enterprises(table=table, established=established, district=district,
                       industry=industry)


def company_names(rng: np.random.Generator, pools: Pools, industry: NDArray[np.int64]) -> pa.Array:
    """Unique names: [place] + trade name + an industry word + legal form."""
    n = len(industry)
    words = [w for _, _, ws in vocab.INDUSTRIES for w in ws]
    offsets = np.cumsum([0] + [len(ws) for _, _, ws in vocab.INDUSTRIES])
    sizes = np.diff(offsets)
    names = np.empty(n, dtype=object)
    todo = np.arange(n)
    for _ in range(30):  # redraw duplicates until every name is unique
        m = len(todo)
        place = pa.array(["", *vocab.COMPANY_PLACE_PREFIXES]).take(rng.integers(0, 4, m))
        trade = pools.trade_names.take(rng.integers(0, len(pools.trade_names), m))
        word = pa.array(words).take(offsets[industry[todo]]
                                    + rng.integers(0, 1000, m) % sizes[industry[todo]])
        form = _draw(rng, vocab.COMPANY_FORMS, m, vocab.COMPANY_FORM_WEIGHTS)
        names[todo] = join(place, trade, word, form).to_numpy(zero_copy_only=False)
        todo = repeats(names)
        if len(todo) == 0:
            break
    return pa.array(names, type=pa.string())


@dataclass
class Registers:
    """The registers every resource of one world draws from, built on first use."""

    seed: int
    as_of: date
    population_size: int
    enterprise_size: int
    rows_scale: float = 1.0
    _shared: dict[str, Any] = field(default_factory=dict, repr=False)

    def rng(self, name: str) -> np.random.Generator:
        return np.random.default_rng([self.seed, _stable_hash(name)])

    @cached_property
    def pools(self) -> Pools:
        return Pools.build()

    @cached_property
    def population(self) -> Population:
        return build_population(self.rng("population"), self.pools, self.population_size,
                                self.as_of)

    @cached_property
    def enterprises(self) -> Enterprises:
        return build_enterprises(self.rng("enterprises"), self.pools, self.population,
                                 self.enterprise_size, self.as_of)

    def shared(self, name: str, build: Callable[[np.random.Generator], T]) -> T:
        """A smaller register several resources refer to (schools, housing projects), built
        once with its own random stream so that it does not depend on who asks first."""
        if name not in self._shared:
            self._shared[name] = build(self.rng(f"shared:{name}"))
        return self._shared[name]


def _stable_hash(text: str) -> int:
    """A hash that, unlike ``hash()``, is the same in every process."""
    import zlib

    return zlib.crc32(text.encode())
