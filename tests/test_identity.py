from datetime import timedelta

from fastapi.testclient import TestClient
from sqlmodel import select

from kernel import db, identity
from kernel.identity import ApiToken, Role
from tests.conftest import World


def test_healthz_is_public(client: TestClient) -> None:
    assert client.get("/healthz").json()["status"] == "ok"


def test_missing_token_is_problem_json(client: TestClient) -> None:
    r = client.get("/api/v1/me")
    assert r.status_code == 401
    assert r.headers["content-type"] == "application/problem+json"
    assert "Bearer" in r.json()["detail"]


def test_me_reports_department_and_roles(client: TestClient, world: World) -> None:
    r = client.get("/api/v1/me", headers=world.headers("GA", Role.publisher))
    assert r.status_code == 200
    assert r.json()["department"] == "GA"
    assert r.json()["roles"] == ["publisher"]


def test_tokens_are_stored_only_hashed(client: TestClient, world: World) -> None:
    plain = world.tokens[("GA", Role.admin)]
    with db.session_scope() as session:
        stored = [t.token_hash for t in session.exec(select(ApiToken))]
    assert plain not in stored
    assert identity.hash_token(plain) in stored


def test_expired_token_is_refused(client: TestClient, world: World) -> None:
    plain = world.tokens[("GA", Role.requester)]
    with db.session_scope() as session:
        token = session.exec(
            select(ApiToken).where(ApiToken.token_hash == identity.hash_token(plain))
        ).one()
        token.expires_at = db.utcnow() - timedelta(seconds=1)
        session.add(token)
    r = client.get("/api/v1/me", headers={"Authorization": f"Bearer {plain}"})
    assert r.status_code == 401
    assert "expired" in r.json()["detail"]


def test_revoked_token_is_refused(client: TestClient, world: World) -> None:
    admin = world.headers("SJJ", Role.admin)
    issued = client.post("/api/v1/users/ga-leader/tokens", json={"name": "laptop", "days": 5},
                         headers=admin)
    assert issued.status_code == 201
    token = issued.json()["token"]
    me = {"Authorization": f"Bearer {token}"}
    assert client.get("/api/v1/me", headers=me).status_code == 200
    revoked = client.delete(f"/api/v1/tokens/{issued.json()['id']}", headers=admin)
    assert revoked.status_code == 200 and revoked.json()["revoked_at"]
    r = client.get("/api/v1/me", headers=me)
    assert r.status_code == 401 and "revoked" in r.json()["detail"]


def test_only_admin_creates_users(client: TestClient, world: World) -> None:
    body = {"username": "x1", "display_name": "X", "department": "GA", "roles": ["requester"]}
    r = client.post("/api/v1/users", json=body, headers=world.headers("GA", Role.publisher))
    assert r.status_code == 403
    assert "admin" in r.json()["detail"]
    r = client.post("/api/v1/users", json=body, headers=world.headers("SJJ", Role.admin))
    assert r.status_code == 201


def test_validation_errors_are_problem_json(client: TestClient, world: World) -> None:
    r = client.post("/api/v1/users", json={"username": "?"},
                    headers=world.headers("SJJ", Role.admin))
    assert r.status_code == 422
    assert r.headers["content-type"] == "application/problem+json"
    assert {e["field"] for e in r.json()["errors"]} >= {"username", "display_name"}
