"""The native library is built at install time, never by a server; the pseudonym path in use is
shown in /healthz and /metrics, and a fallback is loud (access/native/__init__.py)."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from access import native
from kernel.identity import Role
from tests.conftest import World

# `make test` requires the library (it installs govshare, which builds it); a bare worktree
# whose extension was never built (`python setup.py build_ext --inplace`) skips, saying so.
REQUIRED = os.environ.get("GOVSHARE_REQUIRE_NATIVE") == "1"
NOT_INSTALLED = os.environ.get("GOVSHARE_NO_NATIVE") == "1" or (
    native.library_file() is None and not REQUIRED)


@pytest.fixture
def fresh_loader(monkeypatch: pytest.MonkeyPatch) -> None:
    """A loader that has not tried yet (restored afterwards)."""
    monkeypatch.setattr(native, "_loaded", [])


@pytest.mark.skipif(NOT_INSTALLED, reason="the native extension is not built here")
def test_a_server_process_loads_it_without_any_compiler(tmp_path: Path) -> None:
    """No compiler on PATH, CC pointing nowhere, an empty cache folder: the library still
    loads and passes its self-test, because it was built when govshare was installed."""
    env = {**os.environ, "PATH": str(tmp_path), "CC": str(tmp_path / "no-such-cc"),
           "XDG_CACHE_HOME": str(tmp_path / "cache"), "HOME": str(tmp_path)}
    probe = "from access import native; print(native.status().path)"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          timeout=300, env=env, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == native.PATH_C_API
    assert not (tmp_path / "cache").exists()  # nothing compiled or cached at run time
    assert native.library_file() is not None


def test_the_path_in_use_is_in_healthz_and_metrics(client: TestClient, world: World) -> None:
    expected = native.PATH_SQL if NOT_INSTALLED else native.PATH_C_API
    assert client.get("/healthz").json()["pseudonym_path"] == expected
    text = client.get("/metrics", headers=world.headers("GA", Role.admin)).text
    assert f'govshare_pseudonym_path{{path="{expected}"}} 1.0' in text
    others = {native.PATH_C_API, native.PATH_ARROW, native.PATH_SQL} - {expected}
    for other in others:
        assert f'govshare_pseudonym_path{{path="{other}"}} 0.0' in text


def test_without_the_library_the_fallback_is_loud_and_visible(
        client: TestClient, fresh_loader: None, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(native, "library_file", lambda: None)
    with caplog.at_level(logging.ERROR, logger="govshare"):
        assert native.load() is None
    assert "sql path" in caplog.text and "not installed" in caplog.text
    health = client.get("/healthz").json()
    assert health["pseudonym_path"] == native.PATH_SQL
    assert "pip install" in health["pseudonym_path_detail"]


def test_a_self_test_that_crashes_costs_the_child_not_the_server(
        tmp_path: Path, fresh_loader: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """A DuckDB or OpenSSL whose layout differs from the declarations can crash the code that
    calls it: the self-test runs in a child, so the server only sees an exit status."""
    crashing = tmp_path / "python"
    crashing.write_text("#!/bin/sh\nkill -SEGV $$\n")
    crashing.chmod(0o755)
    monkeypatch.setattr(sys, "executable", str(crashing))
    monkeypatch.setattr(native, "library_file", lambda: tmp_path / "lib.so")
    assert native.load() is None
    assert native.status().path == native.PATH_SQL
    assert "exited with -11" in native.status().detail
