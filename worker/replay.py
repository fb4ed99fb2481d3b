"""``python -m worker replay``: apply rejected records again, once their cause is fixed.

A reject keeps its record's bytes and headers. Replaying one decodes it as the
worker would now (with the table's current reader schema) and applies it alone;
in the same transaction the reject is marked ``replayed``, so a record is replayed
at most once however often the command runs, and two runs never take the same
reject. A record that still fails stays ``pending`` with the new error.

A replayed change is applied as of now: if later records changed the same row
since, the replayed one lands on top of them.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from psycopg2.extensions import cursor

from contracts.catalogue import load_catalogue
from contracts.registry import connect
from worker.config import WorkerConfig
from worker.database import Database
from worker.decoding import Decoder
from worker.errors import RecordRejectedError
from worker.evolution import Tables
from worker.records import Record
from worker.rejects import RejectState, record_from_row
from worker.schemas import Schemas
from worker.writer import Writer

logger = logging.getLogger(__name__)


class Verdict(StrEnum):
    REPLAYED = "replayed"
    STILL_REJECTED = "still rejected"
    HELD = "held"
    TAKEN = "taken by another replay"


@dataclass(frozen=True)
class Selection:
    """Which pending rejects to replay; empty tuples mean "any"."""

    ids: tuple[int, ...] = ()
    tables: tuple[str, ...] = ()
    codes: tuple[str, ...] = ()
    limit: int | None = None


@dataclass(frozen=True)
class PendingReject:
    id: int
    code: str
    reason: str
    table: str | None
    record: Record


@dataclass(frozen=True)
class Result:
    reject: PendingReject
    verdict: Verdict
    detail: str = ""


_SELECT = """
SELECT id, code, reason, table_name, topic, partition, "offset", key, value, headers
FROM gatekeeper.rejects
WHERE state = 'pending'
  AND (cardinality(%(ids)s::bigint[]) = 0 OR id = ANY(%(ids)s))
  AND (cardinality(%(tables)s::text[]) = 0 OR table_name = ANY(%(tables)s))
  AND (cardinality(%(codes)s::text[]) = 0 OR code = ANY(%(codes)s))
ORDER BY topic, partition, "offset", id
LIMIT %(limit)s
"""


class Replayer:
    """Replays rejects with the worker's own decoder and writer."""

    def __init__(self, config: WorkerConfig) -> None:
        self.db = Database(config.database_url, "gatekeeper-replay")
        schemas = Schemas(connect(config.registry_url))
        catalogue = load_catalogue(config.contracts_dir)
        self.tables = Tables(self.db, schemas, catalogue, config.db_schema)
        self.decoder = Decoder(schemas, self.tables)
        self.writer = Writer(self.db, config.db_schema)

    def pending(self, selection: Selection) -> list[PendingReject]:
        """The selected pending rejects, in their topics' order."""
        with self.db.transaction() as cur:
            cur.execute(
                _SELECT,
                {
                    "ids": list(selection.ids),
                    "tables": list(selection.tables),
                    "codes": list(selection.codes),
                    "limit": selection.limit,
                },
            )
            rows = cur.fetchall()
        return [
            PendingReject(id_, code, reason, table, record_from_row(*rest))
            for id_, code, reason, table, *rest in rows
        ]

    def replay(self, rejects: Sequence[PendingReject]) -> list[Result]:
        """1. bring the tables in line, 2. replay each reject in its own transaction."""
        self.tables.prepare()
        self.tables.observe(r.record for r in rejects)
        return [self._replay_one(reject) for reject in rejects]

    def _replay_one(self, reject: PendingReject) -> Result:
        state = self.tables.for_topic(reject.record.topic)
        if state is not None and state.stopped:
            return Result(reject, Verdict.HELD, state.stopped)
        try:
            change = self.decoder.decode(reject.record)
        except RecordRejectedError as exc:
            self._note_failure(reject, exc.reason)
            return Result(reject, Verdict.STILL_REJECTED, exc.reason)

        try:
            with self.db.transaction() as cur:
                if not _lock(cur, reject.id):
                    return Result(reject, Verdict.TAKEN)
                applied, refused = self.writer.apply(cur, state, [change])
                reason = None if applied else refused[0].reason
                _mark(cur, reject.id, reason)
        except BaseException:
            self.writer.forget()
            raise
        if reason is None:
            return Result(reject, Verdict.REPLAYED)
        return Result(reject, Verdict.STILL_REJECTED, reason)

    def _note_failure(self, reject: PendingReject, reason: str) -> None:
        with self.db.transaction() as cur:
            if _lock(cur, reject.id):
                _mark(cur, reject.id, reason)

    def close(self) -> None:
        self.db.close()


def _lock(cur: cursor, reject_id: int) -> bool:
    """Take the reject for this transaction; False if it is gone or taken."""
    cur.execute(
        "SELECT 1 FROM gatekeeper.rejects WHERE id = %s AND state = %s "
        "FOR UPDATE SKIP LOCKED",
        (reject_id, RejectState.PENDING),
    )
    return cur.fetchone() is not None


def _mark(cur: cursor, reject_id: int, failure: str | None) -> None:
    """Count the attempt; ``replayed`` when it succeeded, else keep the new error."""
    state = RejectState.PENDING if failure else RejectState.REPLAYED
    cur.execute(
        "UPDATE gatekeeper.rejects SET replay_attempts = replay_attempts + 1, "
        "state = %s, last_replay_error = %s, "
        "replayed_at = CASE WHEN %s THEN now() END WHERE id = %s",
        (state, failure, failure is None, reject_id),
    )


def render(results: Sequence[Result]) -> str:
    """One line per reject, then the totals."""
    lines = []
    for result in results:
        record = result.reject.record
        line = (
            f"reject {result.reject.id} {record.topic}[{record.partition}]@"
            f"{record.offset} table={result.reject.table or '-'}: {result.verdict}"
        )
        lines.append(f"{line}: {result.detail}" if result.detail else line)
    totals = {verdict: 0 for verdict in Verdict}
    for result in results:
        totals[result.verdict] += 1
    lines.append(
        " ".join(f"{v.value.replace(' ', '_')}={n}" for v, n in totals.items())
    )
    return "\n".join(lines)
