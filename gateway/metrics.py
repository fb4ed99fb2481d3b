"""Prometheus metrics of the gateway, correct under several gunicorn processes.

With ``PROMETHEUS_MULTIPROC_DIR`` set (gateway/gunicorn_conf.py sets it before
the worker processes start), every process writes its samples to files there
and ``/metrics`` adds up all processes' files; without it (one process, tests)
the process's own registry is served.

Labels come from closed sets only: a route's pattern, an HTTP status, an error
code of ``gateway.validation`` and a table that has a contract. A table name a
client made up is counted as ``-``, so no client can grow the label space.
"""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
UNKNOWN_TABLE = "-"

REQUESTS = Counter(
    "gatekeeper_gateway_requests",
    "HTTP requests answered, by method, route pattern and status.",
    ["method", "route", "status"],
)

ACTIVITIES = Counter(
    "gatekeeper_gateway_activities",
    "Activities by outcome (accepted, validated in a dry run, rejected), table and "
    "the code of the rule broken (- for accepted ones).",
    ["outcome", "table", "code"],
)

PRODUCE_SECONDS = Histogram(
    "gatekeeper_gateway_produce_seconds",
    "Seconds from handing a request's records to Kafka until the last "
    "acknowledgement or failure.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)


def exposition() -> tuple[bytes, str]:
    """The text ``/metrics`` serves, and its content type."""
    if os.environ.get(MULTIPROC_ENV):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
