"""The token cache (kernel.authcache): a repeated request is authenticated without the
database, and a revoked token or a disabled user is refused at once all the same, also when
another process made the change; a change nothing announces lasts at most the TTL."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event, text

from govshare import administration
from kernel import authcache, db, identity
from kernel.identity import Role
from tests.conftest import World

ME = "/api/v1/me"


@contextmanager
def _token_lookups() -> Iterator[list[str]]:
    seen: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if "api_token" in statement and threading.current_thread().name != "search-writer":
            seen.append(statement)

    engine = db.get_engine()
    event.listen(engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", count)


def test_a_token_seen_a_moment_ago_needs_no_lookup(client: TestClient, world: World) -> None:
    me = world.headers("GA", Role.requester)
    with _token_lookups() as seen:
        assert client.get(ME, headers=me).status_code == 200
        first = len(seen)
        assert client.get(ME, headers=me).json()["username"] == "ga-requester"
    assert first >= 1 and len(seen) == first  # the second request: no lookup


def test_a_disabled_user_is_refused_at_once(client: TestClient, world: World) -> None:
    me = world.headers("GA", Role.requester)
    assert client.get(ME, headers=me).status_code == 200  # cached
    with db.session_scope() as session:
        administration.set_active(session, administration.OPERATOR,
                                  identity.get_user(session, "ga-requester"), False)
    refused = client.get(ME, headers=me)
    assert refused.status_code == 401 and "disabled" in refused.json()["detail"]


def test_a_revocation_by_another_process_is_refused_at_once(client: TestClient,
                                                            world: World) -> None:
    me = world.headers("GA", Role.requester)
    assert client.get(ME, headers=me).status_code == 200  # cached
    plain = world.tokens[("GA", Role.requester)]
    revoke = ("from sqlmodel import select\n"
              "from kernel import db, identity\n"
              "with db.session_scope() as s:\n"
              "    t = s.exec(select(identity.ApiToken).where(identity.ApiToken.token_hash"
              f" == identity.hash_token({plain!r}))).one()\n"
              "    identity.revoke_token(s, t.id)\n")
    # Another process: its commit hook replaces the stamp file that this one checks.
    subprocess.run([sys.executable, "-c", revoke], check=True, env=dict(os.environ))
    refused = client.get(ME, headers=me)
    assert refused.status_code == 401 and "revoked" in refused.json()["detail"]


def test_an_unannounced_change_lasts_at_most_the_ttl(client: TestClient, world: World,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    me = world.headers("GA", Role.requester)
    assert client.get(ME, headers=me).status_code == 200  # cached
    with db.get_engine(write=True).begin() as conn:  # SQL by hand: no session, no hook
        conn.execute(text("UPDATE api_token SET revoked_at = expires_at"))
    assert client.get(ME, headers=me).status_code == 200  # still cached: the TTL's price
    monkeypatch.setattr(authcache, "TTL", 0.0)
    assert client.get(ME, headers=me).status_code == 401
