"""Tables in PostgreSQL: the bookkeeping schema and one data table per contract.

Every name that reaches SQL is a contract name checked against the identifier rule
when the contract was loaded, and is still quoted through ``psycopg2.sql``.
"""

from __future__ import annotations

import logging
from typing import Any

from psycopg2 import sql
from psycopg2.extensions import connection

from contracts.catalogue import Contract
from contracts.sqltypes import postgres_type

logger = logging.getLogger(__name__)

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
"""

META_COLUMNS = (
    "_gk_schema_version integer NOT NULL",
    "_gk_schema_id integer NOT NULL",
    "_gk_updated_at timestamptz NOT NULL DEFAULT now()",
)


def ensure_bookkeeping(conn: connection) -> None:
    with conn, conn.cursor() as cur:
        # Two workers starting together would race on CREATE ... IF NOT EXISTS.
        cur.execute("SELECT pg_advisory_xact_lock(hashtext('gatekeeper.ddl'))")
        cur.execute(BOOKKEEPING)


def create_table_ddl(contract: Contract, schema: str) -> sql.Composed:
    """``CREATE TABLE IF NOT EXISTS`` for a contract, its key as the primary key."""
    columns = [_column(name, f) for name, f in contract.fields.items()]
    columns += [sql.SQL(meta) for meta in META_COLUMNS]
    if contract.is_keyed:
        key = sql.SQL(", ").join(map(sql.Identifier, contract.primary_key))
        columns.append(sql.SQL("PRIMARY KEY ({})").format(key))
    return sql.SQL("CREATE TABLE IF NOT EXISTS {}.{} (\n    {}\n)").format(
        sql.Identifier(schema),
        sql.Identifier(contract.table),
        sql.SQL(",\n    ").join(columns),
    )


def _column(name: str, avro_field: dict[str, Any]) -> sql.Composed:
    nullable = isinstance(avro_field["type"], list) and "null" in avro_field["type"]
    return sql.SQL("{} {}{}").format(
        sql.Identifier(name),
        sql.SQL(postgres_type(avro_field["type"])),
        sql.SQL("" if nullable else " NOT NULL"),
    )


def ensure_table(conn: connection, contract: Contract, schema: str) -> None:
    """Create the contract's table when missing."""
    ddl = create_table_ddl(contract, schema)
    with conn, conn.cursor() as cur:
        cur.execute("SELECT pg_advisory_xact_lock(hashtext('gatekeeper.ddl'))")
        cur.execute(
            sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema))
        )
        cur.execute(ddl)
    logger.info("table ready schema=%s table=%s", schema, contract.table)
