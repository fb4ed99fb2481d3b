"""Check a request's activities against their contracts and build their Avro datums.

Validation is all-or-nothing per request and reports every violation, not the
first: a sender fixes a batch in one round trip. It runs in three passes, each
over every activity:

1. ``check_envelope``: the body is an object whose ``activities`` is a non-empty
   list within the count limit;
2. ``read_draft``: each activity is an object with an operation, a table and a
   column list, and nothing else;
3. ``check_activity``: the columns and the operation obey the table's contract.

Between 2 and 3 the caller checks the API key's grant, so that nothing about a
table is revealed to a key that may not write it.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from contracts.catalogue import RESERVED_PREFIX, Contract
from contracts.conversion import to_datum
from contracts.errors import ConversionError, UnknownSqlTypeError
from contracts.sqltypes import AvroType, agrees, parse_sql_type, resolve_avro

BODY_MEMBERS = ("activities",)
ACTIVITY_MEMBERS = ("operation", "table", "column")
COLUMN_MEMBERS = ("name", "type", "value")

# A given value is echoed back to help the sender; a huge one is cut to this size.
_GIVEN_LIMIT = 200


class Operation(enum.StrEnum):
    INSERT = "insert"
    UPDATE = "update"
    UPSERT = "upsert"
    DELETE = "delete"


# Keyless (append-only) contracts: a row without a key cannot be found again.
KEYLESS_OPERATIONS = (Operation.INSERT,)


@dataclass(frozen=True)
class Violation:
    """One broken rule, located by a JSON pointer into the request.

    ``subject`` and ``version`` name the registered contract the value was
    checked against; ``parameter`` replaces ``pointer`` for a query parameter or
    header.
    """

    pointer: str | None
    code: str
    message: str
    expected: str | None = None
    given: Any = None
    subject: str | None = None
    version: int | None = None
    parameter: str | None = None

    def as_json(self) -> dict[str, Any]:
        place = {"pointer": self.pointer, "parameter": self.parameter}
        item: dict[str, Any] = {k: v for k, v in place.items() if v is not None}
        item.update(code=self.code, detail=self.message)
        optional = {
            "subject": self.subject,
            "version": self.version,
            "expected": self.expected,
        }
        item.update({k: v for k, v in optional.items() if v is not None})
        if self.expected is not None:
            item["given"] = _shorten(self.given)
        return item


@dataclass(frozen=True)
class Draft:
    """An activity whose shape is right; its members are None where they are not."""

    index: int
    operation: Operation | None
    table: str | None
    columns: list[Any] | None

    @property
    def where(self) -> str:
        return pointer("activities", self.index)


@dataclass(frozen=True)
class Activity:
    """A valid activity: the contract it obeys and the datum to write.

    ``columns`` are the fields the activity sets, in the order given, followed by
    the defaults an insert or upsert filled in; they travel as ``gk-columns``.
    """

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


def pointer(*parts: str | int) -> str:
    """An RFC 6901 JSON pointer to ``parts``, escaping ``~`` and ``/``."""
    escaped = (str(p).replace("~", "~0").replace("/", "~1") for p in parts)
    return "".join("/" + part for part in escaped)


def _shorten(given: Any) -> Any:
    """The given value, or its JSON text cut short when it is long."""
    try:
        text = json.dumps(given, ensure_ascii=False)
    except (TypeError, ValueError):
        return repr(given)[:_GIVEN_LIMIT]
    if len(text) <= _GIVEN_LIMIT:
        return given
    return text[: _GIVEN_LIMIT - 3] + "..."


# --- pass 1 and 2: the shape of the request ------------------------------------


def check_envelope(payload: Any, max_activities: int) -> list[Violation]:
    """The body's own rules: an object with a non-empty list of activities."""
    if not isinstance(payload, dict):
        expected = 'an object {"activities": [...]}'
        given = type(payload).__name__ if payload is not None else None
        message = "the body must be a JSON object"
        return [Violation("", "not_an_object", message, expected, given)]

    violations = _unknown_members(payload, BODY_MEMBERS, "")
    activities = payload.get("activities")
    if not isinstance(activities, list) or not activities:
        message = "activities must be a non-empty list"
        expected = "a non-empty list"
        given = _kind(activities)
        violations.append(
            Violation("/activities", "activities_missing", message, expected, given)
        )
    elif len(activities) > max_activities:
        message = f"at most {max_activities} activities fit in one request"
        violations.append(
            Violation(
                "/activities",
                "too_many_activities",
                message,
                f"at most {max_activities} activities",
                len(activities),
            )
        )
    return violations


