"""Apply a batch to PostgreSQL in one transaction: rows, rejects and offsets together.

Each table's changes are collapsed (``worker.collapse``), copied into the table's
stage in one COPY, and moved with one statement per group of alike effects.

A batch is first tried without savepoints. When a record breaks a statement (a
constraint, a value out of range), the transaction is rolled back and the batch
tried again carefully: each table in a savepoint, and a failing part rolled back
to it and applied again in two halves, down to the one record, which is rejected
while every other record applies. A savepoint per record would cost two round
trips per record in every batch; halving costs them only around a failure.
"""

from __future__ import annotations

import itertools
import logging
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import psycopg2
from psycopg2 import sql
from psycopg2.extensions import cursor

from worker import metrics
from worker.collapse import Effect, EffectKind, collapse
from worker.database import Database, describe_error, record_error_code
from worker.errors import WorkerError
from worker.evolution import TableState
from worker.offsets import advance
from worker.records import Change, Reject, RejectCode, TopicPartition
from worker.rejects import StoredReject, store_rejects
from worker.staging import Stages, copy_lines, line

logger = logging.getLogger(__name__)

META = ("_gk_schema_version", "_gk_schema_id")


class _RecordFailedError(WorkerError):
    """A record broke a statement of an attempt taken without savepoints."""


@dataclass(frozen=True)
class Batch:
    """What one transaction commits: changes, early rejects, and where to resume."""

    changes: Sequence[Change]
    rejects: Sequence[Reject]
    next_offsets: Mapping[TopicPartition, int]


@dataclass
class Outcome:
    """What a committed batch did: changes applied per (table, operation), rejects."""

    applied: Counter[tuple[str, str]] = field(default_factory=Counter)
    rejects: list[StoredReject] = field(default_factory=list)


@dataclass
class _Group:
    """Effects of one round that one statement applies: same kind, same columns."""

    id: int
    kind: EffectKind
    columns: tuple[str, ...]
    effects: list[Effect] = field(default_factory=list)
    ords: list[int] = field(default_factory=list)


