"""Every validation rule of an activity: one request that obeys it, one that breaks it.

The valid request is really produced (202); the invalid one must be answered
with the rule's status, pointer and code, and nothing of it may reach Kafka.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import pytest

from tests.gateway.builders import (
    DROP,
    KEYLESS_VALUES,
    PAIR_VALUES,
    RICH_TYPES,
    RICH_VALUES,
    activity,
    payload,
    rich,
)
from tests.plugins.gateway import Gateway, KafkaProbe

Tables = Mapping[str, str]


def at(name: str, part: str = "value", index: int = 0) -> str:
    """The pointer to a rich column's member, by the column's name."""
    position = list(RICH_VALUES).index(name)
    return f"/activities/{index}/column/{position}/{part}"


@dataclass(frozen=True)
class Rule:
    name: str
    valid: Callable[[Tables], dict[str, Any]]
    invalid: Callable[[Tables], dict[str, Any]]
    pointer: str
    code: str


def _rich_with(**changes: Any) -> Callable[[Tables], dict[str, Any]]:
    return lambda t: payload(rich(t["rich"], **changes))


def _rich_columns(operation: str, **values: Any) -> Callable[[Tables], dict]:
    return lambda t: payload(activity(operation, t["rich"], values))


def _keyless(operation: str) -> Callable[[Tables], dict[str, Any]]:
    return lambda t: payload(activity(operation, t["keyless"], KEYLESS_VALUES))


def _pair(operation: str, **values: Any) -> Callable[[Tables], dict[str, Any]]:
    return lambda t: payload(activity(operation, t["pair"], values))


def _extra_column(name: str, value: Any = 1) -> Callable[[Tables], dict[str, Any]]:
    def build(t: Tables) -> dict[str, Any]:
        body = payload(rich(t["rich"]))
        body["activities"][0]["column"].append({"name": name, "value": value})
        return body

    return build


def _declared(name: str, sql_type: Any) -> Callable[[Tables], dict[str, Any]]:
    def build(t: Tables) -> dict[str, Any]:
        body = payload(rich(t["rich"]))
        column = body["activities"][0]["column"][list(RICH_VALUES).index(name)]
        column["type"] = sql_type
        return body

    return build


def _without_types(t: Tables) -> dict[str, Any]:
    return payload(activity("insert", t["rich"], RICH_VALUES))


END = len(RICH_VALUES)

RULES = [
    # The operation: one of four, and allowed for the contract.
    Rule(
        "operation is known",
        _rich_with(),
        lambda t: payload({**rich(t["rich"]), "operation": "merge"}),
        "/activities/0/operation",
        "invalid_operation",
    ),
    Rule(
        "keyless contract accepts insert only",
        _keyless("insert"),
        _keyless("upsert"),
        "/activities/0/operation",
        "operation_not_allowed",
    ),
    Rule(
        "table has a contract",
        _rich_with(),
        lambda t: payload({**rich(t["rich"]), "table": "no_such_table"}),
        "/activities/0/table",
        "unknown_table",
    ),
    # Column names.
    Rule(
        "column exists",
        _rich_with(),
        _extra_column("bogus"),
        f"/activities/0/column/{END}/name",
        "unknown_column",
    ),
    Rule(
        "column appears once",
        _rich_with(),
        _extra_column("small", 3),
        f"/activities/0/column/{END}/name",
        "duplicate_column",
    ),
    Rule(
        "column is not reserved",
        _rich_with(),
        _extra_column("_gk_schema_version"),
        f"/activities/0/column/{END}/name",
        "reserved_column",
    ),
    # Declared SQL types, case-insensitive and in their common spellings.
    Rule(
        "declared type agrees (int4, lower case)",
        _declared("small", "int4"),
        _declared("small", "TEXT"),
        at("small", "type"),
        "type_mismatch",
    ),
    Rule(
        "declared type agrees (character varying)",
        _declared("label", "character varying(20)"),
        _declared("label", "INTEGER"),
        at("label", "type"),
        "type_mismatch",
    ),
    Rule(
        "declared numeric precision and scale agree",
        _declared("price", "decimal(8, 2)"),
        _declared("price", "NUMERIC(10,2)"),
        at("price", "type"),
        "type_mismatch",
    ),
    Rule(
        "declared timestamp agrees (timestamp with time zone)",
        _declared("at_us", "timestamp with time zone"),
        _declared("at_us", "DATE"),
        at("at_us", "type"),
        "type_mismatch",
    ),
    Rule(
        "declared type is a SQL type",
        _without_types,
        _declared("small", "INTEGR"),
        at("small", "type"),
        "unknown_type",
    ),
    # Values: ranges, kinds, exactness.
    Rule(
        "int32 range",
        _rich_with(small=2**31 - 1),
        _rich_with(small=2**31),
        at("small"),
        "out_of_range",
    ),
    Rule(
        "int64 range",
        _rich_with(id=-(2**63)),
        _rich_with(id=2**63),
        at("id"),
        "out_of_range",
    ),
    Rule(
        "a boolean is not a number",
        _rich_with(flag=False),
        _rich_with(flag=1),
        at("flag"),
        "wrong_type",
    ),
    Rule(
        "a number is not a boolean",
        _rich_with(small=0),
        _rich_with(small=True),
        at("small"),
        "wrong_type",
    ),
    Rule(
        "integral types reject fractions",
        _rich_with(small=7),
        _rich_with(small=7.5),
        at("small"),
        "not_integral",
    ),
    Rule(
        "integral types reject a written fraction of zero",
        _rich_with(id=7),
        _rich_with(id=7.0),
        at("id"),
        "not_integral",
    ),
    Rule(
        "float fits float32",
        _rich_with(ratio=3.0e38),
        _rich_with(ratio=1.0e39),
        at("ratio"),
        "out_of_range",
    ),
    Rule(
        "decimal keeps its scale",
        _rich_with(price="12.3"),
        _rich_with(price="12.345"),
        at("price"),
        "decimal_scale",
    ),
    Rule(
        "decimal keeps its precision",
        _rich_with(price="999999.99"),
        _rich_with(price="1000000.00"),
        at("price"),
        "decimal_precision",
    ),
    Rule(
        "decimal is never a JSON float",
        _rich_with(price=12),
        _rich_with(price=12.3),
        at("price"),
        "inexact_decimal",
    ),
    Rule(
        "date parses",
        _rich_with(day="2024-02-29"),
        _rich_with(day="2023-02-29"),
        at("day"),
        "invalid_date",
    ),
    Rule(
        "timestamp parses",
        _rich_with(at_us="2026-01-02 03:04:05+02:00"),
        _rich_with(at_us="2026-13-02T03:04:05Z"),
        at("at_us"),
        "invalid_timestamp",
    ),
    Rule(
        "timestamp keeps its unit",
        _rich_with(at_ms="2026-01-02T03:04:05.678000Z"),
        _rich_with(at_ms="2026-01-02T03:04:05.6781Z"),
        at("at_ms"),
        "timestamp_precision",
    ),
    Rule(
        "local timestamp has no offset",
        _rich_with(local_us="2026-01-02T03:04:05"),
        _rich_with(local_us="2026-01-02T03:04:05+01:00"),
        at("local_us"),
        "offset_not_allowed",
    ),
    Rule(
        "uuid is well formed",
        _rich_with(ref="1B4E28BA-2FA1-11D2-883F-0016D3CCA427"),
        _rich_with(ref="1b4e28ba-2fa1-11d2-883f"),
        at("ref"),
        "invalid_uuid",
    ),
    Rule(
        "bytes are base64",
        _rich_with(blob=""),
        _rich_with(blob="AAE"),
        at("blob"),
        "invalid_base64",
    ),
    Rule(
        "enum is one of the symbols",
        _rich_with(state="OLD"),
        _rich_with(state="old"),
        at("state"),
        "not_a_symbol",
    ),
    Rule(
        "text holds no NUL",
        _rich_with(label="tab\there"),
        _rich_with(label="nul\u0000here"),
        at("label"),
        "invalid_text",
    ),
    Rule(
        "null only where nullable",
        _rich_with(note=None),
        _rich_with(label=None),
        at("label"),
        "null_not_allowed",
    ),
    Rule(
        "a column has a value",
        _rich_with(),
        lambda t: payload(
            {**rich(t["rich"]), "column": [{"name": "id", "type": "BIGINT"}]}
        ),
        "/activities/0/column/0",
        "value_missing",
    ),
    # Which columns each operation carries.
    Rule(
        "insert carries every required column (nullable and defaulted may go)",
        _rich_with(note=DROP, score=DROP, active=DROP),
        _rich_with(label=DROP),
        "/activities/0/column",
        "required_missing",
    ),
    Rule(
        "upsert carries every required column",
        lambda t: payload(rich(t["rich"], "upsert", note=DROP)),
        lambda t: payload(rich(t["rich"], "upsert", day=DROP)),
        "/activities/0/column",
        "required_missing",
    ),
    Rule(
        "insert carries the key",
        _rich_with(),
        _rich_with(id=DROP),
        "/activities/0/column",
        "key_missing",
    ),
    Rule(
        "update carries the key",
        _rich_columns("update", id=1, label="changed"),
        _rich_columns("update", label="changed"),
        "/activities/0/column",
        "key_missing",
    ),
    Rule(
        "update carries a column besides the key",
        _rich_columns("update", id=1, note=None),
        _rich_columns("update", id=1),
        "/activities/0/column",
        "nothing_to_update",
    ),
    Rule(
        "delete carries the key",
        _rich_columns("delete", id=1),
        _rich_columns("delete", label="x"),
        "/activities/0/column",
        "key_missing",
    ),
    Rule(
        "delete carries the key only",
        _pair("delete", region="eu", seq=1),
        _pair("delete", region="eu", seq=1, qty=3),
        "/activities/0/column/2",
        "delete_with_values",
    ),
    Rule(
        "a composite key is carried whole",
        _pair("upsert", **PAIR_VALUES),
        _pair("upsert", region="eu", qty=3),
        "/activities/0/column",
        "key_missing",
    ),
    # The shape of an activity.
    Rule(
        "an activity is an object",
        _rich_with(),
        lambda t: payload(rich(t["rich"]), ["insert"]),
        "/activities/1",
        "not_an_object",
    ),
    Rule(
        "an activity has no unknown member",
        _rich_with(),
        lambda t: payload({**rich(t["rich"]), "columns": []}),
        "/activities/0/columns",
        "unknown_member",
    ),
    Rule(
        "a column has no unknown member",
        _rich_with(),
        lambda t: payload(
            activity("insert", t["rich"], RICH_VALUES)
            | {"column": [{"name": "id", "value": 1, "typ": "BIGINT"}]}
        ),
        "/activities/0/column/0/typ",
        "unknown_member",
    ),
    Rule(
        "column is a non-empty list",
        _rich_with(),
        lambda t: payload({**rich(t["rich"]), "column": []}),
        "/activities/0/column",
        "columns_missing",
    ),
    Rule(
        "a column is an object with a name",
        _rich_with(),
        lambda t: payload({**rich(t["rich"]), "column": [{"value": 1}]}),
        "/activities/0/column/0/name",
        "invalid_column",
    ),
    Rule(
        "the body is an object",
        _rich_with(),
        lambda t: [rich(t["rich"])],
        "",
        "not_an_object",
    ),
    Rule(
        "activities is a non-empty list",
        _rich_with(),
        lambda t: {"activities": []},
        "/activities",
        "activities_missing",
    ),
    Rule(
        "the body has no unknown member",
        _rich_with(),
        lambda t: {**payload(rich(t["rich"])), "dry_run": True},
        "/dry_run",
        "unknown_member",
    ),
]


@pytest.mark.parametrize("rule", RULES, ids=[r.name for r in RULES])
def test_rule(rule: Rule, gateway: Gateway, kafka: KafkaProbe) -> None:
    tables = gateway.contracts.tables
    valid = gateway.post(rule.valid(tables))
    assert valid.status_code == 202, valid.get_json()

    kafka.mark(gateway.contracts.topics)
    invalid = gateway.post(rule.invalid(tables))

    assert invalid.status_code == 422
    assert invalid.mimetype == "application/problem+json"
    found = {(e.get("pointer"), e["code"]) for e in invalid.get_json()["errors"]}
    assert (rule.pointer, rule.code) in found, invalid.get_json()
    assert kafka.records_since_mark() == []


def test_every_violation_is_reported_with_its_contract_version(
    gateway: Gateway, kafka: KafkaProbe
) -> None:
    tables = gateway.contracts.tables
    body = payload(
        rich(tables["rich"], small="2", flag=None),
        activity("update", tables["keyless"], KEYLESS_VALUES),
        rich(tables["rich"]),
        activity("insert", "nowhere", {"a": 1}),
    )
    kafka.mark(gateway.contracts.topics)

    response = gateway.post(body)

    errors = response.get_json()["errors"]
    assert response.status_code == 422
    assert [(e["pointer"], e["code"]) for e in errors] == [
        (at("small"), "wrong_type"),
        (at("flag"), "null_not_allowed"),
        ("/activities/1/operation", "operation_not_allowed"),
        ("/activities/3/table", "unknown_table"),
    ]
    first = errors[0]
    assert first["subject"] == f"activities.{tables['rich']}-value"
    assert first["version"] == 1
    assert first["expected"] == "an int32"
    assert first["given"] == "2"
    assert first["detail"] == 'small must be an int32, not "2"'
    assert kafka.records_since_mark() == []


def test_declared_types_are_optional_and_every_canonical_name_is_accepted(
    gateway: Gateway,
) -> None:
    body = payload(rich(gateway.contracts.tables["rich"]))
    for column in body["activities"][0]["column"]:
        column["type"] = RICH_TYPES[column["name"]].lower()

    assert gateway.post(body).status_code == 202
