"""Catalog search benchmark: the tantivy index against a naive LIKE scan, on one catalog.

    python -m bench.bench_search [--quick] [--resources N] [--data-dir DIR] [--no-http]

Generates a realistic catalog (Chinese names from department and subject vocabularies,
English names, keywords, 5-15 data items each) with bulk Core inserts into SQLite, builds the
index from the database as ``govshare search reindex`` does (timed: the indexing rate; then
the index's size on disk), and times a mixed set of queries (Chinese words of 2-4 characters,
English words and prefixes, with and without filters and sorts, a later page) through
``catalog.search.search_cards``, as the API runs it: the page's hits with their stored cards
(the JSON the API returns). The baseline, timed in the same run, answers the same
queries with ``LIKE '%word%'`` over the resource table's text columns (every word, any
column), with the same filters, first page and total count: what one would write without an
index. It does less than the index (no data items, no keywords, no ranking, no facets), so
the ratio flatters it. Browsing without a query (served by the index too) is timed apart.

Then, unless ``--no-http``: ``govshare serve`` (one worker) on the same catalog, and a page of
20 hits (``GET /api/v1/resources?q=...&size=20``) against ``GET /healthz`` on the same server,
each for a few seconds at 8 concurrent keep-alive connections: requests per second.

``--data-dir`` keeps the generated store and reuses it on the next run (skips generation).
``--reuse-index`` also keeps its index (no indexing rate then: for quicker iteration on the
queries; the figures of record come from a full run), ``--no-like`` skips the LIKE baseline.
"""

import argparse
import asyncio
import os
import random
import resource
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

from sqlalchemy import and_, func, insert, nulls_last, or_, select
from sqlmodel import Session, SQLModel

from bench.common import add_catalog_args, generated_catalog, print_table

SEED = 20240601
BATCH = 5_000

# (code, Chinese name, short Chinese name used in resource names, English name)
DEPARTMENTS = [
    ("GA", "市公安局", "公安", "Public Security Bureau"),
    ("SCJG", "市市场监督管理局", "市场监管", "Market Regulation Administration"),
    ("RSJ", "市人力资源和社会保障局", "人社", "Human Resources and Social Security Bureau"),
    ("WJW", "市卫生健康委员会", "卫健", "Health Commission"),
    ("JYJ", "市教育局", "教育", "Education Bureau"),
    ("MZJ", "市民政局", "民政", "Civil Affairs Bureau"),
    ("ZJJ", "市住房和城乡建设局", "住建", "Housing and Construction Bureau"),
    ("JTJ", "市交通运输局", "交通", "Transport Bureau"),
    ("SWJ", "市税务局", "税务", "Taxation Bureau"),
    ("ZRZY", "市自然资源和规划局", "自然资源", "Natural Resources and Planning Bureau"),
    ("STHJ", "市生态环境局", "生态环境", "Ecology and Environment Bureau"),
    ("NYNC", "市农业农村局", "农业农村", "Agriculture and Rural Affairs Bureau"),
    ("WGLY", "市文化广电旅游局", "文旅", "Culture and Tourism Bureau"),
    ("YJGL", "市应急管理局", "应急管理", "Emergency Management Bureau"),
    ("YBJ", "市医疗保障局", "医保", "Healthcare Security Bureau"),
    ("TJJ", "市统计局", "统计", "Statistics Bureau"),
    ("FGW", "市发展和改革委员会", "发改", "Development and Reform Commission"),
    ("CZJ", "市财政局", "财政", "Finance Bureau"),
    ("SFJ", "市司法局", "司法", "Justice Bureau"),
    ("TYJR", "市退役军人事务局", "退役军人", "Veterans Affairs Bureau"),
    ("SWUJ", "市水务局", "水务", "Water Authority"),
    ("SWJU", "市商务局", "商务", "Commerce Bureau"),
    ("CGJ", "市城市管理局", "城管", "Urban Management Bureau"),
    ("GJJ", "市住房公积金管理中心", "公积金", "Housing Provident Fund Centre"),
    ("DCQ", "东城区人民政府", "东城区", "Dongcheng District Government"),
    ("XCQ", "西城区人民政府", "西城区", "Xicheng District Government"),
    ("NSQ", "南山区人民政府", "南山区", "Nanshan District Government"),
    ("BAQ", "宝安区人民政府", "宝安区", "Bao'an District Government"),
    ("SJJ", "市政务服务和数据管理局", "数据", "Data Bureau"),
]

