"""The witnesses govshare asks for cosignatures (``GOVSHARE_LOG_WITNESSES``) and the quorum."""

from __future__ import annotations

from dataclasses import dataclass

from kernel.settings import Settings, get_settings
from translog import note


@dataclass(frozen=True)
class WitnessConfig:
    verifier: note.Verifier
    url: str  # the submission prefix: add-checkpoint is POSTed to <url>/add-checkpoint

    @property
    def name(self) -> str:
        return self.verifier.name


def witnesses(settings: Settings | None = None) -> list[WitnessConfig]:
    """``GOVSHARE_LOG_WITNESSES``: "<vkey> <url>" per line (or comma)."""
    settings = settings or get_settings()
    found: list[WitnessConfig] = []
    for item in settings.log_witnesses.replace(",", "\n").splitlines():
        if not item.strip():
            continue
        parts = item.split()
        if len(parts) != 2:
            raise ValueError(f"GOVSHARE_LOG_WITNESSES: '{item.strip()}' is not '<vkey> <url>'")
        verifier = note.parse_vkey(parts[0])
        if verifier.sig_type != note.COSIGNATURE_V1:
            raise ValueError(f"GOVSHARE_LOG_WITNESSES: {verifier.name} is not a cosignature key")
        found.append(WitnessConfig(verifier, parts[1].rstrip("/")))
    if len({w.name for w in found}) != len(found):
        raise ValueError("GOVSHARE_LOG_WITNESSES names a witness twice")
    return found


def quorum(settings: Settings | None = None) -> int:
    settings = settings or get_settings()
    count = len(witnesses(settings))
    wanted = count // 2 + 1 if settings.log_witness_quorum < 0 and count else \
        max(settings.log_witness_quorum, 0)
    if wanted > count:
        raise ValueError(f"GOVSHARE_LOG_WITNESS_QUORUM is {wanted} but only {count} witnesses "
                         "are configured")
    return wanted
