"""OpenID Connect sign-in with the city's identity platform (统一身份认证), through Authlib.

The authorization-code flow with PKCE and a nonce: ``begin`` returns the provider's URL and the
values to keep (state, nonce, code verifier) in a short-lived signed cookie; ``finish`` trades
the code for tokens and verifies the ID token (signature against the provider's JWKS, issuer,
audience, expiry, nonce, at_hash) before anyone is signed in.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import httpx
from authlib.common.security import generate_token
from authlib.integrations.httpx_client import OAuth2Client
from authlib.oauth2.rfc6749.errors import OAuth2Error
from authlib.oidc.core import CodeIDToken
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from joserfc.jws import JWSRegistry

# Discovery documents and key sets change rarely; fetch them again after this long (and at once
# when an ID token names a key we do not have).
_METADATA_SECONDS = 3600
_TIMEOUT = 10.0


class OidcFailure(Exception):
    """The sign-in did not complete; ``reason`` is a message-catalogue key for the person."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class OidcConfig:
    issuer: str
    client_id: str
    client_secret: str
    scope: str = "openid profile"


@dataclass
class _Cached:
    metadata: dict[str, Any]
    keys: dict[str, Any] | None
    at: float


_cache: dict[str, _Cached] = {}


def _metadata(config: OidcConfig, *, fresh_keys: bool = False) -> tuple[dict[str, Any],
                                                                       dict[str, Any]]:
    cached = _cache.get(config.issuer)
    if cached is None or time.monotonic() - cached.at > _METADATA_SECONDS:
        url = config.issuer.rstrip("/") + "/.well-known/openid-configuration"
        try:
            response = httpx.get(url, timeout=_TIMEOUT)
            response.raise_for_status()
        except httpx.HTTPError as exc:
            raise OidcFailure("signin.oidc_unreachable", str(exc)) from None
        cached = _cache[config.issuer] = _Cached(response.json(), None, time.monotonic())
        if cached.metadata.get("issuer") != config.issuer:
            raise OidcFailure("signin.oidc_misconfigured", "issuer mismatch in discovery")
    if cached.keys is None or fresh_keys:
        try:
            response = httpx.get(cached.metadata["jwks_uri"], timeout=_TIMEOUT)
            response.raise_for_status()
        except (httpx.HTTPError, KeyError) as exc:
            raise OidcFailure("signin.oidc_unreachable", str(exc)) from None
        cached.keys = response.json()
    return cached.metadata, cached.keys or {}


def _client(config: OidcConfig, redirect_uri: str) -> OAuth2Client:
    return OAuth2Client(client_id=config.client_id, client_secret=config.client_secret,
                        scope=config.scope, redirect_uri=redirect_uri,
                        code_challenge_method="S256", timeout=_TIMEOUT)


def _key_set(keys: dict[str, Any]) -> KeySet:
    return KeySet.import_key_set(keys)  # type: ignore[arg-type]  # a JWKS document


def begin(config: OidcConfig, redirect_uri: str) -> tuple[str, dict[str, str]]:
    """The URL to send the browser to, and what to remember until it comes back."""
    metadata, _ = _metadata(config)
    pending = {"state": generate_token(32), "nonce": generate_token(32),
               "verifier": generate_token(64)}
    with _client(config, redirect_uri) as client:
        url, _ = client.create_authorization_url(
            metadata["authorization_endpoint"], state=pending["state"],
            nonce=pending["nonce"], code_verifier=pending["verifier"])
    return url, pending


def finish(config: OidcConfig, redirect_uri: str, params: dict[str, str],
           pending: dict[str, str]) -> dict[str, Any]:
    """The verified ID-token claims of the person who just signed in at the provider."""
    if params.get("error"):
        raise OidcFailure("signin.oidc_refused", params.get("error_description", params["error"]))
    if not params.get("code") or params.get("state") != pending.get("state"):
        raise OidcFailure("signin.oidc_state", "state mismatch")
    metadata, keys = _metadata(config)
    try:
        with _client(config, redirect_uri) as client:
            token = client.fetch_token(metadata["token_endpoint"], code=params["code"],
                                       code_verifier=pending["verifier"],
                                       redirect_uri=redirect_uri)
    except (OAuth2Error, httpx.HTTPError) as exc:
        raise OidcFailure("signin.oidc_refused", str(exc)) from None
    if "id_token" not in token:
        raise OidcFailure("signin.oidc_refused", "no id_token")
    registry = JWSRegistry(algorithms=metadata.get("id_token_signing_alg_values_supported"))
    try:
        try:
            decoded = jwt.decode(token["id_token"], _key_set(keys),
                                 registry=registry)
        except JoseError:  # perhaps a rotated key: fetch the key set once more
            _, keys = _metadata(config, fresh_keys=True)
            decoded = jwt.decode(token["id_token"], _key_set(keys),
                                 registry=registry)
        claims = CodeIDToken(decoded.claims, decoded.header,
                             {"iss": {"essential": True, "value": config.issuer}},
                             {"nonce": pending["nonce"], "client_id": config.client_id,
                              "access_token": token.get("access_token")})
        claims.validate(leeway=60)
    except JoseError as exc:
        expired = type(exc).__name__ == "ExpiredTokenError"
        raise OidcFailure("signin.oidc_expired" if expired else "signin.oidc_invalid",
                          str(exc)) from None
    return dict(claims)
