"""Schemathesis hooks for the API fuzz (tests/fuzz.py): every error is problem+json."""

from __future__ import annotations

from typing import Any

import schemathesis


@schemathesis.check
def problem_json(ctx: Any, response: Any, case: Any) -> bool | None:
    if response.status_code >= 400:
        media = response.headers.get("content-type", [""])
        media = media[0] if isinstance(media, list) else media
        if not media.startswith("application/problem+json"):
            raise AssertionError(f"{response.status_code} answered as {media!r}, "
                                 "not application/problem+json")
    return None