def read_draft(index: int, raw: Any) -> tuple[Draft | None, list[Violation]]:
    """Read one activity's members; report what is missing, wrong or unknown."""
    where = pointer("activities", index)
    if not isinstance(raw, dict):
        message = "an activity must be a JSON object"
        given = _kind(raw)
        return None, [Violation(where, "not_an_object", message, "an object", given)]

    violations = _unknown_members(raw, ACTIVITY_MEMBERS, where)
    operation = _operation(raw.get("operation"), where, violations)
    table = raw.get("table") if isinstance(raw.get("table"), str) else None
    if table is None:
        message = "table must be a string naming a contract"
        given = raw.get("table")
        violations.append(
            Violation(f"{where}/table", "unknown_table", message, "a string", given)
        )

    columns = raw.get("column")
    if not isinstance(columns, list) or not columns:
        message = "column must be a non-empty list of {name, type, value} objects"
        violations.append(
            Violation(
                f"{where}/column",
                "columns_missing",
                message,
                "a non-empty list",
                _kind(columns),
            )
        )
        columns = None
    return Draft(index, operation, table, columns), violations


def _unknown_members(
    raw: Mapping[str, Any], known: tuple[str, ...], where: str
) -> list[Violation]:
    """Refuse members the format does not have: a typo must not go unnoticed."""
    return [
        Violation(
            pointer_join(where, name),
            "unknown_member",
            f"{name!r} is not a member here",
            "one of " + ", ".join(known),
            name,
        )
        for name in raw
        if name not in known
    ]


def pointer_join(base: str, part: str | int) -> str:
    return base + pointer(part)


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
                f"one of {allowed}",
                value,
            )
        )
        return None


