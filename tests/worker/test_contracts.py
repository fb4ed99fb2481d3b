"""Tables that follow their contracts: created, evolved, or stopped with a reason."""

from __future__ import annotations

import datetime
import decimal
import logging
import uuid

import pytest

from contracts.catalogue import Contract
from tests.plugins.worker import RecordProducer, Scenario, field_, wait_for

pytestmark = pytest.mark.stack

TIMESTAMP = {"type": "long", "logicalType": "timestamp-micros"}
LOCAL_TIMESTAMP = {"type": "long", "logicalType": "local-timestamp-millis"}
DECIMAL = {"type": "bytes", "logicalType": "decimal", "precision": 12, "scale": 2}
UUID = {"type": "string", "logicalType": "uuid"}
DATE = {"type": "int", "logicalType": "date"}


def _every_type(scenario: Scenario) -> Contract:
    return scenario.contract(
        "kinds",
        [
            field_("region", "string"),
            field_("id", "long"),
            field_("small", "int"),
            field_("ratio", "float"),
            field_("score", ["null", "double"]),
            field_("active", "boolean"),
            field_("blob", ["null", "bytes"]),
            field_(
                "state", {"type": "enum", "name": "state", "symbols": ["ON", "OFF"]}
            ),
            field_("amount", DECIMAL),
            field_("born", ["null", DATE]),
            field_("seen_at", TIMESTAMP),
            field_("local_at", ["null", LOCAL_TIMESTAMP]),
            field_("ref", ["null", UUID]),
        ],
        primary_key=["region", "id"],
    )


EXPECTED_COLUMNS = [
    ("region", "text", "NO"),
    ("id", "bigint", "NO"),
    ("small", "integer", "NO"),
    ("ratio", "real", "NO"),
    ("score", "double precision", "YES"),
    ("active", "boolean", "NO"),
    ("blob", "bytea", "YES"),
    ("state", "text", "NO"),
    ("amount", "numeric", "NO"),
    ("born", "date", "YES"),
    ("seen_at", "timestamp with time zone", "NO"),
    ("local_at", "timestamp without time zone", "YES"),
    ("ref", "uuid", "YES"),
    ("_gk_schema_version", "integer", "NO"),
    ("_gk_schema_id", "integer", "NO"),
    ("_gk_updated_at", "timestamp with time zone", "NO"),
]


def test_a_missing_table_is_created_from_its_contract_and_takes_every_type(
    scenario: Scenario, producer: RecordProducer, start_worker
) -> None:
    kinds = _every_type(scenario)
    scenario.register()
    start_worker()

    columns = scenario.query(
        "SELECT column_name, data_type, is_nullable FROM information_schema.columns "
        "WHERE table_schema = %s AND table_name = %s ORDER BY ordinal_position",
        (scenario.db_schema, kinds.table),
    )
    assert [tuple(c.values()) for c in columns] == EXPECTED_COLUMNS
    [version] = scenario.query(
        "SELECT * FROM gatekeeper.schema_versions WHERE subject = %s",
        (kinds.value_subject,),
    )
    assert version["version"] == 1
    assert "CREATE TABLE" in version["ddl_applied"]

    values = {
        "region": "eu\ttab",
        "id": 2**40,
        "small": -5,
        "ratio": 0.5,
        "score": 1e300,
        "active": True,
        "blob": b"\x00\\\n",
        "state": "OFF",
        "amount": decimal.Decimal("1234567890.12"),
        "born": datetime.date(1990, 1, 31),
        "seen_at": datetime.datetime(2024, 5, 1, 8, 30, 1, 123456, datetime.UTC),
        "local_at": datetime.datetime(2024, 5, 1, 10, 30, 1, 123000),
        "ref": uuid.UUID("6f1c2a3e-0000-4000-8000-000000000001"),
    }
    producer.send(kinds, "insert", values)
    producer.flush()
    [row] = wait_for(lambda: scenario.rows(kinds), what="the row")

    stored = {name: row[name] for name in values}
    stored |= {"blob": bytes(row["blob"]), "ref": uuid.UUID(row["ref"])}
    assert stored == values


