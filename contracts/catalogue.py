"""The contract catalogue: one Avro record schema per table, read from ``*.avsc`` files.

A contract file is the single source of truth for a table. From it derive the Kafka
topic, the registry subjects, the key schema and the value schema that travels on
the wire (see ``Contract.value_schema``).
"""

from __future__ import annotations

import copy
import json
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from contracts.errors import ContractError

logger = logging.getLogger(__name__)

SCHEMA_DIR = Path(__file__).parent / "schemas"
TOPIC_PREFIX = "activities."
DLQ_TOPIC = "activities.dlq"
DEFAULT_COMPATIBILITY = "BACKWARD_TRANSITIVE"
RESERVED_PREFIX = "_gk_"

# Unquoted SQL identifiers: a letter or underscore, then letters, digits, underscores;
# PostgreSQL truncates names past 63 bytes, so longer ones are refused outright.
IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


@dataclass(frozen=True)
class Contract:
    """A table's contract: its Avro schema as written, and what follows from it."""

    table: str
    schema: Mapping[str, Any] = field(repr=False)
    primary_key: tuple[str, ...]
    compatibility: str = DEFAULT_COMPATIBILITY

    @property
    def topic(self) -> str:
        return f"{TOPIC_PREFIX}{self.table}"

    @property
    def value_subject(self) -> str:
        return f"{self.topic}-value"

    @property
    def key_subject(self) -> str:
        return f"{self.topic}-key"

    @property
    def is_keyed(self) -> bool:
        return bool(self.primary_key)

    @property
    def fields(self) -> dict[str, Mapping[str, Any]]:
        """The contract's fields by name, in declaration order."""
        return {f["name"]: f for f in self.schema["fields"]}

    def value_schema(self) -> dict[str, Any]:
        """The value schema registered for the topic.

        An ``update`` names only some columns, and an Avro record must carry every
        field, so every field outside the key is made optional (``["null", T]``,
        default null). The ``gk-columns`` header says which fields an activity set.
        """
        schema = _wire_copy(self.schema)
        schema["fields"] = [
            f if f["name"] in self.primary_key else _optional(f)
            for f in schema["fields"]
        ]
        return schema

    def key_schema(self) -> dict[str, Any] | None:
        """The record of the primary-key fields, or None for an append-only contract."""
        if not self.is_keyed:
            return None
        schema = _wire_copy(self.schema)
        schema["name"] = f"{self.table}_key"
        schema["doc"] = f"Primary key of {self.table}."
        schema["fields"] = [self.fields[name] for name in self.primary_key]
        return schema


def _wire_copy(schema: Mapping[str, Any]) -> dict[str, Any]:
    """Copy the schema without the properties that only the catalogue reads."""
    wire = copy.deepcopy(dict(schema))
    wire.pop("primary_key", None)
    wire.pop("compatibility", None)
    return wire


def _optional(avro_field: Mapping[str, Any]) -> dict[str, Any]:
    """Return the field as a ``["null", T]`` union defaulting to null."""
    optional = dict(avro_field)
    avro_type = avro_field["type"]
    if isinstance(avro_type, list):
        branches = [t for t in avro_type if t != "null"]
    else:
        branches = [avro_type]
    optional["type"] = ["null", *branches]
    optional["default"] = None
    return optional


def load_contract(path: Path) -> Contract:
    """Read one ``.avsc`` file; raise ContractError if it breaks the contract rules."""
    try:
        schema = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ContractError(f"cannot read contract: {exc}", str(path)) from exc

    table = path.stem
    _check_shape(schema, table, str(path))
    primary_key = tuple(schema.get("primary_key", ()))
    compatibility = schema.get("compatibility", DEFAULT_COMPATIBILITY)
    return Contract(table, schema, primary_key, compatibility)


def _check_shape(schema: Any, table: str, path: str) -> None:
    """Check what every part of the project relies on; `lint` checks the rest."""
    if not isinstance(schema, dict) or schema.get("type") != "record":
        raise ContractError("a contract must be an Avro record", path)
    if schema.get("name") != table:
        raise ContractError(
            f"record name {schema.get('name')!r} must equal the file name {table!r}",
            path,
        )
    if not IDENTIFIER.match(table):
        raise ContractError(f"table name {table!r} is not a valid SQL identifier", path)

    names = [f.get("name") for f in schema.get("fields", [])]
    if not names:
        raise ContractError("a contract needs at least one field", path)
    for name in names:
        if not isinstance(name, str) or not IDENTIFIER.match(name):
            raise ContractError(
                f"field name {name!r} is not a valid SQL identifier", path
            )
        if name.startswith(RESERVED_PREFIX):
            raise ContractError(f"field name {name!r} uses the reserved prefix", path)

    for key in schema.get("primary_key", []):
        if key not in names:
            raise ContractError(f"primary key {key!r} is not a field", path)


def load_catalogue(directory: Path = SCHEMA_DIR) -> dict[str, Contract]:
    """Load every contract in ``directory``, keyed by table name."""
    contracts = {}
    for path in sorted(directory.glob("*.avsc")):
        contract = load_contract(path)
        contracts[contract.table] = contract
    logger.debug("loaded contracts=%d from directory=%s", len(contracts), directory)
    return contracts
