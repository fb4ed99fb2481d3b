"""Nothing dropped silently: poison records go to the rejects and the dead-letter
topic while the records around them apply, and ``replay`` applies them after a fix."""

from __future__ import annotations

import os
import struct
import subprocess
import sys

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from contracts.catalogue import Contract
from scripts.stack.config import REPO_ROOT, free_port
from tests.plugins.worker import (
    RecordProducer,
    Scenario,
    dead_letters,
    field_,
    wait_for,
)
from worker import metrics

pytestmark = pytest.mark.stack

INSERT = [("gk-operation", b"insert"), ("gk-columns", b"id,name")]


def _people(scenario: Scenario) -> Contract:
    return scenario.contract(
        "poisoned",
        [field_("id", "int"), field_("name", "string")],
        primary_key=["id"],
    )


def test_poison_records_are_rejected_while_the_records_around_them_apply(
    scenario: Scenario, producer: RecordProducer, start_worker
) -> None:
    people = _people(scenario)
    scenario.register()
    scenario.create_topics(people)
    key = producer.encode_key(people, {"id": 5})
    unknown_id = b"\x00" + struct.pack(">I", 2**31 - 7) + b"\x02"

    producer.send(people, "insert", {"id": 1, "name": "before garbage"})
    producer.send_raw(people.topic, key, b"garbage bytes", INSERT)
    producer.send(people, "insert", {"id": 2, "name": "before unknown id"})
    producer.send_raw(people.topic, key, unknown_id, INSERT)
    producer.send(people, "insert", {"id": 3, "name": "before the null"})
    producer.send(people, "upsert", {"id": 4, "name": None})
    producer.send(people, "insert", {"id": 6, "name": "last"})
    producer.flush()
    port = free_port()
    metrics.serve(port)
    start_worker(batch_max_wait_s=1.0)

    rejects = wait_for(
        lambda: len(scenario.rejects(people)) == 3 and scenario.rejects(people),
        what="three rejects",
    )
    wait_for(lambda: len(scenario.rows(people)) == 4, what="the four good rows")
    assert sorted(r["id"] for r in scenario.rows(people)) == [1, 2, 3, 6]
    by_code = {r["code"]: r for r in rejects}
    assert set(by_code) == {"undecodable", "unknown_schema", "constraint_violation"}
    assert "magic byte" in by_code["undecodable"]["reason"]
    assert str(2**31 - 7) in by_code["unknown_schema"]["reason"]
    assert "23502" in by_code["constraint_violation"]["reason"]
    assert bytes(by_code["undecodable"]["value"]) == b"garbage bytes"
    assert by_code["undecodable"]["headers"]["gk-operation"] == "insert"

    letters = dead_letters(scenario.stack, people.topic, expected=3)
    assert sorted(m.value() for m in letters)[-1] == b"garbage bytes"
    context = [dict(m.headers()) for m in letters]
    assert {c["gk-dlq-code"] for c in context} == {
        b"undecodable",
        b"unknown_schema",
        b"constraint_violation",
    }
    assert all(c["gk-dlq-offset"].isdigit() and c["gk-operation"] for c in context)

    samples = _metrics(port, people.table)
    assert samples[("gatekeeper_worker_records_applied_total", "insert")] == 4
    assert ("gatekeeper_worker_records_applied_total", "upsert") not in samples
    assert samples[("gatekeeper_worker_rejects_total", "undecodable")] == 1
    assert samples[("gatekeeper_worker_rejects_total", "constraint_violation")] == 1
    text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    assert (
        f'gatekeeper_worker_consumer_lag{{partition="1",topic="{people.topic}"}}'
        in text
    )
    assert "gatekeeper_worker_batch_records_count" in text
    assert "gatekeeper_worker_batch_seconds_bucket" in text


def test_replay_applies_fixed_rejects_once_and_keeps_the_rest_pending(
    scenario: Scenario, producer: RecordProducer, start_worker
) -> None:
    events = scenario.contract(
        "events", [field_("seq", "int"), field_("label", "string")]
    )
    scenario.register()
    start_worker()
    producer.send(events, "insert", {"seq": 1, "label": None})
    producer.send_raw(
        events.topic, None, b"\x00\x00\x00", [("gk-operation", b"insert")]
    )
    producer.send(events, "insert", {"seq": 2, "label": "fine"})
    producer.flush()
    wait_for(lambda: len(scenario.rejects(events)) == 2, what="two rejects")

    scenario.query(
        f'ALTER TABLE "{scenario.db_schema}"."{events.table}" '
        "ALTER COLUMN label DROP NOT NULL"
    )
    listed = _replay(scenario, "--table", events.table, "--dry-run")
    first = _replay(scenario, "--table", events.table)
    second = _replay(scenario, "--table", events.table)

    assert listed.returncode == 0 and "selected=2" in listed.stdout
    assert first.returncode == 1, first.stderr
    assert "replayed=1 still_rejected=1" in first.stdout
    assert "replayed=0 still_rejected=1" in second.stdout
    rows = sorted((r["seq"], r["label"]) for r in scenario.rows(events))
    assert rows == [(1, None), (2, "fine")], "the replayed insert landed exactly once"
    states = {
        r["code"]: (r["state"], r["replay_attempts"]) for r in scenario.rejects(events)
    }
    assert states == {
        "constraint_violation": ("replayed", 1),
        "undecodable": ("pending", 2),
    }


def _replay(scenario: Scenario, *args: str) -> subprocess.CompletedProcess:
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("GATEKEEPER_")}
    return subprocess.run(
        [sys.executable, "-m", "worker", "replay", *args],
        env={**inherited, **scenario.environment()},
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


def _metrics(port: int, table: str) -> dict[tuple[str, str], float]:
    """Samples labelled with the table, keyed by (name, operation or reason)."""
    text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    samples: dict[tuple[str, str], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.labels.get("table") == table:
                label = sample.labels.get("operation") or sample.labels.get("reason")
                samples[(sample.name, label)] = sample.value
    return samples
