"""The canonical serialisation is the log's wire format: these known answers must never change
(they are also the worked example in docs/access-log.md)."""

import hashlib
import subprocess
import sys
from datetime import UTC, date, datetime
from decimal import Decimal
from enum import StrEnum

import pytest

from translog import canonical, merkle

EXAMPLE_PAYLOAD = {"name": "人口基础信息", "rows": 1200}
EXAMPLE_ENTRY = (
    '{"actor":{"department":3,"kind":"user","user":12},'
    '"payload_sha256":"9426bb5764a755db8e500a4c2fbafea4a1bb28db53ede88beb9021708605f4ad",'
    '"seq":7,"subjects":{"resource":"GS-101-0001","version":"2"},'
    '"time":"2026-05-01T08:00:00.000000Z","type":"resource.registered","v":1}'
)
EXAMPLE_LEAF_HASH = "69f952d7bcf9a4f64a59496e1efc53b6af8d6c594cb513ae4d3067a74e64123d"


def test_entry_known_answer() -> None:
    obj = canonical.entry_object(
        seq=7, time="2026-05-01T08:00:00.000000Z", type="resource.registered", user=12,
        department=3, kind="user", subjects={"version": "2", "resource": "GS-101-0001"},
        payload_sha256=canonical.payload_digest(EXAMPLE_PAYLOAD),
    )
    data = canonical.entry_bytes(obj)
    assert data.decode() == EXAMPLE_ENTRY
    assert hashlib.sha256(b"\x00" + data).hexdigest() == EXAMPLE_LEAF_HASH
    assert merkle.leaf_hash(data).hex() == EXAMPLE_LEAF_HASH


def test_payload_digest_known_answer() -> None:
    expected = '{"name":"人口基础信息","rows":1200}'
    assert canonical.payload_bytes(EXAMPLE_PAYLOAD).decode() == expected
    assert canonical.payload_digest(EXAMPLE_PAYLOAD) == hashlib.sha256(
        expected.encode()).hexdigest()


def test_head_known_answer() -> None:
    data = canonical.head_bytes(tree_size=8, root_hash="5d" * 32,
                                time="2026-05-01T08:00:00.000000Z", key_id="0123456789abcdef")
    assert data == (b'{"key_id":"0123456789abcdef","root_hash":"' + b"5d" * 32
                    + b'","time":"2026-05-01T08:00:00.000000Z","tree_size":8,'
                    b'"type":"govshare.log.tree_head","v":1}')


def test_payloads_follow_rfc8785() -> None:
    # RFC 8785 §3.2.2.3 numbers and §3.2.3 member-name ordering (UTF-16 code units).
    numbers = [333333333.33333329, 1e30, 4.50, 2e-3, 0.000000000000000000000000001]
    assert canonical.payload_bytes({"numbers": numbers}) == \
        b'{"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27]}'
    keys = {"\u20ac": 1, "\r": 2, "\ufb33": 3, "1": 4, "\U0001f600": 5, "\u0080": 6, "\u00f6": 7}
    assert canonical.payload_bytes(keys).decode() == (
        '{"\\r":2,"1":4,"\u0080":6,"\u00f6":7,"\u20ac":1,"\U0001f600":5,"\ufb33":3}')


def test_payload_conversions() -> None:
    class Colour(StrEnum):
        red = "red"

    moment = datetime(2026, 5, 1, 8, 0, tzinfo=UTC)
    payload = {"when": moment, "day": date(2026, 5, 1), "amount": Decimal("1.10"),
               "colour": Colour.red, "tags": {"b", "a"}, "none": None, "yes": True}
    assert canonical.payload_bytes(payload) == (
        b'{"amount":"1.10","colour":"red","day":"2026-05-01","none":null,'
        b'"tags":["a","b"],"when":"2026-05-01T08:00:00.000000Z","yes":true}')
    with pytest.raises(ValueError):
        canonical.payload_digest({"x": float("nan")})
    with pytest.raises(TypeError):
        canonical.payload_digest({"x": object()})


@pytest.mark.parametrize("change", [
    {"type": "Not A Type"}, {"subjects": {"Bad Key": "x"}}, {"subjects": {"resource": ""}},
    {"kind": "robot"}, {"user": -1}, {"payload_sha256": "AB" * 32}, {"time": "2026-05-01"},
])
def test_malformed_entries_are_refused(change: dict[str, object]) -> None:
    fields: dict[str, object] = dict(
        seq=0, time="2026-05-01T08:00:00.000000Z", type="a.b", user=1, department=1,
        kind="user", subjects={"resource": "x"}, payload_sha256="ab" * 32)
    fields.update(change)
    with pytest.raises(ValueError):
        canonical.entry_object(**fields)  # type: ignore[arg-type]


def test_offline_modules_import_only_stdlib_and_cryptography() -> None:
    code = (
        "import sys, translog.verify\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
        "{'sqlalchemy', 'sqlmodel', 'fastapi', 'pydantic', 'govshare', 'catalog', 'typer'})\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
