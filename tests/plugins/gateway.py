"""Fixtures for the gateway's tests: contracts of their own, apps, gunicorn, Kafka.

Every test that needs isolation gets contracts under unique table names
(``<kind>_<uuid8>``), written as ``.avsc`` files into its own folder and
registered in the session's real registry with ``scripts.register_schemas``;
their topics are created in the session's real Kafka. Apps are built with
``create_app(config)`` against those servers, and ``gunicorn_gateway`` runs the
real gunicorn process with the real configuration file.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
from confluent_kafka import (
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, NewTopic
from flask import Flask
from flask.testing import FlaskClient

from gateway.app import close_app, create_app
from gateway.auth import parse_keys
from gateway.config import GatewayConfig
from scripts import register_schemas
from scripts.stack import Stack
from scripts.stack.config import HOST, REPO_ROOT, free_port
from tests.contracts.builders import field as contract_field
from tests.contracts.builders import nullable

TOPIC_PARTITIONS = 3
# librdkafka's own lines go to logging, shown with a failing test's output.
KAFKA_LOG = logging.getLogger("tests.kafka")
TOKEN = "test-token-" + "0123456789abcdef" * 2
READ_ONLY_TOKEN = "limited-token-" + "fedcba9876543210" * 2

# --- contracts ------------------------------------------------------------------


def rich_contract(table: str) -> dict[str, Any]:
    """A keyed contract with a field of every kind the gateway converts."""
    return {
        "type": "record",
        "name": table,
        "namespace": "gatekeeper.tests",
        "doc": "Every column type, keyed by id.",
        "primary_key": ["id"],
        "fields": [
            contract_field("id", "long"),
            contract_field("small", "int"),
            contract_field("ratio", "float"),
            contract_field("amount", "double"),
            contract_field("flag", "boolean"),
            contract_field("label", "string"),
            contract_field(
                "state",
                {"type": "enum", "name": f"{table}_state", "symbols": ["NEW", "OLD"]},
            ),
            contract_field("blob", "bytes"),
            contract_field(
                "price",
                {"type": "bytes", "logicalType": "decimal", "precision": 8, "scale": 2},
            ),
            contract_field("day", {"type": "int", "logicalType": "date"}),
            contract_field(
                "at_ms", {"type": "long", "logicalType": "timestamp-millis"}
            ),
            contract_field(
                "at_us", {"type": "long", "logicalType": "timestamp-micros"}
            ),
            contract_field(
                "local_ms", {"type": "long", "logicalType": "local-timestamp-millis"}
            ),
            contract_field(
                "local_us", {"type": "long", "logicalType": "local-timestamp-micros"}
            ),
            contract_field("ref", {"type": "string", "logicalType": "uuid"}),
            nullable("note", "string"),
            nullable("score", "int"),
            contract_field("active", "boolean", default=True),
        ],
    }


def keyless_contract(table: str) -> dict[str, Any]:
    """An append-only contract: no primary key, so insert only."""
    return {
        "type": "record",
        "name": table,
        "namespace": "gatekeeper.tests",
        "doc": "Append-only events.",
        "fields": [
            contract_field(
                "seen_at", {"type": "long", "logicalType": "timestamp-micros"}
            ),
            contract_field("path", "string"),
            nullable("visitor", {"type": "string", "logicalType": "uuid"}),
        ],
    }


def pair_contract(table: str) -> dict[str, Any]:
    """A contract keyed by two columns, with one required and one optional value."""
    return {
        "type": "record",
        "name": table,
        "namespace": "gatekeeper.tests",
        "doc": "Keyed by two columns.",
        "primary_key": ["region", "seq"],
        "fields": [
            contract_field("region", "string"),
            contract_field("seq", "int"),
            contract_field("qty", "int"),
            nullable("memo", "string"),
        ],
    }


KINDS: dict[str, Callable[[str], dict[str, Any]]] = {
    "rich": rich_contract,
    "keyless": keyless_contract,
    "pair": pair_contract,
}


@dataclass(frozen=True)
class ContractSet:
    """Contracts written to ``directory``, by kind: ``tables["rich"]`` is a name."""

    directory: Path
    tables: Mapping[str, str]

    def topic(self, kind: str) -> str:
        return f"activities.{self.tables[kind]}"

    @property
    def topics(self) -> list[str]:
        return [self.topic(kind) for kind in self.tables]


def write_contracts(directory: Path, kinds: tuple[str, ...]) -> ContractSet:
    """Write one contract per kind under a fresh unique table name."""
    directory.mkdir(parents=True, exist_ok=True)
    tables = {}
    for kind in kinds:
        table = f"{kind}_{uuid.uuid4().hex[:8]}"
        schema = KINDS[kind](table)
        (directory / f"{table}.avsc").write_text(json.dumps(schema, indent=2))
        tables[kind] = table
    return ContractSet(directory, tables)


def register(stack: Stack, contracts: ContractSet) -> None:
    argv = ["--registry-url", stack.config.registry_url]
    code = register_schemas.main([*argv, "--contracts-dir", str(contracts.directory)])
    assert code == 0, "registering the test contracts failed; see the output above"


def create_topics(stack: Stack, topics: list[str]) -> None:
    admin = AdminClient(
        {"bootstrap.servers": stack.config.kafka_bootstrap}, logger=KAFKA_LOG
    )
    futures = admin.create_topics([NewTopic(t, TOPIC_PARTITIONS) for t in topics])
    for future in futures.values():
        future.result(timeout=30)
    _await_leaders(admin, topics)


def _await_leaders(admin: AdminClient, topics: list[str]) -> None:
    """Wait until every partition has a leader: a new topic answers "not leader"
    to offset requests for a moment after it is created."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        metadata = admin.list_topics(timeout=10).topics
        ready = all(
            topic in metadata
            and metadata[topic].error is None
            and len(metadata[topic].partitions) == TOPIC_PARTITIONS
            and all(
                p.leader >= 0 and p.error is None
                for p in metadata[topic].partitions.values()
            )
            for topic in topics
        )
        if ready:
            return
        time.sleep(0.1)
    pytest.fail(f"topics {topics} have no leaders after 30 s")


