"""Issue 16: version 3 checkpoints are C2SP checkpoint notes carrying all that v2 signs; the audit
checks their origin and a witness policy, and names both sides of a split view."""

from __future__ import annotations

import base64
import dataclasses
import re
from datetime import timedelta
from pathlib import Path

import orjson
import pytest

from credit_ledger.config import ConfigError, Settings
from credit_ledger.generator import SubmissionGenerator
from ledger.application.service import CreditLedger
from ledger.domain.catalogue import Catalogue
from ledger.verification.audit import audit
from ledger.verification.checkpoints import CheckpointLog, SourcedCheckpoint
from ledger.verification.notes import (
    COSIGNATURE_V1,
    ED25519,
    NoteSignature,
    NoteSigner,
    note_key_id,
    parse_note,
)
from ledger.verification.policy import PolicyError, WitnessPolicy, parse_witness_list
from ledger.verification.signed import (
    NO_PREVIOUS,
    Checkpoint,
    CheckpointSigner,
    checkpoint_hash,
    verify_checkpoint,
)
from ledger.verification.transparency import LedgerTree
from tests.unit.test_transparency import NOW, ledger

ORIGIN = "credit-ledger.shanxi/v1"
SEED = bytes(range(32))
HEAD = "cd" * 32


__all__ = ["ledger"]  # the fixture: a ledger on in-memory persistence whose clock says NOW


def grow(ledger: CreditLedger, catalogue: Catalogue, n: int, seed: int) -> None:
    ledger.submit(SubmissionGenerator(catalogue.latest, subjects=6, seed=seed, prefix=f"c{seed}").take(n))


def witnesses(n: int) -> list[NoteSigner]:
    return [NoteSigner(f"witness.example/w{i}", bytes([i]) * 32, COSIGNATURE_V1) for i in range(1, n + 1)]


def cosign(cp: Checkpoint, *by: NoteSigner, at: int = 1_790_000_000) -> Checkpoint:
    return cp.cosigned([w.cosign(cp.body().text(), at) for w in by])


def sourced(*checkpoints: Checkpoint) -> list[SourcedCheckpoint]:
    return [SourcedCheckpoint(f"test:{i}", cp) for i, cp in enumerate(checkpoints, 1)]


def test_a_v3_checkpoint_is_a_c2sp_checkpoint_note_with_the_v2_fields_as_extension_lines() -> None:
    signer = CheckpointSigner(SEED)
    cp = signer.sign(9, b"\x11" * 32, NOW, receipts=(412, HEAD), origin=ORIGIN)
    root = base64.b64encode(b"\x11" * 32).decode()
    assert cp.body().text() == (
        f"{ORIGIN}\n9\n{root}\n"
        "credit-ledger time 2026-11-01T09:00:00Z\n"
        f"credit-ledger receipts 412 {HEAD}\n"
        f"credit-ledger prev {NO_PREVIOUS}\n"
    )
    note = parse_note(cp.note())
    (line,) = note.signatures
    assert (line.name, line.key_id) == (ORIGIN, note_key_id(ORIGIN, ED25519, signer.public_key))
    assert cp.key_id == f"{line.key_id:08x}" == str(signer.vkey(ORIGIN)).split("+")[1]
    assert note.signed_by([signer.vkey(ORIGIN)]) == ([signer.vkey(ORIGIN)], [])
    assert (cp.version, cp.to_dict()) == (3, {"v": 3, "note": cp.note()})
    assert Checkpoint.from_dict(orjson.loads(orjson.dumps(cp.to_dict()))) == cp
    assert verify_checkpoint(cp, signer.public_key_hex)
    assert signer.signed(cp)


def test_a_v3_checkpoint_altered_in_any_line_or_signed_by_another_key_does_not_verify() -> None:
    signer, other = CheckpointSigner(SEED), CheckpointSigner(bytes(32))
    cp = signer.sign(9, b"\x11" * 32, NOW, receipts=(412, HEAD), origin=ORIGIN)
    for field, value in (
        ("size", 10),
        ("root", "22" * 32),
        ("receipts", 413),
        ("prev", HEAD),
        ("origin", "x/v1"),
    ):
        assert not verify_checkpoint(dataclasses.replace(cp, **{field: value}), signer.public_key_hex), field
    assert not verify_checkpoint(cp, other.public_key_hex)
    assert not other.signed(cp)
    mine = other.sign(9, b"\x11" * 32, NOW, receipts=(412, HEAD), origin=ORIGIN)
    assert verify_checkpoint(mine, other.public_key_hex)
    assert not verify_checkpoint(mine, signer.public_key_hex)


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("credit-ledger time 2026-11-01T09:00:00Z\n", "credit-ledger time 2026-11-01T09:00:00+00:00\n"),
        ("credit-ledger time 2026-11-01T09:00:00Z\n", ""),
        ("credit-ledger receipts 412", "credit-ledger receipts 0412"),
        ("credit-ledger prev", "credit-ledger previous"),
        ("\n\n", "\nan extra line\n\n"),
    ],
)
def test_a_note_that_is_not_written_as_a_v3_checkpoint_is_refused(old: str, new: str) -> None:
    cp = CheckpointSigner(SEED).sign(9, b"\x11" * 32, NOW, receipts=(412, HEAD), origin=ORIGIN)
    with pytest.raises(ValueError, match="checkpoint"):
        Checkpoint.from_note(cp.note().replace(old, new, 1))


