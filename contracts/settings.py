"""Every ``GATEKEEPER_*`` environment variable the project reads, in one place.

A misspelt variable is worse than a missing one: the default silently stays in force.
So the gateway, the worker and the tools refuse a ``GATEKEEPER_*`` variable that is
not listed here, and suggest the name that was probably meant.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping
from pathlib import Path

from contracts.catalogue import SCHEMA_DIR
from contracts.errors import ConfigurationError

PREFIX = "GATEKEEPER_"

# Where the servers are unless told otherwise: the addresses of the local stack.
DEFAULT_KAFKA_BOOTSTRAP = "127.0.0.1:9092"
DEFAULT_REGISTRY_URL = "http://127.0.0.1:8081/apis/ccompat/v7"
DEFAULT_DATABASE_URL = "postgresql://gatekeeper:gatekeeper@127.0.0.1:5432/gatekeeper"

VARIABLES = {
    # Where the servers are; the defaults match the local stack.
    "GATEKEEPER_KAFKA_BOOTSTRAP": "Kafka bootstrap servers",
    "GATEKEEPER_SCHEMA_REGISTRY_URL": "Confluent or Apicurio ccompat registry URL",
    "GATEKEEPER_DATABASE_URL": "PostgreSQL URL of the worker's database",
    "GATEKEEPER_CONTRACTS_DIR": "folder of the *.avsc contracts",
    # Gateway.
    "GATEKEEPER_GATEWAY_HOST": "address gunicorn binds",
    "GATEKEEPER_GATEWAY_PORT": "port gunicorn binds",
    "GATEKEEPER_GATEWAY_URL": "where clients reach the gateway (tools, tests)",
    "GATEKEEPER_GATEWAY_WORKERS": "gunicorn worker processes",
    "GATEKEEPER_GATEWAY_THREADS": "threads per gunicorn worker process",
    "GATEKEEPER_MAX_BODY_BYTES": "largest request body accepted",
    "GATEKEEPER_MAX_ACTIVITIES": "most activities in one request",
    "GATEKEEPER_DELIVERY_TIMEOUT_S": "seconds to wait for Kafka's acknowledgements",
    "GATEKEEPER_API_KEYS_FILE": "JSON file of the gateway's API keys and grants",
    "GATEKEEPER_API_KEYS": "the API keys' JSON itself, instead of a file",
    "GATEKEEPER_IDEMPOTENCY_TTL_S": "seconds an Idempotency-Key answer is kept",
    # Worker.
    "GATEKEEPER_DB_SCHEMA": "PostgreSQL schema of the data tables",
    "GATEKEEPER_CONSUMER_GROUP": "Kafka consumer group of the workers",
    "GATEKEEPER_WORKER_INSTANCE_ID": "static group member id of one worker process",
    "GATEKEEPER_WORKER_BATCH_MAX_RECORDS": "most records the worker applies at once",
    "GATEKEEPER_WORKER_BATCH_MAX_WAIT_MS": "longest the worker gathers a batch",
    "GATEKEEPER_WORKER_METRICS_PORT": "worker Prometheus metrics port (0: off)",
    # Local stack.
    "GATEKEEPER_STACK_DIR": "state folder of the local stack",
    "GATEKEEPER_CACHE_DIR": "download cache of the local stack",
    "GATEKEEPER_JAVA_HOME": "JDK (21 or newer) for the registry",
    "GATEKEEPER_POSTGRES_PORT": "local stack's PostgreSQL port",
    "GATEKEEPER_KAFKA_PORT": "local stack's Kafka port",
    "GATEKEEPER_KAFKA_CONTROLLER_PORT": "local stack's KRaft controller port",
    "GATEKEEPER_REGISTRY_PORT": "local stack's registry port",
    "GATEKEEPER_REGISTRY_MANAGEMENT_PORT": "local stack's registry health port",
    # Tests.
    "GATEKEEPER_KEEP_TEST_LOGS": "keep the test stack's logs",
}


def check_environment(environ: Mapping[str, str] = os.environ) -> None:
    """Raise ConfigurationError for any unknown ``GATEKEEPER_*`` variable."""
    unknown = sorted(k for k in environ if k.startswith(PREFIX) and k not in VARIABLES)
    if not unknown:
        return
    hints = []
    for name in unknown:
        close = difflib.get_close_matches(name, VARIABLES, n=1)
        hints.append(f"{name} (did you mean {close[0]}?)" if close else name)
    raise ConfigurationError(
        "unknown setting "
        + ", ".join(hints)
        + "; the known ones are listed in contracts/settings.py"
    )


def contracts_dir(environ: Mapping[str, str] = os.environ) -> Path:
    """The folder the contracts are read from."""
    return Path(environ.get("GATEKEEPER_CONTRACTS_DIR", SCHEMA_DIR))
