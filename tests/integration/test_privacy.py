"""Issue 15: no personal data in clear in the ledger file, the read store or any topic; shredding
at the end of retention and on request leaves verify, proofs and rebuilds intact."""

from __future__ import annotations

import asyncio
import copy
import sqlite3
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from pathlib import Path
from typing import Any
from uuid import UUID

import orjson
import pytest

from auditor.auditor import canonical, leaf_hash, verify_inclusion
from contract import topics
from contract.measures import measures_record
from contract.messages import messages_from_store, submission_key
from ledger.application.privacy import INBOX_STREAM, SealedValueAltered
from ledger.application.queries import QueryService
from ledger.application.service import CreditLedger
from ledger.domain.access import Principal
from ledger.domain.catalogue import Catalogue
from ledger.domain.inbox import INBOX_HEADER, InboxItem, inbox_source
from ledger.domain.personal import SHREDDED
from ledger.domain.subjects import parse_subject_code
from ledger.verification.sealed import check_sealed
from ledger.verification.transparency import LedgerTree
from projections.compare import compare_stores
from projections.projector import Projector
from projections.reader import ProjectionReader
from projections.rebuild import Rebuild
from projections.scheduler import scheduled_submissions
from projections.store import ProjectionStore
from streams.drain import InboxDrain
from tests.conftest import MASTER_KEY, PERSON, SECRET, Clock, example
from tests.unit.querydesk import Desk
from tests.unit.test_resilience import FakeProducer, relay_with
from tests.unit.webdesk import Web, serve

NAME = "欧阳测试员"
GROUNDS = "罚单ZQ-774411不是本人的车辆"
SECRETS = {"name": NAME.encode(), "grounds": GROUNDS.encode(), "identity number": PERSON.encode()}


class Platform:
    """A ledger on a SQLite file, its read store, and every topic the relay and projector fill."""

    def __init__(self, tmp: Path, catalogue: Catalogue, clock: Clock) -> None:
        self.db = tmp / "ledger.sqlite"
        self.ledger = CreditLedger(
            catalogue=catalogue,
            secret=SECRET,
            clock=clock,
            env={"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": str(self.db)},
            master_key=MASTER_KEY,
        )
        self.read_file = tmp / "projections.sqlite"
        self.store = ProjectionStore(self.read_file, names=self.ledger.name_index.of)
        self.projector = Projector(self.store, catalogue, history=self.history)
        self.catalogue = catalogue
        self.clock = clock
        self.producer = FakeProducer()
        self.seen = 0
        self.queries = QueryService(
            self.ledger, ProjectionReader(self.store, catalogue, self.history), clock=clock
        )

    def history(self, key: str) -> list[dict[str, Any]]:
        return messages_from_store(self.ledger.reader, UUID(key))

    def submit(self, *subs: dict[str, Any]) -> list[Any]:
        outcomes = self.ledger.submit(list(subs))
        new = messages_from_store(self.ledger.reader)[self.seen :]
        self.seen += len(new)
        self.projector.apply(new)
        asyncio.run(relay_with(self.ledger, self.producer).run_once())
        for _position, change in self.store.unpublished(1000):
            self.producer.sent.append(("credit.list-changes", b"", orjson.loads(change)))
        notices = self.store.unpublished_notices(1000)  # what streams.projecting publishes
        for _position, notice in notices:
            key, _value, _headers = measures_record(orjson.loads(notice))
            self.producer.sent.append(("credit.measures", key, orjson.loads(notice)))
        self.store.mark_notices_published([position for position, _ in notices])
        return outcomes

    def run_scheduler(self, today: date) -> list[str]:
        commands = scheduled_submissions(self.store.due_on_or_before(today.isoformat()), today)
        self.submit(*commands)
        self.projector.announce_clean(today)  # as streams.scheduling.Scheduler's round does
        return [c["action"] for c in commands]

    def raw_bytes(self) -> Iterator[tuple[str, bytes]]:
        """Every byte at rest and in flight: the ledger file (its WAL checkpointed), the read store,
        each topic's messages."""
        for path in (self.db, self.read_file):
            with sqlite3.connect(path) as c:
                c.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            for part in path.parent.glob(path.name + "*"):
                yield part.name, part.read_bytes()
        for topic, key, value in self.producer.sent:
            yield topic, key + orjson.dumps(value)

    def leaks(self, *extra: bytes) -> list[str]:
        wanted = {**SECRETS, **{f"extra {i}": e for i, e in enumerate(extra)}}
        return sorted(
            {
                f"{what} in {where}"
                for where, data in self.raw_bytes()
                for what, s in wanted.items()
                if s in data
            }
        )


