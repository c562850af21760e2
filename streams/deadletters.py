"""credit.dead-letters read back: what /v1/health reports, and how on-call lists and acknowledges them.

Run ``python -m streams.deadletters list --bootstrap HOST:PORT`` to print the letters not yet
acknowledged (JSON lines), and ``... acknowledge --bootstrap HOST:PORT`` to acknowledge every letter
read, which is what ends health's ``dead_letters`` problem. Acknowledged means: the consumer group
``credit-ledger.dead-letters`` has committed offsets past the letter. Nothing is ever deleted.
"""

from __future__ import annotations

import asyncio
import bisect
import logging
import sys
import time
from collections import Counter, deque
from collections.abc import Iterator
from typing import Any

import click
import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from mode import Service

from contract import topics
from contract.deadletters import FLOWS

log = logging.getLogger(__name__)

ACK_GROUP = "credit-ledger.dead-letters"
"""Its committed offsets are the acknowledgements: a letter below them has been seen to."""

ACK_POLL_SECONDS = 2.0
KEEP = 5


def _letter_summary(partition: int, offset: int, letter: dict[str, Any]) -> dict[str, Any]:
    """A letter as health shows it: where it came from and why, never its payload."""
    return {
        "flow": letter.get("flow"),
        "source": letter.get("source"),
        "error": letter.get("error"),
        "reason": letter.get("reason"),
        "correlation_id": letter.get("correlation_id"),
        "parked_at": letter.get("parked_at"),
        "receipt": letter.get("receipt"),
        "letter": {"partition": partition, "offset": offset},
    }


async def _assigned(consumer: AIOKafkaConsumer, timeout: float) -> list[TopicPartition]:
    """Every partition of credit.dead-letters, assigned to ``consumer`` (no group membership)."""
    deadline = time.monotonic() + timeout
    while not (found := consumer.partitions_for_topic(topics.DEAD_LETTERS)):
        if time.monotonic() > deadline:
            raise LookupError(f"topic {topics.DEAD_LETTERS} does not exist")
        await consumer._client.force_metadata_update()  # aiokafka has no public call for it
        await asyncio.sleep(0.2)
    partitions = [TopicPartition(topics.DEAD_LETTERS, p) for p in sorted(found)]
    consumer.assign(partitions)
    return partitions


