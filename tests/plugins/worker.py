"""Fixtures for the worker's tests: each test gets its own contracts and topics, its
own consumer group and its own PostgreSQL schema, on the session's real servers.

``scenario`` writes contracts with unique table names into a temporary folder and
registers them; ``start_worker`` runs the real ``Worker`` in a thread against them
and stops it at the end of the test; ``RecordProducer`` produces records the way
the gateway does (Confluent Avro, ``gk-*`` headers), straight to Kafka.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import psycopg2
import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.schema_registry.avro import AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext
from psycopg2 import sql
from psycopg2.extras import RealDictCursor

from contracts.catalogue import DLQ_TOPIC, Contract, load_contract
from contracts.registry import BY_TOPIC, connect
from scripts import register_schemas
from scripts.stack import Stack
from scripts.stack.config import REPO_ROOT
from tests.contracts.builders import field as contract_field
from worker.config import WorkerConfig
from worker.service import TOPIC_PARTITIONS, Worker, ensure_topics

NAMESPACE = "gatekeeper.tests"

SERIALIZER_SETTINGS = {"auto.register.schemas": False, **BY_TOPIC}


def field_(name: str, avro_type: Any, default: Any = ...) -> dict:
    """A contract field; a nullable type gets its null default unless told otherwise."""
    if default is ... and isinstance(avro_type, list) and "null" in avro_type:
        default = None
    if default is ...:
        return contract_field(name, avro_type)
    return contract_field(name, avro_type, default=default)


@dataclass
class Scenario:
    """One test's world: contracts folder, database schema and consumer group."""

    stack: Stack
    contracts_dir: Path
    db_schema: str
    group: str
    suffix: str = field(default_factory=lambda: uuid.uuid4().hex[:8])

    def contract(
        self,
        stem: str,
        fields: Sequence[Mapping[str, Any]],
        primary_key: Sequence[str] = (),
        compatibility: str | None = None,
        table: str | None = None,
    ) -> Contract:
        """Write ``<stem>_<suffix>.avsc`` (or ``table``) and load it back."""
        table = table or f"{stem}_{self.suffix}"
        schema: dict[str, Any] = {
            "type": "record",
            "name": table,
            "namespace": NAMESPACE,
            "doc": f"Test table {table}.",
            "fields": [dict(f) for f in fields],
        }
        if primary_key:
            schema["primary_key"] = list(primary_key)
        if compatibility:
            schema["compatibility"] = compatibility
        path = self.contracts_dir / f"{table}.avsc"
        path.write_text(json.dumps(schema, indent=2))
        return load_contract(path)

    def register(self) -> None:
        code = register_schemas.main(
            [
                "--registry-url",
                self.stack.config.registry_url,
                "--contracts-dir",
                str(self.contracts_dir),
            ]
        )
        assert code == 0, "registering the test contracts failed; see the output"

    def create_topics(self, *contracts: Contract) -> None:
        ensure_topics(
            self.stack.config.kafka_bootstrap,
            [c.topic for c in contracts],
            TOPIC_PARTITIONS,
        )

    def config(self, **overrides: Any) -> WorkerConfig:
        config = WorkerConfig(
            kafka_bootstrap=self.stack.config.kafka_bootstrap,
            contracts_dir=self.contracts_dir,
            registry_url=self.stack.config.registry_url,
            database_url=self.stack.config.database_url,
            db_schema=self.db_schema,
            group_id=self.group,
            batch_max_wait_s=0.2,
            metrics_port=0,
            recheck_interval_s=1.0,
        )
        return replace(config, **overrides)

    def environment(self, **extra: str) -> dict[str, str]:
        """GATEKEEPER_* variables for a worker process in this scenario."""
        return {
            **self.stack.config.client_environment(),
            "GATEKEEPER_CONTRACTS_DIR": str(self.contracts_dir),
            "GATEKEEPER_DB_SCHEMA": self.db_schema,
            "GATEKEEPER_CONSUMER_GROUP": self.group,
            "GATEKEEPER_WORKER_METRICS_PORT": "0",
            **extra,
        }

    def query(self, statement: Any, params: Sequence[Any] = ()) -> list[dict]:
        """Rows of a query, as dicts; ``statement`` a string or ``psycopg2.sql``."""
        conn = psycopg2.connect(self.stack.config.database_url)
        try:
            with conn, conn.cursor(cursor_factory=RealDictCursor) as cur:
                cur.execute(statement, params)
                return [dict(row) for row in cur.fetchall()] if cur.description else []
        finally:
            conn.close()

    def rows(self, contract: Contract, order_by: str | None = None) -> list[dict]:
        """The table's rows, ordered by a column when one is named."""
        statement = sql.SQL("SELECT * FROM {}").format(
            sql.Identifier(self.db_schema, contract.table)
        )
        if order_by:
            statement += sql.SQL(" ORDER BY {}").format(sql.Identifier(order_by))
        return self.query(statement)

    def rejects(self, contract: Contract) -> list[dict]:
        return self.query(
            'SELECT * FROM gatekeeper.rejects WHERE topic = %s ORDER BY "offset", id',
            (contract.topic,),
        )


