"""gunicorn settings for the gateway, each overridable from the environment."""

from __future__ import annotations

import os

bind = (
    f"{os.environ.get('GATEKEEPER_GATEWAY_HOST', '127.0.0.1')}:"
    f"{os.environ.get('GATEKEEPER_GATEWAY_PORT', '5000')}"
)
# Two cores on the reference machine: two processes, each with threads that wait on
# Kafka acknowledgements while the other requests proceed.
workers = int(os.environ.get("GATEKEEPER_GATEWAY_WORKERS", "2"))
worker_class = "gthread"
threads = int(os.environ.get("GATEKEEPER_GATEWAY_THREADS", "8"))
timeout = 30
graceful_timeout = 20
accesslog = "-"
errorlog = "-"
loglevel = "info"


def worker_exit(server, worker) -> None:
    """Flush the process's producer so that queued records are not lost on shutdown."""
    app = getattr(worker, "wsgi", None)
    producer = getattr(app, "extensions", {}).get("gatekeeper.producer")
    if producer is not None:
        producer.close()
