"""Exactly once: offsets move with the rows, by compare-and-set; transient failures
are retried; workers killed at random leave exactly the expected state."""

from __future__ import annotations

import random
import threading
import time

import pytest
from prometheus_client import REGISTRY
from psycopg2 import sql

from contracts.catalogue import Contract, load_catalogue
from contracts.registry import connect
from tests.plugins.worker import RecordProducer, Scenario, field_, wait_for
from worker.database import Database
from worker.decoding import Decoder
from worker.errors import OffsetConflictError
from worker.evolution import Tables
from worker.records import Record
from worker.schemas import Schemas
from worker.service import application_name
from worker.writer import Batch, Writer

pytestmark = pytest.mark.stack


def _people(scenario: Scenario) -> Contract:
    return scenario.contract(
        "people", [field_("id", "int"), field_("name", "string")], ["id"]
    )


def test_a_writer_whose_offset_moved_rolls_back_instead_of_overwriting(
    scenario: Scenario, producer: RecordProducer, start_worker
) -> None:
    people = _people(scenario)
    scenario.register()
    start_worker()
    producer.send(people, "insert", {"id": 1, "name": "applied"})
    producer.flush()
    wait_for(lambda: scenario.rows(people), what="the applied row")
    [stored] = scenario.query(
        "SELECT partition, next_offset FROM gatekeeper.offsets WHERE topic = %s",
        (people.topic,),
    )
    tp = (people.topic, stored["partition"])

    db = Database(scenario.stack.config.database_url)
    schemas = Schemas(connect(scenario.stack.config.registry_url))
    tables = Tables(
        db, schemas, load_catalogue(scenario.contracts_dir), scenario.db_schema
    )
    tables.prepare()
    stale = Record(
        people.topic,
        tp[1],
        0,
        producer.encode_key(people, {"id": 1}),
        producer.encode(people, {"id": 1, "name": "stale"}),
        (("gk-operation", b"upsert"),),
    )
    change = Decoder(schemas, tables).decode(stale)
    writer = Writer(db, scenario.db_schema)
    batch = Batch([change], [], {tp: 1})

    for believed in (None, 0):
        with pytest.raises(OffsetConflictError):
            writer.commit(batch, tables.by_table, {tp: believed}, lambda _: None)
    assert scenario.rows(people)[0]["name"] == "applied"

    current = stored["next_offset"]
    writer.commit(
        Batch([change], [], {tp: current + 1}),
        tables.by_table,
        {tp: current},
        lambda _: None,
    )
    assert scenario.rows(people)[0]["name"] == "stale"
    db.close()


def test_a_lost_database_connection_is_retried_and_nothing_is_rejected(
    scenario: Scenario, producer: RecordProducer, start_worker
) -> None:
    people = _people(scenario)
    scenario.register()
    running = start_worker()
    for n in range(50):
        producer.send(people, "insert", {"id": n, "name": f"n{n}"})
    producer.flush()
    wait_for(lambda: len(scenario.rows(people)) == 50, what="the first 50 rows")
    retries = REGISTRY.get_sample_value("gatekeeper_worker_retries_total") or 0

    [killed] = scenario.query(
        "SELECT count(pg_terminate_backend(pid)) AS n FROM pg_stat_activity "
        "WHERE application_name = %s",
        (application_name(running.worker.config),),
    )
    for n in range(50, 100):
        producer.send(people, "insert", {"id": n, "name": f"n{n}"})
    producer.flush()

    wait_for(lambda: len(scenario.rows(people)) == 100, what="all 100 rows")
    assert killed["n"] == 1
    assert scenario.rejects(people) == []
    assert REGISTRY.get_sample_value("gatekeeper_worker_retries_total") > retries


# --- the crash test -------------------------------------------------------------

KEYS = 200
KEYED_RECORDS = 20_000
APPENDED_RECORDS = 5_000
KILLS = 10
CHUNK = 500


def _workload(rng: random.Random) -> list[tuple[str, dict, list[str]]]:
    """Keyed activities with sequence numbers: (operation, values, columns)."""
    activities = []
    for seq in range(KEYED_RECORDS):
        id_, draw = rng.randrange(KEYS), rng.random()
        if draw < 0.35:
            values = {"id": id_, "seq": seq, "a": rng.randrange(1000), "b": f"i{seq}"}
            activities.append(("insert", values, list(values)))
        elif draw < 0.55:
            values = {"id": id_, "seq": seq, "a": rng.randrange(1000)}
            activities.append(("upsert", values, list(values)))
        elif draw < 0.9:
            values = {"id": id_, "seq": seq, "b": rng.choice([None, f"u{seq}"])}
            activities.append(("update", values, list(values)))
        else:
            activities.append(("delete", {"id": id_}, ["id"]))
    return activities


