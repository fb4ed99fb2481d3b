"""Gateway settings, read once from ``GATEKEEPER_*`` environment variables."""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from contracts.errors import ConfigurationError
from contracts.settings import (
    DEFAULT_DATABASE_URL,
    DEFAULT_KAFKA_BOOTSTRAP,
    DEFAULT_REGISTRY_URL,
    check_environment,
    contracts_dir,
)
from gateway.auth import ApiKey, keys_from_environment

Number = TypeVar("Number", int, float)


@dataclass(frozen=True)
class GatewayConfig:
    """Everything one gateway process needs; defaults match the local stack.

    ``api_keys`` empty means that no request is authorised: ``from_env`` refuses
    to start that way, a config built in code (tests) may choose it on purpose.
    """

    kafka_bootstrap: str = DEFAULT_KAFKA_BOOTSTRAP
    contracts_dir: Path = field(default_factory=contracts_dir)
    registry_url: str = DEFAULT_REGISTRY_URL
    database_url: str = DEFAULT_DATABASE_URL
    api_keys: tuple[ApiKey, ...] = ()
    max_body_bytes: int = 1_048_576
    max_activities: int = 1000
    delivery_timeout_s: float = 10.0
    idempotency_ttl_s: float = 86_400.0
    # Request threads per process (gunicorn reads the same variable); the
    # idempotency store keeps this many database connections at most.
    threads: int = 8

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> GatewayConfig:
        """Read the settings; raise ConfigurationError naming a malformed variable."""
        check_environment(environ)
        defaults = cls()
        keys = keys_from_environment(environ)
        if not keys:
            raise ConfigurationError(
                "no API keys configured: set GATEKEEPER_API_KEYS_FILE to a keys file "
                "or GATEKEEPER_API_KEYS to its JSON (see docs/gateway.md)"
            )

        return cls(
            contracts_dir=contracts_dir(environ),
            kafka_bootstrap=environ.get(
                "GATEKEEPER_KAFKA_BOOTSTRAP", defaults.kafka_bootstrap
            ),
            registry_url=environ.get(
                "GATEKEEPER_SCHEMA_REGISTRY_URL", defaults.registry_url
            ).rstrip("/"),
            database_url=environ.get("GATEKEEPER_DATABASE_URL", defaults.database_url),
            api_keys=keys,
            max_body_bytes=_positive(
                environ, "GATEKEEPER_MAX_BODY_BYTES", defaults.max_body_bytes, int
            ),
            max_activities=_positive(
                environ, "GATEKEEPER_MAX_ACTIVITIES", defaults.max_activities, int
            ),
            delivery_timeout_s=_positive(
                environ,
                "GATEKEEPER_DELIVERY_TIMEOUT_S",
                defaults.delivery_timeout_s,
                float,
            ),
            idempotency_ttl_s=_positive(
                environ,
                "GATEKEEPER_IDEMPOTENCY_TTL_S",
                defaults.idempotency_ttl_s,
                float,
            ),
            threads=_positive(
                environ, "GATEKEEPER_GATEWAY_THREADS", defaults.threads, int
            ),
        )

    def masked(self) -> dict[str, object]:
        """The settings as they may be logged: key names only, no password."""
        return {
            "kafka_bootstrap": self.kafka_bootstrap,
            "registry_url": self.registry_url,
            "database_url": _mask_password(self.database_url),
            "contracts_dir": str(self.contracts_dir),
            "api_keys": ",".join(key.name for key in self.api_keys) or "-",
            "max_body_bytes": self.max_body_bytes,
            "max_activities": self.max_activities,
            "delivery_timeout_s": self.delivery_timeout_s,
            "idempotency_ttl_s": self.idempotency_ttl_s,
            "threads": self.threads,
        }


def _positive(
    environ: Mapping[str, str],
    variable: str,
    default: Number,
    kind: Callable[[str], Number],
) -> Number:
    raw = environ.get(variable)
    if raw is None:
        return default
    try:
        value = kind(raw)
    except ValueError:
        raise ConfigurationError(f"{variable} must be a number, not {raw!r}") from None
    if not (value > 0 and math.isfinite(value)):
        raise ConfigurationError(f"{variable} must be positive, not {raw!r}")
    return value


def _mask_password(url: str) -> str:
    """The URL with its password hidden: ``postgresql://user:***@host/db``."""
    scheme, sep, rest = url.partition("://")
    credentials, at, host = rest.rpartition("@")
    if not sep or not at or ":" not in credentials:
        return url
    user = credentials.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}"