class Writer:
    """Writes batches into one PostgreSQL schema through one connection."""

    def __init__(self, db: Database, schema: str) -> None:
        self._db = db
        self._schema = schema
        self._stages = Stages()
        self._group_ids = itertools.count(1)
        self._statements: dict[tuple, str] = {}

    def commit(
        self,
        batch: Batch,
        tables: Mapping[str, TableState],
        expected: Mapping[TopicPartition, int | None],
        before_commit: Callable[[list[StoredReject]], None],
    ) -> Outcome:
        """1. apply each table's changes, 2. store the rejects, 3. advance the offsets
        by compare-and-set, 4. hand the rejects to ``before_commit`` (the dead-letter
        topic), 5. commit.

        Raises OffsetConflictError (rolled back) when a partition moved under this
        worker, TransientError when PostgreSQL failed; nothing is committed then.
        """
        moves = {tp: (expected.get(tp), n) for tp, n in batch.next_offsets.items()}
        try:
            return self._commit(batch, tables, moves, before_commit, careful=False)
        except _RecordFailedError:
            # A record broke a statement: redo the batch a table at a time, each
            # in a savepoint, halving the part that fails.
            return self._commit(batch, tables, moves, before_commit, careful=True)

    def _commit(
        self,
        batch: Batch,
        tables: Mapping[str, TableState],
        moves: Mapping[TopicPartition, tuple[int | None, int]],
        before_commit: Callable[[list[StoredReject]], None],
        careful: bool,
    ) -> Outcome:
        outcome = Outcome()
        rejects = list(batch.rejects)
        try:
            with self._db.transaction() as cur:
                for table, changes in _by_table(batch.changes).items():
                    applied, refused = self.apply(cur, tables[table], changes, careful)
                    outcome.applied.update((table, c.operation) for c in applied)
                    rejects += refused
                outcome.rejects = store_rejects(cur, rejects)
                advance(cur, moves)
                before_commit(outcome.rejects)
        except BaseException:
            self._stages.forget()
            raise
        return outcome

    def forget(self) -> None:
        """The caller's transaction rolled back: stage tables made in it are gone."""
        self._stages.forget()

    def apply(
        self,
        cur: cursor,
        state: TableState,
        changes: Sequence[Change],
        careful: bool = True,
    ) -> tuple[list[Change], list[Reject]]:
        """Apply one table's changes in order; return those applied and rejected.

        Careful, every failing record is isolated in a savepoint and rejected.
        Otherwise no savepoint is taken (two round trips fewer per table) and a
        failing record raises _RecordFailedError: the transaction must be redone.
        """
        stage = self._stages.stage(
            cur, self._db.generation, self._schema, state.table, state.shape
        )
        if careful:
            return self._apply_halving(cur, state, stage, changes)
        try:
            return self._apply_set(cur, state, stage, changes)
        except psycopg2.Error as exc:
            if record_error_code(exc) is None or cur.connection.closed:
                raise
            raise _RecordFailedError(describe_error(exc)) from exc

    def _apply_halving(
        self,
        cur: cursor,
        state: TableState,
        stage: sql.Identifier,
        changes: Sequence[Change],
    ) -> tuple[list[Change], list[Reject]]:
        """Apply all at once; on a record's error, apply each half in turn."""
        cur.execute("SAVEPOINT gk_apply")
        try:
            result = self._apply_set(cur, state, stage, changes)
        except psycopg2.Error as exc:
            code = record_error_code(exc)
            if code is None or cur.connection.closed:
                raise
            cur.execute("ROLLBACK TO SAVEPOINT gk_apply; RELEASE SAVEPOINT gk_apply")
            return self._split(cur, state, stage, changes, code, exc)
        cur.execute("RELEASE SAVEPOINT gk_apply")
        return result

    def _split(
        self,
        cur: cursor,
        state: TableState,
        stage: sql.Identifier,
        changes: Sequence[Change],
        code: RejectCode,
        exc: psycopg2.Error,
    ) -> tuple[list[Change], list[Reject]]:
        if len(changes) == 1:
            reject = _reject(changes[0], code, describe_error(exc))
            logger.warning(
                "rejected topic=%s partition=%d offset=%d table=%s code=%s: %s",
                *_where(changes[0]),
                state.table,
                code,
                reject.reason,
            )
            return [], [reject]

        metrics.BATCH_SPLITS.labels(state.table).inc()
        middle = len(changes) // 2
        applied, rejects = self._apply_halving(cur, state, stage, changes[:middle])
        later = self._apply_halving(cur, state, stage, changes[middle:])
        return applied + later[0], rejects + later[1]

    def _apply_set(
        self,
        cur: cursor,
        state: TableState,
        stage: sql.Identifier,
        changes: Sequence[Change],
    ) -> tuple[list[Change], list[Reject]]:
        """1. collapse, 2. COPY every effect into the stage, 3. one statement per
        group, round by round; updates that found no row are rejected."""
        plan = collapse(changes, state.contract.is_keyed)
        rejects = [_missing_row(change) for change in plan.missing_rows]
        groups = [self._groups(state, effects) for effects in plan.rounds]
        self._copy(cur, state, stage, groups)

        missing: list[Effect] = []
        for group in itertools.chain.from_iterable(groups):
            missing += self._execute(cur, state, stage, group)

        for effect in missing:
            rejects += [_missing_row(change) for change in effect.sources]
        failed = {id(change) for change in plan.missing_rows}
        failed.update(id(c) for effect in missing for c in effect.sources)
        return [c for c in changes if id(c) not in failed], rejects

    def _groups(self, state: TableState, effects: Sequence[Effect]) -> list[_Group]:
        """Effects by kind and columns written, each group one statement."""
        groups: dict[tuple[EffectKind, tuple[str, ...]], _Group] = {}
        columns_of: dict[tuple, tuple[str, ...]] = {}
        for effect in effects:
            # Effects of one batch mostly name the same columns in the same order.
            named = (effect.kind, effect.replace, tuple(effect.values))
            columns = columns_of.get(named)
            if columns is None:
                columns = columns_of[named] = self._columns(state, effect)
            group = groups.get((effect.kind, columns))
            if group is None:
                group = _Group(next(self._group_ids), effect.kind, columns)
                groups[(effect.kind, columns)] = group
            group.effects.append(effect)
        return list(groups.values())

    def _columns(self, state: TableState, effect: Effect) -> tuple[str, ...]:
        if effect.kind is EffectKind.DELETE:
            return state.contract.primary_key
        return effect.columns(state.shape.names)

    def _copy(
        self,
        cur: cursor,
        state: TableState,
        stage: sql.Identifier,
        rounds: Sequence[Sequence[_Group]],
    ) -> None:
        """One COPY for every effect: order, group, the columns, version and id."""
        names = state.shape.names
        key = state.contract.primary_key
        lines = []
        for group in itertools.chain.from_iterable(rounds):
            for effect in group.effects:
                group.ords.append(len(lines))
                values = effect.values
                if effect.kind is EffectKind.DELETE:
                    values = dict(zip(key, effect.key, strict=True))
                get = values.get
                lines.append(
                    line(
                        (
                            len(lines),
                            group.id,
                            *[get(name) for name in names],
                            effect.schema_version,
                            effect.schema_id,
                        )
                    )
                )
        copy_lines(cur, stage, ("_gk_ord", "_gk_group", *names, *META), lines)

    def _execute(
        self,
        cur: cursor,
        state: TableState,
        stage: sql.Identifier,
        group: _Group,
    ) -> list[Effect]:
        """Run the group's statement; return the update effects that found no row."""
        statement = self._statement(state, stage, group.kind, group.columns, cur)
        cur.execute(statement, (group.id,))
        if group.kind is not EffectKind.UPDATE:
            return []

        found = {row[0] for row in cur.fetchall()}
        pairs = zip(group.effects, group.ords, strict=True)
        return [effect for effect, ord_ in pairs if ord_ not in found]

    def _statement(
        self,
        state: TableState,
        stage: sql.Identifier,
        kind: EffectKind,
        columns: tuple[str, ...],
        cur: cursor,
    ) -> str:
        """The group's SQL, composed once per table, kind, columns and stage."""
        cache_key = (self._schema, state.table, kind, columns, stage.string)
        text = self._statements.get(cache_key)
        if text is None:
            build = STATEMENTS[kind]
            target = sql.Identifier(self._schema, state.table)
            composed = build(target, stage, columns, state.contract.primary_key)
            text = self._statements[cache_key] = composed.as_string(cur)
        return text


