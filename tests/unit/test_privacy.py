"""The key ring: tampering is caught by GCM, the master key rotates without touching events, and a
lost master key file stops the start with a clear error."""

from __future__ import annotations

import asyncio
import os
import sqlite3
from datetime import date
from pathlib import Path
from typing import Any
from uuid import UUID

import orjson
import pytest

from contract.messages import outcome_message
from credit_ledger import discovery
from credit_ledger.cli import main
from credit_ledger.compose import build_ledger
from credit_ledger.config import VARIABLES, ConfigError, Settings
from credit_ledger.masterkey import rotate_master_key
from ledger.application.privacy import KeyRing, MasterKeyMismatch, SealedValueAltered, master_key_id
from ledger.application.queries import QueryService
from ledger.application.service import CreditLedger
from ledger.domain.access import Principal
from ledger.domain.catalogue import Catalogue
from ledger.domain.integrity import event_hash
from ledger.domain.personal import Envelope, seal_personal
from ledger.verification.audit import audit
from projections.projector import Projector
from projections.store import ProjectionStore
from streams.intake import classify as intake_classify
from streams.isolation import Failure
from streams.projecting import classify as projector_classify
from streams.scheduling import Scheduler
from tests.conftest import SECRET, Clock, example, file_of


def sealed_title(ledger: CreditLedger) -> str:
    ledger.submit([example("file_record")])
    title: str = (
        file_of(ledger, example("file_record")["subject"]["id"]).records["tax_bureau:SW-2026-0101"].title
    )
    return title


def test_a_ciphertext_altered_by_one_bit_fails_its_gcm_tag_and_names_its_field(ledger: CreditLedger) -> None:
    title = sealed_title(ledger)
    assert ledger.privacy is not None
    env = Envelope.parse(title)
    flipped = env.blob[:-2] + ("A" if env.blob[-2] != "A" else "B") + env.blob[-1]
    with pytest.raises(SealedValueAltered, match=r"ciphertext altered: fields.title of stream .* version 2"):
        ledger.privacy.open(str(Envelope(env.key_id, env.version, env.field, flipped)))


def test_a_ciphertext_moved_to_another_event_or_field_does_not_open(ledger: CreditLedger) -> None:
    title = sealed_title(ledger)
    assert ledger.privacy is not None
    env = Envelope.parse(title)
    with pytest.raises(SealedValueAltered, match="fails its GCM tag"):
        ledger.privacy.open(str(Envelope(env.key_id, env.version + 1, env.field, env.blob)))
    with pytest.raises(SealedValueAltered, match="fails its GCM tag"):
        ledger.privacy.open(str(Envelope(env.key_id, env.version, "fields.legal_basis", env.blob)))


def test_rotating_the_master_key_rewraps_every_data_key_and_leaves_every_event_as_it_was(
    ledger: CreditLedger,
) -> None:
    title = sealed_title(ledger)
    assert ledger.privacy is not None
    before = ledger.reader.event_rows(0, 1000)
    old_id = ledger.privacy.master_key_id
    new_key = os.urandom(32)
    assert ledger.privacy.rotate(new_key) == len(ledger.data_keys.live_data_keys())
    assert ledger.reader.event_rows(0, 1000) == before, "no event is touched"
    assert ledger.data_keys.master_key_ids() == {ledger.privacy.master_key_id} != {old_id}
    ledger.privacy.forget([Envelope.parse(title).key_id])  # read it back through the new wrapping
    ledger.privacy._keys.clear()
    assert ledger.privacy.open(title).startswith("逾期未申报")
    ledger.use_master_key(new_key)  # a restart with the new key starts
    from tests.conftest import MASTER_KEY  # noqa: PLC0415

    with pytest.raises(RuntimeError, match="wrapped by master key"):
        ledger.use_master_key(MASTER_KEY)  # the retired key no longer does


