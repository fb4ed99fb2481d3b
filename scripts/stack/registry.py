"""Apicurio Registry 3, used through its Confluent-compatible API.

Its SQL storage lives in the stack's PostgreSQL, in a database of its own, so schemas
keep their ids across restarts of the registry.
"""

from __future__ import annotations

import logging
import os

import requests

from scripts.stack import downloads
from scripts.stack.config import (
    DB_PASSWORD,
    DB_USER,
    HOST,
    REGISTRY_DB_NAME,
    StackConfig,
)
from scripts.stack.processes import ManagedProcess

logger = logging.getLogger(__name__)

NAME = "registry"
HEAP = "-Xmx512m"


def process(config: StackConfig) -> ManagedProcess:
    return ManagedProcess(NAME, config.run_dir, config.logs_dir)


def _environment(config: StackConfig) -> dict[str, str]:
    jdbc = f"jdbc:postgresql://{HOST}:{config.postgres_port}/{REGISTRY_DB_NAME}"
    return {
        **os.environ,
        "APICURIO_STORAGE_KIND": "sql",
        "APICURIO_STORAGE_SQL_KIND": "postgresql",
        "APICURIO_DATASOURCE_URL": jdbc,
        "APICURIO_DATASOURCE_USERNAME": DB_USER,
        "APICURIO_DATASOURCE_PASSWORD": DB_PASSWORD,
        "QUARKUS_HTTP_HOST": HOST,
        "QUARKUS_HTTP_PORT": str(config.registry_port),
        # The management interface (health, metrics) is built in; left alone it
        # claims port 9000 on every address and two stacks would collide on it.
        "QUARKUS_MANAGEMENT_HOST": HOST,
        "QUARKUS_MANAGEMENT_PORT": str(config.registry_management_port),
    }


def start(config: StackConfig) -> None:
    """Start the registry unless it already runs; PostgreSQL must be up first."""
    managed = process(config)
    if managed.pid() is not None:
        return

    home = downloads.registry_home(config.cache_dir)
    java = downloads.java_home(downloads.REGISTRY_MIN_JAVA) / "bin" / "java"
    argv = [str(java), HEAP, "-jar", str(home / "quarkus-run.jar")]
    managed.start(argv, env=_environment(config), cwd=home)


def is_ready(config: StackConfig) -> bool:
    """True once the Confluent-compatible API lists subjects."""
    try:
        response = requests.get(f"{config.registry_url}/subjects", timeout=2)
    except requests.RequestException:
        return False
    return response.status_code == 200
