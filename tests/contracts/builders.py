"""Contracts and throwaway git repositories for the contract tooling's tests."""

from __future__ import annotations

import copy
import json
import subprocess
from pathlib import Path
from typing import Any

Schema = dict[str, Any]

CONTRACTS_DIR = "contracts"


def field(name: str, avro_type: Any, **extra: Any) -> dict[str, Any]:
    """A field with the doc every contract field needs."""
    return {"name": name, "type": avro_type, "doc": f"The {name} column.", **extra}


def nullable(name: str, avro_type: Any, **extra: Any) -> dict[str, Any]:
    return field(name, ["null", avro_type], default=None, **extra)


STATUS = {"type": "enum", "name": "order_status", "symbols": ["PLACED", "PAID"]}


def orders(table: str, **changes: Any) -> Schema:
    """A keyed contract in the shape of the catalogue's own; ``changes`` overrides."""
    contract: Schema = {
        "type": "record",
        "name": table,
        "namespace": "gatekeeper.tests",
        "doc": "Orders of a test, one row per order.",
        "primary_key": ["order_id"],
        "fields": [
            field("order_id", "long"),
            field("quantity", "int"),
            field("status", STATUS),
            nullable("note", "string"),
        ],
    }
    contract.update(changes)
    return contract


def with_field(contract: Schema, new: dict[str, Any]) -> Schema:
    return {**contract, "fields": [*contract["fields"], new]}


def without_field(contract: Schema, name: str) -> Schema:
    return {**contract, "fields": [f for f in contract["fields"] if f["name"] != name]}


def replace_field(contract: Schema, name: str, new: dict[str, Any]) -> Schema:
    fields = [new if f["name"] == name else f for f in contract["fields"]]
    return {**contract, "fields": fields}


def with_symbols(contract: Schema, *symbols: str) -> Schema:
    status = field("status", {**STATUS, "symbols": list(symbols)})
    return replace_field(contract, "status", status)


def write_contract(directory: Path, contract: Schema) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{contract['name']}.avsc"
    path.write_text(json.dumps(contract, indent=2) + "\n", encoding="utf-8")
    return path


class GitRepo:
    """A git repository in a test's folder, contracts under ``contracts/``."""

    def __init__(self, root: Path, branch: str = "main") -> None:
        self.root = root
        self.contracts = root / CONTRACTS_DIR
        self.contracts.mkdir(parents=True, exist_ok=True)
        self.git("init", "--quiet", f"--initial-branch={branch}")
        self._configure()

    @classmethod
    def existing(cls, root: Path) -> GitRepo:
        """A repository that exists already, a clone say."""
        repo = cls.__new__(cls)
        repo.root, repo.contracts = root, root / CONTRACTS_DIR
        repo._configure()
        return repo

    def _configure(self) -> None:
        self.git("config", "user.email", "tests@gatekeeper.invalid")
        self.git("config", "user.name", "Gatekeeper tests")
        self.git("config", "commit.gpgsign", "false")

    def git(self, *args: str) -> str:
        done = subprocess.run(
            ["git", *args],
            cwd=self.root,
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        )
        return done.stdout

    def write(self, contract: Schema) -> Path:
        return write_contract(self.contracts, copy.deepcopy(contract))

    def commit(self, *contracts: Schema, message: str = "contract version") -> None:
        """Write the contracts and commit them (and any other change)."""
        for contract in contracts:
            self.write(contract)
        self.git("add", "--all")
        self.git("commit", "--quiet", "--allow-empty", "-m", message)
