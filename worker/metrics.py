"""The worker's Prometheus metrics, served on ``GATEKEEPER_WORKER_METRICS_PORT``."""

from __future__ import annotations

import logging

from prometheus_client import Counter, Gauge, Histogram, start_http_server

logger = logging.getLogger(__name__)

RECORDS_APPLIED = Counter(
    "gatekeeper_worker_records_applied",
    "Records applied to PostgreSQL, by table and operation.",
    ["table", "operation"],
)
REJECTS = Counter(
    "gatekeeper_worker_rejects",
    "Records written to gatekeeper.rejects and the dead-letter topic, by reason.",
    ["table", "reason"],
)
BATCH_RECORDS = Histogram(
    "gatekeeper_worker_batch_records",
    "Records per committed batch.",
    buckets=(1, 10, 50, 100, 250, 500, 1000, 2000, 5000, 10000),
)
BATCH_SECONDS = Histogram(
    "gatekeeper_worker_batch_seconds",
    "Seconds from a batch's decoding to its commit.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
CONSUMER_LAG = Gauge(
    "gatekeeper_worker_consumer_lag",
    "Records in the partition after the last committed offset.",
    ["topic", "partition"],
)
BATCH_SPLITS = Counter(
    "gatekeeper_worker_batch_splits",
    "Times a table's part of a batch was halved to find a record that broke it.",
    ["table"],
)
OFFSET_CONFLICTS = Counter(
    "gatekeeper_worker_offset_conflicts",
    "Batches rolled back because another worker had moved a partition.",
)
RETRIES = Counter(
    "gatekeeper_worker_retries",
    "Batches retried after a transient failure.",
)
TABLE_STOPPED = Gauge(
    "gatekeeper_worker_table_stopped",
    "1 while a table is stopped by a change that cannot be applied safely.",
    ["table"],
)


def serve(port: int) -> None:
    """Serve /metrics on the port; 0 serves nothing.

    A port already taken is logged and skipped: metrics are worth less than the
    records, and a second worker on one host would otherwise fail to start.
    """
    if port == 0:
        return
    try:
        start_http_server(port)
    except OSError as exc:
        logger.warning(
            "metrics not served port=%d error=%s; set GATEKEEPER_WORKER_METRICS_PORT "
            "to a free port",
            port,
            exc,
        )
        return
    logger.info("metrics served port=%d path=/metrics", port)
