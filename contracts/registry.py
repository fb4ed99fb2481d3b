"""The schema registry client, as every component builds it.

confluent-kafka's client speaks both Confluent's API and Apicurio's ccompat API. Its
HTTP transport raises its own exceptions for network failures; they are named here
once so that callers can tell "unreachable" from "refused".
"""

from __future__ import annotations

from typing import Any

from confluent_kafka.schema_registry import (
    SchemaRegistryClient,
    topic_subject_name_strategy,
)

try:
    from httpx2 import TransportError
except ImportError:  # releases of confluent-kafka before the httpx2 fork use httpx
    from httpx import TransportError  # type: ignore[no-redef]

__all__ = ["BY_TOPIC", "TransportError", "connect"]

# Seconds to wait on one registry request; the client retries on its own.
REQUEST_TIMEOUT_S = 5

# Serializer and deserializer settings naming the design's subject strategy
# (``<topic>-key``, ``<topic>-value``). Left unset, confluent-kafka 2.16 first asks
# the registry for subject associations, an API Apicurio does not serve; that
# request can then wait for as long as the client lets it.
BY_TOPIC = {"subject.name.strategy": topic_subject_name_strategy}


def connect(url: str, **settings: Any) -> SchemaRegistryClient:
    """A client for a Confluent registry or an Apicurio ``/apis/ccompat/v7`` URL.

    ``settings`` are the client's own (``timeout``, ``max.retries``, ...).
    """
    return SchemaRegistryClient({"url": url, "timeout": REQUEST_TIMEOUT_S, **settings})
