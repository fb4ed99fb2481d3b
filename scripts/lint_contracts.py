"""Lint the contract files: every rule a contract must keep, every problem at once.

``contracts.catalogue`` refuses a contract that the gateway or the worker could not
run with, at the first problem. This lint says everything that is wrong, and adds
the rules that make a contract a good table definition:

* it parses with fastavro (what the gateway and worker use) and with Apache Avro
  (whose compatibility checker ``check-compat`` uses), and so do the key and value
  schemas derived from it;
* it is a record named like its file, with a ``doc``, and every field has one;
* table and field names are unquoted SQL identifiers, not PostgreSQL reserved key
  words, and do not start with the reserved ``_gk_``;
* every type is one the gateway and the worker support (``resolve_avro``);
* a nullable field is ``["null", T]`` with ``"default": null``;
* the primary key names existing, non-nullable fields, once each;
* a ``compatibility`` property names a registry compatibility level.

Exit status: 0 no problems, 1 problems found, 2 nothing to lint.
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import avro.schema
import fastavro
from avro.errors import AvroException
from fastavro.schema import SchemaParseException, UnknownType

from contracts.catalogue import (
    DEFAULT_COMPATIBILITY,
    IDENTIFIER,
    RESERVED_PREFIX,
    Contract,
)
from contracts.compatibility import LEVELS
from contracts.errors import ConfigurationError, ContractError
from contracts.settings import check_environment
from contracts.sqltypes import resolve_avro
from scripts.options import add_contracts_dir

logger = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_PROBLEMS = 1
EXIT_FAILED = 2

# PostgreSQL's reserved key words (categories "reserved" and "reserved, can be a
# function or type name" of its key word appendix; the server lists them with
# ``SELECT word FROM pg_get_keywords() WHERE catcode IN ('R', 'T')``). A column
# named like one of them must be quoted in every hand-written query, so a
# contract may not use them. SYSTEM_USER became reserved in PostgreSQL 16.
_RESERVED_WORDS_TEXT = """
    all analyse analyze and any array as asc asymmetric authorization binary both
    case cast check collate collation column concurrently constraint create cross
    current_catalog current_date current_role current_schema current_time
    current_timestamp current_user default deferrable desc distinct do else end
    except false fetch for foreign freeze from full grant group having ilike in
    initially inner intersect into is isnull join lateral leading left like limit
    localtime localtimestamp natural not notnull null offset on only or order outer
    overlaps placing primary references returning right select session_user similar
    some symmetric system_user table tablesample then to trailing true union unique
    user using variadic verbose when where window with
