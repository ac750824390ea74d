"""Keeping the index up to date: the change feed, the one writer per machine, the rebuild.

Every change that affects a resource's search document (registration, metadata edit,
withdrawal or reactivation, new data version, new quality score) reaches ``on_event`` as a
domain event inside the transaction that makes it, and adds a ``search_feed`` row there: the
row commits or rolls back with the change. Each machine's index tails the feed (it is a log,
not a queue: machines do not take rows from each other), so on a PostgreSQL deployment with
several machines each keeps its own index in its own data directory, fed from the database.

One process per machine writes the index: whichever takes the ``flock`` on
``<index dir>/.writer.lock`` (the kernel releases it when the process dies, and another takes
over within a poll). It applies new feed rows every ``POLL_SECONDS``, and at once after a
commit of its own process (so whoever changed a resource on the writer's process finds it in
the very next search). Applying a row re-reads the resource and replaces its document, so
applying a row twice is harmless, which is what makes the feed easy to tail:

* the feed's ids come from a sequence, and on PostgreSQL a transaction may commit a smaller
  id after a larger one is already visible. The writer therefore re-reads the rows of the
  last ``GRACE`` seconds on every poll (skipping the ids it applied) and only moves its
  watermark past rows older than that;
* the watermark is saved next to the index after each commit; after a crash the rows since
  are simply applied again.
"""

from __future__ import annotations

import fcntl
import gc
import json
import logging
import multiprocessing
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any

import tantivy
from sqlalchemy import delete, event, func, insert, select
from sqlmodel import Session, SQLModel

from catalog.models import ResourceStatus
from catalog.search import engine
from kernel import storage
from kernel.db import session_scope, utcnow
from kernel.events import Event
from kernel.identity import Department

log = logging.getLogger("govshare")

POLL_SECONDS = 0.5
GRACE = timedelta(seconds=60)  # longer than any transaction that writes the feed
RETENTION = timedelta(days=1)  # an index further behind than this is rebuilt
BATCH = 2_000  # resource ids per round trip in a rebuild
PARALLEL = 20_000  # rebuilds of at least this many resources analyse in worker processes
WRITER_HEAP = 128_000_000  # bytes of tantivy's indexing buffer
CURSOR_FILE = "govshare-feed-cursor.json"  # in the index directory: how far the feed is applied

_FEED = SQLModel.metadata.tables["search_feed"]
_RES = SQLModel.metadata.tables["resource"]
_ITEM = SQLModel.metadata.tables["data_item"]
_DEPT = Department.__table__  # type: ignore[attr-defined]
_RES_COLS = ("id", "code", "name", "name_en", "keywords", "summary", "summary_en", "status",
             "provider_id", "category", "sharing_type", "sharing_method", "update_cycle",
             "security_level", "published_at", "last_data_update", "current_version",
             "row_count", "quality_score")

# Events after which a resource's document must be redone (subjects carry its code).
_QUALITY_SCORED = "quality.run_finished"


# --- writing the feed (in the caller's transaction) -------------------------------------------


def on_event(session: Session, event: Event) -> None:
    """Subscriber for the catalog's and the quality context's domain events (wired in the
    composition root): record the resource for re-indexing, in the same transaction."""
    code = event.subjects.get("resource")
    if code is None:
        return
    if event.type.startswith("resource.") or event.type == _QUALITY_SCORED:
        record(session, [code])


def record(session: Session, codes: Sequence[str]) -> None:
    """Queue resources for re-indexing once this transaction commits."""
    if not codes:
        return
    now = utcnow()
    session.execute(insert(_FEED), [{"resource_code": c, "created_at": now} for c in codes])
    session.info["search_feed"] = True


@event.listens_for(Session, "after_commit")
def _after_commit(session: Session) -> None:
    if session.info.pop("search_feed", False) and _writer is not None:
        _writer.wake()


@event.listens_for(Session, "after_rollback")
def _after_rollback(session: Session) -> None:
    session.info.pop("search_feed", None)


# --- the writer -------------------------------------------------------------------------------


