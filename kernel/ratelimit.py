"""Brute-force protection for API tokens: failed sign-ins are counted per client IP and per
token prefix, and past a limit further attempts get 429 with ``Retry-After``.

Tokens carry 256 bits of randomness, so guessing one is hopeless anyway; this keeps a
guesser from hammering the database and makes an attack visible (it is logged once per block).

The counters live in process memory, not in the database: counting in the database would turn
every bad request into a write, itself a way to starve SQLite's single writer. With N workers
an attacker gets at most N times the budget before every worker blocks them; docs/security.md
gives the numbers. Only failures count, so a valid user is never slowed down by their own
successful requests; while a client IP or prefix is blocked, even a correct token from it gets
429 (answering it would tell the guesser which guess was right).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import OrderedDict, deque

from fastapi import Request

from kernel.problems import TooManyRequests
from kernel.settings import get_settings

log = logging.getLogger("govshare")

# Bound on the number of distinct IPs/prefixes tracked, so a spray of addresses cannot grow
# memory without limit (the oldest entries are forgotten first).
MAX_TRACKED = 50_000
PREFIX_LENGTH = 10  # as stored in ApiToken.prefix: "gs_" and 7 random characters


class _Window:
    """Failure times per key within a sliding window."""

    def __init__(self) -> None:
        self._hits: OrderedDict[str, deque[float]] = OrderedDict()
        self._lock = threading.Lock()

    def retry_after(self, key: str, limit: int, window: float, now: float) -> float:
        """Seconds until ``key`` may try again (0: not blocked)."""
        with self._lock:
            hits = self._hits.get(key)
            if hits is None:
                return 0.0
            while hits and hits[0] <= now - window:
                hits.popleft()
            if len(hits) < limit:
                return 0.0
            return hits[len(hits) - limit] + window - now

    def add(self, key: str, now: float) -> int:
        with self._lock:
            hits = self._hits.pop(key, None) or deque()
            hits.append(now)
            self._hits[key] = hits  # most recent last
            while len(self._hits) > MAX_TRACKED:
                self._hits.popitem(last=False)
            return len(hits)

    def clear(self) -> None:
        with self._lock:
            self._hits.clear()


_by_ip = _Window()
_by_prefix = _Window()


def _client_ip(request: Request) -> str:
    # Behind a reverse proxy, run uvicorn with --proxy-headers --forwarded-allow-ips so this
    # is the real client (docs/security.md); never trust X-Forwarded-For from anyone else.
    return request.client.host if request.client else "unknown"


def check(request: Request, token: str) -> None:
    """Refuse the attempt with 429 if its IP or token prefix is blocked."""
    settings = get_settings()
    now = time.monotonic()
    window = float(settings.auth_failure_window_seconds)
    wait = max(
        _by_ip.retry_after(_client_ip(request), settings.auth_failures_per_ip, window, now),
        _by_prefix.retry_after(token[:PREFIX_LENGTH], settings.auth_failures_per_prefix,
                               window, now),
    )
    if wait > 0:
        seconds = max(1, math.ceil(wait))
        raise TooManyRequests(
            f"Too many failed sign-ins from this address or with this token. Wait {seconds} "
            "seconds, then check that you are using the full, current token.",
            retry_after=seconds,
                              key="problem.kernel.rate_limited", params={"seconds": seconds})


def failed(request: Request, token: str) -> None:
    """Record a failed sign-in (unknown, revoked or expired token)."""
    settings = get_settings()
    now = time.monotonic()
    ip = _client_ip(request)
    by_ip = _by_ip.add(ip, now)
    by_prefix = _by_prefix.add(token[:PREFIX_LENGTH], now)
    if by_ip == settings.auth_failures_per_ip or by_prefix == settings.auth_failures_per_prefix:
        # The token itself is never logged, only where the attempts come from.
        log.warning("sign-in attempts blocked: %d failures from %s (%d with one token prefix) "
                    "within %ss", by_ip, ip, by_prefix, settings.auth_failure_window_seconds)


def reset() -> None:
    """Forget every counter (tests)."""
    _by_ip.clear()
    _by_prefix.clear()
