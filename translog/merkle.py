"""RFC 9162 (RFC 6962) Merkle tree hashing, proofs and proof verification. Standard library only.

Every hash the proofs need is the hash of a range of leaves that RFC 9162's recursion produces,
and each such range is a run of *perfect* subtrees (2^level leaves starting at a multiple of
2^level). So a tree is anything that can answer ``lookup(level, index)`` for complete perfect
subtrees: ``MemoryTree`` keeps them in lists, ``translog.tree`` in a database table. Proofs
are planned as ranges first (``*_ranges``) so a store can fetch all the nodes in one query.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence

Lookup = Callable[[int, int], bytes]  # (level, index) -> hash of that perfect subtree
Node = tuple[int, int]  # (level, index)
Range = tuple[int, int]  # leaves [start, end)

EMPTY_ROOT = hashlib.sha256(b"").digest()
_sha256 = hashlib.sha256


def leaf_hash(data: bytes) -> bytes:
    return _sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return _sha256(b"\x01" + left + right).digest()


def split_point(n: int) -> int:
    """The largest power of two smaller than ``n`` (n >= 2): where RFC 9162 splits a tree."""
    return 1 << ((n - 1).bit_length() - 1)


def decompose(start: int, end: int) -> list[Node]:
    """The perfect subtrees that make up leaves [start, end), largest (leftmost) first.

    Valid for ``start`` aligned to the next power of two >= end - start, which holds for the
    whole tree and every range the proof recursions below produce.
    """
    nodes: list[Node] = []
    size = end - start
    for level in range(size.bit_length() - 1, -1, -1):
        if size >> level & 1:
            nodes.append((level, start >> level))
            start += 1 << level
    return nodes


def fold(hashes: Sequence[bytes]) -> bytes:
    """Root of consecutive perfect subtrees, largest first: MTH folds them from the right."""
    acc = hashes[-1]
    for h in reversed(hashes[:-1]):
        acc = node_hash(h, acc)
    return acc


def range_hash(start: int, end: int, lookup: Lookup) -> bytes:
    return fold([lookup(level, index) for level, index in decompose(start, end)])


def root(size: int, lookup: Lookup) -> bytes:
    return EMPTY_ROOT if size == 0 else range_hash(0, size, lookup)


# --- planning: which ranges a proof consists of -----------------------------------------------

def inclusion_ranges(index: int, size: int) -> list[Range]:
    """PATH(index, D[0:size]) of RFC 9162 §2.1.3.1 as leaf ranges, leaf-side first."""
    if not 0 <= index < size:
        raise ValueError(f"leaf {index} is not in a tree of size {size}")
    ranges: list[Range] = []
    start, end = 0, size
    while end - start > 1:  # walk down from the root; the path is read bottom-up
        k = split_point(end - start)
        if index < start + k:
            ranges.append((start + k, end))
            end = start + k
        else:
            ranges.append((start, start + k))
            start += k
    ranges.reverse()
    return ranges


def consistency_ranges(first: int, second: int) -> list[Range]:
    """PROOF(first, D[0:second]) of RFC 9162 §2.1.4.1 as leaf ranges (empty if equal)."""
    if not 0 < first <= second:
        raise ValueError(f"no consistency proof from size {first} to size {second}")
    ranges: list[Range] = []
    start, end, m, complete = 0, second, first, True
    while m != end - start:  # SUBPROOF(m, D[start:end], complete)
        k = split_point(end - start)
        if m <= k:
            ranges.append((start + k, end))
            end = start + k
        else:
            ranges.append((start, start + k))
            start, m, complete = start + k, m - k, False
    if not complete:
        ranges.append((start, end))
    ranges.reverse()
    return ranges


def nodes_for(ranges: Iterable[Range]) -> set[Node]:
    return {node for start, end in ranges for node in decompose(start, end)}


def inclusion_proof(index: int, size: int, lookup: Lookup) -> list[bytes]:
    return [range_hash(s, e, lookup) for s, e in inclusion_ranges(index, size)]


def consistency_proof(first: int, second: int, lookup: Lookup) -> list[bytes]:
    return [range_hash(s, e, lookup) for s, e in consistency_ranges(first, second)]


# --- verification (RFC 9162 §2.1.3.2 and §2.1.4.2) ---------------------------------------------

def verify_inclusion(index: int, size: int, leaf: bytes, path: Sequence[bytes],
                     root_hash: bytes) -> bool:
    """True if ``leaf`` (a leaf *hash*) is at ``index`` in the tree of ``size`` with that root."""
    if not 0 <= index < size:
        return False
    fn, sn, r = index, size - 1, leaf
    for p in path:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = node_hash(r, p)
        fn, sn = fn >> 1, sn >> 1
    return sn == 0 and r == root_hash


def verify_consistency(first: int, second: int, first_root: bytes, second_root: bytes,
                       proof: Sequence[bytes]) -> bool:
    """True if the tree of size ``first`` is a prefix of the one of size ``second``."""
    if not 0 < first <= second:
        return False
    if first == second:
        return not proof and first_root == second_root
    if not proof:
        return False
    path = list(proof)
    if first & (first - 1) == 0:  # an exact power of two is a complete subtree of the new tree
        path.insert(0, first_root)
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr, sr = node_hash(c, fr), node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            sr = node_hash(sr, c)
        fn, sn = fn >> 1, sn >> 1
    return fr == first_root and sr == second_root and sn == 0


# --- in-memory trees --------------------------------------------------------------------------

class MemoryTree:
    """All perfect subtrees of a list of leaf hashes, level by level (tests, exports, tools)."""

    def __init__(self, leaf_hashes: Iterable[bytes] = ()) -> None:
        self.levels: list[list[bytes]] = [[]]
        for h in leaf_hashes:
            self.append(h)

    @property
    def size(self) -> int:
        return len(self.levels[0])

    def append(self, leaf: bytes) -> None:
        self.levels[0].append(leaf)
        level, index = 0, len(self.levels[0]) - 1
        while index & 1:  # a right child completes its parent
            if len(self.levels) == level + 1:
                self.levels.append([])
            row = self.levels[level]
            self.levels[level + 1].append(node_hash(row[index - 1], row[index]))
            level, index = level + 1, index >> 1

    def lookup(self, level: int, index: int) -> bytes:
        return self.levels[level][index]

    def root(self, size: int | None = None) -> bytes:
        return root(self.size if size is None else size, self.lookup)


class Frontier:
    """The perfect subtrees covering a growing tree (at most log2(n) of them, largest first).

    Appending a leaf and reading the root are O(log n) without keeping the leaves, which is how
    the service appends and the offline verifier streams an export of any size.
    """

    def __init__(self, size: int = 0, nodes: Sequence[bytes] = ()) -> None:
        self.size = size
        self.levels = [level for level, _ in decompose(0, size)]
        self.hashes = list(nodes)
        if len(self.hashes) != len(self.levels):
            raise ValueError("a frontier needs one hash per perfect subtree of its size")

    def append(self, leaf: bytes) -> list[tuple[int, int, bytes]]:
        """Add a leaf hash; returns the perfect subtrees it completed as (level, index, hash)."""
        completed = [(0, self.size, leaf)]
        levels, hashes = self.levels, self.hashes
        level, h = 0, leaf
        while levels and levels[-1] == level:
            levels.pop()
            h = node_hash(hashes.pop(), h)
            level += 1
            completed.append((level, self.size >> level, h))
        levels.append(level)
        hashes.append(h)
        self.size += 1
        return completed

    def root(self) -> bytes:
        return fold(self.hashes) if self.hashes else EMPTY_ROOT
