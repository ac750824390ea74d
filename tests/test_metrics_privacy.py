"""The leaders' dashboards never show a small count of persons' records: rows delivered from
resources with personal items are withheld (null, ``rows_withheld``; the page shows "<10")
while they count 1 … 9, in every figure they appear in; counts of applications and rows of
non-personal resources are shown as they are (docs/metrics.md, "Small counts")."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from kernel import privacy
from kernel.identity import Role
from metrics import mart
from tests.test_access_support import (  # noqa: F401  (access_world: the aw fixture)
    AccessWorld,
    access_world,
    file_app,
    people_rows,
    register,
)

PLAIN_ITEMS = [{"name": "district", "type": "string"},
               {"name": "household_size", "type": "integer"}]


@pytest.fixture
def leader(aw: AccessWorld) -> Iterator[Any]:
    from govshare.app import create_app

    client = TestClient(create_app())

    def get(name: str, **params: Any) -> dict[str, Any]:
        mart.refresh()  # what was just delivered
        r = client.get(f"/api/v1/metrics/{name}", params=params,
                       headers=aw.h("SJJ", Role.leader))
        assert r.status_code == 200, r.text
        return dict(r.json())

    yield get
    mart.close_readers()


def test_small_counts_of_persons_records_are_withheld(aw: AccessWorld, tmp_path: Path,
                                                      leader: Any) -> None:
    personal = register(tmp_path, sharing_type="unconditional", name="低保对象",
                        rows=people_rows(4))
    plain = register(tmp_path, sharing_type="unconditional", name="区县户数",
                     items=PLAIN_ITEMS, rows=[{"district": "福田区", "household_size": n}
                                              for n in range(3)])
    file_app(aw, personal, items=["name", "district"])  # 4 persons' records delivered
    file_app(aw, plain, items=["district", "household_size"])  # 3 rows, no person in them

    overview = leader("overview")
    assert overview["delivered"] == 2 and overview["min_count"] == 10
    assert overview["rows_delivered"] is None and overview["bytes_delivered"] is None
    assert overview["rows_delivered_withheld"] is True
    volume = leader("volume", bucket="week")
    by_resource = {r["resource"]["name_zh"]: r for r in volume["by_resource"]}
    assert by_resource["低保对象"]["rows"] is None and by_resource["低保对象"]["rows_withheld"]
    assert by_resource["低保对象"]["deliveries"] == 1  # applications are not persons
    assert (by_resource["区县户数"]["rows"], by_resource["区县户数"]["rows_withheld"]) == (3, False)
    assert all(s["rows"] is None and s["bytes"] is None for s in volume["series"]
               if s["deliveries"])
    assert {d["department"]["code"]: d["rows"] for d in volume["by_department"]}["GA"] is None
    (cell,) = leader("flows")["cells"]
    assert (cell["provider"], cell["requester"], cell["rows"], cell["rows_withheld"]) == \
        ("GA", "SCJG", None, True)

    # Ten or more persons' records are a count that singles nobody out: shown.
    bigger = register(tmp_path, sharing_type="unconditional", name="人口基础信息",
                      rows=people_rows(12))
    file_app(aw, bigger, items=["district"])
    overview = leader("overview")
    assert overview["rows_delivered"] == 4 + 3 + 12 and not overview["rows_delivered_withheld"]
    (cell,) = leader("flows")["cells"]
    assert cell["rows"] == 19 and cell["rows_withheld"] is False


def test_the_threshold() -> None:
    assert [privacy.withheld(n, 10) for n in (None, 0, 1, 9, 10)] == \
        [False, False, True, True, False]
    assert privacy.small_count(None, 10) == "<10" == privacy.small_count(3, 10)
    assert privacy.small_count(1234, 10) == "1,234"
