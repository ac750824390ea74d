"""Scores anyone can re-check.

Every finished run appends a ``quality.run_finished`` entry to the signed log whose subjects
carry, in the clear, the suite's content hash, the data version's content hash, the GX
version and the scores; the full attestation (also the weights, the run time and the
as-of time that freshness used) is the entry's payload, kept on the run (``attestation``), so
that its SHA-256 can be checked against the signed entry. ``verify`` re-runs that suite on
that data version at that time and says whether it reproduces the logged scores — and, if
not, whether the data or the suite changed since.

* suite hash — ``quality.suites`` fingerprint: SHA-256 of the canonical JSON of the suite's
  expectations (what GX validated).
* data hash — SHA-256 over the SHA-256 of each segment file, in version order (the bytes
  GX read; DuckDB files are immutable once a version is stored).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlmodel import Session, col, select

from quality.rules import Dimension

_CHUNK = 1 << 20
SCORE_KEYS = (*(d.value for d in Dimension), "overall")


def data_sha256(segments: Sequence[Path]) -> str:
    """The content hash of a data version: its segments' bytes (hashlib releases the GIL,
    so this runs alongside GX)."""
    outer = hashlib.sha256()
    for segment in segments:
        inner = hashlib.sha256()
        with segment.open("rb") as f:
            while chunk := f.read(_CHUNK):
                inner.update(chunk)
        outer.update(inner.hexdigest().encode() + b"\n")
    return outer.hexdigest()


def gx_version() -> str:
    from importlib.metadata import version

    return version("great_expectations")


def build(*, run_id: int, resource: str, data_version: int, suite_version: int | None,
          suite_sha256: str, data_sha256: str, scores: Mapping[str, float | None],
          overall: float, weights: Mapping[str, float], scored_at: datetime,
          data_as_of: datetime | None) -> dict[str, Any]:
    return {"status": "succeeded", "run": run_id, "resource": resource,
            "data_version": data_version,
            "suite_version": suite_version, "suite_sha256": suite_sha256,
            "data_sha256": data_sha256, "gx_version": gx_version(),
            "scores": {**{k: scores.get(k) for k in SCORE_KEYS if k != "overall"},
                       "overall": overall},
            "weights": dict(weights), "scored_at": scored_at.isoformat(),
            "data_as_of": data_as_of.isoformat() if data_as_of else None}


def scores_text(scores: Mapping[str, Any]) -> str:
    """The scores as one log subject: ``freshness=100,completeness=95,…,overall=86.08``
    (``-`` for a dimension that was not scored)."""
    return ",".join(f"{k}={'-' if scores.get(k) is None else _num(scores[k])}"
                    for k in SCORE_KEYS)


def _num(value: Any) -> str:
    number = float(value)
    return str(int(number)) if number.is_integer() else repr(round(number, 2))


def subjects(attestation: Mapping[str, Any]) -> dict[str, str]:
    """What the log entry shows in the clear (each value ≤ 200 characters)."""
    return {"suite_sha256": attestation["suite_sha256"],
            "data_sha256": attestation["data_sha256"],
            "gx": str(attestation["gx_version"])[:40],
            "scores": scores_text(attestation["scores"])}


# --- the log entry ---------------------------------------------------------------------------

def find_entry(session: Session, run_id: int, since: datetime | None) -> Any:
    """The signed log's ``quality.run_finished`` entry of a run (None if there is none)."""
    from translog.models import LogEntry  # reading the log is allowed to quality

    query = select(LogEntry).where(LogEntry.event_type == "quality.run_finished")
    if since is not None:
        query = query.where(col(LogEntry.time) >= since)
    for entry in session.exec(query.order_by(col(LogEntry.seq)).limit(5000)):
        if entry.subjects.get("run") == str(run_id):
            return entry
    return None


def payload_sha256(attestation: Mapping[str, Any]) -> str:
    from translog.canonical import payload_digest

    return payload_digest(dict(attestation))


# --- verification ----------------------------------------------------------------------------

@dataclass
class Verdict:
    run: int
    reproduced: bool
    log_entry: int | None
    findings: list[str] = field(default_factory=list)
    logged: dict[str, Any] = field(default_factory=dict)
    recomputed: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {"run": self.run, "reproduced": self.reproduced, "log_entry": self.log_entry,
                "findings": self.findings, "logged": self.logged,
                "recomputed": self.recomputed}


