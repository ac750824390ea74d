"""Table-driven authorization: every endpoint × every role, and department scoping.

Adding an endpoint without adding it here fails ``test_every_endpoint_is_in_the_matrix``:
each endpoint must declare who may call it.
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from fastapi.testclient import TestClient

from kernel.identity import Role
from tests import test_access_authorization as access_matrix
from tests.conftest import World
from tests.factories import population_meta, population_rows, to_csv, upload

ALL = frozenset(Role)
PUB = frozenset({Role.publisher})
ADMIN = frozenset({Role.admin})
AUDITOR = frozenset({Role.auditor})
AUD_PUB = frozenset({Role.auditor, Role.publisher})
AUD_LEAD = frozenset({Role.auditor, Role.leader})
AUD_LEAD_PUB = frozenset({Role.auditor, Role.leader, Role.publisher})
Q = "/api/v1/quality"


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str
    roles: frozenset[Role]
    # Scoped endpoints refuse these roles when the caller is of another department.
    provider_scoped: bool = False
    scoped_roles: frozenset[Role] = frozenset({Role.publisher})
    body: Callable[[], dict[str, Any]] = field(default=lambda: {})
    # Roles that act here only for the data bureau (kernel.policy): allowed from SJJ (kind
    # bureau), refused from GA (a line department).
    bureau: frozenset[Role] = frozenset()


def _csv_upload() -> dict[str, Any]:
    return upload(population_meta(), to_csv(population_rows(2)))


def _version_upload() -> dict[str, Any]:
    return {"data": {"mode": "append"},
            "files": {"file": ("v.csv", to_csv(population_rows(3)[2:]), "text/csv")}}


MATRIX: list[Endpoint] = [
    Endpoint("GET", "/api/v1/me", ALL),
    Endpoint("GET", "/api/v1/departments", ALL),
    Endpoint("POST", "/api/v1/departments", ADMIN,
             body=lambda: {"json": {"code": "NEW1", "name_zh": "新部门", "name_en": "New"}}),
    Endpoint("GET", "/api/v1/users", ADMIN),
    Endpoint("POST", "/api/v1/users", ADMIN,
             body=lambda: {"json": {"username": "new-user", "display_name": "N",
                                    "department": "GA", "roles": ["requester"]}}),
    Endpoint("POST", "/api/v1/users/{username}/tokens", ADMIN,
             body=lambda: {"json": {"name": "t"}}),
    # The path names ga-leader: admins may list anyone's tokens, the leader its own.
    Endpoint("GET", "/api/v1/users/{username}/tokens", frozenset({Role.admin, Role.leader})),
    Endpoint("DELETE", "/api/v1/tokens/{token_id}", ALL),  # own only; see identity tests
    Endpoint("GET", "/api/v1/resources", ALL),
    Endpoint("POST", "/api/v1/resources", PUB, body=_csv_upload),
    Endpoint("POST", "/api/v1/resources/similar", PUB,
             body=lambda: {"json": {"name": "人口基础信息"}}),
    Endpoint("GET", "/api/v1/resources/{code}", ALL),
    Endpoint("PATCH", "/api/v1/resources/{code}", PUB, provider_scoped=True,
             body=lambda: {"json": {"summary": "更新"}}),
    Endpoint("POST", "/api/v1/resources/{code}/withdraw", PUB, provider_scoped=True),
    Endpoint("POST", "/api/v1/resources/{code}/reactivate", PUB, provider_scoped=True),
    Endpoint("POST", "/api/v1/resources/{code}/versions", PUB, provider_scoped=True,
             body=_version_upload),
    Endpoint("GET", "/api/v1/resources/{code}/versions", ALL),
    Endpoint("GET", "/api/v1/resources/{code}/revisions", ALL),
    Endpoint("GET", "/api/v1/resources/{code}/preview", PUB, provider_scoped=True),
    # database sources: the provider's publishers only (they hold the connection's secrets)
    Endpoint("POST", "/api/v1/resources/from-source", PUB, body=lambda: {"json": {}}),
    Endpoint("PUT", "/api/v1/resources/{code}/source", PUB, provider_scoped=True,
             body=lambda: {"json": {"url": "postgresql://reader@127.0.0.1:1/dept",
                                    "query": "public.people"}}),
    Endpoint("GET", "/api/v1/resources/{code}/source", PUB, provider_scoped=True),
    Endpoint("POST", "/api/v1/resources/{code}/source/pull", PUB, provider_scoped=True),
    Endpoint("DELETE", "/api/v1/resources/{code}/source", PUB, provider_scoped=True),
    Endpoint("GET", "/api/v1/catalog.jsonld", ALL),
    Endpoint("GET", "/api/v1/catalog.csv", ALL),
    Endpoint("GET", "/api/v1/vocabulary", ALL),
    # the access log: heads, proofs and keys are for anyone to verify; entries are metadata
    Endpoint("GET", "/api/v1/log/tree-heads/latest", ALL),
    Endpoint("GET", "/api/v1/log/tree-heads", ALL),
    Endpoint("GET", "/api/v1/log/tree-heads/{tree_size}", ALL),
    Endpoint("GET", "/api/v1/log/proofs/inclusion", ALL),
    Endpoint("GET", "/api/v1/log/proofs/consistency", ALL),
    Endpoint("GET", "/api/v1/log/entries/mine", ALL),
    Endpoint("GET", "/api/v1/log/keys", ALL),
    Endpoint("GET", "/api/v1/log/entries", AUDITOR),
    Endpoint("GET", "/api/v1/log/witnesses", ALL),
    Endpoint("GET", "/api/v1/log/reads", ALL),  # your own department's; others: auditors
    # receipts: the entry's actor, its department (entry 0: GA registered the resource), auditors
    Endpoint("GET", "/api/v1/log/receipts/{seq}", ALL),
    Endpoint("GET", "/tile/entries/{tile_path}", AUDITOR),  # C2SP entry bundles: who did what
    # quality: publishers for their own department's resources; the data bureau for all
    Endpoint("POST", Q + "/resources/{code}/runs", AUD_PUB, provider_scoped=True),
    Endpoint("GET", Q + "/resources/{code}/runs", AUD_LEAD_PUB, provider_scoped=True),
    Endpoint("GET", Q + "/runs/{run_id}", AUD_LEAD_PUB),
    Endpoint("GET", Q + "/resources/{code}/score", ALL),
    Endpoint("GET", Q + "/resources/{code}/report", AUD_LEAD_PUB, provider_scoped=True),
    Endpoint("GET", Q + "/resources/{code}/suite", AUD_LEAD_PUB, provider_scoped=True),
    Endpoint("GET", Q + "/resources/{code}/suites", AUD_LEAD_PUB, provider_scoped=True),
    Endpoint("POST", Q + "/resources/{code}/expectations", AUD_PUB, provider_scoped=True,
             body=lambda: {"json": {"type": "expect_column_values_to_not_be_null",
                                    "kwargs": {"column": "name"}}}, bureau=AUDITOR),
    Endpoint("GET", Q + "/resources/{code}/expectations", AUD_LEAD_PUB, provider_scoped=True),
    Endpoint("DELETE", Q + "/resources/{code}/expectations/{custom_id}", AUD_PUB,
             provider_scoped=True, bureau=AUDITOR),
    Endpoint("GET", Q + "/weights", ALL),
    Endpoint("PUT", Q + "/weights", AUDITOR, body=lambda: {"json": {
        "freshness": 1, "completeness": 1, "validity": 1, "uniqueness": 1, "consistency": 1,
        "threshold": 80}}, bureau=AUDITOR),
    Endpoint("GET", Q + "/weights/history", AUD_LEAD, bureau=AUDITOR),
    Endpoint("GET", Q + "/ranking/departments", AUD_LEAD, bureau=AUDITOR),
    Endpoint("GET", Q + "/ranking/resources", AUD_LEAD, bureau=AUDITOR),
    Endpoint("GET", Q + "/below-threshold", AUD_LEAD, bureau=AUDITOR),
    Endpoint("GET", Q + "/trends", AUD_LEAD, bureau=AUDITOR),
    Endpoint("GET", Q + "/failed-runs", AUD_LEAD, bureau=AUDITOR),
    Endpoint("POST", Q + "/notices", AUDITOR, body=lambda: {"json": {
        "resource": "NOPE", "problem": "请核查", "deadline": "2999-01-01"}}, bureau=AUDITOR),
    Endpoint("GET", Q + "/notices", AUD_LEAD_PUB),
    Endpoint("GET", Q + "/notices/{notice_id}", AUD_LEAD_PUB),
    Endpoint("POST", Q + "/notices/{notice_id}/response", PUB, body=lambda: {"json": {}}),
    # sharing metrics: city-wide figures for leaders and the data bureau; operators' /metrics
    *[Endpoint("GET", "/api/v1/metrics/" + name, AUD_LEAD)
      for name in ("overview", "volume", "flows", "latency", "timeliness", "failures",
                   "quality", "resources", "feedback")],
    Endpoint("GET", "/metrics", frozenset({Role.leader, Role.admin})),
]

# Reachable without a token, on purpose.
PUBLIC = {("GET", "/healthz"), ("GET", "/.well-known/govshare-log-keys"),
          ("GET", "/checkpoint"), ("GET", "/tile/{tile_path}")}  # C2SP: hashes and signatures


def test_every_endpoint_is_in_the_matrix(client: TestClient) -> None:
    # The access pipeline's endpoints need applications in every state to exercise, so their
    # table lives beside those fixtures, in tests/test_access_authorization.py.
    access = {(m, access_matrix._template(p)) for m, p, _, _ in access_matrix.MATRIX}
    declared = {(e.method, e.path) for e in MATRIX} | PUBLIC | access
    paths = client.get("/openapi.json").json()["paths"]
    served = {(method.upper(), path) for path, ops in paths.items() for method in ops}
    assert served - declared == set(), "endpoints missing from the authorization matrix"
    assert declared - served == set(), "matrix names endpoints the app does not serve"


@pytest.fixture
def resource_code(client: TestClient, world: World) -> str:
    r = client.post("/api/v1/resources", **_csv_upload(),
                    headers=world.headers("GA", Role.publisher))
    assert r.status_code == 201, r.text
    return str(r.json()["code"])


def _url(endpoint: Endpoint, code: str) -> str:
    return endpoint.path.format(code=code, username="ga-leader", token_id=999999, tree_size=1,
                                run_id=999999, custom_id=999999, notice_id=999999,
                                seq=0, tile_path="000.p/1")


def _call(client: TestClient, endpoint: Endpoint, code: str, headers: dict[str, str]) -> Any:
    return client.request(endpoint.method, _url(endpoint, code), headers=headers,
                          **endpoint.body())


@pytest.mark.parametrize("endpoint", MATRIX, ids=lambda e: f"{e.method} {e.path}")
def test_roles(client: TestClient, world: World, resource_code: str,
               endpoint: Endpoint) -> None:
    assert _call(client, endpoint, resource_code, {}).status_code == 401
    for role in Role:
        r = _call(client, endpoint, resource_code, world.headers("GA", role))
        if role in endpoint.roles and role not in endpoint.bureau:
            assert r.status_code not in (401, 403), (role, r.status_code, r.text)
        else:
            assert r.status_code == 403, (role, r.status_code, r.text)
            assert r.headers["content-type"] == "application/problem+json"
    for role in endpoint.bureau:  # the same role in the data bureau's department may
        r = _call(client, endpoint, resource_code, world.headers("SJJ", role))
        assert r.status_code not in (401, 403), (role, r.status_code, r.text)


@pytest.mark.parametrize("endpoint", [e for e in MATRIX if e.provider_scoped],
                         ids=lambda e: f"{e.method} {e.path}")
def test_other_departments_are_refused(client: TestClient, world: World, resource_code: str,
                                       endpoint: Endpoint) -> None:
    for role in endpoint.roles & endpoint.scoped_roles:
        r = _call(client, endpoint, resource_code, world.headers("SCJG", role))
        assert r.status_code == 403, (role, r.status_code, r.text)
