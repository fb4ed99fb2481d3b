"""Declared SQL types: how they are read, and which contract fields they agree with."""

from __future__ import annotations

from typing import Any

import pytest

from contracts.catalogue import load_catalogue
from contracts.errors import ContractError, UnknownSqlTypeError
from contracts.sqltypes import (
    SqlType,
    agrees,
    avro_family,
    parse_sql_type,
    postgres_type,
    resolve_avro,
)
from tests.unit.avro_types import (
    DATE,
    DECIMAL_12_2,
    ENUM,
    FIXED_DECIMAL,
    LOCAL_MICROS,
    LOCAL_MILLIS,
    TS_MICROS,
    TS_MILLIS,
    UUID,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("INTEGER", SqlType("INTEGER")),
        ("int", SqlType("INTEGER")),
        ("Int4", SqlType("INTEGER")),
        ("BIGINT", SqlType("BIGINT")),
        ("int8", SqlType("BIGINT")),
        ("smallint", SqlType("SMALLINT")),
        ("INT2", SqlType("SMALLINT")),
        ("text", SqlType("TEXT")),
        ("VARCHAR", SqlType("VARCHAR")),
        ("varchar(20)", SqlType("VARCHAR", length=20)),
        ("  Character   Varying ( 20 ) ", SqlType("VARCHAR", length=20)),
        ("CHAR", SqlType("CHAR")),
        ("char(3)", SqlType("CHAR", length=3)),
        ("CHARACTER(3)", SqlType("CHAR", length=3)),
        ("boolean", SqlType("BOOLEAN")),
        ("BOOL", SqlType("BOOLEAN")),
        ("REAL", SqlType("REAL")),
        ("float4", SqlType("REAL")),
        ("double precision", SqlType("DOUBLE PRECISION")),
        ("DOUBLE\tPRECISION", SqlType("DOUBLE PRECISION")),
        ("DOUBLE", SqlType("DOUBLE PRECISION")),
        ("FLOAT8", SqlType("DOUBLE PRECISION")),
        ("float", SqlType("DOUBLE PRECISION")),
        ("NUMERIC", SqlType("NUMERIC")),
        ("numeric(7)", SqlType("NUMERIC", precision=7, scale=0)),
        ("NUMERIC(12,2)", SqlType("NUMERIC", precision=12, scale=2)),
        ("numeric ( 12 , 2 )", SqlType("NUMERIC", precision=12, scale=2)),
        ("DECIMAL(5, 5)", SqlType("NUMERIC", precision=5, scale=5)),
        ("decimal", SqlType("NUMERIC")),
        ("DATE", SqlType("DATE")),
        ("timestamp", SqlType("TIMESTAMP")),
        ("timestamp without time zone", SqlType("TIMESTAMP")),
        ("TIMESTAMPTZ", SqlType("TIMESTAMPTZ")),
        ("Timestamp  With Time Zone", SqlType("TIMESTAMPTZ")),
        ("uuid", SqlType("UUID")),
        ("BYTEA", SqlType("BYTEA")),
    ],
)
def test_parse_sql_type_reads_every_spelling(text: str, expected: SqlType) -> None:
    assert parse_sql_type(text) == expected


@pytest.mark.parametrize(
    "given",
    [
        "STRING",
        "",
        "   ",
        "INTEGER UNSIGNED",
        "TIMESTAMP WITH LOCAL TIME ZONE",
        "INT(4)",
        "BOOLEAN()",
        "TIMESTAMP(3)",
        "VARCHAR(0)",
        "VARCHAR(10485761)",
        "VARCHAR(1234567890)",
        "VARCHAR(2,1)",
        "VARCHAR(-1)",
        "VARCHAR(20",
        "NUMERIC(0)",
        "NUMERIC(1001)",
        "NUMERIC(3,4)",
        "NUMERIC(12,2,1)",
        "NUMERIC(12,)",
        "\u0131nt",
        "INT;",
        5,
        None,
    ],
)
def test_parse_sql_type_refuses_what_it_does_not_know(given: Any) -> None:
    with pytest.raises(UnknownSqlTypeError) as caught:
        parse_sql_type(given)

    assert caught.value.given == given


def test_unknown_sql_type_says_why_when_parameters_are_wrong() -> None:
    with pytest.raises(UnknownSqlTypeError, match="scale must not exceed precision"):
        parse_sql_type("NUMERIC(3,4)")


@pytest.mark.parametrize(
    ("avro_type", "family"),
    [
        ("int", "int"),
        ("long", "long"),
        ("float", "float"),
        ("double", "double"),
        ("boolean", "boolean"),
        ("string", "string"),
        ("bytes", "bytes"),
        ({"type": "string"}, "string"),
        (ENUM, "enum"),
        (DECIMAL_12_2, "decimal"),
        (FIXED_DECIMAL, "decimal"),
        (DATE, "date"),
        (TS_MILLIS, "timestamp"),
        (TS_MICROS, "timestamp"),
        (LOCAL_MILLIS, "timestamp"),
        (LOCAL_MICROS, "timestamp"),
        (UUID, "uuid"),
        (["null", "int"], "int"),
        (["long", "null"], "long"),
        (["null", UUID], "uuid"),
        (["string"], "string"),
        # The specification ignores a logical type it does not know, or on the
        # wrong base type, and so does the catalogue.
        ({"type": "string", "logicalType": "emoji"}, "string"),
        ({"type": "int", "logicalType": "uuid"}, "int"),
        ({"type": "long", "logicalType": ["date"]}, "long"),
    ],
)
def test_avro_family(avro_type: Any, family: str) -> None:
    assert avro_family(avro_type) == family


