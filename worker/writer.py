"""Apply decoded changes to PostgreSQL, with the partition offsets, in one transaction.

The offsets row of each partition is advanced by compare-and-set in the same
transaction as the rows: a crash at any instant leaves both or neither, and a worker
that lost its partitions to another finds the offset moved and rolls back.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg2
from psycopg2 import errors, sql
from psycopg2.extensions import connection, cursor

from contracts.catalogue import Contract

logger = logging.getLogger(__name__)

TopicPartition = tuple[str, int]


@dataclass(frozen=True)
class Change:
    """One decoded Kafka record: which row it touches and how."""

    topic: str
    partition: int
    offset: int
    contract: Contract
    operation: str
    key: Mapping[str, Any] | None
    value: Mapping[str, Any] | None
    columns: tuple[str, ...]
    schema_id: int | None
    schema_version: int | None


@dataclass(frozen=True)
class Reject:
    """A record that cannot be applied, kept with its bytes for a later replay."""

    topic: str
    partition: int
    offset: int
    reason: str
    key: bytes | None
    value: bytes | None
    headers: Mapping[str, str]


class OffsetConflictError(Exception):
    """Another worker advanced a partition this one believed it owned."""


class Writer:
    def __init__(self, conn: connection, schema: str) -> None:
        self._conn = conn
        self._schema = schema

    def stored_offsets(self, partitions: Iterable[TopicPartition]) -> dict:
        """The next offset to read per partition, None where nothing was applied."""
        partitions = list(partitions)
        with self._conn, self._conn.cursor() as cur:
            cur.execute(
                "SELECT topic, partition, next_offset FROM gatekeeper.offsets "
                "WHERE (topic, partition) IN %s",
                (tuple(partitions) or (("", -1),),),
            )
            found = {(t, p): o for t, p, o in cur.fetchall()}
        return {tp: found.get(tp) for tp in partitions}

    def apply(
        self,
        changes: Sequence[Change],
        rejects: Sequence[Reject],
        expected: Mapping[TopicPartition, int | None],
        next_offsets: Mapping[TopicPartition, int],
    ) -> list[Reject]:
        """Apply a batch and advance its offsets; return records rejected on the way.

        Raises OffsetConflictError, after rolling back, when a partition's stored
        offset is not the one this worker expected.
        """
        rejected = list(rejects)
        try:
            with self._conn, self._conn.cursor() as cur:
                for change in changes:
                    reason = self._apply_one(cur, change)
                    if reason is not None:
                        rejected.append(_reject(change, reason))
                for reject in rejected:
                    _store_reject(cur, reject)
                for tp, next_offset in next_offsets.items():
                    _advance(cur, tp, expected.get(tp), next_offset)
        except OffsetConflictError:
            raise
        return rejected

    def _apply_one(self, cur: cursor, change: Change) -> str | None:
        """Apply one change inside a savepoint; return why it was rejected, or None."""
        cur.execute("SAVEPOINT change")
        try:
            statement, params = self._statement(change)
            cur.execute(statement, params)
            if change.operation == "update" and cur.rowcount == 0:
                cur.execute("ROLLBACK TO SAVEPOINT change")
                return "update of a row that does not exist"
        except (errors.IntegrityError, errors.DataError) as exc:
            cur.execute("ROLLBACK TO SAVEPOINT change")
            logger.warning(
                "rejected topic=%s partition=%d offset=%d table=%s sqlstate=%s",
                change.topic,
                change.partition,
                change.offset,
                change.contract.table,
                exc.pgcode,
            )
            return f"{type(exc).__name__} ({exc.pgcode}): {exc.diag.message_primary}"
        cur.execute("RELEASE SAVEPOINT change")
        return None

    def _statement(self, change: Change) -> tuple[sql.Composed, list[Any]]:
        table = sql.Identifier(self._schema, change.contract.table)
        key_names = change.contract.primary_key
        if change.operation == "delete":
            where = _equals(key_names, " AND ")
            params = [change.key[name] for name in key_names]
            return sql.SQL("DELETE FROM {} WHERE {}").format(table, where), params

        names = [
            n
            for n in change.columns
            if n not in key_names or change.operation != "update"
        ]
        meta = {
            "_gk_schema_version": change.schema_version,
            "_gk_schema_id": change.schema_id,
        }
        if change.operation == "update":
            assignments = _equals([*names, *meta], ", ")
            params = [change.value[n] for n in names] + list(meta.values())
            params += [change.key[name] for name in key_names]
            statement = sql.SQL(
                "UPDATE {} SET {}, _gk_updated_at = now() WHERE {}"
            ).format(table, assignments, _equals(key_names, " AND "))
            return statement, params

        columns = [*dict.fromkeys([*key_names, *names]), *meta]
        params = [change.value[n] for n in columns[: -len(meta)]] + list(meta.values())
        statement = sql.SQL("INSERT INTO {} ({}) VALUES ({})").format(
            table,
            sql.SQL(", ").join(map(sql.Identifier, columns)),
            sql.SQL(", ").join(sql.Placeholder() * len(columns)),
        )
        if key_names:
            updates = sql.SQL(", ").join(
                sql.SQL("{0} = EXCLUDED.{0}").format(sql.Identifier(c))
                for c in columns
                if c not in key_names
            )
            statement += sql.SQL(
                " ON CONFLICT ({}) DO UPDATE SET {}, _gk_updated_at = now()"
            ).format(sql.SQL(", ").join(map(sql.Identifier, key_names)), updates)
        return statement, params


def _equals(names: Iterable[str], separator: str) -> sql.Composed:
    return sql.SQL(separator).join(
        sql.SQL("{} = %s").format(sql.Identifier(name)) for name in names
    )


def _reject(change: Change, reason: str) -> Reject:
    return Reject(
        change.topic,
        change.partition,
        change.offset,
        reason,
        None,
        None,
        {"gk-operation": change.operation},
    )


def _store_reject(cur: cursor, reject: Reject) -> None:
    cur.execute(
        "INSERT INTO gatekeeper.rejects "
        '(reason, topic, partition, "offset", key, value, headers) '
        "VALUES (%s, %s, %s, %s, %s, %s, %s)",
        (
            reject.reason,
            reject.topic,
            reject.partition,
            reject.offset,
            psycopg2.Binary(reject.key) if reject.key is not None else None,
            psycopg2.Binary(reject.value) if reject.value is not None else None,
            json.dumps(dict(reject.headers)),
        ),
    )


def _advance(cur: cursor, tp: TopicPartition, expected: int | None, next_offset: int):
    """Compare-and-set the partition's next offset; raise on a lost partition."""
    topic, partition = tp
    if expected is None:
        cur.execute(
            "INSERT INTO gatekeeper.offsets (topic, partition, next_offset) "
            "VALUES (%s, %s, %s) ON CONFLICT DO NOTHING",
            (topic, partition, next_offset),
        )
    else:
        cur.execute(
            "UPDATE gatekeeper.offsets SET next_offset = %s, updated_at = now() "
            "WHERE topic = %s AND partition = %s AND next_offset = %s",
            (next_offset, topic, partition, expected),
        )
    if cur.rowcount != 1:
        raise OffsetConflictError(
            f"topic={topic} partition={partition} moved past offset {expected}"
        )
