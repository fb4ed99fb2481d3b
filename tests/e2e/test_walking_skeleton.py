"""The original request, end to end through the real gateway, Kafka and worker."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import psycopg2
import pytest
import requests
from confluent_kafka import DeserializingConsumer, TopicPartition
from confluent_kafka.schema_registry import (
    SchemaRegistryClient,
    topic_subject_name_strategy,
)
from confluent_kafka.schema_registry.avro import AvroDeserializer

from scripts.stack import Stack, apps

# The payload of the original request, byte for byte.
ORIGINAL_PAYLOAD = (Path(__file__).parent / "original_payload.json").read_bytes()


@pytest.fixture(scope="module")
def accepted(running_system: Stack) -> dict:
    """Post the original payload once; the module's tests inspect what followed."""
    response = requests.post(
        f"{running_system.config.gateway_url}/activities",
        data=ORIGINAL_PAYLOAD,
        headers={
            "Content-Type": "application/json",
            "Authorization": f"Bearer {apps.local_api_key(running_system.config)}",
        },
        timeout=30,
    )
    assert response.status_code == 202, response.text
    return response.json()


def test_original_payload_gets_a_receipt(accepted: dict) -> None:
    [receipt] = accepted["receipts"]

    assert receipt["table"] == "table100"
    assert receipt["operation"] == "insert"
    assert receipt["topic"] == "activities.table100"
    assert receipt["subject"] == "activities.table100-value"
    assert receipt["schema_version"] == 1
    assert receipt["offset"] >= 0


def test_row_lands_in_postgres_with_its_schema_version(
    running_system: Stack, accepted: dict
) -> None:
    row = _wait_for_row(running_system.config.database_url, timeout=30)

    assert row[:3] == (101, 102, 103)
    assert row[3] == accepted["receipts"][0]["schema_version"]
    assert row[4] == accepted["receipts"][0]["schema_id"]


def _wait_for_row(database_url: str, timeout: float) -> tuple:
    deadline = time.monotonic() + timeout
    query = (
        "SELECT col101, col102, col103, _gk_schema_version, _gk_schema_id "
        "FROM public.table100 WHERE col101 = 101"
    )
    while time.monotonic() < deadline:
        with psycopg2.connect(database_url) as conn, conn.cursor() as cur:
            try:
                cur.execute(query)
                row = cur.fetchone()
            except psycopg2.errors.UndefinedTable:
                row = None
        if row is not None:
            return row
        time.sleep(0.5)
    pytest.fail(f"row col101=101 not in table100 after {timeout} s")


def test_kafka_record_reads_back_with_confluent_avro_deserializer(
    running_system: Stack, accepted: dict
) -> None:
    receipt = accepted["receipts"][0]
    registry = SchemaRegistryClient(
        {"url": running_system.config.registry_url, "timeout": 10}
    )
    # The design's subject strategy, named: left unset, confluent-kafka 2.16 first
    # asks the registry for subject associations, an API Apicurio lacks.
    by_topic = {"subject.name.strategy": topic_subject_name_strategy}
    consumer = DeserializingConsumer(
        {
            "bootstrap.servers": running_system.config.kafka_bootstrap,
            "group.id": f"test-{uuid.uuid4().hex}",
            "key.deserializer": AvroDeserializer(registry, conf=by_topic),
            "value.deserializer": AvroDeserializer(registry, conf=by_topic),
            "enable.auto.commit": False,
        }
    )
    consumer.assign(
        [TopicPartition(receipt["topic"], receipt["partition"], receipt["offset"])]
    )
    try:
        message = consumer.poll(15)
    finally:
        consumer.close()

    assert message is not None and message.error() is None
    assert message.key() == {"col101": 101}
    assert message.value() == {"col101": 101, "col102": 102, "col103": 103}
    headers = dict(message.headers())
    assert headers["gk-operation"] == b"insert"
    assert headers["gk-columns"] == b"col101,col102,col103"
    assert headers["gk-request-id"] == accepted["request_id"].encode()
