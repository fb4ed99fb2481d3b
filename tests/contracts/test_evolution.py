"""What a contract version does to its table: the plan, and its SQL on PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import psycopg2
import pytest
from psycopg2 import sql
from psycopg2.extensions import connection

from contracts.catalogue import Contract
from contracts.evolution import (
    Column,
    TableShape,
    as_text,
    create_shape,
    evolve,
    plan,
)
from scripts.stack import Stack
from tests.contracts.builders import (
    field,
    nullable,
    orders,
    replace_field,
    with_field,
    without_field,
)

TABLE = "t_plan"
SCHEMA = "public"


def contract_of(schema: dict[str, Any]) -> Contract:
    return Contract(schema["name"], schema, tuple(schema.get("primary_key", ())))


def test_created_table_has_not_null_where_the_contract_has_no_null() -> None:
    shape = create_shape(contract_of(orders(TABLE)))

    assert shape == TableShape(
        (
            Column("order_id", "bigint", True),
            Column("quantity", "integer", True),
            Column("status", "text", True),
            Column("note", "text", False),
        ),
        ("order_id",),
    )


def test_new_field_becomes_a_nullable_column_with_the_workers_statement() -> None:
    old = orders(TABLE)
    new = with_field(old, field("region", "string", default="eu"))

    result = plan(create_shape(contract_of(old)), contract_of(new), SCHEMA)

    assert result.safe
    assert result.added == (Column("region", "text", False),)
    assert as_text(result.ddl()) == (
        'ALTER TABLE "public"."t_plan"\n    ADD COLUMN IF NOT EXISTS "region" text'
    )
    assert result.notes == (
        "column region is added without a default: rows already in the table "
        "hold NULL, not 'eu'",
    )


@pytest.mark.parametrize(
    ("change", "column", "migration"),
    [
        (
            lambda c: replace_field(c, "quantity", field("quantity", "long")),
            "quantity",
            'ALTER TABLE "public"."t_plan" ALTER COLUMN "quantity" TYPE bigint',
        ),
        (
            lambda c: replace_field(
                c, "quantity", field("qty", "int", aliases=["quantity"])
            ),
            "qty",
            'ALTER TABLE "public"."t_plan" RENAME COLUMN "quantity" TO "qty"',
        ),
        (
            lambda c: without_field(c, "quantity"),
            "quantity",
            'ALTER TABLE "public"."t_plan" ALTER COLUMN "quantity" DROP NOT NULL',
        ),
        (
            lambda c: {**c, "primary_key": ["order_id", "status"]},
            "order_id, status",
            None,
        ),
    ],
    ids=["retype", "rename", "drop not-null field", "key change"],
)
def test_changes_the_worker_will_not_apply_come_with_their_migration(
    change: Any, column: str, migration: str | None
) -> None:
    old = orders(TABLE)

    result = plan(create_shape(contract_of(old)), contract_of(change(old)), SCHEMA)

    [hazard] = result.hazards
    assert hazard.column == column
    assert result.ddl() is None
    if migration is None:
        assert hazard.migration is None
    else:
        assert as_text(hazard.migration) == migration


def test_removed_nullable_field_keeps_its_column() -> None:
    old = orders(TABLE)

    result = plan(
        create_shape(contract_of(old)), contract_of(without_field(old, "note")), SCHEMA
    )

    assert result.safe
    assert result.notes == ("column note stays (columns are never dropped)",)


def test_history_keeps_columns_of_removed_fields_with_their_type() -> None:
    first = with_field(orders(TABLE), nullable("legacy", "int"))
    second = without_field(first, "legacy")
    again = with_field(orders(TABLE), nullable("legacy", "long"))

    shape = evolve(create_shape(contract_of(first)), contract_of(second), SCHEMA)
    result = plan(shape, contract_of(again), SCHEMA)

    assert shape.column("legacy") == Column("legacy", "integer", False)
    assert [h.column for h in result.hazards] == ["legacy"]


def test_history_assumes_earlier_migrations_were_run() -> None:
    first = orders(TABLE)
    renamed = replace_field(
        first, "quantity", field("qty", "int", aliases=["quantity"])
    )

    shape = evolve(create_shape(contract_of(first)), contract_of(renamed), SCHEMA)

    assert shape.column("qty") == Column("qty", "integer", True)
    assert shape.column("quantity") is None
    assert plan(shape, contract_of(renamed), SCHEMA).safe


# --- against PostgreSQL ---------------------------------------------------------


@pytest.fixture
def database(stack: Stack) -> Iterator[tuple[connection, str]]:
    """A connection to the stack's PostgreSQL and a schema of the test's own."""
    schema = f"s_{uuid.uuid4().hex[:8]}"
    conn = psycopg2.connect(stack.config.database_url)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    yield conn, schema
    with conn.cursor() as cur:
        cur.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))
    conn.close()


def create_table(conn: connection, schema: str, shape: TableShape) -> None:
    columns = [
        sql.SQL("{} {}{}").format(
            sql.Identifier(c.name),
            sql.SQL(c.type),
            sql.SQL(" NOT NULL" if c.not_null else ""),
        )
        for c in shape.columns
    ]
    key = sql.SQL(", ").join(map(sql.Identifier, shape.primary_key))
    columns.append(sql.SQL("PRIMARY KEY ({})").format(key))
    with conn.cursor() as cur:
        cur.execute(
            sql.SQL("CREATE TABLE {} ({})").format(
                sql.Identifier(schema, TABLE), sql.SQL(", ").join(columns)
            )
        )


def table_columns(conn: connection, schema: str) -> dict[str, tuple[str, bool]]:
    with conn.cursor() as cur:
        cur.execute(
            "SELECT column_name, data_type, is_nullable = 'NO' "
            "FROM information_schema.columns WHERE table_schema = %s "
            "AND table_name = %s",
            (schema, TABLE),
        )
        return {name: (data_type, not_null) for name, data_type, not_null in cur}


@pytest.mark.stack
def test_migrations_then_ddl_bring_the_table_to_the_new_version(
    database: tuple[connection, str],
) -> None:
    conn, schema = database
    old = orders(TABLE)
    new = with_field(
        replace_field(old, "quantity", field("qty", "long", aliases=["quantity"])),
        nullable("coupon", "string"),
    )
    shape = create_shape(contract_of(old))
    create_table(conn, schema, shape)

    result = plan(shape, contract_of(new), schema)
    statements = [h.migration for h in result.hazards] + [result.ddl()]
    with conn.cursor() as cur:
        for statement in statements:
            assert as_text(statement) == statement.as_string(conn)
            cur.execute(statement)

    assert [h.column for h in result.hazards] == ["qty", "qty"]
    expected = evolve(shape, contract_of(new), schema)
    assert table_columns(conn, schema) == {
        c.name: (c.type, c.not_null) for c in expected.columns
    }
    assert plan(expected, contract_of(new), schema).ddl() is None
