"""What the ledger may repeat of its input: short echoes, and never a full identity number.

Every reason the ledger gives (``LedgerError.as_reason``) passes through :func:`safe_text`, so a
message can never carry more than :data:`MAX_MESSAGE` characters or a full identity number,
whoever built it. Code that quotes a value in a message uses :func:`echo`, which caps the quote
at :data:`MAX_ECHO` characters and masks it the same way.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

MAX_ECHO = 80
"""Longest quote of an input value in a message, ellipsis included."""

MAX_MESSAGE = 500
"""Longest reason message (and longest ``field``) the ledger produces, ellipsis included."""

ELLIPSIS = "…"

# An identity number is 18 characters: 17 digits and a digit or X. Any run of 18 or more digits
# (ASCII or not) and x/X is masked whole but for its first 6 and last 4 characters, so no
# 18-character window of it survives intact, whatever the run is (a number, two numbers
# glued together, a number inside a longer digit string).
_IDENTITY_RUN = re.compile(r"[\dXxＸｘ]{18,}")


def _mask_run(match: re.Match[str]) -> str:
    run = match.group(0)
    return run[:6] + "*" * (len(run) - 10) + run[-4:]


def mask_identity_numbers(text: str) -> str:
    """``text`` with every identity-number-shaped run masked as ``110105********002X``."""
    if len(text) < 18:
        return text
    return _IDENTITY_RUN.sub(_mask_run, text)


def cap(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` characters, ending in an ellipsis when cut."""
    return text if len(text) <= limit else text[: limit - 1] + ELLIPSIS


def echo(value: Any, limit: int = MAX_ECHO) -> str:
    """A value quoted for a message: JSON for structures, ``repr`` for text, capped and masked.

    The cap is applied before the value is rendered whole where that is cheap (long strings), so
    quoting a megabyte costs no more than quoting a line.
    """
    if isinstance(value, str):
        shown = repr(value[: limit + 1])
    else:
        try:
            shown = orjson.dumps(value, default=str).decode()
        except (TypeError, orjson.JSONEncodeError):  # too deep, or an integer beyond 64 bits
            shown = str(value) if isinstance(value, int) else type(value).__name__
    return mask_identity_numbers(cap(shown, limit))


_PLAIN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/-]{0,63}")


def shown_id(value: Any) -> str:
    """An id as a message shows it: bare when it is a well-formed id, else a quoted :func:`echo`."""
    if isinstance(value, str) and _PLAIN_ID.fullmatch(value):
        return mask_identity_numbers(value)
    return echo(value)


def safe_text(text: str, limit: int = MAX_MESSAGE) -> str:
    """A message fit to leave the ledger: at most ``limit`` characters, identity numbers masked."""
    return mask_identity_numbers(cap(text, limit))
