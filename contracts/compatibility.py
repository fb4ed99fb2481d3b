"""Whether a new contract version may follow the earlier ones, and why not.

Two sets of rules apply, and both the offline check (against git history) and the
online check (against the registry) use this module, so they cannot drift apart:

1. Avro's schema resolution, applied by Apache Avro's own checker
   (``avro.compatibility``) to the schemas that travel on the wire: the key schema
   and the derived value schema (``Contract.value_schema``), exactly as
   ``register-schemas`` registers them. BACKWARD means the new schema reads what
   an earlier one wrote (reader = new, writer = old); FORWARD the reverse; FULL
   both; the ``_TRANSITIVE`` levels compare with every earlier version instead of
   the latest alone; NONE compares with none.

2. The contract's own rule, which the derived value schema cannot express. That
   schema makes every non-key field optional (an update names only some columns),
   so to Avro a new non-nullable field without a default looks harmless. It is
   not: records written under earlier versions carry no value for it, and rows
   already in the table hold none, so the contract's promise "never null" would
   be false from the first day. Under the levels that include BACKWARD such a
   field is refused (``NEW_REQUIRED_FIELD``): make it nullable, or give it a
   default. Key fields are left to rule 1; the key schema keeps them as written.

FORWARD levels are checked on the derived schemas only: those make every earlier
non-key field optional, so removing a field never breaks an earlier reader.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

import avro.schema
from avro.compatibility import (
    ReaderWriterCompatibilityChecker,
    SchemaCompatibilityType,
    SchemaIncompatibilityType,
    lookup_writer_field,
)
from avro.errors import AvroException

from contracts.catalogue import Contract
from contracts.errors import ContractError

NEW_REQUIRED_FIELD = "new_required_field"
UNREADABLE_SCHEMA = "unreadable_schema"


class Part(StrEnum):
    """Which part of a contract a problem was found in."""

    KEY = "key"
    VALUE = "value"
    CONTRACT = "contract"


class Direction(StrEnum):
    """Which way data flows in one comparison."""

    BACKWARD = "backward"  # the new schema reads what an earlier version wrote
    FORWARD = "forward"  # an earlier version reads what the new schema writes


@dataclass(frozen=True)
class LevelRule:
    """What a compatibility level asks: which directions, against which versions."""

    backward: bool
    forward: bool
    transitive: bool

    @property
    def directions(self) -> tuple[Direction, ...]:
        wanted = (
            (Direction.BACKWARD, self.backward),
            (Direction.FORWARD, self.forward),
        )
        return tuple(direction for direction, on in wanted if on)


LEVELS: dict[str, LevelRule] = {
    "NONE": LevelRule(backward=False, forward=False, transitive=False),
    "BACKWARD": LevelRule(backward=True, forward=False, transitive=False),
    "BACKWARD_TRANSITIVE": LevelRule(backward=True, forward=False, transitive=True),
    "FORWARD": LevelRule(backward=False, forward=True, transitive=False),
    "FORWARD_TRANSITIVE": LevelRule(backward=False, forward=True, transitive=True),
    "FULL": LevelRule(backward=True, forward=True, transitive=False),
    "FULL_TRANSITIVE": LevelRule(backward=True, forward=True, transitive=True),
}


@dataclass(frozen=True)
class Version:
    """An earlier version of a subject: its number and its schema as JSON."""

    number: int
    schema: Mapping[str, Any]


@dataclass(frozen=True)
class Problem:
    """One reason a new version is refused, with the earlier versions it breaks.

    ``field`` is the field path ("" for the record itself); ``code`` is Avro's
    incompatibility type or the name of a contract rule; ``what`` says what
    changed, ``consequence`` what breaks and for whom, with ``{versions}`` where
    the earlier versions are named. ``reason`` puts them together in plain words.
    """

    part: Part
    field: str
    code: str
    what: str
    consequence: str
    versions: tuple[int, ...]

    @property
    def reason(self) -> str:
        numbers = [str(n) for n in self.versions]
        if len(numbers) == 1:
            versions = f"version {numbers[0]}"
        else:
            versions = f"versions {', '.join(numbers[:-1])} and {numbers[-1]}"
        return self.what + self.consequence.format(versions=versions)

    def __str__(self) -> str:
        return f"{self.part.value}: {self.reason}"


def merge_problems(problems: Iterable[Problem]) -> list[Problem]:
    """One problem per distinct finding, naming every earlier version it breaks."""
    merged: dict[tuple[str, ...], Problem] = {}
    for problem in problems:
        key = (problem.part, problem.field, problem.code, problem.what)
        key += (problem.consequence,)
        found = merged.get(key)
        if found is None:
            merged[key] = problem
        elif not set(problem.versions) <= set(found.versions):
            versions = tuple(sorted({*found.versions, *problem.versions}))
            merged[key] = replace(found, versions=versions)
    return list(merged.values())


def level_rule(level: str) -> LevelRule:
    """The rule of a compatibility level; raise ContractError for an unknown one."""
    try:
        return LEVELS[level]
    except KeyError:
        known = ", ".join(LEVELS)
        raise ContractError(
            f"unknown compatibility level {level!r}; use one of {known}"
        ) from None


def compared_versions(level: str, previous: Sequence[Version]) -> list[Version]:
    """The earlier versions a level compares with: all, the latest, or none."""
    rule = level_rule(level)
    if not rule.directions or not previous:
        return []
    return list(previous) if rule.transitive else [previous[-1]]


def check_subject(
    part: Part,
    schema: Mapping[str, Any],
    previous: Sequence[Version],
    level: str,
) -> list[Problem]:
    """Avro's verdict on a new schema of a subject, with a reason per field."""
    problems = []
    for version in compared_versions(level, previous):
        for direction in level_rule(level).directions:
            problems += check_pair(part, direction, schema, version)
    return merge_problems(problems)


