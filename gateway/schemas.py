"""The registered key and value schemas the gateway writes with, cached per table.

The gateway never registers schemas: a contract enters the registry only through
``make register-schemas``. For each contract it looks up the registration of the
exact key and value schemas derived from its own contract file, so the schema id
in a record's header always names the schema its bytes were written with, even
while a newer version registered ahead of a deploy waits for the gateway.

A registration never changes once made, so a found one is kept for the life of
the process: while the registry is unreachable, contracts already used keep
working and only contracts not yet looked up fail (``RegistryError``).

Records are encoded with fastavro's ``schemaless_writer`` behind the Confluent
wire header (magic byte 0, 4-byte big-endian schema id); docs/gateway.md has the
measurement against confluent-kafka's ``AvroSerializer`` behind this choice.
"""

from __future__ import annotations

import io
import json
import logging
import struct
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError
from fastavro import parse_schema, schemaless_writer

from contracts.catalogue import Contract
from contracts.errors import RegistryError
from contracts.registry import TransportError

logger = logging.getLogger(__name__)

WIRE_HEADER = struct.Struct(">bI")
MAGIC_BYTE = 0
HTTP_NOT_FOUND = 404

# A request waits for the registry at most about 2 x 3 s: one retry, short pauses.
# The client's defaults (3 retries, 1 s pauses growing) would hold a request for
# half a minute while the registry is down.
CLIENT_SETTINGS = {"timeout": 3, "max.retries": 1, "retries.wait.ms": 100}

# After the registry failed to answer, requests for contracts not yet cached fail
# at once for this long instead of each waiting on the network again.
RECHECK_AFTER_S = 2.0


class ContractNotRegisteredError(RegistryError):
    """The registry does not hold the gateway's contract: ``register-schemas`` first."""


@dataclass(frozen=True)
class WriterSchema:
    """A subject's registered schema: what a record's header and receipt name."""

    subject: str
    version: int
    schema_id: int
    parsed: Any = field(repr=False)

    def encode(self, datum: dict[str, Any]) -> bytes:
        """The Confluent wire format: magic byte, schema id, Avro binary body."""
        buffer = io.BytesIO()
        buffer.write(WIRE_HEADER.pack(MAGIC_BYTE, self.schema_id))
        schemaless_writer(buffer, self.parsed, datum)
        return buffer.getvalue()


@dataclass(frozen=True)
class Registration:
    """A contract's registered value schema and, for keyed contracts, key schema."""

    value: WriterSchema
    key: WriterSchema | None


class Registrations:
    """Each contract's registration, looked up once and kept."""

    def __init__(self, client: SchemaRegistryClient) -> None:
        self._client = client
        self._cache: dict[str, Registration] = {}
        self._lock = threading.Lock()
        self._down_until = 0.0

    def get(self, contract: Contract) -> Registration:
        """The contract's registration; raise RegistryError when it is unknown."""
        found = self._cache.get(contract.table)
        if found is not None:
            return found

        with self._lock:
            found = self._cache.get(contract.table)
            if found is None:
                found = self._look_up(contract)
                self._cache[contract.table] = found
        return found

    def versions(self, contract: Contract) -> list[int]:
        """Every registered version of the contract's value subject."""
        with self._errors(contract.value_subject):
            return list(self._client.get_versions(contract.value_subject))

    def is_reachable(self) -> bool:
        try:
            with self._errors("-"):
                self._client.get_subjects()
        except RegistryError:
            return False
        return True

    def _look_up(self, contract: Contract) -> Registration:
        if time.monotonic() < self._down_until:
            raise RegistryError("registry unreachable (checked moments ago)")

        key_schema = contract.key_schema()
        key = None
        if key_schema is not None:
            key = self._writer(contract.key_subject, key_schema)
        value = self._writer(contract.value_subject, contract.value_schema())
        return Registration(value, key)

    def _writer(self, subject: str, schema: dict[str, Any]) -> WriterSchema:
        with self._errors(subject):
            registered = self._client.lookup_schema(
                subject, Schema(json.dumps(schema), "AVRO")
            )
        logger.info(
            "writer schema subject=%s version=%d schema_id=%d",
            subject,
            registered.version,
            registered.schema_id,
        )
        return WriterSchema(
            subject, registered.version, registered.schema_id, parse_schema(schema)
        )

    @contextmanager
    def _errors(self, subject: str) -> Iterator[None]:
        """Turn the client's exceptions into ours, and remember an outage."""
        try:
            yield
        except SchemaRegistryError as exc:
            if exc.http_status_code == HTTP_NOT_FOUND:
                raise ContractNotRegisteredError(
                    f"subject {subject} does not hold the gateway's contract: "
                    "run make register-schemas",
                    exc.http_status_code,
                    exc.error_code,
                ) from exc
            raise RegistryError(
                f"registry refused subject {subject}: {exc.error_message}",
                exc.http_status_code,
                exc.error_code,
            ) from exc
        except TransportError as exc:
            self._down_until = time.monotonic() + RECHECK_AFTER_S
            raise RegistryError(f"registry unreachable: {exc}") from exc
