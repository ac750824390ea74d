"""A short schemathesis run over the whole OpenAPI schema against a real server (tests/fuzz.py;
the long run is `make fuzz`): no 5xx, every error is problem+json."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests import fuzz


def test_short_fuzz_finds_no_server_error(data_dir: Path, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fuzz, "CALLERS", [*fuzz.CALLERS[:2], None])  # publisher, requester
    failures = fuzz.run(max_examples=3, max_time=12, workdir=tmp_path, phases="fuzzing")
    assert not failures, "\n".join(failures)