def test_a_v3_record_has_exactly_its_note_and_the_note_exactly_one_operator_signature() -> None:
    cp = CheckpointSigner(SEED).sign(9, b"\x11" * 32, NOW, receipts=(412, HEAD), origin=ORIGIN)
    with pytest.raises(ValueError, match="'note'"):
        Checkpoint.from_dict({**cp.to_dict(), "size": 9})
    twice = cp.note() + cp.operator_signature().line()
    with pytest.raises(ValueError, match="one Ed25519 signature"):
        Checkpoint.from_note(twice)
    (w,) = witnesses(1)
    only_witness = cp.body().text() + "\n" + w.cosign(cp.body().text(), 5).line()
    with pytest.raises(ValueError, match="one Ed25519 signature"):
        Checkpoint.from_note(only_witness)


def test_cosignatures_ride_along_without_changing_the_checkpoint_or_what_the_next_one_names() -> None:
    signer = CheckpointSigner(SEED)
    cp = signer.sign(9, b"\x11" * 32, NOW, receipts=(412, HEAD), origin=ORIGIN)
    w1, w2 = witnesses(2)
    both = cosign(cosign(cp, w1), w2)
    assert both == cp
    assert checkpoint_hash(both) == checkpoint_hash(cp) == checkpoint_hash(cosign(cp, w2))
    assert [s.name for s in Checkpoint.from_note(both.note()).cosignatures][:2] == [w1.name, w2.name]
    assert verify_checkpoint(both, signer.public_key_hex)
    v2 = signer.sign(5, b"\x22" * 32, NOW, receipts=(400, HEAD))
    after = CheckpointSigner(SEED, previous=lambda: v2).sign(
        9, b"\x11" * 32, NOW, receipts=(1, HEAD), origin=ORIGIN
    )
    assert after.prev == checkpoint_hash(v2)  # a v3 checkpoint chains on from a v2 one


def test_the_witness_list_and_the_policy_refuse_what_they_cannot_use() -> None:
    w1, w2 = witnesses(2)
    listed = parse_witness_list(f"{w1.vkey} http://127.0.0.1:9001/ ,{w2.vkey} https://w2.example")
    assert [(e.vkey, e.add_checkpoint_url) for e in listed] == [
        (w1.vkey, "http://127.0.0.1:9001/add-checkpoint"),
        (w2.vkey, "https://w2.example/add-checkpoint"),
    ]
    log_key = CheckpointSigner(SEED).vkey(ORIGIN)
    for bad in (
        f"{w1.vkey}",
        f"{w1.vkey} ftp://x",
        f"{log_key} http://x",
        f"{w1.vkey} http://a, {w1.vkey} http://b",
    ):
        with pytest.raises(PolicyError):
            parse_witness_list(bad)
    with pytest.raises(PolicyError, match="from 1 to the number"):
        WitnessPolicy.of([str(w1.vkey)], 2)
    assert WitnessPolicy.of([str(w1.vkey), str(w2.vkey)]).describe() == "at least 2 of 2 witnesses"


def test_the_audit_checks_v3_checkpoints_and_their_origin(ledger: CreditLedger, catalogue: Catalogue) -> None:
    signer, tree = signer_and_tree(ledger, catalogue)
    cp = tree.checkpoint(signer, NOW, origin=ORIGIN)
    assert audit(ledger, sourced(cp), signer.public_key_hex, origin=ORIGIN).problems == []
    (problem,) = audit(ledger, sourced(cp), signer.public_key_hex, origin="another/v1").problems
    assert problem.kind == "checkpoint_signature"
    assert f"it is a checkpoint of the log {ORIGIN}, not of this ledger's another/v1" in problem.message
    impostor = tree.checkpoint(CheckpointSigner(bytes(32)), NOW, origin=ORIGIN)
    (problem,) = audit(ledger, sourced(impostor), signer.public_key_hex, origin=ORIGIN).problems
    assert f"signed by key {impostor.key_id}, not by the operator's key {cp.key_id}" in problem.message


