"""Subject identifiers: identity numbers and unified social credit codes, validated and keyed."""

from __future__ import annotations

import hashlib
import hmac
import uuid
from dataclasses import dataclass
from datetime import date
from enum import StrEnum

from ledger.domain.errors import InvalidSubjectCode

__all__ = [
    "ORGANISATION_ALPHABET",
    "SubjectCode",
    "SubjectKind",
    "organisation_check_character",
    "parse_subject_code",
    "person_check_character",
    "subject_key",
]

CODE_LENGTH = 18
"""Both an identity number and a unified social credit code have 18 characters."""

_DIGITS = "0123456789"
"""Only ASCII digits count: ``str.isdigit`` would also accept e.g. Arabic-Indic digits."""

# GB 11643-1999 (citizen identity number): weights 2**(18-i) mod 11 over positions 1..17;
# the weighted sum mod 11 indexes the check-character table.
_PERSON_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_PERSON_CHECK_TABLE = "10X98765432"

# GB 32100-2015 (unified social credit code): 31 characters, valued 0..30 in this order
# (the letters I, O, Z, S and V are left out because they are easily misread);
# weights 3**(i-1) mod 31 over positions 1..17.
ORGANISATION_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_ORGANISATION_VALUES = {ch: value for value, ch in enumerate(ORGANISATION_ALPHABET)}
_ORGANISATION_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)
_ALPHABET_DESCRIPTION = "the unified social credit code alphabet (0-9 and A-Y without I, O, Z, S, V)"

# Province-level administrative division codes of GB/T 2260 (the first two digits of the
# six-digit address code): 11-15 North, 21-23 North-east, 31-37 East, 41-46 Central-south,
# 50-54 South-west, 61-65 North-west, 71 Taiwan, 81 Hong Kong, 82 Macao.
# 83 (Taiwan residents' residence permits, address code 830000) and 91 are not GB/T 2260
# provinces but appear in issued identity numbers; the project's rules accept them.
_PROVINCE_CODES = frozenset(
    {
        *range(11, 16),
        *range(21, 24),
        *range(31, 38),
        *range(41, 47),
        *range(50, 55),
        *range(61, 66),
        71,
        81,
        82,
        83,
        91,
    }
)

EARLIEST_BIRTH_DATE = date(1800, 1, 1)
"""No living (or recently recorded) person was born before this date."""

_MASK = "*" * 8
_MIN_SECRET_BYTES = 16


class SubjectKind(StrEnum):
    """Whether the subject is a natural person or an organisation."""

    PERSON = "person"
    ORGANISATION = "organisation"


@dataclass(frozen=True, slots=True, repr=False)
class SubjectCode:
    """A validated, normalised subject identifier; build it with :func:`parse_subject_code`.

    ``checksum_overridden`` is true for a legacy code accepted although its check
    character is wrong (the caller must record the override). ``str()`` and ``repr()``
    show only the masked form, so a full identity number never reaches a log by accident;
    read ``code`` explicitly when the full value is needed.
    """

    kind: SubjectKind
    code: str
    checksum_overridden: bool = False

    @property
    def masked(self) -> str:
        """The form safe to print: ``110105********002X`` for a person.

        An organisation's unified social credit code is public registration data and is
        returned unchanged.
        """
        if self.kind is SubjectKind.PERSON:
            return f"{self.code[:6]}{_MASK}{self.code[-4:]}"
        return self.code

    def __str__(self) -> str:
        return self.masked

    def __repr__(self) -> str:
        return (
            f"SubjectCode(kind={self.kind.value!r}, code={self.masked!r}, "
            f"checksum_overridden={self.checksum_overridden!r})"
        )