def _kind(value: Any) -> Any:
    """How a value of the wrong kind is shown: small values as is, else the kind."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return f"a JSON {'array' if isinstance(value, list) else 'object'}"


# --- pass 3: the contract -----------------------------------------------------

# Declared types remembered per contract; bounded, since senders choose them.
_AGREEMENT_CACHE_LIMIT = 1024


@dataclass(frozen=True)
class ContractRules:
    """What checking an activity needs from a contract, worked out once.

    Resolving Avro types and parsing declared SQL types cost more than the checks
    themselves, so a gateway builds one of these per contract at start.
    """

    contract: Contract
    fields: Mapping[str, Mapping[str, Any]] = field(repr=False)
    types: Mapping[str, AvroType] = field(repr=False)
    required: tuple[str, ...]
    _agreement: dict[tuple[str, str], str | None] = field(
        default_factory=dict, repr=False, compare=False
    )

    @classmethod
    def of(cls, contract: Contract) -> ContractRules:
        fields = contract.fields
        types = {name: resolve_avro(f["type"]) for name, f in fields.items()}
        required = tuple(
            name
            for name, avro_field in fields.items()
            if not types[name].nullable
            and "default" not in avro_field
            and name not in contract.primary_key
        )
        return cls(contract, fields, types, required)

    def disagreement(self, name: str, declared: Any) -> str | None:
        """Why ``declared`` does not agree with field ``name``, or None if it does.

        The answer is a violation code followed by a message, both cached.
        """
        if not isinstance(declared, str):
            return f"unknown_type unknown SQL type {declared!r}"
        found = self._agreement.get((name, declared), "")
        if found != "":
            return found

        answer = self._judge(name, declared)
        if len(self._agreement) < _AGREEMENT_CACHE_LIMIT:
            self._agreement[(name, declared)] = answer
        return answer

    def _judge(self, name: str, declared: str) -> str | None:
        try:
            sql_type = parse_sql_type(declared)
        except UnknownSqlTypeError as exc:
            return f"unknown_type {exc}"
        if agrees(sql_type, self.fields[name]["type"]):
            return None
        return f"type_mismatch column {name!r} is not {declared} in the contract"


@dataclass
class _Checker:
    """One activity checked against one registered contract version."""

    draft: Draft
    rules: ContractRules
    version: int | None
    violations: list[Violation] = field(default_factory=list)

    @property
    def contract(self) -> Contract:
        return self.rules.contract

    def add(
        self,
        where: str,
        code: str,
        message: str,
        expected: str | None = None,
        given: Any = None,
    ) -> None:
        self.violations.append(
            Violation(
                where,
                code,
                message,
                expected,
                given,
                self.contract.value_subject,
                self.version,
            )
        )


def unknown_table(draft: Draft, visible: list[str]) -> Violation:
    """The activity names a table the catalogue (as this key sees it) lacks."""
    return Violation(
        f"{draft.where}/table",
        "unknown_table",
        f"table {draft.table!r} has no contract",
        "one of " + ", ".join(visible) if visible else "a table with a contract",
        draft.table,
    )


def check_activity(
    draft: Draft, rules: ContractRules, version: int | None
) -> tuple[Activity | None, list[Violation]]:
    """Check a draft against a contract (registered as ``version``).

    The columns are checked even when the operation is invalid, so that every
    problem is found in one round trip; the datum is built only when nothing is
    wrong.
    """
    checker = _Checker(draft, rules, version)
    if draft.columns is None:
        return None, []

    datum, named = _columns(checker, draft.columns)
    if draft.operation is not None:
        _check_operation(checker, draft.operation, named)
    if checker.violations or draft.operation is None:
        return None, checker.violations

    columns = list(datum)
    if draft.operation in (Operation.INSERT, Operation.UPSERT):
        columns += _fill_defaults(rules, datum)
    full = {name: datum.get(name) for name in rules.fields}
    activity = Activity(
        draft.index, draft.operation, rules.contract, full, tuple(columns)
    )
    return activity, []


def _fill_defaults(rules: ContractRules, datum: dict[str, Any]) -> list[str]:
    """Write the contract's defaults for columns an insert leaves out.

    The value schema on the wire makes every non-key field optional, so a default
    that is not written here would reach the table as null. Returns the names.
    """
    filled = []
    for name, avro_field in rules.fields.items():
        if name not in datum and avro_field.get("default") is not None:
            datum[name] = to_datum(avro_field["type"], avro_field["default"])
            filled.append(name)
    return filled


def _columns(checker: _Checker, columns: list[Any]) -> tuple[dict[str, Any], set[str]]:
    """Convert each column's value to its datum; collect what is wrong.

    Returns the datums of the valid columns and the names of every column that
    names a real field, valid value or not, for the operation's rules.
    """
    datum: dict[str, Any] = {}
    named: set[str] = set()
    where = f"{checker.draft.where}/column"
    for position, column in enumerate(columns):
        at = f"{where}/{position}"
        name = _column_name(checker, column, at, named)
        if name is None:
            continue

        named.add(name)
        if "type" in column and not _declared_type_agrees(checker, column, name, at):
            continue
        if "value" not in column:
            expected = "a value member"
            checker.add(at, "value_missing", f"column {name!r} has no value", expected)
            continue

        try:
            datum[name] = to_datum(checker.rules.fields[name]["type"], column["value"])
        except ConversionError as exc:
            message = f"{name} {exc}"
            checker.add(f"{at}/value", exc.code, message, exc.expected, exc.given)
    return datum, named


def _column_name(
    checker: _Checker, column: Any, at: str, named: set[str]
) -> str | None:
    """The column's field name, or None after reporting why it has none."""
    if not isinstance(column, dict):
        message = "a column must be a JSON object"
        checker.add(at, "invalid_column", message, "an object", _kind(column))
        return None
    checker.violations.extend(_unknown_members(column, COLUMN_MEMBERS, at))

    name = column.get("name")
    fields = checker.rules.fields
    where = f"{at}/name"
    if not isinstance(name, str):
        message = "a column needs a name, a string"
        checker.add(where, "invalid_column", message, "a string", _kind(name))
    elif name.startswith(RESERVED_PREFIX):
        message = f"column {name!r} uses the reserved prefix {RESERVED_PREFIX}"
        expected = f"a name not starting with {RESERVED_PREFIX}"
        checker.add(where, "reserved_column", message, expected, name)
    elif name not in fields:
        message = f"table {checker.contract.table} has no column {name!r}"
        expected = "one of " + ", ".join(fields)
        checker.add(where, "unknown_column", message, expected, name)
    elif name in named:
        message = f"column {name!r} appears more than once"
        checker.add(where, "duplicate_column", message, "each column once", name)
    else:
        return name
    return None


