"""Witness processes for the tests: `govshare witness serve` in a subprocess on loopback."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from kernel import db
from kernel.settings import get_settings
from tests.server_support import ROOT, free_port, wait_serving
from translog import checkpoints, note, service, witness


@dataclass
class WitnessProcess:
    name: str
    data_dir: Path
    log_vkey: str
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def verifier(self) -> note.Verifier:
        private = witness.load_or_create_key(self.data_dir)
        return note.Verifier(self.name, note.COSIGNATURE_V1, note.raw_public(private))

    def config(self) -> str:
        return f"{self.verifier.vkey} {self.url}"

    def start(self, timeout: float = 60) -> None:
        log = (self.data_dir.parent / f"{self.data_dir.name}.log").open("ab")
        # The same Typer app `govshare witness` mounts, without loading the whole CLI.
        self.process = subprocess.Popen(
            [sys.executable, "-c", "from translog.witness_cli import app; app()", "serve",
             "--data-dir", str(self.data_dir), "--name", self.name, "--log", self.log_vkey,
             "--port", str(self.port)], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        outcome = wait_serving(self.process, self.url + "/", timeout)
        if outcome == "exited":
            raise RuntimeError(f"witness {self.name} exited")
        if outcome == "up":
            return
        self.stop()
        raise RuntimeError(f"witness {self.name} did not start")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=20)
        self.process = None

    def state_size(self) -> int:
        return int(httpx.get(self.url + "/").json()["logs"][0]["size"])

    def evidence(self) -> list[dict[str, str]]:
        return list(httpx.get(self.url + "/evidence").json()["evidence"])


@contextmanager
def three_witnesses(name: str, root: Path,
                    monkeypatch: pytest.MonkeyPatch) -> Iterator[list[WitnessProcess]]:
    """Three witness processes following this test's log, configured as its witnesses;
    ``name`` is a format with one ``{}`` for the witness number."""
    with db.session_scope() as session:
        log_vkey = checkpoints.log_verifier(service.ensure_key(session)).vkey
    procs = [WitnessProcess(name.format(i), root / f"w{i}", log_vkey) for i in (1, 2, 3)]
    try:
        for p in procs:
            p.start()
        monkeypatch.setenv("GOVSHARE_LOG_WITNESSES", "\n".join(p.config() for p in procs))
        get_settings.cache_clear()
        yield procs
    finally:
        for p in procs:
            p.stop()