class Writer:
    """The one writer of this machine's index (see the module docstring)."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or engine.index_dir()
        self._lock_fd: int | None = None
        self._index: tantivy.Index | None = None
        self._writer: tantivy.IndexWriter | None = None
        self._mutex = threading.Lock()  # the poller thread and after-commit wake-ups
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.watermark = 0  # every feed row up to here is applied
        self.applied: set[int] = set()  # applied rows above the watermark

    # lock and handles

    def acquire(self) -> bool:
        """Take this machine's writer lock (non-blocking); True if held."""
        if self._lock_fd is not None:
            return True
        self.path.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path.parent / f".{self.path.name}.writer.lock", os.O_RDWR | os.O_CREAT)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._lock_fd = fd
        return True

    def release(self) -> None:
        with self._mutex:
            if self._writer is not None:
                self._writer.wait_merging_threads()  # also drops tantivy's own lock
                self._writer = None
            self._index = None
            if self._lock_fd is not None:
                os.close(self._lock_fd)
                self._lock_fd = None

    def _open(self) -> tantivy.IndexWriter:
        if self._writer is None:
            self._index = engine.open_index(self.path, create=True)
            assert self._index is not None
            # One indexing thread: the analysis in Python is the bottleneck, and documents
            # then land in segments in the order added.
            self._writer = self._index.writer(heap_size=WRITER_HEAP, num_threads=1)
            self.watermark, self.applied = self._load_cursor()
        return self._writer

    # the cursor file

    @property
    def _cursor_path(self) -> Path:
        return self.path / CURSOR_FILE

    def _load_cursor(self) -> tuple[int, set[int]]:
        """(watermark, applied); (-1, ∅) when the index must be rebuilt: new, or behind the
        feed's retention."""
        try:
            saved = json.loads(self._cursor_path.read_text())
        except (OSError, ValueError):
            return -1, set()
        if time.time() - float(saved["at"]) > RETENTION.total_seconds():
            return -1, set()
        return int(saved["watermark"]), set(saved["applied"])

    def _save_cursor(self) -> None:
        storage.publish_text(self._cursor_path, json.dumps(
            {"watermark": self.watermark, "applied": sorted(self.applied), "at": time.time()}))

    # applying the feed

    def catch_up(self) -> int:
        """Apply the feed rows not yet applied (rebuilding first if the index is new or too far
        behind); returns the resources re-indexed. The caller holds the lock."""
        with self._mutex:
            writer = self._open()
            if self.watermark < 0:
                return self._rebuild(writer, None)
            with session_scope(write=False) as session:
                rows = session.execute(
                    select(_FEED.c.id, _FEED.c.resource_code, _FEED.c.created_at)
                    .where(_FEED.c.id > self.watermark).order_by(_FEED.c.id)).all()
                new = [r for r in rows if r.id not in self.applied]
                if new:
                    codes = list(dict.fromkeys(r.resource_code for r in new))
                    for i in range(0, len(codes), BATCH):
                        _replace(writer, session, codes[i:i + BATCH])
                    writer.commit()
                    engine.reload_readers()
            self._advance(rows)
            if new:
                self._save_cursor()
            return len(new)

    def _advance(self, rows: Sequence[Any]) -> None:
        """Move the watermark past rows old enough that no smaller id can still commit."""
        self.applied.update(r.id for r in rows)
        settled = utcnow() - GRACE
        for r in rows:  # in id order
            created = r.created_at if r.created_at.tzinfo else r.created_at.replace(
                tzinfo=settled.tzinfo)
            if created > settled:
                break
            self.watermark = r.id
        self.applied = {i for i in self.applied if i > self.watermark}

    # A rebuild asked for by another process (the CLI) while this one holds the lock: it
    # leaves a request file, and follows the progress file this process writes.

    @property
    def rebuild_requested(self) -> Path:
        return self.path.parent / f".{self.path.name}.rebuild-request"

    @property
    def rebuild_progress(self) -> Path:
        return self.path.parent / f".{self.path.name}.rebuild-progress"

    def _rebuild_on_request(self) -> None:
        self.rebuild_requested.unlink(missing_ok=True)
        report = self.rebuild_progress

        def progress(done: int, total: int) -> None:
            storage.publish_text(report, json.dumps({"done": done, "total": total}))

        progress(0, 0)
        try:
            count = self.rebuild(progress)
            storage.publish_text(report, json.dumps({"done": count, "total": count,
                                                     "finished": True}))
        except Exception as exc:
            storage.publish_text(report, json.dumps({"error": str(exc), "finished": True}))
            raise

    def rebuild(self, progress: Callable[[int, int], None] | None = None) -> int:
        """Rebuild the whole index from the database; returns the resources indexed. Readers
        see the old index until the single commit at the end."""
        with self._mutex:
            return self._rebuild(self._open(), progress)

    def _rebuild(self, writer: tantivy.IndexWriter,
                 progress: Callable[[int, int], None] | None) -> int:
        with session_scope(write=False) as session:
            # Rows of the last GRACE seconds are applied again after the rebuild: a change
            # committed while it read the catalog is then not lost.
            settled = session.execute(
                select(func.max(_FEED.c.id))
                .where(_FEED.c.created_at <= utcnow() - GRACE)).scalar_one() or 0
            # Rows already visible are committed: the rebuild reads their changes.
            visible = set(session.execute(
                select(_FEED.c.id).where(_FEED.c.id > settled)).scalars())
            total = session.execute(select(func.count()).select_from(_RES).where(
                _RES.c.status == ResourceStatus.active)).scalar_one()
            writer.delete_all_documents()
            bounds = session.execute(select(func.min(_RES.c.id), func.max(_RES.c.id))).one()
        count = 0
        for documents in _documents(bounds[0] or 0, bounds[1] or 0, parallel=total >= PARALLEL):
            for doc in documents:
                writer.add_json(doc)
            count += len(documents)
            if progress is not None:
                progress(count, total)
        writer.commit()
        writer.wait_merging_threads()  # merge the rebuild's segments before searches start
        engine.reload_readers()
        self._writer = None  # wait_merging_threads consumed it
        self.watermark, self.applied = settled, visible
        self._save_cursor()
        return count

    # the background thread

    def wake(self) -> None:
        """Apply the feed now: synchronously, so that the request that changed a resource
        finds it in its next search. Runs after that request's commit."""
        if not self.acquire():  # another process of this machine writes; it polls
            self._wake.set()
            return
        try:
            self.catch_up()
        except Exception:  # the poller retries; a search index must never fail a write
            log.exception("search: applying the feed failed")

    def start(self) -> None:
        self.acquire()  # now, so that the first request's commit already finds it held
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="search-writer", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None
        self.release()

    def _run(self) -> None:
        last_prune = 0.0
        while not self._stop.is_set():
            try:
                if self.acquire():
                    if self.rebuild_requested.exists():  # `govshare search reindex`
                        self._rebuild_on_request()
                    self.catch_up()
                    if time.monotonic() - last_prune > 3600:
                        prune()
                        last_prune = time.monotonic()
            except Exception:
                log.exception("search: the index writer failed; retrying")
            self._wake.wait(POLL_SECONDS)
            self._wake.clear()


