"""The one start-up hook a context may call: "make this process ready to work".

What ready means (migrate the schema, wire the event subscribers) is known only to the
composition root, which registers it with ``on_ready``; a context's CLI calls ``ready()``
without importing the root, so the layering stays one-way.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

_hook: Callable[[], None] | None = None
_done = False
_lock = threading.Lock()


def on_ready(hook: Callable[[], None]) -> None:
    """Register what ``ready()`` runs (the composition root does this at import)."""
    global _hook, _done
    with _lock:
        _hook, _done = hook, False


def ready() -> None:
    """Run the registered start-up hook once per process."""
    global _done
    with _lock:
        if _done or _hook is None:
            return
        _hook()
        _done = True