@pytest.fixture
def platform(tmp_path: Path, catalogue: Catalogue, clock: Clock) -> Iterator[Platform]:
    clock.set("2026-04-20T09:00:00+08:00")
    p = Platform(tmp_path, catalogue, clock)
    yield p
    p.ledger.close()


def ours(name: str) -> dict[str, Any]:
    body = copy.deepcopy(example(name))
    body["subject"]["name"] = NAME
    return body


def test_the_subjects_name_grounds_and_identity_number_are_nowhere_in_clear_and_gone_after_shredding(
    platform: Platform,
) -> None:
    objection = ours("raise_objection_minor")
    objection["grounds"] = GROUNDS
    refused = {**ours("file_record"), "department": "no_such_department"}  # kept for its sender
    outcomes = platform.submit(ours("file_record_minor"), objection, refused)
    assert [o.status for o in outcomes] == ["accepted", "accepted", "rejected"]
    topics = {topic for topic, _, _ in platform.producer.sent}
    assert {"credit.ledger", "credit.outcomes", "credit.rejections"} <= topics

    assert platform.leaks() == [], "before shredding, only ciphertext"
    subject = Principal("desk", "administrator", "credit_platform")
    seen = platform.queries.status(subject, PERSON, purpose="supervision_inspection", basis="test")
    assert seen.ok, seen.body
    assert seen.body["subject"]["name"] == NAME, "the platform's own answer opens it"
    position = next(
        o for o in platform.ledger.outcomes_after(0) if o[1].entry.department == "no_such_department"
    )[0]
    assert NAME.encode() in platform.ledger.original_at(position)[1]  # type: ignore[index]

    key = str(platform.ledger.key_of(parse_subject_code(PERSON, today=date(2026, 4, 20))))
    digest = platform.ledger.name_index.digest(NAME)
    assert list(platform.store.name_index()) == [{"subject_key": key, "digest": digest}], (
        "the blind index finds the name (and leaks() found no name in the read store)"
    )
    assert platform.store.records.subjects_named(NAME, limit=5, digest=digest) == [key]
    indexed = ProjectionStore(
        platform.read_file.parent / "indexed.sqlite", names=platform.ledger.name_index.of
    )
    rebuild = Rebuild(platform.catalogue, today=date(2026, 4, 20))
    rebuild.fold_messages(messages_from_store(platform.ledger.reader))
    rebuild.write(indexed, platform.catalogue)
    assert list(indexed.name_index()) == list(platform.store.name_index()), "rebuilt like any read model"

    tree = LedgerTree(platform.ledger)
    tree.catch_up()
    proof = tree.inclusion_proof_for_event(key, 2)  # the record as filed, sealed
    size, root = tree.size, tree.root()
    wrapped = {row[0]: row[4] for row in platform.ledger.data_keys.live_data_keys()}

    platform.clock.set("2026-07-03T09:00:00+08:00")
    assert platform.run_scheduler(date(2026, 7, 3)) == ["mark_objection_overdue", "expire_record"]
    platform.clock.set("2029-04-03T09:00:00+08:00")  # the scheduler runs daily: a clean record begins
    assert platform.run_scheduler(date(2029, 4, 3)) == []
    platform.clock.set("2031-07-03T09:00:00+08:00")
    assert platform.run_scheduler(date(2031, 7, 3)) == ["shred_record"]
    erase = {
        "submission_id": "DESK-2031-0001",
        "department": "credit_platform",
        "action": "shred_record",
        "subject": {"key": key},
        "occurred_at": "2031-07-03T09:00:00+08:00",
        "basis": "erasure_request",
        "legal_basis": "《个人信息保护法》第四十七条",
    }
    (erased,) = platform.submit(erase)
    assert erased.accepted, erased.reason

    assert platform.leaks(*(w for w in wrapped.values() if w)) != []  # the rejection key is still live
    destroyed = [kid for kid, row in platform.ledger.data_keys.data_keys(wrapped).items() if row[4] is None]
    assert len(destroyed) == 2, "the record's key and the file's own"
    assert platform.leaks(*(wrapped[k] for k in destroyed)) == [], "the destroyed keys' bytes are gone too"

    assert platform.ledger.verify() == []
    tree.catch_up()
    assert tree.root(size) == root
    leaf = proof["leaf"]
    path = [bytes.fromhex(p) for p in proof["path"]]
    assert verify_inclusion(leaf_hash(canonical(leaf)), proof["index"], size, path, root)

    assert list(platform.store.name_index()) == [], "the name's digest went with the file's unit"
    rebuilt = ProjectionStore(
        platform.read_file.parent / "rebuilt.sqlite", names=platform.ledger.name_index.of
    )
    rebuild = Rebuild(platform.catalogue, today=date(2031, 7, 3))
    rebuild.fold_messages(messages_from_store(platform.ledger.reader))
    rebuild.write(rebuilt, platform.catalogue)
    diffs = compare_stores(platform.store, rebuilt)
    assert diffs == [], orjson.dumps(diffs).decode()

    me = Principal("me", "subject", "citizen", key)
    report = platform.queries.me(me, "report")
    assert report.ok, report.body
    shredded = report.body["shredded"]
    assert [(s["record"], s["basis"]) for s in shredded] == [
        ("transport:JT-2026-0401", "retention_ended"),
        (None, "erasure_request"),
    ]
    assert all(s["at"] for s in shredded)
    assert report.body["status"]["subject"]["name"] == SHREDDED


