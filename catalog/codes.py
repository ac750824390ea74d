"""Resource codes.

Scheme (documented in docs/catalog.md)::

    <region>-<provider>-<category>-<sequence>
    440300-GA-101-00007

* region: the city's 6-digit administrative division code (GB/T 2260), ``GOVSHARE_REGION_CODE``;
* provider: the provider department's code;
* category: the 3-digit category code of the catalog guideline (``catalog.models.Category``);
* sequence: 5 digits, counting up within region, provider and category; never reused.

Codes are stable for a resource's lifetime: a later change of category keeps the code.
"""

import re

from sqlmodel import Session, col, func, select

from catalog.models import Category, Resource

CODE_PATTERN = re.compile(r"^[0-9A-Za-z][0-9A-Za-z-]{3,39}$")


def prefix(region: str, provider_code: str, category: Category) -> str:
    return f"{region}-{provider_code}-{category.value}-"


def next_code(session: Session, region: str, provider_code: str, category: Category) -> str:
    """The next free code. Callers hold the write transaction, so no two get the same one;
    the unique index on ``resource.code`` is the backstop."""
    head = prefix(region, provider_code, category)
    last = session.exec(
        select(func.max(col(Resource.code))).where(col(Resource.code).startswith(head))
    ).one()
    seq = int(last.rsplit("-", 1)[1]) + 1 if last else 1
    return f"{head}{seq:05d}"


def is_valid(code: str) -> bool:
    return bool(CODE_PATTERN.match(code))
