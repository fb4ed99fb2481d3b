"""Fixtures that start the real servers: PostgreSQL, Kafka and Apicurio Registry.

One stack per test session, on free ports and in a throwaway folder, so two runs on
one machine never collide. The servers are the ones ``make up`` runs, started by the
same code; they stop when the session ends, whether the tests passed or not.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from scripts import register_schemas
from scripts.stack import Stack, StackConfig, apps
from scripts.stack.config import REPO_ROOT


@pytest.fixture(scope="session")
def stack() -> Iterator[Stack]:
    """The running servers, with GATEKEEPER_* variables pointing at them."""
    # pytest's own temporary folders are private to root; the cluster runs as the
    # postgres user and must be able to enter its data folder.
    state_dir = Path(tempfile.mkdtemp(prefix="gatekeeper-test-"))
    state_dir.chmod(0o755)
    config = StackConfig(state_dir, REPO_ROOT / ".cache").with_free_ports()
    stack = Stack(config)

    saved = dict(os.environ)
    try:
        stack.start_servers()
        os.environ.update(config.client_environment())
        yield stack
    finally:
        os.environ.clear()
        os.environ.update(saved)
        stack.stop()
        _keep_logs_or_clean(state_dir)


def _keep_logs_or_clean(state_dir: Path) -> None:
    """Remove the stack's data; keep its logs when the caller asks to."""
    if os.environ.get("GATEKEEPER_KEEP_TEST_LOGS"):
        print(f"\ntest stack logs kept in {state_dir / 'logs'}")
        return
    shutil.rmtree(state_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def registered(stack: Stack) -> Stack:
    """The stack with every contract of the catalogue registered."""
    code = register_schemas.main(["--registry-url", stack.config.registry_url])
    assert code == 0, "registering the contracts failed; see the output above"
    return stack


@pytest.fixture(scope="session")
def running_system(registered: Stack) -> Iterator[Stack]:
    """Gateway (under gunicorn) and worker running as their own processes."""
    registered.start_apps()
    yield registered
    for name in (apps.GATEWAY, apps.WORKER):
        apps.process(registered.config, name).stop()
