"""Check a request's activities against their contracts and build their Avro datums.

Validation is all-or-nothing per request and reports every violation, not the first:
a sender fixes a batch in one round trip.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from contracts.catalogue import RESERVED_PREFIX, Contract
from contracts.conversion import to_datum
from contracts.errors import ConversionError, UnknownSqlTypeError
from contracts.sqltypes import agrees, parse_sql_type


class Operation(enum.StrEnum):
    INSERT = "insert"
    UPDATE = "update"
    UPSERT = "upsert"
    DELETE = "delete"


@dataclass(frozen=True)
class Violation:
    """One broken rule, located by a JSON pointer into the request."""

    pointer: str
    code: str
    message: str
    expected: str | None = None
    given: Any = None
    subject: str | None = None

    def as_json(self) -> dict[str, Any]:
        item = {"pointer": self.pointer, "code": self.code, "detail": self.message}
        if self.subject is not None:
            item["subject"] = self.subject
        if self.expected is not None:
            item["expected"] = self.expected
            item["given"] = self.given
        return item


@dataclass(frozen=True)
class Activity:
    """A valid activity: the contract it obeys and the datum to write."""

    index: int
    operation: Operation
    contract: Contract
    datum: dict[str, Any] = field(repr=False)
    columns: tuple[str, ...]

    @property
    def key(self) -> dict[str, Any] | None:
        if not self.contract.is_keyed:
            return None
        return {name: self.datum[name] for name in self.contract.primary_key}


def check_payload(
    payload: Any, catalogue: Mapping[str, Contract], max_activities: int
) -> tuple[list[Activity], list[Violation]]:
    """Check the request body; return its activities and every violation found."""
    if not isinstance(payload, dict):
        return [], [Violation("", "not_an_object", "the body must be a JSON object")]
    activities = payload.get("activities")
    if not isinstance(activities, list) or not activities:
        message = "activities must be a non-empty list"
        return [], [Violation("/activities", "activities_missing", message)]
    if len(activities) > max_activities:
        message = (
            f"at most {max_activities} activities per request, not {len(activities)}"
        )
        return [], [Violation("/activities", "too_many_activities", message)]

    valid, violations = [], []
    for index, raw in enumerate(activities):
        activity, found = check_activity(index, raw, catalogue)
        violations.extend(found)
        if activity is not None:
            valid.append(activity)
    return valid, violations


def check_activity(
    index: int, raw: Any, catalogue: Mapping[str, Contract]
) -> tuple[Activity | None, list[Violation]]:
    """Check one activity; the datum is built only when nothing is wrong."""
    where = f"/activities/{index}"
    if not isinstance(raw, dict):
        return None, [Violation(where, "not_an_object", "an activity is a JSON object")]

    violations = []
    operation = _operation(raw.get("operation"), where, violations)
    contract = _contract(raw.get("table"), where, catalogue, violations)
    columns = raw.get("column")
    if not isinstance(columns, list):
        message = "column must be a list of {name, type, value} objects"
        violations.append(Violation(f"{where}/column", "columns_missing", message))
    if violations or contract is None or operation is None:
        return None, violations

    datum = _columns(contract, columns, f"{where}/column", violations)
    _check_operation(operation, contract, datum, where, violations)
    if violations:
        return None, violations

    if operation in (Operation.INSERT, Operation.UPSERT):
        _fill_defaults(contract, datum)
    full = {name: datum.get(name) for name in contract.fields}
    return Activity(index, operation, contract, full, tuple(datum)), []


def _fill_defaults(contract: Contract, datum: dict[str, Any]) -> None:
    """Write the contract's defaults for columns an insert leaves out.

    The value schema on the wire makes every non-key field optional, so a default
    that is not written here would reach the table as null.
    """
    for name, avro_field in contract.fields.items():
        if name not in datum and avro_field.get("default") is not None:
            datum[name] = to_datum(avro_field["type"], avro_field["default"])


def _operation(value: Any, where: str, violations: list[Violation]) -> Operation | None:
    try:
        return Operation(value)
    except ValueError:
        allowed = ", ".join(op.value for op in Operation)
        violations.append(
            Violation(
                f"{where}/operation",
                "invalid_operation",
                f"operation must be one of {allowed}",
                expected=allowed,
                given=value,
            )
        )
        return None


def _contract(
    table: Any,
    where: str,
    catalogue: Mapping[str, Contract],
    violations: list[Violation],
) -> Contract | None:
    contract = catalogue.get(table) if isinstance(table, str) else None
    if contract is None:
        violations.append(
            Violation(
                f"{where}/table",
                "unknown_table",
                f"table {table!r} has no contract",
                expected="one of " + ", ".join(sorted(catalogue)),
                given=table,
            )
        )
    return contract


def _columns(
    contract: Contract, columns: list, where: str, violations: list[Violation]
) -> dict[str, Any]:
    """Convert each column's value to its Avro datum; collect what is wrong."""
    datum: dict[str, Any] = {}
    fields = contract.fields
    for position, column in enumerate(columns):
        at = f"{where}/{position}"
        if not isinstance(column, dict) or not isinstance(column.get("name"), str):
            message = "a column is an object with a string name"
            violations.append(Violation(at, "invalid_column", message))
            continue

        name = column["name"]
        if name.startswith(RESERVED_PREFIX):
            message = f"column {name!r} uses the reserved prefix {RESERVED_PREFIX}"
            violations.append(Violation(f"{at}/name", "reserved_column", message))
            continue
        if name not in fields:
            violations.append(
                Violation(
                    f"{at}/name",
                    "unknown_column",
                    f"table {contract.table} has no column {name!r}",
                    expected="one of " + ", ".join(fields),
                    given=name,
                    subject=contract.value_subject,
                )
            )
            continue
        if name in datum:
            message = f"column {name!r} appears more than once"
            violations.append(Violation(f"{at}/name", "duplicate_column", message))
            continue

        avro_type = fields[name]["type"]
        if "type" in column and not _type_agrees(column["type"], avro_type):
            violations.append(
                Violation(
                    f"{at}/type",
                    "type_mismatch",
                    f"column {name!r} is not {column['type']!r} in the contract",
                    given=column["type"],
                    subject=contract.value_subject,
                    expected=str(avro_type),
                )
            )
            continue
        if "value" not in column:
            message = f"column {name!r} has no value"
            violations.append(Violation(at, "value_missing", message))
            continue

        try:
            datum[name] = to_datum(avro_type, column["value"])
        except ConversionError as exc:
            violations.append(
                Violation(
                    f"{at}/value",
                    exc.code,
                    f"{name} {exc}",
                    expected=exc.expected,
                    given=exc.given,
                    subject=contract.value_subject,
                )
            )
    return datum