# (Chinese subject, English subject, category value, keywords)
SUBJECTS = [
    ("人口基础", "population basic", "101", ["人口", "户籍"]),
    ("户籍登记", "household registration", "101", ["户籍", "人口"]),
    ("居民身份证", "resident identity card", "101", ["身份证", "人口"]),
    ("流动人口", "floating population", "101", ["人口", "居住证"]),
    ("出生人口", "birth population", "101", ["出生", "人口"]),
    ("死亡人口", "death registration", "101", ["死亡", "人口"]),
    ("企业登记", "enterprise registration", "102", ["企业", "登记", "法人"]),
    ("个体工商户", "individual business", "102", ["个体户", "市场主体"]),
    ("社会组织", "social organization", "102", ["社会组织", "法人"]),
    ("事业单位", "public institution", "102", ["事业单位", "法人"]),
    ("企业年报", "enterprise annual report", "102", ["企业", "年报"]),
    ("土地利用", "land use", "103", ["土地", "规划"]),
    ("地理实体", "geographic entity", "103", ["地理", "空间"]),
    ("矿产资源", "mineral resources", "103", ["矿产", "自然资源"]),
    ("森林资源", "forest resources", "103", ["森林", "林业"]),
    ("国民经济核算", "national accounts", "104", ["经济", "统计"]),
    ("固定资产投资", "fixed asset investment", "104", ["投资", "经济"]),
    ("营业执照", "business licence", "105", ["电子证照", "营业执照"]),
    ("驾驶证", "driving licence", "105", ["电子证照", "驾驶证"]),
    ("结婚证", "marriage certificate", "105", ["电子证照", "婚姻"]),
    ("不动产权证书", "real estate certificate", "105", ["电子证照", "不动产"]),
    ("社会保险参保", "social insurance enrolment", "201", ["社保", "参保"]),
    ("养老保险", "pension insurance", "201", ["社保", "养老"]),
    ("失业保险", "unemployment insurance", "201", ["社保", "失业"]),
    ("最低生活保障", "minimum living allowance", "201", ["低保", "救助"]),
    ("就业登记", "employment registration", "201", ["就业", "人社"]),
    ("医疗机构", "medical institution", "202", ["医疗", "卫生"]),
    ("执业医师", "licensed physician", "202", ["医师", "卫生"]),
    ("预防接种", "vaccination", "202", ["疫苗", "接种"]),
    ("医保结算", "medical insurance settlement", "202", ["医保", "结算"]),
    ("纳税人登记", "taxpayer registration", "203", ["纳税", "税务"]),
    ("增值税发票", "VAT invoice", "203", ["发票", "税务"]),
    ("财政预算", "fiscal budget", "203", ["财政", "预算"]),
    ("学校基本", "school basic", "204", ["学校", "教育"]),
    ("学生学籍", "student enrolment", "204", ["学籍", "学生"]),
    ("教师资格", "teacher qualification", "204", ["教师", "资格"]),
    ("商品房预售", "housing presale", "205", ["商品房", "房地产"]),
    ("住房公积金缴存", "housing provident fund contribution", "205", ["公积金", "住房"]),
    ("建筑工程施工许可", "construction permit", "205", ["施工许可", "建设"]),
    ("机动车登记", "motor vehicle registration", "206", ["机动车", "车辆"]),
    ("道路运输许可", "road transport permit", "206", ["道路运输", "许可"]),
    ("公交线路", "bus route", "206", ["公交", "线路"]),
    ("食品经营许可", "food business licence", "207", ["食品", "许可"]),
    ("产品质量抽检", "product quality inspection", "207", ["抽检", "质量"]),
    ("行政处罚", "administrative penalty", "207", ["处罚", "执法"]),
    ("婚姻登记", "marriage registration", "208", ["婚姻", "登记"]),
    ("养老机构", "elderly care institution", "208", ["养老", "民政"]),
    ("殡葬服务", "funeral service", "208", ["殡葬", "民政"]),
    ("失信被执行人", "dishonest judgment debtor", "209", ["失信", "信用"]),
    ("信用评价", "credit rating", "209", ["信用", "评价"]),
    ("空气质量监测", "air quality monitoring", "301", ["空气质量", "环境"]),
    ("水质监测", "water quality monitoring", "301", ["水质", "环境"]),
    ("安全生产许可", "work safety permit", "301", ["安全生产", "许可"]),
    ("旅游景区", "tourist attraction", "301", ["旅游", "景区"]),
    ("农产品质量", "agricultural product quality", "301", ["农产品", "质量"]),
    ("法律援助", "legal aid", "301", ["法律援助", "司法"]),
    ("优抚对象", "entitled veterans", "301", ["优抚", "退役军人"]),
    ("供水管网", "water supply network", "301", ["供水", "管网"]),
    ("城市部件", "urban components", "301", ["城市管理", "部件"]),
    ("政府投资项目", "government investment project", "301", ["项目", "投资"]),
]
SUFFIXES = [("信息", "information"), ("数据", "data"), ("台账", "ledger"), ("目录", "directory"),
            ("统计", "statistics"), ("名单", "list"), ("记录", "records"), ("明细", "details")]
