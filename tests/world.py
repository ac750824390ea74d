"""The test world every suite starts from: departments with one user (and token) per role."""

from __future__ import annotations

from collections.abc import Sequence

from kernel import db, identity
from kernel.identity import AdminLevel, DepartmentKind, Role

Department = tuple[str, str, str, DepartmentKind]


def create_departments(departments: Sequence[Department]) -> dict[tuple[str, Role], str]:
    """Each department with a user ``<code>-<role>`` per role; the plain tokens by
    (department, role)."""
    tokens: dict[tuple[str, Role], str] = {}
    with db.session_scope() as session:
        for code, zh, en, kind in departments:
            identity.create_department(session, code=code, name_zh=zh, name_en=en, kind=kind,
                                       level=AdminLevel.municipal)
            for role in Role:
                user = identity.create_user(session, username=f"{code.lower()}-{role.value}",
                                            display_name=f"{code} {role.value}",
                                            department=code, roles=[role])
                _, plain = identity.issue_token(session, user, name="test", days=1)
                tokens[(code, role)] = plain
    return tokens