@pytest.fixture
def make_contracts(
    registered: Stack, tmp_path_factory: pytest.TempPathFactory
) -> Callable[..., ContractSet]:
    """Contracts of the test's own, registered and with their topics created."""

    def make(*kinds: str, register_them: bool = True) -> ContractSet:
        contracts = write_contracts(tmp_path_factory.mktemp("contracts"), kinds)
        if register_them:
            register(registered, contracts)
        create_topics(registered, contracts.topics)
        return contracts

    return make


@pytest.fixture(scope="session")
def shared_contracts(
    registered: Stack, tmp_path_factory: pytest.TempPathFactory
) -> ContractSet:
    """One registered set for tests that only read what they themselves send."""
    contracts = write_contracts(
        tmp_path_factory.mktemp("shared-contracts"), ("rich", "keyless", "pair")
    )
    register(registered, contracts)
    create_topics(registered, contracts.topics)
    return contracts


# --- keys and configuration -----------------------------------------------------


def keys_document(limited_tables: list[str] | None = None) -> str:
    """Two keys: one granted everything, one ``insert`` on ``limited_tables``."""
    keys = [
        {"name": "tests", "token": TOKEN, "tables": ["*"], "operations": ["*"]},
        {
            "name": "limited",
            "token": READ_ONLY_TOKEN,
            "tables": limited_tables or ["nothing"],
            "operations": ["insert"],
        },
    ]
    return json.dumps({"keys": keys})


def gateway_config(
    stack: Stack, contracts: ContractSet, **overrides: Any
) -> GatewayConfig:
    """A config pointing at the session's servers and the test's contracts."""
    limited = [contracts.tables[k] for k in contracts.tables if k != "pair"]
    settings = {
        "kafka_bootstrap": stack.config.kafka_bootstrap,
        "registry_url": stack.config.registry_url,
        "database_url": stack.config.database_url,
        "contracts_dir": contracts.directory,
        "api_keys": parse_keys(keys_document(limited), "test keys"),
        **overrides,
    }
    return GatewayConfig(**settings)


