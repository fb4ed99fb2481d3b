"""PostgreSQL from the distribution's packages, one cluster in the stack's state folder.

``initdb`` refuses to run as root, so when the stack runs as root the cluster belongs
to the ``postgres`` system user, as Debian's own clusters do.
"""

from __future__ import annotations

import getpass
import logging
import os
import shutil
import subprocess
from pathlib import Path

from scripts.stack.config import (
    DB_NAME,
    DB_PASSWORD,
    DB_USER,
    HOST,
    REGISTRY_DB_NAME,
    StackConfig,
)
from scripts.stack.processes import StackError

logger = logging.getLogger(__name__)

NAME = "postgres"
SYSTEM_USER = "postgres"


def bin_dir() -> Path:
    """The newest installed server's binaries; Debian keeps them off the PATH."""
    candidates = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"),
        key=lambda p: int(p.parent.parent.name),
    )
    if candidates:
        return candidates[-1].parent
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    raise StackError(
        "PostgreSQL server binaries not found: run `make bootstrap` "
        "(it installs Debian's postgresql package)"
    )


def _data_dir(config: StackConfig) -> Path:
    return config.state_dir / "postgres" / "data"


def _socket_dir(config: StackConfig) -> Path:
    return config.state_dir / "postgres"


def _as_owner(argv: list[str]) -> list[str]:
    if os.geteuid() == 0:
        return ["runuser", "-u", SYSTEM_USER, "--", *argv]
    return argv


def _owner() -> str:
    return SYSTEM_USER if os.geteuid() == 0 else getpass.getuser()


def _run(argv: list[str], what: str, log: Path) -> None:
    result = subprocess.run(argv, capture_output=True, text=True)
    if result.returncode != 0:
        raise StackError(f"postgres: {what} failed:\n{result.stdout}{result.stderr}")
    with log.open("a") as handle:
        handle.write(result.stdout + result.stderr)


def _prepare_dirs(config: StackConfig) -> None:
    socket_dir = _socket_dir(config)
    socket_dir.mkdir(parents=True, exist_ok=True)
    config.logs_dir.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        shutil.chown(socket_dir, SYSTEM_USER, SYSTEM_USER)
        log = config.logs_dir / f"{NAME}.log"
        log.touch()
        shutil.chown(log, SYSTEM_USER, SYSTEM_USER)


def _init_cluster(config: StackConfig) -> None:
    """Create the cluster once; its data survives ``make down``."""
    data_dir = _data_dir(config)
    if (data_dir / "PG_VERSION").exists():
        return

    logger.info("initialising PostgreSQL cluster data_dir=%s", data_dir)
    argv = [
        str(bin_dir() / "initdb"),
        "--pgdata",
        str(data_dir),
        "--username",
        "postgres",
        "--auth-local",
        "trust",
        "--auth-host",
        "scram-sha-256",
        "--encoding",
        "UTF8",
        "--no-instructions",
    ]
    _run(_as_owner(argv), "initdb", config.logs_dir / f"{NAME}.log")


def start(config: StackConfig) -> None:
    """Start the cluster on the configured port and create the project's databases."""
    _prepare_dirs(config)
    _init_cluster(config)
    if not is_running(config):
        options = (
            f"-p {config.postgres_port} -k {_socket_dir(config)} "
            f"-c listen_addresses={HOST}"
        )
        argv = [
            str(bin_dir() / "pg_ctl"),
            "start",
            "--wait",
            "--timeout",
            "60",
            "--pgdata",
            str(_data_dir(config)),
            "--log",
            str(config.logs_dir / f"{NAME}.log"),
            "--options",
            options,
        ]
        _run(_as_owner(argv), "pg_ctl start", config.logs_dir / f"{NAME}.log")
    _create_databases(config)


def _psql(config: StackConfig, sql: str, database: str = "postgres") -> str:
    argv = [
        str(bin_dir() / "psql"),
        "--no-psqlrc",
        "--quiet",
        "--tuples-only",
        "--no-align",
        "--host",
        str(_socket_dir(config)),
        "--port",
        str(config.postgres_port),
        "--username",
        "postgres",
        "--dbname",
        database,
        "--set",
        "ON_ERROR_STOP=1",
        "--command",
        sql,
    ]
    result = subprocess.run(argv, capture_output=True, text=True)
    if result.returncode != 0:
        raise StackError(f"postgres: {sql.split()[0]} failed: {result.stderr.strip()}")
    return result.stdout.strip()


def _create_databases(config: StackConfig) -> None:
    """The project's role, its database and the registry's database, made once."""
    role = _psql(config, f"SELECT 1 FROM pg_roles WHERE rolname = '{DB_USER}'")
    if not role:
        _psql(config, f"CREATE ROLE {DB_USER} LOGIN PASSWORD '{DB_PASSWORD}'")

    for database in (DB_NAME, REGISTRY_DB_NAME):
        exists = _psql(
            config, f"SELECT 1 FROM pg_database WHERE datname = '{database}'"
        )
        if not exists:
            _psql(config, f"CREATE DATABASE {database} OWNER {DB_USER}")
            logger.info("created database=%s owner=%s", database, DB_USER)


def is_running(config: StackConfig) -> bool:
    if not (_data_dir(config) / "PG_VERSION").exists():
        return False
    argv = [str(bin_dir() / "pg_ctl"), "status", "--pgdata", str(_data_dir(config))]
    return subprocess.run(_as_owner(argv), capture_output=True).returncode == 0


def stop(config: StackConfig) -> bool:
    """Stop the cluster (fast mode: roll back open transactions); True when it ran."""
    if not is_running(config):
        return False
    argv = [
        str(bin_dir() / "pg_ctl"),
        "stop",
        "--mode",
        "fast",
        "--wait",
        "--pgdata",
        str(_data_dir(config)),
    ]
    _run(_as_owner(argv), "pg_ctl stop", config.logs_dir / f"{NAME}.log")
    return True


def owner() -> str:
    """The system user the cluster runs as, for status output."""
    return _owner()
