"""Every read is on record: previews of raw rows, failing-row samples and catalog exports are
log entries, and a department lists from the log who read its resources and when."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from kernel.identity import Role
from tests.conftest import World
from tests.test_quality_support import (  # noqa: F401  (quiet_quality: a fixture)
    API,
    people,
    quiet_quality,
    register,
    run_queued,
)
from translog import proofs


def _types(client: TestClient, world: World) -> list[str]:
    r = client.get(f"{API}/log/entries?limit=1000", headers=world.headers("SJJ", Role.auditor))
    return [e["entry"]["type"] for e in r.json()]


@pytest.mark.usefixtures("quiet_quality")
def test_reads_are_entries_and_the_provider_lists_them(client: TestClient, world: World) -> None:
    code = register(client, world, people(12))
    run_queued()
    publisher = world.headers("GA", Role.publisher)
    assert client.get(f"{API}/resources/{code}/preview?limit=5", headers=publisher) \
        .status_code == 200
    runs = client.get(f"{API}/quality/resources/{code}/runs", headers=publisher).json()
    auditor = world.headers("SJJ", Role.auditor)
    detail = client.get(f"{API}/quality/runs/{runs[0]['id']}", headers=auditor)
    assert detail.status_code == 200
    # the run's receipt: its quality.run_finished entry in the published checkpoint
    keys_doc = client.get("/.well-known/govshare-log-keys").json()
    checked = proofs.check(detail.json()["receipt"],
                           proofs.trust_from_document(keys_doc).logs, [], 0)
    assert checked.entry["type"] == "quality.run_finished"
    subjects = checked.entry["subjects"]
    assert (subjects["resource"], subjects["run"]) == (code, str(runs[0]["id"]))
    assert client.get(f"{API}/quality/resources/{code}/report", headers=publisher) \
        .status_code == 200
    leader = world.headers("SCJG", Role.leader)
    assert client.get(f"{API}/catalog.csv", headers=leader).status_code == 200
    types = _types(client, world)
    assert types.count("resource.previewed") == 1 and types.count("catalog.exported") == 1
    assert types.count("quality.samples_viewed") == 2

    # any member of the provider department lists the reads of its resources
    r = client.get(f"{API}/log/reads", headers=world.headers("GA", Role.requester))
    assert r.status_code == 200, r.text
    reads = [(x["type"], x["reader"], x["reader_department"], x["resource"]) for x in r.json()]
    assert reads == [("resource.previewed", "ga-publisher", "GA", code),
                     ("quality.samples_viewed", "sjj-auditor", "SJJ", code),
                     ("quality.samples_viewed", "ga-publisher", "GA", code)]
    assert all(x["entry"]["seq"] == x["seq"] for x in r.json())
    # another department sees nothing of GA's reads, and may not ask for them
    assert client.get(f"{API}/log/reads", headers=world.headers("SCJG", Role.publisher)) \
        .json() == []
    r = client.get(f"{API}/log/reads?department=GA", headers=world.headers("SCJG", Role.leader))
    assert r.status_code == 403 and r.headers["content-type"] == "application/problem+json"
    r = client.get(f"{API}/log/reads?department=GA", headers=auditor)
    assert len(r.json()) == 3


@pytest.mark.usefixtures("quiet_quality")
def test_failing_rows_shown_with_a_score_are_a_read(client: TestClient, world: World) -> None:
    rows = people(12)
    rows[0]["id_number"] = "123"  # invalid: the validity check fails, with a masked example
    code = register(client, world, rows)
    run_queued()
    publisher = world.headers("GA", Role.publisher)
    score = client.get(f"{API}/quality/resources/{code}/score", headers=publisher).json()
    assert any(e.get("examples") for es in score["failing"].values() for e in es)
    assert _types(client, world).count("quality.samples_viewed") == 1
    # outside the provider department no rows are shown, so nothing is recorded
    outsider = client.get(f"{API}/quality/resources/{code}/score",
                          headers=world.headers("SCJG", Role.requester)).json()
    assert not any(e.get("examples") for es in outsider["failing"].values() for e in es)
    assert _types(client, world).count("quality.samples_viewed") == 1