class Gateway:
    """A test client of one app, sending the test key unless told otherwise."""

    def __init__(self, app: Flask, contracts: ContractSet) -> None:
        self.app = app
        self.contracts = contracts
        self.client: FlaskClient = app.test_client()

    def post(
        self,
        body: Any,
        token: str | None = TOKEN,
        query: str = "",
        headers: Mapping[str, str] | None = None,
    ):
        """POST ``body`` (bytes as they are, anything else as JSON) to /activities."""
        sent = {"Content-Type": "application/json", **(headers or {})}
        if token is not None:
            sent["Authorization"] = f"Bearer {token}"
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        return self.client.post(f"/activities{query}", data=data, headers=sent)

    def get(self, path: str, token: str | None = TOKEN):
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return self.client.get(path, headers=headers)


@pytest.fixture
def make_gateway(registered: Stack) -> Iterator[Callable[..., Gateway]]:
    """Apps on the session's servers; each one's producer is closed afterwards."""
    apps: list[Flask] = []

    def make(contracts: ContractSet, **overrides: Any) -> Gateway:
        app = create_app(gateway_config(registered, contracts, **overrides))
        apps.append(app)
        return Gateway(app, contracts)

    yield make
    for app in apps:
        close_app(app)


@pytest.fixture(scope="session")
def gateway(registered: Stack, shared_contracts: ContractSet) -> Iterator[Gateway]:
    """One app on the shared contracts, for tests that change no setting."""
    app = create_app(gateway_config(registered, shared_contracts))
    yield Gateway(app, shared_contracts)
    close_app(app)


# --- Kafka: what reached a topic ---------------------------------------------


@dataclass
class KafkaProbe:
    """End offsets taken before a request, and the records written after them."""

    bootstrap: str
    marks: dict[tuple[str, int], int] = field(default_factory=dict)

    def mark(self, topics: list[str]) -> None:
        consumer = self._consumer()
        try:
            for topic in topics:
                for partition in range(TOPIC_PARTITIONS):
                    tp = TopicPartition(topic, partition)
                    self.marks[(topic, partition)] = _high_watermark(consumer, tp)
        finally:
            consumer.close()

    def records_since_mark(self) -> list[Message]:
        """Every record written past the marks, read back from Kafka."""
        consumer = self._consumer()
        try:
            return self._read(consumer)
        finally:
            consumer.close()

    def _read(self, consumer: Consumer) -> list[Message]:
        ends = {}
        for (topic, partition), mark in self.marks.items():
            high = _high_watermark(consumer, TopicPartition(topic, partition))
            if high > mark:
                ends[(topic, partition)] = high
        if not ends:
            return []

        consumer.assign([TopicPartition(t, p, self.marks[(t, p)]) for t, p in ends])
        expected = sum(high - self.marks[place] for place, high in ends.items())
        records: list[Message] = []
        deadline = time.monotonic() + 15
        while len(records) < expected and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is not None and message.error() is None:
                records.append(message)
        return records

    def _consumer(self) -> Consumer:
        return Consumer(
            {
                "bootstrap.servers": self.bootstrap,
                "group.id": f"gateway-test-{uuid.uuid4().hex}",
                "enable.auto.commit": False,
                "isolation.level": "read_uncommitted",
            },
            logger=KAFKA_LOG,
        )


# Answers of a broker whose partition leadership is still settling.
_SETTLING = {
    KafkaError.NOT_LEADER_FOR_PARTITION,
    KafkaError.LEADER_NOT_AVAILABLE,
    KafkaError.UNKNOWN_TOPIC_OR_PART,
}


def _high_watermark(consumer: Consumer, tp: TopicPartition) -> int:
    """The partition's end offset, asked again while leadership settles."""
    deadline = time.monotonic() + 10
    while True:
        try:
            return consumer.get_watermark_offsets(tp, timeout=10)[1]
        except KafkaException as exc:
            if exc.args[0].code() not in _SETTLING or time.monotonic() > deadline:
                raise
            time.sleep(0.1)


