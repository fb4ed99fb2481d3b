"""register_schemas against a real schema registry.

Every test writes its own contracts under a table name of its own, so tests never
see each other's subjects, even on a registry that other runs share.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka.schema_registry import SchemaRegistryClient, SchemaRegistryError

from scripts.register_schemas import REGISTRY_URL_ENV, main
from scripts.stack import Stack

pytestmark = pytest.mark.stack

REPO_ROOT = Path(__file__).resolve().parents[2]
UNREACHABLE_URL = "http://127.0.0.1:1/apis/ccompat/v7"

Row = tuple[str, str, str]


@pytest.fixture
def registry_url(stack: Stack) -> str:
    """The test stack's registry, through its Confluent-compatible API."""
    return stack.config.registry_url


@pytest.fixture
def registry(registry_url: str) -> Iterator[SchemaRegistryClient]:
    client = SchemaRegistryClient({"url": registry_url})
    yield client
    client.close()


@pytest.fixture
def table() -> str:
    return f"t_{uuid.uuid4().hex[:8]}"


def orders_contract(table: str, **changes: Any) -> dict[str, Any]:
    """A keyed contract; ``changes`` replaces or adds top-level properties."""
    contract: dict[str, Any] = {
        "type": "record",
        "name": table,
        "namespace": "gatekeeper.tests",
        "primary_key": ["order_id"],
        "fields": [
            {"name": "order_id", "type": "long"},
            {"name": "quantity", "type": "int"},
            {"name": "note", "type": ["null", "string"], "default": None},
        ],
    }
    contract.update(changes)
    return contract


def write_contract(directory: Path, contract: dict[str, Any]) -> None:
    path = directory / f"{contract['name']}.avsc"
    path.write_text(json.dumps(contract, indent=2), encoding="utf-8")


def with_field(contract: dict[str, Any], field: dict[str, Any]) -> dict[str, Any]:
    return {**contract, "fields": [*contract["fields"], field]}


def register_then_add_optional_field(
    registry_url: str, table: str, directory: Path
) -> tuple[str, str]:
    """Register the orders contract, then write it back with a nullable field."""
    contract = orders_contract(table)
    write_contract(directory, contract)
    assert run(registry_url, directory) == 0

    optional = {"name": "coupon", "type": ["null", "string"], "default": None}
    write_contract(directory, with_field(contract, optional))
    return subjects(table)


def run(registry_url: str, directory: Path, *extra: str) -> int:
    return main(
        ["--registry-url", registry_url, "--contracts-dir", str(directory), *extra]
    )


def rows(stdout: str) -> dict[str, Row]:
    """The report's rows by subject: (version, id, change)."""
    table = {}
    header, *lines = stdout.split("\n\n")[0].splitlines()
    assert header.split() == ["subject", "version", "id", "change"]
    for line in lines:
        subject, version, schema_id, change = line.split(maxsplit=3)
        table[subject] = (version, schema_id, change)
    return table


def subjects(table: str) -> tuple[str, str]:
    return f"activities.{table}-key", f"activities.{table}-value"


def versions(registry: SchemaRegistryClient, subject: str) -> list[int]:
    try:
        return list(registry.get_versions(subject))
    except SchemaRegistryError as exc:
        if exc.http_status_code == 404:
            return []
        raise


