"""/openapi.json describes every route and every answer, checked by schemathesis.

schemathesis generates requests from the document, valid and invalid ones, sends
them to the real gunicorn gateway (with contracts of its own, on the real Kafka
and registry) and checks every answer against the document: no 5xx, and the
documented status codes, content types, headers and bodies.

Its command line is used rather than its pytest plugin, whose fixture-based
loader fails on pytest 9 (it reads the ``_nodeid`` attribute pytest 9 removed).
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from gateway.problems import PROBLEM_TYPES
from scripts.stack import Stack
from tests.plugins.gateway import (
    TOKEN,
    Gateway,
    GunicornGateway,
    create_topics,
    register,
    start_gunicorn,
    write_contracts,
)

# Bounded for CI: about a thousand requests in all, some fifteen seconds.
MAX_EXAMPLES = 30
SEED = 20261203

# The one check left out: "a request the schema allows must be accepted". The
# schema cannot say everything the gateway checks (which columns each operation
# needs, a column given once, a decimal's digits, a real calendar date), so such
# requests are rightly answered 422, which the document lists.
EXCLUDED_CHECKS = "positive_data_acceptance"

# Invalid requests may be refused with any documented 4xx; schemathesis's default
# list lacks 413, the answer to more activities than the limit (maxItems).
CONFIG = """
[checks.negative_data_rejection]
expected-statuses = [400, 401, 403, 404, 405, 409, 413, 415, 422]
"""


@pytest.fixture(scope="module")
def served(
    registered: Stack, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GunicornGateway]:
    contracts = write_contracts(
        tmp_path_factory.mktemp("openapi-contracts"), ("rich", "keyless", "pair")
    )
    register(registered, contracts)
    create_topics(registered, contracts.topics)
    gateway = start_gunicorn(
        registered, contracts, tmp_path_factory.mktemp("openapi-gunicorn")
    )
    yield gateway
    gateway.stop()


def test_schemathesis_finds_no_answer_contradicting_the_document(
    served: GunicornGateway, tmp_path: Path
) -> None:
    config = tmp_path / "schemathesis.toml"
    config.write_text(CONFIG)
    schemathesis = Path(sys.executable).with_name("schemathesis")

    run = subprocess.run(
        [
            str(schemathesis),
            "--config-file",
            str(config),
            "run",
            f"{served.url}/openapi.json",
            "--header",
            f"Authorization: Bearer {TOKEN}",
            "--checks",
            "all",
            "--exclude-checks",
            EXCLUDED_CHECKS,
            "--max-examples",
            str(MAX_EXAMPLES),
            "--seed",
            str(SEED),
            "--no-color",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )

    report = run.stdout[-6000:]
    assert run.returncode == 0, report
    assert " passed" in report and "failed" not in report.split("SUMMARY")[-1]
    assert "ST101" not in run.stdout, "a server error was found"


def test_document_lists_every_route_and_method_the_app_serves(
    served: GunicornGateway, gateway: Gateway
) -> None:
    spec = requests.get(f"{served.url}/openapi.json", timeout=10).json()
    served_routes = {
        (re.sub(r"<(\w+)>", r"{\1}", rule.rule), method.lower())
        for rule in gateway.app.url_map.iter_rules()
        for method in rule.methods - {"HEAD", "OPTIONS"}
    }
    statuses = {
        int(status)
        for item in spec["paths"].values()
        for operation in item.values()
        for status in operation["responses"]
    }

    assert spec["openapi"].startswith("3.1")
    assert {(p, m) for p, item in spec["paths"].items() for m in item} == served_routes
    problem_statuses = {t.status for t in PROBLEM_TYPES.values()} - {404, 405}
    assert problem_statuses <= statuses
