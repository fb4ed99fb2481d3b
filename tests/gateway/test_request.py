"""The request itself: media type, strict JSON, size and count limits, parameters."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from tests.gateway.builders import payload, rich
from tests.plugins.gateway import ContractSet, Gateway, KafkaProbe


def test_content_type_must_be_json(gateway: Gateway, kafka: KafkaProbe) -> None:
    body = json.dumps(payload(rich(gateway.contracts.tables["rich"]))).encode()
    kafka.mark(gateway.contracts.topics)

    wrong = gateway.post(body, headers={"Content-Type": "text/plain"})
    latin = gateway.post(
        body, headers={"Content-Type": "application/json; charset=latin-1"}
    )
    utf8 = gateway.post(
        body, headers={"Content-Type": "application/json; charset=UTF-8"}
    )

    assert wrong.status_code == 415
    assert wrong.get_json()["type"] == "urn:gatekeeper:problem:unsupported-media-type"
    [error] = wrong.get_json()["errors"]
    assert (error["parameter"], error["code"]) == (
        "Content-Type",
        "unsupported_media_type",
    )
    assert latin.status_code == 415
    assert utf8.status_code == 202
    assert len(kafka.records_since_mark()) == 1


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b'{"activities": [', "malformed_json"),
        (b"", "malformed_json"),
        (b'{"activities": NaN}', "malformed_json"),
        (b'{"activities": [], "activities": [1]}', "repeated_member"),
        (b'{"activities": ["\xff"]}', "invalid_utf8"),
        (b"[" * 50_000 + b"]" * 50_000, "too_deep"),
        (b'{"activities": [1e400]}', "malformed_json"),
    ],
    ids=[
        "truncated",
        "empty",
        "nan",
        "repeated member",
        "not utf-8",
        "too deep",
        "infinite number",
    ],
)
def test_malformed_json_is_400_and_produces_nothing(
    gateway: Gateway, kafka: KafkaProbe, body: bytes, code: str
) -> None:
    kafka.mark(gateway.contracts.topics)

    response = gateway.post(body)

    assert response.status_code == 400
    assert response.mimetype == "application/problem+json"
    assert [e["code"] for e in response.get_json()["errors"]] == [code]
    assert kafka.records_since_mark() == []


def test_count_limit_is_configurable_and_answered_413(
    make_gateway: Callable[..., Gateway],
    make_contracts: Callable[..., ContractSet],
    kafka: KafkaProbe,
) -> None:
    contracts = make_contracts("rich")
    gateway = make_gateway(contracts, max_activities=2)
    table = contracts.tables["rich"]
    two = payload(rich(table, id=1), rich(table, id=2))
    kafka.mark(contracts.topics)

    accepted = gateway.post(two)
    refused = gateway.post(payload(*two["activities"], rich(table, id=3)))

    assert accepted.status_code == 202
    assert refused.status_code == 413
    [error] = refused.get_json()["errors"]
    assert (error["pointer"], error["code"]) == ("/activities", "too_many_activities")
    assert len(kafka.records_since_mark()) == 2


def test_size_limit_is_configurable_and_answered_413_problem(
    make_gateway: Callable[..., Gateway],
    make_contracts: Callable[..., ContractSet],
    kafka: KafkaProbe,
) -> None:
    contracts = make_contracts("rich")
    gateway = make_gateway(contracts, max_body_bytes=2000)
    small = payload(rich(contracts.tables["rich"]))
    large = payload(rich(contracts.tables["rich"], label="x" * 2000))
    kafka.mark(contracts.topics)

    accepted = gateway.post(small)
    refused = gateway.post(large)

    assert accepted.status_code == 202
    assert refused.status_code == 413
    assert refused.mimetype == "application/problem+json"
    assert "2000 bytes" in refused.get_json()["detail"]
    [error] = refused.get_json()["errors"]
    assert (error["pointer"], error["code"]) == ("", "body_too_large")
    assert len(kafka.records_since_mark()) == 1


@pytest.mark.parametrize("value", ["yes", "True", "1", ""])
def test_dry_run_parameter_must_be_true_or_false(gateway: Gateway, value: str) -> None:
    body = payload(rich(gateway.contracts.tables["rich"]))

    response = gateway.post(body, query=f"?dry_run={value}")

    assert response.status_code == 400
    [error] = response.get_json()["errors"]
    assert (error["parameter"], error["code"]) == ("dry_run", "invalid_parameter")


def test_unknown_routes_and_methods_are_problem_documents(gateway: Gateway) -> None:
    missing = gateway.get("/nowhere")
    wrong_method = gateway.client.put("/activities")
    options = gateway.client.options("/activities")

    assert missing.status_code == 404
    assert missing.get_json()["type"] == "urn:gatekeeper:problem:not-found"
    assert wrong_method.status_code == 405
    assert wrong_method.headers["Allow"] == "POST"
    assert wrong_method.mimetype == "application/problem+json"
    assert options.status_code == 405


def test_a_usable_request_id_is_kept_and_any_other_replaced(gateway: Gateway) -> None:
    kept = gateway.client.get("/healthz", headers={"X-Request-Id": "abc-123"})
    replaced = gateway.client.get("/healthz", headers={"X-Request-Id": "a b\tc"})

    assert kept.headers["X-Request-Id"] == "abc-123"
    assert replaced.headers["X-Request-Id"] not in ("", "a b\tc")
    assert len(replaced.headers["X-Request-Id"]) == 32
