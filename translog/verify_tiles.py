"""Offline verification of a C2SP tile mirror of the log (``govshare log verify DIR``).

A mirror is a directory holding ``checkpoint`` and the tiles at their C2SP paths, as
``govshare log mirror`` (or any static mirroring of ``/checkpoint`` and ``/tile/…``) writes
it. Standard library, ``cryptography`` and our stdlib-only modules, like ``translog.verify``:

* the checkpoint's note signature verifies with a trusted key (under the checkpoint's origin,
  which must be the key document's origin when it names one);
* every entry of every bundle is a canonical entry, numbered in order;
* every hash in every tile, at every level, equals the hash recomputed from the entries;
* the root recomputed from the entries is the checkpoint's root.

Memory stays O(log n): the tree frontier plus at most one tile of hashes per level.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from translog import canonical, merkle, note, tilepath
from translog.tilepath import HASH_SIZE, HEIGHT, WIDTH, Tile


@dataclass(frozen=True)
class MirrorResult:
    ok: bool
    tree_size: int = 0
    root_hash: str = ""
    tiles: int = 0
    detail: str = ""

    def summary(self) -> str:
        if self.ok:
            return (f"OK: tree size {self.tree_size}, root {self.root_hash} (checkpoint "
                    f"signature and {self.tiles} tiles verified)")
        return f"FAILED: {self.detail}"


class _Bad(Exception):
    pass


def _raw(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def verify_mirror(directory: str | Path, keys: list[Ed25519PublicKey],
                  origin: str | None = None) -> MirrorResult:
    root = Path(directory)
    try:
        return _Verifier(root, keys, origin).run()
    except _Bad as bad:
        return MirrorResult(False, detail=str(bad))


def document_origin(path: str | Path) -> str | None:
    """The origin a key document names (None for PEM files or older documents)."""
    data = Path(path).read_bytes()
    if not data.lstrip().startswith(b"{"):
        return None
    origin = json.loads(data).get("origin")
    return origin if isinstance(origin, str) else None


class _Verifier:
    def __init__(self, root: Path, keys: list[Ed25519PublicKey], origin: str | None) -> None:
        self.root, self.keys, self.origin = root, keys, origin
        self.tiles = 0
        # per tile level: the hashes recomputed so far for its current tile
        self.pending: dict[int, list[bytes]] = {}

    def _read(self, tile: Tile) -> bytes:
        path = self.root / tile.path()
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise _Bad(f"the mirror lacks {tile.path()}") from None
        self.tiles += 1
        return data

    def run(self) -> MirrorResult:
        try:
            data = (self.root / "checkpoint").read_bytes()
            signed = note.parse_note(data)
            checkpoint = note.parse_checkpoint(signed.text)
        except (OSError, note.NoteError, UnicodeDecodeError) as exc:
            raise _Bad(f"checkpoint: {exc}") from None
        if self.origin is not None and checkpoint.origin != self.origin:
            raise _Bad(f"the checkpoint is for {checkpoint.origin!r}, the keys for "
                       f"{self.origin!r}")
        verifiers = [note.Verifier(checkpoint.origin, note.ED25519, _raw(k)) for k in self.keys]
        if not signed.verified(verifiers):
            raise _Bad("the checkpoint carries no valid signature by a trusted key")
        frontier = merkle.Frontier()
        for start in range(0, checkpoint.size, WIDTH):
            width = min(WIDTH, checkpoint.size - start)
            bundle = Tile(-1, start // WIDTH, width)
            try:
                entries = tilepath.split_bundle(self._read(bundle))
            except ValueError as exc:
                raise _Bad(f"{bundle.path()}: {exc}") from None
            if len(entries) != width:
                raise _Bad(f"{bundle.path()} holds {len(entries)} entries, not {width}")
            for offset, raw in enumerate(entries):
                self._entry(start + offset, raw)
                for level, index, h in frontier.append(merkle.leaf_hash(raw)):
                    if level % HEIGHT == 0:
                        self._hash(level // HEIGHT, index, h)
        for level, hashes in self.pending.items():  # the partial tiles
            if hashes:
                index = (checkpoint.size >> (level * HEIGHT)) // WIDTH
                self._compare(Tile(level, index, len(hashes)), hashes)
        if frontier.root() != checkpoint.root_hash:
            raise _Bad("the root recomputed from the entries is not the checkpoint's root")
        return MirrorResult(True, checkpoint.size, checkpoint.root_hash.hex(), self.tiles)

    def _entry(self, seq: int, raw: bytes) -> None:
        try:
            obj = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise _Bad(f"entry {seq} is not JSON") from None
        problem = canonical.entry_problem(obj)
        if problem is not None or canonical.entry_bytes(obj) != raw:
            raise _Bad(f"entry {seq} is not a canonical entry: {problem or 'not canonical'}")
        if obj["seq"] != seq:
            raise _Bad(f"entry {obj['seq']} stands where entry {seq} belongs")

    def _hash(self, tile_level: int, index: int, h: bytes) -> None:
        hashes = self.pending.setdefault(tile_level, [])
        hashes.append(h)
        if len(hashes) == WIDTH:
            self._compare(Tile(tile_level, index // WIDTH), hashes)
            hashes.clear()

    def _compare(self, tile: Tile, hashes: list[bytes]) -> None:
        data = self._read(tile)
        if len(data) != len(hashes) * HASH_SIZE:
            raise _Bad(f"{tile.path()} is {len(data)} bytes, not {len(hashes) * HASH_SIZE}")
        for i, h in enumerate(hashes):
            if data[i * HASH_SIZE:(i + 1) * HASH_SIZE] != h:
                raise _Bad(f"{tile.path()}: hash {i} differs from the one recomputed from the "
                           "entries")
