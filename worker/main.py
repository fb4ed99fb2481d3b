"""The worker's command line.

``python -m worker`` consumes the contract topics and applies them to PostgreSQL
until SIGTERM or SIGINT; several processes share the partitions as one consumer
group. ``python -m worker replay`` applies rejected records again after a fix.
Both read their settings from ``GATEKEEPER_*`` variables (``worker.config``).

Exit status: 0 done, 1 replay left rejects pending, 2 bad settings or contracts,
or a server unreachable.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys

from contracts.errors import ConfigurationError, ContractError
from worker import metrics
from worker.config import WorkerConfig
from worker.errors import TransientError
from worker.records import RejectCode
from worker.replay import Replayer, Selection, Verdict, render
from worker.service import Worker

logger = logging.getLogger(__name__)

LOG_FORMAT = "%(asctime)s level=%(levelname)s logger=%(name)s %(message)s"

EXIT_OK = 0
EXIT_PENDING = 1
EXIT_FAILED = 2


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m worker",
        description="Apply activity records from Kafka to PostgreSQL.",
    )
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("run", help="consume and apply until stopped (the default)")
    replay = commands.add_parser(
        "replay",
        help="apply pending rejects again, after their cause was fixed",
        description="Apply pending rejects again; with no filter, all of them.",
    )
    replay.add_argument(
        "--id",
        type=int,
        action="append",
        default=[],
        help="a reject id; repeat for several",
    )
    replay.add_argument(
        "--table",
        action="append",
        default=[],
        help="only this table's rejects; repeat for several",
    )
    replay.add_argument(
        "--code",
        action="append",
        default=[],
        choices=[code.value for code in RejectCode],
        help="only rejects with this code; repeat for several",
    )
    replay.add_argument("--limit", type=int, help="replay at most this many")
    replay.add_argument(
        "--dry-run",
        action="store_true",
        help="list the selected rejects, change nothing",
    )
    return parser.parse_args(argv)


def run(config: WorkerConfig) -> int:
    """Consume until SIGTERM or SIGINT, then finish the batch and leave the group."""
    worker = Worker(config)
    signal.signal(signal.SIGTERM, lambda *_: worker.stop())
    signal.signal(signal.SIGINT, lambda *_: worker.stop())
    metrics.serve(config.metrics_port)
    worker.run()
    return EXIT_OK


def replay(config: WorkerConfig, args: argparse.Namespace) -> int:
    """Replay the selected rejects and print one line for each."""
    selection = Selection(
        tuple(args.id), tuple(args.table), tuple(args.code), args.limit
    )
    replayer = Replayer(config)
    try:
        pending = replayer.pending(selection)
        if args.dry_run:
            for reject in pending:
                record = reject.record
                print(
                    f"reject {reject.id} {record.topic}[{record.partition}]@"
                    f"{record.offset} table={reject.table or '-'} code={reject.code}: "
                    f"{reject.reason}"
                )
            print(f"selected={len(pending)} (dry run, nothing changed)")
            return EXIT_OK
        results = replayer.replay(pending)
    finally:
        replayer.close()

    print(render(results))
    if any(r.verdict is not Verdict.REPLAYED for r in results):
        return EXIT_PENDING
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    """Run the command; return the exit status described in the module doc."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format=LOG_FORMAT)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpx2").setLevel(logging.WARNING)

    try:
        config = WorkerConfig.from_env()
        if args.command == "replay":
            return replay(config, args)
        return run(config)
    except (ConfigurationError, ContractError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except TransientError as exc:
        print(
            f"error: {exc}; check that Kafka, the registry and PostgreSQL are up "
            "(`make up`) and that GATEKEEPER_* point at them",
            file=sys.stderr,
        )
        return EXIT_FAILED
