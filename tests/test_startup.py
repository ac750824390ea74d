"""What the server does before it takes its first request."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

_PROBE = """
import sys
from fastapi.testclient import TestClient
from govshare.app import create_app
assert "great_expectations" not in sys.modules, "imported before startup: the probe is void"
with TestClient(create_app()) as client:
    loaded = {m for m in ("great_expectations", "quality.gx_rules", "quality.gx_duckdb")
              if m in sys.modules}
    print(sorted(loaded))
"""


def test_great_expectations_is_imported_before_any_request(data_dir: Path) -> None:
    """Imported lazily, GX could be imported by two threads at once (a request adding an
    expectation, the quality worker starting a run), which tripped Python's import-lock
    deadlock detection in the fuzz run: startup imports it first, in one thread. A fresh
    interpreter, so an import by an earlier test cannot make this pass."""
    done = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True,
                          timeout=300, env=os.environ.copy(), check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1] == \
        "['great_expectations', 'quality.gx_duckdb', 'quality.gx_rules']"
