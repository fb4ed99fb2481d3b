"""Kafka records to changes: Confluent wire-format Avro, resolved to the reader schema.

A value is decoded with the schema its writer used (found by the id in its first
bytes) and resolved to the table's reader schema, the subject's latest version:
fields a newer version added get their defaults, renamed fields follow their
aliases, promoted types are widened. The ``gk-columns`` header says which fields
the activity set; only those are written, so "set to null" and "not given" differ.

Anything wrong with a record raises RecordRejectedError with a code and a reason.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Mapping
from typing import Any

import fastavro
from fastavro.read import SchemaResolutionError

from worker.errors import RecordRejectedError
from worker.evolution import Tables, TableState
from worker.records import (
    COLUMNS_HEADER,
    OPERATION_HEADER,
    Change,
    Operation,
    Record,
    RejectCode,
)
from worker.schemas import RegisteredVersion, Schemas
from worker.wire import split

# What fastavro raises for bytes that do not follow the schema.
_READ_ERRORS = (
    EOFError,
    IndexError,
    KeyError,
    OverflowError,
    SchemaResolutionError,
    TypeError,
    UnicodeDecodeError,
    ValueError,
    struct.error,
)


# Decoded keys and column lists are kept for reuse, up to this many entries each,
# then forgotten at once: a batch of upserts to known keys decodes about a third
# faster, and the memory stays bounded (a few MB).
CACHE_ENTRIES = 65_536


class Decoder:
    """Turns records of the contract topics into changes, or rejects them."""

    def __init__(self, schemas: Schemas, tables: Tables) -> None:
        self._schemas = schemas
        self._tables = tables
        self._keys: dict[tuple[str, bytes], tuple[Any, ...]] = {}
        self._columns_of: dict[tuple, tuple[str, ...] | RecordRejectedError] = {}

    def decode(self, record: Record) -> Change:
        """The change a record makes; raise RecordRejectedError saying why not."""
        state = self._tables.for_topic(record.topic)
        if state is None:
            raise RecordRejectedError(
                RejectCode.NO_CONTRACT, f"no contract has topic {record.topic}"
            )

        operation = _operation(record, state)
        key = self._key(record, state) if state.contract.is_keyed else ()
        if operation is Operation.DELETE:
            return Change(record, state.table, operation, key, {}, (), None, None)

        writer, datum = self._value(record, state)
        columns = self._columns(record, writer, state)
        values = {name: datum[name] for name in columns}
        _check_key(state, key, values)
        return Change(
            record,
            state.table,
            operation,
            key,
            values,
            columns,
            writer.version,
            writer.schema_id,
        )

    def _key(self, record: Record, state: TableState) -> tuple[Any, ...]:
        if record.key is None:
            raise RecordRejectedError(
                RejectCode.INVALID_RECORD,
                f"table {state.table} has a primary key, so its records need a key",
            )
        cached = self._keys.get((record.topic, record.key))
        if cached is None:
            cached = self._decode_key(record, state)
            _bounded(self._keys)[(record.topic, record.key)] = cached
        return cached

    def _decode_key(self, record: Record, state: TableState) -> tuple[Any, ...]:
        schema_id, body = split(record.key, "the key")
        writer = self._schemas.version_of(state.contract.key_subject, schema_id)
        datum = _read(body, writer, None, "the key")
        missing = [k for k in state.contract.primary_key if k not in datum]
        if missing:
            raise RecordRejectedError(
                RejectCode.INVALID_RECORD,
                f"the key lacks primary-key field(s) {', '.join(missing)}",
            )
        return tuple(datum[name] for name in state.contract.primary_key)

    def _value(
        self, record: Record, state: TableState
    ) -> tuple[RegisteredVersion, Mapping[str, Any]]:
        schema_id, body = split(record.value, "the value")
        writer = self._schemas.version_of(state.contract.value_subject, schema_id)
        reader = state.reader or writer
        resolve_to = None if reader.schema_id == writer.schema_id else reader
        return writer, _read(body, writer, resolve_to, "the value")

    def _columns(
        self, record: Record, writer: RegisteredVersion, state: TableState
    ) -> tuple[str, ...]:
        """The reader's names of the fields the activity set, key fields included.

        A field the reader no longer has (removed by a later version) is left out;
        its column keeps what it held.
        """
        reader = state.reader or writer
        header = record.header(COLUMNS_HEADER)
        cache_key = (writer.schema_id, reader.schema_id, header)
        columns = self._columns_of.get(cache_key)
        if columns is None:
            columns = _named_columns(header, writer, reader, state)
            _bounded(self._columns_of)[cache_key] = columns
        if isinstance(columns, RecordRejectedError):
            raise columns
        return columns


def _named_columns(
    header: str | None,
    writer: RegisteredVersion,
    reader: RegisteredVersion,
    state: TableState,
) -> tuple[str, ...] | RecordRejectedError:
    """The columns a ``gk-columns`` header names, or the rejection it deserves."""
    named = [n.strip() for n in (header or "").split(",") if n.strip()]
    named = named or list(writer.fields)
    unknown = [name for name in named if name not in writer.fields]
    if unknown:
        return RecordRejectedError(
            RejectCode.INVALID_RECORD,
            f"{COLUMNS_HEADER} names {', '.join(unknown)}, which version "
            f"{writer.version} of {writer.subject} does not have",
        )

    names = reader.field_names
    columns = [*state.contract.primary_key, *(names[n] for n in named if n in names)]
    return tuple(dict.fromkeys(columns))


def _bounded(cache: dict) -> dict:
    """The cache, emptied first when it is full."""
    if len(cache) >= CACHE_ENTRIES:
        cache.clear()
    return cache


def _operation(record: Record, state: TableState) -> Operation:
    """The record's operation, checked against its value and its table.

    Without a ``gk-operation`` header a record is an upsert, or a delete when it is
    a tombstone, as other Kafka sinks read such records.
    """
    raw = record.header(OPERATION_HEADER)
    if raw is None:
        return Operation.DELETE if record.value is None else Operation.UPSERT
    try:
        operation = Operation(raw)
    except ValueError:
        raise RecordRejectedError(
            RejectCode.INVALID_RECORD,
            f"{OPERATION_HEADER} {raw!r} is not one of "
            f"{', '.join(o.value for o in Operation)}",
        ) from None

    if (record.value is None) != (operation is Operation.DELETE):
        raise RecordRejectedError(
            RejectCode.INVALID_RECORD,
            f"a {operation} record {'needs' if record.value is None else 'has'} a "
            "value; a delete is a tombstone and nothing else is",
        )
    if not state.contract.is_keyed and operation is not Operation.INSERT:
        raise RecordRejectedError(
            RejectCode.INVALID_RECORD,
            f"table {state.table} is append-only (no primary key): it takes insert, "
            f"not {operation}",
        )
    return operation


def _read(
    body: memoryview,
    writer: RegisteredVersion,
    reader: RegisteredVersion | None,
    what: str,
) -> dict[str, Any]:
    """Read one Avro body; every byte must belong to the record."""
    stream = io.BytesIO(body)
    try:
        datum = fastavro.schemaless_reader(
            stream, writer.parsed, reader.parsed if reader else None
        )
    except _READ_ERRORS as exc:
        raise RecordRejectedError(
            RejectCode.UNDECODABLE,
            f"{what} does not decode with schema id {writer.schema_id} "
            f"({writer.subject} version {writer.version}): {type(exc).__name__}: {exc}",
        ) from exc

    left = len(body) - stream.tell()
    if left:
        raise RecordRejectedError(
            RejectCode.UNDECODABLE,
            f"{what} has {left} byte(s) left over after the record of schema id "
            f"{writer.schema_id}",
        )
    return datum


def _check_key(
    state: TableState, key: tuple[Any, ...], values: Mapping[str, Any]
) -> None:
    """The Kafka key partitions the records; it must name the row the value names."""
    if not state.contract.is_keyed:
        return
    in_value = tuple(values[name] for name in state.contract.primary_key)
    if in_value != key:
        raise RecordRejectedError(
            RejectCode.INVALID_RECORD,
            f"the key {key!r} and the value's key fields {in_value!r} differ",
        )
