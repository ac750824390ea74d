"""Download links: signed, expiring tokens bound to one delivery and one department (an
HKDF-derived purpose key, ``kernel.secrets``), and the authorised, logged download."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
from datetime import datetime, timedelta
from pathlib import Path

from sqlmodel import Session

from access import service as svc
from access.delivery import get_delivery
from access.models import (
    Application,
    ApplicationState,
    Delivery,
    Grant,
)
from access.planning import Gone, deliveries_dir
from kernel import secrets
from kernel.auth import Principal
from kernel.db import utcnow
from kernel.events import Event, publish
from kernel.identity import Role
from kernel.problems import Forbidden, Invalid
from kernel.settings import get_settings

log = logging.getLogger("govshare")


def _link_key(kid: str | None = None) -> tuple[str, bytes]:
    # An HKDF-derived purpose key (kernel.secrets), not anything a passphrase determines: a
    # link token offers no offline test of a guessed passphrase. The key id travels in the
    # token, so links made before a key rotation keep working until they expire.
    if kid is None:
        key = secrets.current(secrets.DOWNLOAD_LINKS)
        return key.kid, key.key
    return kid, secrets.key_for(secrets.DOWNLOAD_LINKS, kid)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def make_token(delivery_id: int, department_id: int, expires: datetime) -> str:
    kid, key = _link_key()
    body = _b64(json.dumps({"d": delivery_id, "g": department_id, "k": kid,
                            "e": int(expires.timestamp())}, separators=(",", ":")).encode())
    mac = hmac.new(key, body.encode(), hashlib.sha256).digest()
    return f"{body}.{_b64(mac)}"


def check_token(token: str, delivery_id: int, department_id: int) -> None:
    body, _, mac = token.partition(".")
    try:  # the key id is read before the MAC is checked only to choose the key
        unverified = json.loads(_unb64(body))
        _, key = _link_key(str(unverified["k"]))
        expected = _b64(hmac.new(key, body.encode(), hashlib.sha256).digest())
        claims = unverified if hmac.compare_digest(mac, expected) else None
    except (ValueError, TypeError, KeyError, secrets.SecretsUnavailable):
        claims = None
    if not isinstance(claims, dict) or claims.get("d") != delivery_id \
            or claims.get("g") != department_id:
        raise Forbidden("This download link is not valid for this delivery and department.")
    if claims.get("e", 0) <= utcnow().timestamp():
        raise Forbidden("This download link has expired; ask for a new one "
                        f"(POST /api/v1/deliveries/{delivery_id}/link).",
                        key="problem.access.link_expired",
                        params={"delivery_id": delivery_id})


def _downloadable(session: Session, who: Principal, delivery_id: int
                  ) -> tuple[Delivery, Application]:
    delivery, app = get_delivery(session, who, delivery_id)
    if who.department_id != app.requester_department_id or not who.has(Role.requester):
        raise Forbidden("Only requesters of the requesting department download its packages.")
    if delivery.path is None:
        raise Invalid(f"Delivery {delivery_id} is an API-query grant; query it instead.",
                      key="problem.access.delivery_is_query", params={"delivery_id": delivery_id})
    grant = session.get(Grant, delivery.grant_id)
    assert grant is not None
    if grant.revoked_at is not None:
        raise Gone(f"The grant was revoked on {grant.revoked_at:%Y-%m-%d}: "
                   f"{grant.revoke_reason}",
                   key="problem.access.grant_revoked_because",
                   params={"revoked_at": grant.revoked_at, "revoke_reason": grant.revoke_reason})
    if utcnow() >= grant.valid_until or app.state is ApplicationState.expired:
        raise Gone("The period of use is over; the package can no longer be downloaded.")
    return delivery, app


def issue_link(session: Session, who: Principal, delivery_id: int) -> tuple[str, datetime]:
    delivery, app = _downloadable(session, who, delivery_id)
    expires = utcnow() + timedelta(minutes=get_settings().access_link_minutes)
    token = make_token(delivery_id, who.department_id, expires)
    publish(session, Event("delivery.link_issued", who.actor, _subjects(session, app, delivery),
                           {"expires_at": expires.isoformat()}))
    return token, expires


def open_download(session: Session, who: Principal, delivery_id: int,
                  token: str) -> tuple[Path, Delivery]:
    """Authorise, log and return the file to stream."""
    check_token(token, delivery_id, who.department_id)
    delivery, app = _downloadable(session, who, delivery_id)
    path = deliveries_dir() / (delivery.path or "")
    if not path.is_file():
        raise Gone(f"The package of delivery {delivery_id} is no longer stored.",
                   key="problem.access.package_gone", params={"delivery_id": delivery_id})
    if app.first_download_at is None:
        # updated_at too: the metrics mart copies changed applications by updated_at
        app.first_download_at = app.updated_at = utcnow()
        session.add(app)
    publish(session, Event("delivery.downloaded", who.actor, _subjects(session, app, delivery),
                           {"sha256": delivery.sha256, "bytes": delivery.bytes}))
    return path, delivery


def _subjects(session: Session, app: Application, delivery: Delivery) -> dict[str, str]:
    return svc._subjects(session, app) | {"delivery": str(delivery.id),
                                          "grant": str(delivery.grant_id)}
