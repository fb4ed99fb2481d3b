"""Benchmark the worker: how fast batches reach PostgreSQL, and the whole pipeline.

``python -m scripts.bench.bench_worker`` starts a private stack (PostgreSQL, Kafka,
the registry) on free ports in a temporary folder and measures, one after another:

1. applying batches of 5-column upserts (int key, int, text, double, timestamptz;
   keys drawn from 20,000, so most rows update) three ways, each batch one
   transaction: one ``INSERT ... ON CONFLICT`` per row with a savepoint each (the
   walking skeleton's way: the baseline), ``execute_values`` with one statement
   per batch, and the worker's ``Writer`` (collapse, COPY into a stage table, one
   upsert, the offset compare-and-set);
2. decoding with the worker's ``Decoder``: writer schema equal to the reader, and a
   version 1 writer resolved to a version 2 reader;
3. end to end: records produced to Kafka first, then one worker process (in this
   process, as ``python -m worker`` runs it) applies them all; from the worker's
   start to the last commit.

Everything runs on one machine, so the figures compare with each other, not with
other machines; the design page lists what a 2-core machine does.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import psycopg2
import psycopg2.extras
from confluent_kafka import Producer
from confluent_kafka.schema_registry.avro import AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext
from psycopg2 import sql

from contracts.catalogue import Contract, load_contract
from contracts.registry import BY_TOPIC, connect
from scripts import register_schemas
from scripts.stack import Stack, StackConfig
from scripts.stack.config import REPO_ROOT
from worker.config import WorkerConfig
from worker.database import Database
from worker.decoding import Decoder
from worker.evolution import Tables
from worker.records import Change, Operation, Record
from worker.schemas import Schemas
from worker.service import Worker, ensure_topics
from worker.writer import Batch, Writer

TABLE = "bench_rows"
DB_SCHEMA = "bench"
KEYS = 20_000
NOW = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)

FIELDS = [
    {"name": "id", "type": "int", "doc": "Row key."},
    {"name": "a", "type": ["null", "int"], "default": None, "doc": "A number."},
    {"name": "b", "type": ["null", "string"], "default": None, "doc": "A name."},
    {"name": "c", "type": ["null", "double"], "default": None, "doc": "A ratio."},
    {
        "name": "d",
        "type": ["null", {"type": "long", "logicalType": "timestamp-micros"}],
        "default": None,
        "doc": "A time.",
    },
]
UPSERT = (
    'INSERT INTO {} (id, a, b, c, d, "_gk_schema_version", "_gk_schema_id") '
    "VALUES {} ON CONFLICT (id) DO UPDATE SET a = EXCLUDED.a, b = EXCLUDED.b, "
    "c = EXCLUDED.c, d = EXCLUDED.d, _gk_schema_version = 1, _gk_schema_id = 1, "
    "_gk_updated_at = now()"
)


def write_contract(folder: Path, fields: Sequence[dict]) -> Contract:
    schema = {
        "type": "record",
        "name": TABLE,
        "namespace": "gatekeeper.bench",
        "doc": "Benchmark rows.",
        "primary_key": ["id"],
        "fields": list(fields),
    }
    path = folder / f"{TABLE}.avsc"
    path.write_text(json.dumps(schema))
    return load_contract(path)


def register(stack: Stack, folder: Path) -> None:
    with contextlib.redirect_stdout(sys.stderr):
        code = register_schemas.main(
            [
                "--registry-url",
                stack.config.registry_url,
                "--contracts-dir",
                str(folder),
            ]
        )
    if code != 0:
        raise SystemExit("registering the benchmark contract failed")


def row(n: int) -> dict:
    return {"id": n * 7919 % KEYS, "a": n, "b": f"name {n}", "c": n * 0.5, "d": NOW}


# --- 1. applying batches -------------------------------------------------------


def reset_table(stack: Stack, tables: Tables) -> None:
    """Empty the table and its offsets, so that every method starts alike."""
    with psycopg2.connect(stack.config.database_url) as conn, conn.cursor() as cur:
        cur.execute(sql.SQL("TRUNCATE {}").format(sql.Identifier(DB_SCHEMA, TABLE)))
        cur.execute("DELETE FROM gatekeeper.offsets WHERE topic LIKE 'bench.%'")
    conn.close()


def per_row(cur, rows: Sequence[dict]) -> None:
    statement = sql.SQL(UPSERT).format(
        sql.Identifier(DB_SCHEMA, TABLE), sql.SQL("(%s, %s, %s, %s, %s, 1, 1)")
    )
    for values in rows:
        cur.execute("SAVEPOINT row")
        cur.execute(statement, [values[k] for k in ("id", "a", "b", "c", "d")])
        cur.execute("RELEASE SAVEPOINT row")


def execute_values(cur, rows: Sequence[dict]) -> None:
    statement = sql.SQL(UPSERT).format(sql.Identifier(DB_SCHEMA, TABLE), sql.SQL("%s"))
    psycopg2.extras.execute_values(
        cur,
        statement.as_string(cur),
        [(r["id"], r["a"], r["b"], r["c"], r["d"], 1, 1) for r in rows],
        page_size=len(rows),
    )


def bench_psycopg(stack: Stack, method: Callable, count: int, batch: int) -> float:
    conn = psycopg2.connect(stack.config.database_url)
    rows = [row(n) for n in range(count)]
    started = time.perf_counter()
    for start in range(0, count, batch):
        with conn, conn.cursor() as cur:
            method(cur, rows[start : start + batch])
    elapsed = time.perf_counter() - started
    conn.close()
    return count / elapsed


def bench_writer(stack: Stack, tables: Tables, count: int, batch: int) -> float:
    state = tables.for_topic(f"activities.{TABLE}")
    db = Database(stack.config.database_url)
    writer = Writer(db, DB_SCHEMA)
    changes = [_change(n) for n in range(count)]
    tp, expected = ("bench.writer", 0), None
    started = time.perf_counter()
    for start in range(0, count, batch):
        part = changes[start : start + batch]
        offsets = {tp: start + len(part)}
        writer.commit(Batch(part, [], offsets), {TABLE: state}, {tp: expected}, _none)
        expected = start + len(part)
    elapsed = time.perf_counter() - started
    db.close()
    return count / elapsed


def _change(n: int) -> Change:
    values = row(n)
    record = Record("bench.writer", 0, n, None, None)
    return Change(
        record, TABLE, Operation.UPSERT, (values["id"],), values, tuple(values), 1, 1
    )


def _none(_: object) -> None:
    return None


# --- 2. decoding ---------------------------------------------------------------


def bench_decoding(
    stack: Stack, tables: Tables, schemas: Schemas, records: list[Record]
) -> float:
    decoder = Decoder(schemas, tables)
    tables.observe(records[:1])
    started = time.perf_counter()
    for record in records:
        decoder.decode(record)
    return len(records) / (time.perf_counter() - started)


def encoded_records(stack: Stack, contract: Contract, count: int) -> list[Record]:
    """Records as the gateway produces them: Confluent Avro and ``gk-*`` headers."""
    registry = connect(stack.config.registry_url)
    conf = {"auto.register.schemas": False, **BY_TOPIC}
    encode_key = AvroSerializer(registry, json.dumps(contract.key_schema()), conf=conf)
    encode = AvroSerializer(registry, json.dumps(contract.value_schema()), conf=conf)
    key_context = SerializationContext(contract.topic, MessageField.KEY)
    value_context = SerializationContext(contract.topic, MessageField.VALUE)
    key_of: dict[int, bytes] = {}
    records = []
    for n in range(count):
        values = row(n)
        if values["id"] not in key_of:
            key_of[values["id"]] = encode_key({"id": values["id"]}, key_context)
        value = encode(values, value_context)
        headers = (("gk-operation", b"upsert"), ("gk-columns", b"id,a,b,c,d"))
        records.append(
            Record(contract.topic, 0, n, key_of[values["id"]], value, headers)
        )
    return records


# --- 3. end to end -------------------------------------------------------------


def bench_end_to_end(
    stack: Stack, folder: Path, contract: Contract, records: list[Record]
) -> tuple[float, float]:
    """Records a second from the first commit to the last, and the start-up time."""
    ensure_topics(stack.config.kafka_bootstrap, [contract.topic], 3)
    producer = Producer({"bootstrap.servers": stack.config.kafka_bootstrap})
    for record in records:
        _produce(producer, record)
    producer.flush(60)

    config = WorkerConfig(
        kafka_bootstrap=stack.config.kafka_bootstrap,
        contracts_dir=folder,
        registry_url=stack.config.registry_url,
        database_url=stack.config.database_url,
        db_schema=DB_SCHEMA,
        group_id="bench-end-to-end",
        metrics_port=0,
    )
    worker = Worker(config)
    thread = threading.Thread(target=worker.run, daemon=True)
    started = time.perf_counter()
    thread.start()
    _await_offsets(stack, contract.topic, 1)
    first_commit = time.perf_counter()
    _await_offsets(stack, contract.topic, len(records))
    finished = time.perf_counter()
    worker.stop()
    thread.join(30)
    steady = len(records) / (finished - first_commit)
    return steady, first_commit - started


def _produce(producer, record: Record) -> None:
    while True:
        try:
            producer.produce(
                record.topic,
                key=record.key,
                value=record.value,
                headers=list(record.headers),
            )
            return
        except BufferError:
            producer.poll(0.1)


def _await_offsets(stack: Stack, topic: str, total: int) -> None:
    conn = psycopg2.connect(stack.config.database_url)
    conn.autocommit = True
    deadline = time.monotonic() + 600
    with conn.cursor() as cur:
        while time.monotonic() < deadline:
            cur.execute(
                "SELECT coalesce(sum(next_offset), 0) FROM gatekeeper.offsets "
                "WHERE topic = %s",
                (topic,),
            )
            if cur.fetchone()[0] >= total:
                break
            time.sleep(0.05)
    conn.close()


# --- report --------------------------------------------------------------------


def report(figures: list[tuple[str, str, float]], baseline: float) -> str:
    lines = [f"{'what':<52} {'records/s':>11}  vs baseline"]
    for section, name, rate in figures:
        if not rate:
            lines.append(name)
            continue
        ratio = f"{rate / baseline:6.1f}x" if section == "apply" else "      -"
        lines.append(f"{name:<52} {rate:>11,.0f}  {ratio}")
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m scripts.bench.bench_worker",
        description="Benchmark the worker on a private stack.",
    )
    parser.add_argument(
        "--rows", type=int, default=40_000, help="rows per apply method (40,000)"
    )
    parser.add_argument(
        "--records", type=int, default=100_000, help="records end to end (100,000)"
    )
    parser.add_argument(
        "--repeat", type=int, default=3, help="runs per apply method, best kept (3)"
    )
    return parser.parse_args(argv)


def bench_apply(
    stack: Stack, tables: Tables, args: argparse.Namespace, batch: int
) -> list[tuple[str, str, float]]:
    """The three apply methods, interleaved, best of ``--repeat`` each.

    Commits wait for the disk, which other processes share: interleaving and
    keeping each method's best run compares the methods, not the neighbours.
    """
    methods = {
        f"per-row INSERT, savepoint each, batch {batch}": lambda: bench_psycopg(
            stack, per_row, max(args.rows // 10, batch), batch
        ),
        f"execute_values, batch {batch}": lambda: bench_psycopg(
            stack, execute_values, args.rows, batch
        ),
        f"worker Writer (COPY + upsert), batch {batch}": lambda: bench_writer(
            stack, tables, args.rows, batch
        ),
    }
    best = dict.fromkeys(methods, 0.0)
    for _ in range(args.repeat):
        for name, measure in methods.items():
            reset_table(stack, tables)
            best[name] = max(best[name], measure())
    return [("apply", name, rate) for name, rate in best.items()]


def run(stack: Stack, folder: Path, args: argparse.Namespace) -> list:
    contract = write_contract(folder, FIELDS)
    register(stack, folder)
    schemas = Schemas(connect(stack.config.registry_url))
    db = Database(stack.config.database_url)
    tables = Tables(db, schemas, {TABLE: contract}, DB_SCHEMA)
    tables.prepare()

    figures = []
    for batch in (500, 2000):
        figures += bench_apply(stack, tables, args, batch)

    records = encoded_records(stack, contract, args.records)
    rate = bench_decoding(stack, tables, schemas, records[:20_000])
    figures.append(("decode", "Decoder, writer = reader", rate))
    v2 = [
        *FIELDS,
        {"name": "e", "type": ["null", "string"], "default": None, "doc": "e"},
    ]
    write_contract(folder, v2)
    register(stack, folder)
    tables.evolve(tables.for_topic(contract.topic))
    rate = bench_decoding(stack, tables, schemas, records[:20_000])
    figures.append(("decode", "Decoder, version 1 read as version 2", rate))

    reset_table(stack, tables)
    rate, start_up = bench_end_to_end(stack, folder, contract, records)
    name = f"end to end from the first commit, {len(records)} records"
    figures.append(("e2e", name, rate))
    figures.append(("e2e", f"(worker start to first commit: {start_up:.1f} s)", 0.0))
    db.close()
    return figures


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    folder = Path(tempfile.mkdtemp(prefix="gatekeeper-bench-"))
    folder.chmod(0o755)
    stack = Stack(StackConfig(folder / "stack", REPO_ROOT / ".cache").with_free_ports())
    contracts = folder / "contracts"
    contracts.mkdir()
    try:
        print("starting a private stack ...", file=sys.stderr)
        (folder / "stack").mkdir()
        (folder / "stack").chmod(0o755)
        stack.start_servers()
        figures = run(stack, contracts, args)
    finally:
        stack.stop()
        shutil.rmtree(folder, ignore_errors=True)

    baseline = next(rate for section, _, rate in figures if section == "apply")
    print(report(figures, baseline))
    return 0


if __name__ == "__main__":
    sys.exit(main())
