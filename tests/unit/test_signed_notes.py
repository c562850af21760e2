"""Issue 16: the signed-note format against known answers from its specifications.

Vectors: C2SP signed-note.md (its vkey and example note), tlog-checkpoint.md, tlog-witness.md and
tlog-cosignature.md (their example checkpoint, request and cosignature), and the tests of
golang.org/x/mod/sumdb/note (note_test.go: a private key, so exact signature bytes).
"""

from __future__ import annotations

import base64
import hashlib

import pytest

from ledger.verification.notes import (
    COSIGNATURE_V1,
    ED25519,
    Note,
    NoteError,
    NoteSignature,
    NoteSigner,
    VerifierKey,
    cosigned_message,
    note_key_id,
    parse_note,
)
from ledger.verification.tlog_checkpoint import CheckpointBody, FormatError
from ledger.verification.witness import AddCheckpoint, RequestError

# c2sp.org/signed-note, "Verifier keys / Example".
C2SP_VKEY = "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k"
C2SP_NOTE = (
    "This is an example message.\n\n"
    "— example.com/foo Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6TfXppzi2ONncAlTgK7Ztg1ERYNZXsYjOBH3mFXmRKuwHjG1Yu72IneyaQM=\n"
)

# c2sp.org/signed-note, the example at its head (its key is not given: the format only).
C2SP_POEM = (
    "Ognuno sta solo sul cuor della terra\ntrafitto da un raggio di sole:\n\ned è subito sera.\n\n"
    "— quasimodo.example/salvatore NnugSzTjtVAewIS+Z/iJhUPeFDkO/5QQ2i5ddnGITLlC+EhfLW9oJKONrMouFSQU0xMcXxj99ihAQwaqP3ZekRwNtIc=\n"
)

# golang.org/x/mod/sumdb/note/note_test.go (TestSign, TestOpen).
GO_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
GO_PETER = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_ENOCH = "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop"
GO_TEXT = (
    "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n"
)
GO_PETER_SIG = "— PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
GO_ENOCH_SIG = "— EnochRoot rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGwnWLox33WWd1RvMc+QQ=\n"

# c2sp.org/tlog-checkpoint, c2sp.org/tlog-cosignature and c2sp.org/tlog-witness examples.
SOFA = "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
SOFA_SIG = "— example.com/behind-the-sofa Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurmRDeOoRDe4URYN7u5/Zhcyv2q1gGzGku9nTo+zyWE+xeMcTOAYQ8=\n"
COSIGNATURE = "— witness.example.com/w1 jWbPPwAAAABkGFDLEZMHwSRaJNiIDoe9DYn/zXcrtPHeolMI5OWXEhZCB9dlrDJsX3b2oyin1nPZqhf5nNo0xUe+mbIUBkBIfZ+qnA==\n"
COSIGNED_MESSAGE = (
    "cosignature/v1\ntime 1679315147\n"
    "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
)
ADD_CHECKPOINT = (
    "old 20852014\n"
    "PlRNCrwHpqhGrupue0L7gxbjbMiKA9temvuZZDDpkaw=\n"
    "jrJZDmY8Y7SyJE0MWLpLozkIVMSMZcD5kvuKxPC3swk=\n"
    "5+pKlUdi2LeF/BcMHBn+Ku6yhPGNCswZZD1X/6QgPd8=\n"
    "/6WVhPs2CwSsb5rYBH5cjHV/wSmA79abXAwhXw3Kj/0=\n"
    "\n" + SOFA + "\n" + SOFA_SIG
)


def go_signer() -> NoteSigner:
    _, _, name, key_id, encoded = GO_SKEY.split("+", 4)
    material = base64.b64decode(encoded)
    assert material[0] == ED25519
    signer = NoteSigner(name, material[1:])
    assert f"{signer.vkey.key_id:08x}" == key_id
    return signer


def test_the_c2sp_example_vkey_has_its_key_id_and_verifies_the_example_note() -> None:
    key = VerifierKey.parse(C2SP_VKEY)
    digest = hashlib.sha256(b"example.com/foo\n\x01" + key.public_key).digest()
    assert (key.name, key.key_id, key.signature_type) == ("example.com/foo", 0x530D903A, ED25519)
    assert (
        key.key_id
        == int.from_bytes(digest[:4], "big")
        == note_key_id("example.com/foo", ED25519, key.public_key)
    )
    assert str(key) == C2SP_VKEY
    note = parse_note(C2SP_NOTE)
    assert note.text == "This is an example message.\n"
    assert note.render() == C2SP_NOTE
    assert note.signed_by([key]) == ([key], [])
    tampered = parse_note(C2SP_NOTE.replace("example message", "example massage"))
    assert tampered.signed_by([key]) == ([], [key])


def test_the_c2sp_example_note_splits_at_its_last_blank_line_and_is_written_back_byte_for_byte() -> None:
    note = parse_note(C2SP_POEM.encode())
    assert (
        note.text
        == "Ognuno sta solo sul cuor della terra\ntrafitto da un raggio di sole:\n\ned è subito sera.\n"
    )
    (signature,) = note.signatures
    assert (signature.name, f"{signature.key_id:08x}", len(signature.signature)) == (
        "quasimodo.example/salvatore",
        "367ba04b",  # the first 4 bytes of its base64, big-endian
        64,  # an Ed25519 signature
    )
    assert note.render() == C2SP_POEM


def test_signing_the_go_note_packages_text_gives_its_exact_signature_bytes() -> None:
    signer = go_signer()
    assert str(signer.vkey) == GO_PETER
    signature = signer.sign(GO_TEXT)
    assert signature.line() == GO_PETER_SIG
    assert Note(GO_TEXT, (signature,)).render() == GO_TEXT + "\n" + GO_PETER_SIG  # Go's note.Sign output


