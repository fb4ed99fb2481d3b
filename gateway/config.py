"""Gateway settings, read once from ``GATEKEEPER_*`` environment variables."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from contracts.errors import ConfigurationError
from contracts.settings import check_environment, contracts_dir


@dataclass(frozen=True)
class GatewayConfig:
    kafka_bootstrap: str = "127.0.0.1:9092"
    contracts_dir: Path = field(default_factory=contracts_dir)
    registry_url: str = "http://127.0.0.1:8081/apis/ccompat/v7"
    max_body_bytes: int = 1_048_576
    max_activities: int = 1000
    delivery_timeout_s: float = 10.0
    schema_cache_ttl_s: float = 30.0

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> GatewayConfig:
        """Read the settings; raise ConfigurationError naming a malformed variable."""
        check_environment(environ)
        defaults = cls()
        return cls(
            contracts_dir=contracts_dir(environ),
            kafka_bootstrap=environ.get(
                "GATEKEEPER_KAFKA_BOOTSTRAP", defaults.kafka_bootstrap
            ),
            registry_url=environ.get(
                "GATEKEEPER_SCHEMA_REGISTRY_URL", defaults.registry_url
            ).rstrip("/"),
            max_body_bytes=_number(
                environ, "GATEKEEPER_MAX_BODY_BYTES", defaults.max_body_bytes, int
            ),
            max_activities=_number(
                environ, "GATEKEEPER_MAX_ACTIVITIES", defaults.max_activities, int
            ),
            delivery_timeout_s=_number(
                environ,
                "GATEKEEPER_DELIVERY_TIMEOUT_S",
                defaults.delivery_timeout_s,
                float,
            ),
            schema_cache_ttl_s=_number(
                environ,
                "GATEKEEPER_SCHEMA_CACHE_TTL_S",
                defaults.schema_cache_ttl_s,
                float,
            ),
        )


def _number(environ: Mapping[str, str], variable: str, default, kind):
    raw = environ.get(variable)
    if raw is None:
        return default
    try:
        value = kind(raw)
    except ValueError:
        raise ConfigurationError(f"{variable} must be a number, not {raw!r}") from None
    if value <= 0:
        raise ConfigurationError(f"{variable} must be positive, not {raw!r}")
    return value
