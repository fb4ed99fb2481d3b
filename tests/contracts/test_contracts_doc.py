"""make contracts-doc: one Markdown page of every contract, versions from git."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from scripts import register_schemas
from scripts.contracts_doc import main
from scripts.stack import Stack
from tests.contracts.builders import (
    GitRepo,
    field,
    nullable,
    orders,
    with_field,
    write_contract,
)


def test_page_lists_fields_types_key_doc_and_git_version(
    table: str, git_repo: GitRepo, tmp_path: Path
) -> None:
    v1 = orders(table)
    git_repo.commit(v1)
    git_repo.commit({**v1, "doc": "Orders, docs only."})  # no new version
    git_repo.commit(with_field(v1, nullable("coupon", "string")))
    git_repo.write(
        with_field(v1, field("coupon", ["null", "string"], default=None, doc="A | B"))
    )
    output = tmp_path / "contracts.md"

    assert (
        main(["--contracts-dir", str(git_repo.contracts), "--output", str(output)]) == 0
    )
    page = output.read_text(encoding="utf-8")

    assert f"| [{table}](#{table}) | order_id | BACKWARD_TRANSITIVE | 2 | 5 |" in page
    assert f"## {table}" in page
    assert "- Primary key: `order_id`" in page
    assert "- Current version: 2" in page
    assert (
        "| **order_id** (key) | `long` | `bigint` | no |  | The order_id column. |"
        in (page)
    )
    assert "| status | `enum order_status`: `PLACED`, `PAID` | `text` | no |" in page
    assert "| coupon | `string` | `text` | yes | null | A \\| B |" in page


@pytest.mark.stack
def test_registry_url_takes_the_version_from_the_registry(
    stack: Stack, table: str, tmp_path: Path
) -> None:
    url = stack.config.registry_url
    contracts = tmp_path / "contracts"
    for version in (
        orders(table),
        with_field(orders(table), nullable("coupon", "string")),
    ):
        write_contract(contracts, version)
        args = ["--registry-url", url, "--contracts-dir", str(contracts)]
        assert register_schemas.main(args) == 0
    write_contract(contracts, orders(f"{table}_new"))
    output = tmp_path / "contracts.md"

    args = ["--contracts-dir", str(contracts), "--output", str(output)]
    assert main([*args, "--registry-url", url]) == 0
    page = output.read_text(encoding="utf-8")

    assert f"| [{table}](#{table}) | order_id | BACKWARD_TRANSITIVE | 2 | 5 |" in page
    new_row = f"| [{table}_new](#{table}_new) | order_id | BACKWARD_TRANSITIVE |"
    assert f"{new_row} not registered | 4 |" in page


def test_the_committed_page_is_written_by_the_tool(tmp_path: Path) -> None:
    """docs/contracts.md lists every packaged contract; regenerate it when not."""
    output = tmp_path / "contracts.md"
    assert main(["--output", str(output)]) == 0

    committed = Path(__file__).resolve().parents[2] / "docs" / "contracts.md"
    fresh, stored = output.read_text(), committed.read_text()
    assert _without_versions(fresh) == _without_versions(stored), (
        "docs/contracts.md is out of date: run `make contracts-doc`"
    )


def _without_versions(page: str) -> list[str]:
    """The page without its version numbers, which depend on the clone's depth."""
    lines = []
    for line in page.splitlines():
        if line.startswith("- Current version:"):
            continue
        lines.append(re.sub(r"\| [^|]+ \| (\d+) \|$", r"| - | \1 |", line))
    return lines
