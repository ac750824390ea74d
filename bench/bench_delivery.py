"""Delivery benchmark: desensitize-and-deliver throughput, and end-to-end sharing latency.

    python -m bench.bench_delivery [--rows 10000000] [--quick] [--repeat 1]

1. Throughput, on a table with four personal columns (resident ID → HMAC-SHA256 pseudonym,
   name and mobile → partial masking, birth date → year) and three plain ones. The baseline
   is a plain DuckDB ``COPY (SELECT * FROM data) TO 'x.parquet'`` of the same segment: the
   floor for writing the table to Parquet at all. govshare additionally masks every personal
   column, scans the written file for raw personal data, fsyncs and hashes it, signs the
   manifest and commits the delivery. Target: at most 2x the baseline.
2. Latency of an unconditional application on a 1M-row resource: file (auto-approved) →
   mask → deliver, as the API does it. Target: under 2 s.

Every contender runs in its own fresh interpreter (``bench.common.measure_in_child``), timed
after its imports, so memory and warm-up are its own.
"""

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import duckdb

from bench.common import measure_in_child, mib, print_table

ITEMS: list[dict[str, Any]] = [
    {"name": "id_number", "type": "string", "kind": "resident_id", "is_key": True,
     "sensitivity": "sensitive_personal"},
    {"name": "name", "type": "string", "kind": "person_name", "sensitivity": "personal"},
    {"name": "mobile", "type": "string", "kind": "mobile", "sensitivity": "personal"},
    {"name": "birth_date", "type": "date", "kind": "birth_date", "sensitivity": "personal"},
    {"name": "district", "type": "string"},
    {"name": "amount", "type": "decimal"},
    {"name": "visits", "type": "integer"},
]
ALL_ITEMS = [i["name"] for i in ITEMS]


def make_parquet(path: Path, rows: int) -> None:
    duckdb.connect().execute(f"""
        COPY (SELECT
            printf('4403%02d%s%04d', i % 7,
                   strftime(DATE '1940-01-01' + CAST(i % 30000 AS INTEGER), '%Y%m%d'),
                   (i // 7) % 10000) AS id_number,
            ['张','王','李','赵','欧阳'][1 + i % 5] || ['伟','芳','娜','敏','静','磊'][1 + i % 6]
                || ['', '华', '强'][1 + i % 3] AS name,
            printf('1%d%09d', 3 + i % 7, i % 1000000000) AS mobile,
            DATE '1940-01-01' + CAST(i % 30000 AS INTEGER) AS birth_date,
            ['福田区','罗湖区','南山区','宝安区','龙岗区'][1 + i % 5] AS district,
            round((i % 100000) / 7.0, 2) AS amount,
            i % 40 AS visits
        FROM range({rows}) t(i)) TO '{path}' (FORMAT parquet)""")


# --- set-up (in children: the parent never opens the database) --------------------------------

def _world(data_dir: str) -> None:
    os.environ["GOVSHARE_DATA_DIR"] = data_dir
    os.environ.setdefault("GOVSHARE_KEY_PASSPHRASE", "bench-passphrase")
    from govshare.migrate import upgrade
    from kernel import db, identity
    from kernel.identity import Role
    from translog import service as log_service

    upgrade()
    log_service.subscribe()
    with db.session_scope() as session:
        if identity.list_departments(session):
            return
        identity.create_department(session, code="GA", name_zh="市公安局", name_en="PSB")
        identity.create_user(session, username="pub", display_name="pub", department="GA",
                             roles=[Role.publisher])
        identity.create_user(session, username="appr", display_name="appr", department="GA",
                             roles=[Role.approver])


def register(data_dir: str, parquet: str, sharing_type: str) -> str:
    """Register the resource from a Parquet file; returns its code."""
    _world(data_dir)
    from catalog import service
    from catalog.schemas import ResourceIn
    from kernel import db
    from kernel.auth import principal_of

    meta = ResourceIn.model_validate({
        "name": "人口基础信息", "category": "101", "items": ITEMS, "update_cycle": "daily",
        "sharing_type": sharing_type, "sharing_condition": "依申请"})
    with db.session_scope() as session:
        return service.register_resource(session, principal_of(session, "pub"), meta,
                                         Path(parquet), filename="people.parquet").code


