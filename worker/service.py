"""The worker's consume loop: Kafka records in, committed batches in PostgreSQL out.

Several worker processes share the partitions as one consumer group. Each batch is
one transaction holding the rows and the next offset of every partition in it;
on assignment a partition starts at its stored offset, so a crash at any instant
neither loses nor repeats an effect. Kafka's own committed offsets follow the
database, for lag tooling only.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from typing import TypeVar

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, NewTopic

from contracts.catalogue import DLQ_TOPIC, load_catalogue
from contracts.errors import ConfigurationError
from contracts.registry import connect
from worker import metrics
from worker.config import WorkerConfig
from worker.database import Database
from worker.decoding import Decoder
from worker.errors import (
    OffsetConflictError,
    RecordRejectedError,
    TransientError,
)
from worker.evolution import Tables, TableState
from worker.offsets import stored_offsets
from worker.records import Change, Record, Reject, RejectCode
from worker.records import TopicPartition as TP
from worker.rejects import DeadLetters, mark_resumed, store_table_stopped
from worker.retry import retrying
from worker.schemas import Schemas
from worker.wire import schema_id_of
from worker.writer import Batch, Outcome, Writer

logger = logging.getLogger(__name__)

T = TypeVar("T")

# Partitions of a contract topic the worker creates: the most worker processes
# that can share one table's records.
TOPIC_PARTITIONS = 3


class Worker:
    """One worker process: a consumer, a database connection and a registry client."""

    def __init__(self, config: WorkerConfig) -> None:
        self.config = config
        catalogue = load_catalogue(config.contracts_dir)
        if not catalogue:
            raise ConfigurationError(
                f"no contracts (*.avsc) in {config.contracts_dir}; set "
                "GATEKEEPER_CONTRACTS_DIR to the folder of the contracts"
            )
        self.db = Database(config.database_url, application_name(config))
        schemas = Schemas(connect(config.registry_url))
        self.tables = Tables(
            self.db, schemas, catalogue, config.db_schema, config.recheck_interval_s
        )
        self.decoder = Decoder(schemas, self.tables)
        self.writer = Writer(self.db, config.db_schema)
        self.dead_letters = DeadLetters(config.kafka_bootstrap, config.group_id)
        self.expected: dict[TP, int | None] = {}
        self.paused: set[TP] = set()
        self._stop = threading.Event()
        self._recheck_at = 0.0
        self.consumer = Consumer(_consumer_config(config))

    def __repr__(self) -> str:
        state = "running" if self.running else "stopping"
        group, count = self.config.group_id, len(self.expected)
        return f"<Worker group={group} partitions={count} {state}>"

    @property
    def running(self) -> bool:
        return not self._stop.is_set()

    @property
    def topics(self) -> list[str]:
        return list(self.tables.states)

    def stop(self) -> None:
        """Ask the loop to finish its batch, commit and leave the group."""
        if self.running:
            logger.info("stop requested; finishing the current batch")
        self._stop.set()

    def run(self) -> None:
        """1. prepare tables and topics, 2. subscribe, 3. apply batches until
        stopped, 4. leave the group."""
        logger.info(
            "worker starting %s",
            " ".join(f"{k}={v}" for k, v in self.config.describe().items()),
        )
        try:
            self._retry(self._prepare, "preparing tables and topics")
            self.consumer.subscribe(
                self.topics,
                on_assign=self._on_assign,
                on_revoke=self._on_revoke,
                on_lost=self._on_revoke,
            )
            logger.info("worker started topics=%s", ",".join(self.topics))
            while self.running:
                self._step()
        except TransientError as exc:
            if self.running:
                raise
            logger.warning(
                "stopped during an outage; nothing uncommitted is lost: %s", exc
            )
        finally:
            self._close()

    def _step(self) -> None:
        messages = self.consumer.consume(
            self.config.batch_max_records, self.config.batch_max_wait_s
        )
        records = self._records(messages)
        if records:
            self._retry(lambda: self._process(records), "applying a batch")
        stopped = self.tables.stopped or self.paused
        if stopped and time.monotonic() >= self._recheck_at:
            self._recheck_at = time.monotonic() + self.config.recheck_interval_s
            self._retry(self._resume_fixed_tables, "re-checking stopped tables")

    def _retry(self, call: Callable[[], T], what: str) -> T:
        return retrying(self._stop, call, what)

    def _prepare(self) -> None:
        self.tables.prepare()
        ensure_topics(
            self.config.kafka_bootstrap, [*self.topics, DLQ_TOPIC], TOPIC_PARTITIONS
        )

    # --- a batch ------------------------------------------------------------------

    def _process(self, records: Sequence[Record]) -> None:
        """1. evolve tables for new versions, 2. hold back stopped tables, 3. decode,
        4. apply with the offsets and the dead letters, 5. commit to Kafka, 6. report.
        """
        started = time.monotonic()
        self.tables.observe(records)
        records = self._hold_stopped(records)
        if not records:
            return

        changes, rejects = self._decode(records)
        next_offsets: dict[TP, int] = {}
        for record in records:
            next_offsets[record.topic_partition] = record.offset + 1
        batch = Batch(changes, rejects, next_offsets)
        try:
            outcome = self.writer.commit(
                batch, self.tables.by_table, self.expected, self.dead_letters.send
            )
        except OffsetConflictError as exc:
            metrics.OFFSET_CONFLICTS.inc()
            logger.warning("batch rolled back, seeking to the stored offsets: %s", exc)
            self._seek_to_stored(list(next_offsets))
            return

        self.expected.update(next_offsets)
        self._commit_to_kafka(next_offsets)
        self._report(records, outcome, time.monotonic() - started)

    def _decode(self, records: Sequence[Record]) -> tuple[list[Change], list[Reject]]:
        changes, rejects = [], []
        for record in records:
            try:
                changes.append(self.decoder.decode(record))
            except RecordRejectedError as exc:
                rejects.append(self._reject(record, exc))
        return changes, rejects

    def _reject(self, record: Record, exc: RecordRejectedError) -> Reject:
        state = self.tables.for_topic(record.topic)
        logger.warning(
            "rejected topic=%s partition=%d offset=%d table=%s code=%s: %s",
            record.topic,
            record.partition,
            record.offset,
            state.table if state else "-",
            exc.code,
            exc.reason,
        )
        table = state.table if state else None
        return Reject(record, exc.code, exc.reason, table, schema_id_of(record.value))

    def _commit_to_kafka(self, next_offsets: dict[TP, int]) -> None:
        """Kafka's offsets follow the database's, for lag tooling; never read back."""
        offsets = [TopicPartition(t, p, o) for (t, p), o in next_offsets.items()]
        try:
            self.consumer.commit(offsets=offsets, asynchronous=True)
        except KafkaException as exc:
            logger.warning("kafka offset commit failed (lag only): %s", exc)

    def _report(
        self, records: Sequence[Record], outcome: Outcome, seconds: float
    ) -> None:
        for (table, operation), count in outcome.applied.items():
            metrics.RECORDS_APPLIED.labels(table, operation).inc(count)
        for stored in outcome.rejects:
            metrics.REJECTS.labels(stored.reject.table or "-", stored.reject.code).inc()
        metrics.BATCH_RECORDS.observe(len(records))
        metrics.BATCH_SECONDS.observe(seconds)

        rejected = Counter(s.reject.record.topic_partition for s in outcome.rejects)
        for tp, (first, last, count) in _ranges(records).items():
            self._observe_lag(tp, last + 1)
            logger.info(
                "batch committed topic=%s partition=%d offsets=%d..%d table=%s "
                "records=%d rejected=%d seconds=%.3f",
                *tp,
                first,
                last,
                self.tables.states[tp[0]].table,
                count,
                rejected[tp],
                seconds,
            )

    def _observe_lag(self, tp: TP, next_offset: int) -> None:
        try:
            _, high = self.consumer.get_watermark_offsets(
                TopicPartition(*tp), cached=True
            )
        except KafkaException:
            return
        if high >= 0:
            metrics.CONSUMER_LAG.labels(*map(str, tp)).set(max(high - next_offset, 0))

    # --- stopped tables --------------------------------------------------------------

    def _hold_stopped(self, records: Sequence[Record]) -> list[Record]:
        """Keep a stopped table's records in Kafka: pause its partitions there."""
        kept, held = [], {}
        for record in records:
            state = self.tables.for_topic(record.topic)
            if state is not None and state.stopped:
                held.setdefault(record.topic_partition, (record, state))
            else:
                kept.append(record)
        for record, state in held.values():
            self._hold(record, state)
        return kept

    def _hold(self, record: Record, state: TableState) -> None:
        reject = Reject(record, RejectCode.TABLE_STOPPED, state.stopped, state.table)
        with self.db.transaction() as cur:
            new = store_table_stopped(cur, reject)
        partition = TopicPartition(record.topic, record.partition, record.offset)
        self.consumer.pause([partition])
        try:
            self.consumer.seek(partition)
        except KafkaException as exc:
            # The partition stays paused; on resume it starts at the stored offset.
            logger.warning(
                "seek failed topic=%s partition=%d: %s", *record.topic_partition, exc
            )
        self.paused.add(record.topic_partition)
        metrics.TABLE_STOPPED.labels(state.table).set(1)
        if new:
            metrics.REJECTS.labels(state.table, RejectCode.TABLE_STOPPED).inc()
        logger.warning(
            "partition paused topic=%s partition=%d offset=%d table=%s: table stopped",
            record.topic,
            record.partition,
            record.offset,
            state.table,
        )

    def _resume_fixed_tables(self) -> None:
        """Re-check stopped tables; resume the partitions of those that fit now."""
        self.tables.recheck()
        fixed = sorted(
            tp for tp in self.paused if not self.tables.states[tp[0]].stopped
        )
        if not fixed:
            return

        with self.db.transaction() as cur:
            closed = mark_resumed(cur, sorted({topic for topic, _ in fixed}))
        self._seek_to_stored(fixed)
        self.consumer.resume([TopicPartition(*tp) for tp in fixed])
        self.paused.difference_update(fixed)
        for topic, partition in fixed:
            table = self.tables.states[topic].table
            metrics.TABLE_STOPPED.labels(table).set(0)
            logger.info(
                "partition resumed topic=%s partition=%d table=%s "
                "table_stopped_rejects_closed=%d",
                topic,
                partition,
                table,
                closed,
            )

    # --- partitions ------------------------------------------------------------------

    def _stored(self, partitions: Sequence[TP]) -> dict[TP, int | None]:
        def read() -> dict[TP, int | None]:
            with self.db.transaction() as cur:
                return stored_offsets(cur, partitions)

        return self._retry(read, "reading stored offsets")

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """Start every assigned partition at the offset stored with the rows."""
        stored = self._stored([(p.topic, p.partition) for p in partitions])
        for p in partitions:
            offset = stored[(p.topic, p.partition)]
            self.expected[(p.topic, p.partition)] = offset
            self.paused.discard((p.topic, p.partition))
            p.offset = OFFSET_BEGINNING if offset is None else offset
            logger.info(
                "partition assigned topic=%s partition=%d offset=%s",
                p.topic,
                p.partition,
                "beginning" if offset is None else offset,
            )
        consumer.assign(partitions)

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        for p in partitions:
            self.expected.pop((p.topic, p.partition), None)
            self.paused.discard((p.topic, p.partition))
            logger.info("partition revoked topic=%s partition=%d", p.topic, p.partition)

    def _seek_to_stored(self, partitions: Sequence[TP]) -> None:
        """After a rollback or a stop: read again from where the database stands."""
        for tp, offset in self._stored(partitions).items():
            if tp not in self.expected:
                continue
            self.expected[tp] = offset
            start = OFFSET_BEGINNING if offset is None else offset
            try:
                self.consumer.seek(TopicPartition(*tp, start))
            except KafkaException as exc:
                logger.warning(
                    "seek failed topic=%s partition=%d offset=%s: %s", *tp, start, exc
                )

    def _records(self, messages: Sequence[Message]) -> list[Record]:
        records = []
        for message in messages:
            error = message.error()
            if error is None:
                if (message.topic(), message.partition()) not in self.paused:
                    records.append(Record.from_message(message))
            elif error.fatal():
                raise KafkaException(error)
            elif error.code() != KafkaError._PARTITION_EOF:
                logger.warning("consume error topic=%s: %s", message.topic(), error)
        return records

    def _close(self) -> None:
        try:
            self.consumer.close()
            logger.info("left the consumer group group=%s", self.config.group_id)
        finally:
            self.dead_letters.close()
            self.db.close()
            logger.info("worker stopped")


