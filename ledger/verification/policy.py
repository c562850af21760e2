"""Witnesses as the ledger's side knows them: the ones the relay asks, and an auditor's policy.

- ``CREDIT_WITNESSES`` lists the witnesses the relay's checkpoint publisher asks to cosign, each
  as its cosignature vkey (c2sp.org/tlog-cosignature, signature type 0x04) and the URL prefix of
  its ``add-checkpoint`` endpoint (c2sp.org/tlog-witness).
- A ``WitnessPolicy`` is an auditor's rule "at least K of these witnesses": a checkpoint meets it
  when that many of them carry a valid ``cosignature/v1`` on it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ledger.verification.notes import COSIGNATURE_V1, Note, NoteError, VerifierKey
from ledger.verification.signed import Checkpoint


class PolicyError(ValueError):
    """A witness list or policy that cannot be used; the message says what is wrong."""


def witness_key(text: str) -> VerifierKey:
    """A witness's vkey, which must be a cosignature key (type 0x04)."""
    try:
        key = VerifierKey.parse(text)
    except NoteError as exc:
        raise PolicyError(str(exc)) from None
    if key.signature_type != COSIGNATURE_V1:
        raise PolicyError(
            f"the witness key {key.name} is of signature type 0x{key.signature_type:02x}, "
            "not 0x04 (a cosignature/v1 key)"
        )
    return key


@dataclass(frozen=True)
class WitnessEndpoint:
    """A witness the publisher asks: its key, and the prefix its ``add-checkpoint`` is under."""

    vkey: VerifierKey
    url: str

    @property
    def add_checkpoint_url(self) -> str:
        return f"{self.url}/add-checkpoint"


def parse_witness_list(text: str) -> list[WitnessEndpoint]:
    """``VKEY URL`` pairs separated by commas, each witness (each public key) named once."""
    found: list[WitnessEndpoint] = []
    for entry in (part.strip() for part in text.split(",")):
        if not entry:
            continue
        words = entry.split()
        if len(words) != 2:
            raise PolicyError(f"must list 'VKEY URL' pairs separated by commas, got {entry[:120]!r}")
        key, url = witness_key(words[0]), words[1].rstrip("/")
        if not url.startswith(("http://", "https://")):
            raise PolicyError(f"the URL of witness {key.name} must be http:// or https://, got {url[:80]!r}")
        if any(w.vkey.public_key == key.public_key for w in found):
            raise PolicyError(f"witness {key.name} is listed twice (the same key)")
        found.append(WitnessEndpoint(key, url))
    return found


@dataclass(frozen=True)
class Cosigners:
    """Which of a policy's witnesses cosigned a checkpoint: validly, not validly, or not at all."""

    valid: tuple[VerifierKey, ...]
    invalid: tuple[VerifierKey, ...]
    missing: tuple[VerifierKey, ...]


@dataclass(frozen=True)
class WitnessPolicy:
    """At least ``minimum`` of ``witnesses`` must have validly cosigned a checkpoint."""

    witnesses: tuple[VerifierKey, ...]
    minimum: int

    def __post_init__(self) -> None:
        keys = {w.public_key for w in self.witnesses}
        if len(keys) != len(self.witnesses):
            raise PolicyError("a witness is named twice in the policy (the same key)")
        if any(w.signature_type != COSIGNATURE_V1 for w in self.witnesses):
            raise PolicyError("a policy's witnesses are cosignature keys (signature type 0x04)")
        if not 1 <= self.minimum <= len(self.witnesses):
            raise PolicyError(
                f"at least {self.minimum} of {len(self.witnesses)} witnesses cannot be asked: "
                "the number must be from 1 to the number of witnesses given"
            )

    @classmethod
    def of(cls, vkeys: Sequence[str], minimum: int | None = None) -> WitnessPolicy:
        """The policy "at least ``minimum`` (default: all) of these vkeys"."""
        witnesses = tuple(witness_key(text) for text in vkeys)
        return cls(witnesses, len(witnesses) if minimum is None else minimum)

    def describe(self) -> str:
        return f"at least {self.minimum} of {len(self.witnesses)} witnesses"

    def cosigners(self, cp: Checkpoint) -> Cosigners:
        """The policy's witnesses by their cosignature on ``cp`` (none on a v1 or v2 checkpoint)."""
        if cp.version < 3:
            return Cosigners((), (), self.witnesses)
        valid, invalid = Note(cp.body().text(), cp.cosignatures).signed_by(self.witnesses)
        missing = tuple(w for w in self.witnesses if w not in valid and w not in invalid)
        return Cosigners(tuple(valid), tuple(invalid), missing)

    def met_by(self, cp: Checkpoint) -> bool:
        return len(self.cosigners(cp).valid) >= self.minimum
