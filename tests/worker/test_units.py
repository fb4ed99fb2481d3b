"""Pure parts of the worker: settings, wire format, COPY text, table evolution plans."""

from __future__ import annotations

import datetime
import decimal
import uuid
from pathlib import Path

import pytest

from contracts.errors import ConfigurationError
from worker.config import WorkerConfig
from worker.database import RECORD_ERROR_CLASSES
from worker.errors import RecordRejectedError
from worker.records import RejectCode
from worker.staging import encode
from worker.tables import Column, TableShape, column_type, plan_evolution
from worker.wire import schema_id_of, split

# --- settings -------------------------------------------------------------------


def test_settings_are_read_from_the_environment(tmp_path: Path) -> None:
    config = WorkerConfig.from_env(
        {
            "GATEKEEPER_CONTRACTS_DIR": str(tmp_path),
            "GATEKEEPER_DB_SCHEMA": "ingest",
            "GATEKEEPER_WORKER_BATCH_MAX_RECORDS": "300",
            "GATEKEEPER_WORKER_BATCH_MAX_WAIT_MS": "250",
            "GATEKEEPER_WORKER_METRICS_PORT": "0",
            "GATEKEEPER_WORKER_INSTANCE_ID": "worker-1",
        }
    )

    assert (config.db_schema, config.batch_max_records) == ("ingest", 300)
    assert (config.batch_max_wait_s, config.metrics_port) == (0.25, 0)
    assert config.instance_id == "worker-1"


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("GATEKEEPER_WORKER_BATCH_MAX_RECORDS", "0"),
        ("GATEKEEPER_WORKER_BATCH_MAX_WAIT_MS", "soon"),
        ("GATEKEEPER_WORKER_METRICS_PORT", "80"),
        ("GATEKEEPER_WORKER_INSTANCE_ID", "has space"),
        ("GATEKEEPER_DB_SCHEMA", "Robert'); DROP"),
    ],
)
def test_a_bad_setting_is_refused_naming_its_variable(
    variable: str, value: str
) -> None:
    with pytest.raises(ConfigurationError, match=variable):
        WorkerConfig.from_env({variable: value})


def test_the_database_password_is_masked_in_the_start_up_log() -> None:
    config = WorkerConfig(database_url="postgresql://u:secret@db:5432/x")

    assert config.describe()["database"] == "postgresql://u:***@db:5432/x"


# --- wire format ----------------------------------------------------------------


def test_the_wire_header_gives_the_schema_id_and_body() -> None:
    schema_id, body = split(b"\x00\x00\x00\x01\x02body", "the value")

    assert (schema_id, bytes(body)) == (258, b"body")
    assert schema_id_of(b"\x00\x00\x00\x00\x07") == 7


@pytest.mark.parametrize(
    ("raw", "message"), [(b"\x00\x01", "fewer than"), (b"garbage!", "magic byte")]
)
def test_bytes_outside_the_wire_format_are_undecodable(
    raw: bytes, message: str
) -> None:
    with pytest.raises(RecordRejectedError, match=message) as caught:
        split(raw, "the value")

    assert caught.value.code is RejectCode.UNDECODABLE
    assert schema_id_of(raw) is None


# --- COPY text ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (None, "\\N"),
        ("tab\there\nline\\", "tab\\there\\nline\\\\"),
        (True, "t"),
        (12, "12"),
        (0.1, "0.1"),
        (float("inf"), "Infinity"),
        (b"\x00\xff", "\\\\x00ff"),
        (decimal.Decimal("12.30"), "12.30"),
        (datetime.date(2024, 2, 29), "2024-02-29"),
        (
            datetime.datetime(2024, 1, 1, 12, 0, tzinfo=datetime.UTC),
            "2024-01-01T12:00:00+00:00",
        ),
        (uuid.UUID(int=1), "00000000-0000-0000-0000-000000000001"),
    ],
)
def test_values_are_written_in_copy_text_format(value: object, text: str) -> None:
    assert encode(value) == text


# --- table evolution ------------------------------------------------------------

SHAPE = TableShape(
    (
        Column("id", "integer", True),
        Column("name", "text", True),
        Column("note", "text", False),
    ),
    ("id",),
)
FIELDS = {
    "id": {"name": "id", "type": "int"},
    "name": {"name": "name", "type": ["null", "string"]},
    "note": {"name": "note", "type": ["null", "string"]},
}


def test_a_new_field_becomes_a_nullable_column() -> None:
    fields = {**FIELDS, "seen_at": {"name": "seen_at", "type": _timestamp()}}

    evolution = plan_evolution(SHAPE, fields, ("id",))

    assert evolution.safe
    assert evolution.added == (
        Column("seen_at", "timestamp with time zone", not_null=False),
    )


def test_a_retyped_field_is_unsafe() -> None:
    fields = {**FIELDS, "name": {"name": "name", "type": ["null", "long"]}}

    evolution = plan_evolution(SHAPE, fields, ("id",))

    assert not evolution.safe
    assert (
        "column name is text but the version makes it bigint" in evolution.problems[0]
    )


def test_a_removed_not_null_field_and_a_new_key_are_unsafe() -> None:
    fields = {k: v for k, v in FIELDS.items() if k != "name"}

    evolution = plan_evolution(SHAPE, fields, ("id", "note"))

    assert len(evolution.problems) == 2
    assert "primary key" in evolution.problems[0]
    assert "NOT NULL" in evolution.problems[1]


def test_a_removed_nullable_field_keeps_its_column() -> None:
    fields = {k: v for k, v in FIELDS.items() if k != "note"}

    assert plan_evolution(SHAPE, fields, ("id",)).safe


def test_column_types_follow_the_contract_mapping() -> None:
    assert column_type(["null", _timestamp()]) == "timestamp with time zone"
    decimal_type = {"type": "bytes", "logicalType": "decimal", "precision": 9}
    assert column_type({**decimal_type, "scale": 2}) == "numeric(9,2)"


def test_record_errors_are_told_by_sqlstate_class() -> None:
    assert RECORD_ERROR_CLASSES["23"] is RejectCode.CONSTRAINT_VIOLATION
    assert "40" not in RECORD_ERROR_CLASSES, "serialization failures are retried"
    assert "08" not in RECORD_ERROR_CLASSES, "connection failures are retried"


def _timestamp() -> dict:
    return {"type": "long", "logicalType": "timestamp-micros"}
