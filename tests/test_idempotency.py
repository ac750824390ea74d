"""Idempotency-Key on the POSTs that create things (govshare/idempotency.py)."""

from __future__ import annotations

import json
import threading
import uuid

from fastapi.testclient import TestClient
from sqlmodel import func, select

from catalog.models import Resource
from govshare.app import create_app
from kernel import db, idempotency
from kernel.idempotency import HEADER, REPLAYED_HEADER, IdempotencyRecord
from kernel.identity import ApiToken, Role
from kernel.problems import PROBLEM_JSON
from tests.conftest import World
from tests.factories import population_meta, population_rows, to_csv, upload


def _count(model: type) -> int:
    with db.session_scope(write=False) as session:
        return session.exec(select(func.count()).select_from(model)).one()


def _register(client: TestClient, world: World, key: str, name: str = "人口") -> object:
    headers = {**world.headers("GA", Role.publisher), HEADER: key}
    return client.post("/api/v1/resources", headers=headers,
                       **upload(population_meta(name=name), to_csv(population_rows(4)),
                                confirm_duplicate=True))


def test_same_key_same_request_replays_the_stored_response(client: TestClient,
                                                           world: World) -> None:
    key = str(uuid.uuid4())
    first = _register(client, world, key)
    assert first.status_code == 201, first.text  # type: ignore[attr-defined]
    again = _register(client, world, key)  # a new multipart boundary, the same content
    assert again.status_code == 201  # type: ignore[attr-defined]
    assert again.headers[REPLAYED_HEADER] == "true"  # type: ignore[attr-defined]
    assert again.json() == first.json()  # type: ignore[attr-defined]
    assert _count(Resource) == 1 and _count(IdempotencyRecord) == 1
    # Without a key, the same request creates a second resource (confirmed: catalog.similar).
    plain = client.post("/api/v1/resources", headers=world.headers("GA", Role.publisher),
                        **upload(population_meta(), to_csv(population_rows(4)),
                                 confirm_duplicate=True))
    assert plain.status_code == 201 and _count(Resource) == 2


def test_same_key_different_request_is_422(client: TestClient, world: World) -> None:
    key = "k-" + uuid.uuid4().hex
    assert _register(client, world, key).status_code == 201  # type: ignore[attr-defined]
    other = _register(client, world, key, name="另一个")
    assert other.status_code == 422  # type: ignore[attr-defined]
    assert other.headers["content-type"] == PROBLEM_JSON  # type: ignore[attr-defined]
    assert "different request" in other.json()["detail"]  # type: ignore[attr-defined]
    assert _count(Resource) == 1


def test_keys_are_per_caller(client: TestClient, world: World) -> None:
    key = "shared-key"
    body = {"name": "SJJ key test", "days": 1}
    a = client.post("/api/v1/departments", headers={**world.headers("GA", Role.admin),
                                                     HEADER: key},
                    json={"code": "QX1", "name_zh": "区一", "name_en": "District 1"})
    assert a.status_code == 201, a.text
    b = client.post("/api/v1/users/ga-requester/tokens",
                    headers={**world.headers("SCJG", Role.admin), HEADER: key}, json=body)
    assert b.status_code == 201, b.text  # another caller: the key is free for them


def test_a_refused_request_does_not_use_up_its_key(client: TestClient, world: World) -> None:
    key = uuid.uuid4().hex
    headers = {**world.headers("GA", Role.admin), HEADER: key}
    bad = client.post("/api/v1/departments", headers=headers,
                      json={"code": "no spaces!", "name_zh": "x", "name_en": "x"})
    assert bad.status_code == 422 and _count(IdempotencyRecord) == 0
    good = client.post("/api/v1/departments", headers=headers,
                       json={"code": "QX2", "name_zh": "区二", "name_en": "District 2"})
    assert good.status_code == 201 and _count(IdempotencyRecord) == 1