def test_a_new_contract_version_adds_its_columns_and_old_records_still_land(
    scenario: Scenario, producer: RecordProducer, start_worker
) -> None:
    fields = [field_("id", "int"), field_("name", "string")]
    v1 = scenario.contract("evolving", fields, primary_key=["id"])
    scenario.register()
    start_worker()
    producer.send(v1, "insert", {"id": 1, "name": "one"})
    producer.flush()
    wait_for(lambda: scenario.rows(v1), what="the version 1 row")

    extra = [field_("nick", ["null", "string"]), field_("score", ["null", "double"])]
    v2 = scenario.contract("evolving", fields + extra, ["id"], table=v1.table)
    scenario.register()
    producer.send(v2, "insert", {"id": 2, "name": "two", "nick": "deux"})
    producer.send(v1, "insert", {"id": 3, "name": "three"}, schema=v1.value_schema())
    producer.send(v1, "update", {"id": 2, "name": "TWO"}, schema=v1.value_schema())
    producer.flush()
    wait_for(lambda: len(scenario.rows(v1)) == 3, what="three rows")
    wait_for(lambda: scenario.rows(v1, "id")[1]["name"] == "TWO", what="the update")

    rows = {r["id"]: r for r in scenario.rows(v1)}
    assert (rows[1]["nick"], rows[1]["_gk_schema_version"]) == (None, 1)
    assert (rows[2]["nick"], rows[2]["name"]) == ("deux", "TWO")
    assert rows[2]["_gk_schema_version"] == 1, "the last writer was a version 1 record"
    assert (rows[3]["nick"], rows[3]["_gk_schema_version"]) == (None, 1)
    [version_2] = scenario.query(
        "SELECT * FROM gatekeeper.schema_versions WHERE subject = %s AND version = 2",
        (v1.value_subject,),
    )
    assert 'ADD COLUMN IF NOT EXISTS "nick" text' in version_2["ddl_applied"]
    assert '"score" double precision' in version_2["ddl_applied"]

    producer.send(v2, "upsert", {"id": 3, "name": "three", "score": 2.5})
    producer.flush()
    wait_for(lambda: scenario.rows(v1, "id")[2]["score"] == 2.5, what="the upsert")
    assert scenario.rows(v1, "id")[2]["_gk_schema_version"] == 2


def test_an_unsafe_change_stops_only_its_table_until_the_table_is_fixed(
    scenario: Scenario, producer: RecordProducer, start_worker, caplog
) -> None:
    fields = [field_("id", "int"), field_("amount", ["null", "int"])]
    ledger = scenario.contract("ledger", fields, ["id"], compatibility="NONE")
    other = scenario.contract("other", [field_("id", "int")], ["id"])
    scenario.register()
    caplog.set_level(logging.INFO, logger="worker")
    start_worker()
    producer.send(ledger, "insert", {"id": 1, "amount": 10})
    producer.flush()
    wait_for(lambda: scenario.rows(ledger), what="the first ledger row")

    retyped = [field_("id", "int"), field_("amount", ["null", "string"])]
    ledger_v2 = scenario.contract(
        "ledger", retyped, ["id"], compatibility="NONE", table=ledger.table
    )
    scenario.register()
    producer.send(ledger_v2, "insert", {"id": 2, "amount": "12"})
    producer.send(ledger_v2, "insert", {"id": 3, "amount": "13"})
    for n in range(5):
        producer.send(other, "insert", {"id": n})
    producer.flush()

    wait_for(lambda: len(scenario.rows(other)) == 5, what="the other table's rows")
    [stop] = wait_for(lambda: scenario.rejects(ledger), what="the table-stop reject")
    assert stop["code"] == "table_stopped"
    assert "column amount is integer but the version makes it text" in stop["reason"]
    assert [r["id"] for r in scenario.rows(ledger)] == [1]
    assert any(
        r.levelno == logging.ERROR and "table stopped" in r.getMessage()
        for r in caplog.records
    )

    scenario.query(
        f'ALTER TABLE "{scenario.db_schema}"."{ledger.table}" '
        "ALTER COLUMN amount TYPE text"
    )
    wait_for(lambda: len(scenario.rows(ledger)) == 3, what="the held records")
    assert scenario.rows(ledger, "id")[2]["amount"] == "13"
    assert [r["state"] for r in scenario.rejects(ledger)] == ["resumed"]
