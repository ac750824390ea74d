"""Catalog exports: DCAT-AP JSON-LD (expanded offline with PyLD) and injection-safe CSV."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from pyld import jsonld
from sqlmodel import Session

from catalog.export import catalog_csv, dcat_jsonld, safe_cell
from catalog.models import (
    Category,
    DataItem,
    ItemType,
    Resource,
    ResourceStatus,
    SecurityLevel,
    Sensitivity,
    SharingType,
    UpdateCycle,
)
from govshare import migrate
from kernel import db, identity

DCAT = "http://www.w3.org/ns/dcat#"
DCT = "http://purl.org/dc/terms/"
FOAF = "http://xmlns.com/foaf/0.1/"
BASE = "https://govshare.example.gov.cn"


@pytest.fixture
def session(data_dir: Path) -> Iterator[Session]:
    migrate.upgrade()
    with db.session_scope() as s:
        identity.create_department(s, code="GA", name_zh="市公安局",
                                   name_en="Public Security Bureau")
        yield s


def add(session: Session, code: str, name: str, **fields: Any) -> Resource:
    values: dict[str, Any] = {
        "name_en": "", "category": Category.population, "sharing_type": SharingType.conditional,
        "update_cycle": UpdateCycle.daily, "security_level": SecurityLevel.general,
        "provider_id": identity.get_department(session, "GA").id,
        "items": [DataItem(position=1, name="id_card_no", title="身份证号码",
                           title_en="ID card number", type=ItemType.string,
                           sensitivity=Sensitivity.sensitive_personal, is_key=True),
                  DataItem(position=2, name="person_name", title="姓名", type=ItemType.string,
                           sensitivity=Sensitivity.personal)],
        **fields,
    }
    resource = Resource(code=code, name=name, **values)
    session.add(resource)
    session.flush()
    return resource


def _offline(url: str, options: dict[str, Any] | None = None) -> Any:
    raise AssertionError(f"JSON-LD processing tried to fetch {url}")


def expand(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return list(jsonld.expand(doc, {"documentLoader": _offline}))


def datasets(expanded: list[dict[str, Any]]) -> list[dict[str, Any]]:
    catalog = expanded[0]
    assert catalog["@type"] == [DCAT + "Catalog"]
    return list(catalog[DCAT + "dataset"])


# --- JSON-LD ----------------------------------------------------------------------------------


def test_dcat_expands_offline_with_every_dataset(session: Session) -> None:
    add(session, "GA-001", "人口基础信息", name_en="Basic population information",
        summary="全市户籍人口", keywords=["人口", "户籍"])
    add(session, "GA-002", "居民身份证信息", update_cycle=UpdateCycle.realtime,
        sharing_type=SharingType.unconditional)
    add(session, "GA-003", "已撤销的资源", status=ResourceStatus.withdrawn)
    found = datasets(expand(dcat_jsonld(session, BASE + "/")))
    assert all(d["@type"] == [DCAT + "Dataset"] for d in found)
    assert [d[DCT + "identifier"][0]["@value"] for d in found] == ["GA-001", "GA-002"]


def test_dcat_dataset_fields(session: Session) -> None:
    add(session, "GA-001", "人口基础信息", name_en="Basic population information",
        summary="全市户籍人口", keywords=["人口", "户籍"], published_at=date(2024, 3, 1),
        last_data_update=datetime(2024, 5, 2, 8, 30, tzinfo=UTC),
        sharing_type=SharingType.not_shareable, security_level=SecurityLevel.important)
    (dataset,) = datasets(expand(dcat_jsonld(session, BASE)))
    titles = {t["@language"]: t["@value"] for t in dataset[DCT + "title"]}
    assert titles == {"zh": "人口基础信息", "en": "Basic population information"}
    assert dataset[DCT + "description"] == [{"@value": "全市户籍人口", "@language": "zh"}]
    assert sorted(k["@value"] for k in dataset[DCAT + "keyword"]) == ["人口", "户籍"]
    assert dataset["@id"] == f"{BASE}/api/v1/resources/GA-001"
    (publisher,) = dataset[DCT + "publisher"]
    assert publisher["@type"] == [FOAF + "Organization", FOAF + "Agent"]
    assert {n["@value"] for n in publisher[FOAF + "name"]} == {"市公安局",
                                                                "Public Security Bureau"}
    assert dataset[DCT + "issued"] == [{"@value": "2024-03-01",
                                        "@type": "http://www.w3.org/2001/XMLSchema#date"}]
    assert dataset[DCT + "modified"][0]["@value"].startswith("2024-05-02T08:30:00")
    # Typed, as the DCAT-AP 3.0.0 SHACL shapes want (tests/test_quality_dqv.py runs them).
    assert dataset[DCT + "accrualPeriodicity"] == [
        {"@id": "http://publications.europa.eu/resource/authority/frequency/DAILY",
         "@type": [DCT + "Frequency"]}]
    assert dataset[DCT + "accessRights"] == [
        {"@id": "http://publications.europa.eu/resource/authority/access-right/NON_PUBLIC",
         "@type": [DCT + "RightsStatement"]}]
    themes = [t["@id"] for t in dataset[DCAT + "theme"]]
    assert f"{BASE}/api/v1/vocabulary#category-101" in themes
    (distribution,) = dataset[DCAT + "distribution"]
    assert distribution[DCAT + "accessURL"] == [
        {"@id": f"{BASE}/api/v1/resources/GA-001",
         "@type": ["http://www.w3.org/2000/01/rdf-schema#Resource"]}]


def test_dcat_govshare_terms(session: Session) -> None:
    add(session, "GA-001", "人口基础信息", security_level=SecurityLevel.core)
    (dataset,) = datasets(expand(dcat_jsonld(session, BASE)))
    gs = "https://govshare.example/ns#"
    assert dataset[gs + "securityLevel"] == [{"@value": "core"}]
    items = dataset[gs + "dataItems"][0]["@list"]  # in column order
    assert [i[gs + "name"][0]["@value"] for i in items] == ["id_card_no", "person_name"]
    assert items[0][gs + "sensitivity"] == [{"@value": "sensitive_personal"}]
    assert items[0][gs + "type"] == [{"@value": "string"}]


def test_empty_catalog_is_still_a_catalog(session: Session) -> None:
    doc = dcat_jsonld(session, BASE)
    assert doc["dcat:dataset"] == []
    assert expand(doc)[0]["@type"] == [DCAT + "Catalog"]


# --- CSV --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "expected"), [
    ("=1+1", "'=1+1"),
    ("+86 138", "'+86 138"),
    ("-2", "'-2"),
    ("@SUM(A1)", "'@SUM(A1)"),
    ("\tlead", "'\tlead"),
    ("\rlead", "'\rlead"),
    ("人口=1", "人口=1"),  # only a leading character counts
    ("a-b", "a-b"),
    ("", ""),
    (None, ""),
    (3, "3"),
    (92.5, "92.5"),
    (date(2024, 1, 2), "2024-01-02"),
])
def test_safe_cell(value: object, expected: str) -> None:
    assert safe_cell(value) == expected


def read_csv(chunks: Iterator[str]) -> list[list[str]]:
    text = "".join(chunks)
    assert text.startswith("\ufeff")  # for Excel
    return list(csv.reader(io.StringIO(text.removeprefix("\ufeff"), newline="")))


def test_csv_round_trips_chinese_and_neutralises_formulas(session: Session) -> None:
    add(session, "GA-001", "人口基础信息", name_en="Basic population, \"quoted\"",
        summary="第一行\n第二行", keywords=["人口", "户籍"], quality_score=91.5)
    add(session, "GA-002", '=HYPERLINK("http://evil.example","点击")', keywords=["+cmd"],
        summary="@SUM(1)", name_en="-1")
    add(session, "GA-003", "已撤销", status=ResourceStatus.withdrawn)
    header, first, second = read_csv(catalog_csv(session))
    row = dict(zip(header, first, strict=True))
    assert header[0] == "code"
    assert row["name"] == "人口基础信息"
    assert row["name_en"] == 'Basic population, "quoted"'
    assert row["summary"] == "第一行\n第二行"
    assert row["provider_name"] == "市公安局"
    assert row["category_name"] == "人口基础信息"
    assert row["keywords"] == "人口; 户籍"
    assert row["quality_score"] == "91.5"
    assert row["items"] == "id_card_no(身份证号码); person_name(姓名)"
    evil = dict(zip(header, second, strict=True))
    assert evil["name"] == '\'=HYPERLINK("http://evil.example","点击")'
    assert evil["keywords"] == "'+cmd"
    assert evil["summary"] == "'@SUM(1)"
    assert evil["name_en"] == "'-1"


def test_csv_streams_row_by_row(session: Session) -> None:
    for i in range(3):
        add(session, f"GA-{i:03d}", f"资源{i}")
    chunks = list(catalog_csv(session, bom=False))
    assert len(chunks) == 4  # header and one chunk per resource
    assert chunks[0].startswith("code,name,")
    assert all(c.endswith("\r\n") for c in chunks)