def _replace(writer: tantivy.IndexWriter, session: Session, codes: list[str]) -> None:
    """Replace the documents of these resources with their current state (two queries)."""
    rows, items, providers = _load(session, _RES.c.code.in_(codes))
    found = {r.code for r in rows}
    for row in rows:
        # By query: delete_documents_by_term takes a Python int for an i64 and misses the u64.
        writer.delete_documents_by_query(
            tantivy.Query.term_query(engine.SCHEMA, "id", int(row.id)))
        if engine.is_indexed(row):
            writer.add_json(engine.document(row, items.get(row.id, []),
                                            providers[row.provider_id]))
    if len(found) < len(codes):  # deleted rows (resources are withdrawn, not deleted)
        log.warning("search: no resource with codes %s", sorted(set(codes) - found))


def _load(session: Session, where: Any) -> tuple[
        list[Any], dict[int, list[Any]], dict[int, dict[str, str]]]:
    """The resources, their items, and the providers (ProviderOut's fields): three queries."""
    # In id order: relevance ties come out in index order, which is then id order.
    rows = list(session.execute(select(*(_RES.c[n] for n in _RES_COLS)).where(where)
                                .order_by(_RES.c.id)).all())
    items: dict[int, list[Any]] = {}
    providers: dict[int, dict[str, str]] = {}
    if rows:
        for d in session.execute(select(_DEPT.c.id, _DEPT.c.code, _DEPT.c.name_zh,
                                        _DEPT.c.name_en, _DEPT.c.kind, _DEPT.c.level)
                                 .where(_DEPT.c.id.in_({r.provider_id for r in rows}))):
            providers[d.id] = {"code": d.code, "name_zh": d.name_zh, "name_en": d.name_en,
                               "kind": str(getattr(d.kind, "value", d.kind)),
                               "level": str(getattr(d.level, "value", d.level))}
        ids = [r.id for r in rows]
        for item in session.execute(
            select(_ITEM.c.resource_id, _ITEM.c.name, _ITEM.c.title, _ITEM.c.title_en,
                   _ITEM.c.description)
            .where(_ITEM.c.resource_id.in_(ids))
            .order_by(_ITEM.c.resource_id, _ITEM.c.position)
        ).all():  # fetched at once: row by row costs more than the query
            items.setdefault(item.resource_id, []).append(item)
    return rows, items, providers