def application_name(config: WorkerConfig) -> str:
    """How the worker's connection shows in pg_stat_activity: which group it serves."""
    return f"gatekeeper-worker {config.group_id}"[:63]


def _ranges(records: Sequence[Record]) -> dict[TP, tuple[int, int, int]]:
    """First offset, last offset and count per partition."""
    ranges: dict[TP, tuple[int, int, int]] = {}
    for record in records:
        first, _, count = ranges.get(record.topic_partition, (record.offset, 0, 0))
        ranges[record.topic_partition] = (first, record.offset, count + 1)
    return ranges


def _consumer_config(config: WorkerConfig) -> dict[str, object]:
    settings: dict[str, object] = {
        "bootstrap.servers": config.kafka_bootstrap,
        "group.id": config.group_id,
        "client.id": "gatekeeper-worker",
        # The database holds the offsets; Kafka's are written after it, by hand.
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        "isolation.level": "read_committed",
        # Reconnect quickly after a blip, at most every 10 s during an outage.
        "reconnect.backoff.ms": 100,
        "reconnect.backoff.max.ms": 10_000,
        # Discover topics created after the worker started within seconds.
        "topic.metadata.refresh.interval.ms": 5000,
        "error_cb": _log_kafka_error,
        "on_commit": _log_commit,
    }
    if config.instance_id:
        # Static membership: a restarted process takes its partitions back at once,
        # without a rebalance of the whole group.
        settings["group.instance.id"] = config.instance_id
    return settings