def test_a_token_is_issued_once_and_its_secret_is_never_stored(client: TestClient,
                                                              world: World) -> None:
    headers = {**world.headers("GA", Role.admin), HEADER: "token-1"}
    body = {"name": "robot", "days": 1}
    first = client.post("/api/v1/users/ga-requester/tokens", headers=headers, json=body)
    assert first.status_code == 201
    plain = first.json()["token"]
    with db.session_scope(write=False) as session:
        record = session.exec(select(IdempotencyRecord)).one()
        assert plain not in record.body and record.redacted
        tokens = _count(ApiToken)
    again = client.post("/api/v1/users/ga-requester/tokens", headers=headers, json=body)
    assert again.status_code == 409 and again.headers["content-type"] == PROBLEM_JSON
    assert plain not in again.text and again.json()["original"]["id"] == first.json()["id"]
    assert _count(ApiToken) == tokens  # not issued twice


def test_an_invalid_key_is_refused(client: TestClient, world: World) -> None:
    r = client.post("/api/v1/departments",
                    headers={**world.headers("GA", Role.admin), HEADER: "x" * 300},
                    json={"code": "QX3", "name_zh": "区三", "name_en": "District 3"})
    assert r.status_code == 422 and r.headers["content-type"] == PROBLEM_JSON


def test_a_key_in_flight_gets_409(client: TestClient, world: World) -> None:
    """A second request with a key whose first request is still running does no work."""
    key = "in-flight"
    who = world.headers("GA", Role.admin)
    with db.session_scope(write=False) as session:
        from kernel.auth import authenticate

        user_id = authenticate(session, world.tokens[("GA", Role.admin)]).user_id
    idempotency._running.add((user_id, key))  # as if another thread were working on it
    try:
        r = client.post("/api/v1/departments", headers={**who, HEADER: key},
                        json={"code": "QX4", "name_zh": "区四", "name_en": "District 4"})
    finally:
        idempotency._running.discard((user_id, key))
    assert r.status_code == 409 and "still being processed" in r.json()["detail"]


def test_racing_requests_with_one_key_create_one_thing(client: TestClient,
                                                       world: World) -> None:
    """Both run (neither sees the other's record yet); the unique constraint lets one
    commit, and the other rolls back with a 409 that a retry turns into the replay."""
    headers = {**world.headers("GA", Role.publisher), HEADER: "race"}
    meta = json.dumps(population_meta(), ensure_ascii=False)
    data = to_csv(population_rows(3))
    results: list[int] = []

    def post() -> None:
        r = client.post("/api/v1/resources", headers=headers, data={"metadata": meta},
                        files={"file": ("d.csv", data, "text/csv")})
        results.append(r.status_code)

    idempotency._running.clear()
    threads = [threading.Thread(target=post) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results.count(201) >= 1 and set(results) <= {201, 409}, results
    assert _count(Resource) == 1


def test_every_creating_post_honours_the_key() -> None:
    paths = idempotency.idempotent_paths(create_app())
    for expected in ["/api/v1/resources", "/api/v1/resources/{code}/versions",
                     "/api/v1/applications", "/api/v1/bundles",
                     "/api/v1/deliveries/{delivery_id}/link", "/api/v1/quality/notices",
                     "/api/v1/quality/resources/{code}/expectations",
                     "/api/v1/users/{username}/tokens", "/api/v1/departments",
                     "/api/v1/users"]:
        assert ("POST", expected) in paths


def test_a_keyed_endpoint_without_the_route_class_fails_at_start_up() -> None:
    from fastapi import APIRouter, FastAPI

    router = APIRouter()

    @router.post("/things", dependencies=[idempotency.IDEMPOTENT])
    def make() -> dict[str, str]:
        return {}

    app = FastAPI()
    app.include_router(router, prefix="/api")
    try:
        idempotency.check_routes(app)
    except RuntimeError as exc:
        assert "/api/things" in str(exc)
    else:
        raise AssertionError("check_routes accepted a keyed route without IdempotentRoute")


def test_a_number_beyond_64_bits_is_a_422_not_a_500(client: TestClient, world: World) -> None:
    """Found by the API fuzz: ?after_size=10**25 overflowed the database driver."""
    r = client.get("/api/v1/log/tree-heads", params={"after_size": 10**25},
                   headers=world.headers("GA", Role.requester))
    assert r.status_code == 422 and r.headers["content-type"] == PROBLEM_JSON