def person_check_character(first17: str) -> str:
    """The GB 11643-1999 check character (``0``-``9`` or ``X``) for 17 ASCII digits.

    Raises ValueError if ``first17`` is not exactly 17 ASCII digits.
    """
    if len(first17) != CODE_LENGTH - 1 or any(ch not in _DIGITS for ch in first17):
        raise ValueError("person_check_character needs exactly 17 ASCII digits")
    total = sum(int(ch) * weight for ch, weight in zip(first17, _PERSON_WEIGHTS, strict=True))
    return _PERSON_CHECK_TABLE[total % 11]


def organisation_check_character(first17: str) -> str:
    """The GB 32100-2015 check character for 17 characters of the code alphabet.

    Raises ValueError if ``first17`` is not exactly 17 characters of
    :data:`ORGANISATION_ALPHABET` (upper case).
    """
    if len(first17) != CODE_LENGTH - 1 or any(ch not in _ORGANISATION_VALUES for ch in first17):
        raise ValueError(
            "organisation_check_character needs exactly 17 characters of " + _ALPHABET_DESCRIPTION
        )
    total = sum(
        _ORGANISATION_VALUES[ch] * weight for ch, weight in zip(first17, _ORGANISATION_WEIGHTS, strict=True)
    )
    return ORGANISATION_ALPHABET[(31 - total % 31) % 31]


def parse_subject_code(
    raw: str,
    *,
    today: date,
    kind: SubjectKind | None = None,
    allow_checksum_override: bool = False,
    field: str = "subject.id",
) -> SubjectCode:
    """Validate and normalise an identity number or unified social credit code.

    Surrounding whitespace is stripped and ASCII letters are upper-cased (``x`` becomes ``X``).
    Only ASCII is accepted: Unicode case mapping and compatibility forms are never applied, so
    ``ﬂ`` (U+FB02) cannot become ``FL``, nor a full-width digit a digit. ``today`` bounds a
    person's birth date (the ledger never reads the clock).

    When ``kind`` is None it is inferred: 17 ASCII digits followed by a digit or ``X``
    whose characters 7-14 form a real calendar date from 1800 on is a person, anything
    else an organisation. An all-digit organisation code can look like an identity number,
    so callers that know the kind should pass it. When an input shaped like an identity
    number has no real date, it is accepted as an organisation only with a correct check
    character (never by override); otherwise the error describes it as an identity number,
    since that is what it most likely is.

    With ``allow_checksum_override`` a code whose only fault is its check character is
    returned with ``checksum_overridden=True`` instead of being rejected (legacy pilot
    codes; the caller records the override). Every other check still applies.

    Raises InvalidSubjectCode, with ``field`` as its field, naming the position at fault
    and what was expected. Messages never repeat the full input.
    """
    if not isinstance(raw, str):
        raise InvalidSubjectCode(f"expected a string of {CODE_LENGTH} characters", field=field)
    code = raw.strip()
    # Only ASCII letters are upper-cased; anything else stays as sent, to be refused by position.
    code = code.upper() if code.isascii() else "".join(ch.upper() if ch.isascii() else ch for ch in code)
    if len(code) != CODE_LENGTH:
        raise InvalidSubjectCode(f"expected {CODE_LENGTH} characters, got {len(code)}", field=field)
    if kind is SubjectKind.PERSON:
        return _parse_person(code, today, allow_checksum_override, field)
    if kind is SubjectKind.ORGANISATION:
        return _parse_organisation(code, allow_checksum_override, field)
    if _is_person_shaped(code):
        if _birth_date(code) is not None:
            return _parse_person(code, today, allow_checksum_override, field)
        try:
            # No override here: a mistyped identity number must not pass as an organisation.
            return _parse_organisation(code, False, field)
        except InvalidSubjectCode:
            # Reports the identity number's own first fault (its address or its date).
            return _parse_person(code, today, allow_checksum_override, field)
    return _parse_organisation(code, allow_checksum_override, field)