CASE = "（2026）京01执限字第4471号"
WHY = "欧阳测试员已于本部门办结全部事项"


def designated(platform: Platform, subject: dict[str, Any]) -> list[dict[str, Any]]:
    """The market regulator's serious record on ``subject`` and its black-list designation: the
    notices it sends on credit.measures."""
    filing = copy.deepcopy(example("file_record_organisation"))
    designation = copy.deepcopy(example("designate"))
    for body in (filing, designation):
        body["subject"] = subject
        body["occurred_at"] = "2026-04-20T08:00:00+08:00"
    filing["record"]["decision"]["date"] = "2026-04-19"
    if subject["id"] == PERSON:
        del filing["record"]["responsible_persons"]  # named only on an organisation's record
    designation["designation"]["valid_from"] = "2026-04-20"
    outcomes = platform.submit(filing, designation)
    assert [o.status for o in outcomes] == ["accepted", "accepted"], [o.reason for o in outcomes]
    return [v for topic, _, v in platform.producer.sent if topic == "credit.measures"]


def test_measure_notices_and_feedback_carry_a_persons_masked_number_never_the_name_or_free_text(
    platform: Platform,
) -> None:
    sent = designated(platform, {"id": PERSON, "name": NAME})
    assert sent, "the designation notified its implementing departments"
    assert all(m["v"] == 2 and m["name"] is None for m in sent)
    assert all(m["masked_code"] == "110105********002X" for m in sent)
    applied, not_applicable = sent[0], sent[1]
    answers = []
    for i, (notice, fields) in enumerate(
        [
            (applied, {"outcome": "applied", "business_reference": CASE, "applied_on": "2026-04-21"}),
            (not_applicable, {"outcome": "not_applicable", "reason": WHY}),
        ]
    ):
        answers.append(
            {
                "submission_id": f"FB-PRIV-{i}",
                "department": notice["department"],
                "action": "report_feedback",
                "subject": {"key": notice["subject_key"]},
                "occurred_at": "2026-04-21T08:00:00+08:00",
                "feedback": {"feedback_id": f"FK-PRIV-{i}", "notice_id": notice["notice_id"], **fields},
            }
        )
    platform.clock.set("2026-04-21T09:00:00+08:00")
    outcomes = platform.submit(*answers)
    assert [o.status for o in outcomes] == ["accepted", "accepted"], [o.reason for o in outcomes]
    topics = {topic for topic, _, _ in platform.producer.sent}
    assert {"credit.ledger", "credit.measures"} <= topics

    assert platform.leaks(CASE.encode(), WHY.encode()) == [], "the name, the case number, the reason"
    rows = platform.store.subject_notices(applied["subject_key"])
    assert {r["feedback"] for r in rows} >= {"applied", "not_applicable"}, "the rows say what was answered"
    desk = Principal("desk", "administrator", "credit_platform")
    seen = platform.queries.status(desk, PERSON, purpose="supervision_inspection", basis="test")
    assert seen.ok, seen.body
    assert NAME in orjson.dumps(seen.body).decode(), "the platform's recorded answer opens them"


def test_an_organisations_notice_names_it_in_clear_as_its_public_list_entry_does(platform: Platform) -> None:
    name = "福州某某贸易有限公司"
    sent = designated(platform, {"id": "91350100M000100Y43", "name": name})
    assert sent
    assert all(m["name"] == name for m in sent), "an organisation's name is public by law"
    responsible = "李四".encode()  # a natural person named on the organisation's record
    assert not [where for where, data in platform.raw_bytes() if responsible in data]


