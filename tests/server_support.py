"""A real govshare server for the crash and fuzz tests: uvicorn in a subprocess on loopback,
over the test's data directory (no test helpers inside it, only the environment)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from govshare.migrate import upgrade
from kernel.identity import DepartmentKind, Role
from tests.world import create_departments

ROOT = Path(__file__).parent.parent
DEPARTMENTS = [
    ("GA", "市公安局", "Public Security Bureau", DepartmentKind.line),
    ("SCJG", "市市场监督管理局", "Market Regulation Administration", DepartmentKind.line),
    ("SJJ", "市政务服务和数据管理局", "Data Bureau", DepartmentKind.bureau),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_world() -> dict[tuple[str, Role], str]:
    """Migrate the test's database and create one user per role in each department."""
    upgrade()
    tokens = create_departments(DEPARTMENTS)
    return tokens


@dataclass
class Server:
    """One server process; ``start`` again after ``kill`` to "restart" on the same data."""

    log_path: Path
    env: dict[str, str] = field(default_factory=dict)
    port: int = 0
    process: subprocess.Popen[bytes] | None = None
    workers: int = 1  # uvicorn's worker processes

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, extra_env: dict[str, str] | None = None, timeout: float = 90) -> None:
        self.port = free_port()
        env = {**os.environ, **self.env, **(extra_env or {})}
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "uvicorn", "govshare.app:create_app", "--factory",
                 "--host", "127.0.0.1", "--port", str(self.port), "--log-level", "warning",
                 *(["--workers", str(self.workers)] if self.workers > 1 else [])],
                cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=self.workers > 1)  # kill() reaches the whole group
        outcome = wait_serving(self.process, self.url + "/healthz", timeout)
        if outcome == "exited":
            raise RuntimeError(f"server exited: {self.log_path.read_text()[-3000:]}")
        if outcome == "up":
            return
        self.kill()
        raise RuntimeError(f"server did not start: {self.log_path.read_text()[-3000:]}")

    def kill(self) -> None:
        """SIGKILL: no shutdown handler, no rollback, no flush — like a power cut."""
        if self.process is not None and self.process.poll() is None:
            if self.workers > 1:
                os.killpg(self.process.pid, signal.SIGKILL)
            else:
                self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=30)
        self.process = None

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()
        self.process = None


@dataclass
class Worker:
    """One ``govshare worker`` process over the test's data directory and database."""

    log_path: Path
    env: dict[str, str] = field(default_factory=dict)
    concurrency: int = 1
    process: subprocess.Popen[bytes] | None = None

    def start(self, extra_env: dict[str, str] | None = None) -> None:
        env = {**os.environ, **self.env, **(extra_env or {})}
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-c", "from govshare.cli import main; main()", "worker",
                 "--concurrency", str(self.concurrency)],
                cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def kill(self) -> None:
        """SIGKILL: the job it runs keeps its lease until the lease expires."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=30)
        self.process = None

    def stop(self, timeout: float = 60) -> int | None:
        """SIGTERM: the running job finishes first; returns the exit code."""
        code = None
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                code = self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        self.process = None
        return code


def wait_serving(process: subprocess.Popen[bytes], url: str, timeout: float) -> str:
    """Poll ``url`` until it answers 200: "up", "exited" (the process died first) or
    "timeout"; the caller names what failed and stops what did not start."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return "exited"
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return "up"
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    return "timeout"