@pytest.fixture
def kafka(registered: Stack) -> KafkaProbe:
    return KafkaProbe(registered.config.kafka_bootstrap)


def read_at(bootstrap: str, topic: str, partition: int, offset: int) -> Message:
    """The one record at ``offset``."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"gateway-test-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
        },
        logger=KAFKA_LOG,
    )
    try:
        consumer.assign([TopicPartition(topic, partition, offset)])
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is not None and message.error() is None:
                return message
    finally:
        consumer.close()
    pytest.fail(f"no record at {topic}/{partition}/{offset}")


# --- the real gunicorn process --------------------------------------------------


@dataclass
class GunicornGateway:
    """One gunicorn gateway process, its address and its log."""

    url: str
    log_file: Path
    process: subprocess.Popen

    def log(self) -> str:
        return self.log_file.read_text(errors="replace")

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


@pytest.fixture
def gunicorn_gateway(
    registered: Stack, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[..., GunicornGateway]]:
    """Start ``gunicorn -c gateway/gunicorn_conf.py`` on the test's contracts."""
    started: list[GunicornGateway] = []

    def start(contracts: ContractSet, **variables: str) -> GunicornGateway:
        folder = tmp_path_factory.mktemp("gunicorn")
        gateway = start_gunicorn(registered, contracts, folder, **variables)
        started.append(gateway)
        return gateway

    yield start
    for gateway in started:
        gateway.stop()


def start_gunicorn(
    stack: Stack, contracts: ContractSet, folder: Path, **variables: str
) -> GunicornGateway:
    """gunicorn on a free port, with the test keys, serving ``contracts``."""
    keys_file = folder / "keys.json"
    limited = [contracts.tables[k] for k in contracts.tables if k != "pair"]
    keys_file.write_text(keys_document(limited))
    port = free_port()
    environment = {
        **{k: v for k, v in os.environ.items() if not k.startswith("GATEKEEPER_")},
        **stack.config.client_environment(),
        "GATEKEEPER_GATEWAY_PORT": str(port),
        "GATEKEEPER_CONTRACTS_DIR": str(contracts.directory),
        "GATEKEEPER_API_KEYS_FILE": str(keys_file),
        **variables,
    }
    environment.pop("PROMETHEUS_MULTIPROC_DIR", None)
    return _spawn(folder, port, environment)


def _spawn(folder: Path, port: int, environment: dict[str, str]) -> GunicornGateway:
    log_file = folder / "gateway.log"
    gunicorn = Path(sys.executable).with_name("gunicorn")
    config = REPO_ROOT / "gateway" / "gunicorn_conf.py"
    with log_file.open("wb") as log:
        process = subprocess.Popen(
            [str(gunicorn), "-c", str(config), "gateway.app:create_app()"],
            cwd=REPO_ROOT,
            env=environment,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    gateway = GunicornGateway(f"http://{HOST}:{port}", log_file, process)

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if requests.get(f"{gateway.url}/healthz", timeout=1).status_code == 200:
                return gateway
        except requests.RequestException:
            time.sleep(0.2)
    gateway.stop()
    pytest.fail(f"gunicorn gateway did not start:\n{gateway.log()[-3000:]}")


# --- a registry that goes away ----------------------------------------------------


class TcpRelay:
    """Relays loopback connections to a real server until ``cut`` is called.

    It puts a real network failure between the gateway and the real registry:
    once cut, connections are reset and new ones refused.
    """

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self._listener = socket.create_server((HOST, 0))
        self.port = self._listener.getsockname()[1]
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._cut = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if self._cut:
                client.close()
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._sockets += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(
                    target=self._pump, args=(source, sink), daemon=True
                ).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for end in (source, sink):
                with contextlib.suppress(OSError):
                    end.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        """Refuse new connections and reset the open ones.

        Closing a listening socket does not wake a thread blocked in accept();
        shutting it down does.
        """
        self._cut = True
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        with self._lock:
            for sock in self._sockets:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()


@pytest.fixture
def registry_relay(registered: Stack) -> Iterator[TcpRelay]:
    relay = TcpRelay(HOST, registered.config.registry_port)
    yield relay
    relay.cut()
