"""The schema registry client, as every component builds it.

confluent-kafka's client speaks both Confluent's API and Apicurio's ccompat API. Its
HTTP transport raises its own exceptions for network failures; they are named here
once so that callers can tell "unreachable" from "refused".
"""

from __future__ import annotations

from confluent_kafka.schema_registry import SchemaRegistryClient

try:
    from httpx2 import TransportError
except ImportError:  # releases of confluent-kafka before the httpx2 fork use httpx
    from httpx import TransportError  # type: ignore[no-redef]

__all__ = ["TransportError", "connect"]

# Seconds to wait on one registry request; the client retries on its own.
REQUEST_TIMEOUT_S = 5


def connect(url: str) -> SchemaRegistryClient:
    """A client for a Confluent registry or an Apicurio ``/apis/ccompat/v7`` URL."""
    return SchemaRegistryClient({"url": url, "timeout": REQUEST_TIMEOUT_S})
