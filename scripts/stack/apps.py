"""The project's own services on the local stack: the gateway and the worker."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import requests

from gateway import auth
from scripts.stack.config import HOST, REPO_ROOT, StackConfig
from scripts.stack.processes import ManagedProcess

GATEWAY = "gateway"
WORKER = "worker"
GUNICORN_CONFIG = REPO_ROOT / "gateway" / "gunicorn_conf.py"
API_KEYS_FILE = "api-keys.json"
API_KEY_FILE = "api-key"


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
    """Serve the gateway under gunicorn, configured by ``gateway/gunicorn_conf.py``.

    Unless ``extra`` names keys of its own, the gateway accepts the stack's local
    API key (see ``local_api_key``).
    """
    managed = process(config, GATEWAY)
    if managed.pid() is not None:
        return

    keys = {"GATEKEEPER_API_KEYS_FILE": str(ensure_local_api_key(config)[1])}
    if extra and ({"GATEKEEPER_API_KEYS", "GATEKEEPER_API_KEYS_FILE"} & set(extra)):
        keys = {}
    gunicorn = Path(sys.executable).with_name("gunicorn")
    argv = [str(gunicorn), "--config", str(GUNICORN_CONFIG), "gateway.app:create_app()"]
    managed.start(argv, _environment(config, {**keys, **(extra or {})}), cwd=REPO_ROOT)


def ensure_local_api_key(config: StackConfig) -> tuple[str, Path]:
    """The stack's API key, made on first use, and the keys file the gateway reads.

    ``<state>/api-key`` holds the token, readable by its owner only; the keys file
    beside it holds only the token's SHA-256, granting every table and operation.
    A key made once is kept, so it survives ``make down`` and ``make up``.
    """
    token_path = config.state_dir / API_KEY_FILE
    keys_path = config.state_dir / API_KEYS_FILE
    config.state_dir.mkdir(parents=True, exist_ok=True)
    if token_path.exists() and keys_path.exists():
        return token_path.read_text(encoding="utf-8").strip(), keys_path

    token = auth.new_token()
    descriptor = os.open(token_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as out:
        out.write(token + "\n")
    keys_path.write_text(auth.local_keys_document(token), encoding="utf-8")
    return token, keys_path


def local_api_key(config: StackConfig) -> str:
    """The token clients of the local stack send as ``Authorization: Bearer``."""
    return ensure_local_api_key(config)[0]


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