def test_first_run_registers_key_and_value_then_second_run_changes_nothing(
    registry_url: str,
    registry: SchemaRegistryClient,
    table: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    write_contract(tmp_path, orders_contract(table))
    key, value = subjects(table)

    assert run(registry_url, tmp_path) == 0
    first = rows(capsys.readouterr().out)

    assert list(first) == [key, value]
    for subject in (key, value):
        latest = registry.get_latest_version(subject)
        assert first[subject] == ("1", str(latest.schema_id), "new subject")
        assert latest.version == 1
        assert registry.get_compatibility(subject) == "BACKWARD_TRANSITIVE"

    assert run(registry_url, tmp_path) == 0
    second = rows(capsys.readouterr().out)

    for subject in (key, value):
        version, schema_id, _ = first[subject]
        assert second[subject] == (version, schema_id, "unchanged")
        assert versions(registry, subject) == [1]


def test_dry_run_registers_nothing(
    registry_url: str,
    registry: SchemaRegistryClient,
    table: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    write_contract(tmp_path, orders_contract(table))

    assert run(registry_url, tmp_path, "--dry-run") == 0
    report = rows(capsys.readouterr().out)

    for subject in subjects(table):
        assert report[subject] == ("-", "-", "would register (dry run)")
        assert versions(registry, subject) == []


def test_dry_run_of_a_compatible_change_keeps_version_one(
    registry_url: str,
    registry: SchemaRegistryClient,
    table: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    key, value = register_then_add_optional_field(registry_url, table, tmp_path)
    capsys.readouterr()
    assert run(registry_url, tmp_path, "--dry-run") == 0
    report = rows(capsys.readouterr().out)

    assert report[key][2] == "unchanged"
    assert report[value] == ("-", "-", "would register (dry run)")
    assert versions(registry, value) == [1]


def test_compatible_change_registers_version_two(
    registry_url: str,
    registry: SchemaRegistryClient,
    table: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    key, value = register_then_add_optional_field(registry_url, table, tmp_path)
    capsys.readouterr()
    assert run(registry_url, tmp_path) == 0
    report = rows(capsys.readouterr().out)

    latest = registry.get_latest_version(value)
    assert report[value] == ("2", str(latest.schema_id), "registered")
    assert latest.version == 2
    assert report[key][2] == "unchanged"
    assert versions(registry, key) == [1]


def test_new_key_field_without_default_is_refused(
    registry_url: str,
    registry: SchemaRegistryClient,
    table: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    contract = orders_contract(table)
    write_contract(tmp_path, contract)
    assert run(registry_url, tmp_path) == 0
    capsys.readouterr()
    key, value = subjects(table)

    region = {"name": "region", "type": "string"}
    changed = with_field(contract, region)
    changed["primary_key"] = ["order_id", "region"]
    write_contract(tmp_path, changed)
    assert run(registry_url, tmp_path) == 1
    out = capsys.readouterr().out

    assert rows(out)[key][2] == "incompatible"
    assert f"{key} is incompatible:\n  - " in out
    assert versions(registry, key) == [1]
    assert versions(registry, value) == [1]


def test_type_change_is_refused_while_other_contracts_go_ahead(
    registry_url: str,
    registry: SchemaRegistryClient,
    table: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    contract = orders_contract(table)
    write_contract(tmp_path, contract)
    assert run(registry_url, tmp_path) == 0
    capsys.readouterr()
    key, value = subjects(table)

    retyped = [
        {**f, "type": "string"} if f["name"] == "quantity" else f
        for f in contract["fields"]
    ]
    write_contract(tmp_path, {**contract, "fields": retyped})
    other = f"{table}_b"
    write_contract(tmp_path, orders_contract(other))
    assert run(registry_url, tmp_path) == 1
    out = capsys.readouterr().out
    report = rows(out)

    assert report[key][2] == "unchanged"
    assert report[value] == ("-", "-", "incompatible")
    assert f"{value} is incompatible:\n  - " in out
    assert versions(registry, value) == [1]
    for subject in subjects(other):
        assert report[subject][2] == "new subject"
        assert versions(registry, subject) == [1]


def test_contract_compatibility_property_sets_the_subject_level(
    registry_url: str,
    registry: SchemaRegistryClient,
    table: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    write_contract(tmp_path, orders_contract(table, compatibility="NONE"))

    assert run(registry_url, tmp_path) == 0
    capsys.readouterr()

    for subject in subjects(table):
        assert registry.get_compatibility(subject) == "NONE"


def test_changed_compatibility_property_is_applied_to_registered_subjects(
    registry_url: str,
    registry: SchemaRegistryClient,
    table: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    write_contract(tmp_path, orders_contract(table))
    assert run(registry_url, tmp_path) == 0
    first = rows(capsys.readouterr().out)

    write_contract(tmp_path, orders_contract(table, compatibility="NONE"))
    assert run(registry_url, tmp_path) == 0
    second = rows(capsys.readouterr().out)

    for subject in subjects(table):
        version, schema_id, _ = first[subject]
        assert second[subject] == (version, schema_id, "compatibility set → NONE")
        assert registry.get_compatibility(subject) == "NONE"
        assert versions(registry, subject) == [1]


def test_table_option_restricts_the_run(
    registry_url: str,
    registry: SchemaRegistryClient,
    table: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    other = f"{table}_b"
    write_contract(tmp_path, orders_contract(table))
    write_contract(tmp_path, orders_contract(other))

    assert run(registry_url, tmp_path, "--table", table) == 0
    report = rows(capsys.readouterr().out)

    assert set(report) == set(subjects(table))
    assert versions(registry, subjects(other)[1]) == []


def test_unreachable_registry_exits_2_with_what_to_do(
    tmp_path: Path, table: str, capsys: pytest.CaptureFixture[str]
) -> None:
    write_contract(tmp_path, orders_contract(table))

    assert run(UNREACHABLE_URL, tmp_path) == 2
    err = capsys.readouterr().err

    line = next(x for x in err.splitlines() if x.startswith("error:"))
    assert UNREACHABLE_URL in line
    assert "make up" in line
    assert REGISTRY_URL_ENV in line


def test_module_entry_point_runs(
    registry_url: str,
    registry: SchemaRegistryClient,
    table: str,
    tmp_path: Path,
) -> None:
    write_contract(tmp_path, orders_contract(table))
    command = [sys.executable, "-m", "scripts.register_schemas"]
    command += ["--registry-url", registry_url, "--contracts-dir", str(tmp_path)]

    done = subprocess.run(
        command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=120
    )

    assert done.returncode == 0, done.stderr
    report = rows(done.stdout)
    for subject in subjects(table):
        assert report[subject][2] == "new subject"
        assert versions(registry, subject) == [1]
    assert "level=INFO" in done.stderr
