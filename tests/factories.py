"""Small, valid resources for tests: metadata and matching data files."""

import csv
import io
import json
from typing import Any

from stdnum.cn import ric

POPULATION_ITEMS: list[dict[str, Any]] = [
    {"name": "id_number", "title": "公民身份号码", "title_en": "Resident ID number",
     "type": "string", "required": True, "is_key": True, "sensitivity": "sensitive_personal",
     "kind": "resident_id"},
    {"name": "name", "title": "姓名", "title_en": "Name", "type": "string", "required": True,
     "sensitivity": "personal", "kind": "person_name"},
    {"name": "birth_date", "title": "出生日期", "title_en": "Birth date", "type": "date",
     "sensitivity": "personal", "kind": "birth_date"},
    {"name": "household_size", "title": "户内人数", "type": "integer"},
]


def population_meta(**overrides: Any) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "name": "人口基础信息", "name_en": "Basic population information",
        "summary": "全市户籍人口的基础信息", "summary_en": "Registered residents of the city",
        "category": "101", "keywords": ["人口", "户籍"], "items": POPULATION_ITEMS,
        "sharing_type": "conditional", "sharing_condition": "用于政务服务身份核验",
        "update_cycle": "daily", "security_level": "important", "date_item": None,
    }
    meta.update(overrides)
    return meta


def resident_id(n: int) -> str:
    body = f"110101{1950 + n % 50:04d}{1 + n % 12:02d}{1 + n % 28:02d}{n % 1000:03d}"
    return body + ric.calc_check_digit(body + "0")  # stdnum expects a placeholder check digit


def population_rows(n: int = 5) -> list[dict[str, Any]]:
    return [{"id_number": resident_id(i), "name": f"张{i}",
             "birth_date": f"{1950 + i % 50:04d}-{1 + i % 12:02d}-{1 + i % 28:02d}",
             "household_size": 1 + i % 5} for i in range(n)]


def to_csv(rows: list[dict[str, Any]], columns: list[str] | None = None) -> bytes:
    columns = columns or list(rows[0])
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue().encode()


def to_jsonl(rows: list[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode()


def upload(meta: dict[str, Any], data: bytes, filename: str = "data.csv", *,
           confirm_duplicate: bool = False) -> dict[str, Any]:
    """Keyword arguments for TestClient.post to /api/v1/resources. ``confirm_duplicate``: a
    test that means a second resource close to one of the same department says so, as a
    publisher must (catalog.similar)."""
    form = {"metadata": json.dumps(meta, ensure_ascii=False)}
    if confirm_duplicate:
        form["confirm_duplicate"] = "true"
    return {"data": form, "files": {"file": (filename, data, "application/octet-stream")}}
