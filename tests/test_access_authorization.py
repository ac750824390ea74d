"""Every access endpoint × every role: who may call it at all (``require``). Department scoping
is tested with each flow; here each role calls from the department where it makes sense, so
an allowed role is never refused (401/403) and any other role always is (403).

Adding an endpoint without listing it here fails ``test_every_access_endpoint_is_listed``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi.routing import APIRoute
from sqlmodel import select

from access.api import routers
from access.scheduler import DELIVER
from kernel import db
from kernel.identity import Role
from kernel.jobs import Job
from tests.test_access_support import (  # noqa: F401  (access_world: the aw fixture)
    API,
    AccessWorld,
    access_world,
    application,
    file_app,
    register,
)

R, AP, AU, L = Role.requester, Role.approver, Role.auditor, Role.leader
INVOLVED = {R, AP, AU, L}
# The department each role calls from: the requester's, the provider's, the bureau.
HOME = {Role.requester: "SCJG", Role.approver: "GA", Role.auditor: "SJJ", Role.leader: "GA",
        Role.publisher: "GA", Role.admin: "GA"}

MATRIX: list[tuple[str, str, set[Role], dict[str, Any]]] = [
    ("GET", "/applications", INVOLVED, {}),
    ("GET", "/applications/{app}", INVOLVED, {}),
    ("GET", "/applications/{app}/history", INVOLVED, {}),
    ("GET", "/applications/{app}/receipts", INVOLVED, {}),
    ("POST", "/applications/{app}/approve", {AP}, {"json": {}}),
    ("POST", "/applications/{app}/accept-conditions", {R}, {}),
    ("POST", "/applications/{app}/return", {AP},
     {"json": {"deficiencies": [{"code": "other"}]}}),
    ("POST", "/applications/{app}/resubmit", {R}, {"json": {}}),
    ("POST", "/applications/{app}/reject", {AP},
     {"json": {"reason": "other", "text": "不予共享"}}),
    ("POST", "/applications/{app}/reassign", {AP}, {"json": {"assignee": "ga-approver"}}),
    ("POST", "/applications/{app}/escalate", {R, AU}, {"json": {}}),
    ("POST", "/applications/{app}/coordination", {AU, AP},
     {"json": {"kind": "remind", "note": "请办理"}}),
    ("POST", "/applications/{app}/masking", {AP}, {"json": {}}),
    ("GET", "/applications/{app}/risk", INVOLVED, {}),
    ("POST", "/applications/{app}/risk", {AP}, {"json": {}}),
    ("POST", "/applications/{app}/suggestion", {AP}, {"json": {}}),
    ("POST", "/applications/{app}/deliver", {R}, {}),
    ("GET", "/applications/{app}/delivery-jobs/{job}", INVOLVED, {}),
    ("POST", "/applications/{app}/withdraw", {R}, {"json": {}}),
    ("GET", "/bundles", INVOLVED, {}),
    ("GET", "/bundles/{bundle}", INVOLVED, {}),
    ("POST", "/bundles/{bundle}/remind", {AP}, {"json": {}}),
    ("GET", "/deliveries", INVOLVED, {}),
    ("GET", "/deliveries/{delivery}", INVOLVED, {}),
    ("GET", "/deliveries/{delivery}/manifest", INVOLVED, {}),
    ("POST", "/deliveries/{delivery}/link", {R}, {}),
    ("GET", "/deliveries/{delivery}/download", {R}, {"params": {"token": "(a real link)"}}),
    ("POST", "/deliveries/{delivery}/rating", {R}, {"json": {"useful": True, "comment": "有用"}}),
    ("GET", "/deliveries/{delivery}/ratings", {R, AP, AU, Role.publisher}, {}),
    ("GET", "/grants", INVOLVED, {}),
    ("GET", "/grants/{grant}", INVOLVED, {}),
    ("POST", "/grants/{grant}/query", {R}, {"json": {}}),
    ("POST", "/grants/{grant}/revoke", {AP}, {"json": {"reason": "停止共享"}}),
    ("GET", "/latency", {L, AU}, {}),
    ("GET", "/latency/bundles", {L, AU}, {}),
    ("GET", "/latency/applications", {L, AU}, {}),
    ("POST", "/applications", {R}, {"json": None}),
    ("POST", "/bundles", {R}, {"json": None}),
]


def _template(path: str) -> str:
    return (API + path).replace("{app}", "{app_id}").replace("{bundle}", "{bundle_id}") \
        .replace("{delivery}", "{delivery_id}").replace("{grant}", "{grant_id}") \
        .replace("{job}", "{job_id}")


def test_every_access_endpoint_is_listed() -> None:
    served = {(m, API + r.path) for router in routers for r in router.routes
              if isinstance(r, APIRoute) for m in r.methods or ()}
    listed = {(m, _template(p)) for m, p, _, _ in MATRIX}
    assert served == listed
    for router in routers:
        for route in router.routes:
            assert isinstance(route, APIRoute)
            declared = [getattr(d.call, "required_roles", None)
                        for d in route.dependant.dependencies]
            declared += [getattr(sub.call, "required_roles", None)
                         for d in route.dependant.dependencies for sub in d.dependencies]
            assert any(declared), f"{route.path} declares no roles"


def matrix_world(aw: AccessWorld, tmp_path: Path) -> tuple[str, dict[str, int], str]:
    """What every MATRIX path needs: a delivered unconditional application of SCJG's, a
    bundle, and a download token; returns (resource code, path ids, token)."""
    code = register(tmp_path, sharing_type="unconditional")
    app = file_app(aw, code, items=["name", "district"])
    other = register(tmp_path, name="户籍信息")
    bundle = aw.post("/bundles", "SCJG", R, json={"title": "一件事", "parts": [
        application(other, ["mobile"]), application(code, ["address"])]}).json()
    delivery = aw.get("/deliveries", "SCJG", R).json()[0]
    with db.session_scope(write=False) as session:  # the job that delivered ``app``
        job = next(j.id for j in session.exec(select(Job).where(Job.kind == DELIVER))
                   if j.payload["app"] == app["id"])
    ids = {"app": app["id"], "bundle": bundle["id"], "delivery": delivery["id"],
           "grant": delivery["grant_id"], "job": job or 0}
    link = aw.post(f"/deliveries/{delivery['id']}/link", "SCJG", R).json()["url"]
    return code, ids, link.split("token=")[1]


def test_roles(aw: AccessWorld, tmp_path: Path) -> None:
    code, ids, token = matrix_world(aw, tmp_path)
    new_app = {"json": application(code, ["income"])}
    wrong: list[tuple[str, str, str, int]] = []
    for method, path, allowed, body in MATRIX:
        url = API + path.format(**ids)
        kwargs = body if body.get("json", 1) is not None else \
            (new_app if path == "/applications" else {"json": {"title": "x", "parts": []}})
        if "params" in kwargs:
            kwargs = {"params": {"token": token}}
        if aw.client.request(method, url, **kwargs).status_code != 401:
            wrong.append((method, path, "anonymous", 0))
        for role in Role:
            r = aw.client.request(method, url, headers=aw.h(HOME[role], role), **kwargs)
            refused = r.status_code in (401, 403)
            if (role in allowed) == refused:
                wrong.append((method, path, role.value, r.status_code))
    assert wrong == []
