"""Security review (docs/security.md): headers, token brute force, secrets in logs and responses,
hostile uploads."""

from __future__ import annotations

import base64
import gzip
import io
import json
import logging
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from cryptography.hazmat.primitives import serialization
from fastapi.testclient import TestClient
from sqlmodel import select

from access import delivery, planning, pseudonym
from catalog.models import Resource
from govshare.headers import CSP
from kernel import db, ratelimit
from kernel import secrets as kernel_secrets
from kernel.identity import Department, Role
from kernel.problems import PROBLEM_JSON
from kernel.settings import get_settings
from tests.conftest import DrainingClient, World
from tests.factories import population_meta, population_rows, to_csv, upload
from tests.test_access_support import PEOPLE_ITEMS, application, people_rows
from translog import keys as log_keys
from translog.models import LogKey

API = "/api/v1"


# --- headers ----------------------------------------------------------------------------------

@pytest.mark.parametrize("path", ["/api/v1/me", "/api/v1/nothing-here", "/healthz",
                                  "/.well-known/govshare-log-keys"])
def test_security_headers_on_every_response(client: TestClient, world: World, path: str) -> None:
    r = client.get(path, headers=world.headers("GA", Role.requester))
    assert r.headers["content-security-policy"] == CSP
    assert "http" not in CSP and "frame-ancestors 'none'" in CSP  # no external origin
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["referrer-policy"] == "no-referrer"
    assert r.headers["x-frame-options"] == "DENY"
    assert r.headers["cache-control"] == "no-store" or path.startswith("/.well-known")
    assert "strict-transport-security" not in r.headers  # plain http: HSTS means nothing


def test_hsts_over_https(data_dir: Path) -> None:
    from govshare.app import create_app

    with DrainingClient(create_app(), base_url="https://testserver") as c:
        assert c.get("/healthz").headers["strict-transport-security"].startswith("max-age=")


# --- brute force -----------------------------------------------------------------------------