def _declared_type_agrees(
    checker: _Checker, column: Mapping[str, Any], name: str, at: str
) -> bool:
    """A declared ``type`` must be a SQL type that agrees with the field's."""
    declared = column["type"]
    disagreement = checker.rules.disagreement(name, declared)
    if disagreement is None:
        return True

    code, message = disagreement.split(" ", 1)
    expected = f"a SQL type agreeing with Avro {_avro_name(checker.rules.types[name])}"
    checker.add(f"{at}/type", code, message, expected, declared)
    return False


def _avro_name(resolved: AvroType) -> str:
    """A field's Avro type in a few words, e.g. ``decimal(12,2)`` or ``int``."""
    name = resolved.kind
    if name == "decimal":
        name = f"decimal({resolved.precision},{resolved.scale})"
    return f"{name} (nullable)" if resolved.nullable else name


def _check_operation(checker: _Checker, operation: Operation, named: set[str]) -> None:
    """Which columns each operation carries (design: insert/upsert/update/delete)."""
    contract = checker.contract
    where = checker.draft.where
    at = f"{where}/column"

    if not contract.is_keyed and operation not in KEYLESS_OPERATIONS:
        message = f"table {contract.table} has no primary key and accepts insert only"
        given = operation.value
        checker.add(
            f"{where}/operation", "operation_not_allowed", message, "insert", given
        )
        return

    key = set(contract.primary_key)
    for name in contract.primary_key:
        if name not in named:
            message = f"{operation} needs the primary key column {name!r}"
            checker.add(at, "key_missing", message, f"a column named {name}", None)

    if operation in (Operation.INSERT, Operation.UPSERT):
        for name in checker.rules.required:
            if name not in named:
                message = f"{operation} needs the required column {name!r}"
                expected = f"a column named {name}"
                checker.add(at, "required_missing", message, expected, None)
    elif operation is Operation.UPDATE and not named - key:
        message = "update needs at least one column besides the primary key"
        checker.add(at, "nothing_to_update", message, "a column outside the key", None)
    elif operation is Operation.DELETE:
        for position, column in enumerate(checker.draft.columns or ()):
            name = column.get("name") if isinstance(column, dict) else None
            if isinstance(name, str) and name in named and name not in key:
                message = f"delete carries the primary key only, not {name!r}"
                expected = "only " + ", ".join(contract.primary_key)
                place = f"{at}/{position}"
                checker.add(place, "delete_with_values", message, expected, name)
