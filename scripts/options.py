"""Command-line options that the contract tools share, spelt and explained once."""

from __future__ import annotations

import argparse
from pathlib import Path

from contracts.settings import contracts_dir


def add_contracts_dir(parser: argparse.ArgumentParser) -> None:
    """``--contracts-dir``: the folder of ``<table>.avsc`` contracts to work on."""
    parser.add_argument(
        "--contracts-dir",
        type=Path,
        default=contracts_dir(),
        help="directory of <table>.avsc contracts (default: $GATEKEEPER_CONTRACTS_DIR, "
        "else the packaged ones)",
    )
