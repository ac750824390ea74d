"""Quality scores in the DCAT-AP export, as W3C DQV (Data Quality Vocabulary).

Each dataset with a score gets ``dqv:hasQualityMeasurement``: one ``dqv:QualityMeasurement``
per scored dimension and one for the overall score, each of a ``dqv:Metric`` (in a
``dqv:Dimension``), with its value, the run's time (``prov:generatedAtTime``) and a link to the
run's entry in the signed log (``prov:wasDerivedFrom``), so a harvester can re-check it.
Registered with the catalog's export by the composition root (``govshare.wiring``); the
catalog does not know quality.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import func
from sqlmodel import Session, col, select

from catalog.models import Resource
from quality.models import QualityRun, QualityScore
from quality.rules import Dimension

CONTEXT: dict[str, Any] = {
    "dqv": "http://www.w3.org/ns/dqv#",
    "prov": "http://www.w3.org/ns/prov#",
}
_LABELS = {"freshness": ("时效性", "Freshness"), "completeness": ("完整性", "Completeness"),
           "validity": ("有效性", "Validity"), "uniqueness": ("唯一性", "Uniqueness"),
           "consistency": ("一致性", "Consistency"), "overall": ("综合得分", "Overall score")}


def _metric(name: str, base: str) -> dict[str, Any]:
    zh, en = _LABELS[name]
    vocabulary = f"{base}/api/v1/quality/vocabulary"
    return {"@id": f"{vocabulary}#metric-{name}", "@type": "dqv:Metric",
            "skos:prefLabel": [{"@value": zh, "@language": "zh"},
                               {"@value": en, "@language": "en"}],
            "dqv:expectedDataType": {"@id": "http://www.w3.org/2001/XMLSchema#double"},
            "dqv:inDimension": {"@id": f"{vocabulary}#dimension-{name}",
                                "@type": "dqv:Dimension",
                                "skos:prefLabel": [{"@value": zh, "@language": "zh"},
                                                   {"@value": en, "@language": "en"}]}}


def measurements(session: Session, resources: Sequence[Resource],
                 base: str) -> Mapping[str, Mapping[str, Any]]:
    """Per resource code: its newest score as DQV measurements."""
    ids = {r.id: r for r in resources if r.id is not None}
    if not ids:
        return {}
    newest = select(func.max(QualityScore.id)).where(
        col(QualityScore.resource_id).in_(list(ids))).group_by(col(QualityScore.resource_id))
    rows = session.exec(select(QualityScore, QualityRun)
                        .join(QualityRun, col(QualityRun.id) == QualityScore.run_id)
                        .where(col(QualityScore.id).in_(newest)))
    out: dict[str, dict[str, Any]] = {}
    for score, run in rows:
        resource = ids[score.resource_id]
        dataset = f"{base}/api/v1/resources/{resource.code}"
        values = {d.value: getattr(score, d.value) for d in Dimension}
        values["overall"] = score.overall
        found = []
        for name, value in values.items():
            if value is None:
                continue  # not scored (e.g. freshness of an irregular resource)
            measurement: dict[str, Any] = {
                "@id": f"{base}/api/v1/quality/runs/{run.id}#{name}",
                "@type": "dqv:QualityMeasurement",
                "dqv:computedOn": {"@id": dataset},
                "dqv:isMeasurementOf": _metric(name, base),
                "dqv:value": {"@value": float(value), "@type": "xsd:double"},
                "prov:generatedAtTime": {"@value": score.scored_at.isoformat(),
                                         "@type": "xsd:dateTime"},
            }
            if run.log_seq is not None:
                measurement["prov:wasDerivedFrom"] = {
                    "@id": f"{base}/api/v1/log/receipts/{run.log_seq}"}
            found.append(measurement)
        out[resource.code] = {"dqv:hasQualityMeasurement": found}
    return out