PURPOSES = ["政务服务办理", "跨部门业务协同", "监管执法", "统计分析", "公共服务", "决策支持"]

# (name, title, title_en, description)
ITEMS = [
    ("id_card_no", "身份证号码", "ID card number", "公民身份号码，18位"),
    ("person_name", "姓名", "Name", "公民姓名"),
    ("gender", "性别", "Gender", "按国家标准代码"),
    ("birth_date", "出生日期", "Date of birth", "公历出生日期"),
    ("nationality", "民族", "Ethnicity", "民族代码"),
    ("address", "住址", "Address", "户籍地址或居住地址"),
    ("mobile", "手机号码", "Mobile number", "联系电话"),
    ("uscc", "统一社会信用代码", "Unified social credit code", "18位法人和其他组织代码"),
    ("org_name", "单位名称", "Organization name", "登记的单位全称"),
    ("legal_rep", "法定代表人", "Legal representative", "法定代表人姓名"),
    ("reg_capital", "注册资本", "Registered capital", "单位为万元人民币"),
    ("reg_date", "登记日期", "Registration date", "首次登记的日期"),
    ("reg_authority", "登记机关", "Registration authority", "作出登记的机关"),
    ("status", "状态", "Status", "当前状态代码"),
    ("district", "所属区县", "District", "行政区划代码"),
    ("street", "所属街道", "Street", "街道乡镇名称"),
    ("licence_no", "证照编号", "Licence number", "证照上的编号"),
    ("issue_date", "发证日期", "Issue date", "证照签发日期"),
    ("valid_until", "有效期至", "Valid until", "证照有效期截止日期"),
    ("amount", "金额", "Amount", "单位为元"),
    ("pay_month", "缴费月份", "Payment month", "社会保险缴费所属月份"),
    ("insured_type", "参保险种", "Insurance type", "养老、医疗、失业等险种"),
    ("hospital", "医疗机构名称", "Hospital", "定点医疗机构"),
    ("diagnosis", "诊断结果", "Diagnosis", "疾病诊断名称"),
    ("school", "学校名称", "School", "学校全称"),
    ("grade", "年级", "Grade", "在读年级"),
    ("plate_no", "号牌号码", "Plate number", "机动车号牌"),
    ("vehicle_type", "车辆类型", "Vehicle type", "按公共安全行业标准"),
    ("tax_amount", "税额", "Tax amount", "应纳税额，单位为元"),
    ("invoice_no", "发票号码", "Invoice number", "增值税发票号码"),
    ("land_area", "土地面积", "Land area", "单位为平方米"),
    ("longitude", "经度", "Longitude", "WGS84坐标"),
    ("latitude", "纬度", "Latitude", "WGS84坐标"),
    ("pm25", "细颗粒物浓度", "PM2.5 concentration", "微克每立方米"),
    ("penalty_type", "处罚种类", "Penalty type", "警告、罚款等"),
    ("case_no", "案件编号", "Case number", "执法案件编号"),
    ("approve_date", "审批日期", "Approval date", "审批通过日期"),
    ("project_name", "项目名称", "Project name", "投资项目名称"),
    ("contact", "联系人", "Contact person", "业务联系人"),
    ("remark", "备注", "Remarks", "其他需要说明的事项"),
    ("updated_at", "更新时间", "Updated at", "数据最后更新时间"),
    ("marriage_date", "登记日期", "Marriage date", "婚姻登记日期"),
    ("allowance", "保障金额", "Allowance", "每月发放的保障金额"),
    ("employer", "用人单位", "Employer", "就业所在单位"),
    ("route_no", "线路编号", "Route number", "公交线路编号"),
]
CYCLES = ["realtime", "daily", "weekly", "monthly", "quarterly", "yearly", "irregular"]
SHARING = ["unconditional", "conditional", "not_shareable"]
LEVELS = ["general", "important", "core"]

