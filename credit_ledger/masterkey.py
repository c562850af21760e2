"""Master-key rotation as an operator runs it: staged key file, backup of the old, re-wrap, install.

The files live in the data dir beside ``master.key``: the new key is first written to
``master.key.new`` (atomically, mode 0600), the old one copied to ``master.key.old``; the data keys
are re-wrapped (each page committed); only then is ``master.key.new`` renamed over ``master.key``
and the backup removed. A rotation cut short is resumed by running it again: the staged key is
found and the re-wrap finishes (each data key names the master key that wraps it).
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from credit_ledger import discovery
from credit_ledger.compose import open_ledger_unkeyed
from credit_ledger.config import ConfigError, Settings
from ledger.application.privacy import MasterKeyMismatch, master_key_id, parse_master_key
from ledger.store.files import write_atomically

STAGED, BACKUP = ".new", ".old"


@dataclass(frozen=True)
class Rotation:
    """What a rotation did: how many data keys it re-wrapped, from which master key to which, and
    where the new key now is (``installed``: in ``master.key``; else staged for the operator)."""

    rewrapped: int
    previous: str
    current: str
    key_file: Path
    installed: bool


def rotate_master_key(settings: Settings, new_key: str | None) -> Rotation:
    """Re-wrap every data key of the configured ledger under ``new_key`` (64 hex digits), or under
    the key staged by an interrupted rotation, or under a fresh random key.

    Refused while a serve runs on the data dir (it holds data keys unwrapped in memory and seals
    under them). With the current key in ``DATA_DIR/master.key`` the new key replaces it once the
    re-wrap is committed; with ``CREDIT_MASTER_KEY`` the new key is left staged in
    ``master.key.new`` for the operator to move into the secret store."""
    running = discovery.read(settings.data_dir)
    if running is not None:
        raise ConfigError(
            f"a serve is running on {settings.data_dir} (pid {running.pid}): stop it first; it seals "
            "under data keys it holds in memory, and would not see the new master key"
        )
    key_file = settings.master_key_file
    staged = key_file.with_name(key_file.name + STAGED)
    if new_key is None:
        new_key = staged.read_text().strip() if staged.exists() else secrets.token_hex(32)
    try:
        new = parse_master_key(new_key)
    except ValueError as exc:
        raise ConfigError(f"the new master key {exc}") from None
    ledger = open_ledger_unkeyed(settings)
    try:
        current = settings.master_key_bytes(ledger_is_new=not ledger.data_keys.master_key_ids())
        if new == current:
            raise ConfigError("the new master key is the current one: nothing to rotate")
        write_atomically(staged, new.hex())  # first: the key the re-wrap may leave rows under
        from_file = not settings.master_key
        backup = key_file.with_name(key_file.name + BACKUP)
        if from_file:
            write_atomically(backup, current.hex())
        try:
            count = ledger.rotate_master_key(current, new)
        except MasterKeyMismatch as exc:
            raise ConfigError(f"{key_file}: {exc}") from None
    finally:
        ledger.close()
    if from_file:
        os.replace(staged, key_file)  # the re-wrap is committed: the new key becomes the key
        backup.unlink()
    return Rotation(
        count, master_key_id(current), master_key_id(new), key_file if from_file else staged, from_file
    )
