"""In-batch collapse: the changes a batch makes to one key, folded to their net effect.

One SQL statement must never touch a row twice, and a batch may hold several
changes to one key. Folding them in order gives, per key, a short list of effects
with the same outcome as applying the changes one by one:

* an insert or upsert starts an upsert; later upserts and updates fold into it;
* an update of a row not seen yet stays an update (it needs the row to exist);
* a delete wins over what came before; an insert after it starts the row afresh,
  so the columns it does not name become NULL, as after a real delete and insert;
* an update after a delete in the same batch has no row: it is rejected here.

When the outcome of the next change depends on whether the row existed before
the batch (an insert or delete after an update), the change opens a new *round*.
Rounds are applied in order, so per-key order holds; most batches need one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from worker.records import Change, Operation


class EffectKind(StrEnum):
    UPSERT = "upsert"
    UPDATE = "update"
    DELETE = "delete"
    APPEND = "append"


class Step(StrEnum):
    """How a change combines with the effect its key already has in the batch."""

    MERGE = "merge"
    DELETE = "delete"
    REPLACE = "replace"
    KEEP = "keep"
    REJECT = "reject"
    NEXT_ROUND = "next round"


# (effect so far, next operation) -> step; see the module docstring for why.
TRANSITIONS: dict[tuple[EffectKind, Operation], Step] = {
    (EffectKind.UPSERT, Operation.INSERT): Step.MERGE,
    (EffectKind.UPSERT, Operation.UPSERT): Step.MERGE,
    (EffectKind.UPSERT, Operation.UPDATE): Step.MERGE,
    (EffectKind.UPSERT, Operation.DELETE): Step.DELETE,
    (EffectKind.UPDATE, Operation.UPDATE): Step.MERGE,
    (EffectKind.UPDATE, Operation.INSERT): Step.NEXT_ROUND,
    (EffectKind.UPDATE, Operation.UPSERT): Step.NEXT_ROUND,
    (EffectKind.UPDATE, Operation.DELETE): Step.NEXT_ROUND,
    (EffectKind.DELETE, Operation.INSERT): Step.REPLACE,
    (EffectKind.DELETE, Operation.UPSERT): Step.REPLACE,
    (EffectKind.DELETE, Operation.UPDATE): Step.REJECT,
    (EffectKind.DELETE, Operation.DELETE): Step.KEEP,
}

# The effect an operation starts when its key has none yet.
STARTS: dict[Operation, EffectKind] = {
    Operation.INSERT: EffectKind.UPSERT,
    Operation.UPSERT: EffectKind.UPSERT,
    Operation.UPDATE: EffectKind.UPDATE,
    Operation.DELETE: EffectKind.DELETE,
}


@dataclass(eq=False, slots=True)
class Effect:
    """The net effect of one or more changes to one key, built while folding.

    ``values`` are the columns the changes set; when ``replace`` is true the row
    starts afresh and every other column becomes NULL. ``sources`` are the changes
    folded in, which share the effect's fate (applied, or rejected together).
    ``schema_version`` and ``schema_id`` are those of the last source that had one:
    the version that wrote the row last.
    """

    kind: EffectKind
    key: tuple[Any, ...]
    values: Mapping[str, Any] = field(default_factory=dict)
    replace: bool = False
    sources: list[Change] = field(default_factory=list)
    schema_version: int | None = None
    schema_id: int | None = None

    def __repr__(self) -> str:
        return (
            f"<Effect {self.kind} key={self.key!r} replace={self.replace} "
            f"sources={len(self.sources)}>"
        )

    @classmethod
    def start(cls, change: Change) -> Effect:
        return cls(
            STARTS[change.operation],
            change.key,
            change.values,
            False,
            [change],
            change.schema_version,
            change.schema_id,
        )

    def add(self, change: Change) -> None:
        """Count a change among the sources; its version wrote the row last."""
        self.sources.append(change)
        if change.schema_version is not None:
            self.schema_version = change.schema_version
            self.schema_id = change.schema_id

    def columns(self, table_columns: Sequence[str]) -> tuple[str, ...]:
        """The columns the effect writes, in table order."""
        if self.replace:
            return tuple(table_columns)
        return tuple(c for c in table_columns if c in self.values)


@dataclass(frozen=True)
class Plan:
    """A batch's effects for one table, round by round, and the changes refused."""

    rounds: tuple[tuple[Effect, ...], ...]
    missing_rows: tuple[Change, ...] = ()


def collapse(changes: Sequence[Change], keyed: bool = True) -> Plan:
    """Fold a table's changes, in offset order, into rounds of one effect per key.

    An append-only table has no key to fold on: every change is its own append.
    """
    if not keyed:
        appends = tuple(
            Effect(
                EffectKind.APPEND,
                (),
                c.values,
                False,
                [c],
                c.schema_version,
                c.schema_id,
            )
            for c in changes
        )
        return Plan((appends,) if appends else ())

    rounds: list[list[Effect]] = []
    latest: dict[tuple[Any, ...], tuple[int, Effect]] = {}
    missing_rows: list[Change] = []
    for change in changes:
        found = latest.get(change.key)
        if found is None:
            _place(rounds, latest, 0, Effect.start(change))
            continue

        index, effect = found
        step = TRANSITIONS[(effect.kind, change.operation)]
        if step is Step.NEXT_ROUND:
            _place(rounds, latest, index + 1, Effect.start(change))
        elif step is Step.REJECT:
            missing_rows.append(change)
        else:
            _fold(effect, change, step)

    return Plan(tuple(map(tuple, rounds)), tuple(missing_rows))


def _place(
    rounds: list[list[Effect]],
    latest: dict[tuple[Any, ...], tuple[int, Effect]],
    index: int,
    effect: Effect,
) -> None:
    while len(rounds) <= index:
        rounds.append([])
    rounds[index].append(effect)
    latest[effect.key] = (index, effect)


def _fold(effect: Effect, change: Change, step: Step) -> None:
    """Fold one change into its key's effect, as ``step`` says."""
    effect.add(change)
    if step is Step.MERGE:
        # A new dict: ``values`` may still be the change's own mapping.
        effect.values = {**effect.values, **change.values}
    elif step is Step.DELETE:
        effect.kind, effect.values, effect.replace = EffectKind.DELETE, {}, False
    elif step is Step.REPLACE:
        effect.kind, effect.values, effect.replace = (
            EffectKind.UPSERT,
            change.values,
            True,
        )
