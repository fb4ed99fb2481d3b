"""The worker process: consume activity records and apply them to PostgreSQL.

Start it with ``python -m worker``; several processes share the partitions as one
consumer group.
"""

from __future__ import annotations

import logging
import signal
import time

import psycopg2
import psycopg2.extras
from confluent_kafka import (
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, NewTopic

from contracts.catalogue import load_catalogue
from contracts.registry import connect
from worker.config import WorkerConfig
from worker.decoding import DecodeError, Decoder
from worker.tables import ensure_bookkeeping, ensure_table
from worker.writer import OffsetConflictError, Reject, Writer

logger = logging.getLogger(__name__)

# Partitions of a topic the worker creates; the upper bound of worker processes
# that share one table's records.
TOPIC_PARTITIONS = 3


class Worker:
    def __init__(self, config: WorkerConfig) -> None:
        self.config = config
        self.catalogue = load_catalogue(config.contracts_dir)
        self.conn = psycopg2.connect(config.database_url)
        psycopg2.extras.register_uuid(conn_or_curs=self.conn)
        self.writer = Writer(self.conn, config.db_schema)
        registry = connect(config.registry_url)
        self.decoder = Decoder(registry, self.catalogue)
        self.expected: dict[tuple[str, int], int | None] = {}
        self.running = True
        self.consumer = Consumer(
            {
                "bootstrap.servers": config.kafka_bootstrap,
                "group.id": config.group_id,
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "topic.metadata.refresh.interval.ms": 5000,
            }
        )

    def prepare(self) -> None:
        """Create the bookkeeping tables and a table per contract."""
        ensure_bookkeeping(self.conn)
        for contract in self.catalogue.values():
            ensure_table(self.conn, contract, self.config.db_schema)
        ensure_topics(self.config.kafka_bootstrap, self.topics, TOPIC_PARTITIONS)

    @property
    def topics(self) -> list[str]:
        return [contract.topic for contract in self.catalogue.values()]

    def on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """Start every assigned partition at the offset stored with the rows."""
        stored = self.writer.stored_offsets((p.topic, p.partition) for p in partitions)
        for p in partitions:
            offset = stored[(p.topic, p.partition)]
            self.expected[(p.topic, p.partition)] = offset
            if offset is not None:
                p.offset = offset
            logger.info(
                "assigned topic=%s partition=%d offset=%s", p.topic, p.partition, offset
            )
        consumer.assign(partitions)

    def on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        for p in partitions:
            self.expected.pop((p.topic, p.partition), None)
            logger.info("revoked topic=%s partition=%d", p.topic, p.partition)

    def run(self) -> None:
        self.prepare()
        self.consumer.subscribe(
            self.topics, on_assign=self.on_assign, on_revoke=self.on_revoke
        )
        logger.info(
            "worker started bootstrap=%s group=%s schema=%s",
            self.config.kafka_bootstrap,
            self.config.group_id,
            self.config.db_schema,
        )
        try:
            while self.running:
                messages = self.consumer.consume(
                    self.config.batch_max_records, self.config.batch_max_wait_s
                )
                if messages:
                    self.process(messages)
        finally:
            self.consumer.close()
            self.conn.close()
            logger.info("worker stopped")

    def process(self, messages: list[Message]) -> None:
        """1. decode, 2. apply with the offsets, 3. commit to Kafka for lag tooling."""
        changes, rejects, next_offsets = [], [], {}
        for message in messages:
            if message.error():
                if message.error().code() != KafkaError._PARTITION_EOF:
                    logger.warning("consume error: %s", message.error())
                continue
            tp = (message.topic(), message.partition())
            next_offsets[tp] = message.offset() + 1
            try:
                changes.append(self.decoder.decode(message))
            except DecodeError as exc:
                rejects.append(_raw_reject(message, str(exc)))

        if not next_offsets:
            return
        started = time.monotonic()
        try:
            rejected = self.writer.apply(changes, rejects, self.expected, next_offsets)
        except OffsetConflictError as exc:
            logger.warning("%s; rolled back, seeking to the stored offsets", exc)
            self.seek_to_stored(list(next_offsets))
            return

        self.expected.update(next_offsets)
        self.consumer.commit(
            offsets=[TopicPartition(t, p, o) for (t, p), o in next_offsets.items()],
            asynchronous=True,
        )
        logger.info(
            "batch committed records=%d rejected=%d seconds=%.3f",
            len(changes) + len(rejects),
            len(rejected),
            time.monotonic() - started,
        )

    def seek_to_stored(self, partitions: list[tuple[str, int]]) -> None:
        stored = self.writer.stored_offsets(partitions)
        for (topic, partition), offset in stored.items():
            self.expected[(topic, partition)] = offset
            if offset is not None:
                self.consumer.seek(TopicPartition(topic, partition, offset))

    def stop(self, *_: object) -> None:
        logger.info("stop requested; finishing the current batch")
        self.running = False


def ensure_topics(bootstrap: str, topics: list[str], partitions: int) -> None:
    """Create the contract topics that do not exist yet, so subscribing finds them."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    existing = admin.list_topics(timeout=10).topics
    missing = [NewTopic(t, partitions) for t in topics if t not in existing]
    for topic, future in admin.create_topics(missing).items() if missing else ():
        try:
            future.result()
            logger.info("created topic=%s partitions=%d", topic, partitions)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise


def _raw_reject(message: Message, reason: str) -> Reject:
    headers = {
        k: (v or b"").decode(errors="replace") for k, v in message.headers() or []
    }
    logger.warning(
        "rejected topic=%s partition=%d offset=%d: %s",
        message.topic(),
        message.partition(),
        message.offset(),
        reason,
    )
    return Reject(
        message.topic(),
        message.partition(),
        message.offset(),
        reason,
        message.key(),
        message.value(),
        headers,
    )


def main() -> None:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    worker = Worker(WorkerConfig.from_env())
    signal.signal(signal.SIGTERM, worker.stop)
    signal.signal(signal.SIGINT, worker.stop)
    worker.run()
