"""Identity numbers and unified social credit codes: parsing, masking, checksums and keys.

One module of about 475 lines: every test here is about the two code formats and their keys,
sharing ``parse`` and ``rejection``; the sections below mark their parts.
"""

from __future__ import annotations

import itertools
import uuid
from datetime import date, timedelta

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from ledger.domain.errors import InvalidInput, InvalidSubjectCode, LedgerError
from ledger.domain.subjects import (
    ORGANISATION_ALPHABET,
    SubjectCode,
    SubjectKind,
    organisation_check_character,
    parse_subject_code,
    person_check_character,
    subject_key,
)

TODAY = date(2026, 11, 22)
PERSON = "11010519491231002X"
PERSON_1880 = "440524188001010014"
ORGANISATION = "91350100M000100Y43"
SECRET = b"0123456789abcdef"
OTHER_SECRET = b"fedcba9876543210"

PROVINCES = [
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
]
PERSON_WEIGHTS = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
ORGANISATION_WEIGHTS = [1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28]


def parse(
    raw: str,
    *,
    kind: SubjectKind | None = None,
    allow_checksum_override: bool = False,
    field: str = "subject.id",
) -> SubjectCode:
    return parse_subject_code(
        raw, today=TODAY, kind=kind, allow_checksum_override=allow_checksum_override, field=field
    )


def rejection(
    raw: str,
    *,
    kind: SubjectKind | None = None,
    allow_checksum_override: bool = False,
    field: str = "subject.id",
) -> InvalidSubjectCode:
    with pytest.raises(InvalidSubjectCode) as caught:
        parse(raw, kind=kind, allow_checksum_override=allow_checksum_override, field=field)
    return caught.value


# --- valid codes -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "kind"),
    [
        (PERSON, SubjectKind.PERSON),
        (PERSON_1880, SubjectKind.PERSON),
        (ORGANISATION, SubjectKind.ORGANISATION),
    ],
)
def test_the_documented_examples_parse_as_their_kind(raw: str, kind: SubjectKind) -> None:
    code = parse(raw)
    assert code == SubjectCode(kind, raw)
    assert not code.checksum_overridden


def test_a_lower_case_x_is_normalised_to_upper_case() -> None:
    assert parse(PERSON.lower()).code == PERSON


def test_lower_case_letters_of_an_organisation_code_are_normalised() -> None:
    assert parse(ORGANISATION.lower()).code == ORGANISATION


def test_surrounding_whitespace_is_stripped() -> None:
    assert parse(f" \t{PERSON}\n ").code == PERSON


def test_an_explicit_kind_is_honoured() -> None:
    assert parse(PERSON, kind=SubjectKind.PERSON).kind is SubjectKind.PERSON
    assert parse(ORGANISATION, kind=SubjectKind.ORGANISATION).kind is SubjectKind.ORGANISATION


def test_a_birth_date_of_today_is_accepted() -> None:
    first17 = f"110105{TODAY:%Y%m%d}002"
    assert parse(first17 + person_check_character(first17)).kind is SubjectKind.PERSON


def test_a_birth_date_on_1800_01_01_is_accepted() -> None:
    first17 = "11010518000101002"
    assert parse(first17 + person_check_character(first17)).kind is SubjectKind.PERSON


def test_an_all_digit_organisation_code_whose_date_is_not_real_is_inferred_as_organisation() -> None:
    # Digits 7-14 are "00000000", not a date; the check character happens to be a digit.
    first17 = next(
        f"9135010000000000{d}"
        for d in "0123456789"
        if organisation_check_character(f"9135010000000000{d}") in "0123456789"
    )
    code = parse(first17 + organisation_check_character(first17))
    assert code.kind is SubjectKind.ORGANISATION


# --- masking -----------------------------------------------------------------------------


def test_a_person_is_masked_to_the_first_six_and_last_four_characters() -> None:
    assert parse(PERSON).masked == "110105********002X"


def test_an_organisation_code_is_public_and_not_masked() -> None:
    assert parse(ORGANISATION).masked == ORGANISATION


def test_str_and_repr_never_show_a_full_identity_number() -> None:
    code = parse(PERSON)
    assert str(code) == "110105********002X"
    assert PERSON not in repr(code)
    assert "110105********002X" in repr(code)
    assert PERSON not in f"{code}"
    assert PERSON not in str([code])


# --- failures ----------------------------------------------------------------------------


def test_a_wrong_person_check_character_names_position_18_and_the_expected_character() -> None:
    error = rejection("110105194912310025")
    assert error.message == "check character (position 18) should be X, got 5"
    assert error.field == "subject.id"