def test_of_two_signatures_only_the_known_keys_count_as_go_note_open_does() -> None:
    peter, enoch = VerifierKey.parse(GO_PETER), VerifierKey.parse(GO_ENOCH)
    note = parse_note(GO_TEXT + "\n" + GO_PETER_SIG + GO_ENOCH_SIG)
    assert note.signed_by([peter]) == ([peter], [])
    assert note.signed_by([peter, enoch]) == ([peter, enoch], [])
    assert note.signed_by([]) == ([], [])
    forged = GO_PETER_SIG[:60] + "ABCD" + GO_PETER_SIG[64:]
    assert parse_note(GO_TEXT + "\n" + forged).signed_by([peter]) == ([], [peter])


@pytest.mark.parametrize(
    "raw",
    [
        GO_TEXT,  # Go's badMsgs: no signature block
        GO_TEXT + "\n",
        GO_TEXT + "\n" + GO_PETER_SIG[:-1],
        "\x01" + GO_TEXT + "\n" + GO_PETER_SIG,
        GO_TEXT
        + "\n— Bad Name x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n",
        GO_TEXT + "\n" + GO_PETER_SIG + "Unexpected line.\n",
        GO_TEXT + "\n" + GO_PETER_SIG * 101,  # more than Go's 100 signatures
        GO_TEXT.encode() + b"\xff\n\n" + GO_PETER_SIG.encode(),  # not UTF-8
    ],
)
def test_malformed_notes_are_refused(raw: str | bytes) -> None:
    with pytest.raises(NoteError):
        parse_note(raw)


def test_a_vkey_whose_base64_key_holds_a_plus_is_read_whole() -> None:
    key = NoteSigner("credit-ledger.shanxi/v1", bytes(range(32))).vkey
    text = str(key)
    assert "+" in text.split("+", 2)[2]  # this key's base64 has a plus of its own
    assert VerifierKey.parse(text) == key


def test_vkeys_with_a_wrong_id_length_or_algorithm_are_refused() -> None:
    for bad in (
        "PeterNeumann+cc469956+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWBADKEY==",  # Go's wrong-length key
        "PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # Go's unknown algorithm
        GO_PETER.replace("c74f20a3", "c74f20a4"),
        "Peter Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
    ):
        with pytest.raises(NoteError):
            VerifierKey.parse(bad)


def test_the_tlog_checkpoint_example_is_a_checkpoint_body() -> None:
    body = CheckpointBody.parse(SOFA)
    assert (body.origin, body.size, base64.b64encode(body.root).decode(), body.extensions) == (
        "example.com/behind-the-sofa",
        20852163,
        "CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=",
        (),
    )
    assert body.text() == SOFA
    for bad in (SOFA.replace("20852163", "020852163"), SOFA[:-1], SOFA.replace("2I=", "2I"), SOFA + "\n"):
        with pytest.raises(FormatError):
            CheckpointBody.parse(bad)


def test_the_tlog_cosignature_example_is_a_timestamped_cosignature_over_its_example_message() -> None:
    cosignature = NoteSignature.parse_line(COSIGNATURE.rstrip("\n"))
    assert (cosignature.name, cosignature.timestamp, len(cosignature.signature)) == (
        "witness.example.com/w1",
        1679315147,  # the time of the specification's example signed message
        8 + 64,
    )
    assert cosigned_message(SOFA, 1679315147) == COSIGNED_MESSAGE.encode()
    assert cosignature.line() == COSIGNATURE


def test_a_cosignature_key_ids_with_type_4_and_verifies_only_its_own_time_and_text() -> None:
    witness = NoteSigner("witness.example/w1", bytes(range(32)), COSIGNATURE_V1)
    key = witness.vkey
    assert key.key_id == note_key_id("witness.example/w1", 0x04, key.public_key)
    assert key.key_id != note_key_id("witness.example/w1", ED25519, key.public_key)
    assert str(key).split("+")[2].startswith("B")  # base64 of 0x04 || key
    line = witness.cosign(SOFA, 1679315147)
    assert line.timestamp == 1679315147
    assert key.verify(SOFA, line)
    assert not key.verify(SOFA.replace("20852163", "20852164"), line)
    later = NoteSignature(line.name, line.key_id, (1679315148).to_bytes(8, "big") + line.signature[8:])
    assert not key.verify(SOFA, later)  # the time is signed too
    assert not VerifierKey.of(key.name, ED25519, key.public_key).verify(SOFA, line)  # another key id


def test_the_tlog_witness_example_request_parses_and_is_written_back_byte_for_byte() -> None:
    request = AddCheckpoint.parse(ADD_CHECKPOINT.encode())
    assert (request.old, len(request.proof), request.note) == (20852014, 4, SOFA + "\n" + SOFA_SIG)
    assert request.body() == ADD_CHECKPOINT.encode()
    for bad in (
        ADD_CHECKPOINT.replace("old 20852014", "old 020852014"),
        ADD_CHECKPOINT.replace("old ", "old: "),
        ADD_CHECKPOINT.replace("PlRNCrwHpqhGrupue0L7gxbjbMiKA9temvuZZDDpkaw=", "not a hash"),
        "old 1\n" + "PlRNCrwHpqhGrupue0L7gxbjbMiKA9temvuZZDDpkaw=\n" * 64 + "\n" + SOFA,
    ):
        with pytest.raises(RequestError):
            AddCheckpoint.parse(bad.encode())
