"""Tables in PostgreSQL: the bookkeeping schema, and one data table per contract.

Every name that reaches SQL is a contract name checked against the identifier rule
when the contract was loaded, and is still quoted through ``psycopg2.sql``.

A data table follows its contract: it is created from the contract file, and a
column is added for each field a newer registered version brings. Columns are never
dropped or retyped; a version that would need that is reported as a problem, and
the table stops (see ``worker.evolution``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from psycopg2 import sql
from psycopg2.extensions import cursor

from contracts.catalogue import RESERVED_PREFIX, Contract
from contracts.errors import ContractError
from contracts.evolution import Column, TableShape
from contracts.sqltypes import postgres_type

# Serialises DDL between worker processes: CREATE ... IF NOT EXISTS races otherwise.
DDL_LOCK = "SELECT pg_advisory_xact_lock(hashtext('gatekeeper.ddl'))"

BOOKKEEPING = """
CREATE SCHEMA IF NOT EXISTS gatekeeper;
CREATE TABLE IF NOT EXISTS gatekeeper.offsets (
    topic text NOT NULL,
    partition integer NOT NULL,
    next_offset bigint NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (topic, partition)
);
CREATE TABLE IF NOT EXISTS gatekeeper.schema_versions (
    subject text NOT NULL,
    version integer NOT NULL,
    schema_id integer NOT NULL,
    schema jsonb NOT NULL,
    first_seen_at timestamptz NOT NULL DEFAULT now(),
    ddl_applied text,
    PRIMARY KEY (subject, version)
);
CREATE TABLE IF NOT EXISTS gatekeeper.rejects (
    id bigserial PRIMARY KEY,
    rejected_at timestamptz NOT NULL DEFAULT now(),
    reason text NOT NULL,
    topic text NOT NULL,
    partition integer NOT NULL,
    "offset" bigint NOT NULL,
    key bytea,
    value bytea,
    headers jsonb
);
ALTER TABLE gatekeeper.rejects
    ADD COLUMN IF NOT EXISTS code text,
    ADD COLUMN IF NOT EXISTS table_name text,
    ADD COLUMN IF NOT EXISTS schema_id integer,
    ADD COLUMN IF NOT EXISTS state text NOT NULL DEFAULT 'pending',
    ADD COLUMN IF NOT EXISTS replay_attempts integer NOT NULL DEFAULT 0,
    ADD COLUMN IF NOT EXISTS replayed_at timestamptz,
    ADD COLUMN IF NOT EXISTS last_replay_error text;
CREATE INDEX IF NOT EXISTS rejects_pending
    ON gatekeeper.rejects (table_name, id) WHERE state = 'pending';
CREATE UNIQUE INDEX IF NOT EXISTS rejects_table_stopped
    ON gatekeeper.rejects (topic, partition, "offset") WHERE state = 'table_stopped';
"""

META_COLUMNS = (
    "_gk_schema_version integer NOT NULL",
    "_gk_schema_id integer NOT NULL",
    "_gk_updated_at timestamptz NOT NULL DEFAULT now()",
)

# How format_type() spells the types that postgres_type() writes shorter.
_FORMAT_TYPE_SPELLING = {
    "timestamptz": "timestamp with time zone",
    "timestamp": "timestamp without time zone",
}

_SHAPE_QUERY = """
SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,
       array_position(i.indkey::int2[], a.attnum)
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
LEFT JOIN pg_index i ON i.indrelid = c.oid AND i.indisprimary
WHERE n.nspname = %s AND c.relname = %s AND c.relkind IN ('r', 'p')
ORDER BY a.attnum
"""


@dataclass(frozen=True)
class Evolution:
    """What a version asks of a table: columns to add, or why it cannot be done."""

    added: tuple[Column, ...] = ()
    problems: tuple[str, ...] = ()

    @property
    def safe(self) -> bool:
        return not self.problems


def column_type(avro_type: Any) -> str:
    """The column type of a field, spelt as ``format_type`` spells it."""
    created = postgres_type(avro_type)
    return _FORMAT_TYPE_SPELLING.get(created, created)


def read_shape(cur: cursor, schema: str, table: str) -> TableShape | None:
    """The table's data columns and key, or None when the table does not exist."""
    cur.execute(_SHAPE_QUERY, (schema, table))
    rows = cur.fetchall()
    if not rows:
        return None

    columns = tuple(
        Column(name, type_, not_null)
        for name, type_, not_null, _ in rows
        if not name.startswith(RESERVED_PREFIX)
    )
    key = sorted(
        (position, name) for name, _, _, position in rows if position is not None
    )
    return TableShape(columns, tuple(name for _, name in key))


