"""What a new contract version does to its table in PostgreSQL.

The worker creates a table from its contract (NOT NULL where a field is not a union
with null, the key as primary key) and then only ever adds columns: a field a new
version brings becomes a nullable column (``ALTER TABLE ... ADD COLUMN IF NOT
EXISTS``). It never drops, renames or retypes a column and never changes a key;
a version that would need one of those stops the table until someone migrates it
by hand. Avro allows several such changes (int widened to long, a field renamed
with aliases, a decimal given more digits), so a change can be compatible on the
wire and still stop the table. This module says which, and gives the migration.

It is pure logic: no connection, no registry. Statements are built with
``psycopg2.sql`` so that the worker can execute the very same ones, and
``as_text`` renders them without a connection, quoting identifiers the way
``psycopg2.sql.Identifier`` does, for reports.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from psycopg2 import sql

from contracts.catalogue import Contract
from contracts.errors import ContractError
from contracts.sqltypes import postgres_type


@dataclass(frozen=True)
class Column:
    """A data column: its name, its type and whether it is NOT NULL.

    The type is spelt by whoever built the shape: ``postgres_type`` here, when a
    shape is derived from contract history; ``format_type`` in the worker, which
    reads shapes from the database.
    """

    name: str
    type: str
    not_null: bool


@dataclass(frozen=True)
class TableShape:
    """The data columns of a table, in order, and its primary key."""

    columns: tuple[Column, ...]
    primary_key: tuple[str, ...]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(column.name for column in self.columns)

    def column(self, name: str) -> Column | None:
        return next((c for c in self.columns if c.name == name), None)


@dataclass(frozen=True)
class Hazard:
    """A change the worker will not apply: why, and the migration that allows it.

    ``migration`` is None when no statement makes the change safe (a new key).
    """

    column: str
    problem: str
    migration: sql.Composable | None = None


@dataclass(frozen=True)
class Plan:
    """What a version asks of a table: columns to add, hazards, and remarks."""

    db_schema: str
    table: str
    added: tuple[Column, ...] = ()
    hazards: tuple[Hazard, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def safe(self) -> bool:
        return not self.hazards

    def ddl(self) -> sql.Composed | None:
        """The statement the worker runs for this version, or None if none."""
        if not self.added:
            return None
        return add_columns_ddl(self.db_schema, self.table, self.added)


def create_shape(contract: Contract) -> TableShape:
    """The table the worker creates from a contract.

    A field without a column type (refused by lint) has no column here either.
    """
    columns = []
    for name, avro_field in contract.fields.items():
        column_type = _column_type(avro_field)
        if column_type is not None:
            avro_type = avro_field["type"]
            nullable = isinstance(avro_type, list) and "null" in avro_type
            columns.append(Column(name, column_type, not nullable))
    return TableShape(tuple(columns), contract.primary_key)


def plan(shape: TableShape, contract: Contract, db_schema: str) -> Plan:
    """Compare a table with a new contract version: what to add, what is unsafe.

    Safe: a nullable column for each new field. Unsafe: a field whose type differs
    from its column; a field renamed through ``aliases`` (the worker would add an
    empty column beside the old one); a different key; a NOT NULL column whose
    field is gone (new rows would fail). A column whose field is gone is kept.
    """
    table = sql.Identifier(db_schema, contract.table)
    added, hazards, notes = [], [], []
    for name, avro_field in contract.fields.items():
        hazards += _field_hazards(shape, contract, name, avro_field, table, added)

    if shape.primary_key != contract.primary_key:
        hazards.append(_key_hazard(shape, contract))
    for column in _gone(shape, contract):
        if column.not_null and column.name not in shape.primary_key:
            hazards.append(_not_null_hazard(column, table))
        else:
            notes.append(f"column {column.name} stays (columns are never dropped)")
    notes += _default_notes(contract, added)
    return Plan(db_schema, contract.table, tuple(added), tuple(hazards), tuple(notes))


def evolve(shape: TableShape, contract: Contract, db_schema: str) -> TableShape:
    """The table after the worker applied a version and its migrations were run.

    Used to follow a table through its history: every earlier migration is
    assumed done, as the report of its time asked.
    """
    renames = _renames(shape, contract)
    columns = []
    for column in shape.columns:
        name = renames.get(column.name, column.name)
        avro_field = contract.fields.get(name)
        wanted = _column_type(avro_field) if avro_field else None
        not_null = column.not_null and avro_field is not None
        columns.append(
            replace(column, name=name, type=wanted or column.type, not_null=not_null)
        )
    columns += plan(shape, contract, db_schema).added

    names = {column.name for column in columns}
    for name in contract.primary_key:
        wanted = _column_type(contract.fields[name])
        if name not in names and wanted is not None:
            columns.append(Column(name, wanted, not_null=True))
    return TableShape(tuple(columns), contract.primary_key)


def add_columns_ddl(
    db_schema: str, table: str, added: Iterable[Column]
) -> sql.Composed:
    """``ALTER TABLE ... ADD COLUMN IF NOT EXISTS`` for each new, nullable column."""
    additions = sql.SQL(",\n    ").join(
        sql.SQL("ADD COLUMN IF NOT EXISTS {} {}").format(
            sql.Identifier(column.name), sql.SQL(column.type)
        )
        for column in added
    )
    return sql.SQL("ALTER TABLE {}\n    {}").format(
        sql.Identifier(db_schema, table), additions
    )


def as_text(statement: sql.Composable) -> str:
    """Render a statement without a connection, for a report.

    Identifiers are always double-quoted (an embedded quote doubled), as
    ``psycopg2.sql.Identifier`` does, so the text equals what the worker logs.
    Only ``SQL``, ``Identifier`` and ``Composed`` parts are expected here.
    """
    if isinstance(statement, sql.Composed):
        return "".join(as_text(part) for part in statement.seq)
    if isinstance(statement, sql.Identifier):
        return ".".join(_quote(name) for name in statement.strings)
    if isinstance(statement, sql.SQL):
        return statement.string
    raise TypeError(f"cannot render {statement!r} without a connection")


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _column_type(avro_field: Mapping[str, Any]) -> str | None:
    try:
        return postgres_type(avro_field["type"])
    except ContractError:
        return None


def _field_hazards(
    shape: TableShape,
    contract: Contract,
    name: str,
    avro_field: Mapping[str, Any],
    table: sql.Identifier,
    added: list[Column],
) -> list[Hazard]:
    """Check one field against its column; append to ``added`` when it is new."""
    wanted = _column_type(avro_field)
    if wanted is None:
        return [Hazard(name, f"field {name} has no PostgreSQL column type")]

    column = shape.column(name)
    hazards = []
    if column is None and name in contract.primary_key:
        return []  # reported as a key change
    if column is None:
        renamed = _renamed_from(shape, contract, avro_field)
        if renamed is None:
            added.append(Column(name, wanted, not_null=False))
            return []
        hazards.append(_rename_hazard(renamed, name, table))
        column = replace(shape.column(renamed), name=name)

    if column.type != wanted:
        hazards.append(_retype_hazard(column, wanted, table))
    return hazards


def _renamed_from(
    shape: TableShape, contract: Contract, avro_field: Mapping[str, Any]
) -> str | None:
    """The column a field takes over through its aliases, if any."""
    for alias in avro_field.get("aliases", []):
        if shape.column(alias) is not None and alias not in contract.fields:
            return alias
    return None


def _renames(shape: TableShape, contract: Contract) -> dict[str, str]:
    """Old column name to new field name, for fields renamed through aliases."""
    renames = {}
    for name, avro_field in contract.fields.items():
        if shape.column(name) is None:
            old = _renamed_from(shape, contract, avro_field)
            if old is not None:
                renames[old] = name
    return renames


def _gone(shape: TableShape, contract: Contract) -> list[Column]:
    renamed = _renames(shape, contract)
    return [
        column
        for column in shape.columns
        if column.name not in contract.fields and column.name not in renamed
    ]


def _retype_hazard(column: Column, wanted: str, table: sql.Identifier) -> Hazard:
    problem = (
        f"column {column.name} is {column.type} but the new version makes it "
        f"{wanted}; the worker never retypes a column and stops the table until "
        "it is migrated (check that every stored value converts)"
    )
    migration = sql.SQL("ALTER TABLE {} ALTER COLUMN {} TYPE {}").format(
        table, sql.Identifier(column.name), sql.SQL(wanted)
    )
    return Hazard(column.name, problem, migration)


def _rename_hazard(old: str, new: str, table: sql.Identifier) -> Hazard:
    problem = (
        f"field {new} renames {old} (aliases); the worker never renames a column: "
        f"it would add an empty column {new} beside {old}"
    )
    migration = sql.SQL("ALTER TABLE {} RENAME COLUMN {} TO {}").format(
        table, sql.Identifier(old), sql.Identifier(new)
    )
    return Hazard(new, problem, migration)


def _not_null_hazard(column: Column, table: sql.Identifier) -> Hazard:
    problem = (
        f"column {column.name} is NOT NULL but the new version has no field "
        f"{column.name}, so every new row would fail"
    )
    migration = sql.SQL("ALTER TABLE {} ALTER COLUMN {} DROP NOT NULL").format(
        table, sql.Identifier(column.name)
    )
    return Hazard(column.name, problem, migration)


def _key_hazard(shape: TableShape, contract: Contract) -> Hazard:
    old = ", ".join(shape.primary_key) or "none"
    new = ", ".join(contract.primary_key) or "none"
    problem = (
        f"the primary key changes from ({old}) to ({new}); the worker never changes "
        "a table's key, and records keyed both ways would share one topic; publish "
        "the new key as a new contract (a new table) instead"
    )
    return Hazard(", ".join(contract.primary_key), problem)


def _default_notes(contract: Contract, added: Iterable[Column]) -> list[str]:
    """Remark that a new column's default is not written into existing rows."""
    notes = []
    for column in added:
        avro_field = contract.fields[column.name]
        if "default" in avro_field and avro_field["default"] is not None:
            notes.append(
                f"column {column.name} is added without a default: rows already "
                f"in the table hold NULL, not {avro_field['default']!r}"
            )
    return notes
