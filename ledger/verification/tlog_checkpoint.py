"""The body of a C2SP checkpoint (c2sp.org/tlog-checkpoint): the note text a log signs.

The origin line (the log's name), the tree size in decimal, the root hash in base64, then
optional extension lines, each line ending in a newline. The root is the ledger's RFC 9162 tree
(``merkle``), the same one every proof uses.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass

HASH_SIZE = 32

DEFAULT_ORIGIN = "credit-ledger.example/v1"
"""The origin line of the ledger's checkpoints when none is configured (CREDIT_LOG_ORIGIN)."""
_SIZE = re.compile(r"0|[1-9][0-9]{0,18}")


def decimal(text: str) -> int | None:
    """``text`` as a tree size (ASCII decimal, no leading zeroes, below 2**63), or None."""
    return int(text) if _SIZE.fullmatch(text) and int(text) < 2**63 else None


def hash_line(text: str) -> bytes | None:
    """``text`` as one hash in base64 (a root line, a proof line), or None if it is not one."""
    try:
        digest = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        return None
    return digest if len(digest) == HASH_SIZE else None


class FormatError(ValueError):
    """Not a checkpoint body; the message says which line is wrong."""


@dataclass(frozen=True)
class CheckpointBody:
    """The note text of a checkpoint: origin, tree size, root hash and extension lines."""

    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()

    def text(self) -> str:
        """The note text, each line ending in a newline."""
        lines = [self.origin, str(self.size), base64.b64encode(self.root).decode(), *self.extensions]
        return "".join(line + "\n" for line in lines)

    @classmethod
    def parse(cls, text: str) -> CheckpointBody:
        """Read a checkpoint body (a note text); FormatError says which line is wrong."""
        if not text.endswith("\n"):
            raise FormatError("a checkpoint ends in a newline")
        lines = text[:-1].split("\n")
        if len(lines) < 3 or any(not line for line in lines):
            raise FormatError("a checkpoint is at least three non-empty lines: origin, size, root hash")
        origin, size, root, *extensions = lines
        if decimal(size) is None:
            raise FormatError(
                f"the tree size line is a decimal number without leading zeroes, not {size[:30]!r}"
            )
        digest = hash_line(root)
        if digest is None:
            raise FormatError(f"the root hash line is 32 bytes in base64, not {root[:60]!r}")
        return cls(origin, int(size), digest, tuple(extensions))
