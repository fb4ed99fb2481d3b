"""Worker settings, read once from ``GATEKEEPER_*`` environment variables."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from contracts.catalogue import IDENTIFIER
from contracts.errors import ConfigurationError
from contracts.settings import check_environment, contracts_dir


@dataclass(frozen=True)
class WorkerConfig:
    kafka_bootstrap: str = "127.0.0.1:9092"
    contracts_dir: Path = field(default_factory=contracts_dir)
    registry_url: str = "http://127.0.0.1:8081/apis/ccompat/v7"
    database_url: str = "postgresql://gatekeeper:gatekeeper@127.0.0.1:5432/gatekeeper"
    db_schema: str = "public"
    group_id: str = "gatekeeper-worker"
    batch_max_records: int = 500
    batch_max_wait_s: float = 0.5

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> WorkerConfig:
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
        )
        if not IDENTIFIER.match(config.db_schema):
            raise ConfigurationError(
                f"GATEKEEPER_DB_SCHEMA must be a plain SQL identifier, "
                f"not {config.db_schema!r}"
            )
        return config
