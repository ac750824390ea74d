"""Scores anyone can re-check: each finished run's entry in the signed log carries the suite's
and the data's content hashes, the GX version and the scores; ``govshare quality verify``
re-runs it and says whether it reproduces, and what changed when it does not."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import duckdb
import pytest
from fastapi.testclient import TestClient
from sqlmodel import select
from typer.testing import CliRunner

from catalog.models import Resource
from catalog.service import segments_for
from kernel import db
from kernel.identity import Role
from quality import attest
from quality.models import QualityRun, QualitySuite
from tests.conftest import World
from tests.test_quality_support import API, people, quiet_quality, register, run_queued
from translog.canonical import payload_digest
from translog.models import LogEntry

__all__ = ["quiet_quality"]
pytestmark = pytest.mark.usefixtures("quiet_quality")


def _scored(client: TestClient, world: World) -> tuple[str, int]:
    code = register(client, world, people(12))
    run_queued()
    runs = client.get(f"{API}/quality/resources/{code}/runs",
                      headers=world.headers("GA", Role.publisher)).json()
    return code, int(runs[0]["id"])


def _verify(run_id: int) -> tuple[int, str]:
    from govshare.cli import app

    result = CliRunner().invoke(app, ["quality", "verify", str(run_id)])
    return result.exit_code, result.output


def test_a_finished_run_is_in_the_signed_log_and_reproduces(client: TestClient,
                                                            world: World) -> None:
    code, run_id = _scored(client, world)
    with db.session_scope(write=False) as session:
        run = session.get(QualityRun, run_id)
        assert run is not None and run.attestation is not None
        entry = session.exec(select(LogEntry).where(LogEntry.seq == run.log_seq)).one()
        suite = session.exec(select(QualitySuite).where(
            QualitySuite.resource_id == run.resource_id,
            QualitySuite.version == run.suite_version)).one()
        att = run.attestation
    assert entry.event_type == "quality.run_finished" and entry.subjects["run"] == str(run_id)
    assert entry.payload_sha256 == payload_digest(att)
    assert entry.subjects["suite_sha256"] == att["suite_sha256"] == suite.fingerprint
    assert entry.subjects["gx"] == att["gx_version"] and att["gx_version"].startswith("1.")
    score = client.get(f"{API}/quality/resources/{code}/score",
                       headers=world.headers("SCJG", Role.requester)).json()
    assert f"overall={score['overall']:g}" in entry.subjects["scores"]
    assert score["log_entry"] == entry.seq
    exit_code, output = _verify(run_id)
    assert exit_code == 0, output
    assert "reproduces" in output and f"#{entry.seq}" in output


def test_verify_says_when_the_data_was_changed(client: TestClient, world: World,
                                               tmp_path: Path) -> None:
    code, run_id = _scored(client, world)
    with db.session_scope(write=False) as session:
        resource = session.exec(select(Resource).where(Resource.code == code)).one()
        [segment] = segments_for(session, resource)
    # Someone edits the stored data behind our back (on a copy put in its place: this
    # process may still hold the original open).
    edited = tmp_path / "edited.duckdb"
    shutil.copyfile(segment, edited)
    con = duckdb.connect(str(edited))
    con.execute("UPDATE data SET mobile = 'not a phone' WHERE household_size = 1")
    con.close()
    os.replace(edited, segment)
    exit_code, output = _verify(run_id)
    assert exit_code == 1, output
    assert "the data was changed since the run" in output
    assert "scores differ: validity" in output
    assert "suite was changed" not in output


def test_verify_says_when_the_suite_was_changed(client: TestClient, world: World) -> None:
    _, run_id = _scored(client, world)
    with db.session_scope() as session:
        run = session.get(QualityRun, run_id)
        assert run is not None
        suite = session.exec(select(QualitySuite).where(
            QualitySuite.resource_id == run.resource_id,
            QualitySuite.version == run.suite_version)).one()
        changed = dict(suite.suite)
        changed["expectations"] = [e for e in changed["expectations"]
                                   if e["meta"]["rule"] != "mobile:mobile"]
        suite.suite = changed
        session.add(suite)
    with db.session_scope(write=False) as session:
        verdict = attest.verify(session, run_id)
    assert not verdict.reproduced
    assert any("suite was changed" in f for f in verdict.findings), verdict.findings
    assert not any("data was changed" in f for f in verdict.findings)
