"""The values that travel through the worker: Kafka records, changes and rejects."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from confluent_kafka import Message

TopicPartition = tuple[str, int]

OPERATION_HEADER = "gk-operation"
COLUMNS_HEADER = "gk-columns"
REQUEST_ID_HEADER = "gk-request-id"


class Operation(StrEnum):
    """The ``gk-operation`` header of an activity record."""

    INSERT = "insert"
    UPDATE = "update"
    UPSERT = "upsert"
    DELETE = "delete"


class RejectCode(StrEnum):
    """Why a record went to the rejects; stable, for metrics and for ``replay``."""

    UNDECODABLE = "undecodable"
    UNKNOWN_SCHEMA = "unknown_schema"
    INVALID_RECORD = "invalid_record"
    MISSING_ROW = "missing_row"
    CONSTRAINT_VIOLATION = "constraint_violation"
    INVALID_VALUE = "invalid_value"
    TABLE_MISMATCH = "table_mismatch"
    TABLE_STOPPED = "table_stopped"
    NO_CONTRACT = "no_contract"


@dataclass(frozen=True)
class Record:
    """A Kafka record as it arrived: the bytes, kept whole for rejects and replay."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...] = ()

    @classmethod
    def from_message(cls, message: Message) -> Record:
        return cls(
            message.topic(),
            message.partition(),
            message.offset(),
            message.key(),
            message.value(),
            tuple((k, v or b"") for k, v in message.headers() or ()),
        )

    @property
    def topic_partition(self) -> TopicPartition:
        return (self.topic, self.partition)

    def header(self, name: str) -> str | None:
        """The last value of a header as text, or None when absent."""
        found = None
        for key, value in self.headers:
            if key == name:
                found = value.decode("utf-8", errors="replace")
        return found

    def text_headers(self) -> dict[str, str]:
        return {k: v.decode("utf-8", errors="replace") for k, v in self.headers}


@dataclass(frozen=True)
class Change:
    """A decoded record: the row it touches and what it does to it.

    ``columns`` are the columns the activity set (the ``gk-columns`` header, key
    included); ``values`` holds exactly those. A delete carries only the key.
    """

    record: Record = field(repr=False)
    table: str
    operation: Operation
    key: tuple[Any, ...]
    values: Mapping[str, Any] = field(repr=False)
    columns: tuple[str, ...]
    schema_version: int | None
    schema_id: int | None


@dataclass(frozen=True)
class Reject:
    """A record that could not be applied, with why, kept for a later ``replay``."""

    record: Record = field(repr=False)
    code: RejectCode
    reason: str
    table: str | None = None
    schema_id: int | None = None