# Queries: (label, q, filters). Filters use SearchParams names.
QUERIES: list[tuple[str, str, dict[str, Any]]] = [
    ("zh2", "人口", {}),
    ("zh2", "企业", {}),
    ("zh2", "社保", {}),
    ("zh2", "户籍", {}),
    ("zh2", "医疗", {}),
    ("zh2 broad", "信息", {}),
    ("zh2 broad", "登记", {}),
    ("zh3", "身份证", {}),
    ("zh3", "公积金", {}),
    ("zh3", "驾驶证", {}),
    ("zh3", "机动车", {}),
    ("zh4", "企业登记", {}),
    ("zh4", "空气质量", {}),
    ("zh4", "婚姻登记", {}),
    ("zh4", "法律援助", {}),
    ("zh4 rare", "火星基地", {}),
    ("zh 2 words", "人口 户籍", {}),
    ("en", "population", {}),
    ("en", "Enterprise", {}),
    ("en prefix", "enterp", {}),
    ("en prefix", "regist", {}),
    ("en", "vehicle", {}),
    ("en 2 words", "air quality", {}),
    ("en 2 words", "household registration", {}),
    ("mixed", "企业 licence", {}),
    ("zh2 +dept", "人口", {"department": "GA"}),
    ("zh2 +category", "登记", {"category": "102"}),
    ("zh3 +sharing", "身份证", {"sharing_type": "conditional"}),
    ("zh4 +level", "企业登记", {"security_level": "general"}),
    ("en +cycle", "registration", {"update_cycle": "daily"}),
    ("zh2 +quality", "社保", {"min_quality": 90}),
    ("broad +dept+sort", "信息", {"department": "SCJG", "sort": "published"}),
    ("zh2 sort quality", "医疗", {"sort": "quality"}),
    ("en sort name", "insurance", {"sort": "name"}),
    ("zh2 page 5", "许可", {"page": 5}),
]


# --- generation -------------------------------------------------------------------------------


def _resource_rows(rng: random.Random, n: int,
                   dept_ids: dict[str, int]) -> Iterator[dict[str, Any]]:
    today = date(2024, 6, 1)
    for i in range(1, n + 1):
        code, dept_zh, short, dept_en = rng.choice(DEPARTMENTS)
        subject, subject_en, category, keywords = rng.choice(SUBJECTS)
        suffix, suffix_en = rng.choice(SUFFIXES)
        year = rng.choice(["", "", "", f"{rng.randint(2015, 2024)}年"])
        district = rng.choice(["", "", "东城区", "西城区", "南山区", "宝安区", "福田区", "罗湖区"])
        name = f"{year}{district}{short}{subject}{suffix}"
        cycle = rng.choice(CYCLES)
        updated = datetime(2024, 5, 31, tzinfo=UTC) - timedelta(minutes=rng.randint(0, 10**6))
        yield {
            "id": i,
            "code": f"{code}-{i:07d}",
            "name": name[:200],
            "name_en": f"{subject_en.capitalize()} {suffix_en} of the {dept_en}",
            "provider_id": dept_ids[code],
            "summary": (f"本资源由{dept_zh}提供，汇集{district or '全市'}{subject}{suffix}，"
                        f"用于{rng.choice(PURPOSES)}，按{_cycle_zh(cycle)}更新。"),
            "summary_en": (f"{subject_en.capitalize()} {suffix_en} compiled by the {dept_en}, "
                           f"updated {cycle}."),
            "category": category,
            "keywords": [*keywords, short][: rng.randint(2, 3)],
            "sharing_type": rng.choice(SHARING),
            "sharing_condition": "",
            "sharing_method": rng.choice(["file", "api"]),
            "update_cycle": cycle,
            "security_level": rng.choices(LEVELS, weights=[7, 2, 1])[0],
            "status": "withdrawn" if rng.random() < 0.05 else "active",
            "date_item": None,
            "published_at": today - timedelta(days=rng.randint(0, 3000)),
            "last_data_update": updated if rng.random() < 0.9 else None,
            "current_version": 1,
            "row_count": rng.randint(10, 10**7),
            "revision": 1,
            "quality_score": round(rng.uniform(40, 100), 1) if rng.random() < 0.8 else None,
            "created_at": updated,
            "updated_at": updated,
        }


