"""The project's own services on the local stack: the gateway and the worker."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import requests

from scripts.stack.config import HOST, REPO_ROOT, StackConfig
from scripts.stack.processes import ManagedProcess

GATEWAY = "gateway"
WORKER = "worker"
GUNICORN_CONFIG = REPO_ROOT / "gateway" / "gunicorn_conf.py"


def process(config: StackConfig, name: str) -> ManagedProcess:
    return ManagedProcess(name, config.run_dir, config.logs_dir)


def _environment(config: StackConfig, extra: dict[str, str]) -> dict[str, str]:
    inherited = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("GATEKEEPER_")
    }
    return {**inherited, **config.client_environment(), **extra}


def start_gateway(config: StackConfig, extra: dict[str, str] | None = None) -> None:
    """Serve the gateway under gunicorn, configured by ``gateway/gunicorn_conf.py``."""
    managed = process(config, GATEWAY)
    if managed.pid() is not None:
        return

    gunicorn = Path(sys.executable).with_name("gunicorn")
    argv = [str(gunicorn), "--config", str(GUNICORN_CONFIG), "gateway.app:create_app()"]
    managed.start(argv, _environment(config, extra or {}), cwd=REPO_ROOT)


def start_worker(config: StackConfig, extra: dict[str, str] | None = None) -> None:
    managed = process(config, WORKER)
    if managed.pid() is not None:
        return

    argv = [sys.executable, "-m", "worker"]
    managed.start(argv, _environment(config, extra or {}), cwd=REPO_ROOT)


def gateway_ready(config: StackConfig) -> bool:
    try:
        response = requests.get(
            f"http://{HOST}:{config.gateway_port}/healthz", timeout=2
        )
    except requests.RequestException:
        return False
    return response.status_code == 200
