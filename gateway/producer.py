"""The Kafka producer: idempotent, acks=all, and no answer before Kafka's own.

One librdkafka producer per process serves every request thread. A background
thread polls it, so each delivery report reaches its request as soon as Kafka
answers; a request waits on its own event, never on another request's poll.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

from confluent_kafka import KafkaError, KafkaException, Message, Producer

logger = logging.getLogger(__name__)

# The poll thread's wait for events; it bounds only how fast close() is noticed.
POLL_INTERVAL_S = 0.1

# librdkafka checks message timeouts about once a second, so a request waits this
# much past delivery.timeout.ms for the reports of records that timed out.
REPORT_GRACE_S = 1.5


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
        return self.error is None and self.offset is not None and self.offset >= 0


class _Pending:
    """The delivery reports one request waits for."""

    def __init__(self, count: int) -> None:
        self.deliveries: list[Delivery | None] = [None] * count
        self._left = count
        self._lock = threading.Lock()
        self.done = threading.Event()
        if count == 0:
            self.done.set()

    def report(self, index: int, delivery: Delivery) -> None:
        with self._lock:
            self.deliveries[index] = delivery
            self._left -= 1
            if self._left == 0:
                self.done.set()


class ActivityProducer:
    """One idempotent producer per process, shared by the request threads."""

    def __init__(self, bootstrap: str, delivery_timeout_s: float) -> None:
        self._timeout = delivery_timeout_s
        self._settings = {
            "bootstrap.servers": bootstrap,
            "enable.idempotence": True,
            "acks": "all",
            # Give up on a record inside the request's own deadline, so that a
            # request never waits on librdkafka's 300 s default.
            "delivery.timeout.ms": int(delivery_timeout_s * 1000),
            # Concurrent requests share batches; 2 ms adds little latency.
            "linger.ms": 2,
            "client.id": "gatekeeper-gateway",
            "error_cb": self._on_error,
        }
        self._client_logger = logging.getLogger(f"{__name__}.librdkafka")
        self._fatal = False
        self._swap_lock = threading.Lock()
        self._producer = self._new_producer()
        self._closed = threading.Event()
        self._poller = threading.Thread(
            target=self._poll_forever, name="kafka-poll", daemon=True
        )
        self._poller.start()

    def __repr__(self) -> str:
        state = "closed" if self._closed.is_set() else "open"
        return f"<ActivityProducer timeout={self._timeout}s {state}>"

    def send(self, records: Sequence[OutgoingRecord]) -> list[Delivery]:
        """Produce every record and wait for each one's acknowledgement or failure.

        A record without an answer when the deadline passes is reported with an
        error: its outcome is unknown, it may still reach the log.
        """
        if self._fatal:
            self._replace_after_fatal_error()
        pending = _Pending(len(records))
        for index, record in enumerate(records):
            try:
                self._produce(record, _reporter(pending, index))
            except KafkaException as exc:
                pending.report(index, Delivery(record.topic, None, None, str(exc)))

        pending.done.wait(self._timeout + REPORT_GRACE_S)
        return [
            d or Delivery(r.topic, None, None, "no acknowledgement before the deadline")
            for d, r in zip(list(pending.deliveries), records, strict=True)
        ]

    def _produce(self, record: OutgoingRecord, callback) -> None:
        deadline = time.monotonic() + self._timeout
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
                # The local queue is full: wait for the poll thread to drain it.
                if time.monotonic() > deadline:
                    raise KafkaException(
                        KafkaError(KafkaError._QUEUE_FULL, "local queue full")
                    ) from None
                time.sleep(0.01)

    def is_reachable(self, timeout: float = 2.0) -> bool:
        try:
            metadata = self._producer.list_topics(timeout=timeout)
        except KafkaException:
            return False
        return bool(metadata.brokers)

    def close(self, timeout: float = 10.0) -> None:
        """Flush what is queued; called when the serving process shuts down."""
        if self._closed.is_set():
            return
        self._closed.set()
        self._poller.join()
        remaining = self._producer.flush(timeout)
        if remaining:
            logger.warning("producer closed with records=%d undelivered", remaining)
        else:
            logger.info("producer flushed and closed")

    def _new_producer(self) -> Producer:
        """librdkafka's own log lines go through ``logging``, like every other."""
        return Producer(self._settings, logger=self._client_logger)

    def _on_error(self, error: KafkaError) -> None:
        """librdkafka's client-level errors; failed records are reported per request.

        After a fatal error (the idempotent producer lost its sequence state) the
        instance refuses every record, so the next request replaces it.
        """
        fatal = error.fatal()
        self._fatal = self._fatal or fatal
        logger.log(
            logging.ERROR if fatal else logging.WARNING,
            "kafka error code=%s fatal=%s reason=%s",
            error.name(),
            fatal,
            error.str(),
        )

    def _replace_after_fatal_error(self) -> None:
        with self._swap_lock:
            if not self._fatal:
                return
            failed, self._producer = self._producer, self._new_producer()
            self._fatal = False
        failed.purge()
        failed.poll(0)
        logger.warning("kafka producer replaced after a fatal error")

    def _poll_forever(self) -> None:
        while not self._closed.is_set():
            self._producer.poll(POLL_INTERVAL_S)


def _reporter(pending: _Pending, index: int):
    def report(error: KafkaError | None, message: Message) -> None:
        if error is None:
            delivery = Delivery(
                message.topic(), message.partition(), message.offset(), None
            )
        else:
            delivery = Delivery(message.topic(), None, None, str(error))
        pending.report(index, delivery)

    return report
