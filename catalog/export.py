"""The catalog for other systems: DCAT-AP JSON-LD for harvesters, CSV for people.

Both list the active resources (withdrawn ones are no longer in the catalog), ordered by code.
The JSON-LD carries its own ``@context`` so that nothing, neither we nor a consumer expanding
it, has to fetch a remote context from the internet.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import date, datetime
from typing import Any

from sqlmodel import Session, col, select

from catalog.models import (
    CATEGORY_LABELS,
    Category,
    DataItem,
    Resource,
    ResourceStatus,
    SharingType,
    UpdateCycle,
)
from kernel.identity import Department

GS = "https://govshare.example/ns#"  # govshare's own terms; same host as the problem types
EU_FREQUENCY = "http://publications.europa.eu/resource/authority/frequency/"
EU_ACCESS = "http://publications.europa.eu/resource/authority/access-right/"
EU_THEME = "http://publications.europa.eu/resource/authority/data-theme/"

CONTEXT: dict[str, Any] = {
    "dcat": "http://www.w3.org/ns/dcat#",
    "dct": "http://purl.org/dc/terms/",
    "foaf": "http://xmlns.com/foaf/0.1/",
    "skos": "http://www.w3.org/2004/02/skos/core#",
    "rdfs": "http://www.w3.org/2000/01/rdf-schema#",
    "xsd": "http://www.w3.org/2001/XMLSchema#",
    "gs": GS,
    "gs:dataItems": {"@container": "@list"},  # the order of the columns matters
}

FREQUENCIES: dict[UpdateCycle, str] = {
    UpdateCycle.realtime: "CONT",  # "continuous"
    UpdateCycle.daily: "DAILY",
    UpdateCycle.weekly: "WEEKLY",
    UpdateCycle.monthly: "MONTHLY",
    UpdateCycle.quarterly: "QUARTERLY",
    UpdateCycle.yearly: "ANNUAL",
    UpdateCycle.irregular: "IRREG",
}

# Access among the platform's users (government departments), the catalog's audience:
# unconditional sharing is open to all of them, conditional needs an approved application.
ACCESS_RIGHTS: dict[SharingType, str] = {
    SharingType.unconditional: "PUBLIC",
    SharingType.conditional: "RESTRICTED",
    SharingType.not_shareable: "NON_PUBLIC",
}

# The EU data themes' labels (publications.europa.eu authority table, en), so that the
# export is self-contained: DCAT-AP asks for a concept's label.
EU_THEME_LABELS = {"SOCI": "Population and society", "ECON": "Economy and finance",
                   "ENVI": "Environment", "GOVE": "Government and public sector",
                   "HEAL": "Health", "EDUC": "Education, culture and sport",
                   "REGI": "Regions and cities", "TRAN": "Transport"}

# The closest EU data theme per category, next to govshare's own category concept.
EU_THEMES: dict[Category, str] = {
    Category.population: "SOCI", Category.legal_entity: "ECON",
    Category.natural_resources: "ENVI", Category.macro_economy: "ECON",
    Category.e_license: "GOVE", Category.social_security: "SOCI", Category.health: "HEAL",
    Category.tax: "ECON", Category.education: "EDUC", Category.housing: "REGI",
    Category.transport: "TRAN", Category.market: "ECON", Category.civil_affairs: "SOCI",
    Category.credit: "ECON", Category.departmental: "GOVE",
}

_BATCH = 500


def _active_resources(session: Session) -> Iterator[Resource]:
    """Active resources by code, a batch at a time (items come with each batch)."""
    last = ""
    while True:
        batch = list(session.exec(
            select(Resource)
            .where(Resource.status == ResourceStatus.active, col(Resource.code) > last)
            .order_by(col(Resource.code)).limit(_BATCH)
        ))
        if not batch:
            return
        yield from batch
        last = batch[-1].code


def _departments(session: Session) -> dict[int, Department]:
    return {d.id or 0: d for d in session.exec(select(Department))}


# --- DCAT-AP JSON-LD --------------------------------------------------------------------------

# Statements about datasets that other contexts make (e.g. quality's W3C DQV measurements):
# the catalog must not import them, so the composition root registers them here. A
# contributor gets a batch of resources and the base URL and returns, per resource code, the
# extra JSON-LD properties of its dcat:Dataset; its context terms join the document's.
DatasetContributor = Callable[[Session, Sequence[Resource], str], Mapping[str, Mapping[str, Any]]]
_contributors: list[tuple[DatasetContributor, Mapping[str, Any]]] = []


def contribute(fn: DatasetContributor, context: Mapping[str, Any] | None = None) -> None:
    """Register a contributor of extra dataset statements (idempotent)."""
    if all(existing is not fn for existing, _ in _contributors):
        _contributors.append((fn, dict(context or {})))


def _contributed(session: Session, resources: Sequence[Resource],
                 base: str) -> dict[str, dict[str, Any]]:
    extra: dict[str, dict[str, Any]] = {}
    for fn, _ in _contributors:
        for code, properties in fn(session, resources, base).items():
            extra.setdefault(code, {}).update(properties)
    return extra


def dcat_jsonld(session: Session, base_url: str) -> dict[str, Any]:
    """The whole catalog as one DCAT-AP ``dcat:Catalog`` document with an inline context."""
    base = base_url.rstrip("/")
    depts = _departments(session)
    datasets = []
    batch: list[Resource] = []
    for resource in _active_resources(session):
        batch.append(resource)
        if len(batch) == _BATCH:
            datasets += _datasets(session, batch, depts, base)
            batch = []
    datasets += _datasets(session, batch, depts, base)
    context = dict(CONTEXT)
    for _, terms in _contributors:
        context.update(terms)
    return {
        "@context": context,
        "@id": f"{base}/api/v1/catalog.jsonld",
        "@type": "dcat:Catalog",
        "dct:title": [_lang("govshare 政务数据资源目录", "zh"),
                      _lang("govshare government data catalog", "en")],
        "dct:description": [_lang("各部门登记的政务数据资源及其数据项、共享条件和质量评分", "zh"),
                            _lang("The government data resources registered by the "
                                  "departments, with their data items, sharing conditions "
                                  "and quality scores", "en")],
        # DCAT-AP asks for the catalog's publisher: the platform (its operator).
        "dct:publisher": {"@id": f"{base}/#platform", "@type": ["foaf:Organization",
                                                                "foaf:Agent"],
                          "foaf:name": [_lang("govshare 政务数据共享平台", "zh"),
                                        _lang("govshare data-sharing platform", "en")]},
        # Typed nodes below: the DCAT-AP 3.0.0 SHACL shapes check classes without inference.
        "foaf:homepage": {"@id": f"{base}/", "@type": "foaf:Document"},
        "dcat:dataset": datasets,
    }


def _datasets(session: Session, resources: list[Resource], depts: dict[int, Department],
              base: str) -> list[dict[str, Any]]:
    extra = _contributed(session, resources, base) if resources and _contributors else {}
    return [_dataset(r, depts[r.provider_id], base) | extra.get(r.code, {}) for r in resources]


def _lang(value: str, language: str) -> dict[str, str]:
    return {"@value": value, "@language": language}


def _texts(zh: str, en: str) -> list[dict[str, str]]:
    return [_lang(v, lang) for v, lang in ((zh, "zh"), (en, "en")) if v]


def _typed(value: date | datetime, xsd_type: str) -> dict[str, str]:
    return {"@value": value.isoformat(), "@type": xsd_type}


def _dataset(resource: Resource, dept: Department, base: str) -> dict[str, Any]:
    page = f"{base}/api/v1/resources/{resource.code}"
    dataset: dict[str, Any] = {
        "@id": page,
        "@type": "dcat:Dataset",
        "dct:identifier": resource.code,
        "dct:title": _texts(resource.name, resource.name_en),
        "dct:description": _texts(resource.summary, resource.summary_en),
        "dcat:keyword": list(resource.keywords),
        "dct:publisher": _publisher(dept, base),
        "dcat:theme": [_category(resource.category, base),
                       _eu_theme(EU_THEMES[resource.category])],
        "dct:issued": _typed(resource.published_at, "xsd:date"),
        "dct:accrualPeriodicity": {"@id": EU_FREQUENCY + FREQUENCIES[resource.update_cycle],
                                   "@type": "dct:Frequency"},
        "dct:accessRights": {"@id": EU_ACCESS + ACCESS_RIGHTS[resource.sharing_type],
                             "@type": "dct:RightsStatement"},
        "dcat:distribution": [{
            "@id": f"{page}#distribution",
            "@type": "dcat:Distribution",
            "dcat:accessURL": {"@id": page, "@type": "rdfs:Resource"},
            "gs:sharingMethod": resource.sharing_method.value,
        }],
        "gs:securityLevel": resource.security_level.value,
        "gs:sharingType": resource.sharing_type.value,
        "gs:sharingMethod": resource.sharing_method.value,
        "gs:dataItems": [_item(i) for i in resource.items],
    }
    if resource.last_data_update is not None:
        dataset["dct:modified"] = _typed(resource.last_data_update, "xsd:dateTime")
    if resource.sharing_condition:
        dataset["gs:sharingCondition"] = resource.sharing_condition
    return dataset


def _publisher(dept: Department, base: str) -> dict[str, Any]:
    return {
        "@id": f"{base}/api/v1/departments/{dept.code}",
        "@type": ["foaf:Organization", "foaf:Agent"],
        "dct:identifier": dept.code,
        "foaf:name": _texts(dept.name_zh, dept.name_en),
    }


def _category(category: Category, base: str) -> dict[str, Any]:
    zh, en = CATEGORY_LABELS[category]
    return {
        "@id": f"{base}/api/v1/vocabulary#category-{category.value}",
        "@type": "skos:Concept",
        "skos:notation": category.value,
        "skos:prefLabel": _texts(zh, en),
    }


def _eu_theme(code: str) -> dict[str, Any]:
    return {"@id": EU_THEME + code, "@type": "skos:Concept", "skos:notation": code,
            "skos:prefLabel": _lang(EU_THEME_LABELS[code], "en")}


def _item(item: DataItem) -> dict[str, Any]:
    out: dict[str, Any] = {
        "@type": "gs:DataItem",
        "gs:name": item.name,
        "dct:title": _texts(item.title, item.title_en),
        "gs:type": item.type.value,
        "gs:sensitivity": item.sensitivity.value,
        "gs:required": item.required,
        "gs:isKey": item.is_key,
    }
    if item.description:
        out["dct:description"] = item.description
    return out


# --- CSV --------------------------------------------------------------------------------------

# A spreadsheet runs a cell starting with these as a formula (OWASP "CSV injection").
_FORMULA_START = re.compile(r"^[=+\-@\t\r]")

CSV_COLUMNS = [
    "code", "name", "name_en", "provider_code", "provider_name", "category", "category_name",
    "sharing_type", "sharing_method", "update_cycle", "security_level", "keywords",
    "published_at", "last_data_update", "quality_score", "row_count", "items", "summary",
]


def safe_cell(value: object) -> str:
    """A cell's text, with a leading quote if a spreadsheet would take it for a formula."""
    if value is None:
        return ""
    text = value.isoformat() if isinstance(value, date | datetime) else str(value)
    return "'" + text if _FORMULA_START.match(text) else text


def catalog_csv(session: Session, *, bom: bool = True) -> Iterator[str]:
    """The active catalog as CSV text, one chunk per row, header first. ``bom``: start with a
    byte-order mark, without which Excel, what most readers open this with, garbles Chinese."""
    depts = _departments(session)
    yield ("\ufeff" if bom else "") + _csv_line(CSV_COLUMNS)
    for resource in _active_resources(session):
        yield _csv_line(safe_cell(v) for v in _csv_row(resource, depts[resource.provider_id]))


def _csv_row(r: Resource, dept: Department) -> list[object]:
    return [
        r.code, r.name, r.name_en, dept.code, dept.name_zh, r.category.value,
        r.category.label_zh, r.sharing_type.value, r.sharing_method.value,
        r.update_cycle.value, r.security_level.value, "; ".join(r.keywords),
        r.published_at, r.last_data_update, r.quality_score, r.row_count,
        "; ".join(f"{i.name}({i.title})" if i.title else i.name for i in r.items), r.summary,
    ]


def _csv_line(cells: Iterable[str]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerow(cells)  # RFC 4180 line ends
    return buffer.getvalue()
