"""The log's HTTP API: signed heads and proofs that verify with the published keys, entry
visibility by role, one head per request, and problem+json errors."""

import base64
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from fastapi.testclient import TestClient

from govshare import wiring
from kernel import db
from kernel.events import Actor, Event, publish
from kernel.identity import Role
from tests.conftest import World
from translog import canonical, merkle, service
from translog.api import WELL_KNOWN_KEYS

LOG = "/api/v1/log"


@pytest.fixture
def api(client: TestClient) -> TestClient:
    if client.get(WELL_KNOWN_KEYS).status_code == 404:
        # govshare.app does not mount wiring.root_routers() yet: mount them as it will.
        for router in wiring.root_routers():
            client.app.include_router(router)  # type: ignore[attr-defined]
    return client


def _published_keys(api: TestClient) -> dict[str, Ed25519PublicKey]:
    r = api.get(WELL_KNOWN_KEYS)  # no token: anyone may fetch the keys
    assert r.status_code == 200
    keys = {}
    for k in r.json()["keys"]:
        raw = base64.b64decode(k["public_key"])
        assert canonical.key_id_of(raw) == k["key_id"]
        keys[k["key_id"]] = Ed25519PublicKey.from_public_bytes(raw)
    return keys


def _check_head(head: dict[str, Any], keys: dict[str, Ed25519PublicKey]) -> bytes:
    """Verify a served head's signature; return its root hash."""
    message = canonical.head_bytes(tree_size=head["tree_size"], root_hash=head["root_hash"],
                                   time=head["time"], key_id=head["key_id"])
    keys[head["key_id"]].verify(base64.b64decode(head["signature"]), message)
    return bytes.fromhex(head["root_hash"])


def _make_users(api: TestClient, world: World, n: int, dept: str = "GA") -> None:
    """Each call is one request, one domain event, one log entry, one signed head."""
    for i in range(n):
        body = {"username": f"{dept.lower()}-extra-{i}", "display_name": "X", "department": dept,
                "roles": ["requester"]}
        r = api.post("/api/v1/users", json=body, headers=world.headers(dept, Role.admin))
        assert r.status_code == 201, r.text


def _problem(r: Any, status: int) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"
    return dict(r.json())


def test_heads_and_proofs_verify_with_the_published_keys(api: TestClient, world: World) -> None:
    _make_users(api, world, 7)
    admin = world.headers("GA", Role.admin)
    keys = _published_keys(api)
    latest = api.get(f"{LOG}/tree-heads/latest", headers=admin).json()
    assert latest["tree_size"] == 7
    root = _check_head(latest, keys)
    for size in range(1, 8):
        head = api.get(f"{LOG}/tree-heads/{size}", headers=admin).json()
        first_root = _check_head(head, keys)
        r = api.get(f"{LOG}/proofs/consistency", params={"first": size}, headers=admin).json()
        proof = [bytes.fromhex(h) for h in r["proof"]]
        assert r["second"] == 7 and r["first_head"] == head and r["second_head"] == latest
        assert merkle.verify_consistency(size, 7, first_root, root, proof)
    for item in api.get(f"{LOG}/entries/mine", headers=admin).json():
        leaf = merkle.leaf_hash(canonical.entry_bytes(item["entry"]))
        assert leaf.hex() == item["leaf_hash"]
        seq = item["entry"]["seq"]
        for size in (seq + 1, 7):
            proof = api.get(f"{LOG}/proofs/inclusion", params={"seq": seq, "tree_size": size},
                            headers=admin).json()
            head_root = _check_head(proof["tree_head"], keys)
            path = [bytes.fromhex(h) for h in proof["audit_path"]]
            assert merkle.verify_inclusion(seq, size, leaf, path, head_root)
            assert not merkle.verify_inclusion(seq, size, merkle.leaf_hash(b"x"), path, head_root)