def verify(session: Session, run_id: int) -> Verdict:
    """Re-run a finished run's suite on its data version, at its time, with its weights,
    and compare with what the signed log says."""
    from catalog.models import Resource, UpdateCycle
    from catalog.service import segments_for
    from kernel.problems import Conflict, NotFound
    from quality import scoring
    from quality.masked import ColumnMask
    from quality.models import QualityRun, QualitySuite
    from quality.suites import fingerprint
    from quality.validate import run_suite

    run = session.get(QualityRun, run_id)
    if run is None:
        raise NotFound(f"No quality run {run_id}.",
                       key="problem.quality.no_run", params={"run_id": run_id})
    if run.attestation is None:
        raise Conflict(f"Run {run_id} has no attestation (it did not succeed, or it ran "
                       "before runs were attested).",
                       key="problem.quality.no_attestation", params={"run_id": run_id})
    logged = dict(run.attestation)
    verdict = Verdict(run_id, False, None, logged=logged)
    entry = find_entry(session, run_id, None)
    if entry is None:
        verdict.findings.append("no quality.run_finished entry for this run in the signed log")
    else:
        verdict.log_entry = entry.seq
        if entry.payload_sha256 != payload_sha256(logged):
            verdict.findings.append("the run's attestation differs from what the signed log "
                                    "recorded (payload hash mismatch)")
        for key, value in subjects(logged).items():
            if entry.subjects.get(key) != value:
                verdict.findings.append(f"the log entry's {key} differs from the attestation")
    resource = session.get(Resource, run.resource_id)
    suite = session.exec(select(QualitySuite).where(
        QualitySuite.resource_id == run.resource_id,
        QualitySuite.version == run.suite_version)).first()
    assert resource is not None
    if suite is None:
        verdict.findings.append(f"suite version {run.suite_version} is gone")
        return verdict
    configs = list(suite.suite["expectations"])
    suite_hash = fingerprint(configs)
    segments = segments_for(session, resource, run.data_version)
    try:
        data_hash = data_sha256(segments)
    except FileNotFoundError as exc:
        verdict.findings.append(f"the data is gone: {exc}")
        return verdict
    verdict.recomputed = {"suite_sha256": suite_hash, "data_sha256": data_hash,
                          "gx_version": gx_version()}
    if suite_hash != logged["suite_sha256"]:
        verdict.findings.append("the suite was changed since the run (suite hash differs)")
    if data_hash != logged["data_sha256"]:
        verdict.findings.append("the data was changed since the run (data hash differs)")
    if verdict.recomputed["gx_version"] != logged["gx_version"]:
        verdict.findings.append(f"GX {logged['gx_version']} ran it; this is GX "
                                f"{verdict.recomputed['gx_version']}")
    scored_at = datetime.fromisoformat(logged["scored_at"])
    as_of = datetime.fromisoformat(logged["data_as_of"]) if logged.get("data_as_of") else None
    masks = {i.name: ColumnMask(i.kind, i.sensitivity) for i in resource.items}
    validation = run_suite(segments, configs, masks,
                           run_date=scored_at.astimezone(scoring.CST).date(), max_examples=0)
    outcomes = [o.as_json() for o in validation.expectations]
    # Freshness is judged against the logged as-of time (the run's "now" and the last
    # update are history; the data hash above covers the newest date in the data).
    scores = scoring.score(outcomes, row_count=validation.row_count,
                           cycle=UpdateCycle(resource.update_cycle), data_as_of=as_of,
                           now=scored_at, weights=logged["weights"])
    verdict.recomputed["scores"] = {**scores.dimensions, "overall": scores.overall}
    differing = [k for k in SCORE_KEYS
                 if verdict.recomputed["scores"].get(k) != logged["scores"].get(k)]
    if differing:
        verdict.findings.append("scores differ: " + ", ".join(
            f"{k} logged {logged['scores'].get(k)}, now {verdict.recomputed['scores'].get(k)}"
            for k in differing))
    verdict.reproduced = not verdict.findings
    return verdict
