"""Issue 16: tlog-tiles of the ledger's tree: paths, which tiles a size has, and their hashes.

Known answers from c2sp.org/tlog-tiles (its path and size examples) and from the Go tlog
package's tile paths; the hashes against RFC 9162's recursive definition, at every size.
"""

from __future__ import annotations

from collections import Counter

import pytest

from ledger.verification.merkle import MerkleLog, leaf_hash, root_from_leaf_hashes
from ledger.verification.tiles import TILE_WIDTH, Tile, TilePathError, parse_tile_path, tile_data, tiles_of


def test_tile_paths_are_written_in_three_digit_elements_as_the_spec_says() -> None:
    assert Tile(0, 1234067).path == "tile/0/x001/x234/067"
    assert Tile(4, 1234067, 1).path == "tile/4/x001/x234/067.p/1"  # Go's tlog.Tile path without its height
    assert Tile(1, 0, 255).path == "tile/1/000.p/255"
    assert Tile(0, 999).path == "tile/0/999"
    assert Tile(0, 1000).path == "tile/0/x001/000"
    for tile in (Tile(0, 1234067), Tile(4, 1234067, 1), Tile(63, 7, 3), Tile(0, 10**15)):
        level, _, rest = tile.path.removeprefix("tile/").partition("/")
        assert parse_tile_path(level, rest) == tile


@pytest.mark.parametrize(
    ("level", "rest"),
    [
        ("64", "000"),  # levels run 0 to 63
        ("01", "000"),  # no leading zeroes
        ("entries", "000"),  # entry bundles are not served
        ("0", "00"),
        ("0", "001/002"),  # all but the last element begin with x
        ("0", "x000/001"),  # not how 1 is written
        ("0", "000.p/0"),
        ("0", "000.p/256"),  # a partial tile is narrower than a full one
        ("0", "000.p/007"),
        ("0", "x001/x002/x003/x004/x005/x006/x007/008"),
    ],
)
def test_a_path_that_is_no_tile_is_refused(level: str, rest: str) -> None:
    with pytest.raises(TilePathError):
        parse_tile_path(level, rest)


def test_a_tree_of_70000_has_the_tiles_the_spec_lists_and_one_of_256_two() -> None:
    # "a tree of size 70,000 will be represented by 273 full level 0 tiles, one partial level 0
    # tile of width 112, one full level 1 tile, one partial level 1 tile of width 17, and one
    # partial level 2 tile of width 1."
    assert Counter((t.level, t.width) for t in tiles_of(70_000)) == {
        (0, TILE_WIDTH): 273,
        (0, 112): 1,
        (1, TILE_WIDTH): 1,
        (1, 17): 1,
        (2, 1): 1,
    }
    # "a tree of size 256 will be represented by a full level 0 tile and a partial level 1 tile of width 1"
    assert tiles_of(256) == [Tile(0, 0), Tile(1, 0, 1)]
    assert tiles_of(0) == []


def test_every_tile_of_every_size_holds_the_subtree_roots_of_rfc_9162() -> None:
    n = 2 * TILE_WIDTH + 70  # two full level-0 tiles and a partial one, and a level-1 tile of 2
    leaves = [leaf_hash(f"leaf {i}".encode()) for i in range(n)]
    log = MerkleLog()
    for size in range(1, n + 1):
        log.append_leaf_hash(leaves[size - 1])
        for tile in tiles_of(size):
            span = TILE_WIDTH**tile.level
            starts = [(tile.first + i) * span for i in range(tile.width)]
            expected = b"".join(root_from_leaf_hashes(leaves[s : s + span]) for s in starts)
            assert tile_data(log, tile) == expected, (size, tile)


def test_a_tile_the_tree_does_not_yet_fill_is_not_given() -> None:
    log = MerkleLog()
    for i in range(300):
        log.append(str(i).encode())
    assert len(tile_data(log, Tile(0, 1, 44))) == 44 * 32
    for tile in (Tile(0, 1, 45), Tile(0, 1), Tile(1, 0, 2), Tile(2, 0, 1)):
        with pytest.raises(LookupError):
            tile_data(log, tile)
