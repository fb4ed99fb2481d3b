"""The compatibility rules as pure logic: Avro's checker and the contract's own rule."""

from __future__ import annotations

from typing import Any

import pytest

from contracts.catalogue import Contract
from contracts.compatibility import (
    LEVELS,
    NEW_REQUIRED_FIELD,
    Part,
    Version,
    check_subject,
    compared_versions,
    level_rule,
    new_required_fields,
    type_text,
)
from contracts.errors import ContractError
from tests.contracts.builders import (
    field,
    nullable,
    orders,
    replace_field,
    with_field,
    with_symbols,
)

TABLE = "t_rules"


def value(schema: dict[str, Any]) -> dict[str, Any]:
    contract = Contract(TABLE, schema, tuple(schema.get("primary_key", ())))
    return contract.value_schema()


def contract_of(schema: dict[str, Any]) -> Contract:
    level = schema.get("compatibility", "BACKWARD_TRANSITIVE")
    return Contract(TABLE, schema, tuple(schema.get("primary_key", ())), level)


def versions(*schemas: dict[str, Any]) -> list[Version]:
    return [Version(n, value(s)) for n, s in enumerate(schemas, start=1)]


def test_every_registry_level_has_a_rule_and_unknown_ones_are_refused() -> None:
    assert set(LEVELS) == {
        "NONE",
        "BACKWARD",
        "BACKWARD_TRANSITIVE",
        "FORWARD",
        "FORWARD_TRANSITIVE",
        "FULL",
        "FULL_TRANSITIVE",
    }
    with pytest.raises(ContractError, match="unknown compatibility level 'SIDEWAYS'"):
        level_rule("SIDEWAYS")


@pytest.mark.parametrize(
    ("level", "expected"),
    [
        ("NONE", []),
        ("BACKWARD", [3]),
        ("FULL", [3]),
        ("BACKWARD_TRANSITIVE", [1, 2, 3]),
        ("FORWARD_TRANSITIVE", [1, 2, 3]),
    ],
)
def test_levels_compare_with_the_latest_or_every_version(
    level: str, expected: list[int]
) -> None:
    previous = versions(orders(TABLE), orders(TABLE), orders(TABLE))

    assert [v.number for v in compared_versions(level, previous)] == expected


def test_removed_enum_symbol_names_the_field_and_the_symbol() -> None:
    old = orders(TABLE)

    [problem] = check_subject(
        Part.VALUE, value(with_symbols(old, "PLACED")), versions(old), "BACKWARD"
    )

    assert (problem.part, problem.field, problem.code) == (
        Part.VALUE,
        "status",
        "missing_enum_symbols",
    )
    assert problem.reason == (
        "field status drops enum symbol(s) PAID: the new version cannot read "
        "records written with version 1"
    )


def test_added_enum_symbol_breaks_only_forward_readers() -> None:
    old = orders(TABLE)
    new = value(with_symbols(old, "PLACED", "PAID", "SHIPPED"))

    assert check_subject(Part.VALUE, new, versions(old), "BACKWARD") == []
    [problem] = check_subject(Part.VALUE, new, versions(old), "FORWARD")

    assert problem.reason == (
        "field status adds enum symbol(s) SHIPPED: readers of version 1 cannot "
        "read records written with the new version"
    )


def test_widening_is_backward_compatible_but_not_forward() -> None:
    old = orders(TABLE)
    new = value(replace_field(old, "quantity", field("quantity", "long")))

    assert check_subject(Part.VALUE, new, versions(old), "BACKWARD") == []
    [problem] = check_subject(Part.VALUE, new, versions(old), "FULL")

    assert problem.field == "quantity"
    assert problem.reason.startswith("field quantity changes type from int to long:")


def test_transitive_problem_names_every_version_it_breaks() -> None:
    first = orders(TABLE)
    retyped = replace_field(first, "quantity", field("quantity", "string"))

    [problem] = check_subject(
        Part.VALUE, value(retyped), versions(first, first), "BACKWARD_TRANSITIVE"
    )

    assert problem.versions == (1, 2)
    assert problem.reason.endswith("written with versions 1 and 2")


def test_new_key_field_without_default_is_an_avro_problem_of_the_key() -> None:
    old = orders(TABLE)
    new = with_field(
        orders(TABLE, primary_key=["order_id", "region"]), field("region", "string")
    )
    key = Contract(TABLE, new, ("order_id", "region")).key_schema()
    old_key = Contract(TABLE, old, ("order_id",)).key_schema()

    [problem] = check_subject(Part.KEY, key, [Version(1, old_key)], "BACKWARD")

    assert problem.code == "reader_field_missing_default_value"
    assert problem.reason.startswith("field region is new and has no default:")


def test_rename_through_aliases_is_compatible_for_avro() -> None:
    old = orders(TABLE)
    renamed = replace_field(old, "quantity", field("qty", "int", aliases=["quantity"]))

    assert check_subject(Part.VALUE, value(renamed), versions(old), "FULL") == []
    assert new_required_fields(contract_of(renamed), versions(old)) == []


def test_new_required_field_breaks_the_contract_rule_but_not_avro() -> None:
    old = orders(TABLE)
    new = with_field(old, field("region", "string"))

    assert check_subject(Part.VALUE, value(new), versions(old), "BACKWARD") == []
    [problem] = new_required_fields(contract_of(new), versions(old))

    assert (problem.part, problem.field, problem.code) == (
        Part.CONTRACT,
        "region",
        NEW_REQUIRED_FIELD,
    )
    assert "records and rows written with version 1 have no value" in problem.reason


@pytest.mark.parametrize(
    "added",
    [
        nullable("region", "string"),
        field("region", "string", default="eu"),
    ],
)
def test_new_field_that_is_nullable_or_has_a_default_keeps_the_rule(
    added: dict[str, Any],
) -> None:
    old = orders(TABLE)

    assert new_required_fields(contract_of(with_field(old, added)), versions(old)) == []


def test_contract_rule_does_not_apply_without_backward() -> None:
    old = orders(TABLE, compatibility="FORWARD")
    new = with_field(old, field("region", "string"))

    assert new_required_fields(contract_of(new), versions(old)) == []


def test_contract_rule_under_transitive_levels_sees_a_field_that_came_and_went() -> (
    None
):
    with_region = with_field(orders(TABLE), field("region", "string"))
    history = versions(orders(TABLE), with_region, orders(TABLE))

    [problem] = new_required_fields(contract_of(with_region), history)

    assert problem.versions == (1, 3)


@pytest.mark.parametrize(
    ("avro_type", "text"),
    [
        ("int", "int"),
        (["null", "string"], "nullable string"),
        (
            {"type": "bytes", "logicalType": "decimal", "precision": 12, "scale": 2},
            "decimal(12,2)",
        ),
        ({"type": "long", "logicalType": "timestamp-micros"}, "timestamp-micros"),
        ({"type": "enum", "name": "colour", "symbols": ["RED"]}, "enum colour"),
    ],
)
def test_type_text_says_types_as_people_do(avro_type: Any, text: str) -> None:
    assert type_text(avro_type) == text
