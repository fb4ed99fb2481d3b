"""Registered schemas: writer schemas by id, subject versions, and the latest version.

Every answer that cannot change (a schema id's schema, the version it holds in a
subject) is asked once and kept. The latest version of a subject is asked fresh
each time, since a new contract version may have been registered since.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import fastavro
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError
from fastavro.schema import SchemaParseException

from contracts.registry import TransportError
from worker.errors import RecordRejectedError, TransientError
from worker.records import RejectCode

logger = logging.getLogger(__name__)

HTTP_NOT_FOUND = 404


@dataclass(frozen=True)
class RegisteredVersion:
    """One version of a subject: its id, its schema, and the schema parsed to read."""

    subject: str
    version: int
    schema_id: int
    schema: Mapping[str, Any] = field(repr=False)
    parsed: Any = field(repr=False, compare=False)

    @cached_property
    def fields(self) -> dict[str, Mapping[str, Any]]:
        return {f["name"]: f for f in self.schema["fields"]}

    @cached_property
    def field_names(self) -> dict[str, str]:
        """Every name a writer may use for a field (its name or an alias) → name."""
        names = {}
        for avro_field in self.schema["fields"]:
            for alias in avro_field.get("aliases", ()):
                names[alias] = avro_field["name"]
        names.update((name, name) for name in self.fields)
        return names


class Schemas:
    """The registry, as the worker asks it: cached where answers are permanent.

    Raises RecordRejectedError (``unknown_schema``) when the registry does not know
    a schema id, TransientError when it cannot be asked right now.
    """

    def __init__(self, client: SchemaRegistryClient) -> None:
        self._client = client
        self._writers: dict[int, Mapping[str, Any] | RecordRejectedError] = {}
        self._versions: dict[tuple[str, int], RegisteredVersion] = {}

    def writer(self, schema_id: int) -> Mapping[str, Any]:
        """The writer schema with this id, as a dict."""
        cached = self._writers.get(schema_id)
        if cached is None:
            cached = self._fetch_writer(schema_id)
            self._writers[schema_id] = cached
        if isinstance(cached, RecordRejectedError):
            raise cached
        return cached

    def version_of(self, subject: str, schema_id: int) -> RegisteredVersion:
        """The version of ``subject`` that the schema with this id is."""
        cached = self._versions.get((subject, schema_id))
        if cached is not None:
            return cached

        schema = self.writer(schema_id)
        try:
            with _registry_errors(f"schema id {schema_id} in subject {subject}"):
                found = self._client.lookup_schema(
                    subject, Schema(json.dumps(schema), "AVRO")
                )
        except RecordRejectedError:
            raise RecordRejectedError(
                RejectCode.UNKNOWN_SCHEMA,
                f"schema id {schema_id} is not a version of subject {subject}",
            ) from None
        registered = _registered(subject, found.version, schema_id, schema)
        self._versions[(subject, schema_id)] = registered
        return registered

    def latest(self, subject: str) -> RegisteredVersion | None:
        """The subject's newest version, asked fresh; None if it has none."""
        try:
            with _registry_errors(f"subject {subject}"):
                versions = self._client.get_versions(subject)
        except RecordRejectedError:
            return None
        if not versions:
            return None

        with _registry_errors(f"subject {subject}"):
            found = self._client.get_version(subject, max(versions))
        schema = json.loads(found.schema.schema_str)
        registered = _registered(subject, found.version, found.schema_id, schema)
        self._versions.setdefault((subject, found.schema_id), registered)
        return registered

    def _fetch_writer(self, schema_id: int) -> Mapping[str, Any] | RecordRejectedError:
        """The schema, or the rejection to repeat for every record that names it."""
        try:
            with _registry_errors(f"schema id {schema_id}"):
                found = self._client.get_schema(schema_id)
        except RecordRejectedError as exc:
            logger.warning("unknown writer schema schema_id=%d", schema_id)
            return exc
        return json.loads(found.schema_str)


def _registered(
    subject: str, version: int, schema_id: int, schema: Mapping[str, Any]
) -> RegisteredVersion:
    """Parse a registered schema; one fastavro cannot read is an unknown schema."""
    try:
        parsed = fastavro.parse_schema(dict(schema), named_schemas={})
    except (SchemaParseException, KeyError, TypeError, ValueError) as exc:
        raise RecordRejectedError(
            RejectCode.UNKNOWN_SCHEMA,
            f"version {version} of {subject} (id {schema_id}) is not a schema "
            f"fastavro can read: {exc}",
        ) from exc
    return RegisteredVersion(subject, version, schema_id, schema, parsed)


@contextmanager
def _registry_errors(what: str) -> Iterator[None]:
    """A 404 rejects the record; every other failure is worth a retry."""
    try:
        yield
    except SchemaRegistryError as exc:
        if exc.http_status_code == HTTP_NOT_FOUND:
            raise RecordRejectedError(
                RejectCode.UNKNOWN_SCHEMA,
                f"the registry does not know {what} ({exc.error_message})",
            ) from exc
        raise TransientError(
            f"registry answered HTTP {exc.http_status_code} for {what}: "
            f"{exc.error_message}"
        ) from exc
    except TransportError as exc:
        raise TransientError(f"registry unreachable asking for {what}: {exc}") from exc
