"""The gateway as it runs in production: gunicorn with gateway/gunicorn_conf.py."""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from html.parser import HTMLParser

import pytest
import requests

from scripts.stack import Stack
from tests.gateway.builders import payload, rich
from tests.plugins.gateway import (
    TOKEN,
    ContractSet,
    GunicornGateway,
    KafkaProbe,
    create_topics,
    read_at,
    register,
    write_contracts,
)

AUTH = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}


@pytest.fixture(scope="module")
def served(registered: Stack, tmp_path_factory: pytest.TempPathFactory) -> ContractSet:
    contracts = write_contracts(tmp_path_factory.mktemp("served"), ("rich", "pair"))
    register(registered, contracts)
    create_topics(registered, contracts.topics)
    return contracts


def test_request_id_travels_to_logs_and_kafka_and_keys_stay_out(
    registered: Stack,
    served: ContractSet,
    gunicorn_gateway: Callable[..., GunicornGateway],
) -> None:
    gateway = gunicorn_gateway(served)
    body = payload(rich(served.tables["rich"]))
    headers = {**AUTH, "X-Request-Id": "trace-me-42"}

    accepted = requests.post(
        f"{gateway.url}/activities", json=body, headers=headers, timeout=10
    )
    refused = requests.post(
        f"{gateway.url}/activities",
        json=payload(rich(served.tables["rich"], small="x")),
        headers={**AUTH, "X-Request-Id": "trace-me-43"},
        timeout=10,
    )
    assert gateway.stop() == 0

    assert accepted.status_code == 202
    assert refused.status_code == 422
    [receipt] = accepted.json()["receipts"]
    record = read_at(
        registered.config.kafka_bootstrap,
        receipt["topic"],
        receipt["partition"],
        receipt["offset"],
    )
    assert dict(record.headers())["gk-request-id"] == b"trace-me-42"
    log = gateway.log()
    assert re.search(r"request_id=trace-me-42 .*accepted activities=1", log)
    assert re.search(r"request_id=trace-me-43 .*status=422", log)
    assert "request_id=trace-me-42 remote=" in log
    assert TOKEN not in log
    assert log.count("producer flushed and closed") == 2


def test_too_large_body_is_a_413_problem(
    served: ContractSet,
    gunicorn_gateway: Callable[..., GunicornGateway],
    kafka: KafkaProbe,
) -> None:
    gateway = gunicorn_gateway(served, GATEKEEPER_MAX_BODY_BYTES="1000")
    big = payload(rich(served.tables["rich"], label="x" * 1000))
    kafka.mark(served.topics)

    response = requests.post(
        f"{gateway.url}/activities", json=big, headers=AUTH, timeout=10
    )

    assert response.status_code == 413
    assert response.headers["Content-Type"] == "application/problem+json"
    assert response.json()["type"] == "urn:gatekeeper:problem:too-large"
    assert kafka.records_since_mark() == []


def test_metrics_add_up_every_worker_process(
    served: ContractSet,
    gunicorn_gateway: Callable[..., GunicornGateway],
) -> None:
    """Concurrent bursts until both worker processes have served (at most five);
    /metrics, answered by one process, must count every request."""
    gateway = gunicorn_gateway(served)
    body = payload(rich(served.tables["rich"]))
    sent, serving = 0, set()

    def post(_: int) -> int:
        return requests.post(
            f"{gateway.url}/activities", json=body, headers=AUTH, timeout=10
        ).status_code

    with ThreadPoolExecutor(max_workers=16) as pool:
        for _ in range(5):
            assert set(pool.map(post, range(32))) == {202}
            sent += 32
            serving = set(re.findall(r"process=(\d+) \S+ .*accepted", gateway.log()))
            if len(serving) == 2:
                break
    text = requests.get(f"{gateway.url}/metrics", timeout=10).text

    assert len(serving) == 2, "both worker processes should have served requests"
    requests_line = re.search(
        r'gatekeeper_gateway_requests_total\{method="POST",route="/activities",'
        r'status="202"\} (\S+)',
        text,
    )
    accepted = re.search(
        r'gatekeeper_gateway_activities_total\{code="-",outcome="accepted",'
        rf'table="{served.tables["rich"]}"\}} (\S+)',
        text,
    )
    assert requests_line is not None and float(requests_line[1]) == sent
    assert accepted is not None and float(accepted[1]) == sent
    assert "gatekeeper_gateway_produce_seconds_count" in text


class _Rendered(HTMLParser):
    """Collects what the docs page's script rendered."""

    def __init__(self) -> None:
        super().__init__()
        self.paths: set[tuple[str, str]] = set()
        self.schemas: set[str] = set()
        self.rendered = False

    def handle_starttag(self, tag: str, attrs: list) -> None:
        found = dict(attrs)
        if "data-path" in found:
            self.paths.add((found["data-method"], found["data-path"]))
        if "data-schema" in found:
            self.schemas.add(found["data-schema"])
        if tag == "body" and found.get("data-rendered") == "true":
            self.rendered = True


def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    pytest.fail("headless Chromium is needed: apt-get install -y chromium")


def test_docs_page_renders_every_route_in_headless_chromium(
    served: ContractSet,
    gunicorn_gateway: Callable[..., GunicornGateway],
) -> None:
    gateway = gunicorn_gateway(served)
    spec = requests.get(f"{gateway.url}/openapi.json", timeout=10).json()

    with tempfile.TemporaryDirectory(prefix="chromium-") as profile:
        dom = subprocess.run(
            [
                _chromium(),
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                f"--user-data-dir={profile}",
                "--dump-dom",
                f"{gateway.url}/docs",
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout

    page = _Rendered()
    page.feed(dom)
    expected = {(m, p) for p, item in spec["paths"].items() for m in item}
    assert page.rendered, dom[-2000:]
    assert page.paths == expected
    assert page.schemas == set(spec["components"]["schemas"])
    assert f"Activity_{served.tables['rich']}" in page.schemas


def test_docs_page_needs_nothing_from_elsewhere(
    served: ContractSet, gunicorn_gateway: Callable[..., GunicornGateway]
) -> None:
    gateway = gunicorn_gateway(served)

    response = requests.get(f"{gateway.url}/docs", timeout=10)

    assert response.status_code == 200
    policy = response.headers["Content-Security-Policy"]
    assert "default-src 'none'" in policy and "connect-src 'none'" in policy
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", response.text)
