"""Row generators of the default world's resources, one per ``world`` resource key.

Each returns its columns as Arrow or numpy arrays, drawing people and enterprises from the
shared registers so that the same resident or company is consistent across resources. Dates
never pass ``ctx.end`` (the resource's last update), which is what makes stale resources stale
in their data as well as in the catalog.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from numpy.typing import NDArray

from govshare_demo import ids, pools, vocab
from govshare_demo.generate import Columns, GenContext, People, generator
from govshare_demo.pools import days_to_dates, join, numbers

YEAR = 365
Days = NDArray[np.int64]


def years_of(days: Days) -> NDArray[np.int64]:
    return days_to_dates(days).astype("datetime64[Y]").astype(np.int64) + 1970


def add_years(days: Days, years: int | NDArray[np.int64]) -> Days:
    """The same day of the year ``years`` later (29 February becomes 1 March)."""
    d = days_to_dates(days)
    year = d.astype("datetime64[Y]")
    start = year.astype("datetime64[D]")
    later = (year + np.asarray(years)).astype("datetime64[D]")
    return (later + (d - start)).astype(np.int64)


def month_starts(days: Days) -> Days:
    return days_to_dates(days).astype("datetime64[M]").astype("datetime64[D]").astype(np.int64)


def months_before(day: int, back: NDArray[np.int64], step: int = 1) -> Days:
    """First days of the months ``back * step`` + 1 months before the month of ``day``
    (``back`` = 0: the previous month; ``step`` 3 with quarter alignment: quarters)."""
    month = days_to_dates(np.array([day])).astype("datetime64[M]").astype(np.int64)[0]
    month = month - month % step
    starts = (month - step - back * step).astype("datetime64[M]")
    return starts.astype("datetime64[D]").astype(np.int64)


def dates(days: Days) -> NDArray[Any]:
    return days_to_dates(days)


def null_where(values: pa.Array | NDArray[Any], mask: NDArray[np.bool_]) -> pa.Array:
    array = values if isinstance(values, pa.Array | pa.ChunkedArray) else pa.array(values)
    return pc.if_else(pa.array(mask), pa.nulls(len(mask), array.type), array)


def new_entities(ctx: GenContext, prefix: str | list[str], n: int,
                 district: NDArray[np.int64]) -> pa.Array:
    """Credit codes for organisations outside the enterprise register (schools, charities)."""
    return ids.usccs(ctx.rng, prefix, ctx.district_codes(district))


def street_of(ctx: GenContext, district: NDArray[np.int64]) -> pa.Array:
    lists = [d.streets for d in vocab.DISTRICTS]
    flat = pa.array([s for streets in lists for s in streets])
    sizes = np.array([len(s) for s in lists])
    offsets = np.cumsum(sizes) - sizes
    return flat.take(offsets[district] + ctx.rng.integers(0, 1000, len(district)) % sizes[district])


# --- public security -------------------------------------------------------------------------

@generator("ga.population")
def population(ctx: GenContext) -> Columns:
    table = ctx.registers.population.table.slice(0, ctx.n)
    columns: Columns = {name: table.column(name) for name in (
        "resident_id", "name", "gender", "birth_date", "ethnicity", "education",
        "marital_status", "district", "address", "mobile")}
    columns["updated_on"] = ctx.dates(10 * YEAR, table.num_rows, skew=4)
    return columns


@generator("ga.household")
def household(ctx: GenContext) -> Columns:
    sampled = ctx.people()
    n = len(sampled)
    sizes = ctx.rng.choice([1, 2, 3, 4, 5], n, p=[0.25, 0.3, 0.25, 0.12, 0.08])
    member_of = np.repeat(np.arange(n), sizes)[:n]
    # Oldest first within each household, so that the head is its eldest member.
    order = np.lexsort((sampled.birth, member_of))
    people = People(sampled.table.take(order), sampled.index[order], sampled.birth[order],
                    sampled.male[order], sampled.district[order], sampled.age[order])
    head = np.searchsorted(member_of, member_of)  # first row of each household
    relation = household_relations(ctx, people, head)
    district = people.district[head]
    stations = join(vocab.CITY, "公安局", ctx.district_names(district), "分局",
                    pc.utf8_slice_codeunits(street_of(ctx, district), 0, 2), "派出所").take(head)
    collective = ctx.rng.random(member_of.max() + 1) < 0.05
    return {
        "household_no": numbers(vocab.CITY_REGION_CODE * 1000 + member_of * 7 + 13, 9),
        "resident_id": people.col("resident_id"),
        "name": people.col("name"),
        "household_type": pa.array(vocab.HOUSEHOLD_TYPES).take(collective[member_of].astype(int)),
        "relation": pa.array(vocab.HOUSEHOLD_RELATIONS).take(relation),
        "registered_address": people.col("address").take(head),
        "police_station": stations,
        "moved_in_on": dates(ctx.between(people.birth, skew=0.7)),
    }


def household_relations(ctx: GenContext, people: People,
                        head: NDArray[np.int64]) -> NDArray[np.int64]:
    """Indices into vocab.HOUSEHOLD_RELATIONS: a generation younger is a son or daughter,
    two a grandchild; a contemporary of the other sex a spouse, else a sibling or other."""
    gap = people.age[head] - people.age
    child = np.where(people.male, 2, 3)
    peer = np.where(people.male != people.male[head], 1,
                    np.where(ctx.rng.random(len(gap)) < 0.5, 6, 7))
    relation = np.select([gap >= 40, gap >= 16], [5, child], default=peer)
    relation[head == np.arange(len(head))] = 0
    return relation


@generator("ga.residence_permit")
def residence_permit(ctx: GenContext) -> Columns:
    register = ctx.registers.population.table
    migrant = ~pc.starts_with(register.column("resident_id"), vocab.REGION_PREFIX).to_numpy()
    people = ctx.people(min_age=16, max_age=70, where=migrant)
    n = len(people)
    issued = ctx.days(3 * YEAR, n, skew=1.5)
    return {
        "permit_no": ctx.serial(vocab.REGION_PREFIX, 12, n),
        "name": people.col("name"), "resident_id": people.col("resident_id"),
        "gender": people.col("gender"), "birth_date": people.col("birth_date"),
        "address": people.col("address"),
        "reason": ctx.pick(("务工", "经商", "就学", "投靠亲属", "其他"), n,
                           [0.6, 0.15, 0.12, 0.1, 0.03]),
        "issued_on": dates(issued), "valid_until": dates(add_years(issued, 1)),
    }


def plates(ctx: GenContext, new_energy: NDArray[np.bool_]) -> pa.Array:
    """Unique plates: 粤B + 5 characters (letters without I and O, digits), or for new-energy
    vehicles D/F + 5 digits."""
    chars = np.frombuffer(b"ABCDEFGHJKLMNPQRSTUVWXYZ0123456789", dtype=np.uint8)
    n = len(new_energy)
    out = np.empty(n, dtype=object)
    todo = np.arange(n)
    for _ in range(20):
        m = len(todo)
        body = chars[ctx.rng.integers(0, len(chars), (m, 6))]
        body[:, 1:] = np.where(ctx.rng.random((m, 5)) < 0.75,
                               chars[ctx.rng.integers(24, 34, (m, 5))], body[:, 1:])
        nev = new_energy[todo]
        body[nev, 0] = np.where(ctx.rng.random(int(nev.sum())) < 0.8, ord("D"), ord("F"))
        body[nev, 1:] = chars[ctx.rng.integers(24, 34, (int(nev.sum()), 5))]
        width = np.where(nev, 6, 5)
        text = ids.strings_from_bytes(body).to_numpy(zero_copy_only=False)
        out[todo] = [vocab.PLATE_PREFIX + t[:w] for t, w in zip(text, width, strict=True)]
        todo = pools.repeats(out)
        if len(todo) == 0:
            break
    return pa.array(out, type=pa.string())


@generator("ga.vehicle")
def vehicle(ctx: GenContext) -> Columns:
    owners = ctx.people(min_age=20, max_age=80, replace=True)
    n = len(owners)
    fuel = ctx.choice(len(vocab.FUEL_TYPES), n, vocab.FUEL_WEIGHTS)
    brand = ctx.choice(len(vocab.VEHICLE_BRANDS), n)
    registered = ctx.days(15 * YEAR, n, skew=1.6)
    wmis = [vocab.VEHICLE_BRANDS[b][1] for b in brand]
    return {
        "plate_no": plates(ctx, (fuel == 1) | (fuel == 2)),
        "vehicle_type": ctx.pick(vocab.VEHICLE_TYPES, n, vocab.VEHICLE_TYPE_WEIGHTS),
        "brand": pa.array([b for b, _ in vocab.VEHICLE_BRANDS]).take(brand),
        "vin": ids.vins(ctx.rng, wmis, np.clip(years_of(registered), 2010, 2025)),
        "colour": ctx.pick(vocab.VEHICLE_COLOURS, n, [0.35, 0.25, 0.15, 0.12, 0.08, 0.05]),
        "fuel": pa.array(vocab.FUEL_TYPES).take(fuel),
        "owner_name": owners.col("name"), "owner_id": owners.col("resident_id"),
        "registered_on": dates(registered),
        "inspection_valid_until": dates(np.maximum(add_years(registered, 6),
                                                   ctx.end_day + ctx.ints(-60, 2 * YEAR, n))),
        "status": ctx.pick(vocab.VEHICLE_STATUSES, n, [0.88, 0.05, 0.03, 0.02, 0.02]),
    }


@generator("ga.driver_licence")
def driver_licence(ctx: GenContext) -> Columns:
    people = ctx.people(min_age=18, max_age=75)
    n = len(people)
    first = ctx.between(add_years(people.birth, 18), skew=0.8)
    return {
        "resident_id": people.col("resident_id"), "name": people.col("name"),
        "gender": people.col("gender"), "birth_date": people.col("birth_date"),
        "mobile": people.col("mobile"),
        "licence_class": ctx.pick(vocab.DRIVING_CLASSES, n, vocab.DRIVING_CLASS_WEIGHTS),
        "first_issued_on": dates(first),
        "valid_until": dates(ctx.end_day + ctx.ints(-90, 10 * YEAR, n)),
        "points": np.where(ctx.rng.random(n) < 0.8, 0, ctx.ints(1, 12, n)),
        "status": ctx.pick(vocab.LICENCE_STATUSES, n, vocab.LICENCE_STATUS_WEIGHTS),
    }


@generator("ga.offender")
def offender(ctx: GenContext) -> Columns:
    register = ctx.registers.population
    weights = np.where(register.male, 6.0, 1.0)
    people = ctx.people(min_age=16, max_age=70, weights=weights)
    n = len(people)
    decided = ctx.days(5 * YEAR, n)
    return {
        "case_no": join("A", numbers(ctx.district_codes(people.district)),
                        numbers(years_of(decided)), ctx.serial("", 7, n)),
        "name": people.col("name"), "resident_id": people.col("resident_id"),
        "gender": people.col("gender"), "birth_date": people.col("birth_date"),
        "offence": ctx.pick(vocab.OFFENCES, n, [0.3, 0.25, 0.1, 0.1, 0.12, 0.05, 0.05, 0.03]),
        "disposition": ctx.pick(vocab.DISPOSITIONS, n),
        "decided_on": dates(decided),
    }


# --- market regulation -----------------------------------------------------------------------

def business_scope(industry: NDArray[np.int64]) -> pa.Array:
    scopes = [f"一般项目：{'、'.join(words[:3])}相关业务；技术服务、技术开发、技术咨询。"
              "（除依法须经批准的项目外，凭营业执照依法自主开展经营活动）"
              for _, _, words in vocab.INDUSTRIES]
    return pa.array(scopes).take(industry)


@generator("scjg.enterprise")
def enterprise(ctx: GenContext) -> Columns:
    register = ctx.registers.enterprises
    table = register.table.slice(0, ctx.n)
    columns: Columns = {name: table.column(name) for name in (
        "uscc", "name", "enterprise_type", "legal_representative", "legal_representative_id",
        "registered_capital", "established", "industry", "district", "address", "status")}
    established = register.established[:table.num_rows]
    columns["approved_on"] = dates(ctx.between(established, skew=0.35))
    return columns


@generator("scjg.business_licence")
def business_licence(ctx: GenContext) -> Columns:
    firms = ctx.firms()
    n = len(firms)
    long_term = ctx.rng.random(n) < 0.45
    term = add_years(firms.established, ctx.rng.choice([10, 20, 30, 50], n))
    return {
        "uscc": firms.col("uscc"), "name": firms.col("name"),
        "enterprise_type": firms.col("enterprise_type"),
        "legal_representative": firms.col("legal_representative"),
        "registered_capital": firms.col("registered_capital"),
        "established": firms.col("established"),
        "term_until": null_where(dates(term), long_term),
        "business_scope": business_scope(firms.industry),
        "authority": join(vocab.CITY, ctx.district_names(firms.district), "市场监督管理局"),
        "issued_on": dates(ctx.between(firms.established, skew=0.4)),
    }


SHOPS: tuple[tuple[str, int], ...] = (  # shop word, index into vocab.INDUSTRIES
    ("便利店", 4), ("米粉店", 6), ("餐馆", 6), ("五金店", 4), ("美发店", 13), ("水果店", 4),
    ("服装店", 4), ("快递服务部", 5), ("汽车修理店", 13), ("烟酒商行", 4), ("茶饮店", 6),
)


@generator("scjg.individual_business")
def individual_business(ctx: GenContext) -> Columns:
    operators = ctx.people(min_age=20, max_age=70)
    n = len(operators)
    shop = ctx.choice(len(SHOPS), n)
    registered = ctx.days(12 * YEAR, n, skew=2)
    surname = pc.utf8_slice_codeunits(operators.col("name"), 0, 1)
    trade = pc.if_else(pa.array(ctx.rng.random(n) < 0.5), join(surname, "记"),
                       operators.col("name"))
    return {
        "uscc": new_entities(ctx, "92", n, operators.district),
        "name": join(ctx.district_names(operators.district), trade,
                     pa.array([s for s, _ in SHOPS]).take(shop)),
        "operator": operators.col("name"), "operator_id": operators.col("resident_id"),
        "form": ctx.pick(("个人经营", "家庭经营"), n, [0.85, 0.15]),
        "industry": pa.array(vocab.INDUSTRY_LABELS).take(np.array([i for _, i in SHOPS])[shop]),
        "premises": pools.addresses(ctx.rng, ctx.pools, operators.district, residential=False),
        "registered_on": dates(registered),
        "status": ctx.pick(vocab.ENTERPRISE_STATUSES, n, vocab.ENTERPRISE_STATUS_WEIGHTS),
    }


def decision_numbers(ctx: GenContext, office: str, decided: Days) -> pa.Array:
    return join(office, "〔", numbers(years_of(decided)), "〕", ctx.serial("", 5, len(decided)),
                "号")


@generator("scjg.penalty")
def penalty(ctx: GenContext) -> Columns:
    firms = ctx.firms(replace=True)
    n = len(firms)
    decided = ctx.days(3 * YEAR, n)
    return {
        "decision_no": decision_numbers(ctx, vocab.MARKET_PENALTY_PREFIX, decided),
        "party": firms.col("name"), "uscc": firms.col("uscc"),
        "legal_representative": firms.col("legal_representative"),
        "violation": ctx.pick(vocab.VIOLATIONS, n),
        "penalty_type": ctx.pick(vocab.PENALTY_TYPES, n, [0.2, 0.55, 0.15, 0.06, 0.04]),
        "fine": ctx.money(0.8, 1.0, n, low=0.05, high=500),
        "decided_on": dates(decided),
    }


@generator("scjg.food_licence")
def food_licence(ctx: GenContext) -> Columns:
    firms = ctx.firms(industries="FH")
    n = len(firms)
    issued = ctx.days(6 * YEAR, n, skew=1.3)
    valid = add_years(issued, 5)
    status = ctx.choice(3, n, [0.9, 0.07, 0.03])
    status = np.where(valid < ctx.end_day, 3, status)  # expired licences say so
    region = numbers(ctx.district_codes(firms.district))
    return {
        "licence_no": join("JY1", region, ctx.serial("", 6, n), numbers(ctx.ints(0, 9, n))),
        "operator": firms.col("name"), "uscc": firms.col("uscc"),
        "business_item": ctx.pick(vocab.FOOD_BUSINESS_ITEMS, n),
        "premises": firms.col("address"),
        "issued_on": dates(issued), "valid_until": dates(valid),
        "status": pa.array(["有效", "注销", "吊销", "过期"]).take(status),
    }


@generator("scjg.annual_report")
def annual_report(ctx: GenContext) -> Columns:
    firms = ctx.firms(replace=False)
    n = len(firms)
    # Reports for year Y are filed from 1 January to 30 June of Y+1.
    year = ctx.end.year - 1 if ctx.end.month > 6 else ctx.end.year - 2
    start = int((np.datetime64(f"{year + 1}-01-01") - np.datetime64("1970-01-01")).astype(int))
    stop = min(start + 180, ctx.end_day)
    employees = np.maximum(1, np.exp(ctx.rng.normal(2.2, 1.2, n))).astype(np.int64)
    revenue = ctx.money(300, 1.5, n)
    return {
        "uscc": firms.col("uscc"), "name": firms.col("name"),
        "report_year": np.full(n, year), "employees": employees,
        "total_assets": ctx.money(500, 1.6, n), "revenue": revenue,
        "tax_paid": np.round(revenue * ctx.rng.uniform(0.01, 0.08, n), 2),
        "submitted_on": dates(stop - (ctx.rng.random(n) * (stop - start)).astype(np.int64)),
    }


# --- human resources and social security -----------------------------------------------------

@generator("rsj.si_enrolment")
def si_enrolment(ctx: GenContext) -> Columns:
    people = ctx.people(ctx.n // 2 + 1, min_age=16, max_age=85)
    m = len(people)
    # Employees hold pension, unemployment and work-injury insurance; public servants the
    # public-sector pension and work injury; other residents the residents' pension only.
    group = ctx.choice(3, m, [0.62, 0.05, 0.33])
    schemes = {0: [0, 3, 4], 1: [2, 4], 2: [1]}
    counts = np.array([len(schemes[g]) for g in range(3)])[group]
    person = np.repeat(np.arange(m), counts)[:ctx.n]
    scheme = np.concatenate([schemes[int(g)] for g in group])[:ctx.n]
    n = len(person)
    employed = group[person] < 2
    firms = ctx.firms(m, replace=True)  # one employer per person, for all their schemes
    enrolled = ctx.between(add_years(people.birth, 16), skew=0.6)[person]
    return {
        "resident_id": people.col("resident_id").take(person),
        "name": people.col("name").take(person),
        "insurance_type": pa.array(vocab.SOCIAL_INSURANCE_TYPES).take(scheme),
        "employer": null_where(firms.col("name").take(person), ~employed),
        "employer_uscc": null_where(firms.col("uscc").take(person), ~employed),
        "enrolled_on": dates(enrolled),
        "status": ctx.pick(("参保缴费", "暂停缴费", "终止参保"), n, [0.86, 0.1, 0.04]),
        "district": ctx.district_names(people.district[person]),
    }


@generator("rsj.si_payment")
def si_payment(ctx: GenContext) -> Columns:
    months, schemes = 12, (0, 3)  # the last year's pension and unemployment contributions
    people = ctx.people(ctx.n // (months * len(schemes)) + 1, min_age=20, max_age=59)
    m = len(people)
    per_person = months * len(schemes)
    person = np.repeat(np.arange(m), per_person)[:ctx.n]
    n = len(person)
    slot = np.arange(n) % per_person
    period = months_before(ctx.end_day, slot // len(schemes))
    scheme = np.array(schemes)[slot % len(schemes)]
    base = ctx.money(6500, 0.45, m, low=3900, high=24000)[person]
    personal_rate = np.where(scheme == 0, 0.08, 0.003)
    employer_rate = np.where(scheme == 0, 0.16, 0.007)
    return {
        "resident_id": people.col("resident_id").take(person),
        "name": people.col("name").take(person),
        "insurance_type": pa.array(vocab.SOCIAL_INSURANCE_TYPES).take(scheme),
        "period": dates(period),
        "base": base, "personal_amount": np.round(base * personal_rate, 2),
        "employer_amount": np.round(base * employer_rate, 2),
        "paid_on": dates(np.minimum(period + 31 + ctx.ints(0, 20, n),
                                    ctx.end_day)),
    }


@generator("rsj.pension")
def pension(ctx: GenContext) -> Columns:
    register = ctx.registers.population
    ages = register.ages(ctx.as_of)
    retired = np.where(register.male, ages >= 60, ages >= 55)
    people = ctx.people(min_age=55, where=retired)
    n = len(people)
    kind = ctx.choice(3, n, [0.7, 0.22, 0.08])
    amount = np.choose(kind, [ctx.money(3100, 0.3, n), ctx.money(260, 0.3, n),
                              ctx.money(6200, 0.25, n)])
    bank = ctx.choice(len(vocab.BANKS), n)
    return {
        "resident_id": people.col("resident_id"), "name": people.col("name"),
        "gender": people.col("gender"), "birth_date": people.col("birth_date"),
        "pension_type": pa.array(vocab.PENSION_TYPES).take(kind),
        "retired_on": dates(add_years(people.birth, np.where(people.male, 60, 55))),
        "monthly_amount": amount,
        "bank": pa.array([b for b, _ in vocab.BANKS]).take(bank),
        "bank_card": ids.bank_cards(ctx.rng, np.array([int(b) for _, b in vocab.BANKS])[bank]),
        "paid_on": dates(ctx.end_day - ctx.ints(0, 25, n)),
    }


@generator("rsj.unemployment")
def unemployment(ctx: GenContext) -> Columns:
    people = ctx.people(min_age=20, max_age=59)
    n = len(people)
    firms = ctx.firms(n, replace=True)
    return {
        "resident_id": people.col("resident_id"), "name": people.col("name"),
        "mobile": people.col("mobile"),
        "former_employer": null_where(firms.col("name").combine_chunks(),
                                      ctx.rng.random(n) < 0.1),
        "reason": ctx.pick(("合同到期", "单位裁员", "个人辞职", "单位破产", "其他"), n,
                           [0.3, 0.25, 0.3, 0.05, 0.1]),
        "benefit_months": ctx.ints(1, 24, n),
        "benefit_amount": ctx.money(1650, 0.1, n, low=1400, high=2000),
        "registered_on": ctx.dates(2 * YEAR, n),
    }


@generator("rsj.skill_certificate")
def skill_certificate(ctx: GenContext) -> Columns:
    people = ctx.people(min_age=18, max_age=60)
    n = len(people)
    issued = ctx.days(8 * YEAR, n, skew=1.5)
    return {
        "certificate_no": join("S", numbers(years_of(issued)), vocab.REGION_PREFIX,
                               ctx.serial("", 8, n)),
        "name": people.col("name"), "resident_id": people.col("resident_id"),
        "occupation": ctx.pick(vocab.OCCUPATIONS, n),
        "level": ctx.pick(vocab.SKILL_LEVELS, n, [0.35, 0.35, 0.2, 0.07, 0.03]),
        "assessor": ctx.pick(vocab.SKILL_ASSESSORS, n), "issued_on": dates(issued),
    }


# --- civil affairs ---------------------------------------------------------------------------

MARRIAGE_TYPES = ("结婚登记", "离婚登记", "补领结婚证", "补领离婚证")


@generator("mzj.marriage")
def marriage(ctx: GenContext) -> Columns:
    register = ctx.registers.population
    ages = register.ages(ctx.as_of)
    likely = np.exp(-(((ages - 31) / 9.0) ** 2)) + 0.02  # most couples marry around 30
    men = ctx.people(min_age=22, max_age=80, where=register.male, weights=likely)
    women = ctx.people(min_age=20, max_age=80, where=~register.male, weights=likely)
    n = min(len(men), len(women))
    # Pair by rank of age, so that couples are of an age, then shuffle the pairs.
    shuffle = ctx.rng.permutation(n)
    men, women = by_age(men, n, shuffle), by_age(women, n, shuffle)
    kind = ctx.choice(4, n, [0.7, 0.22, 0.05, 0.03])
    registered = ctx.days(3 * YEAR, n)
    district = men.district[:n]
    return {
        "registration_no": join(pa.array(["J", "L", "BJ", "BL"]).take(kind),
                                numbers(ctx.district_codes(district)), "-",
                                numbers(years_of(registered)), "-", ctx.serial("", 6, n)),
        "registration_type": pa.array(MARRIAGE_TYPES).take(kind),
        "husband_name": men.col("name"), "husband_id": men.col("resident_id"),
        "wife_name": women.col("name"), "wife_id": women.col("resident_id"),
        "registered_on": dates(registered),
        "office": join(vocab.CITY, ctx.district_names(district), "民政局婚姻登记处"),
    }


def by_age(people: People, n: int, shuffle: NDArray[np.int64]) -> People:
    order = np.argsort(people.birth, kind="stable")[:n][shuffle]
    return People(people.table.take(order), people.index[order], people.birth[order],
                  people.male[order], people.district[order], people.age[order])


@generator("mzj.subsistence")
def subsistence(ctx: GenContext) -> Columns:
    people = ctx.people(min_age=18, max_age=90)
    n = len(people)
    rural = ctx.rng.random(n) < 0.03  # the city's few remaining village collectives
    size = ctx.choice(5, n, [0.45, 0.25, 0.15, 0.1, 0.05]) + 1
    standard = np.where(rural, 0.8, 1.0) * vocab.SUBSISTENCE_STANDARD  # per person, monthly
    bank = ctx.choice(len(vocab.BANKS), n)
    return {
        "case_no": join("DB", numbers(ctx.district_codes(people.district)),
                        ctx.serial("", 6, n)),
        "name": people.col("name"), "resident_id": people.col("resident_id"),
        "allowance_type": pa.array(vocab.SUBSISTENCE_TYPES).take(rural.astype(int)),
        "household_size": size,
        "monthly_amount": np.round(standard * size * ctx.rng.uniform(0.4, 0.9, n), 0),
        "district": ctx.district_names(people.district),
        "bank_card": ids.bank_cards(ctx.rng, np.array([int(b) for _, b in vocab.BANKS])[bank]),
        "approved_on": ctx.dates(6 * YEAR, n, skew=1.3),
        "status": ctx.pick(("正常保障", "暂停", "停保"), n, [0.9, 0.04, 0.06]),
    }


def deceased(ctx: GenContext, n: int) -> tuple[pa.Table, Days]:
    """People who died in the last three years: not in the (living) register, so they get
    identities of their own."""
    male = ctx.rng.random(n) < 0.55
    died = ctx.days(3 * YEAR, n)
    age_at_death = np.clip(ctx.rng.normal(78, 11, n), 20, 102)
    birth = died - (age_at_death * 365.25).astype(np.int64)
    table = pa.table({
        "name": pools.person_names(ctx.rng, ctx.pools, male),
        "resident_id": pools.identities(ctx.rng, birth, male, migrant_share=0.1),
        "gender": pc.if_else(pa.array(male), "男", "女"),
        "birth_date": pa.array(days_to_dates(birth)),
    })
    return table, died


@generator("mzj.cremation")
def cremation(ctx: GenContext) -> Columns:
    people, died = deceased(ctx, ctx.n)
    n = people.num_rows
    cremated = np.minimum(died + ctx.ints(1, 5, n), ctx.end_day)
    columns: Columns = {c: people.column(c) for c in people.column_names}
    columns.update({
        "cremation_no": ctx.serial("HH" + vocab.REGION_PREFIX, 8, n), "died_on": dates(died),
        "cremated_on": dates(cremated),
        "funeral_home": ctx.pick(vocab.FUNERAL_HOMES, n, vocab.FUNERAL_HOME_WEIGHTS),
    })
    return columns




SUPERVISORS = tuple(f"{vocab.CITY}{body}" for body in ("民政局", "教育局", "科学技术协会",
                                                      "工商业联合会"))


@generator("mzj.social_org")
def social_org(ctx: GenContext) -> Columns:
    n = ctx.n
    kind = ctx.choice(3, n, [0.45, 0.5, 0.05])
    district = pools.district_indices(ctx.rng, n)
    field_names = ctx.pick(vocab.ORG_FIELDS, n)
    trade = ctx.pools.trade_names.take(ctx.rng.integers(0, len(ctx.pools.trade_names), n))
    group = join(vocab.CITY, field_names, ctx.pick(("协会", "商会", "学会", "联合会"), n))
    non_enterprise = join(vocab.CITY, ctx.district_names(district), trade,
                          ctx.pick(("社会工作服务中心", "培训学校", "养老服务中心", "康复中心"), n))
    foundation = join(vocab.PROVINCE, trade, "公益基金会")
    name = pc.case_when(pc.make_struct(pa.array(kind == 0), pa.array(kind == 1)),
                        group, non_enterprise, foundation)
    people = ctx.people(n, min_age=30, max_age=75, replace=True)
    return {
        "uscc": new_entities(ctx, [("51", "52", "53")[k] for k in kind], n, district),
        "name": name,
        "org_type": pa.array(["社会团体", "民办非企业单位", "基金会"]).take(kind),
        "legal_representative": people.col("name"),
        "registered_capital": ctx.money(10, 0.8, n, low=3),
        "supervisor": null_where(ctx.pick(SUPERVISORS, n), ctx.rng.random(n) < 0.4),
        "registered_on": ctx.dates(20 * YEAR, n, skew=1.5),
        "status": ctx.pick(("正常", "注销", "撤销"), n, [0.88, 0.09, 0.03]),
    }


@generator("mzj.elderly_care")
def elderly_care(ctx: GenContext) -> Columns:
    n = ctx.n
    district = pools.district_indices(ctx.rng, n)
    ownership = ctx.choice(3, n, [0.3, 0.55, 0.15])
    trade = ctx.pools.trade_names.take(ctx.rng.integers(0, len(ctx.pools.trade_names), n))
    return {
        "uscc": new_entities(ctx, [("12", "52", "52")[o] for o in ownership], n, district),
        "name": join(ctx.district_names(district), trade,
                     ctx.pick(("养老院", "颐养中心", "老年公寓", "社会福利中心", "康养中心"), n)),
        "ownership": pa.array(["公办", "民办", "公建民营"]).take(ownership),
        "beds": ctx.ints(30, 500, n),
        "rating": ctx.pick(("一级", "二级", "三级", "四级", "五级", "未评定"), n,
                           [0.15, 0.25, 0.2, 0.08, 0.02, 0.3]),
        "address": pools.addresses(ctx.rng, ctx.pools, district, residential=False),
        "district": ctx.district_names(district),
        "filed_on": ctx.dates(8 * YEAR, n),
    }


@generator("mzj.adoption")
def adoption(ctx: GenContext) -> Columns:
    adopters = ctx.people(min_age=30, max_age=60)
    n = len(adopters)
    registered = ctx.days(5 * YEAR, n)
    male = ctx.rng.random(n) < 0.4
    return {
        "registration_no": ctx.serial("SY" + vocab.REGION_PREFIX, 8, n),
        "adopter_name": adopters.col("name"), "adopter_id": adopters.col("resident_id"),
        "child_name": pools.person_names(ctx.rng, ctx.pools, male),
        "child_birth_date": dates(registered - ctx.ints(30, 14 * YEAR, n)),
        "registered_on": dates(registered),
    }


# --- health ----------------------------------------------------------------------------------

@generator("wjw.birth")
def birth(ctx: GenContext) -> Columns:
    register = ctx.registers.population
    mothers = ctx.people(min_age=20, max_age=45, where=~register.male)
    n = len(mothers)
    fathers = ctx.people(n, min_age=22, max_age=50, where=register.male, replace=True)
    male = ctx.rng.random(n) < 0.52
    born = ctx.days(2 * YEAR, n) - 1
    issued = np.minimum(born + ctx.ints(0, 3, n), ctx.end_day)
    no_father = ctx.rng.random(n) < 0.03
    return {
        "certificate_no": join(ctx.pick(("P", "Q", "R", "S", "T"), n), "43",
                               ctx.serial("", 8, n)),
        "baby_name": pools.person_names(ctx.rng, ctx.pools, male),
        "gender": pc.if_else(pa.array(male), "男", "女"),
        "born_at": (born * 86_400 + ctx.ints(0, 86_399, n)).astype("datetime64[s]"),
        "weight_g": np.clip(ctx.rng.normal(3300, 450, n), 1200, 5200).astype(np.int64),
        "gestation_weeks": 35 + ctx.choice(7, n, [0.02, 0.04, 0.12, 0.25, 0.3, 0.2, 0.07]),
        "hospital": ctx.pick(vocab.HOSPITALS, n, vocab.HOSPITAL_WEIGHTS),
        "mother_name": mothers.col("name"), "mother_id": mothers.col("resident_id"),
        "father_name": null_where(fathers.col("name").combine_chunks(), no_father),
        "father_id": null_where(fathers.col("resident_id").combine_chunks(), no_father),
        "issued_on": dates(issued),
    }


@generator("wjw.death")
def death(ctx: GenContext) -> Columns:
    people, died = deceased(ctx, ctx.n)
    n = people.num_rows
    cause = ctx.choice(len(vocab.CAUSES_OF_DEATH), n)
    columns: Columns = {c: people.column(c) for c in people.column_names}
    columns.update({
        "certificate_no": ctx.serial("SW" + vocab.REGION_PREFIX, 9, n), "died_on": dates(died),
        "cause_code": pa.array([c for c, _ in vocab.CAUSES_OF_DEATH]).take(cause),
        "cause": pa.array([c for _, c in vocab.CAUSES_OF_DEATH]).take(cause),
        "place": ctx.pick(("医疗卫生机构", "家中", "养老服务机构", "其他场所"), n,
                          [0.55, 0.35, 0.06, 0.04]),
        "certifier": ctx.pick(vocab.HOSPITALS, n, vocab.HOSPITAL_WEIGHTS),
    })
    return columns


def diagnoses(ctx: GenContext, n: int, male: NDArray[np.bool_]) -> NDArray[np.int64]:
    index = ctx.choice(len(vocab.DIAGNOSES), n, vocab.DIAGNOSIS_WEIGHTS)
    childbirth = [c for c, _ in vocab.DIAGNOSES].index("O80.9")
    return np.where(male & (index == childbirth), 0, index)


@generator("wjw.outpatient")
def outpatient(ctx: GenContext) -> Columns:
    ages = ctx.registers.population.ages(ctx.as_of)
    patients = ctx.people(replace=True, weights=1.0 + ages / 25.0)  # the old visit more
    n = len(patients)
    visit = ctx.choice(3, n, [0.85, 0.1, 0.05])
    department = ctx.choice(len(vocab.CLINICAL_DEPARTMENTS), n)
    gynaecology = vocab.CLINICAL_DEPARTMENTS.index("妇产科")
    department = np.where(patients.male & (department == gynaecology), 0, department)
    department = np.where(patients.age < 14, vocab.CLINICAL_DEPARTMENTS.index("儿科"), department)
    diagnosis = diagnoses(ctx, n, patients.male)
    cost = np.choose(visit, [ctx.money(260, 0.7, n), ctx.money(650, 0.6, n),
                             ctx.money(9000, 0.7, n)])
    return {
        "visit_no": ctx.serial("MZ", 12, n), "name": patients.col("name"),
        "resident_id": patients.col("resident_id"), "gender": patients.col("gender"),
        "age": patients.age,
        "hospital": ctx.pick(vocab.HOSPITALS, n, vocab.HOSPITAL_WEIGHTS),
        "department": pa.array(vocab.CLINICAL_DEPARTMENTS).take(department),
        "visit_type": pa.array(vocab.VISIT_TYPES).take(visit),
        "visited_at": ctx.timestamps(ctx.days(YEAR, n) - 1),
        "diagnosis_code": pa.array([c for c, _ in vocab.DIAGNOSES]).take(diagnosis),
        "diagnosis": pa.array([d for _, d in vocab.DIAGNOSES]).take(diagnosis),
        "total_cost": cost,
    }


@generator("wjw.vaccination")
def vaccination(ctx: GenContext) -> Columns:
    children = ctx.people(min_age=0, max_age=6, replace=True)
    n = len(children)
    vaccine = ctx.choice(len(vocab.VACCINES), n)
    doses = np.array([d for _, _, d in vocab.VACCINES])[vaccine]
    vaccinated = ctx.between(children.birth, np.minimum(children.birth + 6 * YEAR, ctx.end_day))
    return {
        "record_no": ctx.serial("JZ", 12, n),
        "child_name": children.col("name"), "child_id": children.col("resident_id"),
        "birth_date": children.col("birth_date"),
        "vaccine": pa.array([v for v, _, _ in vocab.VACCINES]).take(vaccine),
        "dose": 1 + (ctx.rng.random(n) * doses).astype(np.int64),
        "vaccinated_on": dates(vaccinated),
        "clinic": ctx.pick(vocab.VACCINATION_CLINICS, n),
        "batch_no": join(numbers(years_of(vaccinated)), numbers(ctx.ints(1, 99999, n), 5)),
        "manufacturer": pa.array([m for _, m, _ in vocab.VACCINES]).take(vaccine),
    }


HOSPITAL_GRADES = ("三级甲等", "三级乙等", "二级甲等", "二级乙等", "一级", "未定级")
INSTITUTION_CATEGORIES = ("综合医院", "中医医院", "专科医院", "社区卫生服务中心", "乡镇卫生院",
                          "门诊部", "诊所")


@generator("wjw.medical_institution")
def medical_institution(ctx: GenContext) -> Columns:
    n = ctx.n
    district = pools.district_indices(ctx.rng, n)
    category = ctx.choice(len(INSTITUTION_CATEGORIES), n, [0.04, 0.02, 0.05, 0.08, 0.08, 0.2,
                                                           0.53])
    # The city's big hospitals come first, under their real names.
    known = np.arange(n) < len(vocab.HOSPITALS)
    category[known] = 0
    trade = ctx.pools.trade_names.take(ctx.rng.integers(0, len(ctx.pools.trade_names), n))
    place = ctx.district_names(district)
    suffix = pa.array(["医院", "中医医院", "专科医院", "社区卫生服务中心", "卫生院", "门诊部",
                       "诊所"]).take(category)
    street = pc.utf8_slice_codeunits(street_of(ctx, district), 0, 2)
    public = category <= 4
    name = join(place, pc.if_else(pa.array(public), street, trade), suffix)
    padded = list(vocab.HOSPITALS)[:n] + [""] * max(0, n - len(vocab.HOSPITALS))
    name = pc.if_else(pa.array(known), pa.array(padded), name)
    grade = np.where(category <= 2, ctx.choice(4, n, [0.3, 0.1, 0.4, 0.2]),
                     np.where(category <= 4, 4, 5))
    grade[known] = 0  # the named hospitals are all grade 3A
    beds = np.choose(np.minimum(category, 5), [ctx.ints(300, 3500, n), ctx.ints(100, 800, n),
                                               ctx.ints(50, 600, n), ctx.ints(10, 60, n),
                                               ctx.ints(10, 80, n), ctx.ints(0, 20, n)])
    licensed = ctx.days(5 * YEAR, n)
    return {
        "registration_no": join("PDY", ctx.serial("", 5, n), numbers(ctx.district_codes(district)),
                                ctx.pick(("A1", "A2", "B1", "D1", "E1"), n), "12"),
        "name": name,
        "uscc": new_entities(ctx, [("12" if p else "91") for p in public], n, district),
        "category": pa.array(INSTITUTION_CATEGORIES).take(category),
        "grade": pa.array(HOSPITAL_GRADES).take(grade),
        "beds": np.where(category == 6, 0, beds),
        "address": pools.addresses(ctx.rng, ctx.pools, district, residential=False),
        "licensed_on": dates(licensed),
        "valid_until": dates(add_years(licensed, np.where(category <= 4, 15, 5))),
    }


@generator("wjw.physician")
def physician(ctx: GenContext) -> Columns:
    people = ctx.people(min_age=24, max_age=65)
    n = len(people)
    registered = ctx.between(add_years(people.birth, 24), skew=0.8)
    return {
        "certificate_no": join("1", numbers(years_of(registered)), "430", ctx.serial("", 7, n)),
        "name": people.col("name"), "resident_id": people.col("resident_id"),
        "gender": people.col("gender"),
        "qualification": ctx.pick(("执业医师", "执业助理医师"), n, [0.8, 0.2]),
        "category": ctx.pick(("临床", "中医", "口腔", "公共卫生"), n, [0.7, 0.15, 0.1, 0.05]),
        "institution": ctx.pick(vocab.HOSPITALS, n, vocab.HOSPITAL_WEIGHTS),
        "registered_on": dates(registered),
    }


# --- tax -------------------------------------------------------------------------------------

@generator("swj.tax_registration")
def tax_registration(ctx: GenContext) -> Columns:
    firms = ctx.firms()
    n = len(firms)
    status = firms.col("status").combine_chunks()
    closed = pc.is_in(status, pa.array(["注销", "迁出"])).to_numpy(zero_copy_only=False)
    revoked = pc.equal(status, "吊销").to_numpy(zero_copy_only=False)
    tax_status = np.where(closed, 2, np.where(revoked | (ctx.rng.random(n) < 0.04), 1, 0))
    return {
        "uscc": firms.col("uscc"), "name": firms.col("name"),
        "taxpayer_type": ctx.pick(vocab.TAXPAYER_TYPES, n, [0.3, 0.7]),
        "legal_representative": firms.col("legal_representative"),
        "industry": firms.col("industry"),
        "tax_office": join("国家税务总局", vocab.CITY, ctx.district_names(firms.district),
                           "税务局"),
        "registered_on": dates(np.minimum(firms.established + ctx.ints(0, 30, n), ctx.end_day)),
        "status": pa.array(["正常", "非正常", "注销"]).take(tax_status),
    }


@generator("swj.vat_summary")
def vat_summary(ctx: GenContext) -> Columns:
    months = 12
    firms = ctx.firms(ctx.n // months + 1)  # enough even if none issues two kinds
    m = len(firms)
    general = ctx.rng.random(m) < 0.35  # general taxpayers issue special invoices too
    kinds = np.where(general, 2, 1) * months
    firm = np.repeat(np.arange(m), kinds)[:ctx.n]
    n = len(firm)
    slot = np.concatenate([np.arange(k) for k in kinds])[:n]
    two = general[firm]
    invoice = np.where(two, slot % 2 * 2, 2)  # special + electronic, or electronic only
    month = np.where(two, slot // 2, slot)
    period = months_before(ctx.end_day, month)
    amount = ctx.money(180_000, 1.3, m)[firm] * ctx.rng.uniform(0.6, 1.4, n)
    return {
        "uscc": firms.col("uscc").take(firm), "name": firms.col("name").take(firm),
        "period": dates(period),
        "invoice_type": pa.array(vocab.INVOICE_TYPES).take(invoice),
        "invoice_count": np.maximum(1, (amount / ctx.money(8000, 0.8, n)).astype(np.int64)),
        "amount": np.round(amount, 2),
        "tax": np.round(amount * np.where(general[firm], 0.13, 0.01), 2),
        "summarised_on": dates(np.minimum(period + 41, ctx.end_day)),
    }


@generator("swj.credit_rating")
def credit_rating(ctx: GenContext) -> Columns:
    firms = ctx.firms()
    n = len(firms)
    # Ratings for year Y are published in April of Y+1.
    year = ctx.end.year - 1 if ctx.end.month >= 5 else ctx.end.year - 2
    published = int((np.datetime64(f"{year + 1}-04-20") - np.datetime64("1970-01-01"))
                    .astype(int))
    return {
        "uscc": firms.col("uscc"), "name": firms.col("name"), "year": np.full(n, year),
        "grade": ctx.pick(vocab.TAX_CREDIT_GRADES, n, vocab.TAX_CREDIT_WEIGHTS),
        "rated_on": dates(published + ctx.ints(0, 10, n)),
    }


TAXES_IN_ARREARS = ("增值税", "企业所得税", "城市维护建设税", "房产税", "城镇土地使用税")


@generator("swj.arrears")
def arrears(ctx: GenContext) -> Columns:
    firms = ctx.firms()
    n = len(firms)
    # Announced at the start of each quarter (the current one included).
    announced = months_before(ctx.end_day, ctx.choice(12, n) - 1, step=3)
    return {
        "uscc": firms.col("uscc"), "name": firms.col("name"),
        "legal_representative": firms.col("legal_representative"),
        "tax_type": ctx.pick(TAXES_IN_ARREARS, n, [0.5, 0.2, 0.1, 0.1, 0.1]),
        "balance": ctx.money(60_000, 1.2, n, low=1000),
        "announced_on": dates(np.minimum(announced, ctx.end_day)),
    }


# --- education -------------------------------------------------------------------------------

SCHOOL_SUFFIXES = ("幼儿园", "小学", "初级中学", "高级中学", "中学", "学校", "职业中专学校")
# Which school types (indices into vocab.SCHOOL_TYPES) teach each grade band.
PRIMARY, JUNIOR, SENIOR = (1, 5), (2, 4, 5), (3, 4)


def schools(ctx: GenContext) -> pa.Table:
    """The school register (students are enrolled in these)."""
    size = max(40, round(900 * ctx.registers.rows_scale))

    def build(rng: np.random.Generator) -> pa.Table:
        district = pools.district_indices(rng, size)
        kind = rng.choice(len(vocab.SCHOOL_TYPES), size,
                          p=np.array(vocab.SCHOOL_TYPE_WEIGHTS) / sum(vocab.SCHOOL_TYPE_WEIGHTS))
        kind[:3] = (1, 2, 3)  # every grade band has at least one school, however small
        head = join(vocab.CITY, pa.array([d.name for d in vocab.DISTRICTS]).take(district))
        name = pa.array(np.full(size, "", dtype=object), type=pa.string())
        todo = np.arange(size)
        for attempt in range(30):  # redraw the stems of repeated names
            stems = vocab.SCHOOL_STEMS
            stem = pa.array(stems).take(rng.integers(0, len(stems), len(todo)))
            # Past a few attempts, number them as cities do: 红岭第二中学.
            number = "" if attempt < 3 else "第" + "二三四五六七八九十"[attempt % 9]
            fresh = join(head.take(todo), stem, number,
                         pa.array(SCHOOL_SUFFIXES).take(kind[todo]))
            mask = np.zeros(size, dtype=bool)
            mask[todo] = True
            name = pc.replace_with_mask(name, pa.array(mask), fresh)
            todo = pools.repeats(name.to_numpy(zero_copy_only=False))
            if len(todo) == 0:
                break
        return pa.table({"name": name, "kind": kind, "district": district})

    return ctx.registers.shared("schools", build)


@generator("jyj.school")
def school(ctx: GenContext) -> Columns:
    register = schools(ctx)
    n = register.num_rows
    kind = register.column("kind").to_numpy()
    district = register.column("district").to_numpy()
    private = ctx.rng.random(n) < np.where(kind == 0, 0.45, 0.12)
    return {
        "school_code": ctx.serial("41" + vocab.REGION_PREFIX, 4, n),
        "name": register.column("name"),
        "uscc": new_entities(ctx, [("52" if p else "12") for p in private], n, district),
        "school_type": pa.array(vocab.SCHOOL_TYPES).take(kind),
        "ownership": pa.array(["公办", "民办"]).take(private.astype(int)),
        "district": ctx.district_names(district),
        "address": pools.addresses(ctx.rng, ctx.pools, district, residential=False),
        "students": np.where(kind == 0, ctx.ints(80, 450, n), ctx.ints(400, 3500, n)),
        "updated_on": ctx.dates(YEAR - 30, n),
    }


@generator("jyj.student")
def student(ctx: GenContext) -> Columns:
    pupils = ctx.people(min_age=6, max_age=17)
    n = len(pupils)
    grade = np.clip(pupils.age - 6, 0, len(vocab.GRADES) - 1)
    register = schools(ctx)
    school = school_for_grades(ctx, register.column("kind").to_numpy(), grade)
    school_year = ctx.end.year if ctx.end.month >= 9 else ctx.end.year - 1
    enrolled = np.array([np.datetime64(f"{school_year - g}-09-01") for g in range(12)])[grade]
    return {
        "student_no": join("G", pupils.col("resident_id")),
        "name": pupils.col("name"), "resident_id": pupils.col("resident_id"),
        "gender": pupils.col("gender"), "birth_date": pupils.col("birth_date"),
        "school": register.column("name").take(school),
        "grade": pa.array(vocab.GRADES).take(grade),
        "guardian_mobile": ctx.mobiles(n),
        "enrolled_on": enrolled,
    }


def school_for_grades(ctx: GenContext, kinds: NDArray[np.int64],
                      grade: NDArray[np.int64]) -> NDArray[np.int64]:
    """A school (register row) teaching each pupil's grade (0-5 primary, 6-8 junior, 9-11
    senior)."""
    school = np.zeros(len(grade), dtype=np.int64)
    for band, types in ((grade < 6, PRIMARY), ((grade >= 6) & (grade < 9), JUNIOR),
                        (grade >= 9, SENIOR)):
        candidates = np.flatnonzero(np.isin(kinds, types))
        school[band] = ctx.rng.choice(candidates, int(band.sum()))
    return school


@generator("jyj.teacher_certificate")
def teacher_certificate(ctx: GenContext) -> Columns:
    people = ctx.people(min_age=22, max_age=60)
    n = len(people)
    certified = ctx.between(add_years(people.birth, 22), skew=0.9)
    return {
        "certificate_no": join(numbers(years_of(certified)), "43", ctx.serial("", 11, n)),
        "name": people.col("name"), "resident_id": people.col("resident_id"),
        "gender": people.col("gender"),
        "level": ctx.pick(("幼儿园", "小学", "初级中学", "高级中学", "中等职业学校"), n,
                          [0.2, 0.35, 0.25, 0.15, 0.05]),
        "subject": ctx.pick(("语文", "数学", "英语", "物理", "化学", "生物", "历史", "地理", "政治",
                             "音乐", "体育", "美术"), n),
        "certified_on": dates(certified),
    }


@generator("jyj.training_institution")
def training_institution(ctx: GenContext) -> Columns:
    n = ctx.n
    district = pools.district_indices(ctx.rng, n)
    category = ctx.choice(4, n, [0.2, 0.3, 0.35, 0.15])
    trade = ctx.pools.trade_names.take(ctx.rng.integers(0, len(ctx.pools.trade_names), n))
    suffix = pa.array(["培训学校", "体育俱乐部", "艺术培训中心", "科技培训中心"]).take(category)
    return {
        "uscc": new_entities(ctx, "52", n, district),
        "name": join(vocab.CITY, ctx.district_names(district), trade, suffix),
        "category": pa.array(["学科类", "体育类", "文化艺术类", "科技类"]).take(category),
        "address": pools.addresses(ctx.rng, ctx.pools, district, residential=False),
        "district": ctx.district_names(district),
        "approved_on": ctx.dates(4 * YEAR, n),
    }


# --- housing ---------------------------------------------------------------------------------

@generator("zjj.provident_fund")
def provident_fund(ctx: GenContext) -> Columns:
    people = ctx.people(min_age=20, max_age=60)
    n = len(people)
    firms = ctx.firms(n, replace=True)
    base = ctx.money(6800, 0.5, n, low=2200, high=31000)
    rate = ctx.rng.choice([0.05, 0.08, 0.1, 0.12], n, p=[0.15, 0.2, 0.3, 0.35])
    monthly = np.round(base * rate * 2, 2)
    status = ctx.choice(3, n, [0.82, 0.15, 0.03])
    return {
        "account_no": ctx.serial(vocab.REGION_PREFIX, 10, n), "name": people.col("name"),
        "resident_id": people.col("resident_id"),
        "employer": firms.col("name"), "employer_uscc": firms.col("uscc"),
        "base": base, "rate": rate, "monthly_amount": monthly,
        "balance": np.round(monthly * ctx.rng.uniform(1, 120, n), 2),
        "status": pa.array(["正常", "封存", "销户"]).take(status),
        "last_paid_on": dates(ctx.end_day - np.where(status == 0, ctx.ints(0, 30, n),
                                                     ctx.ints(31, 3 * YEAR, n))),
    }


def housing_projects(ctx: GenContext) -> pa.Array:
    """Residential projects (presale permits and sales contracts name the same ones)."""
    def build(rng: np.random.Generator) -> pa.Array:
        names = [f"{c}{p}" for c in ctx.pools.communities.to_pylist()
                 for p in ("", "一期", "二期", "三期")]
        return pa.array(names).take(rng.permutation(len(names))[:200])

    return ctx.registers.shared("housing_projects", build)


@generator("zjj.presale_permit")
def presale_permit(ctx: GenContext) -> Columns:
    developers = ctx.firms(replace=True, industries="K")
    n = len(developers)
    issued = ctx.days(5 * YEAR, n)
    area = ctx.money(60_000, 0.6, n, low=8000)
    projects = housing_projects(ctx)
    return {
        "permit_no": join(vocab.PRESALE_PERMIT_PREFIX, "（", numbers(years_of(issued)), "）第",
                          ctx.serial("", 4, n), "号"),
        "project": projects.take(ctx.rng.integers(0, len(projects), n)),
        "developer": developers.col("name"), "uscc": developers.col("uscc"),
        "location": pools.addresses(ctx.rng, ctx.pools, developers.district, residential=False),
        "area_m2": area, "units": (area / ctx.rng.uniform(95, 130, n)).astype(np.int64),
        "issued_on": dates(issued),
    }


@generator("zjj.contractor_qualification")
def contractor_qualification(ctx: GenContext) -> Columns:
    firms = ctx.firms(replace=True, industries="E")  # several qualifications each
    n = len(firms)
    issued = ctx.days(5 * YEAR, n)
    return {
        "certificate_no": ctx.serial("D243", 6, n), "enterprise": firms.col("name"),
        "uscc": firms.col("uscc"),
        "qualification": ctx.pick(("建筑工程施工总承包一级", "建筑工程施工总承包二级",
                                   "建筑工程施工总承包三级", "市政公用工程施工总承包二级",
                                   "建筑装修装饰工程专业承包二级", "施工劳务不分等级"), n,
                                  [0.05, 0.15, 0.3, 0.1, 0.15, 0.25]),
        "issued_on": dates(issued), "valid_until": dates(add_years(issued, 5)),
    }


@generator("zjj.contract_filing")
def contract_filing(ctx: GenContext) -> Columns:
    buyers = ctx.people(min_age=22, max_age=70, replace=True)
    n = len(buyers)
    area = np.round(np.clip(ctx.rng.normal(108, 28, n), 40, 300), 2)
    price = ctx.money(vocab.HOUSE_PRICE_MEDIAN, 0.3, n, low=vocab.HOUSE_PRICE_MEDIAN / 3,
                      high=vocab.HOUSE_PRICE_MEDIAN * 4)
    filed = ctx.days(2 * YEAR, n)
    projects = housing_projects(ctx)
    return {
        "contract_no": join("Y", numbers(years_of(filed)), ctx.serial("", 8, n)),
        "project": projects.take(ctx.rng.integers(0, len(projects), n)),
        "buyer_name": buyers.col("name"), "buyer_id": buyers.col("resident_id"),
        "area_m2": area, "unit_price": price, "total_price": np.round(area * price, 2),
        "filed_on": dates(filed),
    }


# --- natural resources and planning ----------------------------------------------------------

def title_prefix(registered: Days) -> pa.Array:
    """粤（2023）深圳市不动产权第 — the title numbering of the registration year."""
    head, tail = vocab.PROPERTY_TITLE.split("{year}")
    return join(head, numbers(years_of(registered)), tail)


@generator("zrzyj.property")
def property_title(ctx: GenContext) -> Columns:
    owners = ctx.people(min_age=22, max_age=90, replace=True)
    n = len(owners)
    registered = ctx.days(15 * YEAR, n, skew=1.4)
    use = ctx.choice(len(vocab.PROPERTY_USES), n, vocab.PROPERTY_USE_WEIGHTS)
    area = np.where(use == 4, ctx.rng.uniform(12, 15, n), np.clip(ctx.rng.normal(105, 35, n),
                                                                  30, 400))
    district = pools.district_indices(ctx.rng, n)
    region = numbers(ctx.district_codes(district))
    return {
        "certificate_no": join(title_prefix(registered),
                               ctx.serial("", 7, n), "号"),
        "unit_no": join(region, numbers(ctx.ints(1, 30, n), 3), numbers(ctx.ints(1, 20, n), 3),
                        "GB", numbers(ctx.ints(1, 99999, n), 5), "F",
                        numbers(ctx.ints(1, 9999, n), 4), numbers(ctx.ints(1, 3300, n), 4)),
        "owner_name": owners.col("name"), "owner_id": owners.col("resident_id"),
        "co_ownership": ctx.pick(("单独所有", "共同共有", "按份共有"), n, [0.55, 0.4, 0.05]),
        "location": pools.addresses(ctx.rng, ctx.pools, district),
        "area_m2": np.round(area, 2),
        "use": pa.array(vocab.PROPERTY_USES).take(use),
        "registered_on": dates(registered),
    }


@generator("zrzyj.land_parcel")
def land_parcel(ctx: GenContext) -> Columns:
    n = ctx.n
    district = pools.district_indices(ctx.rng, n)
    use = ctx.choice(len(vocab.LAND_USES), n)
    right = np.where(use == 6, 3, ctx.choice(3, n, [0.7, 0.2, 0.1]))
    feature = pa.array(["GB", "GB", "JC", "JC"]).take(right)
    surveyed = ctx.days(10 * YEAR, n)
    term = add_years(surveyed, np.where(use == 0, 70, np.where(use == 2, 50, 40)))
    holders = ctx.firms(n, replace=True)
    lon, lat = vocab.LON_RANGE, vocab.LAT_RANGE
    return {
        "parcel_code": join(numbers(ctx.district_codes(district)), numbers(ctx.ints(1, 30, n), 3),
                            numbers(ctx.ints(1, 20, n), 3), feature,
                            numbers(np.arange(n) % 100_000, 5)),
        "district": ctx.district_names(district),
        "land_use": pa.array(vocab.LAND_USES).take(use),
        "area_m2": ctx.money(4500, 1.0, n, low=80),
        "right_type": pa.array(["国有建设用地使用权（出让）", "国有建设用地使用权（划拨）",
                                "集体建设用地使用权", "宅基地使用权"]).take(right),
        "holder": holders.col("name"),
        "term_until": null_where(dates(term), right != 0),
        "longitude": np.round(ctx.rng.uniform(*lon, n), 6),
        "latitude": np.round(ctx.rng.uniform(*lat, n), 6),
        "surveyed_on": dates(surveyed),
    }


@generator("zrzyj.survey")
def survey(ctx: GenContext) -> Columns:
    n = ctx.n
    lon, lat = vocab.LON_RANGE, vocab.LAT_RANGE
    return {
        "sheet_no": join("H49", ctx.pick(("I", "J", "K", "G"), n),
                         numbers(np.arange(n) // 100 + 1, 3), numbers(np.arange(n) % 100 + 1, 3)),
        "scale": ctx.pick(("1:500", "1:1000", "1:2000", "1:10000"), n, [0.4, 0.2, 0.3, 0.1]),
        "product": ctx.pick(("数字线划图", "数字正射影像", "数字高程模型", "实景三维模型"), n),
        "secrecy": ctx.pick(("秘密", "机密"), n, [0.8, 0.2]),
        "lon_min": np.round(ctx.rng.uniform(*lon, n), 4),
        "lat_min": np.round(ctx.rng.uniform(*lat, n), 4),
        "produced_on": ctx.dates(6 * YEAR, n),
    }


PROJECT_KINDS = ("住宅小区", "商业综合体", "产业园", "学校", "医院扩建工程", "安置房", "物流园")


@generator("zrzyj.planning_permit")
def planning_permit(ctx: GenContext) -> Columns:
    builders = ctx.firms(replace=True, industries="KE")
    n = len(builders)
    issued = ctx.days(4 * YEAR, n)
    community = ctx.pools.communities.take(ctx.rng.integers(0, len(ctx.pools.communities), n))
    return {
        "permit_no": join("建字第", numbers(ctx.district_codes(builders.district)),
                          numbers(years_of(issued)), ctx.serial("", 5, n), "号"),
        "project": join(community, ctx.pick(PROJECT_KINDS, n)),
        "builder": builders.col("name"), "uscc": builders.col("uscc"),
        "location": pools.addresses(ctx.rng, ctx.pools, builders.district, residential=False),
        "floor_area_m2": ctx.money(50_000, 0.9, n, low=2000),
        "issued_on": dates(issued),
    }


# --- transport -------------------------------------------------------------------------------

@generator("jtj.road_transport_licence")
def road_transport_licence(ctx: GenContext) -> Columns:
    operators = ctx.firms(replace=True, industries="GO")  # several licences each
    n = len(operators)
    issued = ctx.days(6 * YEAR, n)
    return {
        "licence_no": join(vocab.TRANSPORT_LICENCE_PREFIX,
                           numbers(ctx.district_codes(operators.district)),
                           ctx.serial("", 6, n), "号"),
        "operator": operators.col("name"), "uscc": operators.col("uscc"),
        "scope": ctx.pick(vocab.TRANSPORT_SCOPES, n, [0.6, 0.1, 0.05, 0.2, 0.05]),
        "issued_on": dates(issued), "valid_until": dates(add_years(issued, 4)),
    }


@generator("jtj.ride_hailing_driver")
def ride_hailing_driver(ctx: GenContext) -> Columns:
    drivers = ctx.people(min_age=22, max_age=60, weights=np.where(
        ctx.registers.population.male, 9.0, 1.0))
    n = len(drivers)
    issued = ctx.days(4 * YEAR, n)
    return {
        "resident_id": drivers.col("resident_id"), "name": drivers.col("name"),
        "gender": drivers.col("gender"), "mobile": drivers.col("mobile"),
        "platform": ctx.pick(vocab.RIDE_HAILING_PLATFORMS, n, [0.6, 0.15, 0.1, 0.08, 0.07]),
        "issued_on": dates(issued), "valid_until": dates(add_years(issued, 6)),
    }


@generator("jtj.enforcement")
def enforcement(ctx: GenContext) -> Columns:
    n = ctx.n
    firms = ctx.firms(n, replace=True, industries="G")
    people = ctx.people(n, min_age=20, max_age=65, replace=True)
    person = ctx.rng.random(n) < 0.3  # individual drivers have no credit code
    decided = ctx.days(3 * YEAR, n)
    return {
        "decision_no": decision_numbers(ctx, vocab.TRANSPORT_PENALTY_PREFIX, decided),
        "party": pc.if_else(pa.array(person), people.col("name"), firms.col("name")),
        "uscc": null_where(firms.col("uscc").combine_chunks(), person),
        "violation": ctx.pick(("未取得道路运输经营许可", "超限运输", "非法营运", "未按规定维护车辆",
                               "网约车未取得许可"), n),
        "fine": np.round(ctx.money(3000, 1.0, n, low=200, high=100_000), -1),
        "decided_on": dates(decided),
    }


# --- medical insurance -----------------------------------------------------------------------

@generator("ybj.enrolment")
def medical_enrolment(ctx: GenContext) -> Columns:
    people = ctx.people()
    n = len(people)
    working = (people.age >= 18) & (ctx.rng.random(n) < 0.6)
    employee = working & (people.age < 70)
    flexible = employee & (ctx.rng.random(n) < 0.15)
    category = np.select([people.age < 18, flexible, employee & (people.age >= 60), employee],
                         [4, 2, 1, 0], default=3)
    firms = ctx.firms(n, replace=True)
    enrolled = ctx.between(np.maximum(people.birth, ctx.end_day - 25 * YEAR), skew=0.7)
    return {
        "resident_id": people.col("resident_id"), "name": people.col("name"),
        "gender": people.col("gender"), "birth_date": people.col("birth_date"),
        "insurance_type": pa.array(vocab.MEDICAL_INSURANCE_TYPES).take((~employee).astype(int)),
        "category": pa.array(vocab.MEDICAL_INSURED_CATEGORIES).take(category),
        "employer": null_where(firms.col("name").combine_chunks(), category != 0),
        "enrolled_on": dates(enrolled),
        "status": ctx.pick(("正常参保", "暂停参保", "终止参保"), n, [0.92, 0.05, 0.03]),
        "district": ctx.district_names(people.district),
    }


@generator("ybj.settlement")
def settlement(ctx: GenContext) -> Columns:
    ages = ctx.registers.population.ages(ctx.as_of)
    patients = ctx.people(replace=True, weights=1.0 + ages / 20.0)
    n = len(patients)
    visit = ctx.choice(3, n, [0.8, 0.08, 0.12])
    total = np.choose(visit, [ctx.money(220, 0.7, n), ctx.money(600, 0.6, n),
                              ctx.money(11000, 0.8, n)])
    fund = np.round(total * np.choose(visit, [0.5, 0.55, 0.72]) * ctx.rng.uniform(0.8, 1.1, n),
                    2)
    fund = np.minimum(fund, total)
    diagnosis = diagnoses(ctx, n, patients.male)
    return {
        "settlement_no": ctx.serial("JS" + vocab.REGION_PREFIX, 12, n),
        "name": patients.col("name"),
        "resident_id": patients.col("resident_id"),
        "institution": ctx.pick(vocab.HOSPITALS, n, vocab.HOSPITAL_WEIGHTS),
        "visit_type": pa.array(vocab.VISIT_TYPES).take(visit),
        "diagnosis_code": pa.array([c for c, _ in vocab.DIAGNOSES]).take(diagnosis),
        "total_cost": total, "fund_paid": fund, "personal_paid": np.round(total - fund, 2),
        "settled_at": ctx.timestamps(ctx.days(YEAR, n) - 1),
    }


@generator("ybj.designated_institution")
def designated_institution(ctx: GenContext) -> Columns:
    n = ctx.n
    district = pools.district_indices(ctx.rng, n)
    pharmacy = ctx.rng.random(n) < 0.6
    trade = ctx.pools.trade_names.take(ctx.rng.integers(0, len(ctx.pools.trade_names), n))
    street = pc.utf8_slice_codeunits(street_of(ctx, district), 0, 2)
    clinic = join(ctx.district_names(district), trade,
                  ctx.pick(("门诊部", "诊所", "医院", "社区卫生服务站"), n, [0.3, 0.4, 0.1, 0.2]))
    region = numbers(ctx.district_codes(district))
    return {
        "institution_code": join(pc.if_else(pa.array(pharmacy), "P", "H"), region,
                                 ctx.serial("", 5, n)),
        "name": pc.if_else(pa.array(pharmacy), join(trade, "大药房", street, "店"), clinic),
        "uscc": new_entities(ctx, "91", n, district),
        "category": pa.array(["定点医疗机构", "定点零售药店"]).take(pharmacy.astype(int)),
        "address": pools.addresses(ctx.rng, ctx.pools, district, residential=False),
        "district": ctx.district_names(district),
        "contracted_on": ctx.dates(6 * YEAR, n),
    }


# --- data bureau -----------------------------------------------------------------------------

@generator("sjj.hotline")
def hotline(ctx: GenContext) -> Columns:
    n = ctx.n
    district = pools.district_indices(ctx.rng, n)
    accepted = ctx.timestamps(ctx.days(180, n) - 1)
    issue = ctx.choice(len(vocab.HOTLINE_ISSUES), n)
    status = ctx.choice(3, n, [0.88, 0.1, 0.02])
    closed = accepted + ctx.ints(2 * 3600, 10 * 86_400, n).astype("timedelta64[s]")
    end = np.datetime64(ctx.end) + np.timedelta64(0, "s")
    status = np.where((status == 0) & (closed > end), 1, status)  # not closed yet
    return {
        "ticket_no": join(numbers(years_of(accepted.astype("datetime64[D]").astype(np.int64))),
                          ctx.serial("", 8, n)),
        "accepted_at": accepted,
        "channel": ctx.pick(vocab.HOTLINE_CHANNELS, n, [0.55, 0.1, 0.2, 0.12, 0.03]),
        "category": pa.array(vocab.HOTLINE_CATEGORIES).take(
            np.array([c for _, c in vocab.HOTLINE_ISSUES])[issue]),
        "content": join("市民反映", ctx.district_names(district), street_of(ctx, district), "附近",
                        pa.array([i for i, _ in vocab.HOTLINE_ISSUES]).take(issue),
                        "问题，希望相关部门尽快处理。"),
        "caller_mobile": ctx.mobiles(n), "district": ctx.district_names(district),
        "handler": join(ctx.district_names(district), "人民政府"),
        "status": pa.array(["已办结", "办理中", "已退回"]).take(status),
        "closed_at": null_where(closed, status != 0),
        "satisfaction": null_where(ctx.pick(("满意", "基本满意", "不满意"), n, [0.75, 0.17, 0.08]),
                                   status != 0),
    }


@generator("sjj.service_case")
def service_case(ctx: GenContext) -> Columns:
    applicants = ctx.people(min_age=18, max_age=85, replace=True)
    n = len(applicants)
    accepted = ctx.timestamps(ctx.days(YEAR, n) - 1)
    promised = ctx.rng.choice([1, 3, 5, 10, 15, 20], n)
    took = (ctx.rng.random(n) * promised * 1.5 * 86_400).astype(np.int64) + 1800
    completed = accepted + took.astype("timedelta64[s]")
    end = np.datetime64(ctx.end) + np.timedelta64(0, "s")
    open_case = completed > end
    result = np.where(open_case, 2, ctx.choice(4, n, [0.93, 0.03, 0.0, 0.04]))
    return {
        "case_no": ctx.serial("BJ" + vocab.REGION_PREFIX, 14, n),
        "service": ctx.pick(vocab.SERVICE_ITEMS, n),
        "applicant_name": applicants.col("name"), "applicant_id": applicants.col("resident_id"),
        "accepted_at": accepted, "completed_at": null_where(completed, open_case),
        "result": pa.array(["准予许可", "不予许可", "办理中", "撤回"]).take(result),
        "channel": ctx.pick(("窗口", "网上", "自助终端", "移动端"), n, [0.35, 0.35, 0.05, 0.25]),
        "promised_days": promised,
        "on_time": null_where(took <= promised * 86_400, open_case),
    }
