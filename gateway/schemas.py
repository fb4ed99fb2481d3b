"""The registered value and key schemas the gateway writes with, cached per subject.

The gateway never registers schemas: a contract enters the registry only through
``make register-schemas``. It writes with the subject's latest registered version,
re-read after ``ttl`` seconds; while the registry is unreachable, the cached version
keeps serving and only subjects never seen before fail.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroSerializer
from confluent_kafka.schema_registry.error import SchemaRegistryError
from confluent_kafka.serialization import MessageField, SerializationContext

from contracts.errors import RegistryError
from contracts.registry import TransportError

logger = logging.getLogger(__name__)

# Apicurio answers 40401 for an unknown subject, as Confluent's registry does.
SUBJECT_NOT_FOUND = 40401


@dataclass(frozen=True)
class WriterSchema:
    """A subject's registered version and the serializer that writes with it."""

    subject: str
    version: int
    schema_id: int
    serializer: AvroSerializer
    fetched_at: float

    def serialize(self, datum: dict, topic: str, field: MessageField) -> bytes:
        return self.serializer(datum, SerializationContext(topic, field))


class WriterSchemas:
    """Latest registered schema per subject, refreshed after ``ttl`` seconds."""

    def __init__(self, client: SchemaRegistryClient, ttl: float) -> None:
        self._client = client
        self._ttl = ttl
        self._cache: dict[str, WriterSchema] = {}
        self._lock = threading.Lock()

    def get(self, subject: str) -> WriterSchema:
        """The writer schema of ``subject``; raise RegistryError if none is known."""
        cached = self._cache.get(subject)
        if cached and time.monotonic() - cached.fetched_at < self._ttl:
            return cached

        with self._lock:
            try:
                fresh = self._fetch(subject)
            except RegistryError:
                if cached is None:
                    raise
                logger.warning(
                    "registry unreachable, keeping subject=%s version=%d",
                    subject,
                    cached.version,
                )
                return cached
            self._cache[subject] = fresh
            return fresh

    def _fetch(self, subject: str) -> WriterSchema:
        try:
            registered = self._client.get_latest_version(subject)
        except SchemaRegistryError as exc:
            raise RegistryError(
                f"registry refused subject {subject}: {exc.error_message}",
                status=exc.http_status_code,
                error_code=exc.error_code,
            ) from exc
        except TransportError as exc:
            raise RegistryError(f"registry unreachable: {exc}") from exc

        serializer = AvroSerializer(
            self._client,
            registered.schema.schema_str,
            conf={"auto.register.schemas": False, "use.latest.version": False},
        )
        logger.info(
            "writer schema subject=%s version=%d schema_id=%d",
            subject,
            registered.version,
            registered.schema_id,
        )
        return WriterSchema(
            subject,
            registered.version,
            registered.schema_id,
            serializer,
            time.monotonic(),
        )