def wait_for(
    check: Callable[[], Any], timeout: float = 30.0, what: str = "condition"
) -> Any:
    """Poll until ``check`` returns something truthy; fail the test after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.2)


class RecordProducer:
    """Produces records as the gateway does: Avro in the Confluent wire format."""

    def __init__(self, stack: Stack) -> None:
        self._registry = connect(stack.config.registry_url)
        self._producer = Producer(
            {
                "bootstrap.servers": stack.config.kafka_bootstrap,
                "enable.idempotence": True,
                "acks": "all",
                "linger.ms": 5,
            }
        )
        self._serializers: dict[str, AvroSerializer] = {}

    def serializer(self, schema: Mapping[str, Any]) -> AvroSerializer:
        text = json.dumps(schema, sort_keys=True)
        if text not in self._serializers:
            self._serializers[text] = AvroSerializer(
                self._registry,
                json.dumps(schema),
                conf=SERIALIZER_SETTINGS,
            )
        return self._serializers[text]

    def encode(
        self,
        contract: Contract,
        values: Mapping[str, Any],
        schema: Mapping | None = None,
    ) -> bytes:
        schema = schema or contract.value_schema()
        datum = {f["name"]: values.get(f["name"]) for f in schema["fields"]}
        context = SerializationContext(contract.topic, MessageField.VALUE)
        return self.serializer(schema)(datum, context)

    def encode_key(self, contract: Contract, values: Mapping[str, Any]) -> bytes | None:
        if not contract.is_keyed:
            return None
        key = {name: values[name] for name in contract.primary_key}
        context = SerializationContext(contract.topic, MessageField.KEY)
        return self.serializer(contract.key_schema())(key, context)

    def send(
        self,
        contract: Contract,
        operation: str,
        values: Mapping[str, Any],
        schema: Mapping | None = None,
        columns: Sequence[str] | None = None,
    ) -> None:
        """One activity record; ``columns`` defaults to the names in ``values``."""
        value = None
        if operation != "delete":
            value = self.encode(contract, values, schema)
        names = list(values) if columns is None else list(columns)
        headers = [
            ("gk-operation", operation.encode()),
            ("gk-columns", ",".join(names).encode()),
            ("gk-request-id", uuid.uuid4().hex.encode()),
        ]
        self.send_raw(contract.topic, self.encode_key(contract, values), value, headers)

    def send_raw(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: Sequence[tuple[str, bytes]] = (),
    ) -> None:
        while True:
            try:
                self._producer.produce(
                    topic, key=key, value=value, headers=list(headers)
                )
                return
            except BufferError:
                self._producer.poll(0.1)

    def flush(self) -> None:
        remaining = self._producer.flush(30)
        assert remaining == 0, f"{remaining} records not acknowledged by Kafka"


class RunningWorker:
    """The real Worker, run in a thread of the test process."""

    def __init__(self, config: WorkerConfig) -> None:
        self.worker = Worker(config)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            self.worker.run()
        except BaseException as exc:  # handed to the test in stop()
            self.error = exc

    def wait_assigned(self, timeout: float = 30.0) -> None:
        """Wait until the group gave this worker its partitions."""

        def assigned() -> bool:
            if self.error is not None:
                raise self.error
            return bool(self.worker.expected)

        wait_for(assigned, timeout, "the worker's partition assignment")

    def stop(self, timeout: float = 30.0) -> None:
        self.worker.stop()
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "worker did not stop"
        if self.error is not None:
            raise self.error


class WorkerProcess:
    """``python -m worker`` as its own process, to be killed and started again."""

    def __init__(self, environment: Mapping[str, str], log: Path) -> None:
        inherited = {
            k: v for k, v in os.environ.items() if not k.startswith("GATEKEEPER_")
        }
        self.env = {**inherited, **environment}
        self.log = log
        self.process: subprocess.Popen | None = None
        self.mark = 0

    def start(self) -> None:
        self.mark = self.log.stat().st_size if self.log.exists() else 0
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "worker"],
                env=self.env,
                cwd=REPO_ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def committed_since_start(self) -> bool:
        """Whether this incarnation has committed a batch yet."""
        with self.log.open("rb") as log:
            log.seek(self.mark)
            return b"batch committed" in log.read()

    def kill(self) -> None:
        """SIGKILL: no batch finished, nothing flushed, no goodbye to the group."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def terminate(self) -> int:
        """SIGTERM, and the exit status once the process has stopped."""
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(30)

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None