def _type_agrees(declared: Any, avro_type: Any) -> bool:
    if not isinstance(declared, str):
        return False
    try:
        return agrees(parse_sql_type(declared), avro_type)
    except UnknownSqlTypeError:
        return False


def _check_operation(
    operation: Operation,
    contract: Contract,
    datum: Mapping[str, Any],
    where: str,
    violations: list[Violation],
) -> None:
    """Rules on which columns each operation carries."""
    given = set(datum)
    key = set(contract.primary_key)
    at = f"{where}/column"

    if not contract.is_keyed and operation is not Operation.INSERT:
        message = f"table {contract.table} has no primary key and accepts insert only"
        violations.append(Violation(f"{where}/operation", "keyless_table", message))
        return

    missing_key = sorted(key - given)
    if missing_key:
        message = f"{operation} needs the primary key: {', '.join(missing_key)}"
        violations.append(Violation(at, "key_missing", message))

    if operation in (Operation.INSERT, Operation.UPSERT):
        required = [
            name
            for name, f in contract.fields.items()
            if name not in given and not _nullable(f) and "default" not in f
        ]
        if required:
            message = f"{operation} needs every required column: {', '.join(required)}"
            violations.append(Violation(at, "required_missing", message))
    elif operation is Operation.UPDATE and not given - key:
        message = "update needs at least one column besides the primary key"
        violations.append(Violation(at, "nothing_to_update", message))
    elif operation is Operation.DELETE and given - key:
        extra = ", ".join(sorted(given - key))
        message = f"delete carries the primary key only, not {extra}"
        violations.append(Violation(at, "delete_with_values", message))


def _nullable(avro_field: Mapping[str, Any]) -> bool:
    avro_type = avro_field["type"]
    return isinstance(avro_type, list) and "null" in avro_type