def test_with_a_policy_each_checkpoint_is_witnessed_or_covered_by_a_later_witnessed_one(
    ledger: CreditLedger, catalogue: Catalogue
) -> None:
    signer = CheckpointSigner(SEED)
    w1, w2, w3 = witnesses(3)
    policy = WitnessPolicy.of([str(w.vkey) for w in (w1, w2, w3)], 2)
    tree, made = LedgerTree(ledger), []
    for seed in (1, 2, 3):
        grow(ledger, catalogue, 8, seed=seed)
        tree.catch_up()
        made.append(tree.checkpoint(signer, NOW + timedelta(minutes=seed), origin=ORIGIN))
    first, second, third = made
    # The first is covered by the second (2 of 3), the third has only one: it is named.
    checkpoints = sourced(first, cosign(second, w1, w3), cosign(third, w2))
    (problem,) = audit(ledger, checkpoints, signer.public_key_hex, origin=ORIGIN, policy=policy).problems
    assert (problem.kind, problem.details["size"], problem.details["cosigned_by"]) == (
        "witness_policy",
        third.size,
        [w2.name],
    )
    assert problem.details["not_cosigned_by"] == [w1.name, w3.name]
    assert (
        "is cosigned by 1 of the witnesses where the policy wants at least 2 of 3 witnesses"
        in problem.message
    )
    # One source has w1's cosignature of the third, another w3's: together they meet the policy.
    split = [*checkpoints, SourcedCheckpoint("witness http://w3", cosign(third, w3))]
    assert audit(ledger, split, signer.public_key_hex, origin=ORIGIN, policy=policy).problems == []
    # A cosignature that does not verify is named, and not counted.
    good = cosign(third, w1)
    bad = NoteSignature(w3.name, w3.vkey.key_id, good.cosignatures[0].signature)
    forged = dataclasses.replace(third, cosignatures=(*good.cosignatures, bad))
    kinds = [
        p.kind
        for p in audit(
            ledger, sourced(first, forged), signer.public_key_hex, origin=ORIGIN, policy=policy
        ).problems
    ]
    assert kinds == ["checkpoint_cosignature", "witness_policy", "witness_policy"]


def signer_and_tree(ledger: CreditLedger, catalogue: Catalogue) -> tuple[CheckpointSigner, LedgerTree]:
    """The operator's signer, and the tree of the ledger grown by 10 submissions."""
    grow(ledger, catalogue, 10, seed=1)
    tree = LedgerTree(ledger)
    tree.catch_up()
    return CheckpointSigner(SEED), tree


def test_a_split_view_is_named_with_both_checkpoints_and_where_each_was_seen(
    ledger: CreditLedger, catalogue: Catalogue
) -> None:
    signer, tree = signer_and_tree(ledger, catalogue)
    honest = tree.checkpoint(signer, NOW, origin=ORIGIN)
    later, receipts = NOW + timedelta(seconds=1), ledger.reader.receipt_head()
    fork = signer.sign(tree.size, b"\x07" * 32, later, receipts=receipts, origin=ORIGIN)
    seen = [SourcedCheckpoint("checkpoints.jsonl:1", honest), SourcedCheckpoint("witness http://w2", fork)]
    conflict, mismatch = audit(ledger, seen, signer.public_key_hex, origin=ORIGIN).problems
    assert conflict.kind == "checkpoint_conflict"
    assert [c["sources"] for c in conflict.details["checkpoints"]] == [
        ["checkpoints.jsonl:1"],
        ["witness http://w2"],
    ]
    assert "(checkpoints.jsonl:1)" in conflict.message
    assert "(witness http://w2)" in conflict.message
    assert (mismatch.kind, mismatch.details["sources"]) == ("checkpoint_root", ["witness http://w2"])
    assert mismatch.details["agrees_with"]["sources"] == ["checkpoints.jsonl:1"]


