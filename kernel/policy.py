"""Who "the data bureau" is: one rule, used by every context.

The data bureau (数据局 / big-data center) is a department of kind ``bureau``. Acting *for the
bureau* — coordinating escalated applications (access), issuing rectification notices,
setting the city-wide quality weights, adding checks to other departments' data, reading
other departments' quality details (quality) — takes the ``auditor`` role **in** such a
department. An auditor of any other department audits only their own department's data; a
bureau member without the auditor role does not act for the bureau.

Contexts call ``is_data_bureau`` / ``require_data_bureau`` instead of re-stating the rule, so
that it can be read (and changed) here alone.
"""

from __future__ import annotations

from sqlmodel import Session

from kernel.auth import Principal
from kernel.identity import Department, DepartmentKind, Role
from kernel.problems import Forbidden, Phrase


def is_bureau_department(session: Session, department_id: int | None) -> bool:
    """Whether the department is of kind ``bureau``."""
    dept = session.get(Department, department_id) if department_id else None
    return dept is not None and dept.kind is DepartmentKind.bureau


def is_data_bureau(session: Session, who: Principal | None) -> bool:
    """Whether ``who`` acts for the data bureau: an auditor of a department of kind bureau."""
    return who is not None and who.has(Role.auditor) and \
        is_bureau_department(session, who.department_id)


def require_data_bureau(session: Session, who: Principal, doing: Phrase) -> None:
    """Refuse (403, saying why) unless ``who`` acts for the data bureau."""
    if not is_data_bureau(session, who):
        raise Forbidden(f"Only the data bureau {doing}: an auditor of a department of kind "
                        "'bureau'. Your account is not one.",
                        key="problem.kernel.bureau_only", params={"doing": doing})