def test_submissions_sent_over_http_are_sealed_in_the_inbox_and_drained_as_received(
    platform: Platform, tmp_path: Path
) -> None:
    """The inbox (POST /v1/submissions) holds each submission sealed under its department's monthly
    inbox key, bound to its position; the relay opens it as it drains and publishes it as received;
    the key goes after the rejected originals' retention."""
    objection = ours("raise_objection_minor")
    objection["grounds"] = GROUNDS
    sent = [ours("file_record_minor"), objection]
    desk = Desk(platform.ledger, tmp_path / "desk.sqlite", platform.clock)

    async def scenario(web: Web) -> None:
        body = b"\n".join(orjson.dumps(s) for s in sent)
        status, answer = await web.call(
            "POST", "/v1/submissions", data=body, headers={"Content-Type": "application/x-ndjson"}
        )
        assert status == 202, answer
        assert answer["queued"] == 2

    serve(desk, tmp_path, scenario)
    stored = platform.ledger.inbox.inbox_page(0, 10)
    assert [e.item.key for e in stored] == [b"", b""], "the Kafka key (the identity number) is sealed too"
    assert all(e.item.value.startswith(b"enc1:") for e in stored)
    assert [e.item.department for e in stored] == [s["department"] for s in sent]
    assert platform.leaks() == [], "the inbox holds only ciphertext"

    published: list[tuple[str, bytes, bytes, list[tuple[str, bytes]]]] = []

    async def send(topic: str, key: bytes, value: bytes, headers: list[tuple[str, bytes]]) -> Any:
        published.append((topic, key, value, headers))
        done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done

    with ThreadPoolExecutor(max_workers=1) as executor:
        drain = InboxDrain(platform.ledger, send, executor)
        assert asyncio.run(drain.run_once()) == 2
    assert [(t, orjson.loads(v)) for t, _k, v, _h in published] == [(topics.SUBMISSIONS, s) for s in sent]
    assert [k for _t, k, _v, _h in published] == [submission_key(s) for s in sent], "keyed as before"
    drained = b"".join(v for _t, _k, v, _h in published)
    assert all(s in drained for s in SECRETS.values()), "what the grep looks for was sent, in clear"
    seal = platform.ledger.inbox_seal
    sources = [seal.source(dict(h)[INBOX_HEADER], v) for _t, _k, v, h in published]
    assert sources == [inbox_source(e.position) for e in stored]
    outcomes = platform.ledger.submit([v for _t, _k, v, _h in published], sources=sources)
    assert [o.status for o in outcomes] == ["accepted", "accepted"]
    assert all(e.decided for e in platform.ledger.inbox_page(0, 10))

    moved = InboxItem(b"", stored[0].item.value, stored[0].item.department, stored[0].item.submission_id)
    with pytest.raises(SealedValueAltered, match="sealed for position"):
        platform.ledger.privacy.open_inbox(stored[1].position, moved)  # type: ignore[union-attr]

    problems, tally = check_sealed(platform.ledger)
    assert problems == []
    assert tally.opened >= 2, "verify opens the inbox rows in their place"
    with sqlite3.connect(platform.db) as c:  # an operator swaps two rows' ciphertexts
        c.execute(
            "UPDATE submission_inbox SET value = CASE position WHEN ? THEN ? ELSE ? END WHERE position IN (?, ?)",
            (
                stored[0].position,
                stored[1].item.value,
                stored[0].item.value,
                stored[0].position,
                stored[1].position,
            ),
        )
    problems, _ = check_sealed(platform.ledger)
    assert [(p.kind, p.details["inbox_position"]) for p in problems] == [
        ("sealed", e.position) for e in stored
    ]
    with sqlite3.connect(platform.db) as c:
        c.executemany(
            "UPDATE submission_inbox SET value = ? WHERE position = ?",
            [(e.item.value, e.position) for e in stored],
        )
    units = {row[2] for row in platform.ledger.data_keys.live_data_keys(stream=INBOX_STREAM)}
    assert units == {f"inbox:{s['department']}:2026-04" for s in sent}, "a department's key of the month"
    assert platform.ledger.expire_originals(date(2026, 7, 29), "2026-07-29T00:00:00+00:00") == 0
    assert platform.ledger.expire_originals(date(2026, 7, 30), "2026-07-30T00:00:00+00:00") == len(units)
    assert platform.ledger.data_keys.live_data_keys(stream=INBOX_STREAM) == []
    assert [e.item.value for e in platform.ledger.inbox_page(0, 10)] == [b"", b""], "shredded"
