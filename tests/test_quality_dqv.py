"""The DCAT-AP export carries each resource's scores as W3C DQV measurements, and the whole
export passes the DCAT-AP 3.0.0 SHACL shapes (../shared/reference) with zero violations."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from kernel.identity import Role
from tests.conftest import World
from tests.test_quality_support import API, people, quiet_quality, register, run_queued

__all__ = ["quiet_quality"]
SHAPES = Path(__file__).resolve().parents[2] / "shared" / "reference" / "dcat-ap-3.0.0-shacl.ttl"
DQV = "http://www.w3.org/ns/dqv#"


@pytest.mark.usefixtures("quiet_quality")
def test_the_export_carries_dqv_and_passes_the_dcat_ap_shapes(client: TestClient,
                                                              world: World) -> None:
    if not SHAPES.is_file():
        pytest.skip(f"the DCAT-AP 3.0.0 SHACL shapes are not here ({SHAPES}): ../shared is "
                    "absent on this machine")
    import rdflib
    from pyshacl import validate

    scored = register(client, world, people(6))
    register(client, world, people(3), name="未评分资源", name_en="Not scored yet")
    run_queued()
    # ... and a second resource registered after the run: in the catalog, not scored.
    register(client, world, people(2), name="新登记资源", name_en="Registered later")
    r = client.get(f"{API}/catalog.jsonld", headers=world.headers("SCJG", Role.requester))
    assert r.status_code == 200
    doc = r.json()
    by_code = {d["dct:identifier"]: d for d in doc["dcat:dataset"]}
    measurements = by_code[scored]["dqv:hasQualityMeasurement"]
    names = sorted(m["dqv:isMeasurementOf"]["@id"].rsplit("-", 1)[1] for m in measurements)
    # A key (id_number) and an ID/birth-date pair: every dimension is scored.
    assert names == ["completeness", "consistency", "freshness", "overall", "uniqueness",
                     "validity"]
    score = client.get(f"{API}/quality/resources/{scored}/score",
                       headers=world.headers("SCJG", Role.requester)).json()
    overall = next(m for m in measurements if m["@id"].endswith("#overall"))
    assert overall["dqv:value"]["@value"] == score["overall"]
    assert overall["prov:wasDerivedFrom"]["@id"].endswith(f"/log/receipts/{score['log_entry']}")
    assert "dqv:hasQualityMeasurement" not in by_code[max(by_code)]  # registered later

    graph = rdflib.Graph().parse(data=json.dumps(doc), format="json-ld")
    shapes = rdflib.Graph().parse(SHAPES, format="turtle")
    typed = set(graph.subjects(rdflib.RDF.type, rdflib.URIRef(DQV + "QualityMeasurement")))
    assert len(typed) == 2 * 6  # two scored resources, six measurements each
    conforms, _, text = validate(graph, shacl_graph=shapes, inference="none",
                                 allow_warnings=True)
    assert conforms, text
