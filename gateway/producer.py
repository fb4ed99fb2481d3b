"""The Kafka producer: idempotent, acks=all, and no answer before Kafka's own."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

from confluent_kafka import KafkaError, KafkaException, Message, Producer

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class OutgoingRecord:
    topic: str
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]


@dataclass(frozen=True)
class Delivery:
    """Kafka's answer for one record: its place in the log, or the error."""

    topic: str
    partition: int | None
    offset: int | None
    error: str | None

    @property
    def delivered(self) -> bool:
        return self.error is None and self.offset is not None


class ActivityProducer:
    """One librdkafka producer per process, shared by the request threads."""

    def __init__(self, bootstrap: str, delivery_timeout_s: float) -> None:
        self._timeout = delivery_timeout_s
        self._producer = Producer(
            {
                "bootstrap.servers": bootstrap,
                "enable.idempotence": True,
                "acks": "all",
                # Give up on a record inside the request's own deadline, so that a
                # request never waits on librdkafka's 300 s default.
                "delivery.timeout.ms": int(delivery_timeout_s * 1000),
                "linger.ms": 2,
                "client.id": "gatekeeper-gateway",
            }
        )

    def send(self, records: Sequence[OutgoingRecord]) -> list[Delivery]:
        """Produce every record and wait for each one's acknowledgement or failure.

        A record without an answer when the deadline passes is reported with an error:
        its outcome is unknown, it may still reach the log.
        """
        deliveries: list[Delivery | None] = [None] * len(records)

        def on_delivery(index: int):
            def callback(error: KafkaError | None, message: Message) -> None:
                deliveries[index] = Delivery(
                    message.topic(),
                    message.partition() if error is None else None,
                    message.offset() if error is None else None,
                    str(error) if error is not None else None,
                )

            return callback

        for index, record in enumerate(records):
            self._produce(record, on_delivery(index))

        deadline = time.monotonic() + self._timeout
        while any(d is None for d in deliveries) and time.monotonic() < deadline:
            self._producer.poll(0.05)

        return [
            d or Delivery(r.topic, None, None, "no acknowledgement before the deadline")
            for d, r in zip(deliveries, records, strict=True)
        ]

    def _produce(self, record: OutgoingRecord, callback) -> None:
        while True:
            try:
                self._producer.produce(
                    record.topic,
                    key=record.key,
                    value=record.value,
                    headers=record.headers,
                    on_delivery=callback,
                )
                return
            except BufferError:
                # The local queue is full: let librdkafka drain it, then retry.
                self._producer.poll(0.1)

    def is_reachable(self, timeout: float = 2.0) -> bool:
        try:
            metadata = self._producer.list_topics(timeout=timeout)
        except KafkaException:
            return False
        return bool(metadata.brokers)

    def close(self, timeout: float = 10.0) -> None:
        """Flush what is queued; called when the serving process shuts down."""
        remaining = self._producer.flush(timeout)
        if remaining:
            logger.warning("producer closed with records=%d undelivered", remaining)
