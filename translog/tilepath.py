"""C2SP tlog-tiles paths (c2sp.org/tlog-tiles), standard library only.

``tile/<L>/<N>[.p/<W>]`` and ``tile/entries/<N>[.p/<W>]``: N is written in 3-digit groups, all
but the last prefixed with ``x`` (1234067 → ``x001/x234/067``); W (1–255) marks a partial tile.
A tile at level L holds the hashes of tree level 8·L, so with perfect-subtree hashes stored per
level, tile (L, N, W) is the W hashes at level 8·L starting at index N·256.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass

HEIGHT = 8
WIDTH = 1 << HEIGHT  # 256 hashes (or entries) in a full tile
HASH_SIZE = 32
_LEVEL = re.compile(r"^(0|[1-9][0-9]?)$")
_GROUP = re.compile(r"^x[0-9]{3}$")
_LAST = re.compile(r"^[0-9]{3}$")
_PARTIAL = re.compile(r"^[1-9][0-9]{0,2}$")


@dataclass(frozen=True)
class Tile:
    level: int  # -1 for an entry bundle
    index: int
    width: int = WIDTH

    @property
    def is_entries(self) -> bool:
        return self.level < 0

    @property
    def partial(self) -> bool:
        return self.width < WIDTH

    def path(self) -> str:
        head = "tile/entries" if self.is_entries else f"tile/{self.level}"
        tail = f".p/{self.width}" if self.partial else ""
        return f"{head}/{encode_index(self.index)}{tail}"

    @property
    def start(self) -> int:
        """The first index (at tree level 8·L, or the first entry) this tile holds."""
        return self.index * WIDTH


def encode_index(n: int) -> str:
    groups = []
    while True:
        groups.append(f"{n % 1000:03d}")
        n //= 1000
        if n == 0:
            break
    groups.reverse()
    return "/".join([*("x" + g for g in groups[:-1]), groups[-1]])


def parse(path: str) -> Tile:
    """A tile from its path after ``tile/`` (``0/x001/234.p/7``, ``entries/000``)."""
    parts = path.split("/")
    width = WIDTH
    if len(parts) >= 3 and parts[-2].endswith(".p"):
        if not _PARTIAL.match(parts[-1]) or int(parts[-1]) >= WIDTH:
            raise ValueError(f"partial tile width {parts[-1]!r} is not 1 to 255")
        width = int(parts[-1])
        parts = [*parts[:-2], parts[-2][:-2]]
    if len(parts) < 2:
        raise ValueError("a tile path is <level or 'entries'>/<index>")
    kind, groups = parts[0], parts[1:]
    if kind == "entries":
        level = -1
    elif _LEVEL.match(kind) and int(kind) < 64:
        level = int(kind)
    else:
        raise ValueError(f"tile level {kind!r} is not 'entries' or 0 to 63 without leading zeros")
    if not _LAST.match(groups[-1]) or not all(_GROUP.match(g) for g in groups[:-1]):
        raise ValueError("a tile index is 3-digit groups, all but the last prefixed with 'x'")
    if len(groups) > 1 and groups[0] == "x000":
        raise ValueError("a tile index has no leading zero groups")
    index = int("".join(g.lstrip("x") for g in groups))
    return Tile(level, index, width)


def tiles_for_size(size: int) -> list[Tile]:
    """Every tile (full and partial, entry bundles too) a tree of ``size`` leaves consists of."""
    tiles: list[Tile] = []
    level, count = 0, size  # count: hashes at tree level 8·level
    while count > 0:
        tiles += [Tile(level, n) for n in range(count // WIDTH)]
        if count % WIDTH:
            tiles.append(Tile(level, count // WIDTH, count % WIDTH))
        if level == 0:
            tiles += [Tile(-1, t.index, t.width) for t in list(tiles)]
        level, count = level + 1, count // WIDTH
    return tiles


def split_bundle(data: bytes) -> list[bytes]:
    """The entries of an entry bundle; raises ValueError on a truncated one."""
    entries, pos = [], 0
    while pos < len(data):
        if pos + 2 > len(data):
            raise ValueError("entry bundle truncated in a length prefix")
        (length,) = struct.unpack(">H", data[pos:pos + 2])
        if pos + 2 + length > len(data):
            raise ValueError("entry bundle truncated in an entry")
        entries.append(data[pos + 2:pos + 2 + length])
        pos += 2 + length
    return entries
