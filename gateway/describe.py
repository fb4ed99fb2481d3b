"""What ``/contracts`` and the OpenAPI document say about each contract.

One place turns a contract field into the words and JSON Schema a sender needs:
which SQL type names agree with it, which PostgreSQL column it becomes, and what
JSON value it accepts (``gateway.validation`` and ``contracts.conversion`` hold
the rules; the schemas here describe them and are never stricter).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from contracts.catalogue import Contract
from contracts.sqltypes import (
    AvroType,
    agrees,
    parse_sql_type,
    postgres_type,
    resolve_avro,
)
from gateway.validation import KEYLESS_OPERATIONS, Operation

# The canonical SQL type names a sender may declare (other spellings such as INT,
# INT4 or "character varying" are accepted too, case-insensitively).
SQL_TYPE_NAMES = (
    "INTEGER",
    "SMALLINT",
    "BIGINT",
    "TEXT",
    "VARCHAR",
    "CHAR",
    "BOOLEAN",
    "REAL",
    "DOUBLE PRECISION",
    "NUMERIC",
    "DATE",
    "TIMESTAMP",
    "TIMESTAMPTZ",
    "UUID",
    "BYTEA",
)

_DECIMAL_PATTERN = r"^-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?$"
_DATE_PATTERN = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
_TIME_PATTERN = r"[T ][0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:\.[0-9]+)?)?"
_OFFSET_PATTERN = r"(?:Z|[+-][0-9]{2}:[0-9]{2})?"
_UUID_PATTERN = (
    r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
)
_BASE64_PATTERN = r"^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$"


def _integer(bits: int) -> dict[str, Any]:
    return {
        "type": "integer",
        "minimum": -(2 ** (bits - 1)),
        "maximum": 2 ** (bits - 1) - 1,
        "description": f"an int{bits}, written without a fraction",
    }


def _timestamp(unit: str, offset: bool) -> dict[str, Any]:
    pattern = "^" + _DATE_PATTERN[1:-1] + _TIME_PATTERN
    if offset:
        pattern += _OFFSET_PATTERN
        words = f"an ISO 8601 timestamp, at most {unit} precision; no offset means UTC"
    else:
        words = f"an ISO 8601 timestamp without offset, at most {unit} precision"
    return {"type": "string", "pattern": pattern + "$", "description": words}


# JSON Schema of the value a field accepts, by kind.
_VALUE_SCHEMAS: dict[str, dict[str, Any]] = {
    "int": _integer(32),
    "long": _integer(64),
    "float": {"type": "number", "description": "a finite number within float32"},
    "double": {"type": "number", "description": "a finite number"},
    "boolean": {"type": "boolean"},
    "string": {"type": "string", "description": "text without NUL characters"},
    "bytes": {
        "type": "string",
        "pattern": _BASE64_PATTERN,
        "contentEncoding": "base64",
        "description": "standard base64 with padding",
    },
    "date": {"type": "string", "pattern": _DATE_PATTERN, "description": "YYYY-MM-DD"},
    "timestamp-millis": _timestamp("millisecond", True),
    "timestamp-micros": _timestamp("microsecond", True),
    "local-timestamp-millis": _timestamp("millisecond", False),
    "local-timestamp-micros": _timestamp("microsecond", False),
    "uuid": {"type": "string", "pattern": _UUID_PATTERN, "description": "a UUID"},
}


def value_schema(avro_type: Any) -> dict[str, Any]:
    """The JSON Schema of the values a field of ``avro_type`` accepts."""
    resolved = resolve_avro(avro_type)
    schema = _kind_schema(resolved)
    if resolved.nullable:
        return {"anyOf": [schema, {"type": "null"}]}
    return schema


def _kind_schema(resolved: AvroType) -> dict[str, Any]:
    if resolved.kind == "enum":
        return {"type": "string", "enum": list(resolved.symbols)}
    if resolved.kind == "decimal":
        words = (
            f"a decimal of at most {resolved.precision - resolved.scale} digits "
            f"before and {resolved.scale} after the point, as a string or an integer"
        )
        return {
            "anyOf": [
                {"type": "string", "pattern": _DECIMAL_PATTERN},
                {"type": "integer"},
            ],
            "description": words,
        }
    return dict(_VALUE_SCHEMAS[resolved.kind])


def declared_types(avro_type: Any) -> list[str]:
    """The SQL type names a sender may declare for the field, canonical first."""
    resolved = resolve_avro(avro_type)
    names = [n for n in SQL_TYPE_NAMES if agrees(parse_sql_type(n), avro_type)]
    if resolved.kind == "decimal":
        names.insert(0, f"NUMERIC({resolved.precision},{resolved.scale})")
    return names


def operations(contract: Contract) -> list[str]:
    allowed = Operation if contract.is_keyed else KEYLESS_OPERATIONS
    return [operation.value for operation in allowed]


def summary(contract: Contract) -> dict[str, Any]:
    """One entry of ``GET /contracts``."""
    return {
        "table": contract.table,
        "doc": contract.schema.get("doc", ""),
        "topic": contract.topic,
        "primary_key": list(contract.primary_key),
        "operations": operations(contract),
        "href": f"/contracts/{contract.table}",
    }


def detail(
    contract: Contract, registered: Mapping[str, Any], versions: list[int]
) -> dict[str, Any]:
    """``GET /contracts/<table>``: fields, types, key and registered versions."""
    return {
        **summary(contract),
        "value_subject": contract.value_subject,
        "key_subject": contract.key_subject if contract.is_keyed else None,
        "compatibility": contract.compatibility,
        "registered": dict(registered),
        "versions": versions,
        "fields": [_field(contract, f) for f in contract.schema["fields"]],
    }


def _field(contract: Contract, avro_field: Mapping[str, Any]) -> dict[str, Any]:
    avro_type = avro_field["type"]
    resolved = resolve_avro(avro_type)
    described = {
        "name": avro_field["name"],
        "doc": avro_field.get("doc", ""),
        "avro_type": avro_type,
        "postgres_type": postgres_type(avro_type),
        "declared_types": declared_types(avro_type),
        "nullable": resolved.nullable,
        "in_primary_key": avro_field["name"] in contract.primary_key,
        "required_on_insert": not resolved.nullable and "default" not in avro_field,
        "value": value_schema(avro_type),
    }
    if "default" in avro_field:
        described["default"] = avro_field["default"]
    return described
