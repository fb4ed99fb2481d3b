"""The local stack: PostgreSQL, Kafka and Apicurio Registry as plain processes.

Development and CI machines have no container engine, so ``make up`` and the test
suite run the real servers this way; ``docker-compose.yml`` runs the same servers as
containers where there is one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from scripts.stack import apps, kafka, postgres, registry
from scripts.stack.config import HOST, StackConfig
from scripts.stack.processes import ManagedProcess, StackError, wait_until

logger = logging.getLogger(__name__)

__all__ = ["ServiceStatus", "Stack", "StackConfig", "StackError"]

READY_TIMEOUT = {"kafka": 90.0, "registry": 120.0, "gateway": 60.0}


@dataclass(frozen=True)
class ServiceStatus:
    name: str
    running: bool
    address: str
    log: str


class Stack:
    """Start, stop and describe one stack, the developer's or a test run's."""

    def __init__(self, config: StackConfig) -> None:
        self.config = config

    def __repr__(self) -> str:
        return f"<Stack state_dir={self.config.state_dir}>"

    def start_servers(self) -> None:
        """1. PostgreSQL, 2. Kafka and the registry side by side, 3. wait for both."""
        logger.info("starting PostgreSQL port=%d", self.config.postgres_port)
        postgres.start(self.config)

        logger.info("starting Kafka port=%d", self.config.kafka_port)
        kafka.start(self.config)
        logger.info("starting Apicurio Registry port=%d", self.config.registry_port)
        registry.start(self.config)

        self.await_ready(kafka.process(self.config), kafka.is_ready)
        self.await_ready(registry.process(self.config), registry.is_ready)
        self.write_env()

    def start_apps(self) -> None:
        """Start the worker and the gateway; the contracts must be registered first."""
        logger.info("starting worker")
        apps.start_worker(self.config)
        logger.info("starting gateway port=%d", self.config.gateway_port)
        apps.start_gateway(self.config)
        self.await_ready(apps.process(self.config, apps.GATEWAY), apps.gateway_ready)

    def await_ready(
        self, managed: ManagedProcess, is_ready: Callable[[StackConfig], bool]
    ) -> None:
        """Wait until the server answers; fail fast, with its log, when it dies."""
        timeout = READY_TIMEOUT[managed.name]

        def ready_or_dead() -> bool:
            return managed.pid() is None or is_ready(self.config)

        answered = wait_until(ready_or_dead, timeout, interval=0.5)
        if answered and managed.pid() is not None:
            logger.info("%s is ready", managed.name)
            return

        reason = (
            "exited" if managed.pid() is None else f"not ready after {timeout:.0f} s"
        )
        raise StackError(
            f"{managed.name} {reason}; the end of {managed.log_file}:\n"
            f"{managed.log_tail()}"
        )

    def stop(self) -> None:
        """Stop everything, the project's services first, PostgreSQL last."""
        for name in (apps.GATEWAY, apps.WORKER):
            if apps.process(self.config, name).stop():
                logger.info("stopped %s", name)
        for managed in (registry.process(self.config), kafka.process(self.config)):
            if managed.stop():
                logger.info("stopped %s", managed.name)
        if postgres.stop(self.config):
            logger.info("stopped PostgreSQL")

    def status(self) -> list[ServiceStatus]:
        config = self.config
        logs = config.logs_dir
        return [
            ServiceStatus(
                "postgres",
                postgres.is_running(config),
                config.database_url,
                str(logs / "postgres.log"),
            ),
            _process_status(kafka.process(config), config.kafka_bootstrap),
            _process_status(registry.process(config), config.registry_url),
            _process_status(
                apps.process(config, apps.WORKER),
                f"http://{HOST}:{config.worker_metrics_port}/metrics",
            ),
            _process_status(apps.process(config, apps.GATEWAY), config.gateway_url),
        ]

    def write_env(self) -> None:
        """Write ``.stack/env``: shell-sourceable addresses for tools and people."""
        lines = [f"{k}={v}" for k, v in self.config.client_environment().items()]
        path = self.config.state_dir / "env"
        path.write_text("\n".join(lines) + "\n")


def _process_status(managed: ManagedProcess, address: str) -> ServiceStatus:
    return ServiceStatus(
        managed.name, managed.pid() is not None, address, str(managed.log_file)
    )
