"""Tables that follow their contracts: created, evolved, or stopped with a reason.

On start, and on the first record of a version newer than the one a table was
last brought to, the worker asks the registry for the subject's latest version
and brings the table in line: a missing table is created from the contract file
(its types, NOT NULL rules and primary key), each new field becomes a nullable
column. A version that would need a column dropped or retyped, or a different
key, stops the table: its records wait in Kafka, a reject row and an ERROR log
say why, and every other table keeps flowing. Stopped tables are examined again
every ``recheck_interval_s``; once the table fits (fixed by hand, or a better
version registered) it resumes where it stopped.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from psycopg2 import sql
from psycopg2.extensions import cursor

from contracts.catalogue import Contract
from worker import tables
from worker.database import Database
from worker.errors import RecordRejectedError
from worker.records import Record
from worker.schemas import RegisteredVersion, Schemas
from worker.tables import TableShape
from worker.wire import schema_id_of

logger = logging.getLogger(__name__)

_RECORD_VERSION = """
INSERT INTO gatekeeper.schema_versions
    (subject, version, schema_id, schema, ddl_applied)
VALUES (%s, %s, %s, %s, %s)
ON CONFLICT (subject, version) DO UPDATE
SET ddl_applied = concat_ws(E'\\n', schema_versions.ddl_applied, EXCLUDED.ddl_applied)
WHERE EXCLUDED.ddl_applied IS NOT NULL
"""


@dataclass(eq=False)
class TableState:
    """One contract's table as the worker knows it right now.

    ``reader`` is the registered version records are read with (None until the
    subject has one); ``stopped`` says why the table is stopped, or is None.
    """

    contract: Contract
    shape: TableShape | None = None
    reader: RegisteredVersion | None = None
    stopped: str | None = None
    seen: set[int] = field(default_factory=set)

    def __repr__(self) -> str:
        version = self.reader.version if self.reader else None
        state = "stopped" if self.stopped else "running"
        return f"<TableState table={self.table} version={version} {state}>"

    @property
    def table(self) -> str:
        return self.contract.table

    @property
    def topic(self) -> str:
        return self.contract.topic


class Tables:
    """Every contract's table, kept in line with the registry's latest version."""

    def __init__(
        self,
        db: Database,
        schemas: Schemas,
        catalogue: Mapping[str, Contract],
        db_schema: str,
        recheck_interval_s: float = 30.0,
    ) -> None:
        self.db = db
        self.schemas = schemas
        self.db_schema = db_schema
        self.recheck_interval_s = recheck_interval_s
        self.states = {c.topic: TableState(c) for c in catalogue.values()}

    def for_topic(self, topic: str) -> TableState | None:
        return self.states.get(topic)

    @property
    def by_table(self) -> dict[str, TableState]:
        return {state.table: state for state in self.states.values()}

    @property
    def stopped(self) -> list[TableState]:
        return [state for state in self.states.values() if state.stopped]

    def prepare(self) -> None:
        """Create the bookkeeping tables, then bring every table in line."""
        with self.db.transaction() as cur:
            cur.execute(tables.DDL_LOCK)
            cur.execute(tables.BOOKKEEPING)
        for state in self.states.values():
            self.evolve(state)

    def observe(self, records: Iterable[Record]) -> None:
        """Note the schema ids of new records; evolve a table a newer version reaches.

        An id the registry does not know is skipped here: decoding rejects its
        record with the reason.
        """
        for record in records:
            state = self.states.get(record.topic)
            if state is None:
                continue
            for raw, subject in self._subjects(state, record):
                schema_id = schema_id_of(raw)
                if schema_id is not None and schema_id not in state.seen:
                    self._observe(state, subject, schema_id)

    def _subjects(
        self, state: TableState, record: Record
    ) -> Iterator[tuple[bytes | None, str]]:
        yield record.value, state.contract.value_subject
        if state.contract.is_keyed:
            yield record.key, state.contract.key_subject

    def _observe(self, state: TableState, subject: str, schema_id: int) -> None:
        try:
            version = self.schemas.version_of(subject, schema_id)
        except RecordRejectedError:
            state.seen.add(schema_id)
            return

        with self.db.transaction() as cur:
            _record_version(cur, version, None)
        state.seen.add(schema_id)
        logger.info(
            "schema seen subject=%s version=%d schema_id=%d table=%s",
            subject,
            version.version,
            schema_id,
            state.table,
        )
        newer = state.reader is None or version.version > state.reader.version
        if subject == state.contract.value_subject and newer:
            self.evolve(state)

    def evolve(self, state: TableState) -> None:
        """Bring the table to the subject's latest version, or stop it with why."""
        try:
            latest = self.schemas.latest(state.contract.value_subject)
        except RecordRejectedError as exc:
            self._stop(state, None, (str(exc),))
            return

        fields = _fields(latest, state.contract)
        with self.db.transaction() as cur:
            cur.execute(tables.DDL_LOCK)
            shape, ddl = self._create(cur, state.contract)
            evolution = tables.plan_evolution(shape, fields, state.contract.primary_key)
            if evolution.safe and evolution.added:
                statement = tables.add_columns_ddl(
                    self.db_schema, state.table, evolution.added
                )
                cur.execute(statement)
                ddl.append(statement.as_string(cur))
                shape = tables.read_shape(cur, self.db_schema, state.table)
            if latest is not None and evolution.safe:
                _record_version(cur, latest, "\n".join(ddl) or None)

        state.shape = shape
        if not evolution.safe:
            self._stop(state, latest, evolution.problems)
            return
        self._adopt(state, latest, evolution)

    def _create(self, cur: cursor, contract: Contract) -> tuple[TableShape, list[str]]:
        """The table's shape, creating the table from the contract when missing."""
        shape = tables.read_shape(cur, self.db_schema, contract.table)
        if shape is not None:
            return shape, []

        cur.execute(
            sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(
                sql.Identifier(self.db_schema)
            )
        )
        statement = tables.create_table_ddl(contract, self.db_schema)
        cur.execute(statement)
        logger.info("table created schema=%s table=%s", self.db_schema, contract.table)
        shape = tables.read_shape(cur, self.db_schema, contract.table)
        return shape, [statement.as_string(cur)]

    def _adopt(
        self,
        state: TableState,
        latest: RegisteredVersion | None,
        evolution: tables.Evolution,
    ) -> None:
        was_stopped = state.stopped is not None
        state.reader, state.stopped = latest, None
        logger.info(
            "table ready schema=%s table=%s subject=%s version=%s added=%s resumed=%s",
            self.db_schema,
            state.table,
            state.contract.value_subject,
            latest.version if latest else None,
            ",".join(c.name for c in evolution.added) or "-",
            was_stopped,
        )

    def _stop(
        self,
        state: TableState,
        latest: RegisteredVersion | None,
        problems: Iterable[str],
    ) -> None:
        version = (
            f"version {latest.version} of " if latest else "the latest version of "
        )
        reason = (
            f"table {self.db_schema}.{state.table} stopped: {version}"
            f"{state.contract.value_subject} cannot be applied safely: "
            f"{'; '.join(problems)}. Its records wait in Kafka; fix the table by hand "
            "or register a version that fits it, and the worker resumes the table "
            f"within {self.recheck_interval_s:g} s"
        )
        # Re-checks find the same problem every interval; say it once.
        level = logging.DEBUG if reason == state.stopped else logging.ERROR
        state.stopped = reason
        logger.log(
            level,
            "table stopped schema=%s table=%s reason=%s",
            self.db_schema,
            state.table,
            reason,
        )

    def recheck(self) -> None:
        """Examine the stopped tables again; those that fit now run again."""
        for state in self.stopped:
            self.evolve(state)


def _fields(
    latest: RegisteredVersion | None, contract: Contract
) -> dict[str, Mapping[str, Any]]:
    """The fields a table must hold: the latest version's, else the contract's."""
    if latest is not None:
        return latest.fields
    return {f["name"]: f for f in contract.value_schema()["fields"]}


def _record_version(cur: cursor, version: RegisteredVersion, ddl: str | None) -> None:
    cur.execute(
        _RECORD_VERSION,
        (
            version.subject,
            version.version,
            version.schema_id,
            json.dumps(version.schema),
            ddl,
        ),
    )
