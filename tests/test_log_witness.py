"""Three witness processes on loopback: a quorum of cosignatures publishes a checkpoint, a
witness that was offline catches up with a consistency proof, and a forked history is refused
by every witness that saw the first, recorded as evidence and reported."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlmodel import select

from kernel import db, jobs
from kernel.settings import get_settings
from tests.log_support import fill, start_log
from tests.witness_support import WitnessProcess, three_witnesses
from translog import checkpoints, cosigner, keys, note, proofs, receipts, service
from translog.models import LogEntry, LogWitness


@pytest.fixture
def witnesses(data_dir: Path, monkeypatch: pytest.MonkeyPatch,
              tmp_path: Path) -> Iterator[list[WitnessProcess]]:
    start_log()
    with three_witnesses("witness.example/w{}", tmp_path, monkeypatch) as procs:
        yield procs


def _published() -> tuple[int, str]:
    with db.session_scope(write=False) as session:
        return checkpoints.published(session)


def _log_verifier() -> note.Verifier:
    with db.session_scope(write=False) as session:
        key = keys.active_key(session)
        assert key is not None
        return checkpoints.log_verifier(key)


def _go_opens(signed: str, vkey: str) -> None:
    """Go's sumdb/note verifies the log's signature and parses the three cosignature lines."""
    import subprocess

    from tests.test_log_checkpoint import ROOT, _go_env

    folder = Path(os.environ["GOVSHARE_DATA_DIR"]).parent
    env = _go_env(folder)
    if env is None:
        return  # tests/test_log_checkpoint.py says why it skips
    (folder / "checkpoint").write_text(signed)
    run = subprocess.run(["go", "run", str(ROOT / "tests/gocheck/main.go"), "-note",
                          str(folder / "checkpoint"), vkey], env=env, capture_output=True,
                         text=True, timeout=300)
    assert run.returncode == 0 and "1 verified, 3 other signatures" in run.stdout, \
        run.stdout + run.stderr


def _round() -> cosigner.Round:
    result = cosigner.publish_once()
    assert result is not None
    return result


def test_quorum_catch_up_and_fork(witnesses: list[WitnessProcess]) -> None:
    w1, w2, w3 = witnesses
    trusted = [w.verifier for w in witnesses]
    assert checkpoints.quorum() == 2  # a majority of three by default

    # a normal append: all three cosign, and the published checkpoint carries them
    fill([4])
    first = _round()
    assert first.published and len(first.cosignatures) == 3
    size, signed = _published()
    assert size == 4
    opened = note.parse_note(signed)
    assert sorted(opened.verified(trusted)) == sorted(w.name for w in witnesses)
    assert _log_verifier().name in opened.verified([_log_verifier()])
    assert cosigner.publish_once() is None  # nothing new
    _go_opens(signed, _log_verifier().vkey)

    # w3 goes offline: 2 of 3 is still a quorum, twice
    w3.stop()
    for batch in ([5], [3]):
        fill(batch)
        result = _round()
        assert result.published and len(result.cosignatures) == 2
        assert {o.name: o.status for o in result.outcomes}[w3.name] == "error"
    assert _published()[0] == 12

    # back online, w3 catches up from size 4 to 14 with one consistency proof
    w3.start()
    fill([2])
    result = _round()
    assert result.published and len(result.cosignatures) == 3
    assert w3.state_size() == 14

    # govshare forgot the witnesses' sizes: each answers 409 with its size, and the round
    # retries from there
    with db.session_scope() as session:
        for row in session.exec(select(LogWitness)):
            session.delete(row)
    fill([1])
    assert len(_round().cosignatures) == 3

    # below the quorum nothing is published
    w1.stop()
    w2.stop()
    fill([1])
    result = _round()
    assert not result.published and len(result.cosignatures) == 1
    assert _published()[0] == 15
    w1.start()
    w2.start()
    assert _round().published and _published()[0] == 16

    # a receipt against the cosigned checkpoint verifies with the public keys alone
    with db.session_scope(write=False) as session:
        row = session.get(LogEntry, 9)
        assert row is not None
        receipt = receipts.for_entry(session, row)
    checked = proofs.check(receipt, [_log_verifier()], trusted, 2)
    assert checked.entry["seq"] == 9 and len(checked.cosigners) == 3
    with pytest.raises(note.NoteError, match="3 needed"):
        stranger = note.Verifier("other.example/w", note.COSIGNATURE_V1, bytes(32))
        proofs.check(receipt, [_log_verifier()], [*trusted[:2], stranger], 3)

    # a forked history: another root at the published size, signed by the log's own key
    settings = get_settings()
    with db.session_scope(write=False) as session:
        private = keys.load_private_key(settings, service.latest_head(session).key_id)
    genuine = note.parse_checkpoint(note.parse_note(_published()[1]).text)
    forked_text = note.Checkpoint(genuine.origin, genuine.size, bytes(32)).text()
    forked = note.Note(forked_text, [note.sign_text(private, genuine.origin, forked_text)])
    result = cosigner.submit(forked)
    assert [o.status for o in result.outcomes] == ["refused"] * 3
    assert not result.cosignatures
    with db.session_scope(write=False) as session:
        reported = {r.name: r for r in session.exec(select(LogWitness))}
    assert all(reported[w.name].refusal and "contradicts" in (reported[w.name].refusal or "")
               for w in witnesses)
    for w in witnesses:
        evidence = w.evidence()
        assert len(evidence) == 1 and "split view" in evidence[0]["reason"]
        assert evidence[0]["submitted"] == forked.render()
        assert note.b64(genuine.root_hash) in evidence[0]["cosigned"]
    # the honest log carries on, and the witnesses still cosign it
    fill([2])
    assert len(_round().cosignatures) == 3


def test_the_periodic_cosigning_job_publishes_after_a_commit(
        witnesses: list[WitnessProcess]) -> None:
    cosigner.declare_schedules()
    try:
        jobs.sync_schedules()
        fill([3])
        jobs.fire_schedules()  # what a `govshare worker` does every GOVSHARE_LOG_COSIGN_SECONDS
        jobs.run_pending([cosigner.COSIGN])
        assert _published()[0] == 3
    finally:
        jobs.every(cosigner.COSIGN, cosigner.COSIGN, timedelta(0))
