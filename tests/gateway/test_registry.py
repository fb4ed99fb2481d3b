"""Schemas come from the registry, are cached, and are never registered here."""

from __future__ import annotations

import json
from collections.abc import Callable

import requests

from scripts.stack import Stack
from scripts.stack.config import HOST
from tests.gateway.builders import PAIR_VALUES, activity, payload, rich
from tests.plugins.gateway import (
    ContractSet,
    Gateway,
    KafkaProbe,
    TcpRelay,
    register,
)

CCOMPAT = "/apis/ccompat/v7"


def test_cached_contracts_keep_working_while_the_registry_is_away(
    make_contracts: Callable[..., ContractSet],
    make_gateway: Callable[..., Gateway],
    registry_relay: TcpRelay,
    kafka: KafkaProbe,
) -> None:
    contracts = make_contracts("rich", "pair")
    relayed = f"http://{HOST}:{registry_relay.port}{CCOMPAT}"
    gateway = make_gateway(contracts, registry_url=relayed)
    known = payload(rich(contracts.tables["rich"]))
    assert gateway.post(known).status_code == 202

    registry_relay.cut()
    kafka.mark(contracts.topics)
    cached = gateway.post(known)
    uncached = gateway.post(
        payload(activity("upsert", contracts.tables["pair"], PAIR_VALUES))
    )

    assert cached.status_code == 202
    assert uncached.status_code == 503
    assert uncached.headers["Retry-After"] == "5"
    problem = uncached.get_json()
    assert problem["type"] == "urn:gatekeeper:problem:registry-unavailable"
    assert [r.topic() for r in kafka.records_since_mark()] == [contracts.topic("rich")]


def test_unregistered_contract_is_503_and_the_gateway_registers_nothing(
    registered: Stack,
    make_contracts: Callable[..., ContractSet],
    make_gateway: Callable[..., Gateway],
    kafka: KafkaProbe,
) -> None:
    contracts = make_contracts("rich", register_them=False)
    gateway = make_gateway(contracts)
    kafka.mark(contracts.topics)

    response = gateway.post(payload(rich(contracts.tables["rich"])))

    assert response.status_code == 503
    assert response.get_json()["type"] == (
        "urn:gatekeeper:problem:contract-not-registered"
    )
    subjects = requests.get(f"{registered.config.registry_url}/subjects", timeout=10)
    assert not any(contracts.tables["rich"] in s for s in subjects.json())
    assert kafka.records_since_mark() == []


def test_the_gateway_writes_with_the_version_of_its_own_contract(
    registered: Stack,
    make_contracts: Callable[..., ContractSet],
    make_gateway: Callable[..., Gateway],
    tmp_path,
) -> None:
    """A newer version registered ahead of a deploy does not change what old
    gateways write: each names the version its contract file was registered as."""
    old = make_contracts("pair")
    table = old.tables["pair"]
    newer = ContractSet(tmp_path, old.tables)
    schema = json.loads((old.directory / f"{table}.avsc").read_text())
    schema["fields"].append(
        {"name": "extra", "type": ["null", "long"], "default": None, "doc": "New."}
    )
    (tmp_path / f"{table}.avsc").write_text(json.dumps(schema))
    register(registered, newer)

    body = payload(activity("upsert", table, PAIR_VALUES))
    old_receipt = make_gateway(old).post(body).get_json()["receipts"][0]
    new_receipt = make_gateway(newer).post(body).get_json()["receipts"][0]
    bad = make_gateway(newer).post(payload(activity("upsert", table, {"seq": "x"})))

    assert old_receipt["schema_version"] == 1
    assert new_receipt["schema_version"] == 2
    assert new_receipt["schema_id"] != old_receipt["schema_id"]
    assert {e.get("version") for e in bad.get_json()["errors"]} == {2}
