"""Gateway settings, the local stack's API key, and pure helpers."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from contracts.errors import ConfigurationError
from gateway.auth import KeyRing, parse_keys
from gateway.config import GatewayConfig
from gateway.validation import pointer
from scripts.stack import StackConfig, apps

KEYS = json.dumps(
    {"keys": [{"name": "k", "token": "k" * 32, "tables": ["*"], "operations": ["*"]}]}
)


def test_settings_are_read_from_the_environment(tmp_path: Path) -> None:
    environ = {
        "GATEKEEPER_API_KEYS": KEYS,
        "GATEKEEPER_KAFKA_BOOTSTRAP": "kafka:9092",
        "GATEKEEPER_SCHEMA_REGISTRY_URL": "http://registry:8081/apis/ccompat/v7/",
        "GATEKEEPER_DATABASE_URL": "postgresql://gk:secret@db/gk",
        "GATEKEEPER_CONTRACTS_DIR": str(tmp_path),
        "GATEKEEPER_MAX_BODY_BYTES": "2048",
        "GATEKEEPER_MAX_ACTIVITIES": "7",
        "GATEKEEPER_DELIVERY_TIMEOUT_S": "2.5",
        "GATEKEEPER_IDEMPOTENCY_TTL_S": "60",
    }

    config = GatewayConfig.from_env(environ)

    assert config.registry_url == "http://registry:8081/apis/ccompat/v7"
    assert (config.max_body_bytes, config.max_activities) == (2048, 7)
    assert (config.delivery_timeout_s, config.idempotency_ttl_s) == (2.5, 60.0)
    assert config.contracts_dir == tmp_path
    masked = config.masked()
    assert masked["database_url"] == "postgresql://gk:***@db/gk"
    assert masked["api_keys"] == "k"
    assert "k" * 32 not in repr(config)


def test_defaults_are_the_documented_ones() -> None:
    config = GatewayConfig.from_env({"GATEKEEPER_API_KEYS": KEYS})

    assert config.max_body_bytes == 1_048_576
    assert config.max_activities == 1000
    assert config.delivery_timeout_s == 10.0
    assert config.idempotency_ttl_s == 86_400.0


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("GATEKEEPER_MAX_ACTIVITIES", "0"),
        ("GATEKEEPER_MAX_BODY_BYTES", "lots"),
        ("GATEKEEPER_DELIVERY_TIMEOUT_S", "inf"),
        ("GATEKEEPER_IDEMPOTENCY_TTL_S", "-1"),
    ],
)
def test_malformed_numbers_are_refused_naming_the_variable(
    variable: str, value: str
) -> None:
    with pytest.raises(ConfigurationError, match=variable):
        GatewayConfig.from_env({"GATEKEEPER_API_KEYS": KEYS, variable: value})


def test_unknown_gatekeeper_variables_are_refused() -> None:
    environ = {"GATEKEEPER_API_KEYS": KEYS, "GATEKEEPER_API_KEY_FILE": "x"}

    with pytest.raises(ConfigurationError, match="did you mean"):
        GatewayConfig.from_env(environ)


def test_make_up_makes_one_local_key_and_keeps_it(tmp_path: Path) -> None:
    config = StackConfig(tmp_path / "stack", tmp_path / "cache")

    token, keys_file = apps.ensure_local_api_key(config)
    again = apps.local_api_key(config)

    token_file = tmp_path / "stack" / apps.API_KEY_FILE
    assert again == token
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert token not in keys_file.read_text()
    keys = parse_keys(keys_file.read_text(), str(keys_file))
    found = KeyRing(keys).authenticate(f"Bearer {token}")
    assert found is not None and found.grant.tables is None


def test_pointers_escape_tilde_and_slash() -> None:
    assert pointer("activities", 0, "a/b~c") == "/activities/0/a~1b~0c"