@pytest.mark.parametrize(
    "avro_type",
    [
        "null",
        ["null"],
        ["int", "string"],
        ["null", "int", "string"],
        "order_status",
        {"type": "record", "name": "r", "fields": []},
        {"type": "array", "items": "int"},
        {"type": "map", "values": "int"},
        {"type": "fixed", "name": "f", "size": 4},
        {"type": ["null", "int"]},
        {"type": "int", "logicalType": "time-millis"},
        {"type": "long", "logicalType": "time-micros"},
        {"type": "long", "logicalType": "timestamp-nanos"},
        {"type": "fixed", "name": "d", "size": 12, "logicalType": "duration"},
        {"type": "bytes", "logicalType": "decimal"},
        {"type": "bytes", "logicalType": "decimal", "precision": 0},
        {"type": "bytes", "logicalType": "decimal", "precision": 4, "scale": 5},
        {"type": "bytes", "logicalType": "decimal", "precision": "12"},
        42,
    ],
)
def test_unsupported_avro_types_are_contract_errors(avro_type: Any) -> None:
    with pytest.raises(ContractError):
        avro_family(avro_type)


def test_resolve_avro_reports_nullability_and_decimal_shape() -> None:
    resolved = resolve_avro(["null", DECIMAL_12_2])

    assert resolved.kind == "decimal"
    assert resolved.nullable
    assert (resolved.precision, resolved.scale) == (12, 2)
    assert not resolve_avro("int").nullable


@pytest.mark.parametrize(
    ("declared", "avro_type"),
    [
        ("INTEGER", "int"),
        ("SMALLINT", "int"),
        ("BIGINT", "long"),
        ("TEXT", "string"),
        ("VARCHAR(20)", "string"),
        ("CHAR(2)", ["null", "string"]),
        ("TEXT", ENUM),
        ("BOOLEAN", "boolean"),
        ("REAL", "float"),
        ("DOUBLE PRECISION", "double"),
        ("FLOAT", "double"),
        ("NUMERIC", DECIMAL_12_2),
        ("NUMERIC(12,2)", DECIMAL_12_2),
        ("DECIMAL(18,4)", FIXED_DECIMAL),
        ("NUMERIC(3)", {"type": "bytes", "logicalType": "decimal", "precision": 3}),
        ("DATE", DATE),
        ("TIMESTAMP", TS_MICROS),
        ("TIMESTAMPTZ", TS_MILLIS),
        ("TIMESTAMP", LOCAL_MICROS),
        ("UUID", UUID),
        ("BYTEA", "bytes"),
    ],
)
def test_agrees(declared: str, avro_type: Any) -> None:
    assert agrees(parse_sql_type(declared), avro_type)


@pytest.mark.parametrize(
    ("declared", "avro_type"),
    [
        ("INTEGER", "long"),
        ("BIGINT", "int"),
        ("SMALLINT", "long"),
        ("INTEGER", "string"),
        ("TEXT", UUID),
        ("TEXT", "bytes"),
        ("VARCHAR", "int"),
        ("BOOLEAN", "int"),
        ("REAL", "double"),
        ("DOUBLE PRECISION", "float"),
        ("NUMERIC", "double"),
        ("DOUBLE PRECISION", DECIMAL_12_2),
        ("NUMERIC(12,3)", DECIMAL_12_2),
        ("NUMERIC(10,2)", DECIMAL_12_2),
        ("NUMERIC(12)", DECIMAL_12_2),
        ("DATE", TS_MICROS),
        ("TIMESTAMP", DATE),
        ("TIMESTAMPTZ", "long"),
        ("UUID", "string"),
        ("BYTEA", "string"),
    ],
)
def test_disagrees(declared: str, avro_type: Any) -> None:
    assert not agrees(parse_sql_type(declared), avro_type)


def test_a_hand_made_sql_type_with_an_unknown_name_agrees_with_nothing() -> None:
    assert not agrees(SqlType("STRING"), "string")


@pytest.mark.parametrize(
    ("avro_type", "expected"),
    [
        ("int", "integer"),
        ("long", "bigint"),
        ("float", "real"),
        ("double", "double precision"),
        ("boolean", "boolean"),
        ("string", "text"),
        (ENUM, "text"),
        ("bytes", "bytea"),
        (DECIMAL_12_2, "numeric(12,2)"),
        (FIXED_DECIMAL, "numeric(18,4)"),
        ({"type": "bytes", "logicalType": "decimal", "precision": 3}, "numeric(3,0)"),
        (DATE, "date"),
        (TS_MILLIS, "timestamptz"),
        (TS_MICROS, "timestamptz"),
        (LOCAL_MILLIS, "timestamp"),
        (LOCAL_MICROS, "timestamp"),
        (UUID, "uuid"),
        (["null", "long"], "bigint"),
    ],
)
def test_postgres_type(avro_type: Any, expected: str) -> None:
    assert postgres_type(avro_type) == expected


@pytest.mark.parametrize(
    ("table", "field"),
    [
        (contract.table, name)
        for contract in load_catalogue().values()
        for name in contract.fields
    ],
)
def test_every_contract_field_has_a_family_and_a_column_type(
    table: str, field: str
) -> None:
    avro_type = load_catalogue()[table].fields[field]["type"]

    assert avro_family(avro_type)
    assert postgres_type(avro_type)
