"""The log's C2SP checkpoints (c2sp.org/tlog-checkpoint) and which one is published.

A checkpoint is the latest signed tree head in the standard format: origin (the installation's
name, ``GOVSHARE_LOG_ORIGIN``), tree size and base64 root hash, signed as a C2SP note with the
log's Ed25519 key (the same key as the JSON heads; its note key name is the origin). Ed25519 is
deterministic, so signing a head again always yields the same note.

Published means: cosigned by a quorum of the configured witnesses (``translog.cosigner`` asks
them in the background and stores the result in ``log_checkpoint``). With no witnesses and a
quorum of zero, the latest head is the published checkpoint.
"""

from __future__ import annotations

from sqlmodel import Session, col, select

from kernel.problems import NotFound
from kernel.settings import Settings, get_settings
from translog import keys, note
from translog.models import LogCheckpoint, LogKey, TreeHead
from translog.witnesses import quorum, witnesses


def log_verifier(key: LogKey, settings: Settings | None = None) -> note.Verifier:
    origin = (settings or get_settings()).checkpoint_origin
    return note.Verifier(origin, note.ED25519, key.public_key)


def verifiers(session: Session, settings: Settings | None = None) -> list[note.Verifier]:
    """The log's note verifier keys, retired ones included (their checkpoints stay valid)."""
    return [log_verifier(k, settings) for k in keys.all_keys(session)]


def checkpoint_of(head: TreeHead, settings: Settings | None = None) -> note.Checkpoint:
    origin = (settings or get_settings()).checkpoint_origin
    return note.Checkpoint(origin, head.tree_size, head.root_hash)


def sign(head: TreeHead, settings: Settings | None = None) -> note.Note:
    """The log-signed checkpoint of a head (no cosignatures)."""
    settings = settings or get_settings()
    private = keys.load_private_key(settings, head.key_id)
    text = checkpoint_of(head, settings).text()
    return note.Note(text, [note.sign_text(private, settings.checkpoint_origin, text)])


def _latest_head(session: Session) -> TreeHead | None:
    return session.exec(select(TreeHead).order_by(col(TreeHead.tree_size).desc())).first()


def latest_stored(session: Session) -> LogCheckpoint | None:
    return session.exec(select(LogCheckpoint)
                        .order_by(col(LogCheckpoint.tree_size).desc())).first()


def published(session: Session) -> tuple[int, str]:
    """(tree size, signed note) of the checkpoint clients should trust now."""
    if quorum() == 0 and not witnesses():
        head = _latest_head(session)
        if head is not None:
            return head.tree_size, sign(head).render()
    else:
        row = latest_stored(session)
        if row is not None:
            return row.tree_size, row.note
    raise NotFound("No checkpoint has been published yet: the log is empty, or the witnesses "
                   "have not cosigned its first checkpoint (see GET /api/v1/log/witnesses).",
                   key="problem.log_no_checkpoint")
