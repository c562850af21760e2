"""API keys: issued once, kept only as a SHA-256 hash in the ledger's database, checked on every call."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable, Collection, Mapping
from datetime import datetime
from typing import Any

from ledger.application.ports import KeyStore
from ledger.domain.access import PUBLIC, ROLES, Principal

KEY_PREFIX = "clk"
SUBJECT_ORGANISATION = "citizen"
"""What the register names as the organisation of a subject's own key: a person acts for no one else."""


class KeyRefused(ValueError):
    """A key cannot be issued as asked; the message names the option at fault."""


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def issue_key(
    keys: KeyStore,
    *,
    role: str,
    organisation: str,
    label: str,
    subject_key: str | None,
    now: datetime,
    departments: Collection[str],
) -> tuple[str, str]:
    """A new API key: (key id, the key). Only its hash is stored; the key is shown once.

    ``departments`` are the catalogue's: a department's key acts for one of them, so a key for a
    department the catalogue does not list would authorise nobody real.
    """
    if role not in ROLES or role == "public":
        raise KeyRefused(f"role must be one of {', '.join(r for r in ROLES if r != 'public')}, got {role!r}")
    if (role == "subject") != (subject_key is not None):
        raise KeyRefused("a key for role 'subject' names the subject (and only such a key does)")
    if role == "subject" and not organisation.strip():
        organisation = SUBJECT_ORGANISATION
    if not organisation.strip():
        raise KeyRefused("organisation is required: the register names who every query came from")
    if role == "department" and organisation not in departments:
        raise KeyRefused(
            f"organisation {organisation!r} is not a department in the catalogue "
            f"(one of: {', '.join(sorted(departments))})"
        )
    key_id = secrets.token_hex(6)
    key = f"{KEY_PREFIX}_{key_id}_{secrets.token_urlsafe(24)}"
    keys.add_key(
        {
            "key_id": key_id,
            "key_hash": hash_key(key),
            "role": role,
            "organisation": organisation,
            "label": label,
            "subject_key": subject_key,
            "created_at": now.isoformat(),
            "revoked_at": None,
        }
    )
    return key_id, key


def authenticate(keys: KeyStore, api_key: str | None) -> Principal | None:
    """The caller's principal; the public without a key; None for a key that is not valid."""
    if not api_key:
        return PUBLIC
    parts = api_key.split("_", 2)
    if len(parts) != 3 or parts[0] != KEY_PREFIX:
        return None
    row = keys.key(parts[1])
    if row is None or row["revoked_at"] or not hmac.compare_digest(row["key_hash"], hash_key(api_key)):
        return None
    return _principal(row)


KEY_CACHE_SECONDS = 1.0
"""How long a serving process may go on accepting a key after it was last read from the store: a
revoked key is refused by every server at most this long after ``keys revoke`` committed."""

KEY_CACHE_SIZE = 10_000
"""Keys remembered at once (a full cache is emptied: cheaper than an LRU's bookkeeping per hit)."""


class KeyCache:
    """``authenticate`` for a serving process: a valid key's principal remembered for ``seconds``.

    Why: every request reads its key from the ledger's database (a SELECT and a SHA-256 on the
    event loop, 7-9% of serve's samples in bench/checks.py). Only keys found valid are remembered,
    each for at most ``seconds`` after it was read, so a revocation (``keys revoke``, from any
    process, on any host sharing the database) takes effect in every server within ``seconds``;
    a key just issued works at once (nothing is remembered of a key that was not valid), and a
    forged or revoked key is looked up, and refused, every time. ``seconds`` 0 remembers nothing.
    """

    def __init__(
        self,
        keys: KeyStore,
        seconds: float = KEY_CACHE_SECONDS,
        *,
        clock: Callable[[], float] = time.monotonic,
        size: int = KEY_CACHE_SIZE,
    ) -> None:
        self.keys = keys
        self.seconds = seconds
        self.clock = clock
        self.size = size
        self._valid: dict[str, tuple[Principal, float]] = {}

    def authenticate(self, api_key: str | None) -> Principal | None:
        """As ``authenticate``, from memory for a key found valid less than ``seconds`` ago."""
        if not api_key or self.seconds <= 0:
            return authenticate(self.keys, api_key)
        now = self.clock()
        remembered = self._valid.get(api_key)
        if remembered is not None and now < remembered[1]:
            return remembered[0]
        principal = authenticate(self.keys, api_key)
        if principal is None:
            self._valid.pop(api_key, None)
            return None
        if len(self._valid) >= self.size:
            self._valid.clear()
        self._valid[api_key] = (principal, now + self.seconds)
        return principal


def key_principal(keys: KeyStore, key_id: str) -> Principal | None:
    """Who the key ``key_id`` acts for, while it is not revoked (a portal session rests on it)."""
    row = keys.key(key_id)
    if row is None or row["revoked_at"]:
        return None
    return _principal(row)


def _principal(row: Mapping[str, Any]) -> Principal:
    return Principal(f"key:{row['key_id']}", row["role"], row["organisation"], row["subject_key"])
