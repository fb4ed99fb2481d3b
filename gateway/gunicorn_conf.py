"""gunicorn settings for the gateway, each overridable from the environment.

``gunicorn -c gateway/gunicorn_conf.py 'gateway.app:create_app()'``. The app is
not preloaded: each worker process builds its own Kafka producer, schema cache
and database pool after the fork, and flushes its producer when it exits.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from gateway.logs import ACCESS_LOG_FORMAT, logging_config

# prometheus_client chooses per-process files when this is set before it is first
# imported, which happens in the worker processes, after this file ran.
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
_own_metrics_dir = not os.environ.get(MULTIPROC_ENV)
if _own_metrics_dir:
    os.environ[MULTIPROC_ENV] = tempfile.mkdtemp(prefix="gatekeeper-metrics-")

bind = (
    f"{os.environ.get('GATEKEEPER_GATEWAY_HOST', '127.0.0.1')}:"
    f"{os.environ.get('GATEKEEPER_GATEWAY_PORT', '5000')}"
)
# Two cores on the reference machine: two processes, each with threads that wait on
# Kafka acknowledgements while the other requests proceed.
workers = int(os.environ.get("GATEKEEPER_GATEWAY_WORKERS", "2"))
worker_class = "gthread"
threads = int(os.environ.get("GATEKEEPER_GATEWAY_THREADS", "8"))
# Longer than a request's longest wait: Kafka's delivery timeout (10 s default)
# plus the registry's (about 6 s).
timeout = 30
graceful_timeout = 20
keepalive = 5

accesslog = "-"
errorlog = "-"
loglevel = "info"
access_log_format = ACCESS_LOG_FORMAT
logconfig_dict = logging_config("INFO")


def on_starting(server) -> None:
    """Start from empty metric files: samples of a previous run must not add up."""
    directory = Path(os.environ[MULTIPROC_ENV])
    directory.mkdir(parents=True, exist_ok=True)
    for stale in directory.glob("*.db"):
        stale.unlink()


def child_exit(server, worker) -> None:
    """Drop the exited process's live samples; its counters stay counted."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def worker_exit(server, worker) -> None:
    """Flush the process's producer so that queued records are not lost on shutdown."""
    from gateway.app import close_app

    app = getattr(worker, "wsgi", None)
    if app is not None:
        close_app(app)


def on_exit(server) -> None:
    if _own_metrics_dir:
        shutil.rmtree(os.environ[MULTIPROC_ENV], ignore_errors=True)