def _upsert(
    target: sql.Identifier,
    stage: sql.Identifier,
    columns: tuple[str, ...],
    key: tuple[str, ...],
) -> sql.Composed:
    names = sql.SQL(", ").join(map(sql.Identifier, [*columns, *META]))
    updates = [
        sql.SQL("{0} = EXCLUDED.{0}").format(sql.Identifier(c))
        for c in [*columns, *META, "_gk_updated_at"]
        if c not in key
    ]
    return sql.SQL(
        "INSERT INTO {target} ({names}, _gk_updated_at) "
        "SELECT {names}, now() FROM {stage} WHERE _gk_group = %s "
        "ON CONFLICT ({key}) DO UPDATE SET {updates}"
    ).format(
        target=target,
        names=names,
        stage=stage,
        key=sql.SQL(", ").join(map(sql.Identifier, key)),
        updates=sql.SQL(", ").join(updates),
    )


def _append(
    target: sql.Identifier,
    stage: sql.Identifier,
    columns: tuple[str, ...],
    key: tuple[str, ...],
) -> sql.Composed:
    names = sql.SQL(", ").join(map(sql.Identifier, [*columns, *META]))
    return sql.SQL(
        "INSERT INTO {target} ({names}, _gk_updated_at) "
        "SELECT {names}, now() FROM {stage} WHERE _gk_group = %s ORDER BY _gk_ord"
    ).format(target=target, names=names, stage=stage)


def _update(
    target: sql.Identifier,
    stage: sql.Identifier,
    columns: tuple[str, ...],
    key: tuple[str, ...],
) -> sql.Composed:
    assignments = [
        sql.SQL("{0} = s.{0}").format(sql.Identifier(c))
        for c in [*columns, *META]
        if c not in key
    ]
    return sql.SQL(
        "UPDATE {target} AS t SET {assignments}, _gk_updated_at = now() "
        "FROM {stage} AS s WHERE s._gk_group = %s AND {match} RETURNING s._gk_ord"
    ).format(
        target=target,
        assignments=sql.SQL(", ").join(assignments),
        stage=stage,
        match=_match(key),
    )


def _delete(
    target: sql.Identifier,
    stage: sql.Identifier,
    columns: tuple[str, ...],
    key: tuple[str, ...],
) -> sql.Composed:
    return sql.SQL(
        "DELETE FROM {target} AS t USING {stage} AS s "
        "WHERE s._gk_group = %s AND {match}"
    ).format(target=target, stage=stage, match=_match(key))


def _match(key: tuple[str, ...]) -> sql.Composed:
    return sql.SQL(" AND ").join(
        sql.SQL("t.{0} = s.{0}").format(sql.Identifier(name)) for name in key
    )


_StatementBuilder = Callable[
    [sql.Identifier, sql.Identifier, tuple[str, ...], tuple[str, ...]], sql.Composed
]

# One statement shape per kind of effect.
STATEMENTS: dict[EffectKind, _StatementBuilder] = {
    EffectKind.UPSERT: _upsert,
    EffectKind.APPEND: _append,
    EffectKind.UPDATE: _update,
    EffectKind.DELETE: _delete,
}


def _by_table(changes: Sequence[Change]) -> dict[str, list[Change]]:
    """Changes grouped per table, each group in offset order per partition."""
    grouped: dict[str, list[Change]] = {}
    for change in changes:
        grouped.setdefault(change.table, []).append(change)
    return grouped


def _where(change: Change) -> tuple[str, int, int]:
    record = change.record
    return record.topic, record.partition, record.offset


def _reject(change: Change, code: RejectCode, reason: str) -> Reject:
    return Reject(change.record, code, reason, change.table, change.schema_id)


def _missing_row(change: Change) -> Reject:
    key = ", ".join(map(repr, change.key))
    return _reject(
        change,
        RejectCode.MISSING_ROW,
        f"update of a row that does not exist (key {key}); insert or upsert it first",
    )
