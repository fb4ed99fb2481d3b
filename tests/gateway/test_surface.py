"""The routes around /activities: health, readiness, metrics, contracts, errors."""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest
from prometheus_client import REGISTRY

from scripts.stack.config import HOST, free_port
from tests.gateway.builders import payload, rich
from tests.plugins.gateway import ContractSet, Gateway, KafkaProbe, TcpRelay


def _sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_healthz_answers_without_a_key(gateway: Gateway) -> None:
    response = gateway.get("/healthz", token=None)

    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}


def test_readyz_checks_kafka_and_the_registry(
    gateway: Gateway,
    make_gateway: Callable[..., Gateway],
    shared_contracts: ContractSet,
    registry_relay: TcpRelay,
) -> None:
    relayed = f"http://{HOST}:{registry_relay.port}/apis/ccompat/v7"
    no_registry = make_gateway(shared_contracts, registry_url=relayed)
    no_kafka = make_gateway(shared_contracts, kafka_bootstrap=f"{HOST}:{free_port()}")
    registry_relay.cut()

    ready = gateway.get("/readyz", token=None)
    registry_down = no_registry.get("/readyz", token=None)
    kafka_down = no_kafka.get("/readyz", token=None)

    assert ready.status_code == 200
    assert ready.get_json()["checks"] == {"kafka": "ok", "registry": "ok"}
    assert registry_down.status_code == kafka_down.status_code == 503
    assert registry_down.headers["Retry-After"] == "5"
    assert registry_down.get_json()["checks"]["registry"] == "unreachable"
    assert kafka_down.get_json()["checks"] == {
        "kafka": "unreachable",
        "registry": "ok",
    }


def _activities(outcome: str, table: str, code: str) -> float:
    return _sample(
        "gatekeeper_gateway_activities_total", outcome=outcome, table=table, code=code
    )


def _accepted_requests() -> float:
    return _sample(
        "gatekeeper_gateway_requests_total",
        method="POST",
        route="/activities",
        status="202",
    )


def test_metrics_count_requests_activities_and_produce_latency(
    gateway: Gateway,
) -> None:
    table = gateway.contracts.tables["rich"]
    counted = [
        ("accepted", table, "-"),
        ("rejected", table, "out_of_range"),
        ("rejected", "-", "unknown_table"),
    ]
    before = [_activities(*labels) for labels in counted]
    requests_before = _accepted_requests()
    produced_before = _sample("gatekeeper_gateway_produce_seconds_count")

    gateway.post(payload(rich(table, id=1), rich(table, id=2)))
    gateway.post(payload(rich(table, small=2**40)))
    gateway.post(payload({**rich(table), "table": "made_up_by_a_client"}))
    text = gateway.get("/metrics", token=None).get_data(as_text=True)

    after = [_activities(*labels) for labels in counted]
    assert [a - b for a, b in zip(after, before, strict=True)] == [2, 1, 1]
    assert _accepted_requests() - requests_before == 1
    assert _sample("gatekeeper_gateway_produce_seconds_count") - produced_before == 1
    assert "made_up_by_a_client" not in text
    assert "gatekeeper_gateway_produce_seconds_bucket" in text


def test_contract_detail_gives_fields_types_key_and_versions(gateway: Gateway) -> None:
    table = gateway.contracts.tables["rich"]

    detail = gateway.get(f"/contracts/{table}").get_json()
    missing = gateway.get("/contracts/no_such_table")

    fields = {f["name"]: f for f in detail["fields"]}
    assert detail["primary_key"] == ["id"]
    assert detail["operations"] == ["insert", "update", "upsert", "delete"]
    assert detail["versions"] == [1]
    assert detail["registered"]["version"] == 1
    assert fields["price"]["declared_types"][0] == "NUMERIC(8,2)"
    assert fields["price"]["postgres_type"] == "numeric(8,2)"
    assert fields["note"]["nullable"] is True
    assert fields["label"]["required_on_insert"] is True
    assert fields["active"]["required_on_insert"] is False
    assert fields["active"]["default"] is True
    assert fields["small"]["value"]["maximum"] == 2**31 - 1
    assert missing.status_code == 404


def test_keyless_contract_offers_insert_only(gateway: Gateway) -> None:
    table = gateway.contracts.tables["keyless"]

    detail = gateway.get(f"/contracts/{table}").get_json()

    assert detail["operations"] == ["insert"]
    assert detail["key_subject"] is None


def test_an_internal_failure_is_a_logged_500_without_internals(
    make_gateway: Callable[..., Gateway],
    shared_contracts: ContractSet,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A fault of the gateway itself (here a route made to fail) reaches the client
    as a problem with the request id, and the operator's log has the traceback."""

    def fail() -> None:
        raise RuntimeError("secret internal detail")

    gateway = make_gateway(shared_contracts)
    gateway.app.add_url_rule("/test-failure", "test_failure", fail)
    with caplog.at_level(logging.ERROR):
        response = gateway.client.get(
            "/test-failure", headers={"X-Request-Id": "r-500"}
        )

    assert response.status_code == 500
    problem = response.get_json()
    assert problem["type"] == "urn:gatekeeper:problem:internal-error"
    assert problem["request_id"] == "r-500"
    assert "secret" not in response.get_data(as_text=True)
    [record] = [r for r in caplog.records if r.exc_info]
    assert "secret internal detail" in str(record.exc_info[1])


def test_dry_run_checks_and_converts_but_produces_nothing(
    gateway: Gateway, kafka: KafkaProbe
) -> None:
    table = gateway.contracts.tables["rich"]
    kafka.mark(gateway.contracts.topics)

    valid = gateway.post(payload(rich(table)), query="?dry_run=true")
    invalid = gateway.post(payload(rich(table, price="1.234")), query="?dry_run=true")
    real = gateway.post(payload(rich(table)))

    assert valid.status_code == 200
    [receipt] = valid.get_json()["receipts"]
    [real_receipt] = real.get_json()["receipts"]
    assert valid.get_json()["dry_run"] is True
    assert (receipt["partition"], receipt["offset"]) == (None, None)
    assert {k: v for k, v in receipt.items() if k not in ("partition", "offset")} == {
        k: v for k, v in real_receipt.items() if k not in ("partition", "offset")
    }
    assert invalid.status_code == 422
    assert invalid.get_json()["errors"][0]["code"] == "decimal_scale"
    assert len(kafka.records_since_mark()) == 1