def test_a_wrong_organisation_check_character_names_the_expected_character() -> None:
    error = rejection("91350100M000100Y44")
    assert error.message == "check character (position 18) should be 3, got 4"


def test_an_impossible_birth_date_is_rejected() -> None:
    error = rejection("11010519491332002X")
    assert error.message == (
        "characters 7-14 should be a real birth date (YYYYMMDD) not after 2026-11-22, got 19491332"
    )


def test_a_birth_date_after_the_given_today_is_rejected() -> None:
    tomorrow = TODAY + timedelta(days=1)
    first17 = f"110105{tomorrow:%Y%m%d}002"
    error = rejection(first17 + person_check_character(first17))
    assert error.message == (
        "characters 7-14 should be a real birth date (YYYYMMDD) not after 2026-11-22, got 20261123"
    )


def test_the_same_birth_date_is_accepted_once_today_has_caught_up() -> None:
    tomorrow = TODAY + timedelta(days=1)
    first17 = f"110105{tomorrow:%Y%m%d}002"
    code = parse_subject_code(first17 + person_check_character(first17), today=tomorrow)
    assert code.kind is SubjectKind.PERSON


def test_a_birth_date_before_1800_is_rejected() -> None:
    first17 = "11010517991231002"
    error = rejection(first17 + person_check_character(first17), kind=SubjectKind.PERSON)
    assert error.message == (
        "characters 7-14 should be a real birth date (YYYYMMDD) not before 1800-01-01, got 17991231"
    )


def test_an_unknown_province_code_is_rejected() -> None:
    first17 = "99010519491231002"
    error = rejection(first17 + person_check_character(first17))
    assert error.message == ("characters 1-2 should be a province-level address code (GB/T 2260), got 99")


@pytest.mark.parametrize("raw", ["1101051949123100", "11010519491231002X0", ""])
def test_a_code_that_is_not_18_characters_long_is_rejected(raw: str) -> None:
    error = rejection(raw)
    assert error.message == f"expected 18 characters, got {len(raw)}"


def test_the_length_is_counted_after_stripping_whitespace() -> None:
    assert rejection("  11010519491231002  ").message == "expected 18 characters, got 17"


def test_a_letter_outside_the_organisation_alphabet_is_named_with_its_position() -> None:
    error = rejection("91I50100M000100Y43")
    assert error.message == (
        "position 3 has 'I', which is not in the unified social credit code alphabet "
        "(0-9 and A-Y without I, O, Z, S, V)"
    )


@pytest.mark.parametrize("letter", ["I", "O", "Z", "S", "V"])
def test_each_excluded_letter_is_rejected_in_an_organisation_code(letter: str) -> None:
    error = rejection(f"91350100{letter}000100Y43")
    assert error.message.startswith(f"position 9 has {letter!r}, which is not in")


def test_punctuation_inside_a_code_is_rejected() -> None:
    assert rejection("91350100-000100Y43").message.startswith("position 9 has '-'")


def test_non_ascii_digits_are_not_accepted_as_digits() -> None:
    arabic_indic_one = "\u0661"
    error = rejection(arabic_indic_one + PERSON[1:], kind=SubjectKind.PERSON)
    assert error.message == f"position 1 should be a digit, got {arabic_indic_one!r}"


def test_a_person_code_with_a_letter_is_rejected_when_the_kind_is_person() -> None:
    error = rejection("110105A9491231002X", kind=SubjectKind.PERSON)
    assert error.message == "position 7 should be a digit, got 'A'"


def test_a_person_check_character_must_be_a_digit_or_x() -> None:
    error = rejection("11010519491231002A", kind=SubjectKind.PERSON)
    assert error.message == "check character (position 18) should be a digit or X, got 'A'"


def test_an_identity_number_with_an_impossible_date_is_reported_as_an_identity_number() -> None:
    # All digits but no real date: inferred an organisation, which it is not either;
    # the error speaks of what it most likely is.
    error = rejection("11010519491332002X")
    assert "birth date" in error.message


def test_the_error_carries_the_field_it_was_given() -> None:
    error = rejection("110105194912310025", field="records[3].subject.id")
    assert error.field == "records[3].subject.id"
    assert error.message.startswith("check character")


def test_errors_are_ledger_input_errors_with_a_stable_reason_code() -> None:
    error = rejection("110105194912310025")
    assert isinstance(error, InvalidInput)
    assert isinstance(error, LedgerError)
    assert error.as_reason() == {
        "code": "invalid_subject_code",
        "field": "subject.id",
        "message": "check character (position 18) should be X, got 5",
    }


