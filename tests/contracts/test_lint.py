"""The contract lint: every rule, every problem at once, and its command line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import psycopg2
import pytest

from scripts.lint_contracts import RESERVED_WORDS, lint_file, main
from scripts.stack import Stack
from tests.contracts.builders import (
    field,
    nullable,
    orders,
    replace_field,
    with_field,
    write_contract,
)

TABLE = "t_lint"
PACKAGED = Path(__file__).resolve().parents[2] / "contracts" / "schemas"


def problems_of(tmp_path: Path, contract: Any, name: str = TABLE) -> list[str]:
    path = tmp_path / f"{name}.avsc"
    path.write_text(json.dumps(contract), encoding="utf-8")
    return [f"{p.field}: {p.message}" for p in lint_file(path)]


def test_the_packaged_contracts_keep_every_rule() -> None:
    assert main(["--contracts-dir", str(PACKAGED)]) == 0


@pytest.mark.parametrize(
    ("contract", "expected"),
    [
        (
            orders("other"),
            ": record name 'other' must equal the file name 't_lint'",
        ),
        ({**orders(TABLE), "doc": " "}, ": the record needs a doc"),
        (
            replace_field(orders(TABLE), "note", {"name": "note", "type": "string"}),
            "note: needs a doc saying what the column holds",
        ),
        (
            with_field(orders(TABLE), field("order", "int")),
            "order: field name 'order' is a PostgreSQL reserved key word",
        ),
        (
            with_field(orders(TABLE), field("_gk_version", "int")),
            "_gk_version: field name '_gk_version' starts with _gk_",
        ),
        (
            with_field(orders(TABLE), field("Total", "int")),
            "Total: field name 'Total' is not a valid unquoted SQL identifier",
        ),
        (
            with_field(
                orders(TABLE), field("tags", {"type": "array", "items": "string"})
            ),
            "tags: unsupported Avro type",
        ),
        (
            with_field(
                orders(TABLE),
                field("at", {"type": "int", "logicalType": "time-millis"}),
            ),
            "at: unsupported Avro type",
        ),
        (
            with_field(orders(TABLE), field("coupon", ["null", "string"])),
            'coupon: a nullable field must declare "default": null',
        ),
        (
            with_field(
                orders(TABLE), field("coupon", ["string", "null"], default=None)
            ),
            'coupon: a nullable type must list "null" first',
        ),
        (
            orders(TABLE, primary_key=["order_id", "ghost"]),
            ": primary key 'ghost' is not a field",
        ),
        (
            orders(TABLE, primary_key=["note"]),
            "note: is part of the primary key, so it must not be nullable",
        ),
        (
            orders(TABLE, compatibility="SIDEWAYS"),
            ": compatibility 'SIDEWAYS' is not one of NONE, BACKWARD",
        ),
        (
            with_field(orders(TABLE), field("count", "int", default="many")),
            ": fastavro cannot parse it: Default value <many> must match",
        ),
        ([1, 2], ": a contract must be an Avro record"),
    ],
    ids=[
        "record name",
        "record doc",
        "field doc",
        "reserved word",
        "reserved prefix",
        "identifier",
        "array",
        "time logical type",
        "nullable without default",
        "null not first",
        "key not a field",
        "nullable key",
        "unknown level",
        "bad default",
        "not a record",
    ],
)
def test_each_rule_names_the_field_and_the_problem(
    tmp_path: Path, contract: Any, expected: str
) -> None:
    problems = problems_of(tmp_path, contract)

    assert any(p.startswith(expected) for p in problems), problems


def test_every_problem_is_reported_not_just_the_first(tmp_path: Path) -> None:
    contract = with_field(
        orders(TABLE, primary_key=["ghost"]),
        nullable("select", {"type": "array", "items": "int"}),
    )
    del contract["doc"]

    problems = problems_of(tmp_path, contract)

    assert len(problems) == 4, problems


def test_table_named_like_a_reserved_word_is_refused(tmp_path: Path) -> None:
    problems = problems_of(tmp_path, orders("user"), name="user")

    assert ": table name 'user' is a PostgreSQL reserved key word" in problems


def test_unreadable_json_is_a_problem_not_a_crash(tmp_path: Path) -> None:
    path = tmp_path / f"{TABLE}.avsc"
    path.write_text("{not json", encoding="utf-8")

    [problem] = lint_file(path)

    assert "cannot read the contract" in problem.message


def test_command_line_prints_each_problem_and_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_contract(tmp_path, with_field(orders(TABLE), field("limit", "int")))
    write_contract(tmp_path, orders("t_fine"))

    assert main(["--contracts-dir", str(tmp_path)]) == 1
    out = capsys.readouterr().out

    assert f"{tmp_path / TABLE}.avsc: field limit: field name 'limit' is a" in out
    assert "1 problem(s)" in out


def test_command_line_without_contracts_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--contracts-dir", str(tmp_path)]) == 2
    assert "no contracts" in capsys.readouterr().err


@pytest.mark.stack
def test_reserved_words_cover_the_servers_own_list(stack: Stack) -> None:
    with psycopg2.connect(stack.config.database_url) as conn, conn.cursor() as cur:
        cur.execute("SELECT word FROM pg_get_keywords() WHERE catcode IN ('R', 'T')")
        server = {word for (word,) in cur.fetchall()}
    conn.close()

    assert server
    assert server <= RESERVED_WORDS
