"""A small, real OpenID Connect provider for the sign-in tests (a process the tests start).

It stands in for a city's unified identity platform (统一身份认证): discovery, a JWKS, an
authorization endpoint with a login form (a person picks an account and allows or denies), and
a token endpoint that checks the client secret, the redirect URI and PKCE and returns an
RS256-signed ID token. The protocol pieces are Authlib's (PKCE, the at_hash half-hash) and
joserfc's (keys, JWT signing), the libraries govshare's client uses, so nothing is mocked:
govshare talks HTTP to this process exactly as to a production provider.

Accounts come from a JSON file (``--accounts``): ``{"sub": {claims...}}``. An account with
``"_expired": true`` gets an ID token that expired ten minutes ago, for the expired-login test.

Run: ``python -m tests.oidc_provider --port 9000 --client-id govshare --client-secret s
--accounts accounts.json``.
"""

from __future__ import annotations

import argparse
import html
import json
import secrets
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import uvicorn
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from authlib.oidc.core.util import create_half_hash
from joserfc import jwt
from joserfc.jwk import RSAKey
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route


def build_app(issuer: str, client_id: str, client_secret: str,
              accounts: dict[str, dict[str, Any]]) -> Starlette:
    key = RSAKey.generate_key(2048, parameters={"kid": "test-1", "use": "sig", "alg": "RS256"},
                              private=True)
    codes: dict[str, dict[str, Any]] = {}

    async def discovery(request: Request) -> Response:
        return JSONResponse({
            "issuer": issuer,
            "authorization_endpoint": issuer + "/authorize",
            "token_endpoint": issuer + "/token",
            "jwks_uri": issuer + "/jwks",
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic",
                                                      "client_secret_post"],
            "code_challenge_methods_supported": ["S256"],
            "scopes_supported": ["openid", "profile", "email"],
        })

    async def jwks(request: Request) -> Response:
        return JSONResponse({"keys": [key.as_dict(private=False)]})

    async def authorize(request: Request) -> Response:
        params = dict(request.query_params) if request.method == "GET" else dict(
            await request.form())
        if params.get("client_id") != client_id:
            return Response("unknown client", status_code=400)
        redirect_uri = params.get("redirect_uri", "")
        if request.method == "GET":
            hidden = "".join(f'<input type="hidden" name="{html.escape(k)}" '
                             f'value="{html.escape(v)}">' for k, v in params.items())
            options = "".join(f'<option value="{html.escape(s)}">{html.escape(s)}</option>'
                              for s in accounts)
            return HTMLResponse(
                "<!doctype html><html lang='en'><title>Test identity platform</title>"
                "<main><h1>Test identity platform</h1><form method='post'>" + hidden +
                "<label>Account <select name='account' id='account'>" + options +
                "</select></label> <button name='decision' value='allow' id='allow'>"
                "Allow</button> <button name='decision' value='deny' id='deny'>Deny</button>"
                "</form></main></html>")
        state = params.get("state", "")
        if params.get("decision") != "allow":
            query = urlencode({"error": "access_denied", "state": state,
                               "error_description": "The user refused."})
            return RedirectResponse(f"{redirect_uri}?{query}", status_code=303)
        code = secrets.token_urlsafe(24)
        codes[code] = {"sub": params.get("account", ""), "redirect_uri": redirect_uri,
                       "nonce": params.get("nonce"), "challenge": params.get("code_challenge"),
                       "at": time.time()}
        return RedirectResponse(f"{redirect_uri}?{urlencode({'code': code, 'state': state})}",
                                status_code=303)

    async def token(request: Request) -> Response:
        form = dict(await request.form())
        sent_id, sent_secret = form.get("client_id"), form.get("client_secret")
        basic = request.headers.get("authorization", "")
        if basic.lower().startswith("basic "):
            import base64
            from urllib.parse import unquote

            decoded = base64.b64decode(basic[6:]).decode()
            sent_id, _, sent_secret = (unquote(p) for p in decoded.partition(":"))
        if sent_id != client_id or sent_secret != client_secret:
            return JSONResponse({"error": "invalid_client"}, status_code=401)
        grant = codes.pop(str(form.get("code", "")), None)
        if grant is None or time.time() - grant["at"] > 60:
            return JSONResponse({"error": "invalid_grant"}, status_code=400)
        if grant["redirect_uri"] != form.get("redirect_uri"):
            return JSONResponse({"error": "invalid_grant"}, status_code=400)
        verifier = str(form.get("code_verifier", ""))
        if grant["challenge"] and create_s256_code_challenge(verifier) != grant["challenge"]:
            return JSONResponse({"error": "invalid_grant",
                                 "error_description": "PKCE check failed"}, status_code=400)
        account = dict(accounts.get(grant["sub"], {}))
        expired = bool(account.pop("_expired", False))
        now = int(time.time()) - (1200 if expired else 0)
        access_token = secrets.token_urlsafe(24)
        claims = {"iss": issuer, "sub": grant["sub"], "aud": client_id, "iat": now,
                  "exp": now + 600, "auth_time": now,
                  "at_hash": create_half_hash(access_token, "RS256").decode(), **account}
        if grant["nonce"]:
            claims["nonce"] = grant["nonce"]
        id_token = jwt.encode({"alg": "RS256", "kid": "test-1"}, claims, key)
        return JSONResponse({"access_token": access_token, "token_type": "Bearer",
                             "expires_in": 600, "id_token": id_token})

    return Starlette(routes=[
        Route("/.well-known/openid-configuration", discovery),
        Route("/jwks", jwks),
        Route("/authorize", authorize, methods=["GET", "POST"]),
        Route("/token", token, methods=["POST"]),
    ])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--client-id", required=True)
    parser.add_argument("--client-secret", required=True)
    parser.add_argument("--accounts", type=Path, required=True)
    args = parser.parse_args()
    issuer = f"http://127.0.0.1:{args.port}"
    accounts = json.loads(args.accounts.read_text("utf-8"))
    uvicorn.run(build_app(issuer, args.client_id, args.client_secret, accounts),
                host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