def test_token_guessing_is_rate_limited_per_ip(client: TestClient, world: World,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GOVSHARE_AUTH_FAILURES_PER_IP", "5")
    monkeypatch.setenv("GOVSHARE_AUTH_FAILURES_PER_PREFIX", "100")
    get_settings.cache_clear()
    for i in range(5):
        r = client.get(API + "/me", headers={"Authorization": f"Bearer gs_guess{i:04d}xxxxxxxx"})
        assert r.status_code == 401
    r = client.get(API + "/me", headers={"Authorization": "Bearer gs_guess9999xxxxxxxx"})
    assert r.status_code == 429 and r.headers["content-type"] == PROBLEM_JSON
    assert 1 <= int(r.headers["retry-after"]) <= 300
    # While blocked, even a valid token gets no answer about itself from this address.
    assert client.get(API + "/me", headers=world.headers("GA", Role.admin)).status_code == 429
    ratelimit.reset()
    assert client.get(API + "/me", headers=world.headers("GA", Role.admin)).status_code == 200


def test_token_guessing_is_rate_limited_per_prefix(client: TestClient, world: World,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GOVSHARE_AUTH_FAILURES_PER_PREFIX", "3")
    get_settings.cache_clear()
    target = world.tokens[("GA", Role.admin)]
    for i in range(3):  # guesses at the rest of a token whose prefix the attacker saw
        bad = target[:10] + f"{i:x}" * (len(target) - 10)
        assert client.get(API + "/me", headers={"Authorization": f"Bearer {bad}"}
                          ).status_code == 401
    assert client.get(API + "/me", headers={"Authorization": f"Bearer {target[:10]}zz"}
                      ).status_code == 429
    # Other tokens are not affected.
    assert client.get(API + "/me", headers=world.headers("SCJG", Role.admin)).status_code == 200


# --- secrets never leave ----------------------------------------------------------------------

def _secret_forms(raw: bytes) -> list[str]:
    return [raw.hex(), base64.b64encode(raw).decode(), base64.urlsafe_b64encode(raw).decode()
            .rstrip("="), base64.b64encode(raw).decode().rstrip("=")]


def test_secrets_never_appear_in_logs_or_responses(client: TestClient, world: World,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    """A run that issues tokens, registers, files an application, has it delivered (HMAC
    pseudonyms, signed manifest and tree heads) and downloads it: no token, passphrase or key
    byte appears in any log record or any response body."""
    caplog.set_level(logging.DEBUG)
    bodies: list[str] = []

    def call(method: str, path: str, **kw: Any) -> Any:
        r = client.request(method, path, **kw)
        bodies.append(r.text)
        bodies.append(json.dumps(dict(r.headers)))
        return r

    admin = world.headers("GA", Role.admin)
    issued = call("POST", API + "/users/scjg-requester/tokens", headers=admin,
                  json={"name": "robot", "days": 1})
    assert issued.status_code == 201
    new_token = issued.json()["token"]
    bodies.pop(-2)  # the one response that must carry it
    meta = {"name": "人口", "category": "101", "items": PEOPLE_ITEMS,
            "sharing_type": "unconditional", "sharing_condition": "", "update_cycle": "daily",
            "security_level": "general"}
    reg = call("POST", API + "/resources", headers=world.headers("GA", Role.publisher),
               data={"metadata": json.dumps(meta, ensure_ascii=False)},
               files={"file": ("p.csv", to_csv(people_rows(40)), "text/csv")})
    assert reg.status_code == 201, reg.text
    req = {"Authorization": f"Bearer {new_token}"}
    filed = call("POST", API + "/applications", headers=req, json=application(
        reg.json()["code"], ["id_number", "name", "mobile", "district"]))
    assert filed.status_code == 201, filed.text
    app_id = filed.json()["id"]
    done = call("POST", API + f"/applications/{app_id}/deliver", headers=req)
    assert done.status_code == 200, done.text  # delivered already (the filing's job)
    delivered = done.json()["delivery"]
    link = call("POST", API + f"/deliveries/{delivered['id']}/link", headers=req)
    assert call("GET", link.json()["url"], headers=req).status_code == 200
    for path in ["/me", "/log/keys", "/log/tree-heads/latest", "/deliveries",
                 f"/deliveries/{delivered['id']}/manifest", "/log/entries/mine"]:
        call("GET", API + path, headers=req)
    call("GET", API + "/log/entries", headers=world.headers("SJJ", Role.auditor))
    call("GET", "/.well-known/govshare-log-keys")
    openapi = call("GET", "/openapi.json").json()

    settings = get_settings()
    secrets = [*world.tokens.values(), new_token]
    for master in kernel_secrets.keyring().masters.values():
        secrets += _secret_forms(master)
    for purpose in kernel_secrets.PURPOSES:
        secrets += _secret_forms(kernel_secrets.derive_key(purpose))
    with db.session_scope() as session:
        for key in session.exec(select(LogKey)):
            private = log_keys.load_private_key(settings, key.key_id)
            raw = private.private_bytes(serialization.Encoding.Raw,
                                        serialization.PrivateFormat.Raw,
                                        serialization.NoEncryption())
            secrets += _secret_forms(raw)
        for dept in session.exec(select(Department)):
            hmac_key = pseudonym.existing_key(session, dept.id or 0)
            if hmac_key is not None:
                secrets += _secret_forms(hmac_key)
    assert len(secrets) > len(world.tokens) + 28  # the signing key and an HMAC key were made

    logged = "\n".join(f"{r.getMessage()} {r.exc_text or ''} {r.__dict__}"
                       for r in caplog.records)
    everything = "\n".join(bodies)
    for secret in secrets:
        assert secret not in logged, "a secret was logged"
        assert secret not in everything, "a secret left the server"
    # No schema offers a field for one either (the token field is the issued token itself).
    names = json.dumps(openapi).lower()
    for word in ["private", "passphrase", "hmac_key", "secret_key", "signing_key", "kek"]:
        assert f'"{word}' not in names, word


# --- hostile uploads -------------------------------------------------------------------------

def _register(client: TestClient, world: World, data: bytes, filename: str) -> Any:
    return client.post(API + "/resources", headers=world.headers("GA", Role.publisher),
                       **upload(population_meta(), data, filename))


def _nothing_left(data_dir: Path) -> None:
    with db.session_scope(write=False) as session:
        assert session.exec(select(Resource)).first() is None
    staging = get_settings().warehouse_dir / "_staging"
    assert not staging.exists() or list(staging.iterdir()) == []


def test_oversize_upload_is_413(client: TestClient, world: World, data_dir: Path,
                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GOVSHARE_MAX_UPLOAD_BYTES", "2000")
    get_settings.cache_clear()
    r = _register(client, world, to_csv(population_rows(100)), "big.csv")
    assert r.status_code == 413 and r.headers["content-type"] == PROBLEM_JSON
    _nothing_left(data_dir)


def test_gzip_bomb_stops_at_the_limit(client: TestClient, world: World, data_dir: Path,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GOVSHARE_MAX_UPLOAD_BYTES", str(1 << 20))
    get_settings.cache_clear()
    header = b"id_number,name,birth_date,household_size\n"
    bomb = io.BytesIO()
    with gzip.GzipFile(fileobj=bomb, mode="wb") as gz:
        gz.write(header)
        row = b"110101195001010011,x,1950-01-01,1\n" * 1000
        for _ in range(3000):  # ~100 MB expanded, ~300 KB compressed
            gz.write(row)
    assert len(bomb.getvalue()) < (1 << 20)
    r = _register(client, world, bomb.getvalue(), "bomb.csv.gz")
    assert r.status_code == 413 and "decompressed" in r.json()["detail"]
    _nothing_left(data_dir)
    bad = _register(client, world, b"\x1f\x8b\x08not really gzip", "x.csv.gz")
    assert bad.status_code == 422 and bad.headers["content-type"] == PROBLEM_JSON


def test_parquet_bomb_is_refused_before_loading(client: TestClient, world: World,
                                                data_dir: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GOVSHARE_MAX_UPLOAD_BYTES", str(1 << 20))
    get_settings.cache_clear()
    n = 2_000_000  # constant columns: dictionary + RLE make this a few KB on disk
    table = pa.table({"id_number": pa.array(["110101195001010011"] * n),
                      "name": pa.array(["x"] * n),
                      "birth_date": pa.array(["1950-01-01"] * n),
                      "household_size": pa.array([1] * n, pa.int64())})
    buf = io.BytesIO()
    pq.write_table(table, buf, compression="zstd")
    assert len(buf.getvalue()) < (1 << 20)
    r = _register(client, world, buf.getvalue(), "bomb.parquet")
    assert r.status_code == 413 and "expands" in r.json()["detail"]
    _nothing_left(data_dir)


@pytest.mark.parametrize(("data", "filename"), [
    (b"\xff\xfe\x00\x00garbage\x00\x01\x02", "binary.csv"),  # neither UTF-8 nor GB 18030
    (b'id_number,name\n"unterminated,quote\n1,2,3,4,5\n', "broken.csv"),
    (b"id_number,name,birth_date,household_size\n", "header-only.csv"),
    (b"PAR1 not a parquet file PAR1", "fake.parquet"),
    (b'{"id_number": 1\n', "bad.jsonl"),
    (to_csv(population_rows(2)), "data.exe"),
])
def test_malformed_uploads_are_422_or_415(client: TestClient, world: World, data_dir: Path,
                                          data: bytes, filename: str) -> None:
    r = _register(client, world, data, filename)
    assert r.status_code in (415, 422), (r.status_code, r.text)
    assert r.headers["content-type"] == PROBLEM_JSON
    _nothing_left(data_dir)


@pytest.mark.parametrize("filename", ["../../../etc/passwd.csv", "/etc/cron.d/x.csv",
                                      "..\\..\\windows\\x.csv", "a\x00b.csv",
                                      "数据/../../逃逸.csv", "\u202ecsv.exe.csv"])
def test_path_tricks_in_filenames_never_reach_the_file_system(
        client: TestClient, world: World, data_dir: Path, filename: str) -> None:
    r = _register(client, world, to_csv(population_rows(3)), filename)
    assert r.status_code in (201, 415, 422), r.text
    outside = [p for p in data_dir.parent.rglob("*") if data_dir not in p.parents
               and p != data_dir]
    assert all("passwd" not in p.name and "逃逸" not in p.name for p in outside)
    for p in data_dir.rglob("*"):  # only names govshare chose
        assert "passwd" not in p.name and "逃逸" not in p.name and "windows" not in p.name


# --- formula injection ------------------------------------------------------------------------

DANGEROUS = ["=HYPERLINK(\"http://evil\",\"x\")", "+1+1", "-2+3", "@SUM(A1)", "\tcmd", "\rx"]


def test_catalog_csv_neutralises_formulas(client: TestClient, world: World) -> None:
    for i, name in enumerate(DANGEROUS):
        r = client.post(API + "/resources", headers=world.headers("GA", Role.publisher),
                        **upload(population_meta(name=f"{name}{i}"), to_csv(population_rows(2)),
                                 confirm_duplicate=True))
        assert r.status_code == 201, r.text
    text = client.get(API + "/catalog.csv", headers=world.headers("SCJG", Role.requester)).text
    import csv

    rows = list(csv.DictReader(io.StringIO(text.lstrip("\ufeff"))))
    names = {row["name"] for row in rows}
    for i, name in enumerate(DANGEROUS):
        assert f"'{name}{i}" in names
    for row in rows:
        for cell in row.values():
            assert not cell or cell[0] not in "=+-@\t\r", cell


def test_delivered_csv_neutralises_formulas(aw: Any, tmp_path: Path) -> None:
    from tests.test_access_support import register

    rows = people_rows(40)
    for i, row in enumerate(rows):
        row["district"] = DANGEROUS[i % len(DANGEROUS)]
    code = register(tmp_path, sharing_type="unconditional", rows=rows)
    r = aw.post("/applications", "SCJG", Role.requester,
                json=application(code, ["name", "district"], file_format="csv"))
    assert r.status_code == 201, r.text
    package = delivery.deliver(r.json()["id"])
    path = planning.deliveries_dir() / (package.path or "")
    import csv

    with path.open(encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            assert row["district"][0] not in "=+-@\t\r", row


pytest_plugins: list[str] = []
from tests.test_access_support import access_world  # noqa: E402,F401  (the aw fixture)
