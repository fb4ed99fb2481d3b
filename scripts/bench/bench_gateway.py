"""Benchmark the gateway under gunicorn against a bare Flask endpoint, same settings.

``python -m scripts.bench.bench_gateway`` starts a private stack (PostgreSQL,
Kafka, the registry) on free ports in a temporary folder, registers the packaged
contracts, then measures, one after the other:

1. over HTTP, each under ``gunicorn -c gateway/gunicorn_conf.py``:
   a bare Flask JSON endpoint (the baseline), the gateway with one activity per
   request, with 100 per request, and a dry run with 100 per request;
2. serialization alone: confluent-kafka's ``AvroSerializer`` against fastavro's
   ``schemaless_writer`` behind the 5-byte Confluent header, on the same datum.

The load comes from ``wrk`` when it is installed (Debian package ``wrk``), else
from a bounded pool of Python threads; either runs on the same machine as the
servers, so the figures are comparable with each other, not with other machines.
Every loop is bounded by ``--duration`` and stops by itself; only loopback
addresses are used.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import decimal
import io
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
from confluent_kafka.schema_registry import Schema
from confluent_kafka.schema_registry.avro import AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext
from fastavro import parse_schema, schemaless_writer
from flask import Flask, jsonify, request

from contracts.catalogue import SCHEMA_DIR, Contract, load_catalogue
from contracts.registry import BY_TOPIC, connect
from gateway.auth import new_token
from scripts import register_schemas
from scripts.stack import Stack, StackConfig
from scripts.stack.config import HOST, REPO_ROOT, free_port

GUNICORN_CONFIG = REPO_ROOT / "gateway" / "gunicorn_conf.py"
SERIALIZATIONS = 20_000
# Rounds of each encoder, alternating; the best counts, since the servers of the
# stack share the machine and only ever slow a round down.
ROUNDS = 5
# Seconds of load before each measured scenario: the JVMs of Kafka and the
# registry compile their hot paths during the first seconds.
WARM_UP_S = 5.0


@dataclass(frozen=True)
class Result:
    name: str
    requests_per_s: float
    activities_per_request: int
    p50_ms: float | None
    p99_ms: float | None
    errors: int

    @property
    def activities_per_s(self) -> float:
        return self.requests_per_s * self.activities_per_request


def baseline_app() -> Flask:
    """The baseline: parse a JSON body, answer a small JSON document."""
    app = Flask(__name__, static_folder=None)

    @app.post("/echo")
    def echo():
        body = request.get_json()
        return jsonify(received=len(body.get("activities", ()))), 202

    return app


# --- serialization ---------------------------------------------------------------


def orders_datum() -> dict[str, Any]:
    """An ``orders`` row as the gateway's validation builds it."""
    return {
        "order_id": 1001,
        "customer_id": "1b4e28ba-2fa1-11d2-883f-0016d3cca427",
        "status": "PAID",
        "total": decimal.Decimal("129.90"),
        "currency": "EUR",
        "placed_at": datetime.datetime(2026, 12, 1, 9, 30, tzinfo=datetime.UTC),
        "ships_on": None,
        "is_gift": False,
        "note": "leave at the door",
    }


def bench_serialization(registry_url: str, contract: Contract) -> dict[str, float]:
    """Records per second of each encoder; both must write identical bytes."""
    client = connect(registry_url)
    schema_text = json.dumps(contract.value_schema())
    registered = client.lookup_schema(
        contract.value_subject, Schema(schema_text, "AVRO")
    )
    serializer = AvroSerializer(
        client,
        schema_text,
        conf={"auto.register.schemas": False, "use.latest.version": False, **BY_TOPIC},
    )
    context = SerializationContext(contract.topic, MessageField.VALUE)
    parsed = parse_schema(contract.value_schema())
    header = struct.pack(">bI", 0, registered.schema_id)

    def with_fastavro(datum: dict[str, Any]) -> bytes:
        buffer = io.BytesIO()
        buffer.write(header)
        schemaless_writer(buffer, parsed, datum)
        return buffer.getvalue()

    datum = orders_datum()
    if serializer(datum, context) != with_fastavro(datum):
        raise SystemExit("the two encoders disagree; the comparison is void")

    encoders = {
        "confluent AvroSerializer": lambda: serializer(datum, context),
        "fastavro schemaless_writer + header": lambda: with_fastavro(datum),
    }
    best = dict.fromkeys(encoders, 0.0)
    for _ in range(ROUNDS):
        for name, encode in encoders.items():
            best[name] = max(best[name], _rate(encode))
    return best


def _rate(encode: Callable[[], bytes]) -> float:
    started = time.perf_counter()
    for _ in range(SERIALIZATIONS):
        encode()
    return SERIALIZATIONS / (time.perf_counter() - started)


