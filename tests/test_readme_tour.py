"""The README's tour, command by command as written, against a real server; the metadata
example is the OpenAPI document's; ``/docs`` and ``/redoc`` work offline under our CSP."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from govshare.web.live import Server, server_env, start_server

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
SERVER_IN_README = "http://127.0.0.1:8000"


def tour_commands() -> str:
    """The ```sh block under "## A tour", without the placeholder token line."""
    text = README.read_text(encoding="utf-8")
    section = text.split("\n## A tour\n", 1)[1]
    block = re.search(r"```sh\n(.*?)```", section, re.S)
    assert block, "the README's tour has no sh block"
    lines = block.group(1).splitlines()
    assert lines[0].startswith("export T=<"), lines[0]
    return "\n".join(lines[1:]) + "\n"


def _cli(data_dir: Path, *args: str) -> str:
    govshare = Path(sys.executable).parent / "govshare"
    done = subprocess.run([str(govshare), *args], env=server_env(data_dir), text=True,
                          capture_output=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, str]]:
    """A server on a fresh data directory with a GA publisher made as the README's CLI
    section makes one; (server, token)."""
    root = tmp_path_factory.mktemp("tour")
    data_dir = root / "data"
    _cli(data_dir, "dept", "create", "GA", "市公安局", "Public Security Bureau")
    _cli(data_dir, "user", "create", "alice", "GA", "--role", "publisher", "--role",
         "requester")
    token = json.loads(_cli(data_dir, "token", "issue", "alice", "--days", "1", "--json"))
    server = start_server(data_dir, root / "server.log")
    try:
        yield server, str(token["token"])
    finally:
        server.stop()


def test_every_command_of_the_tour_works_as_written(server: tuple[Server, str],
                                                   tmp_path: Path) -> None:
    live, token = server
    if shutil.which("curl") is None:
        pytest.skip("no curl")
    shutil.copytree(ROOT / "docs" / "examples", tmp_path / "docs" / "examples")
    script = tour_commands()
    assert SERVER_IN_README in script
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script.replace(SERVER_IN_README, live.url)],
        cwd=tmp_path, env={**os.environ, "T": token}, capture_output=True, text=True,
        timeout=300, check=False)
    assert done.returncode == 0, (done.stdout[-3000:], done.stderr[-3000:])
    registered = json.loads((tmp_path / "registered.json").read_text(encoding="utf-8"))
    assert registered["row_count"] == 3
    assert [i["name"] for i in registered["items"]][:3] == ["id_number", "姓名",
                                                            "chu_sheng_ri_qi"]
    out = done.stdout
    # The search, the registration, the appended version and the DCAT catalogue, in order.
    assert '"total":0' in out and '"row_count":1' in out and '"total_rows":4' in out
    assert '"normalised":{"id_number":{"upper_case":1}' in out
    assert "dcat:Catalog" in out or '"@context"' in out


def test_the_example_metadata_is_the_openapi_example(server: tuple[Server, str]) -> None:
    live, _ = server
    schema = httpx.get(live.url + "/openapi.json", timeout=30).json()
    example = json.loads((ROOT / "docs" / "examples" / "meta.json").read_text("utf-8"))
    resource_in = schema["components"]["schemas"]["ResourceIn"]
    assert resource_in["examples"] == [example]
    post = schema["paths"]["/api/v1/resources"]["post"]["requestBody"]["content"]
    form = post["multipart/form-data"]
    assert form["encoding"]["metadata"]["contentType"] == "application/json"
    body = form["schema"]["$ref"].rsplit("/", 1)[1]
    metadata = schema["components"]["schemas"][body]["properties"]["metadata"]
    assert metadata["$ref"] == "#/components/schemas/ResourceIn"
    assert "DataItemIn" in schema["components"]["schemas"]
