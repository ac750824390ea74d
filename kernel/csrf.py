"""CSRF tokens tied to the browser session.

A page's token is HMAC-SHA256 keyed with the session's secret cookie: the signed-in user's
session cookie (``govshare_session``, kernel.sessions), or before sign-in a random
``govshare_presession`` cookie. Both cookies are HttpOnly and SameSite=Strict, so a page on
another site can neither read them nor compute the token; nothing is stored on the server.
Bearer-token API clients send no cookie and need no CSRF token (another site cannot make a
browser send an Authorization header).
"""

from __future__ import annotations

import hashlib
import hmac

from fastapi import Request

from kernel.problems import Forbidden

SESSION_COOKIE = "govshare_session"  # kernel.sessions.COOKIE
PRESESSION_COOKIE = "govshare_presession"
HEADER = "X-CSRF-Token"
FORM_FIELD = "csrf_token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})


def token_for(secret: str) -> str:
    return hmac.new(secret.encode(), b"govshare csrf v1", hashlib.sha256).hexdigest()


def session_secret(request: Request) -> str | None:
    return request.cookies.get(SESSION_COOKIE) or request.cookies.get(PRESESSION_COOKIE)


def check(request: Request, sent: str | None) -> None:
    """Refuse an unsafe cookie-authenticated request without the session's CSRF token."""
    secret = session_secret(request)
    if not secret or not sent or not hmac.compare_digest(token_for(secret), sent):
        raise Forbidden("The form or request is missing its security token (CSRF) or it has "
                        "expired. Reload the page and try again.")
