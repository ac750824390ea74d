"""Named points where the crash tests (tests/test_crash_server.py) stop a real server.

With ``GOVSHARE_CRASH_AT=<name>[,<name>…]`` set, a thread reaching a listed point writes
``<GOVSHARE_CRASH_DIR>/<name>`` and then blocks forever, so the test can SIGKILL the whole
process while it is exactly there (a kill from outside, like the OOM killer or a power cut;
a process killing itself would not show whether other threads' work survives). Without the
variable (always, in production) ``reach`` is one dictionary lookup.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

ENV = "GOVSHARE_CRASH_AT"
DIR_ENV = "GOVSHARE_CRASH_DIR"


def reach(name: str) -> None:
    armed = os.environ.get(ENV)
    if not armed or name not in armed.split(","):
        return
    folder = os.environ.get(DIR_ENV)
    if folder:
        Path(folder, name).write_text(str(os.getpid()))
    while True:  # until the test's SIGKILL
        time.sleep(3600)
