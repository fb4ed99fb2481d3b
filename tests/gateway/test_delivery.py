"""Delivery: receipts name real records; no acknowledgement, no 202."""

from __future__ import annotations

import datetime
import struct
from collections.abc import Callable

from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext

from contracts.registry import BY_TOPIC, connect
from scripts.stack import Stack
from scripts.stack.config import free_port
from tests.gateway.builders import PAIR_VALUES, activity, payload, rich
from tests.plugins.gateway import ContractSet, Gateway, read_at


def _decode(stack: Stack, raw: bytes, topic: str, field: MessageField) -> dict:
    deserializer = AvroDeserializer(connect(stack.config.registry_url), conf=BY_TOPIC)
    return deserializer(raw, SerializationContext(topic, field))


def test_receipts_name_the_records_kafka_holds(
    registered: Stack, gateway: Gateway
) -> None:
    tables = gateway.contracts.tables
    body = payload(
        rich(tables["rich"], id=41),
        activity("upsert", tables["pair"], PAIR_VALUES),
        activity("update", tables["pair"], {"region": "eu", "seq": 1, "memo": None}),
        activity("delete", tables["pair"], {"region": "eu", "seq": 1}),
    )

    response = gateway.post(body, headers={"X-Request-Id": "receipts-test-1"})

    assert response.status_code == 202
    receipts = response.get_json()["receipts"]
    assert [r["operation"] for r in receipts] == [
        "insert",
        "upsert",
        "update",
        "delete",
    ]
    records = [
        read_at(
            registered.config.kafka_bootstrap, r["topic"], r["partition"], r["offset"]
        )
        for r in receipts
    ]
    headers = [dict(record.headers()) for record in records]
    assert [h["gk-operation"] for h in headers] == [
        b"insert",
        b"upsert",
        b"update",
        b"delete",
    ]
    assert {h["gk-request-id"] for h in headers} == {b"receipts-test-1"}
    assert headers[2]["gk-columns"] == b"region,seq,memo"
    assert records[3].value() is None
    pair_topic = gateway.contracts.topic("pair")
    key = _decode(registered, records[3].key(), pair_topic, MessageField.KEY)
    assert key == {"region": "eu", "seq": 1}
    value = _decode(registered, records[2].value(), pair_topic, MessageField.VALUE)
    assert value == {"region": "eu", "seq": 1, "qty": None, "memo": None}


def test_record_header_carries_the_schema_id_of_the_receipt(
    registered: Stack, gateway: Gateway
) -> None:
    response = gateway.post(payload(rich(gateway.contracts.tables["rich"], id=42)))
    [receipt] = response.get_json()["receipts"]

    record = read_at(
        registered.config.kafka_bootstrap,
        receipt["topic"],
        receipt["partition"],
        receipt["offset"],
    )

    magic, schema_id = struct.unpack(">bI", record.value()[:5])
    assert (magic, schema_id) == (0, receipt["schema_id"])
    assert receipt["subject"] == f"{receipt['topic']}-value"
    assert receipt["schema_version"] == 1


def test_insert_fills_contract_defaults_and_lists_them(
    registered: Stack, gateway: Gateway
) -> None:
    body = payload(rich(gateway.contracts.tables["rich"], id=43))
    del body["activities"][0]["column"][-1]  # active, which defaults to true

    [receipt] = gateway.post(body).get_json()["receipts"]
    record = read_at(
        registered.config.kafka_bootstrap,
        receipt["topic"],
        receipt["partition"],
        receipt["offset"],
    )

    value = _decode(registered, record.value(), receipt["topic"], MessageField.VALUE)
    assert value["active"] is True
    assert dict(record.headers())["gk-columns"].endswith(b",active")


def test_timestamp_without_offset_is_read_as_utc(
    registered: Stack, gateway: Gateway
) -> None:
    body = payload(
        rich(gateway.contracts.tables["rich"], id=44, at_us="2026-03-04T05:06:07")
    )

    [receipt] = gateway.post(body).get_json()["receipts"]
    record = read_at(
        registered.config.kafka_bootstrap,
        receipt["topic"],
        receipt["partition"],
        receipt["offset"],
    )

    value = _decode(registered, record.value(), receipt["topic"], MessageField.VALUE)
    expected = datetime.datetime(2026, 3, 4, 5, 6, 7, tzinfo=datetime.UTC)
    assert value["at_us"] == expected


def test_unacknowledged_records_are_503_never_202(
    make_gateway: Callable[..., Gateway],
    shared_contracts: ContractSet,
) -> None:
    """A broker nobody runs: every record times out, its outcome unknown."""
    silent = f"127.0.0.1:{free_port()}"
    gateway = make_gateway(
        shared_contracts, kafka_bootstrap=silent, delivery_timeout_s=1.0
    )
    tables = shared_contracts.tables
    body = payload(
        rich(tables["rich"]), activity("upsert", tables["pair"], PAIR_VALUES)
    )

    response = gateway.post(body)

    assert response.status_code == 503
    assert response.headers["Retry-After"] == "5"
    problem = response.get_json()
    assert problem["type"] == "urn:gatekeeper:problem:delivery-unknown"
    assert problem["undelivered"] == [0, 1]
    assert [e["pointer"] for e in problem["errors"]] == [
        "/activities/0",
        "/activities/1",
    ]
    assert {e["code"] for e in problem["errors"]} == {"not_known_delivered"}
