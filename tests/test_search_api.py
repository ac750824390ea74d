"""Catalog search through the API and the running server's index writer: a registration is
found within seconds, a withdrawal disappears, facets come with the page, and a page is
served from the index without a database query."""

from __future__ import annotations

import html
import json
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event

from catalog.schemas import SUMMARY_CHARS, ResourceHit
from govshare import administration
from kernel import db, identity
from kernel.identity import Role
from tests.conftest import World
from tests.factories import population_meta, population_rows, to_csv, upload
from tests.web_support import sign_in

API = "/api/v1/resources"


def _register(client: TestClient, world: World, **meta: Any) -> str:
    # Many resources of one shape on purpose: confirmed as different ones (catalog.similar).
    r = client.post(API, **upload(population_meta(**meta), to_csv(population_rows(3)),
                                  confirm_duplicate=True),
                    headers=world.headers("GA", Role.publisher))
    assert r.status_code == 201, r.text
    return str(r.json()["code"])


def _search(client: TestClient, world: World, **params: Any) -> dict[str, Any]:
    r = client.get(API, params=params, headers=world.headers("SCJG", Role.requester))
    assert r.status_code == 200, r.text
    return dict(r.json())


def _eventually(check: Any, seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "not visible within the time allowed"
        time.sleep(0.05)


def test_a_registration_is_found_within_seconds_and_a_withdrawal_disappears(
        client: TestClient, world: World) -> None:
    code = _register(client, world, name="婚姻登记信息", name_en="Marriage registration")
    started = time.monotonic()
    _eventually(lambda: [h["code"] for h in _search(client, world, q="婚姻")["hits"]] == [code])
    assert time.monotonic() - started < 5
    assert _search(client, world, q="marri")["total"] == 1  # English prefix
    r = client.post(f"{API}/{code}/withdraw", headers=world.headers("GA", Role.publisher))
    assert r.status_code == 200, r.text
    _eventually(lambda: _search(client, world, q="婚姻")["total"] == 0)
    assert _search(client, world)["total"] == 0  # browsing too
    client.post(f"{API}/{code}/reactivate", headers=world.headers("GA", Role.publisher))
    _eventually(lambda: _search(client, world, q="婚姻")["total"] == 1)


def test_a_metadata_edit_is_searchable(client: TestClient, world: World) -> None:
    code = _register(client, world)
    r = client.patch(f"{API}/{code}", json={"keywords": ["低保", "救助"]},
                     headers=world.headers("GA", Role.publisher))
    assert r.status_code == 200, r.text
    _eventually(lambda: _search(client, world, q="低保")["total"] == 1)
    hit = _search(client, world, q="低保")["hits"][0]
    assert hit["code"] == code and hit["provider"]["code"] == "GA"


def test_the_page_carries_facets_and_a_capped_total(client: TestClient, world: World) -> None:
    _register(client, world)
    _register(client, world, name="人口迁移记录", category="208", sharing_type="unconditional",
              sharing_condition="")
    body = _search(client, world, q="人口", facets="true")
    assert (body["total"], body["total_capped"]) == (2, False)
    assert body["facets"]["department"] == {"GA": 2}
    assert body["facets"]["category"] == {"101": 1, "208": 1}
    assert body["facets"]["sharing_type"] == {"conditional": 1, "unconditional": 1}
    assert _search(client, world, q="人口")["facets"] is None  # only when asked for
    r = client.get(API, params={"page": 600}, headers=world.headers("SCJG", Role.requester))
    assert r.status_code == 422 and "10,000" in r.text


def test_the_catalog_page_shows_the_facet_counts_as_filters_to_click(
        client: TestClient, world: World) -> None:
    _register(client, world)
    _register(client, world, name="人口迁移记录", category="208", sharing_type="unconditional",
              sharing_condition="")
    _eventually(lambda: _search(client, world, q="人口")["total"] == 2)
    sign_in(client, world.tokens[("SCJG", Role.requester)])
    page = client.get("/catalog", params={"q": "人口"}).text
    facets = page.split('id="facets"')[1].split("</aside>")[0]
    for group in ("department", "category", "sharing_type", "update_cycle",
                  "security_level"):
        assert f'id="facet-{group}"' in facets, group
    # each value is a link that adds its filter to the query, with the count beside it
    link = re.search(r'<a href="([^"]+)" class="facet-value" data-facet="sharing_type" '
                     r'data-value="unconditional">无条件共享</a> <span class="count">1</span>',
                     facets)
    assert link, facets
    narrowed = client.get(html.unescape(link.group(1))).text
    assert "共 1 个资源" in narrowed and "人口迁移记录" in narrowed
    assert 'aria-current="true"' in narrowed.split('id="facet-sharing_type"')[1][:600]
    assert ">市公安局<" in facets and ">民政<" in facets  # names, not codes


@pytest.mark.parametrize(("q", "message"), [
    ("!@#$ ，。", "只有标点或符号"),
    ("数据" * 150, "搜索词过长：最多 200 个字符"),
    (" ".join(f"w{i}" for i in range(20)), "搜索词过多"),
])
def test_an_unsearchable_query_gets_an_empty_page_that_says_why(
        client: TestClient, world: World, q: str, message: str) -> None:
    _register(client, world)
    sign_in(client, world.tokens[("SCJG", Role.requester)])
    page = client.get("/catalog", params={"q": q, "sharing_type": "conditional"})
    assert page.status_code == 200
    assert message in page.text.split('id="search-notice"')[1][:300]
    assert "共 0 个资源" in page.text and 'id="facets"' not in page.text
    assert 'value="conditional" selected' in page.text  # the filters stay as they were


def test_a_query_of_punctuation_only_finds_nothing_rather_than_everything(
        client: TestClient, world: World) -> None:
    _register(client, world)
    _eventually(lambda: _search(client, world)["total"] == 1)
    assert _search(client, world, q="？！…")["total"] == 0


_BACKGROUND = {"search-writer", "quality-worker", "govshare-deliveries", "govshare-cosigner"}


@contextmanager
def _statements() -> Iterator[list[str]]:
    seen: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if threading.current_thread().name not in _BACKGROUND:  # not the request's
            seen.append(statement)

    engine = db.get_engine()
    event.listen(engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", count)


def _page_statements(seen: list[str]) -> list[str]:
    """The queries of a search besides authentication's (cached for a few seconds, but a
    slow machine may outlast that) and the test client's own job queue drain after each
    request (tests/conftest.py: on PostgreSQL it shares the engine)."""
    return [s for s in seen if "api_token" not in s and "FROM job" not in s
            and s.split()[0].upper() not in ("BEGIN", "COMMIT", "ROLLBACK")]


def test_a_page_reads_nothing_from_the_database(client: TestClient, world: World) -> None:
    for i in range(6):
        _register(client, world, name=f"人口统计{i}")
    _eventually(lambda: _search(client, world, q="人口")["total"] == 6)
    for params in ({"q": "人口", "size": 1}, {"q": "人口", "size": 6}, {"size": 6},
                   {"q": "人口", "sort": "name"}):
        with _statements() as seen:
            body = _search(client, world, **params)
        assert len(body["hits"]) == params.get("size", 6)
        assert _page_statements(seen) == [], "\n".join(seen)
    # The data items, when asked for: one query for the page, whatever its size.
    for size in (1, 6):
        with _statements() as seen:
            hits = _search(client, world, q="人口", size=size, items="true")["hits"]
        assert len(_page_statements(seen)) == 1, "\n".join(seen)
        assert all(len(h["items"]) == h["item_count"] > 0 for h in hits)


def test_the_page_signs_its_caller_in_as_every_endpoint_does(client: TestClient,
                                                             world: World) -> None:
    """The search page recognises a cached token on the event loop (kernel.auth:
    signed_in_on_loop); a token not cached, a browser session, a bad or a disabled token
    go the usual way."""
    me = world.headers("SCJG", Role.requester)
    assert client.get(API, headers=me).status_code == 200  # looked up, then cached
    assert client.get(API, headers=me).status_code == 200  # from the cache
    bad = client.get(API, headers={"Authorization": "Bearer nope"})
    assert bad.status_code == 401 and bad.headers["content-type"].startswith(
        "application/problem+json")
    assert client.get(API).status_code == 401
    sign_in(client, world.tokens[("GA", Role.requester)])
    assert client.get(API).status_code == 200  # the session cookie
    client.cookies.clear()
    with db.session_scope() as session:
        administration.set_active(session, administration.OPERATOR,
                                  identity.get_user(session, "scjg-requester"), False)
    refused = client.get(API, headers=me)  # cached a moment ago, refused at once
    assert refused.status_code == 401 and "disabled" in refused.json()["detail"]


def test_a_hit_is_the_resource_as_the_database_has_it(client: TestClient,
                                                         world: World) -> None:
    code = _register(client, world, name="人口基础信息", keywords=["户籍"], summary="人" * 400)
    _eventually(lambda: _search(client, world, q="户籍")["total"] == 1)
    hit = ResourceHit.model_validate(_search(client, world, q="户籍", items="true")["hits"][0])
    full = client.get(f"{API}/{code}", headers=world.headers("SCJG", Role.requester)).json()
    assert hit.score is not None and hit.score > 0
    assert hit.items is not None and [i.model_dump(mode="json") for i in hit.items] \
        == full["items"]
    assert hit.summary == full["summary"][:SUMMARY_CHARS] + "…"
    assert hit.item_titles == [i["title"] or i["name"] for i in full["items"]]
    assert hit.item_count == len(full["items"])
    shown = hit.model_dump(mode="json", exclude={"score", "items", "summary", "item_count",
                                                 "item_titles"})
    assert shown == {k: full[k] for k in shown}
    # Sorted otherwise, there is no relevance; without items=true, no items.
    plain = _search(client, world, q="户籍", sort="published")["hits"][0]
    assert plain["score"] is None and "items" not in plain


def test_reindex_while_the_server_writes_asks_the_server(client: TestClient,
                                                         world: World) -> None:
    code = _register(client, world)
    _eventually(lambda: _search(client, world, q="人口")["total"] == 1)
    from typer.testing import CliRunner

    from govshare.cli import app

    # The app's writer thread holds this machine's lock: the command asks it to rebuild.
    result = CliRunner().invoke(app, ["search", "reindex", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["resources"] == 1
    assert [h["code"] for h in _search(client, world, q="人口")["hits"]] == [code]