def _requester(session: Any, dept: str) -> Any:
    """A requester of department ``dept`` (created on first use)."""
    from kernel import identity
    from kernel.auth import principal_of
    from kernel.identity import Role

    name = f"req-{dept.lower()}"
    if not any(d.code == dept for d in identity.list_departments(session)):
        identity.create_department(session, code=dept, name_zh=dept, name_en=dept)
        identity.create_user(session, username=name, display_name=name, department=dept,
                             roles=[Role.requester])
        session.flush()
    return principal_of(session, name)


def _application(code: str) -> Any:
    from datetime import date, timedelta

    from access.schemas import ApplicationIn

    return ApplicationIn.model_validate({
        "resource": code, "purpose": "基准测试用途说明", "legal_basis": "基准测试",
        "items": ALL_ITEMS, "period_end": (date.today() + timedelta(days=30)).isoformat()})


def approve(data_dir: str, code: str, dept: str) -> int:
    """File and approve (default plan) without delivering; returns the application id."""
    _world(data_dir)
    from access import service as svc
    from access.schemas import ApprovalIn
    from kernel import db
    from kernel.auth import principal_of

    with db.session_scope() as session:
        app = svc.file_application(session, _requester(session, dept), _application(code))
        svc.approve(session, principal_of(session, "appr"), app.id or 0, ApprovalIn())
        return app.id or 0


# --- contenders: each times only its own work (imports and migrations excluded) -------------

def baseline(data_dir: str, code: str, out: str) -> dict[str, Any]:
    """Plain DuckDB: the same segment(s), every column as stored, to Parquet."""
    os.environ["GOVSHARE_DATA_DIR"] = data_dir
    from catalog.service import get_resource, segments_for
    from catalog.warehouse import open_data
    from kernel import db

    with db.session_scope(write=False) as session:
        segments = segments_for(session, get_resource(session, code))
    t = time.perf_counter()
    with open_data(segments) as con:
        row = con.execute(f"COPY (SELECT * FROM data) TO '{out}' (FORMAT parquet)").fetchone()
    return {"seconds": time.perf_counter() - t, "rows": int(row[0]) if row else 0}


def hmac_only(data_dir: str, code: str) -> dict[str, Any]:
    """Reference: the HMAC-SHA256 of the ID column alone, computed and discarded, the way
    deliveries compute it (``access.native.copy`` when DuckDB's C API is there)."""
    os.environ["GOVSHARE_DATA_DIR"] = data_dir
    from access import native, pseudonym
    from catalog.models import ItemKind
    from catalog.service import get_resource, segments_for
    from catalog.warehouse import MEMORY_LIMIT_SQL, data_view_sql, open_data
    from kernel import db

    with db.session_scope(write=False) as session:
        segments = segments_for(session, get_resource(session, code))
    lib, key = native.load(), os.urandom(32)
    expr = pseudonym.hmac_sql('"id_number"', ItemKind.resident_id)
    query = f"SELECT count(*), min({expr}) FROM data"
    t = time.perf_counter()
    if lib is not None and lib.api is not None:
        rows = native.copy(lib, key, pseudonym.functions(),
                           [MEMORY_LIMIT_SQL, *data_view_sql(segments), query], 32)
    else:
        with open_data(segments) as con:
            pseudonym.install(con, key)
            row = con.execute(query).fetchone()
            rows = int(row[0]) if row else 0
    return {"seconds": time.perf_counter() - t, "rows": rows}


def govshare_deliver(data_dir: str, app_id: str) -> dict[str, Any]:
    """The delivery step of an approved application: mask, check, write, sign, commit."""
    _world(data_dir)
    from access import delivery, native

    native.load()  # the server does this at startup (govshare.app.lifespan)
    t = time.perf_counter()
    rows = delivery.deliver(int(app_id)).row_count
    return {"seconds": time.perf_counter() - t, "rows": rows}


