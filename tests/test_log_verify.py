"""Offline verification: an untampered export verifies; hundreds of random tamperings of an export
made through the real service are each detected, by the function and by the CLI."""

import base64
import json
import random
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.log_support import export_with_keys, fill, start_log
from translog import canonical, verify
from translog.cli import app

Lines = list[bytes]
Mutation = Callable[[random.Random, Lines], Lines]
SEED = 20260501
runner = CliRunner()


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A log of a few hundred entries in ~45 transactions, exported once for the module."""
    mp = pytest.MonkeyPatch()
    base = tmp_path_factory.mktemp("log")
    mp.setenv("GOVSHARE_DATA_DIR", str(base / "data"))
    mp.setenv("GOVSHARE_KEY_PASSPHRASE", "test-passphrase")
    from kernel import db, events
    from kernel.settings import get_settings

    get_settings.cache_clear()
    db.reset_engines()
    try:
        start_log()
        rng = random.Random(SEED)
        fill([rng.randrange(1, 12) for _ in range(45)], seed=SEED)
        return export_with_keys(base)
    finally:
        db.reset_engines()
        events.unsubscribe_all()
        get_settings.cache_clear()
        mp.undo()


def _lines(path: Path) -> Lines:
    return path.read_bytes().splitlines(keepends=True)


def _indexes(lines: Lines, prefix: bytes) -> list[int]:
    return [i for i, line in enumerate(lines) if line.startswith(prefix)]


def _entries(lines: Lines) -> list[int]:
    return _indexes(lines, b'{"entry":')


def _heads(lines: Lines) -> list[int]:
    return _indexes(lines, b'{"head":')


# --- tamperings -------------------------------------------------------------------------------

def flip_entry_byte(rng: random.Random, lines: Lines) -> Lines:
    i = rng.choice(_entries(lines))
    line = bytearray(lines[i])
    pos = rng.randrange(len(line) - 1)  # any byte but the newline
    line[pos] ^= 1 << rng.randrange(8)
    return [*lines[:i], bytes(line), *lines[i + 1:]]


def edit_entry_field(rng: random.Random, lines: Lines) -> Lines:
    """A clean edit that keeps the line canonical: only the signed roots can catch it."""
    i = rng.choice(_entries(lines))
    entry = json.loads(lines[i])["entry"]
    field = rng.choice(["user", "subject", "type", "time"])
    if field == "user":
        entry["actor"]["user"] = (entry["actor"]["user"] or 0) + 1
    elif field == "subject":
        entry["subjects"]["resource"] = "GS-999-9999"
    elif field == "type":
        entry["type"] = "delivery.downloaded" if entry["type"] != "delivery.downloaded" \
            else "api.queried"
    else:
        entry["time"] = "2020-01-01T00:00:00.000000Z"
    return [*lines[:i], b'{"entry":' + canonical.entry_bytes(entry) + b"}\n", *lines[i + 1:]]


def drop_entry(rng: random.Random, lines: Lines) -> Lines:
    i = rng.choice(_entries(lines))
    return lines[:i] + lines[i + 1:]


def swap_entries(rng: random.Random, lines: Lines) -> Lines:
    i, j = sorted(rng.sample(_entries(lines), 2))
    out = list(lines)
    out[i], out[j] = out[j], out[i]
    return out


def insert_forged(rng: random.Random, lines: Lines) -> Lines:
    i = rng.choice(_entries(lines))
    seq = json.loads(lines[i])["entry"]["seq"]
    forged = canonical.entry_object(
        seq=rng.choice([seq, seq + 1, rng.randrange(10**6)]), time="2026-05-01T08:00:00.000000Z",
        type="delivery.downloaded", user=1, department=1, kind="user",
        subjects={"resource": "GS-101-0001"}, payload_sha256=canonical.payload_digest({}))
    forged_line = b'{"entry":' + canonical.entry_bytes(forged) + b"}\n"
    return [*lines[:i], forged_line, *lines[i:]]


def insert_forged_and_renumber(rng: random.Random, lines: Lines) -> Lines:
    """Insert, then renumber every later entry so the numbering looks intact."""
    out = insert_forged(rng, lines)
    for seq, i in enumerate(_entries(out)):
        entry = json.loads(out[i])["entry"]
        entry["seq"] = seq
        out[i] = b'{"entry":' + canonical.entry_bytes(entry) + b"}\n"
    return out


def truncate(rng: random.Random, lines: Lines) -> Lines:
    data = b"".join(lines)
    cut = rng.choice([rng.randrange(len(data)), len(data) - len(lines[-1])])
    return data[:cut].splitlines(keepends=True)


def _edit_head(lines: Lines, i: int, **changes: object) -> Lines:
    head = json.loads(lines[i])["head"] | changes
    new = json.dumps({"head": head}, sort_keys=True, separators=(",", ":")).encode() + b"\n"
    return [*lines[:i], new, *lines[i + 1:]]


def corrupt_signature(rng: random.Random, lines: Lines) -> Lines:
    i = rng.choice(_heads(lines))
    signature = bytearray(base64.b64decode(json.loads(lines[i])["head"]["signature"]))
    signature[rng.randrange(64)] ^= 1 << rng.randrange(8)
    return _edit_head(lines, i, signature=base64.b64encode(bytes(signature)).decode())


def replace_signature(rng: random.Random, lines: Lines) -> Lines:
    i, j = rng.sample(_heads(lines), 2)
    other = json.loads(lines[j])["head"]["signature"]
    if rng.random() < 0.5:  # same bytes, but a different base64 spelling of them
        sig = json.loads(lines[i])["head"]["signature"]
        other = sig[:-3] + chr(ord(sig[-3]) ^ 1) + sig[-2:]
    return _edit_head(lines, i, signature=other)


def alter_head_root(rng: random.Random, lines: Lines) -> Lines:
    i, j = rng.sample(_heads(lines), 2)
    root = json.loads(lines[j])["head"]["root_hash"] if rng.random() < 0.5 \
        else rng.randbytes(32).hex()
    return _edit_head(lines, i, root_hash=root)


def alter_head_size(rng: random.Random, lines: Lines) -> Lines:
    i = rng.choice(_heads(lines))
    size = json.loads(lines[i])["head"]["tree_size"]
    return _edit_head(lines, i, tree_size=max(1, size + rng.choice([-2, -1, 1, 2, 50])))


MUTATIONS: dict[str, tuple[Mutation, set[str]]] = {
    "flip a byte in an entry": (flip_entry_byte, {
        verify.MALFORMED, verify.CHANGED, verify.MISSING, verify.REORDERED, verify.INSERTED}),
    "edit an entry cleanly": (edit_entry_field, {verify.CHANGED}),
    "drop an entry": (drop_entry, {verify.MISSING}),
    "swap two entries": (swap_entries, {verify.REORDERED}),
    "insert a forged entry": (insert_forged, {verify.INSERTED}),
    "insert and renumber": (insert_forged_and_renumber, {verify.CHANGED, verify.INSERTED}),
    "truncate": (truncate, {verify.TRUNCATED}),
    "corrupt a head signature": (corrupt_signature, {verify.BAD_SIGNATURE}),
    "replace a head signature": (replace_signature, {verify.BAD_SIGNATURE}),
    "alter a head's root": (alter_head_root, {verify.BAD_SIGNATURE}),
    "alter a head's size": (alter_head_size, {verify.BAD_SIGNATURE}),
}


def _tamperings(lines: Lines, per_kind: int) -> list[tuple[str, Lines]]:
    rng = random.Random(SEED)
    cases = []
    for name, (mutate, _) in MUTATIONS.items():
        for _ in range(per_kind):
            tampered = mutate(rng, lines)
            assert tampered != lines
            cases.append((name, tampered))
    return cases


# --- tests ------------------------------------------------------------------------------------

def test_the_untampered_export_verifies(exported: tuple[Path, Path]) -> None:
    export_path, keys_path = exported
    result = verify.verify_export(export_path, verify.load_public_keys(keys_path))
    assert result.ok, result.summary()
    assert 200 <= result.tree_size < 500 and result.heads == 45
    out = runner.invoke(app, ["verify", str(export_path), "--public-key", str(keys_path)])
    assert out.exit_code == 0, out.output
    assert out.output.startswith("OK") and str(result.tree_size) in out.output
    assert result.root_hash in out.output


def test_every_tampering_is_detected(exported: tuple[Path, Path]) -> None:
    export_path, keys_path = exported
    keys = verify.load_public_keys(keys_path)
    lines = _lines(export_path)
    cases = _tamperings(lines, per_kind=40)
    assert len(cases) >= 400
    for name, tampered in cases:
        result = verify.verify_lines(tampered, keys)
        assert not result.ok, f"undetected: {name}"
        assert result.problem in MUTATIONS[name][1], (name, result.summary())
        assert result.line is not None and result.detail


def test_the_cli_reports_tampering(exported: tuple[Path, Path], tmp_path: Path) -> None:
    export_path, keys_path = exported
    cases = _tamperings(_lines(export_path), per_kind=3)
    for n, (name, tampered) in enumerate(cases):
        path = tmp_path / f"tampered-{n}.jsonl"
        path.write_bytes(b"".join(tampered))
        out = runner.invoke(app, ["verify", str(path), "--public-key", str(keys_path)])
        assert out.exit_code == 1, (name, out.output)
        assert out.output.startswith("FAILED"), (name, out.output)


def test_first_bad_entry_is_named(exported: tuple[Path, Path]) -> None:
    export_path, keys_path = exported
    keys = verify.load_public_keys(keys_path)
    lines = _lines(export_path)
    entries = _entries(lines)
    dropped = lines[:entries[10]] + lines[entries[10] + 1:]
    assert verify.verify_lines(dropped, keys).seq == 10
    swapped = list(lines)
    swapped[entries[20]], swapped[entries[30]] = swapped[entries[30]], swapped[entries[20]]
    result = verify.verify_lines(swapped, keys)
    assert (result.problem, result.seq) == (verify.REORDERED, 20)
    assert "entry 30 stands where entry 20 belongs" in result.detail


def test_verification_needs_the_right_keys(exported: tuple[Path, Path], tmp_path: Path) -> None:
    export_path, keys_path = exported
    document = json.loads(keys_path.read_text())
    pem_file = tmp_path / "keys.pem"
    pem_file.write_text("".join(k["public_key_pem"] for k in document["keys"]))
    assert verify.verify_export(export_path, verify.load_public_keys(pem_file)).ok

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    stranger = Ed25519PrivateKey.generate().public_key()
    wrong = tmp_path / "wrong.pem"
    wrong.write_bytes(stranger.public_bytes(serialization.Encoding.PEM,
                                            serialization.PublicFormat.SubjectPublicKeyInfo))
    result = verify.verify_export(export_path, verify.load_public_keys(wrong))
    assert result.problem == verify.UNKNOWN_KEY
    liar = tmp_path / "liar.json"
    document["keys"][0]["key_id"] = "00" * 8
    liar.write_text(json.dumps(document))
    out = runner.invoke(app, ["verify", str(export_path), "--public-key", str(liar)])
    assert out.exit_code == 2 and "does not match" in out.output
