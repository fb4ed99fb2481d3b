"""Where the local stack lives and listens.

Every port is configurable through the environment, so the stack can sit beside other
servers; tests build a config with free ports and a throwaway state folder instead.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from contracts.errors import ConfigurationError

REPO_ROOT = Path(__file__).resolve().parents[2]
HOST = "127.0.0.1"

# Credentials of the local stack's own PostgreSQL cluster. It listens on loopback
# only; point GATEKEEPER_DATABASE_URL at a real server for anything else.
DB_USER = "gatekeeper"
DB_PASSWORD = "gatekeeper"
DB_NAME = "gatekeeper"
REGISTRY_DB_NAME = "registry"

PORT_VARIABLES = {
    "postgres_port": ("GATEKEEPER_POSTGRES_PORT", 5432),
    "kafka_port": ("GATEKEEPER_KAFKA_PORT", 9092),
    "kafka_controller_port": ("GATEKEEPER_KAFKA_CONTROLLER_PORT", 9093),
    "registry_port": ("GATEKEEPER_REGISTRY_PORT", 8081),
    "registry_management_port": ("GATEKEEPER_REGISTRY_MANAGEMENT_PORT", 9000),
    "gateway_port": ("GATEKEEPER_GATEWAY_PORT", 5000),
    "worker_metrics_port": ("GATEKEEPER_WORKER_METRICS_PORT", 9108),
}


@dataclass(frozen=True)
class StackConfig:
    """The ports of one stack, its state folder and the download cache it shares."""

    state_dir: Path
    cache_dir: Path
    postgres_port: int = 5432
    kafka_port: int = 9092
    kafka_controller_port: int = 9093
    registry_port: int = 8081
    registry_management_port: int = 9000
    gateway_port: int = 5000
    worker_metrics_port: int = 9108

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> StackConfig:
        """The developer's stack: ``.stack`` and ``.cache`` in the repository."""
        state_dir = Path(environ.get("GATEKEEPER_STACK_DIR", REPO_ROOT / ".stack"))
        cache_dir = Path(environ.get("GATEKEEPER_CACHE_DIR", REPO_ROOT / ".cache"))
        ports = {
            attr: _port(environ, variable, default)
            for attr, (variable, default) in PORT_VARIABLES.items()
        }
        return cls(state_dir.resolve(), cache_dir.resolve(), **ports)

    def with_free_ports(self) -> StackConfig:
        """A copy listening on ports the kernel reports free, for test runs."""
        return replace(self, **{attr: free_port() for attr in PORT_VARIABLES})

    @property
    def logs_dir(self) -> Path:
        return self.state_dir / "logs"

    @property
    def run_dir(self) -> Path:
        return self.state_dir / "run"

    @property
    def kafka_bootstrap(self) -> str:
        return f"{HOST}:{self.kafka_port}"

    @property
    def registry_url(self) -> str:
        return f"http://{HOST}:{self.registry_port}/apis/ccompat/v7"

    @property
    def database_url(self) -> str:
        credentials = f"{DB_USER}:{DB_PASSWORD}"
        return f"postgresql://{credentials}@{HOST}:{self.postgres_port}/{DB_NAME}"

    @property
    def gateway_url(self) -> str:
        return f"http://{HOST}:{self.gateway_port}"

    def client_environment(self) -> dict[str, str]:
        """The variables gateway, worker, tools and tests read to find the stack."""
        return {
            "GATEKEEPER_KAFKA_BOOTSTRAP": self.kafka_bootstrap,
            "GATEKEEPER_SCHEMA_REGISTRY_URL": self.registry_url,
            "GATEKEEPER_DATABASE_URL": self.database_url,
            "GATEKEEPER_GATEWAY_URL": self.gateway_url,
            "GATEKEEPER_GATEWAY_PORT": str(self.gateway_port),
            "GATEKEEPER_WORKER_METRICS_PORT": str(self.worker_metrics_port),
        }


def _port(environ: Mapping[str, str], variable: str, default: int) -> int:
    raw = environ.get(variable)
    if raw is None:
        return default
    if not raw.isdigit() or not 0 < int(raw) < 65536:
        raise ConfigurationError(f"{variable} must be a TCP port number, not {raw!r}")
    return int(raw)


def free_port() -> int:
    """A loopback port nobody listens on right now.

    The kernel may hand the port to someone else before the server binds it; on a
    developer machine that race is rare enough, and the server then fails loudly.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]
