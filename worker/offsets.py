"""Partition offsets kept with the rows, advanced by compare-and-set.

The next offset of each partition is written in the same transaction as the rows
its records produced: a crash at any instant leaves both or neither. The update
names the offset the worker expects to find, so a worker that lost a partition to
another (and did not notice yet) changes no row, and its transaction rolls back
instead of overwriting a newer commit.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import psycopg2.extras
from psycopg2.extensions import cursor

from worker.errors import OffsetConflictError
from worker.records import TopicPartition


def stored_offsets(
    cur: cursor, partitions: Iterable[TopicPartition]
) -> dict[TopicPartition, int | None]:
    """The next offset to read per partition; None where nothing was applied yet."""
    partitions = list(partitions)
    if not partitions:
        return {}
    cur.execute(
        "SELECT topic, partition, next_offset FROM gatekeeper.offsets "
        "WHERE (topic, partition) IN %s",
        (tuple(partitions),),
    )
    found = {(topic, partition): offset for topic, partition, offset in cur}
    return {tp: found.get(tp) for tp in partitions}


def advance(
    cur: cursor,
    moves: Mapping[TopicPartition, tuple[int | None, int]],
) -> None:
    """Move each partition from its expected offset to its next one, or raise.

    ``moves`` maps a partition to (expected, next). Expected None means no offset
    was stored: the row is inserted, and a row some other worker inserted
    meanwhile is a conflict too. One statement for updates, one for inserts.
    """
    updates = [(*tp, old, new) for tp, (old, new) in moves.items() if old is not None]
    inserts = [(*tp, new) for tp, (old, new) in moves.items() if old is None]
    moved: set[TopicPartition] = set()
    if updates:
        moved.update(
            psycopg2.extras.execute_values(
                cur, _UPDATE, updates, _UPDATE_ROW, fetch=True
            )
        )
    if inserts:
        moved.update(psycopg2.extras.execute_values(cur, _INSERT, inserts, fetch=True))

    lost = sorted(set(moves) - moved)
    if lost:
        raise OffsetConflictError(
            "another worker applied "
            + ", ".join(
                f"topic={t} partition={p} past offset {moves[(t, p)][0]}"
                for t, p in lost
            )
        )


_UPDATE = (
    "UPDATE gatekeeper.offsets AS o SET next_offset = v.next_offset, "
    "updated_at = now() FROM (VALUES %s) AS v(topic, partition, expected, next_offset) "
    "WHERE o.topic = v.topic AND o.partition = v.partition "
    "AND o.next_offset = v.expected RETURNING o.topic, o.partition"
)
_UPDATE_ROW = "(%s, %s::integer, %s::bigint, %s::bigint)"
_INSERT = (
    "INSERT INTO gatekeeper.offsets (topic, partition, next_offset) VALUES %s "
    "ON CONFLICT DO NOTHING RETURNING topic, partition"
)
