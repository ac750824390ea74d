"""A delivery's receipt: carried with its manifest, checked offline with public keys alone
(`govshare log check-receipt`), against a checkpoint cosigned by three witness processes."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from kernel.identity import Role
from kernel.settings import get_settings
from tests.test_access_support import (  # noqa: F401  (access_world: the aw fixture)
    AccessWorld,
    access_world,
    file_app,
    register,
)
from tests.witness_support import WitnessProcess, three_witnesses
from translog import canonical, cosigner, keys, proofs
from translog.cli import app as log_cli


@pytest.fixture
def witnessed(aw: AccessWorld, tmp_path: Path,
              monkeypatch: pytest.MonkeyPatch) -> Iterator[list[WitnessProcess]]:
    with three_witnesses("audit{}.example/witness", tmp_path, monkeypatch) as procs:
        yield procs


def _check(tmp_path: Path, document: dict[str, Any], keys_doc: dict[str, Any],
           *args: str) -> tuple[int, str]:
    (tmp_path / "manifest.json").write_text(json.dumps(document, ensure_ascii=False))
    (tmp_path / "keys.json").write_text(json.dumps(keys_doc))
    result = CliRunner().invoke(log_cli, ["check-receipt", str(tmp_path / "manifest.json"),
                                          "--public-key", str(tmp_path / "keys.json"), *args])
    return result.exit_code, result.output


def test_delivery_receipt_verifies_offline_and_a_changed_manifest_fails(
        aw: AccessWorld, witnessed: list[WitnessProcess], tmp_path: Path) -> None:
    code = register(tmp_path, sharing_type="unconditional")
    app = file_app(aw, code)
    (d,) = aw.get(f"/deliveries?application={app['id']}", "SCJG", Role.requester).json()
    url = f"/deliveries/{d['id']}/manifest"
    first = aw.get(url, "SCJG", Role.requester).json()
    assert first.get("receipt") is None, first  # not yet cosigned
    round_ = cosigner.publish_once()
    assert round_ is not None and round_.published and len(round_.cosignatures) == 3
    document = aw.get(url, "SCJG", Role.requester).json()
    assert document["receipt"].startswith("c2sp.org/tlog-proof@v1\nextra ")
    keys_doc = aw.client.get("/.well-known/govshare-log-keys").json()
    assert keys_doc["quorum"] == 2 and len(keys_doc["witnesses"]) == 3

    status, out = _check(tmp_path, document, keys_doc)
    assert status == 0, out
    assert "delivery.completed" in out and "audit1.example/witness" in out
    # the witnesses you trust, not the operator's list: two of them, both required
    status, out = _check(tmp_path, document, keys_doc, "--witness", witnessed[0].verifier.vkey,
                         "--witness", witnessed[2].verifier.vkey, "--quorum", "2")
    assert status == 0, out

    # a changed manifest (its signature re-made would need the log's private key)
    changed = {**document, "manifest": {**document["manifest"], "row_count": 1}}
    status, out = _check(tmp_path, changed, keys_doc)
    assert status == 1 and "signature does not verify" in out
    # even the log's operator, re-signing a changed manifest with its own key, cannot make it
    # match the entry the log recorded (and the witnesses cosigned)
    private = keys.load_private_key(get_settings(), document["key_id"])
    resigned = {**changed, "signature": base64.b64encode(
        private.sign(canonical.payload_bytes(changed["manifest"]))).decode()}
    status, out = _check(tmp_path, resigned, keys_doc)
    assert status == 1 and "differs from the one in the logged payload" in out
    relogged = {**resigned, "logged_payload": {**document["logged_payload"],
                                               "manifest": changed["manifest"]}}
    status, out = _check(tmp_path, relogged, keys_doc)
    assert status == 1 and "does not match the logged entry" in out
    # more cosignatures than the checkpoint carries
    status, out = _check(tmp_path, document, keys_doc, "--quorum", "4")
    assert status == 1 and "4 needed" in out
    # a witness the checkpoint does not carry
    stranger = WitnessProcess("stranger.example/w", tmp_path / "stranger", "x").verifier.vkey
    status, out = _check(tmp_path, document, keys_doc, "--witness", stranger, "--quorum", "1")
    assert status == 1 and "1 needed" in out


def test_every_decision_of_an_application_has_a_receipt(aw: AccessWorld,
                                                          tmp_path: Path) -> None:
    # no witnesses configured: the latest signed head is the published checkpoint
    code = register(tmp_path, sharing_type="unconditional")
    app = file_app(aw, code)
    r = aw.get(f"/applications/{app['id']}/receipts", "SCJG", Role.requester)
    assert r.status_code == 200, r.text
    found = r.json()
    types = [x["type"] for x in found]
    assert "delivery.completed" in types and types[0] == "application.filed"
    doc = aw.client.get("/.well-known/govshare-log-keys").json()
    trust = proofs.trust_from_document(doc)
    for item in found:
        checked = proofs.check(item["receipt"], trust.logs, [], 0)
        assert checked.entry["seq"] == item["seq"] and checked.entry["type"] == item["type"]
        assert checked.entry["subjects"]["application"] == str(app["id"])
    # a department with no part in the application gets no receipts of it
    assert aw.get(f"/applications/{app['id']}/receipts", "RS", Role.requester).status_code \
        in (403, 404)