def _cycle_zh(cycle: str) -> str:
    return {"realtime": "实时", "daily": "日", "weekly": "周", "monthly": "月",
            "quarterly": "季度", "yearly": "年", "irregular": "不定期"}[cycle]


def _item_rows(rng: random.Random, resource_id: int) -> list[dict[str, Any]]:
    chosen = rng.sample(ITEMS, rng.randint(5, 15))
    return [
        {"resource_id": resource_id, "position": pos, "name": name, "title": title,
         "title_en": title_en, "type": "string", "description": desc, "required": pos == 1,
         "is_key": pos == 1, "sensitivity": "personal" if "name" in name else "none",
         "kind": None, "code_list": None}
        for pos, (name, title, title_en, desc) in enumerate(chosen, start=1)
    ]


def generate(session: Session, n: int) -> None:
    from catalog.models import Category
    from kernel.identity import create_department

    rng = random.Random(SEED)
    dept_ids = {}
    for code, zh, _short, en in DEPARTMENTS:
        dept_ids[code] = create_department(session, code=code, name_zh=zh, name_en=en).id or 0
    tables = SQLModel.metadata.tables
    categories = {c.value: c for c in Category}
    batch: list[dict[str, Any]] = []
    for row in _resource_rows(rng, n, dept_ids):
        row["category"] = categories[row["category"]]
        batch.append(row)
        if len(batch) == BATCH:
            _insert_batch(session, tables, rng, batch)
            batch = []
    _insert_batch(session, tables, rng, batch)


def _insert_batch(session: Session, tables: Any, rng: random.Random,
                  batch: list[dict[str, Any]]) -> None:
    if not batch:
        return
    session.execute(insert(tables["resource"]), batch)
    items = [item for row in batch for item in _item_rows(rng, row["id"])]
    session.execute(insert(tables["data_item"]), items)


# --- measurement ------------------------------------------------------------------------------

_SORT_COLUMNS = {"name": "name", "published": "published_at", "updated": "last_data_update",
                 "quality": "quality_score"}


def _like_baseline(session: Session, q: str, filters: dict[str, Any]) -> int:
    """The naive answer: every word LIKE '%word%' in some text column, the same filters,
    order and page, and the total in the same statement."""
    from catalog.search import SearchParams, SortKey
    from kernel.identity import get_department

    res = SQLModel.metadata.tables["resource"]
    params = SearchParams(**filters)
    sort = params.sort if params.sort not in (None, SortKey.relevance) else SortKey.published
    columns = [res.c.name, res.c.name_en, res.c.summary, res.c.summary_en]
    words = [or_(*(c.ilike(f"%{w}%") for c in columns)) for w in q.split()]
    conds = [res.c.status == "active"]
    if params.department:
        conds.append(res.c.provider_id == get_department(session, params.department).id)
    for name in ("category", "sharing_type", "update_cycle", "security_level"):
        if getattr(params, name) is not None:
            conds.append(res.c[name] == getattr(params, name))
    if params.min_quality is not None:
        conds.append(res.c.quality_score >= params.min_quality)
    column = res.c[_SORT_COLUMNS[sort.value]]
    direction = column.asc() if sort == SortKey.name else column.desc()
    rows = session.execute(
        select(res.c.id, res.c.code, func.count().over().label("total"))
        .where(and_(*words), *conds)
        .order_by(nulls_last(direction), res.c.id)
        .limit(params.size).offset((params.page - 1) * params.size)
    ).all()
    return int(rows[0].total) if rows else 0


