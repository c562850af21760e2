"""The topic contract: every credit.* topic's name, partitions and retention (created by streams.admin)."""

from __future__ import annotations

from dataclasses import dataclass, field

SUBMISSIONS = "credit.submissions"
REJECTIONS = "credit.rejections"
LEDGER = "credit.ledger"
LIST_CHANGES = "credit.list-changes"
QUERY_AUDIT = "credit.query-audit"
DIGESTS = "credit.digests"
OUTCOMES = "credit.outcomes"
MEASURES = "credit.measures"
DEAD_LETTERS = "credit.dead-letters"

ALL_TOPICS: tuple[str, ...] = (
    SUBMISSIONS,
    REJECTIONS,
    OUTCOMES,
    LEDGER,
    LIST_CHANGES,
    MEASURES,
    QUERY_AUDIT,
    DIGESTS,
    DEAD_LETTERS,
)
"""Every topic of the contract, in the order data flows through them (dead letters last: they
are what fell out of every flow)."""

DEFAULT_PARTITIONS = 6
"""Partitions per topic: the unit of parallelism (one worker per partition at most)."""

DAY_MS = 24 * 60 * 60 * 1000

SUBMISSIONS_RETENTION_DAYS = 30
"""Raw submissions are an inbox, not a record: each one's outcome lives on, forever, in the
ledger or on ``credit.rejections``. Thirty days outlasts any outage the intake may have (a
department's messages wait for it) and leaves time to re-run intake after a fix."""

REJECTIONS_RETENTION_DAYS = 365
"""Departments read their rejections back, correct and resubmit, and reconcile what they sent
against its outcomes; a year covers the annual reporting cycle. Rejections are few, so a year
costs little. (The intake must not rely on this topic to answer a redelivered submission:
its own store remembers each submission id's outcome.)"""

KEEP_FOREVER: dict[str, str] = {
    # Delete, never compact: every topic is keyed by subject, and compaction would keep only
    # each subject's latest message, erasing the history the ledger promises to keep.
    "cleanup.policy": "delete",
    "retention.ms": "-1",
    "retention.bytes": "-1",
}


def _kept_for(days: int) -> dict[str, str]:
    return {"cleanup.policy": "delete", "retention.ms": str(days * DAY_MS), "retention.bytes": "-1"}


@dataclass(frozen=True)
class TopicSpec:
    """One topic of the contract: what it carries and how the broker must keep it."""

    name: str
    partitions: int
    configs: dict[str, str] = field(hash=False)
    description: str
    replication_factor: int = 1


def topic_specs(partitions: int = DEFAULT_PARTITIONS, replication_factor: int = 1) -> list[TopicSpec]:
    """The nine topics, all with ``partitions`` partitions, keyed by subject.

    ``credit.ledger``, ``credit.list-changes``, ``credit.measures``, ``credit.query-audit``,
    ``credit.digests`` and ``credit.dead-letters`` are kept forever: the ledger is replayed by
    auditors and projections from offset 0, list-change and measure subscribers may start from
    the beginning, the audit trail and digests are evidence, and a dead letter is a message some
    flow could not decide: it stays until an engineer has looked at it, and after that as the
    record of what happened (never compacted: two letters about one subject are two events).
    Submissions and rejections are kept for a bounded time (see
    ``SUBMISSIONS_RETENTION_DAYS`` and ``REJECTIONS_RETENTION_DAYS``).

    With ``replication_factor >= 3`` each topic also requires two in-sync replicas, so a
    write acknowledged with ``acks=all`` survives the loss of a broker.
    """
    if partitions < 1:
        raise ValueError(f"partitions must be at least 1, got {partitions}")
    if replication_factor < 1:
        raise ValueError(f"replication_factor must be at least 1, got {replication_factor}")
    durability = {"min.insync.replicas": "2"} if replication_factor >= 3 else {}

    def spec(name: str, configs: dict[str, str], description: str) -> TopicSpec:
        return TopicSpec(
            name=name,
            partitions=partitions,
            configs={**configs, **durability},
            description=description,
            replication_factor=replication_factor,
        )

    return [
        spec(
            SUBMISSIONS,
            _kept_for(SUBMISSIONS_RETENTION_DAYS),
            "Raw submissions from departments, one JSON object per message, keyed by subject.",
        ),
        spec(
            REJECTIONS,
            _kept_for(REJECTIONS_RETENTION_DAYS),
            "One rejection per bad submission, with the reason (code, field, sentence).",
        ),
        spec(
            OUTCOMES,
            _kept_for(REJECTIONS_RETENTION_DAYS),
            "One outcome per submission, accepted (with its event ids) or rejected (with the reason).",
        ),
        spec(
            LEDGER,
            KEEP_FOREVER,
            "Every accepted ledger event in per-subject order, relayed from the event store.",
        ),
        spec(
            LIST_CHANGES,
            KEEP_FOREVER,
            "Red-list and black-list entries and exits, for subscribers that act on them.",
        ),
        spec(
            MEASURES,
            KEEP_FOREVER,
            "Joint reward and sanction measure notices per implementing department, keyed by subject.",
        ),
        spec(
            QUERY_AUDIT,
            KEEP_FOREVER,
            "One record per status query, allowed or denied: who, why, about whom, when.",
        ),
        spec(
            DIGESTS,
            KEEP_FOREVER,
            "Periodic digests of the whole ledger that an auditor can pin and check later.",
        ),
        spec(
            DEAD_LETTERS,
            KEEP_FOREVER,
            "Messages a flow could not decide, parked with their position, error class and correlation id.",
        ),
    ]
