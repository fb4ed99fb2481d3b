"""Properties over generated activities, checked against the real servers.

* Any valid activity of a contract reaches Kafka and reads back, through the
  registry and the Confluent Avro deserializer, as the JSON it was sent as.
* Any single corruption of a valid activity is rejected with a 4xx naming the
  corrupted place, and nothing of it reaches Kafka.
"""

from __future__ import annotations

import base64
import datetime
import time
import uuid
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from contracts.catalogue import Contract, load_catalogue
from contracts.conversion import to_json
from contracts.registry import BY_TOPIC, connect
from contracts.sqltypes import AvroType, agrees, parse_sql_type, resolve_avro
from gateway import describe
from gateway.app import close_app, create_app
from scripts.stack import Stack
from tests.plugins.gateway import (
    ContractSet,
    Gateway,
    KafkaProbe,
    create_topics,
    gateway_config,
    register,
    write_contracts,
)

SETTINGS = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
UTC = datetime.UTC
# Acknowledged records are in the log; this only bounds a stalled read.
READ_TIMEOUT_S = 30.0


# --- values in their canonical JSON form, by Avro kind ---------------------------


def _timestamps(unit: int, aware: bool) -> st.SearchStrategy[str]:
    """Datetimes with no digit finer than the unit, as ``to_json`` writes them."""
    spec = "milliseconds" if unit == 1000 else "microseconds"
    moments = st.datetimes(
        min_value=datetime.datetime(1900, 1, 1),
        max_value=datetime.datetime(2200, 1, 1),
    ).map(lambda d: d.replace(microsecond=d.microsecond // unit * unit))
    if aware:
        moments = moments.map(lambda d: d.replace(tzinfo=UTC))
    return moments.map(lambda d: d.isoformat(timespec=spec))


def _decimals(resolved: AvroType) -> st.SearchStrategy[str]:
    limit = 10**resolved.precision - 1
    scale = resolved.scale
    return st.integers(-limit, limit).map(
        lambda n: f"{Decimal(n).scaleb(-scale):.{scale}f}"
    )


_TEXT = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
    max_size=20,
)

_BY_KIND: dict[str, Any] = {
    "int": lambda r: st.integers(-(2**31), 2**31 - 1),
    "long": lambda r: st.integers(-(2**63), 2**63 - 1),
    "float": lambda r: st.floats(width=32, allow_nan=False, allow_infinity=False),
    "double": lambda r: st.floats(allow_nan=False, allow_infinity=False),
    "boolean": lambda r: st.booleans(),
    "string": lambda r: _TEXT,
    "enum": lambda r: st.sampled_from(r.symbols),
    "bytes": lambda r: st.binary(max_size=24).map(
        lambda b: base64.b64encode(b).decode("ascii")
    ),
    "decimal": _decimals,
    "date": lambda r: st.dates().map(datetime.date.isoformat),
    "timestamp-millis": lambda r: _timestamps(1000, True),
    "timestamp-micros": lambda r: _timestamps(1, True),
    "local-timestamp-millis": lambda r: _timestamps(1000, False),
    "local-timestamp-micros": lambda r: _timestamps(1, False),
    "uuid": lambda r: st.uuids().map(str),
}


def values(avro_type: Any) -> st.SearchStrategy[Any]:
    resolved = resolve_avro(avro_type)
    strategy = _BY_KIND[resolved.kind](resolved)
    return st.none() | strategy if resolved.nullable else strategy


@st.composite
def activities(draw: st.DrawFn, contract: Contract) -> dict[str, Any]:
    """A valid activity: the operation's required columns, some optional ones,
    in any order, each with or without an agreeing declared type."""
    operation = draw(st.sampled_from(describe.operations(contract)))
    fields = contract.fields
    key = list(contract.primary_key)
    others = [name for name in fields if name not in key]
    required = [
        name
        for name in others
        if not resolve_avro(fields[name]["type"]).nullable
        and "default" not in fields[name]
    ]

    if operation == "delete":
        names = key
    elif operation == "update":
        names = key + draw(st.lists(st.sampled_from(others), min_size=1, unique=True))
    else:
        optional = [n for n in others if n not in required]
        names = key + required + draw(st.lists(st.sampled_from(optional), unique=True))
    names = draw(st.permutations(names))

    columns = []
    for name in names:
        avro_type = fields[name]["type"]
        column: dict[str, Any] = {"name": name, "value": draw(values(avro_type))}
        declared = draw(st.none() | st.sampled_from(describe.declared_types(avro_type)))
        if declared is not None:
            column["type"] = declared
        columns.append(column)
    return {"operation": operation, "table": contract.table, "column": columns}


# --- the servers -----------------------------------------------------------------


@pytest.fixture(scope="module")
def contracts(
    registered: Stack, tmp_path_factory: pytest.TempPathFactory
) -> ContractSet:
    found = write_contracts(
        tmp_path_factory.mktemp("property-contracts"), ("rich", "keyless", "pair")
    )
    register(registered, found)
    create_topics(registered, found.topics)
    return found


@pytest.fixture(scope="module")
def catalogue(contracts: ContractSet) -> dict[str, Contract]:
    return load_catalogue(contracts.directory)


@pytest.fixture(scope="module")
def property_gateway(registered: Stack, contracts: ContractSet) -> Iterator[Gateway]:
    app = create_app(gateway_config(registered, contracts))
    yield Gateway(app, contracts)
    close_app(app)


@pytest.fixture(scope="module")
def reader(registered: Stack) -> Iterator[Consumer]:
    consumer = Consumer(
        {
            "bootstrap.servers": registered.config.kafka_bootstrap,
            "group.id": f"property-test-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
            # The records are there before they are read: no need to wait for more.
            "fetch.wait.max.ms": 10,
        }
    )
    yield consumer
    consumer.close()


@pytest.fixture(scope="module")
def deserializer(registered: Stack) -> AvroDeserializer:
    return AvroDeserializer(connect(registered.config.registry_url), conf=BY_TOPIC)


def _read(consumer: Consumer, receipts: list[dict]) -> list:
    places = [(r["topic"], r["partition"], r["offset"]) for r in receipts]
    starts: dict[tuple[str, int], int] = {}
    for topic, partition, offset in places:
        previous = starts.get((topic, partition), offset)
        starts[(topic, partition)] = min(previous, offset)
    consumer.assign([TopicPartition(t, p, o) for (t, p), o in starts.items()])
    found = {}
    deadline = time.monotonic() + READ_TIMEOUT_S
    while len(found) < len(places) and time.monotonic() < deadline:
        message = consumer.poll(0.2)
        if message is None or message.error() is not None:
            continue
        place = (message.topic(), message.partition(), message.offset())
        if place in places:
            found[place] = message
    missing = [place for place in places if place not in found]
    assert not missing, f"records not read back within {READ_TIMEOUT_S} s: {missing}"
    return [found[place] for place in places]


# --- the properties --------------------------------------------------------------


def test_valid_activities_round_trip_json_avro_json(
    property_gateway: Gateway,
    catalogue: dict[str, Contract],
    reader: Consumer,
    deserializer: AvroDeserializer,
) -> None:
    contracts = sorted(catalogue.values(), key=lambda c: c.table)

    @SETTINGS
    @given(
        st.lists(st.sampled_from(contracts).flatmap(activities), min_size=1, max_size=4)
    )
    def round_trip(sent: list[dict[str, Any]]) -> None:
        response = property_gateway.post({"activities": sent})
        assert response.status_code == 202, response.get_json()

        records = _read(reader, response.get_json()["receipts"])
        for activity, record in zip(sent, records, strict=True):
            _assert_reads_back(activity, record, catalogue, deserializer)

    round_trip()


def _assert_reads_back(
    activity: dict[str, Any],
    record: Any,
    catalogue: dict[str, Contract],
    deserializer: AvroDeserializer,
) -> None:
    contract = catalogue[activity["table"]]
    sent = {c["name"]: c["value"] for c in activity["column"]}
    headers = dict(record.headers())
    assert headers["gk-operation"] == activity["operation"].encode()

    if activity["operation"] == "delete":
        assert record.value() is None
        context = SerializationContext(record.topic(), MessageField.KEY)
        written = deserializer(record.key(), context)
    else:
        context = SerializationContext(record.topic(), MessageField.VALUE)
        written = deserializer(record.value(), context)
        set_columns = headers["gk-columns"].decode().split(",")
        assert set_columns[: len(sent)] == list(sent)

    fields = contract.fields
    read_back = {name: to_json(fields[name]["type"], written[name]) for name in sent}
    assert read_back == sent


# Corruptions: each returns the corrupted activity and the pointer suffix blamed.
def _wrong_kind(activity: dict, position: int) -> tuple[dict, str]:
    activity["column"][position]["value"] = {"not": "a scalar"}
    return activity, f"/column/{position}/value"


def _unknown_name(activity: dict, position: int) -> tuple[dict, str]:
    activity["column"][position]["name"] = "no_such_column"
    return activity, f"/column/{position}/name"


def _disagreeing_type(activity: dict, position: int, contract: Contract) -> tuple:
    avro_type = contract.fields[activity["column"][position]["name"]]["type"]
    wrong = next(
        name
        for name in describe.SQL_TYPE_NAMES
        if not agrees(parse_sql_type(name), avro_type)
    )
    activity["column"][position]["type"] = wrong
    return activity, f"/column/{position}/type"


def _repeated(activity: dict, position: int) -> tuple[dict, str]:
    activity["column"].append(dict(activity["column"][position]))
    return activity, f"/column/{len(activity['column']) - 1}/name"


def _bad_operation(activity: dict, position: int) -> tuple[dict, str]:
    activity["operation"] = "replace"
    return activity, "/operation"


def _unknown_table(activity: dict, position: int) -> tuple[dict, str]:
    activity["table"] = "not_a_table"
    return activity, "/table"


def _unknown_member(activity: dict, position: int) -> tuple[dict, str]:
    activity["column"][position]["note"] = "extra"
    return activity, f"/column/{position}/note"


CORRUPTIONS = {
    "wrong kind of value": _wrong_kind,
    "unknown column": _unknown_name,
    "disagreeing declared type": _disagreeing_type,
    "repeated column": _repeated,
    "unknown operation": _bad_operation,
    "unknown table": _unknown_table,
    "unknown member": _unknown_member,
}


def test_corrupted_activities_are_rejected_naming_the_place(
    property_gateway: Gateway,
    catalogue: dict[str, Contract],
    kafka: KafkaProbe,
) -> None:
    contracts = sorted(catalogue.values(), key=lambda c: c.table)
    kafka.mark(property_gateway.contracts.topics)

    @SETTINGS
    @given(
        st.lists(
            st.sampled_from(contracts).flatmap(activities), min_size=1, max_size=3
        ),
        st.data(),
    )
    def rejected(valid: list[dict[str, Any]], data: st.DataObject) -> None:
        index = data.draw(st.integers(0, len(valid) - 1), label="activity")
        corrupt = data.draw(st.sampled_from(sorted(CORRUPTIONS)), label="corruption")
        activity = valid[index]
        position = data.draw(st.integers(0, len(activity["column"]) - 1))
        contract = catalogue[activity["table"]]

        if corrupt == "disagreeing declared type":
            _, suffix = _disagreeing_type(activity, position, contract)
        else:
            _, suffix = CORRUPTIONS[corrupt](activity, position)
        response = property_gateway.post({"activities": valid})

        assert 400 <= response.status_code < 500
        pointers = [e.get("pointer") for e in response.get_json()["errors"]]
        assert f"/activities/{index}{suffix}" in pointers, pointers

    rejected()
    assert kafka.records_since_mark() == []
