"""C2SP hash tiles (c2sp.org/tlog-tiles) of the ledger's RFC 9162 tree.

A tile is a run of up to 256 consecutive hashes at one level of tiling: level 0 holds leaf
hashes, and each hash of a level ``L`` tile is the root of a perfect subtree of 256**L leaves.
A client fetches the few tiles it needs and computes any root, inclusion or consistency proof
itself; the hashing is the proofs' own (RFC 6962/9162), only the encoding differs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ledger.verification.merkle import MerkleLog

TILE_HEIGHT = 8
TILE_WIDTH = 1 << TILE_HEIGHT
"""A full tile holds 256 hashes (8,192 bytes)."""

MAX_LEVEL = 63

_ELEMENT = re.compile(r"x?[0-9]{3}")


class TilePathError(ValueError):
    """Not a tile path tlog-tiles allows; the message says what is wrong."""


@dataclass(frozen=True)
class Tile:
    """The tile ``index`` at ``level``, ``width`` hashes wide (256: full; fewer: partial)."""

    level: int
    index: int
    width: int = TILE_WIDTH

    @property
    def path(self) -> str:
        """``tile/<L>/<N>[.p/<W>]``, N in 3-digit path elements, all but the last begin with x."""
        n, elements = self.index, [f"{self.index % 1000:03d}"]
        while n >= 1000:
            n //= 1000
            elements.insert(0, f"x{n % 1000:03d}")
        partial = f".p/{self.width}" if self.width < TILE_WIDTH else ""
        return f"tile/{self.level}/{'/'.join(elements)}{partial}"

    @property
    def first(self) -> int:
        """The index of its first hash among the hashes at its level of the tree."""
        return self.index * TILE_WIDTH

    def needs(self) -> int:
        """The smallest tree size that holds every hash of this tile."""
        return (self.first + self.width) << (TILE_HEIGHT * self.level)


def parse_tile_path(level: str, rest: str) -> Tile:
    """The tile at ``tile/<level>/<rest>``; TilePathError if the path is not one tlog-tiles allows."""
    if not re.fullmatch(r"0|[1-9][0-9]?", level) or int(level) > MAX_LEVEL:
        raise TilePathError(f"the level is a whole number from 0 to {MAX_LEVEL}, not {level[:20]!r}")
    width = TILE_WIDTH
    head, dot, tail = rest.partition(".p/")
    if dot:
        if not re.fullmatch(r"[1-9][0-9]{0,2}", tail) or int(tail) >= TILE_WIDTH:
            raise TilePathError(f"a partial tile's width is 1 to 255, not {tail[:20]!r}")
        width = int(tail)
    elements = head.split("/")
    if len(elements) > 7 or not all(_ELEMENT.fullmatch(e) for e in elements):
        raise TilePathError(
            f"the tile index is 3-digit path elements, all but the last with an x: {head[:40]!r}"
        )
    index = 0
    for element in elements:
        index = index * 1000 + int(element.lstrip("x"))
    tile = Tile(int(level), index, width)
    if tile.path != f"tile/{level}/{rest}":  # e.g. x000/001: zero-padded elements, not the encoding
        raise TilePathError(f"tile/{level}/{rest[:40]} is not how tile {index} is written: {tile.path}")
    return tile


def tiles_of(size: int) -> list[Tile]:
    """Every tile of a tree of ``size`` leaves: the full ones and, at each level, the partial one."""
    tiles: list[Tile] = []
    level = 0
    while size >> (TILE_HEIGHT * level):
        hashes = size >> (TILE_HEIGHT * level)
        tiles.extend(Tile(level, n) for n in range(hashes // TILE_WIDTH))
        if hashes % TILE_WIDTH:
            tiles.append(Tile(level, hashes // TILE_WIDTH, hashes % TILE_WIDTH))
        level += 1
    return tiles


def tile_data(log: MerkleLog, tile: Tile) -> bytes:
    """The tile's hashes, concatenated; LookupError if the tree is not yet large enough to hold them.

    Hash ``i`` of tile ``N`` at level ``L`` is the root of the perfect subtree of height ``8L``
    over leaves ``(N*256 + i) * 256**L`` onwards, which the Merkle log keeps as it is completed.
    """
    if tile.needs() > log.size:
        raise LookupError(f"{tile.path} needs a tree of {tile.needs()} leaves; this one has {log.size}")
    return log.subtree_hashes(TILE_HEIGHT * tile.level, tile.first, tile.width)
