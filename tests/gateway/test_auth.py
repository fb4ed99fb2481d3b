"""API keys: bearer tokens, grants of tables and operations, configuration."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from contracts.errors import ConfigurationError
from gateway.auth import KeyRing, keys_from_environment, parse_keys, token_digest
from gateway.config import GatewayConfig
from tests.gateway.builders import KEYLESS_VALUES, activity, payload, rich
from tests.plugins.gateway import READ_ONLY_TOKEN, TOKEN, Gateway, KafkaProbe


@pytest.mark.parametrize(
    "authorization",
    [None, "", "Bearer", f"Basic {TOKEN}", "Bearer wrong-token", f"Bearer {TOKEN}x"],
    ids=["absent", "empty", "no token", "basic", "unknown", "token plus a byte"],
)
def test_no_valid_key_is_401_and_produces_nothing(
    gateway: Gateway, kafka: KafkaProbe, authorization: str | None
) -> None:
    body = payload(rich(gateway.contracts.tables["rich"]))
    headers = {"Authorization": authorization} if authorization is not None else {}
    kafka.mark(gateway.contracts.topics)

    response = gateway.post(body, token=None, headers=headers)

    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert response.get_json()["type"] == "urn:gatekeeper:problem:unauthorized"
    assert kafka.records_since_mark() == []


def test_scheme_is_case_insensitive(gateway: Gateway) -> None:
    body = payload(rich(gateway.contracts.tables["rich"]))

    response = gateway.post(
        body, token=None, headers={"Authorization": f"bearer {TOKEN}"}
    )

    assert response.status_code == 202


def test_table_outside_the_grant_is_403(gateway: Gateway, kafka: KafkaProbe) -> None:
    tables = gateway.contracts.tables
    granted = activity("insert", tables["keyless"], KEYLESS_VALUES)
    kafka.mark(gateway.contracts.topics)

    allowed = gateway.post(payload(granted), token=READ_ONLY_TOKEN)
    refused = gateway.post(
        payload(
            granted, {"operation": "insert", "table": tables["pair"], "column": []}
        ),
        token=READ_ONLY_TOKEN,
    )

    assert allowed.status_code == 202
    assert refused.status_code == 403
    [error] = refused.get_json()["errors"]
    assert (error["pointer"], error["code"]) == (
        "/activities/1/table",
        "table_not_granted",
    )
    assert len(kafka.records_since_mark()) == 1


def test_operation_outside_the_grant_is_403(
    gateway: Gateway, kafka: KafkaProbe
) -> None:
    table = gateway.contracts.tables["rich"]
    kafka.mark(gateway.contracts.topics)

    response = gateway.post(payload(rich(table, "upsert")), token=READ_ONLY_TOKEN)

    assert response.status_code == 403
    [error] = response.get_json()["errors"]
    assert (error["pointer"], error["code"]) == (
        "/activities/0/operation",
        "operation_not_granted",
    )
    assert kafka.records_since_mark() == []


def test_contracts_list_only_what_the_key_may_write(gateway: Gateway) -> None:
    tables = gateway.contracts.tables

    everything = gateway.get("/contracts").get_json()["contracts"]
    limited = gateway.get("/contracts", token=READ_ONLY_TOKEN).get_json()["contracts"]
    anonymous = gateway.get("/contracts", token=None)
    hidden = gateway.get(f"/contracts/{tables['pair']}", token=READ_ONLY_TOKEN)

    assert {c["table"] for c in everything} == set(tables.values())
    assert {c["table"] for c in limited} == {tables["rich"], tables["keyless"]}
    assert anonymous.status_code == 401
    assert hidden.status_code == 403


def test_tokens_never_reach_the_logs(
    gateway: Gateway, caplog: pytest.LogCaptureFixture
) -> None:
    body = payload(rich(gateway.contracts.tables["rich"], small="bad"))
    with caplog.at_level(logging.DEBUG):
        gateway.post(body)
        gateway.post(body, token=READ_ONLY_TOKEN + "nope")

    assert caplog.records, "the requests logged nothing at all"
    assert TOKEN not in caplog.text
    assert READ_ONLY_TOKEN not in caplog.text


# --- configuration ------------------------------------------------------------


def test_keys_come_from_a_file_holding_only_digests(tmp_path: Path) -> None:
    token = "f" * 40
    keys_file = tmp_path / "keys.json"
    document = {
        "keys": [
            {
                "name": "svc",
                "token_sha256": token_digest(token),
                "tables": ["orders"],
                "operations": ["insert", "upsert"],
            }
        ]
    }
    keys_file.write_text(json.dumps(document))

    keys = keys_from_environment({"GATEKEEPER_API_KEYS_FILE": str(keys_file)})
    found = KeyRing(keys).authenticate(f"Bearer {token}")

    assert found is not None and found.name == "svc"
    assert found.grant.allows_table("orders")
    assert not found.grant.allows_table("customers")
    assert token not in repr(found)


def test_keys_come_from_the_environment_inline() -> None:
    document = {
        "keys": [{"name": "a", "token": "a" * 32, "tables": ["*"], "operations": ["*"]}]
    }

    keys = keys_from_environment({"GATEKEEPER_API_KEYS": json.dumps(document)})

    assert [k.name for k in keys] == ["a"]


@pytest.mark.parametrize(
    ("document", "words"),
    [
        ({"keys": []}, "with one key"),
        (
            {
                "keys": [
                    {
                        "name": "a",
                        "token": "short",
                        "tables": ["*"],
                        "operations": ["*"],
                    }
                ]
            },
            "at least 32",
        ),
        (
            {
                "keys": [
                    {
                        "name": "a",
                        "token_sha256": "ab",
                        "tables": ["*"],
                        "operations": ["*"],
                    }
                ]
            },
            "64 hex",
        ),
        (
            {
                "keys": [
                    {
                        "name": "a",
                        "token": "a" * 32,
                        "tables": ["*"],
                        "operations": ["merge"],
                    }
                ]
            },
            "unknown operations merge",
        ),
        (
            {
                "keys": [
                    {"name": "a", "token": "a" * 32, "tables": [], "operations": ["*"]}
                ]
            },
            "tables must be",
        ),
        (
            {
                "keys": [
                    {
                        "name": "a",
                        "token": "a" * 32,
                        "token_sha256": "0" * 64,
                        "tables": ["*"],
                        "operations": ["*"],
                    }
                ]
            },
            "exactly one of",
        ),
        (
            {
                "keys": [
                    {
                        "name": "a",
                        "token": "a" * 32,
                        "tables": ["*"],
                        "operations": ["*"],
                    },
                    {
                        "name": "a",
                        "token": "b" * 32,
                        "tables": ["*"],
                        "operations": ["*"],
                    },
                ]
            },
            "repeated: a",
        ),
        (
            {
                "keys": [
                    {
                        "name": "a",
                        "secret": "x",
                        "token": "a" * 32,
                        "tables": ["*"],
                        "operations": ["*"],
                    }
                ]
            },
            "unknown members: secret",
        ),
    ],
    ids=[
        "empty",
        "short token",
        "bad digest",
        "bad operation",
        "no tables",
        "token and digest",
        "repeated name",
        "unknown member",
    ],
)
def test_malformed_keys_are_refused_naming_the_problem(
    document: dict, words: str
) -> None:
    with pytest.raises(ConfigurationError, match=words):
        parse_keys(json.dumps(document), "GATEKEEPER_API_KEYS")


def test_gateway_refuses_to_start_without_keys() -> None:
    with pytest.raises(ConfigurationError, match="GATEKEEPER_API_KEYS_FILE"):
        GatewayConfig.from_env({})


def test_both_key_sources_at_once_are_refused(tmp_path: Path) -> None:
    environ = {"GATEKEEPER_API_KEYS": "{}", "GATEKEEPER_API_KEYS_FILE": "x"}

    with pytest.raises(ConfigurationError, match="not both"):
        keys_from_environment(environ)
