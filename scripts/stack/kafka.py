"""Apache Kafka in KRaft mode: one process that is both broker and controller."""

from __future__ import annotations

import base64
import logging
import os
import subprocess
import uuid
from pathlib import Path

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from scripts.stack import downloads
from scripts.stack.config import HOST, StackConfig
from scripts.stack.processes import ManagedProcess, StackError

logger = logging.getLogger(__name__)

NAME = "kafka"
HEAP = "-Xmx768m"

# A single broker can keep one copy of anything; these defaults would otherwise ask
# for three and leave internal topics unavailable.
SINGLE_NODE = {
    "offsets.topic.replication.factor": "1",
    "transaction.state.log.replication.factor": "1",
    "transaction.state.log.min.isr": "1",
    "share.coordinator.state.topic.replication.factor": "1",
    "share.coordinator.state.topic.min.isr": "1",
}


def process(config: StackConfig) -> ManagedProcess:
    return ManagedProcess(NAME, config.run_dir, config.logs_dir)


def _data_dir(config: StackConfig) -> Path:
    return config.state_dir / "kafka" / "data"


def _properties(config: StackConfig) -> dict[str, str]:
    broker = f"{HOST}:{config.kafka_port}"
    controller = f"{HOST}:{config.kafka_controller_port}"
    return {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.voters": f"1@{controller}",
        "listeners": f"PLAINTEXT://{broker},CONTROLLER://{controller}",
        "advertised.listeners": f"PLAINTEXT://{broker}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "log.dirs": str(_data_dir(config)),
        "num.partitions": "3",
        "group.initial.rebalance.delay.ms": "0",
        **SINGLE_NODE,
    }


def _write_properties(config: StackConfig) -> Path:
    path = config.state_dir / "kafka" / "server.properties"
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [f"{key}={value}" for key, value in _properties(config).items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def _java_argv(config: StackConfig, main_class: str, *args: str) -> list[str]:
    java = downloads.java_home(downloads.KAFKA_MIN_JAVA) / "bin" / "java"
    libs = downloads.kafka_libs(config.cache_dir)
    return [
        str(java),
        HEAP,
        f"-Dlog4j2.configurationFile={downloads.HERE / 'kafka-log4j2.properties'}",
        "-cp",
        f"{libs}/*",
        main_class,
        *args,
    ]


def _format_storage(config: StackConfig, properties: Path) -> None:
    """Format the log folder once; later starts reuse its data and cluster id."""
    if (_data_dir(config) / "meta.properties").exists():
        return

    cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
    logger.info("formatting Kafka storage cluster_id=%s", cluster_id)
    argv = _java_argv(
        config,
        "kafka.tools.StorageTool",
        "format",
        # Joined with "=": an id may start with "-" and would read as an option.
        f"--cluster-id={cluster_id}",
        "--config",
        str(properties),
    )
    result = subprocess.run(argv, capture_output=True, text=True)
    if result.returncode != 0:
        raise StackError(f"kafka: storage format failed:\n{result.stderr}")


def start(config: StackConfig) -> None:
    """Start the broker unless it already runs; readiness is checked by the caller."""
    managed = process(config)
    if managed.pid() is not None:
        return

    properties = _write_properties(config)
    _format_storage(config, properties)
    argv = _java_argv(config, "kafka.Kafka", str(properties))
    managed.start(argv, env=os.environ)


def is_ready(config: StackConfig) -> bool:
    """True once the broker answers a metadata request."""
    admin = AdminClient({"bootstrap.servers": config.kafka_bootstrap})
    try:
        metadata = admin.list_topics(timeout=2)
    except KafkaException:
        return False
    return bool(metadata.brokers)