# Seconds between two WARNINGs for the same Kafka error: librdkafka reports every
# failed reconnect (several a second per broker connection) while it backs off.
KAFKA_ERROR_LOG_INTERVAL_S = 30.0
_kafka_errors_logged: dict[str, float] = {}


def _log_kafka_error(error: KafkaError) -> None:
    """Log a client error; repeats of it within the interval only at DEBUG."""
    now = time.monotonic()
    last = _kafka_errors_logged.get(error.name(), -KAFKA_ERROR_LOG_INTERVAL_S)
    level = (
        logging.WARNING if now - last >= KAFKA_ERROR_LOG_INTERVAL_S else logging.DEBUG
    )
    if level == logging.WARNING:
        _kafka_errors_logged[error.name()] = now
    logger.log(
        level,
        "kafka error code=%s (librdkafka reconnects by itself): %s",
        error.name(),
        error.str(),
    )


def _log_commit(error: KafkaError | None, partitions: list[TopicPartition]) -> None:
    if error is not None:
        logger.warning("kafka offset commit failed (lag only): %s", error)


def ensure_topics(bootstrap: str, topics: list[str], partitions: int) -> None:
    """Create the topics that do not exist yet, so that subscribing finds them."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    try:
        existing = admin.list_topics(timeout=10).topics
    except KafkaException as exc:
        raise TransientError(f"kafka unreachable at {bootstrap}: {exc}") from exc

    missing = [NewTopic(t, partitions) for t in topics if t not in existing]
    for topic, future in admin.create_topics(missing).items() if missing else ():
        try:
            future.result()
            logger.info("topic created topic=%s partitions=%d", topic, partitions)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise TransientError(f"cannot create topic {topic}: {exc}") from exc
