"""The signed manifest of a delivery: what was delivered, how it was masked, the file's hash,
signed with the platform's Ed25519 key over its RFC 8785 canonical bytes, stored in the row
and written beside the package; and the check a recipient makes."""

from __future__ import annotations

import base64
import json
import logging
from pathlib import Path
from typing import Any

from sqlmodel import Session

from access import masking
from access.models import (
    Application,
    Delivery,
)
from access.packaging import Produced
from access.planning import Job, deliveries_dir
from kernel import storage
from kernel.db import on_rollback, utcnow
from kernel.identity import Department
from kernel.settings import get_settings
from translog import canonical
from translog import keys as log_keys
from translog import service as log_service

log = logging.getLogger("govshare")


MANIFEST_FORMAT = "govshare-delivery-manifest"


MANIFEST_VERSION = 1


def manifest_of(job: Job, produced: Produced, app: Application, delivery: Delivery,
                requester: str, key_id: str) -> dict[str, Any]:
    file = None
    if delivery.path is not None:
        file = {"name": Path(delivery.path).name, "format": job.file_format.value,
                "bytes": produced.bytes, "sha256": produced.sha256}
    return {
        "format": MANIFEST_FORMAT, "version": MANIFEST_VERSION,
        "delivery": delivery.id, "application": app.id, "grant": job.grant_id,
        "run_key": job.run_key, "method": job.method.value,
        "resource": job.resource_code, "resource_version": job.version,
        "requester": requester, "items": produced.columns,
        "masking_plan": masking.plan_json(job.plan),
        "row_filters": [f.model_dump(mode="json") for f in job.row_filters],
        "row_count": produced.rows, "k_anonymity": produced.k,
        "quasi_identifiers": job.quasi_identifiers, "file": file,
        # The re-identification risk of the package as written (docs/access.md).
        "risk": produced.risk, "suppressed_rows": produced.suppressed,
        "aggregate": produced.aggregate,
        "created_at": canonical.format_time(utcnow()), "key_id": key_id,
    }


def sign(session: Session, job: Job, produced: Produced, app: Application,
          delivery: Delivery) -> None:
    """Sign with the platform's Ed25519 key (the access log's; published at
    /.well-known/govshare-log-keys) over the manifest's RFC 8785 canonical bytes."""
    key = log_service.ensure_key(session)
    requester = session.get(Department, app.requester_department_id)
    manifest = manifest_of(job, produced, app, delivery, requester.code if requester else "?",
                           key.key_id)
    private = log_keys.load_private_key(get_settings(), key.key_id)
    signature = private.sign(canonical.payload_bytes(manifest))
    delivery.manifest, delivery.key_id = manifest, key.key_id
    delivery.signature = base64.b64encode(signature).decode("ascii")


def write(session: Session, delivery: Delivery) -> None:
    if delivery.path is None:
        return
    final = deliveries_dir() / (delivery.path + ".manifest.json")
    body = {"manifest": delivery.manifest, "signature": delivery.signature,
            "key_id": delivery.key_id}
    storage.publish_text(final, json.dumps(body, ensure_ascii=False, indent=2))
    on_rollback(session, lambda: final.unlink(missing_ok=True))


def verify_manifest(manifest: dict[str, Any], signature_b64: str, public_key: bytes) -> bool:
    """Check a manifest's signature (what a recipient does with the published key)."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(
            base64.b64decode(signature_b64), canonical.payload_bytes(manifest))
    except (InvalidSignature, ValueError):
        return False
    return True
