"""Rejected records: kept in ``gatekeeper.rejects`` and sent to the dead-letter topic.

The rejects table is written in the batch's own transaction, so it holds every
rejected record exactly once. The dead-letter topic is written just before that
transaction commits: a crash in between sends a record there twice, never zero
times (consumers of ``activities.dlq`` deduplicate by the context headers).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

import psycopg2
import psycopg2.extras
from confluent_kafka import KafkaError, Message, Producer
from psycopg2.extensions import cursor

from contracts.catalogue import DLQ_TOPIC
from worker.errors import TransientError
from worker.records import Record, Reject

logger = logging.getLogger(__name__)

# Seconds to wait for the broker's acknowledgement of dead letters before the
# batch is retried instead of committed.
DLQ_FLUSH_TIMEOUT_S = 15.0


class RejectState(StrEnum):
    """Where a reject stands: waiting for ``replay``, replayed, or a table stop."""

    PENDING = "pending"
    REPLAYED = "replayed"
    TABLE_STOPPED = "table_stopped"
    RESUMED = "resumed"


@dataclass(frozen=True)
class StoredReject:
    """A reject with the id its row received."""

    id: int
    reject: Reject


_COLUMNS = (
    'reason, code, table_name, schema_id, topic, partition, "offset", key, value, '
    "headers, state"
)
_INSERT = f"INSERT INTO gatekeeper.rejects ({_COLUMNS}) VALUES %s RETURNING id"
_INSERT_STOPPED = (
    f"INSERT INTO gatekeeper.rejects ({_COLUMNS}) VALUES ({', '.join(['%s'] * 11)}) "
    "ON CONFLICT (topic, partition, \"offset\") WHERE state = 'table_stopped' "
    "DO NOTHING RETURNING id"
)


def store_rejects(cur: cursor, rejects: Sequence[Reject]) -> list[StoredReject]:
    """Insert the rejects, state ``pending``; return them with their ids, in order."""
    if not rejects:
        return []
    rows = [_row(reject, RejectState.PENDING) for reject in rejects]
    ids = psycopg2.extras.execute_values(cur, _INSERT, rows, fetch=True)
    return [StoredReject(row[0], r) for row, r in zip(ids, rejects, strict=True)]


def store_table_stopped(cur: cursor, reject: Reject) -> bool:
    """Record the first record a stopped table holds back, once; True if new."""
    cur.execute(_INSERT_STOPPED, _row(reject, RejectState.TABLE_STOPPED))
    return cur.fetchone() is not None


def mark_resumed(cur: cursor, topics: Sequence[str]) -> int:
    """Close the table-stop rejects of these topics once their table runs again."""
    cur.execute(
        "UPDATE gatekeeper.rejects SET state = %s WHERE state = %s AND topic = ANY(%s)",
        (RejectState.RESUMED, RejectState.TABLE_STOPPED, list(topics)),
    )
    return cur.rowcount


def _row(reject: Reject, state: RejectState) -> tuple:
    record = reject.record
    return (
        reject.reason,
        reject.code,
        reject.table,
        reject.schema_id,
        record.topic,
        record.partition,
        record.offset,
        _binary(record.key),
        _binary(record.value),
        json.dumps(record.text_headers()),
        state,
    )


def _binary(data: bytes | None) -> psycopg2.Binary | None:
    return None if data is None else psycopg2.Binary(data)


def record_from_row(
    topic: str,
    partition: int,
    offset: int,
    key: memoryview | None,
    value: memoryview | None,
    headers: dict[str, str] | None,
) -> Record:
    """Rebuild the record a reject row keeps, for ``replay``."""
    return Record(
        topic,
        partition,
        offset,
        None if key is None else bytes(key),
        None if value is None else bytes(value),
        tuple((k, v.encode()) for k, v in (headers or {}).items()),
    )


class DeadLetters:
    """The dead-letter topic: each rejected record, its bytes and its context."""

    def __init__(self, bootstrap: str, group_id: str) -> None:
        self._group_id = group_id
        self._producer = Producer(
            {
                "bootstrap.servers": bootstrap,
                "enable.idempotence": True,
                "acks": "all",
                "linger.ms": 5,
                "client.id": "gatekeeper-worker-dlq",
            }
        )

    def send(self, stored: Sequence[StoredReject]) -> None:
        """Produce and wait for every acknowledgement; raise TransientError if not."""
        if not stored:
            return
        failures: list[str] = []

        def delivered(error: KafkaError | None, _: Message) -> None:
            if error is not None:
                failures.append(str(error))

        for item in stored:
            record = item.reject.record
            self._producer.produce(
                DLQ_TOPIC,
                key=record.key,
                value=record.value,
                headers=[*record.headers, *self._context(item)],
                on_delivery=delivered,
            )
        remaining = self._producer.flush(DLQ_FLUSH_TIMEOUT_S)
        if remaining or failures:
            raise TransientError(
                f"dead-letter topic {DLQ_TOPIC}: {remaining} record(s) unacknowledged, "
                f"errors: {failures[:3]}"
            )
        logger.info("dead letters sent topic=%s records=%d", DLQ_TOPIC, len(stored))

    def _context(self, item: StoredReject) -> list[tuple[str, bytes]]:
        reject, record = item.reject, item.reject.record
        context = {
            "gk-dlq-reason": reject.reason,
            "gk-dlq-code": str(reject.code),
            "gk-dlq-topic": record.topic,
            "gk-dlq-partition": str(record.partition),
            "gk-dlq-offset": str(record.offset),
            "gk-dlq-table": reject.table or "",
            "gk-dlq-reject-id": str(item.id),
            "gk-dlq-consumer-group": self._group_id,
        }
        return [(name, value.encode()) for name, value in context.items()]

    def close(self) -> None:
        self._producer.flush(DLQ_FLUSH_TIMEOUT_S)