def _indexed(session: Session, q: str | None, filters: dict[str, Any]) -> int:
    from catalog.search import SearchParams, search_cards

    page = search_cards(session, SearchParams(q=q, **filters))
    session.rollback()  # end the read transaction, as a request does
    return page.total


def _time(fn: Callable[[], int], repeat: int) -> tuple[list[float], list[float], int]:
    """Wall-clock and CPU (this thread's) milliseconds per run, and the last total. The CPU
    time is what the search itself costs; the wall time adds whatever else the machine runs
    (the development VM is shared: both are printed)."""
    fn()  # warm the caches: the steady state is what users see
    wall, cpu, total = [], [], 0
    for _ in range(repeat):
        t, c = time.perf_counter(), time.thread_time()
        total = fn()
        wall.append((time.perf_counter() - t) * 1000)
        cpu.append((time.thread_time() - c) * 1000)
    return wall, cpu, total


def _pct(samples: list[float], p: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def _reused_index() -> dict[str, float]:
    from catalog.search import engine

    index = engine.reader()
    assert index is not None, "--reuse-index needs an index: run once without it"
    count = index.searcher().num_docs
    size = sum(p.stat().st_size for p in engine.index_dir().rglob("*") if p.is_file())
    print(f"reused the index of {count:,} active resources (not timed); index "
          f"{size / 2**20:,.0f} MiB, {size / max(count, 1):,.0f} bytes a resource")
    return {"rate": 0.0, "bytes": size / max(count, 1), "cpu_rate": 0.0}


def run_queries(session: Session, repeat: int, baseline: bool = True) -> dict[str, float]:
    rows = []
    idx_wall: list[float] = []
    idx_cpu: list[float] = []
    like_wall: list[float] = []
    like_cpu: list[float] = []
    for label, q, filters in QUERIES:
        idx, cpu, total = _time(partial(_indexed, session, q, filters), repeat)
        like, lcpu, like_total = _time(partial(_like_baseline, session, q, filters),
                                       max(1, repeat // 3)) if baseline else ([0.0], [0.0], 0)
        idx_wall += idx
        idx_cpu += cpu
        like_wall += like
        like_cpu += lcpu
        rows.append([label, q, str(filters or ""), f"{total:,}", f"{like_total:,}",
                     f"{statistics.median(idx):.1f}", f"{max(idx):.1f}",
                     f"{statistics.median(cpu):.1f}", f"{statistics.median(like):.1f}"])
    print_table("Per query (ms; hits: index (capped at 10,000) vs LIKE, which skips items "
                "and keywords)",
                ["kind", "q", "filters", "hits", "LIKE hits", "index p50", "index max",
                 "index CPU p50", "LIKE p50"], rows)
    summary = [
        [name, f"{_pct(s, 50):.1f}", f"{_pct(s, 95):.1f}", f"{_pct(s, 99):.1f}", len(s)]
        for name, s in (("index (search_cards), wall", idx_wall),
                        ("index (search_cards), CPU", idx_cpu),
                        ("LIKE '%q%' scan, wall", like_wall),
                        ("LIKE '%q%' scan, CPU", like_cpu))
    ]
    print_table("Latency over all queries (ms)", ["method", "p50", "p95", "p99", "samples"],
                summary)
    for kind, a, b in (("wall", like_wall, idx_wall), ("CPU", like_cpu, idx_cpu)) \
            if baseline else ():
        ratio = [_pct(a, p) / max(_pct(b, p), 1e-9) for p in (50, 95, 99)]
        print(f"LIKE / index ({kind}): p50 {ratio[0]:.0f}x, p95 {ratio[1]:.0f}x, "
              f"p99 {ratio[2]:.0f}x")
    return {"p95": _pct(idx_wall, 95), "p95_cpu": _pct(idx_cpu, 95)}


BROWSE: list[dict[str, Any]] = [
    {}, {"department": "GA"}, {"category": "201", "sort": "quality"}, {"sort": "name"},
    {"sort": "updated", "order": "asc"}, {"min_quality": 90, "sort": "published"},
    {"page": 50},
]


def run_browse(session: Session, repeat: int) -> tuple[float, float]:
    """No query: served by the index as well (its sort keys and filter fields)."""
    rows, worst, worst_cpu = [], 0.0, 0.0
    for filters in BROWSE:
        wall, cpu, total = _time(partial(_indexed, session, None, filters), repeat)
        worst, worst_cpu = max(worst, max(wall)), max(worst_cpu, max(cpu))
        rows.append([str(filters or "(none)"), f"{total:,}", f"{statistics.median(wall):.1f}",
                     f"{max(wall):.1f}", f"{max(cpu):.1f}"])
    print_table("Browsing without a query (ms)", ["filters", "hits", "p50", "max", "CPU max"],
                rows)
    return worst, worst_cpu


def _build(session: Session, n: int) -> None:
    t = time.perf_counter()
    generate(session, n)
    session.commit()
    print(f"generated {n:,} resources in {time.perf_counter() - t:.1f}s")


def _index(data_dir: Path) -> dict[str, float]:
    from catalog.search import engine, feed

    writer = feed.Writer()
    assert writer.acquire()

    def cpu() -> float:  # this process (all its threads) and its reaped worker processes
        own, kids = resource.getrusage(resource.RUSAGE_SELF), \
            resource.getrusage(resource.RUSAGE_CHILDREN)
        return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime

    try:
        t, c = time.perf_counter(), cpu()
        count = writer.rebuild()
        seconds, cpu_seconds = time.perf_counter() - t, cpu() - c
    finally:
        writer.release()
    size = sum(p.stat().st_size for p in engine.index_dir().rglob("*") if p.is_file())
    print(f"indexed {count:,} active resources in {seconds:.1f}s: {count / seconds:,.0f} "
          f"resources/s (load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores); "
          f"{cpu_seconds:.1f} CPU-seconds in all, {cpu_seconds / max(count, 1) * 1e6:.0f} us "
          f"a resource ({count / max(cpu_seconds, 1e-9):,.0f} resources per CPU-second); "
          f"index {size / 2**20:,.0f} MiB, {size / max(count, 1):,.0f} bytes a resource")
    return {"rate": count / seconds, "bytes": size / max(count, 1),
            "cpu_rate": count / max(cpu_seconds, 1e-9)}


def _report_size(session: Session, data_dir: Path) -> None:
    count = session.execute(
        select(func.count()).select_from(SQLModel.metadata.tables["resource"])).scalar_one()
    items = session.execute(
        select(func.count()).select_from(SQLModel.metadata.tables["data_item"])).scalar_one()
    from kernel.db import get_engine

    engine = get_engine()
    session.commit()
    raw = engine.raw_connection()
    try:
        raw.cursor().execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        raw.close()
    size = sum(p.stat().st_size for p in data_dir.glob("govshare.db*"))
    print(f"{count:,} resources, {items:,} data items; metadata store {size / 2**20:,.0f} MiB")


# --- HTTP: one worker, a page of 20 against /healthz --------------------------------------------


def _token(session: Session) -> str:
    from kernel import identity
    from kernel.identity import Role

    user = identity.create_user(session, username="bench-requester", display_name="bench",
                                department="GA", roles=[Role.requester])
    _, plain = identity.issue_token(session, user, name="bench", days=1)
    session.commit()
    return plain


async def _hammer(port: int, path: str, headers: str, seconds: float,
                  connections: int) -> tuple[int, int]:
    """Keep-alive HTTP/1.1 requests back to back on each connection: (responses, errors)."""
    request = (f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{headers}\r\n").encode()
    done = errors = 0
    stop = time.perf_counter() + seconds

    async def one() -> None:
        nonlocal done, errors
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while time.perf_counter() < stop:
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                                  if line.lower().startswith(b"content-length")))
                await reader.readexactly(length)
                done += 1
                if not head.startswith(b"HTTP/1.1 200"):
                    errors += 1
        finally:
            writer.close()

    await asyncio.gather(*(one() for _ in range(connections)))
    return done, errors


def _cpu_of(pid: int) -> float:
    """CPU seconds (user + system) a process has used so far, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_http(data_dir: Path, token: str, seconds: float = 5.0) -> dict[str, float]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    env = dict(os.environ, GOVSHARE_DATA_DIR=str(data_dir), GOVSHARE_MODE="development",
               GOVSHARE_QUALITY_POLL_SECONDS="0", GOVSHARE_QUALITY_SCHEDULE_MINUTES="0")
    env.pop("GOVSHARE_DATABASE_URL", None)
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "govshare"), "serve", "--port", str(port),
         "--workers", "1"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 300
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the server did not start") from None
                time.sleep(0.5)
        auth = f"Authorization: Bearer {token}\r\n"
        rows, out = [], {}
        for label, path, headers in (
                ("/healthz", "/healthz", ""),
                ("page of 20, q=人口", "/api/v1/resources?q=%E4%BA%BA%E5%8F%A3&size=20", auth),
                ("page of 20, browsing", "/api/v1/resources?size=20", auth),
                ("/healthz (again)", "/healthz", "")):
            asyncio.run(_hammer(port, path, headers, 1.0, 8))  # warm up
            before = _cpu_of(server.pid)
            done, errors = asyncio.run(_hammer(port, path, headers, seconds, 8))
            spent = _cpu_of(server.pid) - before
            out[label] = done / seconds
            out[label + " per CPU-second"] = done / max(spent, 1e-9)
            rows.append([label, f"{done / seconds:,.0f}", f"{done / max(spent, 1e-9):,.0f}",
                         f"{spent / max(done, 1) * 1000:.2f}", errors])
        print_table(f"HTTP, one worker, 8 connections, {seconds:g} s each (the server's own "
                    "CPU time: what a request costs whatever else runs on the machine)",
                    ["request", "req/s", "req per server CPU-second", "server CPU ms/req",
                     "errors"], rows)
        floor = (out["/healthz"] + out["/healthz (again)"]) / 2
        print(f"page of 20 / healthz: {out['page of 20, q=人口'] / floor:.2f} (query), "
              f"{out['page of 20, browsing'] / floor:.2f} (browsing)")
        return out
    finally:
        server.terminate()
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_catalog_args(parser)
    parser.add_argument("--repeat", type=int, default=5, help="timed runs per query")
    parser.add_argument("--no-http", action="store_true", help="skip the server part")
    parser.add_argument("--reuse-index", action="store_true",
                        help="with --data-dir: keep the index built by an earlier run")
    parser.add_argument("--no-like", action="store_true", help="skip the LIKE baseline")
    parser.add_argument("--generate-only", action="store_true",
                        help="with --data-dir: generate the catalog now, measure in a later run")
    args = parser.parse_args()
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    with generated_catalog(args, _build) as (data_dir, _n):
        from kernel import db

        with Session(db.get_engine()) as session:
            if not (data_dir / "bench-token").exists():
                (data_dir / "bench-token").write_text(_token(session))
            token = (data_dir / "bench-token").read_text()
            _report_size(session, data_dir)
            if args.generate_only:
                return
            built = _reused_index() if args.reuse_index else _index(data_dir)
            figures = run_queries(session, args.repeat, baseline=not args.no_like)
            worst_browse, worst_browse_cpu = run_browse(session, args.repeat)
        db.reset_engines()
        http = {} if args.no_http else run_http(data_dir, token)
        print(f"\ntargets: p95 {figures['p95']:.1f} ms wall, {figures['p95_cpu']:.1f} ms CPU "
              f"(<= 25), slowest browse {worst_browse:.1f} ms wall, {worst_browse_cpu:.1f} ms "
              f"CPU (<= 50), index {built['bytes']:,.0f} B/resource "
              f"(<= 2,048), indexing {built['rate']:,.0f}/s, "
              f"{built['cpu_rate']:,.0f} per CPU-second (>= 5,000/s)"
              + (f", page of 20 {http['page of 20, q=人口']:,.0f} req/s (>= 300)"
                 if http else ""))


if __name__ == "__main__":
    main()
