"""register-schemas applies the contract's own rule, as check-compat does."""

from __future__ import annotations

from pathlib import Path

import pytest
from confluent_kafka.schema_registry import SchemaRegistryClient

from scripts import register_schemas
from scripts.stack import Stack
from tests.contracts.builders import field, nullable, orders, with_field, write_contract

pytestmark = pytest.mark.stack


def register(stack: Stack, directory: Path, *extra: str) -> int:
    url = stack.config.registry_url
    return register_schemas.main(
        ["--registry-url", url, "--contracts-dir", str(directory), *extra]
    )


def value_versions(stack: Stack, table: str) -> list[int]:
    client = SchemaRegistryClient({"url": stack.config.registry_url})
    try:
        return list(client.get_versions(f"activities.{table}-value"))
    finally:
        client.close()


@pytest.mark.parametrize("extra", [[], ["--dry-run"]], ids=["register", "dry run"])
def test_new_required_field_is_refused_with_the_rule_as_reason(
    stack: Stack,
    table: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    extra: list[str],
) -> None:
    write_contract(tmp_path, orders(table))
    assert register(stack, tmp_path) == 0
    write_contract(tmp_path, with_field(orders(table), field("region", "string")))

    assert register(stack, tmp_path, *extra) == 1
    out = capsys.readouterr().out

    assert f"activities.{table}-value is incompatible:" in out
    assert "field region is new, not nullable and has no default" in out
    assert value_versions(stack, table) == [1]


def test_new_nullable_field_is_still_registered(
    stack: Stack, table: str, tmp_path: Path
) -> None:
    write_contract(tmp_path, orders(table))
    assert register(stack, tmp_path) == 0
    write_contract(tmp_path, with_field(orders(table), nullable("region", "string")))

    assert register(stack, tmp_path) == 0
    assert value_versions(stack, table) == [1, 2]