def create_table_ddl(contract: Contract, schema: str) -> sql.Composed:
    """``CREATE TABLE IF NOT EXISTS`` for a contract, its key as the primary key.

    Columns are NOT NULL where the contract's field is not a union with null.
    """
    columns = [_column_ddl(name, f) for name, f in contract.fields.items()]
    columns += [sql.SQL(meta) for meta in META_COLUMNS]
    if contract.is_keyed:
        key = sql.SQL(", ").join(map(sql.Identifier, contract.primary_key))
        columns.append(sql.SQL("PRIMARY KEY ({})").format(key))
    return sql.SQL("CREATE TABLE IF NOT EXISTS {} (\n    {}\n)").format(
        sql.Identifier(schema, contract.table),
        sql.SQL(",\n    ").join(columns),
    )


def _column_ddl(name: str, avro_field: Mapping[str, Any]) -> sql.Composed:
    avro_type = avro_field["type"]
    nullable = isinstance(avro_type, list) and "null" in avro_type
    return sql.SQL("{} {}{}").format(
        sql.Identifier(name),
        sql.SQL(postgres_type(avro_type)),
        sql.SQL("" if nullable else " NOT NULL"),
    )


def add_columns_ddl(schema: str, table: str, added: tuple[Column, ...]) -> sql.Composed:
    """``ALTER TABLE ... ADD COLUMN IF NOT EXISTS`` for each new, nullable column."""
    additions = sql.SQL(",\n    ").join(
        sql.SQL("ADD COLUMN IF NOT EXISTS {} {}").format(
            sql.Identifier(column.name), sql.SQL(column.type)
        )
        for column in added
    )
    return sql.SQL("ALTER TABLE {}\n    {}").format(
        sql.Identifier(schema, table), additions
    )


def plan_evolution(
    shape: TableShape,
    fields: Mapping[str, Mapping[str, Any]],
    primary_key: tuple[str, ...],
) -> Evolution:
    """Compare a table with the fields of a version: what to add, what is unsafe.

    Safe: adding a nullable column for a new field. Unsafe: a field whose type
    differs from its column (columns are never retyped), a key that differs, and
    a NOT NULL column the version no longer fills (its new rows would fail).
    """
    added, problems = [], []
    for name, avro_field in fields.items():
        problem = _field_problem(shape, name, avro_field, primary_key, added)
        if problem:
            problems.append(problem)

    if shape.primary_key != primary_key:
        problems.append(
            f"the table's primary key is ({', '.join(shape.primary_key)}) but the "
            f"contract names ({', '.join(primary_key)})"
        )
    for column in shape.columns:
        if column.not_null and column.name not in fields:
            problems.append(
                f"column {column.name} is NOT NULL but the version has no field "
                f"{column.name}, so new rows would fail (drop the NOT NULL)"
            )
    return Evolution(tuple(added), tuple(problems))


def _field_problem(
    shape: TableShape,
    name: str,
    avro_field: Mapping[str, Any],
    primary_key: tuple[str, ...],
    added: list[Column],
) -> str | None:
    """Check one field against its column, appending to ``added`` when it is new."""
    try:
        wanted = column_type(avro_field["type"])
    except ContractError as exc:
        return f"field {name} has no column type: {exc}"

    column = shape.column(name)
    if column is None and name in primary_key:
        return f"key column {name} is missing from the table"
    if column is None:
        added.append(Column(name, wanted, not_null=False))
        return None
    if column.type != wanted:
        return (
            f"column {name} is {column.type} but the version makes it {wanted} "
            f"(columns are never retyped; ALTER the column by hand)"
        )
    return None