def end_to_end(data_dir: str, code: str) -> dict[str, Any]:
    """File an application for an unconditional resource and deliver it, as the API does:
    the filing transaction (automatic approval included) commits, then the delivery runs."""
    _world(data_dir)
    from access import delivery, native
    from access import service as svc
    from kernel import db

    with db.session_scope() as session:
        _requester(session, "SCJG")
    native.load()  # the server does this at startup (govshare.app.lifespan)
    t = time.perf_counter()
    with db.session_scope() as session:
        app = svc.file_application(session, _requester(session, "SCJG"), _application(code))
        app_id = app.id or 0
    filed = time.perf_counter() - t
    done = delivery.deliver(app_id)
    return {"rows": done.row_count, "filed_and_approved_s": filed,
            "seconds": time.perf_counter() - t}


# --- the run ----------------------------------------------------------------------------------

def _child(func: str, *args: str) -> dict[str, Any]:
    """Run in a fresh interpreter; 'seconds' is the contender's own timing, if it has one."""
    run = measure_in_child("bench.bench_delivery", func, *args)
    result = run["result"]
    if isinstance(result, dict) and "seconds" in result:
        return {**result, "peak_rss": run["peak_rss"]}
    return {"result": result, "seconds": run["seconds"], "peak_rss": run["peak_rss"]}


def throughput(work: Path, rows: int, repeat: int) -> dict[str, Any]:
    parquet = work / "people.parquet"
    make_parquet(parquet, rows)
    data = str(work / "gs")
    code = _child("register", data, str(parquet), "conditional")["result"]
    base_runs, ours_runs, hmac_runs = [], [], []
    for i in range(repeat):
        out = str(work / "baseline.parquet")
        base_runs.append(_child("baseline", data, code, out))
        Path(out).unlink(missing_ok=True)
        app_id = _child("approve", data, code, f"R{i}")["result"]
        ours_runs.append(_child("govshare_deliver", data, str(app_id)))
        hmac_runs.append(_child("hmac_only", data, code))
    base, ours, mac = (min(runs, key=lambda r: r["seconds"])
                       for runs in (base_runs, ours_runs, hmac_runs))
    assert base["rows"] == ours["rows"] == mac["rows"] == rows, (base, ours, mac)
    return {"rows": rows, "baseline": base, "govshare": ours, "hmac_only": mac,
            "ratio": ours["seconds"] / base["seconds"]}


def latency(work: Path, rows: int) -> dict[str, Any]:
    parquet = work / "small.parquet"
    make_parquet(parquet, rows)
    data = str(work / "e2e")
    code = _child("register", data, str(parquet), "unconditional")["result"]
    return _child("end_to_end", data, code)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--quick", action="store_true", help="1M rows")
    parser.add_argument("--repeat", type=int, default=1, help="runs per contender (min kept)")
    args = parser.parse_args()
    rows = 1_000_000 if args.quick else args.rows
    work = Path(tempfile.mkdtemp(prefix="govshare-bench-delivery-"))
    try:
        t = throughput(work, rows, args.repeat)
        base, ours, mac = t["baseline"], t["govshare"], t["hmac_only"]

        def line(name: str, r: dict[str, Any]) -> list[str]:
            return [name, f"{rows / r['seconds']:,.0f}", f"{r['seconds']:.2f}",
                    mib(r["peak_rss"]), f"{r['seconds'] / base['seconds']:.2f}"]

        print_table(f"Desensitize and deliver {rows:,} rows (4 personal columns)",
                    ["contender", "rows/s", "seconds", "peak RSS", "time ratio"],
                    [line("duckdb COPY to Parquet (baseline)", base),
                     line("govshare delivery (target <= 2.00)", ours),
                     line("  reference: HMAC-SHA256 of the ID column alone", mac)])
        e2e = latency(work, 1_000_000)
        print_table("Unconditional application on a 1M-row resource (target < 2 s)",
                    ["step", "seconds"], [
                        ["file + automatic approval (committed)",
                         f"{e2e['filed_and_approved_s']:.3f}"],
                        ["... + mask, check, write, sign, deliver", f"{e2e['seconds']:.3f}"]])
        print(json.dumps({"throughput": t, "end_to_end": e2e}))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
