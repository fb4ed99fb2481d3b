"""Activities for the test contracts of tests/plugins/gateway.py, valid by default."""

from __future__ import annotations

from typing import Any

# One valid value per column of ``rich_contract``, in canonical JSON form.
RICH_VALUES: dict[str, Any] = {
    "id": 1,
    "small": 2,
    "ratio": 0.5,
    "amount": 2.25,
    "flag": True,
    "label": "hello",
    "state": "NEW",
    "blob": "AAEC",
    "price": "12.30",
    "day": "2026-01-02",
    "at_ms": "2026-01-02T03:04:05.678+00:00",
    "at_us": "2026-01-02T03:04:05.123456+00:00",
    "local_ms": "2026-01-02T03:04:05.678",
    "local_us": "2026-01-02T03:04:05.123456",
    "ref": "1b4e28ba-2fa1-11d2-883f-0016d3cca427",
    "note": None,
    "score": 3,
    "active": True,
}

# The SQL type a sender would declare for each rich column.
RICH_TYPES: dict[str, str] = {
    "id": "BIGINT",
    "small": "INTEGER",
    "ratio": "REAL",
    "amount": "DOUBLE PRECISION",
    "flag": "BOOLEAN",
    "label": "TEXT",
    "state": "VARCHAR",
    "blob": "BYTEA",
    "price": "NUMERIC(8,2)",
    "day": "DATE",
    "at_ms": "TIMESTAMPTZ",
    "at_us": "TIMESTAMPTZ",
    "local_ms": "TIMESTAMP",
    "local_us": "TIMESTAMP",
    "ref": "UUID",
    "note": "TEXT",
    "score": "INTEGER",
    "active": "BOOLEAN",
}

KEYLESS_VALUES: dict[str, Any] = {
    "seen_at": "2026-01-02T03:04:05.000001+00:00",
    "path": "/home",
    "visitor": None,
}

PAIR_VALUES: dict[str, Any] = {"region": "eu", "seq": 1, "qty": 5, "memo": "first"}

VALUES = {"rich": RICH_VALUES, "keyless": KEYLESS_VALUES, "pair": PAIR_VALUES}


def columns(values: dict[str, Any], types: dict[str, str] | None = None) -> list:
    """The ``column`` list of an activity, with declared types where given."""
    listed = []
    for name, value in values.items():
        column: dict[str, Any] = {"name": name, "value": value}
        if types and name in types:
            column["type"] = types[name]
        listed.append(column)
    return listed


def activity(
    operation: str,
    table: str,
    values: dict[str, Any],
    types: dict[str, str] | None = None,
) -> dict[str, Any]:
    return {"operation": operation, "table": table, "column": columns(values, types)}


def payload(*activities: dict[str, Any]) -> dict[str, Any]:
    return {"activities": list(activities)}


def rich(table: str, operation: str = "insert", **changes: Any) -> dict[str, Any]:
    """A rich activity: every column, declared types, ``changes`` applied.

    A change to the marker ``DROP`` leaves the column out.
    """
    values = {**RICH_VALUES, **changes}
    values = {k: v for k, v in values.items() if v is not DROP}
    return activity(operation, table, values, RICH_TYPES)


class _Drop:
    def __repr__(self) -> str:
        return "DROP"


DROP: Any = _Drop()
