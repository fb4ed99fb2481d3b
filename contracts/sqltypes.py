"""SQL type names as senders write them, and how they line up with contract fields.

An activity may say which SQL type the sender believes a column has. The contract
stays the authority; the declared type is a cross-check that catches a sender whose
idea of the table has drifted from the contract before one of its values is misread.

The Avro side is described by a small set of kinds (see ``resolve_avro``): the Avro
type of a field with its logical type applied and a ``["null", T]`` union removed.
Everything that depends on a field's type, here and in ``contracts.conversion``,
looks the kind up in a table rather than inspecting the schema again.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from contracts.errors import ContractError, UnknownSqlTypeError

# PostgreSQL's own limits; a declaration past them could never match a real column.
_MAX_LENGTH = 10_485_760
_MAX_PRECISION = 1000


@dataclass(frozen=True)
class SqlType:
    """A SQL column type reduced to its canonical name and parameters.

    ``precision`` and ``scale`` belong to NUMERIC, ``length`` to VARCHAR and CHAR.
    NUMERIC(p) has scale 0, as SQL defines it; a bare NUMERIC leaves both None.
    """

    name: str
    precision: int | None = None
    scale: int | None = None
    length: int | None = None


@dataclass(frozen=True)
class AvroType:
    """A contract field's type as the rest of the project needs to see it.

    ``kind`` is one of the keys of ``_FAMILIES``; ``schema`` is the non-null branch
    as a mapping (a primitive name becomes ``{"type": name}``); ``nullable`` says
    whether the field was a union with "null".
    """

    kind: str
    schema: Mapping[str, Any]
    nullable: bool

    @property
    def precision(self) -> int:
        return int(self.schema["precision"])

    @property
    def scale(self) -> int:
        return int(self.schema.get("scale", 0))

    @property
    def symbols(self) -> tuple[str, ...]:
        return tuple(self.schema["symbols"])


# Every spelling accepted, after upper-casing and collapsing whitespace, and the
# canonical name it stands for.
_CANONICAL_NAMES: dict[str, str] = {
    "INTEGER": "INTEGER",
    "INT": "INTEGER",
    "INT4": "INTEGER",
    "BIGINT": "BIGINT",
    "INT8": "BIGINT",
    "SMALLINT": "SMALLINT",
    "INT2": "SMALLINT",
    "TEXT": "TEXT",
    "VARCHAR": "VARCHAR",
    "CHARACTER VARYING": "VARCHAR",
    "CHAR": "CHAR",
    "CHARACTER": "CHAR",
    "BOOLEAN": "BOOLEAN",
    "BOOL": "BOOLEAN",
    "REAL": "REAL",
    "FLOAT4": "REAL",
    "DOUBLE PRECISION": "DOUBLE PRECISION",
    "DOUBLE": "DOUBLE PRECISION",
    "FLOAT8": "DOUBLE PRECISION",
    "FLOAT": "DOUBLE PRECISION",
    "NUMERIC": "NUMERIC",
    "DECIMAL": "NUMERIC",
    "DATE": "DATE",
    "TIMESTAMP": "TIMESTAMP",
    "TIMESTAMP WITHOUT TIME ZONE": "TIMESTAMP",
    "TIMESTAMPTZ": "TIMESTAMPTZ",
    "TIMESTAMP WITH TIME ZONE": "TIMESTAMPTZ",
    "UUID": "UUID",
    "BYTEA": "BYTEA",
}

# The Avro families each canonical SQL type agrees with. Strict on width: a BIGINT
# column is fed by Avro long only, so an int32 contract never hides behind it.
_AGREEING_FAMILIES: dict[str, frozenset[str]] = {
    "INTEGER": frozenset({"int"}),
    "SMALLINT": frozenset({"int"}),
    "BIGINT": frozenset({"long"}),
    "TEXT": frozenset({"string", "enum"}),
    "VARCHAR": frozenset({"string", "enum"}),
    "CHAR": frozenset({"string", "enum"}),
    "BOOLEAN": frozenset({"boolean"}),
    "REAL": frozenset({"float"}),
    "DOUBLE PRECISION": frozenset({"double"}),
    "NUMERIC": frozenset({"decimal"}),
    "DATE": frozenset({"date"}),
    "TIMESTAMP": frozenset({"timestamp"}),
    "TIMESTAMPTZ": frozenset({"timestamp"}),
    "UUID": frozenset({"uuid"}),
    "BYTEA": frozenset({"bytes"}),
}

# Avro (type, logicalType) pairs that change a field's kind. A logical type on any
# other base is ignored, as the Avro specification asks, and the base type rules.
_LOGICAL_KINDS: dict[tuple[str, str], str] = {
    ("bytes", "decimal"): "decimal",
    ("fixed", "decimal"): "decimal",
    ("int", "date"): "date",
    ("long", "timestamp-millis"): "timestamp-millis",
    ("long", "timestamp-micros"): "timestamp-micros",
    ("long", "local-timestamp-millis"): "local-timestamp-millis",
    ("long", "local-timestamp-micros"): "local-timestamp-micros",
    ("string", "uuid"): "uuid",
}

# Logical types Avro defines that have no column here. Ignoring them, as an unknown
# logical type is ignored, would quietly store a time of day as a bare integer.
_UNSUPPORTED_LOGICAL = frozenset(
    {
        "time-millis",
        "time-micros",
        "timestamp-nanos",
        "local-timestamp-nanos",
        "duration",
    }
)

_BASE_KINDS = frozenset(
    {"int", "long", "float", "double", "boolean", "string", "bytes", "enum"}
)

# Each kind's family: what a declared SQL type is compared with.
_FAMILIES: dict[str, str] = {
    "int": "int",
    "long": "long",
    "float": "float",
    "double": "double",
    "boolean": "boolean",
    "string": "string",
    "enum": "enum",
    "bytes": "bytes",
    "decimal": "decimal",
    "date": "date",
    "timestamp-millis": "timestamp",
    "timestamp-micros": "timestamp",
    "local-timestamp-millis": "timestamp",
    "local-timestamp-micros": "timestamp",
    "uuid": "uuid",
}

# The column type the worker creates for each kind. A timestamp that names an
# instant becomes timestamptz; a local one keeps no zone.
_POSTGRES_TYPES: dict[str, str] = {
    "int": "integer",
    "long": "bigint",
    "float": "real",
    "double": "double precision",
    "boolean": "boolean",
    "string": "text",
    "enum": "text",
    "bytes": "bytea",
    "decimal": "numeric({precision},{scale})",
    "date": "date",
    "timestamp-millis": "timestamptz",
    "timestamp-micros": "timestamptz",
    "local-timestamp-millis": "timestamp",
    "local-timestamp-micros": "timestamp",
    "uuid": "uuid",
}

# A name of one or more words, then an optional parenthesised list of integers;
# matched against text already upper-cased with its whitespace collapsed.
_DECLARATION = re.compile(
    r"(?P<name>[A-Z][A-Z0-9]*(?: [A-Z][A-Z0-9]*)*)"
    r"(?: ?\( ?(?P<arguments>[0-9]{1,9}(?: ?, ?[0-9]{1,9})*) ?\))?"
)


def parse_sql_type(text: str) -> SqlType:
    """Read a declared SQL type; raise UnknownSqlTypeError for anything unknown."""
    if not isinstance(text, str) or not text.isascii():
        raise UnknownSqlTypeError(text)

    match = _DECLARATION.fullmatch(" ".join(text.upper().split()))
    if match is None:
        raise UnknownSqlTypeError(text)

    name = _CANONICAL_NAMES.get(match["name"])
    if name is None:
        raise UnknownSqlTypeError(text)

    arguments = _arguments(match["arguments"])
    reader = _PARAMETER_READERS.get(name, _without_parameters)
    return reader(name, arguments, text)


def _arguments(text: str | None) -> tuple[int, ...] | None:
    if text is None:
        return None
    return tuple(int(part) for part in text.split(","))


def _without_parameters(
    name: str, arguments: tuple[int, ...] | None, given: str
) -> SqlType:
    if arguments is not None:
        raise UnknownSqlTypeError(given, f"{name} takes no parameters")
    return SqlType(name)


def _with_length(name: str, arguments: tuple[int, ...] | None, given: str) -> SqlType:
    if arguments is None:
        return SqlType(name)

    if len(arguments) != 1:
        raise UnknownSqlTypeError(given, f"{name} takes one length")
    if not 1 <= arguments[0] <= _MAX_LENGTH:
        raise UnknownSqlTypeError(given, f"length must be 1 to {_MAX_LENGTH}")
    return SqlType(name, length=arguments[0])


def _with_precision(
    name: str, arguments: tuple[int, ...] | None, given: str
) -> SqlType:
    if arguments is None:
        return SqlType(name)

    if len(arguments) > 2:
        raise UnknownSqlTypeError(given, f"{name} takes a precision and a scale")
    precision, scale = arguments[0], arguments[1] if len(arguments) == 2 else 0
    if not 1 <= precision <= _MAX_PRECISION:
        raise UnknownSqlTypeError(given, f"precision must be 1 to {_MAX_PRECISION}")
    if scale > precision:
        raise UnknownSqlTypeError(given, "scale must not exceed precision")
    return SqlType(name, precision=precision, scale=scale)


_ParameterReader = Callable[[str, tuple[int, ...] | None, str], SqlType]

# Which canonical names take parameters; every other name takes none.
_PARAMETER_READERS: dict[str, _ParameterReader] = {
    "VARCHAR": _with_length,
    "CHAR": _with_length,
    "NUMERIC": _with_precision,
}


def resolve_avro(avro_type: Any) -> AvroType:
    """Reduce a field's Avro type to its kind; raise ContractError if unsupported.

    Contracts describe table columns, so only scalar types are supported, each
    optionally in a union with "null". Records, arrays, maps, plain fixed and
    unions of two real types have no single column type and are refused.
    """
    branch, nullable = _strip_null(avro_type)
    schema = {"type": branch} if isinstance(branch, str) else branch
    if not isinstance(schema, Mapping):
        raise ContractError(f"unsupported Avro type {avro_type!r}")

    kind = _kind(schema)
    if kind is None:
        raise ContractError(f"unsupported Avro type {avro_type!r}")

    resolved = AvroType(kind, schema, nullable)
    if kind == "decimal":
        _check_decimal(resolved)
    return resolved


def _strip_null(avro_type: Any) -> tuple[Any, bool]:
    """Return the one non-null branch of a union, and whether null was a branch."""
    if not isinstance(avro_type, list):
        return avro_type, False

    branches = [branch for branch in avro_type if branch != "null"]
    if len(branches) != 1:
        raise ContractError(f"unsupported Avro union {avro_type!r}")
    return branches[0], len(branches) < len(avro_type)


def _kind(schema: Mapping[str, Any]) -> str | None:
    base, logical = schema.get("type"), schema.get("logicalType")
    if not isinstance(base, str):
        return None

    if isinstance(logical, str):
        if logical in _UNSUPPORTED_LOGICAL:
            return None
        if (base, logical) in _LOGICAL_KINDS:
            return _LOGICAL_KINDS[(base, logical)]
    return base if base in _BASE_KINDS else None


def _check_decimal(resolved: AvroType) -> None:
    """Refuse a decimal without a usable precision and scale.

    The specification would quietly fall back to plain bytes; for a contract that
    would turn a money column into bytea, so it is an error instead.
    """
    precision = resolved.schema.get("precision")
    scale = resolved.schema.get("scale", 0)
    usable = (
        type(precision) is int
        and type(scale) is int
        and precision >= 1
        and 0 <= scale <= precision
    )
    if not usable:
        raise ContractError(f"decimal needs 0 <= scale <= precision: {resolved.schema}")


def avro_family(avro_type: Any) -> str:
    """The family a declared SQL type is compared with, e.g. "timestamp"."""
    return _FAMILIES[resolve_avro(avro_type).kind]


def agrees(sql: SqlType, avro_type: Any) -> bool:
    """Whether a declared SQL type agrees with a contract field's Avro type."""
    resolved = resolve_avro(avro_type)
    family = _FAMILIES[resolved.kind]
    if family not in _AGREEING_FAMILIES.get(sql.name, frozenset()):
        return False

    return family != "decimal" or _same_decimal(sql, resolved)


def _same_decimal(sql: SqlType, resolved: AvroType) -> bool:
    """A bare NUMERIC takes any decimal; NUMERIC(p, s) must match it exactly."""
    if sql.precision is None:
        return True
    return (sql.precision, sql.scale or 0) == (resolved.precision, resolved.scale)


def postgres_type(avro_type: Any) -> str:
    """The PostgreSQL column type the worker creates for a contract field."""
    resolved = resolve_avro(avro_type)
    template = _POSTGRES_TYPES[resolved.kind]
    return template.format(
        precision=resolved.schema.get("precision"),
        scale=resolved.schema.get("scale", 0),
    )
