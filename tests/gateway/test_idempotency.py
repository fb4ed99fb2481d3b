"""Idempotency-Key: a retry returns the first answer and produces nothing again."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable

import psycopg2
import pytest

from gateway.idempotency import ClaimState, IdempotencyStore, fingerprint
from scripts.stack import Stack
from scripts.stack.config import free_port
from tests.gateway.builders import payload, rich
from tests.plugins.gateway import READ_ONLY_TOKEN, ContractSet, Gateway, KafkaProbe


def _key() -> dict[str, str]:
    return {"Idempotency-Key": f"test-{uuid.uuid4()}"}


@pytest.fixture
def own(
    make_contracts: Callable[..., ContractSet],
    make_gateway: Callable[..., Gateway],
) -> Gateway:
    return make_gateway(make_contracts("rich"))


def test_a_retry_gets_the_first_answer_and_produces_once(
    own: Gateway, kafka: KafkaProbe
) -> None:
    body = payload(rich(own.contracts.tables["rich"]))
    key = _key()
    kafka.mark(own.contracts.topics)

    first = own.post(body, headers=key)
    retry = own.post(body, headers=key)

    assert first.status_code == retry.status_code == 202
    assert retry.get_json() == first.get_json()
    assert retry.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert len(kafka.records_since_mark()) == 1


def test_same_request_spelled_differently_is_the_same_request(own: Gateway) -> None:
    body = payload(rich(own.contracts.tables["rich"]))
    key = _key()
    compact = own.post(body, headers=key)
    spaced = own.post(b"  " + json.dumps(body, indent=4).encode(), headers=key)

    assert spaced.status_code == 202
    assert spaced.get_json() == compact.get_json()


def test_a_key_reused_for_another_request_is_422(
    own: Gateway, kafka: KafkaProbe
) -> None:
    table = own.contracts.tables["rich"]
    key = _key()
    own.post(payload(rich(table, id=1)), headers=key)
    kafka.mark(own.contracts.topics)

    reused = own.post(payload(rich(table, id=2)), headers=key)

    assert reused.status_code == 422
    assert reused.get_json()["type"] == "urn:gatekeeper:problem:idempotency-key-reused"
    assert kafka.records_since_mark() == []


def test_a_key_in_progress_is_409(
    registered: Stack, own: Gateway, kafka: KafkaProbe
) -> None:
    body = payload(rich(own.contracts.tables["rich"]))
    key = _key()
    store = IdempotencyStore(registered.config.database_url, 60, 60, 1)
    claim = store.claim("tests", key["Idempotency-Key"], body)
    assert claim.state is ClaimState.CLAIMED
    kafka.mark(own.contracts.topics)

    try:
        response = own.post(body, headers=key)
    finally:
        store.release(claim)
        store.close()

    assert response.status_code == 409
    assert response.headers["Retry-After"] == "1"
    assert kafka.records_since_mark() == []


def test_a_rejected_request_leaves_the_key_free(own: Gateway) -> None:
    table = own.contracts.tables["rich"]
    key = _key()

    rejected = own.post(payload(rich(table, small="x")), headers=key)
    retried = own.post(payload(rich(table, small="x")), headers=key)
    fixed = own.post(payload(rich(table)), headers=key)

    assert rejected.status_code == retried.status_code == 422
    assert "Idempotent-Replayed" not in retried.headers
    assert fixed.status_code == 202


def test_keys_belong_to_the_api_key_that_used_them(
    own: Gateway, kafka: KafkaProbe
) -> None:
    body = payload(rich(own.contracts.tables["rich"]))
    key = _key()
    kafka.mark(own.contracts.topics)

    mine = own.post(body, headers=key)
    theirs = own.post(body, headers=key, token=READ_ONLY_TOKEN)

    assert mine.status_code == theirs.status_code == 202
    assert "Idempotent-Replayed" not in theirs.headers
    assert len(kafka.records_since_mark()) == 2


def test_answers_expire_after_their_ttl(registered: Stack, own: Gateway) -> None:
    store = IdempotencyStore(registered.config.database_url, 60, 60, 1)
    key = f"test-{uuid.uuid4()}"
    claim = store.claim("tests", key, {"a": 1})
    store.complete(claim, 202, "{}")
    with psycopg2.connect(registered.config.database_url) as conn, conn.cursor() as cur:
        cur.execute(
            "UPDATE gatekeeper.idempotency_keys SET expires_at = now() - interval '1s' "
            "WHERE principal = 'tests' AND idempotency_key = %s",
            (key,),
        )

    again = store.claim("tests", key, {"b": 2})
    store.close()

    assert again.state is ClaimState.CLAIMED


@pytest.mark.parametrize("header", ["", "a" * 256, "with space", "tab\tkey"])
def test_a_malformed_key_is_400(own: Gateway, header: str) -> None:
    body = payload(rich(own.contracts.tables["rich"]))

    response = own.post(body, headers={"Idempotency-Key": header})

    assert response.status_code == 400
    [error] = response.get_json()["errors"]
    assert error["parameter"] == "Idempotency-Key"


def test_store_unreachable_is_503_only_for_requests_with_a_key(
    make_gateway: Callable[..., Gateway], shared_contracts: ContractSet
) -> None:
    nowhere = f"postgresql://nobody:nothing@127.0.0.1:{free_port()}/none"
    gateway = make_gateway(shared_contracts, database_url=nowhere)
    body = payload(rich(shared_contracts.tables["rich"]))

    with_key = gateway.post(body, headers=_key())
    without = gateway.post(body)

    assert with_key.status_code == 503
    assert with_key.get_json()["type"] == (
        "urn:gatekeeper:problem:idempotency-store-unavailable"
    )
    assert with_key.headers["Retry-After"] == "5"
    assert without.status_code == 202


def test_fingerprint_ignores_spacing_and_member_order() -> None:
    assert fingerprint({"a": 1, "b": [1, 2]}) == fingerprint({"b": [1, 2], "a": 1})
    assert fingerprint({"a": 1}) != fingerprint({"a": 2})
