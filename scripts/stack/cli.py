"""``python -m scripts.stack up|down|status|fetch``: the commands behind ``make up``."""

from __future__ import annotations

import argparse
import logging
import time

from contracts.errors import GatekeeperError
from scripts import register_schemas
from scripts.stack import Stack, apps, downloads
from scripts.stack.config import StackConfig

logger = logging.getLogger(__name__)


def up(stack: Stack) -> int:
    """1. start the servers, 2. register the contracts, 3. start worker and gateway."""
    started = time.monotonic()
    stack.start_servers()

    logger.info("registering contracts")
    code = register_schemas.main(["--registry-url", stack.config.registry_url])
    if code != 0:
        logger.error("contract registration failed; gateway and worker not started")
        return code

    stack.start_apps()
    print_status(stack)
    elapsed = time.monotonic() - started
    print(f"\nUp in {elapsed:.1f} s; addresses in {stack.config.state_dir / 'env'}")
    print_api_key(stack)
    return 0


def print_api_key(stack: Stack) -> None:
    """Show the local API key: the gateway answers 401 to requests without it."""
    token = apps.local_api_key(stack.config)
    token_file = stack.config.state_dir / apps.API_KEY_FILE
    print(f"API key for the local gateway (kept in {token_file}):")
    print(f"  Authorization: Bearer {token}")


def print_status(stack: Stack) -> None:
    rows = [
        (s.name, "running" if s.running else "stopped", s.address, s.log)
        for s in stack.status()
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for row in rows:
        cells = (cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        print("  ".join(cells).rstrip())


def fetch(stack: Stack) -> int:
    """Download the servers now, so that later starts need no network."""
    print(downloads.kafka_libs(stack.config.cache_dir))
    print(downloads.registry_home(stack.config.cache_dir))
    return 0


COMMANDS = {
    "up": up,
    "servers": lambda stack: stack.start_servers() or 0,
    "down": lambda stack: stack.stop() or 0,
    "status": lambda stack: print_status(stack) or 0,
    "fetch": fetch,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m scripts.stack", description=__doc__
    )
    parser.add_argument("command", choices=COMMANDS)
    args = parser.parse_args(argv)

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s"
    )
    try:
        stack = Stack(StackConfig.from_env())
        return COMMANDS[args.command](stack)
    except GatekeeperError as exc:
        logger.error("%s", exc)
        return 1