def test_error_messages_never_repeat_a_full_identity_number() -> None:
    for raw in ["110105194912310025", "11010519491332002X", "99010519491231002X"]:
        assert raw not in rejection(raw).message


# --- checksum override ------------------------------------------------------------------


def test_a_checksum_override_accepts_a_legacy_organisation_code_and_flags_it() -> None:
    code = parse("91350100M000100Y44", allow_checksum_override=True)
    assert code == SubjectCode(SubjectKind.ORGANISATION, "91350100M000100Y44", True)


def test_a_checksum_override_accepts_a_person_with_a_wrong_check_character() -> None:
    code = parse("110105194912310025", allow_checksum_override=True)
    assert code.kind is SubjectKind.PERSON
    assert code.checksum_overridden


def test_a_valid_code_is_not_flagged_as_overridden_even_when_override_is_allowed() -> None:
    assert not parse(ORGANISATION, allow_checksum_override=True).checksum_overridden


def test_a_checksum_override_still_rejects_a_bad_alphabet() -> None:
    error = rejection("91350100I000100Y44", allow_checksum_override=True)
    assert error.message.startswith("position 9 has 'I'")


def test_a_checksum_override_still_rejects_a_bad_length() -> None:
    error = rejection("91350100M000100Y4", allow_checksum_override=True)
    assert error.message == "expected 18 characters, got 17"


def test_a_checksum_override_still_rejects_a_bad_birth_date() -> None:
    error = rejection("11010519491332002X", allow_checksum_override=True)
    assert error.message.startswith("characters 7-14 should be a real birth date")


def test_a_checksum_override_still_rejects_a_bad_province() -> None:
    error = rejection("990105194912310025", allow_checksum_override=True)
    assert error.message.startswith("characters 1-2 should be a province-level address code")


# --- check-character functions ----------------------------------------------------------


def test_the_check_characters_of_the_documented_examples() -> None:
    assert person_check_character(PERSON[:17]) == "X"
    assert person_check_character(PERSON_1880[:17]) == "4"
    assert organisation_check_character(ORGANISATION[:17]) == "3"


@pytest.mark.parametrize("bad", ["1101051949123100", "1101051949123100A", "110105194912310021"])
def test_person_check_character_rejects_anything_but_17_digits(bad: str) -> None:
    with pytest.raises(ValueError, match="17 ASCII digits"):
        person_check_character(bad)


@pytest.mark.parametrize("bad", ["91350100M000100Y", "91350100I000100Y4", "91350100m000100Y4"])
def test_organisation_check_character_rejects_anything_but_17_alphabet_characters(
    bad: str,
) -> None:
    with pytest.raises(ValueError, match="17 characters"):
        organisation_check_character(bad)


@pytest.mark.parametrize(("weights", "modulus"), [(PERSON_WEIGHTS, 11), (ORGANISATION_WEIGHTS, 31)])
def test_the_weights_make_every_single_substitution_and_adjacent_swap_detectable(
    weights: list[int], modulus: int
) -> None:
    # The check character has weight 1 in the full weighted sum. A substitution changes the
    # sum by w*(a-b), a swap of neighbours by (w_i - w_j)*(a-b); with a prime modulus larger
    # than any character difference, both are non-zero exactly when the weights (and their
    # neighbouring differences) are non-zero modulo the prime.
    full = [*weights, 1]
    assert all(w % modulus for w in full)
    assert all((a - b) % modulus for a, b in itertools.pairwise(full))


# --- properties -------------------------------------------------------------------------


@st.composite
def person_first17(draw: st.DrawFn) -> str:
    province = draw(st.sampled_from(PROVINCES))
    rest_of_address = draw(st.integers(0, 9999))
    born = draw(st.dates(min_value=date(1800, 1, 1), max_value=TODAY))
    sequence = draw(st.integers(0, 999))
    return f"{province:02d}{rest_of_address:04d}{born:%Y%m%d}{sequence:03d}"


organisation_first17 = st.text(alphabet=ORGANISATION_ALPHABET, min_size=17, max_size=17)


@given(person_first17())
def test_any_valid_person_with_its_computed_check_character_parses(first17: str) -> None:
    raw = first17 + person_check_character(first17)
    assert parse(raw) == SubjectCode(SubjectKind.PERSON, raw)


@given(organisation_first17)
def test_any_organisation_with_its_computed_check_character_parses(first17: str) -> None:
    raw = first17 + organisation_check_character(first17)
    assert parse(raw, kind=SubjectKind.ORGANISATION) == SubjectCode(SubjectKind.ORGANISATION, raw)