def _expected(activities: list[tuple[str, dict, list[str]]]) -> tuple[dict, int]:
    """The final rows and the number of updates that found no row, one by one."""
    rows: dict[int, dict] = {}
    missing = 0
    for operation, values, _ in activities:
        id_ = values["id"]
        if operation == "delete":
            rows.pop(id_, None)
        elif operation == "update" and id_ not in rows:
            missing += 1
        elif operation == "update":
            rows[id_].update(values)
        else:
            rows[id_] = {
                **rows.get(id_, dict.fromkeys(("id", "seq", "a", "b"))),
                **values,
            }
    return rows, missing


def test_workers_killed_at_random_leave_exactly_the_expected_state(
    scenario: Scenario, producer: RecordProducer, spawn_worker
) -> None:
    keyed = scenario.contract(
        "crash",
        [
            field_("id", "int"),
            field_("seq", "long"),
            field_("a", ["null", "int"]),
            field_("b", ["null", "string"]),
        ],
        ["id"],
    )
    log = scenario.contract("crash_log", [field_("seq", "long"), field_("id", "int")])
    scenario.register()
    scenario.create_topics(keyed, log)
    rng = random.Random(4)
    activities = _workload(rng)
    expected_rows, expected_missing = _expected(activities)

    workers = [
        spawn_worker(
            f"crash-{n}",
            GATEKEEPER_WORKER_INSTANCE_ID=f"crash-{n}",
            GATEKEEPER_WORKER_BATCH_MAX_WAIT_MS="100",
            GATEKEEPER_WORKER_BATCH_MAX_RECORDS="500",
        )
        for n in range(2)
    ]
    sending = threading.Thread(target=_produce, args=(producer, keyed, log, activities))
    sending.start()
    total = KEYED_RECORDS + APPENDED_RECORDS
    for _ in range(KILLS):
        victim = rng.choice(workers)
        wait_for(
            lambda v=victim: (
                v.committed_since_start() or _applied(scenario, keyed, log) == total
            ),
            60,
            "a batch committed since the last restart",
        )
        time.sleep(rng.uniform(0.0, 0.3))
        victim.kill()
        victim.start()
    sending.join()

    wait_for(lambda: _applied(scenario, keyed, log) == total, 120, "every offset")
    assert [worker.terminate() for worker in workers] == [0, 0]

    rows = {
        r["id"]: {k: r[k] for k in ("id", "seq", "a", "b")}
        for r in scenario.rows(keyed)
    }
    assert rows == expected_rows
    [appended] = scenario.query(_count_sql(scenario, log), ())
    assert (appended["n"], appended["distinct_seq"]) == (APPENDED_RECORDS,) * 2
    codes = [r["code"] for r in scenario.rejects(keyed)]
    assert codes == ["missing_row"] * expected_missing
    assert scenario.rejects(log) == []
    for worker in workers:
        text = worker.log.read_text()
        assert "batch committed" in text and "left the consumer group" in text


def _produce(producer, keyed, log, activities) -> None:
    """Send in chunks, paced, so that the kills land while records flow."""
    appends = iter(range(APPENDED_RECORDS))
    for start in range(0, len(activities), CHUNK):
        for operation, values, columns in activities[start : start + CHUNK]:
            producer.send(keyed, operation, values, columns=columns)
        for seq in list(zip(range(CHUNK // 4), appends, strict=False)):
            producer.send(log, "insert", {"seq": seq[1], "id": seq[0]})
        producer.flush()
        time.sleep(0.25)


def _applied(scenario: Scenario, *contracts: Contract) -> int:
    """Records applied or rejected so far: the sum of the stored next offsets."""
    if not scenario.query("SELECT to_regclass('gatekeeper.offsets') AS t")[0]["t"]:
        return 0
    [row] = scenario.query(
        "SELECT coalesce(sum(next_offset), 0) AS n FROM gatekeeper.offsets "
        "WHERE topic = ANY(%s)",
        ([c.topic for c in contracts],),
    )
    return row["n"]


def _count_sql(scenario: Scenario, contract: Contract) -> sql.Composed:
    return sql.SQL(
        "SELECT count(*) AS n, count(DISTINCT seq) AS distinct_seq FROM {}"
    ).format(sql.Identifier(scenario.db_schema, contract.table))
