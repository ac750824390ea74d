"""A real govshare server in a subprocess on a demo world, and Debian's Chromium through
Playwright: shared by the browser tests (tests/browser) and ``govshare screenshots``.

Playwright is a development dependency; only these callers import it. Its own browser
download (``playwright install``) is never used: ``.ci/ensure-chromium`` installs Debian's.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def server_env(data_dir: Path) -> dict[str, str]:
    # A throw-away world in a temporary directory: development mode, said explicitly (the
    # master key file under the public development passphrase; kernel/secrets.py).
    return {**os.environ, "GOVSHARE_DATA_DIR": str(data_dir), "GOVSHARE_MODE": "development",
            # The dashboard must show what just happened, not a minute-old mart.
            "GOVSHARE_METRICS_REFRESH_SECONDS": "0"}


def load_demo(data_dir: Path, scale: str = "tiny") -> dict[tuple[str, str], str]:
    """``govshare demo`` into ``data_dir``; the tokens by (department, role)."""
    govshare = Path(sys.executable).parent / "govshare"
    done = subprocess.run([str(govshare), "demo", "--scale", scale, "--json"],
                          env=server_env(data_dir), capture_output=True, text=True,
                          timeout=3600, check=False)
    if done.returncode != 0:
        raise RuntimeError("govshare demo failed:\n" + done.stderr[-3000:])
    users = json.loads(done.stdout)["users"]
    return {(u["department"], role): u["token"] for u in users for role in u["roles"]}


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    url: str

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def start_server(data_dir: Path, log: Path, env: Mapping[str, str] | None = None) -> Server:
    """``govshare serve --with-worker`` (the server and one worker process for the
    deliveries and quality runs, as ``make run``) on a free port; returns once /healthz
    answers. ``env`` adds settings (e.g. the browser tests' identity platform)."""
    port = free_port()
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-c", "from govshare.cli import main; main()", "serve",
             "--with-worker", "--host", "127.0.0.1", "--port", str(port)],
            env={**server_env(data_dir), **(env or {})}, stdout=out,
            stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("the server exited:\n" + log.read_text()[-3000:])
        try:
            if httpx.get(url + "/healthz", timeout=2).status_code == 200:
                return Server(process, url)
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    process.kill()
    raise RuntimeError("the server did not start:\n" + log.read_text()[-3000:])