def check_pair(
    part: Part, direction: Direction, schema: Mapping[str, Any], version: Version
) -> list[Problem]:
    """Compare the new schema with one earlier version in one direction."""
    try:
        new, old = _parse(schema), _parse(version.schema)
    except AvroException as exc:
        what = f"Avro cannot parse the schema: {exc}"
        consequence = " (compared with {versions})"
        return [
            Problem(part, "", UNREADABLE_SCHEMA, what, consequence, (version.number,))
        ]

    reader, writer = (new, old) if direction is Direction.BACKWARD else (old, new)
    checker = ReaderWriterCompatibilityChecker()
    verdict = checker.get_compatibility(reader, writer)
    if verdict.compatibility is SchemaCompatibilityType.compatible:
        return []

    pair = _Pair(part, direction, version.number)
    problems = list(pair.explain(reader, writer))
    if problems:
        return problems
    # Avro found something the per-field explanation does not name; give its words.
    where = ", ".join(sorted(verdict.locations))
    words = "; ".join(sorted(verdict.messages))
    code = verdict.incompatibilities[0].value
    return [pair.problem(where, code, f"at {where}: {words}")]


def _parse(schema: Mapping[str, Any]) -> avro.schema.Schema:
    return avro.schema.parse(json.dumps(schema))


_CONSEQUENCES = {
    Direction.BACKWARD: ": the new version cannot read records written with {versions}",
    Direction.FORWARD: (
        ": readers of {versions} cannot read records written with the new version"
    ),
}


@dataclass(frozen=True)
class _Pair:
    """One comparison, turned into problems in plain words, field by field.

    Avro's result merges every finding into sets of messages and locations, which
    loses which message belongs to which field. So the verdict comes from Avro on
    the whole schema, and the explanation from Avro again, one field at a time.
    """

    part: Part
    direction: Direction
    version: int

    def explain(
        self, reader: avro.schema.Schema, writer: avro.schema.Schema
    ) -> Iterator[Problem]:
        if reader.type != "record" or writer.type != "record":
            return
        if not _same_name(reader, writer):
            old, new = self._old_new(writer.fullname, reader.fullname)
            yield self.problem(
                "",
                SchemaIncompatibilityType.name_mismatch.value,
                f"the record is renamed from {old} to {new}; keep the old name "
                "in the record's aliases",
            )

        for reader_field in reader.fields:
            writer_field = lookup_writer_field(writer, reader_field)
            if writer_field is None:
                yield from self._missing(reader_field)
                continue

            checker = ReaderWriterCompatibilityChecker()
            result = checker.get_compatibility(reader_field.type, writer_field.type)
            if result.compatibility is SchemaCompatibilityType.incompatible:
                yield self._field_problem(reader_field, writer_field, result)

    def problem(self, field: str, code: str, what: str) -> Problem:
        """A finding of this comparison, its consequence told for its direction."""
        consequence = _CONSEQUENCES[self.direction]
        return Problem(self.part, field, code, what, consequence, (self.version,))

    def _missing(self, reader_field: avro.schema.Field) -> Iterator[Problem]:
        if reader_field.has_default:
            return
        name = reader_field.name
        if self.direction is Direction.BACKWARD:
            what = f"field {name} is new and has no default"
        else:
            what = f"field {name} is gone, and had no default"
        code = SchemaIncompatibilityType.reader_field_missing_default_value.value
        yield self.problem(name, code, what)

    def _field_problem(
        self,
        reader_field: avro.schema.Field,
        writer_field: avro.schema.Field,
        result: Any,
    ) -> Problem:
        name = reader_field.name
        reader, writer = _branch(reader_field.type), _branch(writer_field.type)
        checker = ReaderWriterCompatibilityChecker()
        inner = checker.get_compatibility(reader, writer)
        if inner.compatibility is SchemaCompatibilityType.compatible:
            # The types agree once null is set aside: what breaks is nullability.
            inner, reader, writer = result, reader_field.type, writer_field.type
        code = inner.incompatibilities[0]
        old, new = self._old_new(writer.to_json(), reader.to_json())

        if code is SchemaIncompatibilityType.missing_enum_symbols:
            return self.problem(name, code.value, _enum_change(name, old, new))
        if code is SchemaIncompatibilityType.name_mismatch:
            what = (
                f"field {name}: type {type_text(old)} is renamed to {type_text(new)}; "
                "keep the old name in the type's aliases"
            )
            return self.problem(name, code.value, what)
        what = f"field {name} changes type from {type_text(old)} to {type_text(new)}"
        return self.problem(name, code.value, what)

    def _old_new(self, writer: Any, reader: Any) -> tuple[Any, Any]:
        """Order a reader/writer pair as (earlier version, new version)."""
        if self.direction is Direction.BACKWARD:
            return writer, reader
        return reader, writer