# --- HTTP ------------------------------------------------------------------------


def activities_body(count: int) -> bytes:
    """``count`` inserts into table100, the table of the original request."""
    activities = [
        {
            "operation": "upsert",
            "table": "table100",
            "column": [
                {"name": "col101", "type": "INTEGER", "value": 1000 + i},
                {"name": "col102", "type": "INTEGER", "value": i},
                {"name": "col103", "type": "INTEGER", "value": 2 * i},
            ],
        }
        for i in range(count)
    ]
    return json.dumps({"activities": activities}).encode()


class Gunicorn:
    """One gunicorn process under the gateway's configuration file."""

    def __init__(self, app: str, environment: dict[str, str], log: Path) -> None:
        self.port = free_port()
        self.url = f"http://{HOST}:{self.port}"
        env = {**environment, "GATEKEEPER_GATEWAY_PORT": str(self.port)}
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        gunicorn = Path(sys.executable).with_name("gunicorn")
        with log.open("wb") as out:
            self.process = subprocess.Popen(
                [str(gunicorn), "-c", str(GUNICORN_CONFIG), app],
                cwd=REPO_ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        self._await(log)

    def _await(self, log: Path) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and self.process.poll() is None:
            try:
                requests.get(f"{self.url}/healthz", timeout=1)
                return
            except requests.RequestException:
                time.sleep(0.2)
        self.stop()
        raise SystemExit(f"gunicorn did not start; see {log}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)


def load(
    url: str,
    body: bytes,
    headers: dict[str, str],
    duration: float,
    connections: int,
    folder: Path,
) -> tuple[float, float | None, float | None, int]:
    """Requests per second, p50 and p99 latency in ms, and failed requests."""
    if shutil.which("wrk"):
        return _load_with_wrk(url, body, headers, duration, connections, folder)
    return _load_with_threads(url, body, headers, duration, connections)


_WRK_SCRIPT = """
wrk.method = "POST"
local f = io.open("{body}", "rb")
wrk.body = f:read("*a")
f:close()
{headers}
"""


def _load_with_wrk(
    url: str,
    body: bytes,
    headers: dict[str, str],
    duration: float,
    connections: int,
    folder: Path,
) -> tuple[float, float | None, float | None, int]:
    body_file = folder / f"body-{len(body)}.json"
    body_file.write_bytes(body)
    lines = "\n".join(f'wrk.headers["{k}"] = "{v}"' for k, v in headers.items())
    script = folder / "post.lua"
    script.write_text(_WRK_SCRIPT.format(body=body_file, headers=lines))

    threads = max(1, min(2, connections))
    output = subprocess.run(
        [
            "wrk",
            f"-t{threads}",
            f"-c{connections}",
            f"-d{int(duration)}s",
            "--latency",
            "-s",
            str(script),
            url,
        ],
        capture_output=True,
        text=True,
        timeout=duration + 60,
        check=True,
    ).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", output)[1])
    failed = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    errors = re.search(r"Socket errors:.*?(\d+).*?(\d+).*?(\d+).*?(\d+)", output)
    count = int(failed[1]) if failed else 0
    count += sum(int(n) for n in errors.groups()) if errors else 0
    return rate, _wrk_percentile(output, "50%"), _wrk_percentile(output, "99%"), count


def _wrk_percentile(output: str, label: str) -> float | None:
    found = re.search(rf"{re.escape(label)}\s+([\d.]+)(us|ms|s)\b", output)
    if found is None:
        return None
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[found[2]]
    return float(found[1]) * scale


def _load_with_threads(
    url: str, body: bytes, headers: dict[str, str], duration: float, connections: int
) -> tuple[float, float | None, float | None, int]:
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    deadline = time.monotonic() + duration

    def worker() -> None:
        with requests.Session() as session:
            while time.monotonic() < deadline:
                started = time.perf_counter()
                response = session.post(url, data=body, headers=headers, timeout=30)
                elapsed = (time.perf_counter() - started) * 1000
                with lock:
                    latencies.append(elapsed)
                    errors[0] += response.status_code >= 300

    threads = [threading.Thread(target=worker) for _ in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    latencies.sort()
    if not latencies:
        return 0.0, None, None, errors[0]
    p50 = latencies[len(latencies) // 2]
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    return len(latencies) / duration, p50, p99, errors[0]


# --- the run ---------------------------------------------------------------------


def run_http(stack: Stack, args: argparse.Namespace, folder: Path) -> list[Result]:
    """The baseline, then the gateway, each in its own gunicorn."""
    token = new_token()
    keys = {
        "keys": [
            {"name": "bench", "token": token, "tables": ["*"], "operations": ["*"]}
        ]
    }
    environment = {
        **{k: v for k, v in os.environ.items() if not k.startswith("GATEKEEPER_")},
        **stack.config.client_environment(),
        "GATEKEEPER_API_KEYS": json.dumps(keys),
    }
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}
    scenarios = [
        ("bare Flask JSON endpoint (baseline)", "baseline", "/echo", 1),
        ("gateway, 1 activity per request", "gateway", "/activities", 1),
        ("gateway, 100 activities per request", "gateway", "/activities", 100),
        (
            "gateway dry run, 100 per request",
            "gateway",
            "/activities?dry_run=true",
            100,
        ),
    ]
    apps = {
        "baseline": "scripts.bench.bench_gateway:baseline_app()",
        "gateway": "gateway.app:create_app()",
    }

    results = []
    for kind, app in apps.items():
        server = Gunicorn(app, environment, folder / f"{kind}.log")
        try:
            for name, which, path, count in scenarios:
                if which != kind:
                    continue
                body = activities_body(count)
                warm = min(WARM_UP_S, args.duration)
                load(server.url + path, body, headers, warm, args.connections, folder)
                rate, p50, p99, errors = load(
                    server.url + path,
                    body,
                    headers,
                    args.duration,
                    args.connections,
                    folder,
                )
                results.append(Result(name, rate, count, p50, p99, errors))
                print(f"  measured: {name}", file=sys.stderr)
        finally:
            server.stop()
    return results


def report(serialization: dict[str, float], results: list[Result], tool: str) -> str:
    load_1m, load_5m, _ = os.getloadavg()
    lines = [
        f"Machine: {os.cpu_count()} cores, load average {load_1m:.1f} (1 min) "
        f"{load_5m:.1f} (5 min) at the end; other work on it lowers every figure.",
        "",
        "Serialization of one orders record (9 fields), records/s:",
    ]
    for name, rate in serialization.items():
        lines.append(f"  {name:<40} {rate:>12,.0f}")
    fastest = max(serialization, key=serialization.get)
    slowest = min(serialization, key=serialization.get)
    ratio = serialization[fastest] / serialization[slowest]
    lines.append(f"  fastest: {fastest} ({ratio:.2f}x)")

    lines.append(f"\nHTTP under gunicorn (2 workers x 8 threads), load from {tool}:")
    lines.append(
        f"  {'scenario':<40} {'requests/s':>11} {'activities/s':>13} "
        f"{'p50 ms':>8} {'p99 ms':>8} {'failed':>7}"
    )
    for r in results:
        p50 = f"{r.p50_ms:.1f}" if r.p50_ms is not None else "-"
        p99 = f"{r.p99_ms:.1f}" if r.p99_ms is not None else "-"
        lines.append(
            f"  {r.name:<40} {r.requests_per_s:>11,.0f} {r.activities_per_s:>13,.0f} "
            f"{p50:>8} {p99:>8} {r.errors:>7}"
        )
    baseline = results[0].requests_per_s if results else 0
    if baseline:
        lines.append("\n  requests/s relative to the baseline:")
        for r in results[1:]:
            lines.append(f"  {r.name:<40} {r.requests_per_s / baseline:>10.0%}")
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m scripts.bench.bench_gateway",
        description="Measure the gateway under gunicorn against a bare Flask baseline.",
    )
    parser.add_argument(
        "--duration",
        type=float,
        default=10.0,
        help="seconds of load per scenario (default 10)",
    )
    parser.add_argument(
        "--connections",
        type=int,
        default=16,
        help="concurrent connections (default 16)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not 1 <= args.duration <= 120 or not 1 <= args.connections <= 256:
        raise SystemExit("--duration must be 1-120 s and --connections 1-256")

    folder = Path(tempfile.mkdtemp(prefix="gatekeeper-bench-"))
    folder.chmod(0o755)
    stack = Stack(StackConfig(folder, REPO_ROOT / ".cache").with_free_ports())
    try:
        print("starting a private stack ...", file=sys.stderr)
        stack.start_servers()
        registry_url = stack.config.registry_url
        with contextlib.redirect_stdout(sys.stderr):
            registered = register_schemas.main(["--registry-url", registry_url])
        if registered != 0:
            raise SystemExit("registering the contracts failed")

        results = run_http(stack, args, folder)
        # Last, when the servers are warm and idle and take no CPU from it.
        orders = load_catalogue(SCHEMA_DIR)["orders"]
        serialization = bench_serialization(registry_url, orders)
    finally:
        stack.stop()
        shutil.rmtree(folder, ignore_errors=True)

    tool = "wrk" if shutil.which("wrk") else "Python threads"
    print(report(serialization, results, tool))
    return 0


if __name__ == "__main__":
    sys.exit(main())
