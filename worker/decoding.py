"""Kafka records to changes: Confluent wire-format Avro decoded through the registry."""

from __future__ import annotations

import logging
import struct
from collections.abc import Mapping

from confluent_kafka import Message
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.schema_registry.error import SchemaRegistryError
from confluent_kafka.serialization import (
    MessageField,
    SerializationContext,
    SerializationError,
)

from contracts.catalogue import TOPIC_PREFIX, Contract
from worker.writer import Change

logger = logging.getLogger(__name__)

WIRE_HEADER = struct.Struct(">bI")


class DecodeError(Exception):
    """A record that cannot become a change; its reason goes to the rejects."""


class Decoder:
    def __init__(
        self, client: SchemaRegistryClient, catalogue: Mapping[str, Contract]
    ) -> None:
        self._client = client
        self._catalogue = catalogue
        self._deserializer = AvroDeserializer(client)
        self._versions: dict[int, int] = {}

    def decode(self, message: Message) -> Change:
        topic = message.topic()
        contract = self._catalogue.get(topic.removeprefix(TOPIC_PREFIX))
        if contract is None:
            raise DecodeError(f"no contract for topic {topic}")

        headers = {k: (v or b"").decode() for k, v in message.headers() or []}
        operation = headers.get("gk-operation", "upsert")
        key = self._datum(message.key(), topic, MessageField.KEY)
        value = self._datum(message.value(), topic, MessageField.VALUE)
        if value is None and operation != "delete":
            raise DecodeError(f"{operation} record without a value")

        columns = tuple(filter(None, headers.get("gk-columns", "").split(",")))
        schema_id = _schema_id(message.value()) if value is not None else None
        version = self._version(contract.value_subject, schema_id)
        return Change(
            topic,
            message.partition(),
            message.offset(),
            contract,
            operation,
            key,
            value,
            columns,
            schema_id,
            version,
        )

    def _datum(self, raw: bytes | None, topic: str, field: MessageField):
        if raw is None:
            return None
        try:
            return self._deserializer(raw, SerializationContext(topic, field))
        except SerializationError as exc:
            raise DecodeError(f"cannot decode {field}: {exc}") from exc
        except SchemaRegistryError as exc:
            if exc.http_status_code == 404:
                raise DecodeError(f"unknown writer schema for {field}: {exc}") from exc
            raise

    def _version(self, subject: str, schema_id: int | None) -> int | None:
        """The subject version of a writer schema id, asked once per id."""
        if schema_id is None:
            return None
        if schema_id not in self._versions:
            schema = self._client.get_schema(schema_id)
            registered = self._client.lookup_schema(subject, schema)
            self._versions[schema_id] = registered.version
        return self._versions[schema_id]


def _schema_id(raw: bytes) -> int:
    _, schema_id = WIRE_HEADER.unpack_from(raw)
    return schema_id