def _branch(schema: avro.schema.Schema) -> avro.schema.Schema:
    """The one non-null branch of a ``["null", T]`` union; any other schema as is."""
    if isinstance(schema, avro.schema.UnionSchema):
        branches = [b for b in schema.schemas if b.type != "null"]
        if len(branches) == 1 and len(schema.schemas) == 2:
            return branches[0]
    return schema


def _same_name(reader: avro.schema.Schema, writer: avro.schema.Schema) -> bool:
    aliases = reader.props.get("aliases") or []
    return reader.name == writer.name or writer.fullname in aliases


def _enum_change(name: str, old: Any, new: Any) -> str:
    old_symbols, new_symbols = _symbols(old), _symbols(new)
    dropped = [s for s in old_symbols if s not in new_symbols]
    added = [s for s in new_symbols if s not in old_symbols]
    if dropped:
        return f"field {name} drops enum symbol(s) {', '.join(dropped)}"
    return f"field {name} adds enum symbol(s) {', '.join(added)}"


def _symbols(avro_type: Any) -> list[str]:
    """The symbols of an enum type, also when it is a branch of a union."""
    if isinstance(avro_type, list):
        return [s for branch in avro_type for s in _symbols(branch)]
    if isinstance(avro_type, Mapping) and avro_type.get("type") == "enum":
        return list(avro_type.get("symbols", []))
    return []


def type_text(avro_type: Any) -> str:
    """A field type as people say it: ``int``, ``decimal(12,2)``, ``nullable uuid``."""
    if isinstance(avro_type, list):
        branches = [type_text(branch) for branch in avro_type if branch != "null"]
        text = " or ".join(branches) or "null"
        return f"nullable {text}" if "null" in avro_type else text
    if not isinstance(avro_type, Mapping):
        return str(avro_type)

    logical = avro_type.get("logicalType")
    if logical == "decimal":
        return f"decimal({avro_type.get('precision')},{avro_type.get('scale', 0)})"
    if isinstance(logical, str):
        return logical
    if avro_type.get("type") == "enum":
        return f"enum {avro_type.get('name')}"
    return type_text(avro_type.get("type"))


def is_required(avro_field: Mapping[str, Any]) -> bool:
    """A field that is not nullable and has no default: every writer must set it."""
    avro_type = avro_field.get("type")
    nullable = isinstance(avro_type, list) and "null" in avro_type
    return not nullable and "default" not in avro_field


def new_required_fields(
    contract: Contract, previous: Sequence[Version]
) -> list[Problem]:
    """The contract's own rule: no new non-nullable field without a default.

    ``previous`` are the earlier derived value schemas, oldest first. A field is new
    to a version when neither its name nor one of its aliases is a field there.
    Applies under the levels that include BACKWARD; see the module docstring.
    """
    if not level_rule(contract.compatibility).backward:
        return []

    problems = []
    for version in compared_versions(contract.compatibility, previous):
        known = {f.get("name") for f in version.schema.get("fields", [])}
        for name, avro_field in contract.fields.items():
            if name in contract.primary_key or not is_required(avro_field):
                continue
            if known.isdisjoint({name, *avro_field.get("aliases", [])}):
                problems.append(_required_problem(name, version.number))
    return merge_problems(problems)


def _required_problem(name: str, version: int) -> Problem:
    what = f"field {name} is new, not nullable and has no default"
    consequence = (
        ", but records and rows written with {versions} have no value for it; "
        'declare it ["null", T] with "default": null, or give it a default'
    )
    return Problem(
        Part.CONTRACT, name, NEW_REQUIRED_FIELD, what, consequence, (version,)
    )