def dead_letters(stack: Stack, topic: str, expected: int, timeout: float = 20) -> list:
    """The dead-letter records whose source topic is ``topic``."""
    consumer = Consumer(
        {
            "bootstrap.servers": stack.config.kafka_bootstrap,
            "group.id": f"dlq-reader-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
        }
    )
    metadata = consumer.list_topics(DLQ_TOPIC, timeout=10).topics[DLQ_TOPIC]
    consumer.assign([TopicPartition(DLQ_TOPIC, p, 0) for p in metadata.partitions])
    found: list = []
    deadline = time.monotonic() + timeout
    try:
        while len(found) < expected and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None or message.error():
                continue
            headers = dict(message.headers() or [])
            if headers.get("gk-dlq-topic") == topic.encode():
                found.append(message)
    finally:
        consumer.close()
    return found


@pytest.fixture
def scenario(stack: Stack, tmp_path: Path) -> Scenario:
    """Unique contracts folder, database schema and consumer group for one test."""
    contracts_dir = tmp_path / "contracts"
    contracts_dir.mkdir()
    token = uuid.uuid4().hex[:8]
    return Scenario(stack, contracts_dir, f"w_{token}", f"test-worker-{token}")


@pytest.fixture
def producer(stack: Stack) -> Iterator[RecordProducer]:
    records = RecordProducer(stack)
    yield records
    records.flush()


@pytest.fixture
def spawn_worker(
    scenario: Scenario, tmp_path: Path
) -> Iterator[Callable[..., WorkerProcess]]:
    """Worker processes on the scenario; any still running at the end is killed."""
    spawned: list[WorkerProcess] = []

    def spawn(name: str, **environment: str) -> WorkerProcess:
        log = tmp_path / f"{name}.log"
        worker = WorkerProcess(scenario.environment(**environment), log)
        spawned.append(worker)
        worker.start()
        return worker

    yield spawn
    for worker in spawned:
        if worker.alive():
            worker.kill()


@pytest.fixture
def start_worker(scenario: Scenario) -> Iterator[Callable[..., RunningWorker]]:
    """Start workers on the scenario (config overrides as keywords); stop them after."""
    running: list[RunningWorker] = []

    def start(wait: bool = True, **overrides: Any) -> RunningWorker:
        worker = RunningWorker(scenario.config(**overrides))
        running.append(worker)
        if wait:
            worker.wait_assigned()
        return worker

    yield start
    for worker in running:
        worker.stop()
