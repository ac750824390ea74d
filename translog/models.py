"""Tables of the signed access log. Rows are only ever inserted, except ``LogState`` (the lock
and the committed size) and ``LogKey.retired_at``."""


from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Column, ForeignKey, Integer, LargeBinary, String, Text
from sqlmodel import Field, SQLModel

from kernel.db import UTCDateTime, utcnow


class LogEntry(SQLModel, table=True):
    """One leaf of the log. ``translog.canonical.entry_object`` turns a row into the bytes
    that are hashed; the event payload itself is never stored, only its digest."""

    __tablename__ = "log_entry"
    seq: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    time: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
    event_type: str = Field(max_length=64, index=True)
    # No foreign keys: the log must outlive (and never block deleting) the rows it mentions.
    actor_user_id: int | None = Field(default=None, index=True)
    actor_department_id: int | None = Field(default=None, index=True)
    actor_kind: str = Field(max_length=16)
    subjects: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    # Indexed: a receipt finds the entry of a payload it was given (a delivery manifest).
    payload_sha256: str = Field(max_length=64, index=True)


class LogSubtree(SQLModel, table=True):
    """Hash of the perfect subtree of 2^level leaves starting at leaf index·2^level.

    Written once, when the append that completes it happens (about two rows per entry), so any
    root or proof is O(log n) primary-key lookups and nothing is ever rehashed.
    """

    __tablename__ = "log_subtree"
    level: int = Field(sa_column=Column(Integer, primary_key=True, autoincrement=False))
    idx: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    hash: bytes = Field(sa_column=Column(LargeBinary(32), nullable=False))


class LogKey(SQLModel, table=True):
    """A tree-head signing key. The private half is a file under ``Settings.keys_dir``; the
    public half stays here (and published) after retirement so old heads keep verifying."""

    __tablename__ = "log_key"
    key_id: str = Field(sa_column=Column(String(16), primary_key=True))
    algorithm: str = Field(default="Ed25519", max_length=16)
    public_key: bytes = Field(sa_column=Column(LargeBinary(32), nullable=False))
    created_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime,
                                                                          nullable=False))
    retired_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime))


class TreeHead(SQLModel, table=True):
    """A signed tree head: one per committed batch of appends."""

    __tablename__ = "log_tree_head"
    tree_size: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    root_hash: bytes = Field(sa_column=Column(LargeBinary(32), nullable=False))
    time: datetime = Field(sa_column=Column(UTCDateTime, nullable=False))
    key_id: str = Field(sa_column=Column(String(16), ForeignKey("log_key.key_id"), nullable=False,
                                         index=True))
    signature: bytes = Field(sa_column=Column(LargeBinary(64), nullable=False))


class LogState(SQLModel, table=True):
    """The single row every append locks (SELECT … FOR UPDATE), so that appends from any
    number of workers are serialised by the database; it also holds the committed size."""

    __tablename__ = "log_state"
    id: int = Field(sa_column=Column(Integer, primary_key=True, autoincrement=False))
    tree_size: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))
    root_hash: bytes = Field(sa_column=Column(LargeBinary(32), nullable=False))
    updated_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime,
                                                                          nullable=False))


class LogCheckpoint(SQLModel, table=True):
    """A published C2SP checkpoint: the log's signed note plus the witnesses' cosignatures,
    stored once a quorum of them cosigned (``translog.checkpoints``)."""

    __tablename__ = "log_checkpoint"
    tree_size: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    root_hash: bytes = Field(sa_column=Column(LargeBinary(32), nullable=False))
    note: str = Field(sa_column=Column(Text, nullable=False))
    cosignatures: int = Field(default=0)
    published_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime,
                                                                            nullable=False))


class LogWitness(SQLModel, table=True):
    """What govshare knows of each configured witness: the size it last cosigned, and its
    last refusal (a witness refusing a checkpoint it should accept is reported here)."""

    __tablename__ = "log_witness"
    name: str = Field(sa_column=Column(String(200), primary_key=True))
    last_size: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))
    cosigned_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime))
    refusal: str | None = Field(default=None, sa_column=Column(Text))
    refused_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime))
    error: str | None = Field(default=None, sa_column=Column(Text))
    error_at: datetime | None = Field(default=None, sa_column=Column(UTCDateTime))
