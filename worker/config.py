"""Worker settings, read once from ``GATEKEEPER_*`` environment variables."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from contracts.catalogue import IDENTIFIER
from contracts.errors import ConfigurationError
from contracts.settings import (
    DEFAULT_DATABASE_URL,
    DEFAULT_KAFKA_BOOTSTRAP,
    DEFAULT_REGISTRY_URL,
    check_environment,
    contracts_dir,
)

# A Kafka group.instance.id: letters, digits and . _ - (Kafka's own rule), bounded.
INSTANCE_ID = re.compile(r"^[A-Za-z0-9._-]{1,249}$")

# Ports at or below this need privileges no worker should have.
LOWEST_PORT = 1024


@dataclass(frozen=True)
class WorkerConfig:
    """Where the worker reads, writes and listens, and how it batches.

    ``batch_max_records`` and ``batch_max_wait_s`` bound a batch: the worker applies
    what arrived once either is reached. At 2,000 records a batch's transaction
    takes about 60 ms on a 2-core machine (decode, COPY, upsert, commit), short
    enough for a prompt stop, long enough that the commit's wait for the disk is
    shared by many rows (``scripts/bench/bench_worker.py``).
    ``recheck_interval_s`` is how often a stopped table is examined again.
    """

    kafka_bootstrap: str = DEFAULT_KAFKA_BOOTSTRAP
    contracts_dir: Path = field(default_factory=contracts_dir)
    registry_url: str = DEFAULT_REGISTRY_URL
    database_url: str = DEFAULT_DATABASE_URL
    db_schema: str = "public"
    group_id: str = "gatekeeper-worker"
    instance_id: str | None = None
    batch_max_records: int = 2000
    batch_max_wait_s: float = 0.5
    metrics_port: int = 9108
    recheck_interval_s: float = 30.0

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> WorkerConfig:
        """Read and check the settings; raise ConfigurationError naming the variable."""
        check_environment(environ)
        defaults = cls()
        config = cls(
            contracts_dir=contracts_dir(environ),
            kafka_bootstrap=environ.get(
                "GATEKEEPER_KAFKA_BOOTSTRAP", defaults.kafka_bootstrap
            ),
            registry_url=environ.get(
                "GATEKEEPER_SCHEMA_REGISTRY_URL", defaults.registry_url
            ).rstrip("/"),
            database_url=environ.get("GATEKEEPER_DATABASE_URL", defaults.database_url),
            db_schema=environ.get("GATEKEEPER_DB_SCHEMA", defaults.db_schema),
            group_id=environ.get("GATEKEEPER_CONSUMER_GROUP", defaults.group_id),
            instance_id=environ.get("GATEKEEPER_WORKER_INSTANCE_ID") or None,
            batch_max_records=_integer(
                environ, "GATEKEEPER_WORKER_BATCH_MAX_RECORDS", 1, 100_000
            )
            or defaults.batch_max_records,
            batch_max_wait_s=(
                _integer(environ, "GATEKEEPER_WORKER_BATCH_MAX_WAIT_MS", 1, 60_000)
                or defaults.batch_max_wait_s * 1000
            )
            / 1000,
            metrics_port=_metrics_port(environ, defaults.metrics_port),
        )
        config.check()
        return config

    def check(self) -> None:
        """Refuse names that would reach SQL or Kafka malformed."""
        if not IDENTIFIER.match(self.db_schema):
            raise ConfigurationError(
                f"GATEKEEPER_DB_SCHEMA must be a plain SQL identifier, "
                f"not {self.db_schema!r}"
            )
        if self.instance_id is not None and not INSTANCE_ID.match(self.instance_id):
            raise ConfigurationError(
                "GATEKEEPER_WORKER_INSTANCE_ID may hold letters, digits, '.', '_' "
                f"and '-' only, not {self.instance_id!r}"
            )

    def describe(self) -> dict[str, object]:
        """The effective settings for the start-up log, the password masked."""
        return {
            "bootstrap": self.kafka_bootstrap,
            "registry": self.registry_url,
            "database": re.sub(r":[^:@/]*@", ":***@", self.database_url),
            "schema": self.db_schema,
            "group": self.group_id,
            "instance": self.instance_id or "-",
            "contracts": str(self.contracts_dir),
            "batch_max_records": self.batch_max_records,
            "batch_max_wait_s": self.batch_max_wait_s,
            "metrics_port": self.metrics_port,
        }


def _integer(
    environ: Mapping[str, str], variable: str, low: int, high: int
) -> int | None:
    """The variable as an integer in [low, high], or None when it is unset."""
    raw = environ.get(variable)
    if raw is None or raw == "":
        return None
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise ConfigurationError(
            f"{variable} must be a whole number from {low} to {high}, not {raw!r}"
        )
    return int(raw)


def _metrics_port(environ: Mapping[str, str], default: int) -> int:
    """The metrics port; 0 turns the metrics endpoint off."""
    variable = "GATEKEEPER_WORKER_METRICS_PORT"
    if environ.get(variable) == "0":
        return 0
    port = _integer(environ, variable, LOWEST_PORT, 65535)
    return default if port is None else port