@given(person_first17(), st.integers(0, 16), st.sampled_from("0123456789"))
def test_any_single_digit_substitution_in_a_person_is_detected(
    first17: str, position: int, digit: str
) -> None:
    assume(first17[position] != digit)
    changed = first17[:position] + digit + first17[position + 1 :]
    assert person_check_character(changed) != person_check_character(first17)
    with pytest.raises(InvalidSubjectCode):
        parse(changed + person_check_character(first17), kind=SubjectKind.PERSON)


@given(organisation_first17, st.integers(0, 16), st.sampled_from(ORGANISATION_ALPHABET))
def test_any_single_character_substitution_in_an_organisation_is_detected(
    first17: str, position: int, character: str
) -> None:
    assume(first17[position] != character)
    changed = first17[:position] + character + first17[position + 1 :]
    with pytest.raises(InvalidSubjectCode):
        parse(changed + organisation_check_character(first17), kind=SubjectKind.ORGANISATION)


@given(person_first17(), st.integers(0, 16))
def test_any_swap_of_two_different_neighbouring_characters_in_a_person_is_detected(
    first17: str, position: int
) -> None:
    # Position 16 swaps the 17th digit with the check character.
    raw = first17 + person_check_character(first17)
    assume(raw[position] != raw[position + 1])
    swapped = raw[:position] + raw[position + 1] + raw[position] + raw[position + 2 :]
    with pytest.raises(InvalidSubjectCode):
        parse(swapped, kind=SubjectKind.PERSON)


@given(organisation_first17, st.integers(0, 16))
def test_any_swap_of_two_different_neighbouring_characters_in_an_organisation_is_detected(
    first17: str, position: int
) -> None:
    raw = first17 + organisation_check_character(first17)
    assume(raw[position] != raw[position + 1])
    swapped = raw[:position] + raw[position + 1] + raw[position] + raw[position + 2 :]
    with pytest.raises(InvalidSubjectCode):
        parse(swapped, kind=SubjectKind.ORGANISATION)


@given(organisation_first17)
def test_an_override_flags_exactly_the_codes_whose_check_character_is_wrong(
    first17: str,
) -> None:
    right = organisation_check_character(first17)
    for check in ORGANISATION_ALPHABET:
        code = parse(first17 + check, kind=SubjectKind.ORGANISATION, allow_checksum_override=True)
        assert code.checksum_overridden is (check != right)


# --- subject keys -----------------------------------------------------------------------


def test_a_subject_key_is_stable_for_the_same_subject_and_secret() -> None:
    assert subject_key(parse(PERSON), SECRET) == subject_key(parse(PERSON.lower()), SECRET)


def test_a_subject_key_differs_across_secrets() -> None:
    assert subject_key(parse(PERSON), SECRET) != subject_key(parse(PERSON), OTHER_SECRET)


def test_a_subject_key_differs_across_subjects() -> None:
    keys = {subject_key(parse(raw), SECRET) for raw in [PERSON, PERSON_1880, ORGANISATION]}
    assert len(keys) == 3


def test_the_same_characters_as_a_person_and_as_an_organisation_get_different_keys() -> None:
    # The kind is part of the keyed message.
    person = SubjectCode(SubjectKind.PERSON, PERSON)
    organisation = SubjectCode(SubjectKind.ORGANISATION, PERSON)
    assert subject_key(person, SECRET) != subject_key(organisation, SECRET)


def test_a_subject_key_ignores_the_override_flag() -> None:
    flagged = SubjectCode(SubjectKind.ORGANISATION, ORGANISATION, checksum_overridden=True)
    assert subject_key(flagged, SECRET) == subject_key(parse(ORGANISATION), SECRET)


def test_a_subject_key_is_an_rfc_9562_version_8_uuid() -> None:
    key = subject_key(parse(PERSON), SECRET)
    assert key.version == 8
    assert key.variant == uuid.RFC_4122


def test_a_subject_key_does_not_contain_the_identity_number() -> None:
    assert "19491231" not in str(subject_key(parse(PERSON), SECRET))


def test_a_subject_key_secret_shorter_than_16_bytes_is_rejected() -> None:
    with pytest.raises(ValueError, match="at least 16 bytes, got 15"):
        subject_key(parse(PERSON), SECRET[:15])


@given(person_first17(), st.binary(min_size=16, max_size=64))
def test_every_subject_key_is_version_8_and_reproducible(first17: str, secret: bytes) -> None:
    code = parse(first17 + person_check_character(first17))
    key = subject_key(code, secret)
    assert key.version == 8
    assert key.variant == uuid.RFC_4122
    assert subject_key(code, secret) == key