def _documents(first: int, last: int, *, parallel: bool) -> Iterator[list[str]]:
    """The documents of the active resources with ids in [first, last], BATCH ids at a time,
    in id order. In parallel: worker processes (one per core) read and analyse id ranges of
    their own, and this process only hands the JSON to tantivy: the analysis in Python is the
    bottleneck of a rebuild."""
    ranges = [(lo, min(lo + BATCH, last + 1)) for lo in range(first, last + 1, BATCH)]
    if not parallel or (os.cpu_count() or 1) < 2:
        yield from map(_range_documents, ranges)
        return
    # spawn, not fork: the caller may be a server process with threads (tantivy's, ours).
    # An executor, not a Pool: a worker that dies (killed, or failing to start) breaks the
    # rebuild with an error instead of leaving it waiting forever for the lost batch.
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(os.cpu_count(), mp_context=context,
                             initializer=_worker_started) as pool:
        yield from pool.map(_range_documents, ranges)


def _worker_started() -> None:
    # A rebuild's worker makes millions of short-lived rows and strings and no cycles: the
    # collector would run every few hundred allocations for nothing.
    gc.set_threshold(200_000, 50, 50)


def _range_documents(bounds: tuple[int, int]) -> list[str]:
    """Documents of the active resources with lo <= id < hi (two queries)."""
    lo, hi = bounds
    with session_scope(write=False) as session:
        rows, items, providers = _load(session, (_RES.c.id >= lo) & (_RES.c.id < hi)
                                       & (_RES.c.status == ResourceStatus.active))
    return [engine.document(row, items.get(row.id, []), providers[row.provider_id])
            for row in rows]


def unindexed_codes(session: Session) -> set[str] | None:
    """Codes of the resources changed since this machine's index last applied the feed (its
    documents may be stale or missing), read from the writer's saved cursor; None when there is
    no cursor (no index built yet). A reader that needs every change (the duplicate check,
    ``catalog.search.nearby``) adds these to what the index finds. Read the cursor before
    reloading the reader: the cursor is saved after the commit it describes."""
    try:
        saved = json.loads((engine.index_dir() / CURSOR_FILE).read_text())
        watermark, applied = int(saved["watermark"]), set(saved["applied"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    rows = session.execute(select(_FEED.c.id, _FEED.c.resource_code)
                           .where(_FEED.c.id > watermark)).all()
    return {r.resource_code for r in rows if r.id not in applied}


def prune() -> int:
    """Forget feed rows older than RETENTION (an index that far behind is rebuilt anyway)."""
    with session_scope() as session:
        result = session.execute(delete(_FEED).where(_FEED.c.created_at < utcnow() - RETENTION))
        return int(getattr(result, "rowcount", 0) or 0)


# --- this process's writer --------------------------------------------------------------------

_writer: Writer | None = None


def start() -> Writer:
    """Run the writer in this process (it writes only while it holds the machine's lock)."""
    global _writer
    if _writer is None:
        _writer = Writer()
        _writer.start()
    return _writer


def stop() -> None:
    global _writer
    if _writer is not None:
        _writer.stop()
        _writer = None


def sync(*, wait: bool = True) -> int:
    """Apply the feed now, from this process (the CLI, tests). Waits for the machine's writer
    lock, or without ``wait`` does nothing if another process holds it (it applies the feed
    itself)."""
    writer = _writer or Writer()
    while not writer.acquire():
        if not wait:
            return 0
        time.sleep(0.05)
    try:
        return writer.catch_up()
    finally:
        if writer is not _writer:
            writer.release()