def test_a_lost_master_key_file_stops_the_start_with_an_error_naming_the_file(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    ledger = build_ledger(settings)
    ledger.submit([example("file_record")])
    ledger.close()
    (tmp_path / "master.key").unlink()
    with pytest.raises(ConfigError, match=r"master.key is missing, but the ledger holds data keys"):
        build_ledger(settings)
    assert not (tmp_path / "master.key").exists(), "no new key is made over a ledger that needs the old one"
    (tmp_path / "master.key").write_text(os.urandom(32).hex())
    with pytest.raises(ConfigError, match="restore the master key from its backup"):
        build_ledger(settings)


def test_a_master_key_that_is_not_64_hex_digits_is_a_configuration_error() -> None:
    with pytest.raises(ConfigError, match="CREDIT_MASTER_KEY must be 64 hexadecimal digits"):
        Settings.from_env({"CREDIT_MASTER_KEY": "not-a-key"})


def test_a_shredded_value_reads_as_shredded_never_as_an_error(ledger: CreditLedger) -> None:
    title = sealed_title(ledger)
    assert ledger.privacy is not None
    ledger.data_keys.shred_data_keys([Envelope.parse(title).key_id], "2026-11-02T00:00:00+00:00")
    ledger.privacy.forget([Envelope.parse(title).key_id])
    assert ledger.privacy.open(title) == "[shredded]"


def test_verify_opens_every_sealed_value_so_a_ciphertext_forged_under_a_recomputed_chain_is_named(
    tmp_path: Path,
) -> None:
    """The chain covers the ciphertext: altering one is caught by the chain, unless the operator
    recomputed the chain too. GCM is what still catches it, with no checkpoint to compare."""
    ledger = build_ledger(Settings(data_dir=tmp_path, subject_secret=SECRET.decode()))
    ledger.submit([example("file_record"), {**example("file_record"), "department": "nobody"}])
    report = audit(ledger, parallel=False)
    assert report.problems == []
    assert report.sealed is not None
    assert report.sealed.opened >= 3, "the name, the title, the rejected original"
    database = tmp_path / "ledger.sqlite"
    with sqlite3.connect(database) as db:  # a hostile operator: alter the title, re-hash the event
        rowid, stream, topic, stored = db.execute(
            "SELECT rowid, originator_id, topic, state FROM stored_events WHERE originator_version = 2"
        ).fetchone()
        state = ledger.mapper.transcoder.decode(stored)
        env = Envelope.parse(state["fields"]["title"])
        forged = env.blob[:-2] + ("A" if env.blob[-2] != "A" else "B") + env.blob[-1]
        state["fields"]["title"] = str(Envelope(env.key_id, env.version, env.field, forged))
        state["event_hash"] = event_hash(str(UUID(stream)), 2, topic, state)
        db.execute(
            "UPDATE stored_events SET state = ? WHERE rowid = ?",
            (ledger.mapper.transcoder.encode(state), rowid),
        )
    assert ledger.verify() == [], "the recomputed chain is intact"
    (problem,) = audit(ledger, parallel=False).problems
    assert problem.kind == "sealed"
    assert (problem.details["version"], problem.details["field"]) == (2, "fields.title")
    assert "ciphertext altered: fields.title" in problem.message
    assert "fails its GCM tag" in problem.message
    ledger.close()


def test_verify_counts_shredded_values_apart_and_finds_no_problem_in_them(ledger: CreditLedger) -> None:
    title = sealed_title(ledger)
    before = audit(ledger, parallel=False)
    assert ledger.privacy is not None
    ledger.data_keys.shred_data_keys([Envelope.parse(title).key_id], "2026-11-02T00:00:00+00:00")
    ledger.privacy.forget([Envelope.parse(title).key_id])
    after = audit(ledger, parallel=False)
    assert after.problems == []
    assert before.sealed is not None
    assert after.sealed is not None
    assert (after.sealed.opened, after.sealed.shredded) == (before.sealed.opened - 1, 1)


def test_the_scheduler_shreds_rejected_originals_90_days_after_their_month_and_the_api_says_so(
    ledger: CreditLedger, catalogue: Catalogue, clock: Clock, tmp_path: Path
) -> None:
    clock.set("2026-11-02T09:00:00+08:00")
    (rejected,) = ledger.submit([{**example("file_record"), "department": "nobody"}])
    assert not rejected.accepted
    position = ledger.outcomes_after(0)[-1][0]
    desk = Principal("desk", "administrator", "credit_platform")
    queries = QueryService(ledger, None, clock=clock)  # type: ignore[arg-type] # no read model is read

    async def expire(today: date, now: str) -> int:
        return ledger.expire_originals(today, now)

    scheduler = Scheduler(
        Projector(ProjectionStore(tmp_path / "read.sqlite"), catalogue), _sent, expire=expire, clock=clock
    )
    clock.set("2027-02-28T09:00:00+08:00")  # November's originals are kept until 1 March (Dec 1 + 90 days)
    asyncio.run(scheduler.run(clock()))
    assert scheduler.stats.originals_shredded == 0
    kept = queries.original(desk, position, read=ledger.original_at)
    assert kept.ok, kept.body
    assert b"nobody" in kept.body["original"]

    clock.set("2027-03-01T09:00:00+08:00")
    asyncio.run(scheduler.run(clock()))
    assert scheduler.stats.originals_shredded == 1
    gone = queries.original(desk, position, read=ledger.original_at)
    assert (gone.outcome, gone.body["error"]["code"]) == ("not_found", "original_shredded"), gone.body
    assert "shredded at the end of its retention (90 days" in gone.body["error"]["message"]
    _key, value = outcome_message(position, ledger.outcomes_after(position - 1)[0][1], ledger.open_original)
    assert orjson.loads(value)["original_expired"] is True, "its outcome message says so too"
    asyncio.run(scheduler.run(clock()))
    assert scheduler.stats.originals_shredded == 1, "a key is destroyed once"


async def _sent(topic: str, records: Any) -> int:
    return len(list(records))


def test_keys_rotate_master_rewraps_installs_the_new_key_file_and_refuses_while_a_serve_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for variable in VARIABLES:
        monkeypatch.delenv(variable.env, raising=False)
    settings = Settings(data_dir=tmp_path)
    ledger = build_ledger(settings)
    ledger.submit([example("file_record"), example("file_record_organisation")])
    live = len(ledger.data_keys.live_data_keys())
    ledger.close()
    old = (tmp_path / "master.key").read_text()
    new = os.urandom(32).hex()
    (tmp_path / "new.key").write_text(new + "\n")

    discovery.announce(tmp_path, discovery.Serving(os.getpid(), "127.0.0.1:9092", True, None))
    args = ["keys", "rotate-master", "--data-dir", str(tmp_path), "--new-key-file", str(tmp_path / "new.key")]
    assert main(args) == 2
    assert "a serve is running on" in capsys.readouterr().err
    assert (tmp_path / "master.key").read_text() == old, "nothing changed"

    (tmp_path / "serving.json").unlink()
    assert main(args) == 0
    out, err = capsys.readouterr()
    done = orjson.loads(out)
    assert (done["rewrapped"], done["installed"]) == (live, True)
    assert done["previous_master_key"] == master_key_id(bytes.fromhex(old))
    assert f"{live} data keys re-wrapped" in err
    assert (tmp_path / "master.key").read_text() == new, "installed once the re-wrap was committed"
    assert sorted(p.name for p in tmp_path.glob("master.key*")) == ["master.key"], "no backup left"
    reopened = build_ledger(settings)  # the restart with the new key file reads every field
    assert reopened.privacy is not None
    name = file_of(reopened, example("file_record")["subject"]["id"]).records["tax_bureau:SW-2026-0101"].title
    assert reopened.privacy.open(name).startswith("逾期未申报")
    assert audit(reopened, parallel=False).problems == []
    reopened.close()
    assert main(args) == 2, "the same key again is nothing to rotate"


def test_an_interrupted_rotation_is_finished_by_running_it_again(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    ledger = build_ledger(settings)
    ledger.submit([example("file_record"), example("file_record_organisation")])
    ledger.close()
    new = os.urandom(32)
    staged = tmp_path / "master.key.new"
    staged.write_text(new.hex())  # the first run staged it, re-wrapped one key, and stopped
    first = build_ledger(settings)
    assert first.privacy is not None
    kid, stream, unit, _m, wrapped, _c, _s = first.data_keys.live_data_keys()[0]
    raw = first.privacy._master.decrypt(wrapped[:12], wrapped[12:], f"{kid}|{stream}|{unit}".encode())  # type: ignore[index]
    half = KeyRing(first.data_keys, new)
    first.data_keys.rewrap_data_keys([(kid, half.master_key_id, half._wrap(kid, stream, unit, raw))])
    first.close()
    with pytest.raises(ConfigError, match="wrapped by master key"):
        build_ledger(settings)  # keys under two master keys: the start refuses
    done = rotate_master_key(settings, None)  # finds the staged key
    assert done.current == master_key_id(new)
    assert done.installed
    assert (tmp_path / "master.key").read_text() == new.hex()
    build_ledger(settings).close()


# Sealed by the code before the per-event plan (main at 117a6da), master key bytes(range(32)): the
# data key row and the envelopes exactly as that code stored them. What is published is never
# rewritten, so the ring must keep opening and placing them.
_STREAM = "ed23ebb8-34bf-8095-8ddf-39636ac41f6f"
_KEY_ROW = (
    "dfb6bad74db8bc7598b51aca",
    _STREAM,
    "record:tax_bureau:SW-2026-0101",
    "23ae130fb56c2680",
    b"\x1b\xf9\xd9\x06\xcc:\xdf\xfcz\xb2\xd5\xebQ\xb1\x7f\x1dD\xaf\x08\x80S\xfdq\xde\xe7?\xe4\xa3Q-V\xa9"
    b"\x18\xf66\xed\x05\xc0\x1e\xf2g\x9d?\x9a\xd1\x1e\xcc=x\xe3\x8aLn4d\xf3\xb9k\xa8?",
    "2026-11-01T09:00:00+00:00",
    None,
)
_TITLE = (
    "enc1:dfb6bad74db8bc7598b51aca:2:fields.title:"
    "0rEZoMHaeKn2JwuFuuqWGAF0TgmnEPVkjVNUbrLpF0FF80gPZo-DLXI75QCBbi9ea9PxXQ"
)
_PERSON = (
    "enc1:dfb6bad74db8bc7598b51aca:2:fields.responsible_persons.0.name:"
    "ve3xqdFccRobKod7BrrlESF5Az0Gkx2xDHie-hhnM9s5ECfz"
)


class _Keys:
    """A data key store holding given rows (what ``KeyRing.open`` and ``examine`` read)."""

    def __init__(self, *rows: Any) -> None:
        self.rows = {row[0]: row for row in rows}

    def data_keys(self, key_ids: Any) -> dict[str, Any]:
        return {kid: self.rows[kid] for kid in key_ids if kid in self.rows}


def test_enc1_values_sealed_by_the_earlier_code_still_open_and_are_still_bound_to_their_place() -> None:
    ring = KeyRing(_Keys(_KEY_ROW), bytes(range(32)))  # type: ignore[arg-type]
    assert ring.open(_TITLE) == "逾期未申报 张三"
    assert ring.open(_PERSON) == "李四"
    assert ring.examine(_TITLE, _STREAM, 2, "fields.title") == ("opens", None)
    assert ring.examine(_PERSON, _STREAM, 2, "fields.responsible_persons.0.name") == ("opens", None)
    moved = Envelope.parse(_TITLE)
    with pytest.raises(SealedValueAltered, match="fails its GCM tag"):
        ring.open(str(Envelope(moved.key_id, 3, moved.field, moved.blob)))
    with pytest.raises(SealedValueAltered, match="fails its GCM tag"):
        ring.open(str(Envelope(moved.key_id, 2, "fields.responsible_persons.0.name", moved.blob)))
    assert ring.examine(_TITLE, "another-stream", 2, "fields.title")[0] == "altered"
    shredded = KeyRing(_Keys((*_KEY_ROW[:4], None, _KEY_ROW[5], "2031-11-01")), bytes(range(32)))  # type: ignore[arg-type]
    assert shredded.open(_TITLE) == "[shredded]"


def test_the_plan_seals_what_the_declaration_names_copies_what_it_changes_and_makes_no_key_for_nothing() -> (
    None
):
    keys = _Keys()
    ring = KeyRing(keys, bytes(range(32)))  # type: ignore[arg-type]
    sealer = ring.batch()
    persons = [{"name": "李四", "role": "法定代表人"}, {"name": None, "role": "x"}, "not a dict"]
    fields = {"title": "逾期未申报 张三", "category": "tax", "responsible_persons": persons}
    state: dict[str, Any] = {"record": "tax_bureau:SW-2026-0101", "fields": fields}
    seal_personal(sealer, "RecordFiled", 1, UUID(_STREAM), 2, state)
    sealed = state["fields"]
    assert sealed is not fields
    assert sealed["responsible_persons"] is not persons
    assert fields["title"] == "逾期未申报 张三", "the caller's dicts stay clear"
    assert persons[0]["name"] == "李四"
    assert sealed["category"] == "tax"
    assert sealed["responsible_persons"][1:] == persons[1:]
    assert [kid for kid, *_ in sealer.rows()] == [Envelope.parse(sealed["title"]).key_id]
    keys.rows.update((row[0], row) for row in sealer.rows())
    assert ring.examine(sealed["title"], _STREAM, 2, "fields.title") == ("opens", None)
    name = sealed["responsible_persons"][0]["name"]
    assert ring.examine(name, _STREAM, 2, "fields.responsible_persons.0.name") == ("opens", None)
    assert ring.open(name) == "李四"
    nonces = {Envelope.parse(v).blob[:16] for v in (sealed["title"], name)}
    assert len(nonces) == 2, "every value has a nonce of its own"
    again = dict(state)  # sealing twice leaves envelopes as they are
    seal_personal(sealer, "RecordFiled", 1, UUID(_STREAM), 2, again)
    assert again["fields"]["title"] == sealed["title"]
    empty = ring.batch()
    seal_personal(empty, "ObjectionRaised", 1, UUID(_STREAM), 3, {"record": "r", "grounds": None})
    assert empty.rows() == [], "an event with nothing to seal makes no key"


def test_a_worker_given_another_master_key_than_the_one_wrapping_a_subjects_data_key_stops_with_why(
    tmp_path: Path,
) -> None:
    """Two workers started on a new ledger with different master keys both pass the start's check
    (no data key exists yet); the second, meeting a data key the first wrapped, must not turn the
    subject's submissions into internal_error one by one: it raises the configuration error."""
    first = build_ledger(Settings(data_dir=tmp_path, master_key="a" * 64, subject_secret="s" * 32))
    second = build_ledger(Settings(data_dir=tmp_path, master_key="b" * 64, subject_secret="s" * 32))
    try:
        (accepted,) = first.submit_safely([example("file_record")])
        assert accepted.status == "accepted"
        statement = {**example("add_statement"), "subject": example("file_record")["subject"]}
        with pytest.raises(
            MasterKeyMismatch, match=r"every worker on one ledger must be given the same"
        ) as err:
            second.submit_safely([statement])
        assert master_key_id(bytes.fromhex("a" * 64)) in str(err.value)
        assert master_key_id(bytes.fromhex("b" * 64)) in str(err.value)
        # The intake and the projector end (never a rejection, never a parked message): the log says why.
        assert intake_classify(err.value) is Failure.FATAL
        assert projector_classify(err.value) is Failure.FATAL
    finally:
        first.close()
        second.close()
    with pytest.raises(ConfigError, match="wrapped by master key"):  # and a restart with it refuses
        build_ledger(Settings(data_dir=tmp_path, master_key="b" * 64, subject_secret="s" * 32))


def test_a_rejected_first_filing_leaves_no_data_key_so_a_restarted_worker_files_for_the_subject(
    tmp_path: Path,
) -> None:
    """A filing refused after the new file sealed the subject's name (here: a department not
    registered for the category) must not save that file's key: with no event of its stream, a
    process that did not make it (another worker, or this one restarted) creates it again for the
    subject's next filing and fails on the key's unique id, every time (internal_error)."""
    settings = Settings(data_dir=tmp_path, master_key="a" * 64, subject_secret="s" * 32)
    refused = {**example("file_record"), "submission_id": "VOL-1", "department": "volunteer_federation"}
    first = build_ledger(settings)
    try:
        (outcome,) = first.submit_safely([refused])
        assert (outcome.status, (outcome.reason or {}).get("code")) == ("rejected", "not_authorised")
        assert {row[1] for row in first.data_keys.live_data_keys()} == {"rejections"}
    finally:
        first.close()
    restarted = build_ledger(settings)  # its key ring remembers no key
    try:
        (outcome,) = restarted.submit_safely([example("file_record")])
        assert outcome.status == "accepted", outcome.reason
    finally:
        restarted.close()
