"""Each operation's effect on a table, through real Kafka, registry and PostgreSQL."""

from __future__ import annotations

import logging

import pytest
from prometheus_client import REGISTRY

from contracts.catalogue import Contract
from tests.plugins.worker import RecordProducer, Scenario, field_, wait_for

pytestmark = pytest.mark.stack


def _people(scenario: Scenario) -> Contract:
    return scenario.contract(
        "people",
        [
            field_("id", "int"),
            field_("name", "string"),
            field_("age", ["null", "int"]),
            field_("city", ["null", "string"]),
        ],
        primary_key=["id"],
    )


def _by_id(scenario: Scenario, contract: Contract) -> dict[int, dict]:
    return {row["id"]: row for row in scenario.rows(contract)}


def test_each_operation_has_its_effect(
    scenario: Scenario, producer: RecordProducer, start_worker
) -> None:
    people = _people(scenario)
    scenario.register()
    start_worker()

    producer.send(
        people, "insert", {"id": 1, "name": "Ada", "age": 36, "city": "London"}
    )
    producer.send(
        people, "insert", {"id": 2, "name": "Bob", "age": 40, "city": "Leeds"}
    )
    producer.send(people, "insert", {"id": 3, "name": "Cy", "age": 20})
    producer.send(people, "upsert", {"id": 4, "name": "Di", "age": 50})
    producer.flush()
    wait_for(lambda: len(scenario.rows(people)) == 4, what="four inserted rows")

    producer.send(people, "update", {"id": 2, "city": "York"})
    producer.send(people, "delete", {"id": 3})
    producer.send(people, "upsert", {"id": 4, "name": "Dee"})
    producer.send(people, "update", {"id": 99, "city": "Nowhere"})
    producer.flush()
    wait_for(lambda: scenario.rejects(people), what="the update of a missing row")

    rows = _by_id(scenario, people)
    assert rows[1] | {"_gk_updated_at": None} == {
        "id": 1,
        "name": "Ada",
        "age": 36,
        "city": "London",
        "_gk_schema_version": 1,
        "_gk_schema_id": rows[1]["_gk_schema_id"],
        "_gk_updated_at": None,
    }
    assert (rows[2]["name"], rows[2]["age"], rows[2]["city"]) == ("Bob", 40, "York")
    assert 3 not in rows
    assert (rows[4]["name"], rows[4]["age"]) == ("Dee", 50)
    [reject] = scenario.rejects(people)
    assert reject["code"] == "missing_row"
    assert "does not exist" in reject["reason"]


def test_one_key_changed_four_times_in_one_batch_ends_as_the_last_insert(
    scenario: Scenario, producer: RecordProducer, start_worker, caplog
) -> None:
    people = _people(scenario)
    scenario.register()
    scenario.create_topics(people)
    producer.send(people, "insert", {"id": 7, "name": "Eve", "age": 30, "city": "Rome"})
    producer.send(people, "update", {"id": 7, "age": 31})
    producer.send(people, "delete", {"id": 7})
    producer.send(people, "insert", {"id": 7, "name": "Eve"})
    producer.flush()
    caplog.set_level(logging.INFO, logger="worker")

    start_worker(batch_max_wait_s=1.0)
    [row] = wait_for(lambda: scenario.rows(people), what="the row of key 7")

    assert (row["name"], row["age"], row["city"]) == ("Eve", None, None)
    assert scenario.rejects(people) == []
    committed = wait_for(lambda: _committed(caplog, people), what="the batch log")
    assert "offsets=0..3" in committed and "records=4" in committed
    assert _splits(people) == 0, "the batch applied whole, without halving"


def test_an_update_sets_only_the_columns_it_names(
    scenario: Scenario, producer: RecordProducer, start_worker
) -> None:
    people = _people(scenario)
    scenario.register()
    start_worker()
    producer.send(people, "insert", {"id": 1, "name": "Ada", "age": 36, "city": "Oslo"})
    producer.flush()
    [before] = wait_for(lambda: scenario.rows(people), what="the inserted row")

    producer.send(people, "update", {"id": 1, "age": None}, columns=["id", "age"])
    producer.send(people, "update", {"id": 1, "city": "Bergen"}, columns=["city"])
    producer.flush()
    wait_for(
        lambda: scenario.rows(people)[0]["city"] == "Bergen", what="the second update"
    )

    [after] = scenario.rows(people)
    assert (after["name"], after["age"], after["city"]) == ("Ada", None, "Bergen")
    assert after["_gk_updated_at"] >= before["_gk_updated_at"]


def test_an_append_only_table_keeps_every_insert_and_refuses_the_rest(
    scenario: Scenario, producer: RecordProducer, start_worker
) -> None:
    views = scenario.contract(
        "views", [field_("path", "string"), field_("ms", ["null", "long"])]
    )
    scenario.register()
    start_worker()

    producer.send(views, "insert", {"path": "/a", "ms": 5})
    producer.send(views, "insert", {"path": "/a", "ms": 5})
    producer.send(views, "update", {"path": "/a", "ms": 6})
    producer.send(views, "insert", {"path": "/b"})
    producer.flush()
    wait_for(lambda: scenario.rejects(views), what="the refused update")
    wait_for(lambda: len(scenario.rows(views)) == 3, what="three appended rows")

    rows = sorted((r["path"], r["ms"]) for r in scenario.rows(views))
    assert rows == [("/a", 5), ("/a", 5), ("/b", None)]
    [reject] = scenario.rejects(views)
    assert reject["code"] == "invalid_record"
    assert "append-only" in reject["reason"]


def _committed(caplog, contract: Contract) -> str | None:
    for record in caplog.records:
        message = record.getMessage()
        if message.startswith("batch committed") and contract.topic in message:
            return message
    return None


def _splits(contract: Contract) -> float:
    value = REGISTRY.get_sample_value(
        "gatekeeper_worker_batch_splits_total", {"table": contract.table}
    )
    return value or 0.0