def subject_key(code: SubjectCode, secret: bytes) -> uuid.UUID:
    """The pseudonymous, stable key of a subject: its aggregate id and Kafka message key.

    It is HMAC-SHA256(secret, ``"{kind}:{code}"``) truncated to 16 bytes, with the
    RFC 9562 version (8, custom) and variant bits set. A keyed hash rather than a plain
    one, because identity numbers are few enough to enumerate: without the secret the key
    reveals nothing about the subject, and cannot be recomputed from a guessed number.
    Deterministic, so the same subject always maps to the same aggregate and the same
    partition. The override flag is not part of the key: it is the same subject.

    Raises ValueError if the secret is shorter than 16 bytes.
    """
    if len(secret) < _MIN_SECRET_BYTES:
        raise ValueError(
            f"the subject-key secret must be at least {_MIN_SECRET_BYTES} bytes, got {len(secret)}"
        )
    message = f"{code.kind.value}:{code.code}".encode()
    digest = bytearray(hmac.new(secret, message, hashlib.sha256).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x80  # version 8 in the high nibble of octet 6
    digest[8] = (digest[8] & 0x3F) | 0x80  # variant 10xx (RFC 9562) in octet 8
    return uuid.UUID(bytes=bytes(digest))


def _is_person_shaped(code: str) -> bool:
    return all(ch in _DIGITS for ch in code[:17]) and (code[17] in _DIGITS or code[17] == "X")


def _birth_date(code: str) -> date | None:
    """Characters 7-14 as a real calendar date from 1800 on, or None."""
    digits = code[6:14]
    if any(ch not in _DIGITS for ch in digits):
        return None
    try:
        born = date(int(digits[:4]), int(digits[4:6]), int(digits[6:]))
    except ValueError:
        return None
    return born if born >= EARLIEST_BIRTH_DATE else None


def _parse_person(code: str, today: date, allow_override: bool, field: str) -> SubjectCode:
    for position, ch in enumerate(code[:17], start=1):
        if ch not in _DIGITS:
            raise InvalidSubjectCode(f"position {position} should be a digit, got {ch!r}", field=field)
    if code[17] not in _DIGITS and code[17] != "X":
        raise InvalidSubjectCode(
            f"check character (position 18) should be a digit or X, got {code[17]!r}",
            field=field,
        )
    if int(code[:2]) not in _PROVINCE_CODES:
        raise InvalidSubjectCode(
            f"characters 1-2 should be a province-level address code (GB/T 2260), got {code[:2]}",
            field=field,
        )
    born = _birth_date(code)
    if born is None or born > today:
        bound = (
            f"not before {EARLIEST_BIRTH_DATE.isoformat()}"
            if _is_real_date_before_1800(code[6:14])
            else f"not after {today.isoformat()}"
        )
        raise InvalidSubjectCode(
            f"characters 7-14 should be a real birth date (YYYYMMDD) {bound}, got {code[6:14]}",
            field=field,
        )
    expected = person_check_character(code[:17])
    return _checked(SubjectKind.PERSON, code, expected, allow_override, field)


def _parse_organisation(code: str, allow_override: bool, field: str) -> SubjectCode:
    for position, ch in enumerate(code, start=1):
        if ch not in _ORGANISATION_VALUES:
            raise InvalidSubjectCode(
                f"position {position} has {ch!r}, which is not in {_ALPHABET_DESCRIPTION}",
                field=field,
            )
    expected = organisation_check_character(code[:17])
    return _checked(SubjectKind.ORGANISATION, code, expected, allow_override, field)


def _checked(kind: SubjectKind, code: str, expected: str, allow_override: bool, field: str) -> SubjectCode:
    if code[17] == expected:
        return SubjectCode(kind, code)
    if allow_override:
        return SubjectCode(kind, code, checksum_overridden=True)
    raise InvalidSubjectCode(
        f"check character (position 18) should be {expected}, got {code[17]}", field=field
    )


def _is_real_date_before_1800(digits: str) -> bool:
    try:
        return date(int(digits[:4]), int(digits[4:6]), int(digits[6:])) < EARLIEST_BIRTH_DATE
    except ValueError:
        return False