def test_a_file_of_v1_v2_and_v3_checkpoints_is_read_as_written_and_audited_as_one_history(
    ledger: CreditLedger, catalogue: Catalogue, tmp_path: Path
) -> None:
    # A ledger older than issue 16 keeps its v1 and v2 lines; the v3 ones follow them in the same
    # file (and on credit.digests); each is read back in its own version, none rewritten.
    log = CheckpointLog(tmp_path / "checkpoints.jsonl")
    tree = LedgerTree(ledger)
    signed: list[Checkpoint] = []
    for n, version in enumerate((1, 2, 3), 1):
        grow(ledger, catalogue, 4, seed=10 + n)
        tree.catch_up()
        signer = CheckpointSigner(SEED, previous=log.last)
        receipts = ledger.reader.receipt_head() if version > 1 else None
        at = NOW + timedelta(minutes=n)
        cp = signer.sign(
            tree.size, tree.log.root(), at, receipts=receipts, origin=ORIGIN if version == 3 else None
        )
        log.append(cp)
        signed.append(cp)
    lines = [orjson.loads(line) for line in log.path.read_bytes().splitlines()]
    assert ["v" in lines[0], lines[1]["v"], sorted(lines[2])] == [False, 2, ["note", "v"]]
    read = log.read()
    assert [(s.checkpoint.version if s.checkpoint else None) for s in read] == [1, 2, 3]
    assert [s.checkpoint for s in read] == signed
    assert signed[2].prev == checkpoint_hash(signed[1])  # the v3 chains to the v2 before it
    assert audit(ledger, read, CheckpointSigner(SEED).public_key_hex, origin=ORIGIN).problems == []


def test_an_earlier_checkpoint_a_later_one_contradicts_is_named_with_it(
    ledger: CreditLedger, catalogue: Catalogue
) -> None:
    # The fork's auditor: its tree matches the fork's later checkpoint; the log's earlier one, of
    # another size (no same-size conflict), held by a witness, does not. Both are named.
    signer, tree = signer_and_tree(ledger, catalogue)
    half, receipts = tree.size // 2, ledger.reader.receipt_head()
    earlier = signer.sign(half, b"\x07" * 32, NOW, receipts=receipts, origin=ORIGIN)
    later = tree.checkpoint(signer, NOW + timedelta(seconds=1), origin=ORIGIN)
    seen = [SourcedCheckpoint("witness http://w1", earlier), SourcedCheckpoint("checkpoints.jsonl:1", later)]
    (mismatch,) = audit(ledger, seen, signer.public_key_hex, origin=ORIGIN).problems
    assert (mismatch.kind, mismatch.details["size"], mismatch.details["sources"]) == (
        "checkpoint_root",
        half,
        ["witness http://w1"],
    )
    assert mismatch.details["inconsistent_with"] == {
        "size": later.size,
        "time": later.time,
        "root": later.root,
        "key_id": later.key_id,
        "sources": ["checkpoints.jsonl:1"],
    }
    assert "(witness http://w1)" in mismatch.message
    assert (
        f"inconsistent with the later checkpoint of size {later.size} at {later.time} (checkpoints.jsonl:1)"
        in mismatch.message
    )
    # The log's own auditor: the earlier one matches, the later (forked) one does not, and names it.
    honest = signer.sign(half, tree.log.root(half), NOW, receipts=receipts, origin=ORIGIN)
    fork = signer.sign(tree.size, b"\x08" * 32, NOW + timedelta(seconds=1), receipts=receipts, origin=ORIGIN)
    seen = [SourcedCheckpoint("checkpoints.jsonl:1", honest), SourcedCheckpoint("witness http://w2", fork)]
    (forked,) = audit(ledger, seen, signer.public_key_hex, origin=ORIGIN).problems
    assert (forked.kind, forked.details["sources"], forked.details["inconsistent_with"]) == (
        "checkpoint_root",
        ["witness http://w2"],
        None,
    )
    assert forked.details["agrees_with"]["sources"] == ["checkpoints.jsonl:1"]
    assert (
        f"the checkpoint of size {half} at {honest.time} (checkpoints.jsonl:1) still matches"
        in forked.message
    )


@pytest.mark.parametrize(
    ("variable", "value", "said"),
    [
        ("CREDIT_LOG_ORIGIN", "credit ledger", "CREDIT_LOG_ORIGIN must be a name with no spaces or '+'"),
        ("CREDIT_LOG_ORIGIN", "a+b/v1", "CREDIT_LOG_ORIGIN must be a name with no spaces or '+'"),
        ("CREDIT_WITNESSES", "http://127.0.0.1:9001", "CREDIT_WITNESSES must list 'VKEY URL' pairs"),
        (
            "CREDIT_WITNESSES",
            f"{CheckpointSigner(SEED).vkey(ORIGIN)} http://x",
            "not 0x04 (a cosignature/v1 key)",
        ),
    ],
)
def test_an_origin_or_a_witness_list_that_cannot_be_used_is_a_configuration_error(
    variable: str, value: str, said: str
) -> None:
    with pytest.raises(ConfigError, match=re.escape(said)):
        Settings.from_env({variable: value})
    assert Settings.from_env({"CREDIT_LOG_ORIGIN": ORIGIN}).log_origin == ORIGIN