"""
RESERVED_WORDS = frozenset(_RESERVED_WORDS_TEXT.split())

# What fastavro and Avro raise for a schema they cannot parse.
_PARSE_ERRORS = (SchemaParseException, UnknownType, AvroException, TypeError, KeyError)


@dataclass(frozen=True)
class LintProblem:
    """One broken rule: the file, the field ("" for the record), and what is wrong."""

    path: str
    field: str
    message: str

    def __str__(self) -> str:
        where = f"{self.path}: field {self.field}" if self.field else self.path
        return f"{where}: {self.message}"


def lint_file(path: Path) -> list[LintProblem]:
    """Every problem of one contract file; an empty list when it keeps every rule."""
    try:
        schema = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return [LintProblem(str(path), "", f"cannot read the contract: {exc}")]
    return [
        LintProblem(str(path), field, message)
        for field, message in lint_schema(schema, path.stem)
    ]


def lint_schema(schema: Any, table: str) -> list[tuple[str, str]]:
    """Every problem of a parsed contract, as (field, message) pairs."""
    if not isinstance(schema, Mapping) or schema.get("type") != "record":
        return [("", "a contract must be an Avro record (a JSON object)")]

    problems = list(_parse_problems(schema))
    problems += _record_problems(schema, table)
    fields = schema.get("fields")
    if not isinstance(fields, list) or not fields:
        return [*problems, ("", "a contract needs a non-empty list of fields")]

    by_name = {}
    for avro_field in fields:
        if isinstance(avro_field, Mapping):
            by_name[str(avro_field.get("name"))] = avro_field
            problems += _field_problems(avro_field)
    problems += _key_problems(schema.get("primary_key", []), by_name)
    if not problems:
        problems += _derived_problems(schema, table)
    return problems


def _parse_problems(schema: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    """Both parsers must accept the contract as written."""
    try:
        fastavro.parse_schema(copy.deepcopy(dict(schema)))
    except _PARSE_ERRORS as exc:
        yield "", f"fastavro cannot parse it: {exc}"
    try:
        avro.schema.parse(json.dumps(schema))
    except _PARSE_ERRORS as exc:
        yield "", f"Avro cannot parse it: {exc}"


def _record_problems(
    schema: Mapping[str, Any], table: str
) -> Iterator[tuple[str, str]]:
    if schema.get("name") != table:
        yield (
            "",
            f"record name {schema.get('name')!r} must equal the file name {table!r}",
        )
    for message in _name_problems(table, "table name"):
        yield "", message
    if not _has_doc(schema):
        yield "", "the record needs a doc saying what one row is"

    level = schema.get("compatibility", DEFAULT_COMPATIBILITY)
    if level not in LEVELS:
        yield "", f"compatibility {level!r} is not one of {', '.join(LEVELS)}"


def _field_problems(avro_field: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    name = avro_field.get("name")
    if not isinstance(name, str):
        yield "", f"a field has no usable name: {avro_field!r}"
        return

    for message in _name_problems(name, "field name"):
        yield name, message
    if not _has_doc(avro_field):
        yield name, "needs a doc saying what the column holds"

    try:
        resolved = resolve_avro(avro_field.get("type"))
    except ContractError as exc:
        yield name, f"{exc}; the gateway and the worker support scalar types only"
        return
    if resolved.nullable:
        yield from _nullable_problems(name, avro_field)


def _nullable_problems(
    name: str, avro_field: Mapping[str, Any]
) -> Iterator[tuple[str, str]]:
    """A nullable field is ``["null", T]`` defaulting to null: updates rely on it."""
    if avro_field["type"][0] != "null":
        yield name, 'a nullable type must list "null" first: ["null", T]'
    if "default" not in avro_field or avro_field["default"] is not None:
        yield name, 'a nullable field must declare "default": null'


def _name_problems(name: str, what: str) -> Iterator[str]:
    if not IDENTIFIER.match(name):
        yield (
            f"{what} {name!r} is not a valid unquoted SQL identifier (lowercase "
            "letters, digits and _, starting with a letter or _, at most 63)"
        )
    elif name.startswith(RESERVED_PREFIX):
        yield f"{what} {name!r} starts with {RESERVED_PREFIX}, which is reserved"
    elif name in RESERVED_WORDS:
        yield f"{what} {name!r} is a PostgreSQL reserved key word"


def _has_doc(node: Mapping[str, Any]) -> bool:
    doc = node.get("doc")
    return isinstance(doc, str) and bool(doc.strip())


def _key_problems(
    primary_key: Any, fields: Mapping[str, Mapping[str, Any]]
) -> Iterator[tuple[str, str]]:
    if not isinstance(primary_key, list) or not all(
        isinstance(k, str) for k in primary_key
    ):
        yield "", "primary_key must be a list of field names"
        return

    for key in sorted({k for k in primary_key if primary_key.count(k) > 1}):
        yield key, "is named more than once in primary_key"
    for key in primary_key:
        avro_field = fields.get(key)
        if avro_field is None:
            yield "", f"primary key {key!r} is not a field"
        elif isinstance(avro_field.get("type"), list):
            yield key, "is part of the primary key, so it must not be nullable"


def _derived_problems(
    schema: Mapping[str, Any], table: str
) -> Iterator[tuple[str, str]]:
    """The key and value schemas that are registered must parse as well."""
    primary_key = tuple(schema.get("primary_key", ()))
    contract = Contract(table, schema, primary_key)
    derived = {"value": contract.value_schema(), "key": contract.key_schema()}
    for part, derived_schema in derived.items():
        if derived_schema is None:
            continue
        for _, message in _parse_problems(derived_schema):
            yield "", f"the derived {part} schema does not parse: {message}"


def lint_directory(directory: Path, files: Sequence[Path] = ()) -> list[LintProblem]:
    """Lint the named files, or every ``*.avsc`` in the folder."""
    paths = list(files) or sorted(directory.glob("*.avsc"))
    if not paths:
        raise ConfigurationError(f"no contracts (*.avsc) in {directory}")
    return [problem for path in paths for problem in lint_file(path)]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m scripts.lint_contracts",
        description="Check every contract file against the contract rules.",
    )
    add_contracts_dir(parser)
    parser.add_argument("files", nargs="*", type=Path, help="lint only these files")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Print every problem, one a line; return the exit status of the module doc."""
    args = parse_args(argv)
    try:
        check_environment()
        problems = lint_directory(args.contracts_dir, args.files)
    except ConfigurationError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED

    for problem in problems:
        print(problem)
    if problems:
        print(f"{len(problems)} problem(s); see docs/contract-workflow.md")
        return EXIT_PROBLEMS
    print("contracts: no problems")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
