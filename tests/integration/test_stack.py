"""The local stack keeps its data across restarts and says which server failed."""

from __future__ import annotations

import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg2
import pytest
import requests
from confluent_kafka import Consumer, Producer, TopicPartition

from scripts.stack import Stack, StackConfig, StackError, registry
from scripts.stack.config import HOST, REPO_ROOT


@pytest.fixture
def private_stack() -> Iterator[Stack]:
    """A stack of the test's own, for tests that stop and restart servers."""
    state_dir = Path(tempfile.mkdtemp(prefix="gatekeeper-test-"))
    state_dir.chmod(0o755)
    stack = Stack(StackConfig(state_dir, REPO_ROOT / ".cache").with_free_ports())
    yield stack
    stack.stop()


def test_registry_keeps_schema_ids_across_a_restart(registered: Stack) -> None:
    url = registered.config.registry_url
    before = _schema_ids(url)

    registry.process(registered.config).stop()
    registry.start(registered.config)
    registered.await_ready(registry.process(registered.config), registry.is_ready)

    assert before, "the catalogue registered no subject"
    assert _schema_ids(url) == before


def _schema_ids(url: str) -> dict[str, int]:
    subjects = requests.get(f"{url}/subjects", timeout=10).json()
    return {
        subject: requests.get(
            f"{url}/subjects/{subject}/versions/latest", timeout=10
        ).json()["id"]
        for subject in subjects
    }


def test_kafka_and_postgres_keep_their_data_across_down_and_up(
    private_stack: Stack,
) -> None:
    config = private_stack.config
    private_stack.start_servers()
    producer = Producer({"bootstrap.servers": config.kafka_bootstrap})
    producer.produce("restart-check", value=b"kept", partition=0)
    assert producer.flush(10) == 0
    with psycopg2.connect(config.database_url) as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE kept (note text); INSERT INTO kept VALUES ('row')")

    private_stack.stop()
    private_stack.start_servers()

    assert _read_one(config.kafka_bootstrap, "restart-check") == b"kept"
    with psycopg2.connect(config.database_url) as conn, conn.cursor() as cur:
        cur.execute("SELECT note FROM kept")
        assert cur.fetchall() == [("row",)]


def _read_one(bootstrap: str, topic: str) -> bytes | None:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "restart-check"})
    consumer.assign([TopicPartition(topic, 0, 0)])
    try:
        message = consumer.poll(15)
    finally:
        consumer.close()
    return message.value() if message is not None else None


def test_a_server_that_cannot_start_is_named_with_the_end_of_its_log(
    private_stack: Stack,
) -> None:
    with socket.socket() as squatter:
        squatter.bind((HOST, private_stack.config.registry_port))
        squatter.listen()

        with pytest.raises(StackError) as failure:
            private_stack.start_servers()

    message = str(failure.value)
    assert message.startswith("registry exited")
    assert "registry.log" in message
    assert f"Port {private_stack.config.registry_port} seems to be in use" in message
