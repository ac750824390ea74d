"""The department dimension of the access matrix (tests/test_access_authorization.py): every
role of an uninvolved department (RS: neither the requester SCJG nor the provider GA) is
refused with 403 or 404 on every endpoint naming another department's application, bundle,
delivery or grant, and its lists never show them."""

from __future__ import annotations

from pathlib import Path

from kernel.identity import Role
from tests.test_access_authorization import MATRIX, matrix_world
from tests.test_access_support import (  # noqa: F401  (access_world: the aw fixture)
    API,
    AccessWorld,
    access_world,
    application,
    file_app,
    register,
)

R = Role.requester


def test_an_uninvolved_department_is_refused_everywhere(aw: AccessWorld, tmp_path: Path) -> None:
    _, ids, token = matrix_world(aw, tmp_path)
    wrong: list[tuple[object, ...]] = []
    for method, path, _, body in MATRIX:
        if "{" not in path:
            continue  # lists and filings: checked below / not scoped to an object
        kwargs = {"params": {"token": token}} if "params" in body else body
        for role in Role:
            if role is Role.admin:
                continue  # no data rights at all: refused by role, tested in the matrix
            r = aw.client.request(method, API + path.format(**ids), headers=aw.h("RS", role),
                                  **kwargs)
            # 409 only as the state machine's "Only <party> can …", which tells nothing
            # about the application's state (access/flows.py checks the party first).
            party_refusal = r.status_code == 409 and r.json()["detail"].startswith("Only ") \
                and "state" not in r.json()
            if r.status_code not in (403, 404) and not party_refusal:
                wrong.append((method, path, role.value, r.status_code, r.text[:150]))
            elif r.headers["content-type"] != "application/problem+json":
                wrong.append((method, path, role.value, -1))
    assert wrong == [], "\n".join(map(str, wrong))
    for role in (Role.requester, Role.approver, Role.leader):
        for path in ("/applications", "/bundles", "/deliveries", "/grants"):
            r = aw.get(path, "RS", role)
            assert r.status_code in (200, 403) and (r.status_code == 403 or r.json() == []), \
                (path, role, r.text)
