"""The one producer factory: acks=all, idempotent where the broker supports it, records within a request."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import (
    CorruptRecordException,
    InvalidTimestampError,
    KafkaConnectionError,
    KafkaError,
    MessageSizeTooLargeError,
    RecordListTooLargeError,
)
from mode import Service

log = logging.getLogger(__name__)
_SENDER_LOG = logging.getLogger("aiokafka.producer.sender")

MAX_BATCH_BYTES = 512 * 1024
"""Largest batch of records a producer puts in one partition's share of a produce request."""

MAX_REQUEST_BYTES = 1024 * 1024
"""Largest record the platform publishes: aiokafka's default ``max_request_size``, and just under
Apache Kafka's default ``message.max.bytes`` (1,048,588). Records over it are dead-lettered."""

LINGER_MS = 5

RECORD_ERRORS = (
    MessageSizeTooLargeError,
    RecordListTooLargeError,
    CorruptRecordException,
    InvalidTimestampError,
)
"""What a broker (or the producer, before sending) says about one record that it will never take."""


def producer_settings(bootstrap: str, *, idempotent: bool) -> dict[str, Any]:
    """What every producer of the platform is configured with (``start_producer`` picks ``idempotent``)."""
    return {
        "bootstrap_servers": bootstrap,
        "acks": "all",
        "enable_idempotence": idempotent,
        "linger_ms": LINGER_MS,
        "max_batch_size": MAX_BATCH_BYTES,
        "max_request_size": MAX_REQUEST_BYTES,
    }


async def start_producer(bootstrap: str, *, idempotent: bool | None = None) -> AIOKafkaProducer:
    """A started aiokafka producer: acks=all, and idempotent when the broker grants a producer id.

    ``idempotent=None`` tries idempotence first. The embedded broker (Tansu 0.6) answers
    InitProducerId with an unknown error (measured: the start fails within 3 ms), so there the
    producer runs without it; a real Kafka cluster grants it, and then a retried produce request
    cannot write a record twice. Either way nothing relies on it: every consumer of the platform's
    topics already recognises copies (by position, version or id). A broker that cannot be reached
    is an error, not a reason to drop idempotence.
    """
    if idempotent is not False:
        producer = AIOKafkaProducer(**producer_settings(bootstrap, idempotent=True))
        quiet = _Refusal()
        _SENDER_LOG.addFilter(quiet)  # the refusal is expected and said once below, not as an error
        try:
            await producer.start()
        except KafkaConnectionError:
            await producer.stop()
            raise
        except KafkaError as exc:
            await producer.stop()
            if idempotent:
                raise
            log.info("the broker does not grant idempotent producers (%s); producing without", exc)
        else:
            return producer
        finally:
            _SENDER_LOG.removeFilter(quiet)
    producer = AIOKafkaProducer(**producer_settings(bootstrap, idempotent=False))
    await producer.start()
    return producer


class _Refusal(logging.Filter):
    """Drops aiokafka's error line for a broker that refuses InitProducerId (start_producer says why)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Unexpected error during InitProducerIdRequest")


async def send_all(producer: AIOKafkaProducer, topic: str, records: Iterable[tuple[bytes, bytes]]) -> int:
    """Send (key, value) records in order and return how many, once every one is acknowledged.

    Raises the first failure, after every acknowledgement has come in (none is left unobserved).
    """
    acks = [await producer.send(topic, value=value, key=key) for key, value in records]
    results = await asyncio.gather(*acks, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return len(acks)


async def send_all_with_headers(
    producer: AIOKafkaProducer, topic: str, records: Iterable[tuple[bytes, bytes, list[tuple[str, bytes]]]]
) -> int:
    """``send_all`` for records that carry Kafka headers ((key, value, headers) each)."""
    acks = [
        await producer.send(topic, value=value, key=key, headers=headers) for key, value, headers in records
    ]
    results = await asyncio.gather(*acks, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return len(acks)


class WorkerProducer(Service):
    """A serve worker's producer for the platform's own records (dead letters, scheduled commands).

    Started and stopped with the Faust app. HTTP submissions are not sent from the worker: the doors
    record them in the ledger's inbox and the relay publishes them (``streams.drain``).
    """

    def __init__(self, bootstrap: str, **kwargs: Any) -> None:
        self.bootstrap = bootstrap
        self.producer: AIOKafkaProducer | None = None
        self._ready = asyncio.Event()
        super().__init__(**kwargs)

    async def on_start(self) -> None:
        self.producer = await start_producer(self.bootstrap)
        self._ready.set()

    async def on_stop(self) -> None:
        if self.producer is not None:
            await self.producer.stop()

    async def send_all(self, topic: str, records: Iterable[tuple[bytes, bytes]]) -> int:
        await self._ready.wait()  # a flow may want to send while the app is still starting
        assert self.producer is not None
        return await send_all(self.producer, topic, records)

    async def send(self, topic: str, key: bytes, value: bytes) -> None:
        await self.send_all(topic, [(key, value)])