class DeadLetterWatch(Service):
    """Follows credit.dead-letters from the beginning and the acknowledgements, for /v1/health.

    Every worker that serves HTTP runs one, so each health answer covers every flow and worker.
    The topic is read with an assigned consumer (no group): a group would give each worker only a
    share of the partitions. Letters are few; each partition keeps only the offsets and flows.
    """

    def __init__(self, bootstrap: str, *, keep: int = KEEP, **kwargs: Any) -> None:
        self.bootstrap = bootstrap
        self.keep = keep
        self.offsets: dict[int, list[tuple[int, str]]] = {}  # partition -> [(offset, flow)] in order
        self.acknowledged: dict[int, int] = {}  # partition -> committed offset of the ack group
        self.last: deque[dict[str, Any]] = deque(maxlen=keep)
        self.error: str | None = None
        self.consumer: AIOKafkaConsumer | None = None
        super().__init__(**kwargs)

    async def on_stop(self) -> None:
        if self.consumer is not None:
            await self.consumer.stop()

    @Service.task
    async def _follow(self) -> None:
        while not self.should_stop:
            try:
                await self._read()
            except Exception as exc:  # health reports it; the watch tries again
                self.error = f"{type(exc).__name__}: {exc}"
                log.warning("cannot read %s: %s", topics.DEAD_LETTERS, self.error)
                if self.consumer is not None:
                    await self.consumer.stop()
                    self.consumer = None
                await self.sleep(ACK_POLL_SECONDS)

    async def _read(self) -> None:
        self.consumer = consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap, group_id=ACK_GROUP, enable_auto_commit=False
        )
        await consumer.start()
        partitions = await _assigned(consumer, timeout=30.0)
        for tp in partitions:  # from the beginning, or after what an earlier connection read
            read = self.offsets.get(tp.partition)
            if read:
                consumer.seek(tp, read[-1][0] + 1)
            else:
                await consumer.seek_to_beginning(tp)
        polled = float("-inf")
        while not self.should_stop:
            fetched = await consumer.getmany(timeout_ms=500, max_records=1000)
            for tp in sorted(fetched):
                for record in fetched[tp]:
                    self.add(tp.partition, record.offset, record.value)
            if time.monotonic() - polled >= ACK_POLL_SECONDS:
                for tp in partitions:
                    self.acknowledged[tp.partition] = int(await consumer.committed(tp) or 0)
                polled = time.monotonic()
                self.error = None

    def add(self, partition: int, offset: int, value: bytes | None) -> None:
        try:
            letter = orjson.loads(value or b"")
        except orjson.JSONDecodeError:
            letter = {"flow": "unknown", "reason": "not a dead letter (not JSON)"}
        flow = str(letter.get("flow")) if isinstance(letter, dict) else "unknown"
        self.offsets.setdefault(partition, []).append((offset, flow))
        self.last.append(_letter_summary(partition, offset, letter if isinstance(letter, dict) else {}))

    def _unacknowledged(self) -> Iterator[str]:
        for partition, letters in self.offsets.items():
            first = bisect.bisect_left(letters, (self.acknowledged.get(partition, 0), ""))
            for _, flow in letters[first:]:
                yield flow

    def summary(self) -> dict[str, Any]:
        """Counts per flow, new (unacknowledged) ones among them, and the last few letters."""
        total = Counter(flow for letters in self.offsets.values() for _, flow in letters)
        new = Counter(self._unacknowledged())
        last = [
            {
                **entry,
                "acknowledged": entry["letter"]["offset"]
                < self.acknowledged.get(entry["letter"]["partition"], 0),
            }
            for entry in reversed(self.last)
        ]
        return {
            "total": sum(total.values()),
            "unacknowledged": sum(new.values()),
            "by_flow": {
                flow: {"total": total[flow], "unacknowledged": new[flow]}
                for flow in (*FLOWS, *sorted(set(total) - set(FLOWS)))
            },
            "last": last,
            "error": self.error,
        }


async def read_letters(bootstrap: str, *, everything: bool, idle: float, acknowledge: bool) -> int:
    """Print the letters after the acknowledged offsets (or all) as JSON lines; with ``acknowledge``
    commit past every letter read. The end is where fetches came back empty for ``idle`` seconds,
    never an end offset (the embedded broker under-reports them)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=ACK_GROUP, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = await _assigned(consumer, timeout=10.0)
        for tp in partitions:
            committed = None if everything else await consumer.committed(tp)
            if committed is None:
                await consumer.seek_to_beginning(tp)
            else:
                consumer.seek(tp, committed)
        read: dict[TopicPartition, int] = {}
        count, last = 0, time.monotonic()
        while time.monotonic() - last < idle:
            fetched = await consumer.getmany(timeout_ms=200, max_records=1000)
            for tp in sorted(fetched):
                for record in fetched[tp]:
                    letter = orjson.loads(record.value)
                    sys.stdout.write(
                        orjson.dumps(
                            {"letter": {"partition": tp.partition, "offset": record.offset}, **letter}
                        ).decode()
                        + "\n"
                    )
                    read[tp] = record.offset + 1
                    count += 1
                last = time.monotonic()
        if acknowledge and read:
            await consumer.commit(read)
        return count
    finally:
        await consumer.stop()


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("action", type=click.Choice(["list", "acknowledge"]))
@click.option(
    "--bootstrap", required=True, metavar="HOST:PORT", help="the Kafka address (serve's banner shows it)"
)
@click.option("--all", "everything", is_flag=True, help="list: acknowledged letters too")
@click.option(
    "--idle",
    type=float,
    default=2.0,
    show_default=True,
    metavar="SECONDS",
    help="seconds of empty fetches that end the read",
)
def main(action: str, bootstrap: str, everything: bool, idle: float) -> None:
    """List the dead letters not yet acknowledged (JSON lines), or acknowledge every letter read."""
    acknowledge = action == "acknowledge"
    count = asyncio.run(read_letters(bootstrap, everything=everything, idle=idle, acknowledge=acknowledge))
    sys.stderr.write(f"{count} dead letter(s) {'acknowledged' if acknowledge else 'listed'}\n")


if __name__ == "__main__":
    main(prog_name="python -m streams.deadletters")
