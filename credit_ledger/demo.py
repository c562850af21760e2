"""`demo`: serve, and feed it realistic submissions from six departments, with a live summary.

Designations among them notify the implementing departments of their measures on credit.measures;
the demo's departments (``credit_ledger.demo_departments``, on a Faust agent) answer them, some
late, some not applicable, some never, and the scheduler reminds those overdue.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from contract import topics
from credit_ledger.config import Settings
from credit_ledger.demo_departments import respond
from credit_ledger.generator import SubmissionGenerator
from credit_ledger.output import json_line
from credit_ledger.serve import Running, banner, start
from streams.app import run_worker
from streams.clients import department_producer, publish, read_topic
from streams.measures_agent import register_feedback_agent
from streams.stopping import StopDeadline

DESIGNATION_SHARE = 0.005
"""Of the generated submissions, designations: about one a second at the default rate, each
notifying some 85 (black list) or 40 (red list) measure notices."""


@dataclass
class DemoTally:
    """What the demo has published and read back so far."""

    published: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    reasons: Counter[str] = field(default_factory=Counter)
    ledger_events: int = 0
    notices: int = 0  # notice messages on credit.measures
    feedback: int = 0  # FeedbackReported events on credit.ledger
    overdue: int = 0  # FeedbackOverdue events (the scheduler's reminders) on credit.ledger
    started: float = field(default_factory=time.monotonic)

    def line(self) -> dict[str, Any]:
        return {
            "seconds": round(time.monotonic() - self.started, 1),
            "published": self.published,
            "accepted": self.outcomes["accepted"],
            "rejected": self.outcomes["rejected"],
            "ledger_events_on_kafka": self.ledger_events,
            "notices": self.notices,
            "feedback": self.feedback,
            "overdue": self.overdue,
            "top_rejections": dict(self.reasons.most_common(3)),
        }


def demo(
    settings: Settings,
    *,
    rate: float = 200.0,
    duration: float | None = None,
    subjects: int = 2000,
    seed: int | None = None,
    as_json: bool = False,
) -> int:
    """Serve, and feed it realistic submissions from several departments, with a live summary."""
    deadline = StopDeadline()
    deadline.arm_on_ctrl_c()
    running = start(settings, http=True)
    register_feedback_agent(running.app, respond)
    running.start_children("relay", "project")
    tally = DemoTally()
    stop = threading.Event()
    banner(running)
    threads = [
        threading.Thread(
            target=_feed,
            args=(running, tally, stop),
            kwargs={"rate": rate, "subjects": subjects, "seed": seed},
            daemon=True,
        ),
        threading.Thread(target=_count, args=(running.bootstrap, topics.OUTCOMES, tally, stop), daemon=True),
        threading.Thread(target=_count, args=(running.bootstrap, topics.LEDGER, tally, stop), daemon=True),
        threading.Thread(target=_count, args=(running.bootstrap, topics.MEASURES, tally, stop), daemon=True),
        threading.Thread(target=_report, args=(tally, stop, duration, as_json), daemon=True),
    ]
    for thread in threads:
        thread.start()
    try:
        run_worker(running.app, loglevel=settings.log_level.lower(), deadline=deadline)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=5)
        _print(tally, as_json, final=True)
        running.close()
        deadline.cancel()
    return 0


def _feed(
    running: Running, tally: DemoTally, stop: threading.Event, *, rate: float, subjects: int, seed: int | None
) -> None:
    edition = running.ledger.catalogue.edition_at(datetime.now(UTC).date())
    generator = SubmissionGenerator(
        edition,
        subjects=subjects,
        seed=seed if seed is not None else int(time.time()),
        now=datetime.now(UTC),
        bad_ratio=0.04,
        prefix=f"demo-{int(time.time())}",
        designation_share=DESIGNATION_SHARE,
    )
    chunk = max(1, int(rate / 4))
    raw = department_producer(running.bootstrap)  # sends what publish() would refuse to
    while not stop.is_set():
        began = time.monotonic()
        lines = [orjson.dumps(s) for s in generator.take(chunk)]
        report = publish(running.bootstrap, lines, topics.SUBMISSIONS)
        tally.published += report.sent
        # A misbehaving client's bytes (the publisher would refuse them): rejected, never dropped.
        raw.send(topics.SUBMISSIONS, key=b"", value=b'{"submission_id": "garbled').get(timeout=10)
        tally.published += 1
        stop.wait(max(0.0, chunk / rate - (time.monotonic() - began)))


def _count(bootstrap: str, topic: str, tally: DemoTally, stop: threading.Event) -> None:
    for record in read_topic(bootstrap, topic, follow=True, stop=stop):
        if topic == topics.LEDGER:
            tally.ledger_events += 1
            value = record.value  # orjson's compact form: the type is found without decoding
            tally.feedback += b'"type":"FeedbackReported"' in value
            tally.overdue += b'"type":"FeedbackOverdue"' in value
            continue
        if topic == topics.MEASURES:
            tally.notices += b'"type":"notice"' in record.value
            continue
        outcome = orjson.loads(record.value)
        tally.outcomes[outcome["status"]] += 1
        if outcome["status"] == "rejected":
            tally.reasons[outcome["reason"]["code"]] += 1


def _report(tally: DemoTally, stop: threading.Event, duration: float | None, as_json: bool) -> None:
    deadline = None if duration is None else time.monotonic() + duration
    while not stop.wait(2.0):
        _print(tally, as_json)
        if deadline is not None and time.monotonic() >= deadline:
            os.kill(os.getpid(), signal.SIGTERM)  # the worker stops cleanly on SIGTERM
            return


def _print(tally: DemoTally, as_json: bool, *, final: bool = False) -> None:
    line = tally.line()
    if as_json:
        json_line({"final": final, **line})
        return
    reasons = ", ".join(f"{k} {v}" for k, v in line["top_rejections"].items()) or "-"
    print(
        f"{'final' if final else 'live '} {line['seconds']:>6.1f}s  published {line['published']:>6}  "
        f"accepted {line['accepted']:>6}  rejected {line['rejected']:>5}  "
        f"ledger events on kafka {line['ledger_events_on_kafka']:>6}  notices {line['notices']:>5}  "
        f"feedback {line['feedback']:>5}  overdue {line['overdue']:>4}  top rejections: {reasons}",
        flush=True,
    )
