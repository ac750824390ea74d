"""kernel/storage.py: the one atomic-publish helper, and that every writer uses it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from kernel import storage

ROOT = Path(__file__).resolve().parent.parent
RUNTIME = ["kernel", "catalog", "quality", "access", "metrics", "translog", "govshare"]
# Writes that are deliberately not published: scratch files nothing refers to after a crash.
ALLOWED = {
    ("kernel/storage.py", "os.replace("),  # the helper itself
    ("kernel/storage.py", "open("),
    ("catalog/warehouse.py", "os.replace("),  # staging uploads: scratch, swept after a crash
    ("catalog/warehouse.py", "open("),
    ("kernel/crashpoints.py", ".write_text("),  # a test-only marker file
    ("metrics/mart.py", "open("),  # the refresh lock file (its content is never read)
    ("translog/export.py", "open("),  # writes into kernel.storage's temporary file
    ("govshare/web/live.py", "open("),  # a throw-away server's console log
}
WRITES = re.compile(r"os\.replace\(|os\.rename\(|shutil\.move\(|\.write_text\(|\.write_bytes\("
                    r"|\bopen\([^)]*[\"'][wax]b?[\"']")


def test_every_writer_publishes_through_kernel_storage() -> None:
    """A new ``write_text`` or rename into place outside the helper fails here: it would
    skip the fsyncs, and a crash could leave a partial file or lose the rename."""
    found = []
    for package in RUNTIME:
        for path in sorted((ROOT / package).rglob("*.py")):
            rel = str(path.relative_to(ROOT))
            for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                for hit in WRITES.findall(line.split("#")[0]):
                    kind = "open(" if hit.startswith("open(") else hit
                    if (rel, kind) not in ALLOWED:
                        found.append(f"{rel}:{n}: {line.strip()}")
    assert found == []


def test_publish_replaces_whole_files_and_leaves_no_temporaries(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "a.json"
    storage.publish_bytes(target, b"one")
    storage.publish_text(target, "two")
    assert target.read_text() == "two"
    with pytest.raises(RuntimeError), storage.writing(target) as temp:
        temp.write_bytes(b"half")
        raise RuntimeError("crash while writing")
    assert target.read_text() == "two"  # the old file, whole
    assert [p.name for p in target.parent.iterdir()] == ["a.json"]


def test_exclusive_publish_never_replaces(tmp_path: Path) -> None:
    target = tmp_path / "key"
    storage.publish_bytes(target, b"first", mode=0o600, exclusive=True)
    with pytest.raises(FileExistsError):
        storage.publish_bytes(target, b"second", mode=0o600, exclusive=True)
    assert target.read_bytes() == b"first"
    assert target.stat().st_mode & 0o077 == 0
    assert [p.name for p in tmp_path.iterdir()] == ["key"]