def test_users_see_only_their_own_entries(api: TestClient, world: World) -> None:
    _make_users(api, world, 2, "GA")
    _make_users(api, world, 3, "SJJ")
    me = api.get("/api/v1/me", headers=world.headers("SJJ", Role.admin)).json()
    mine = api.get(f"{LOG}/entries/mine", headers=world.headers("SJJ", Role.admin)).json()
    assert len(mine) == 3
    assert {e["entry"]["actor"]["user"] for e in mine} == {me["id"]}
    assert {e["entry"]["type"] for e in mine} == {"user.created"}
    assert "payload" not in mine[0]["entry"]
    assert api.get(f"{LOG}/entries/mine",
                   headers=world.headers("GA", Role.publisher)).json() == []
    paged = api.get(f"{LOG}/entries/mine", params={"after_seq": mine[0]["entry"]["seq"],
                                                   "limit": 1},
                    headers=world.headers("SJJ", Role.admin)).json()
    assert [e["entry"]["seq"] for e in paged] == [mine[1]["entry"]["seq"]]


def test_only_auditors_list_all_entries(api: TestClient, world: World) -> None:
    _make_users(api, world, 2, "GA")
    _make_users(api, world, 1, "SJJ")
    for role in Role:
        r = api.get(f"{LOG}/entries", headers=world.headers("GA", role))
        if role is Role.auditor:
            assert r.status_code == 200
            assert len(r.json()) == 3 and len({e["entry"]["actor"]["user"] for e in r.json()}) == 2
        else:
            assert "auditor" in _problem(r, 403)["detail"]
    filtered = api.get(f"{LOG}/entries", params={"type": "user.created", "limit": 2},
                       headers=world.headers("SJJ", Role.auditor)).json()
    assert [e["entry"]["seq"] for e in filtered] == [0, 1]
    _problem(api.get(f"{LOG}/entries"), 401)


def test_one_transaction_signs_one_head(api: TestClient, world: World) -> None:
    _make_users(api, world, 2)
    with db.session_scope() as session:
        for i in range(5):
            publish(session, Event("api.queried", Actor(1, 1), {"resource": f"GS-{i}"},
                                   {"rows": i}))
    auditor = world.headers("SJJ", Role.auditor)
    heads = api.get(f"{LOG}/tree-heads", headers=auditor).json()
    assert [h["tree_size"] for h in heads] == [1, 2, 7]
    keys = _published_keys(api)
    for head in heads:
        _check_head(head, keys)
    problem = _problem(api.get(f"{LOG}/tree-heads/4", headers=auditor), 404)
    assert "2 and 7" in problem["detail"]


def test_errors_are_problem_json(api: TestClient, world: World) -> None:
    who = world.headers("GA", Role.requester)
    assert "empty" in _problem(api.get(f"{LOG}/tree-heads/latest", headers=who), 404)["detail"]
    _make_users(api, world, 3)
    _problem(api.get(f"{LOG}/tree-heads/latest"), 401)
    _problem(api.get(f"{LOG}/proofs/inclusion", params={"seq": 5, "tree_size": 3},
                     headers=who), 422)
    _problem(api.get(f"{LOG}/proofs/inclusion", params={"seq": 0, "tree_size": 9},
                     headers=who), 404)
    _problem(api.get(f"{LOG}/proofs/consistency", params={"first": 3, "second": 2},
                     headers=who), 422)
    _problem(api.get(f"{LOG}/proofs/consistency", params={"first": 0}, headers=who), 422)
    _problem(api.get(f"{LOG}/entries/mine", params={"limit": 0}, headers=who), 422)


def test_rotated_keys_stay_published(api: TestClient, world: World) -> None:
    _make_users(api, world, 2)
    before = set(_published_keys(api))
    with db.session_scope() as session:
        service.rotate_key(session)
    _make_users(api, world, 1, "SJJ")
    keys = _published_keys(api)
    assert before < set(keys) and len(keys) == 2
    statuses = {k["key_id"]: k["status"] for k in api.get(WELL_KNOWN_KEYS).json()["keys"]}
    assert [statuses[k] for k in before] == ["retired"]
    auditor = world.headers("SJJ", Role.auditor)
    heads = api.get(f"{LOG}/tree-heads", headers=auditor).json()
    assert [h["key_id"] in before for h in heads] == [True, True, False, False]
    roots = [_check_head(h, keys) for h in heads]
    proof = api.get(f"{LOG}/proofs/consistency", params={"first": 2}, headers=auditor).json()
    assert merkle.verify_consistency(2, 4, roots[1], roots[3],
                                     [bytes.fromhex(h) for h in proof["proof"]])
    assert api.get(f"{LOG}/keys", headers=auditor).json() == api.get(WELL_KNOWN_KEYS).json()
