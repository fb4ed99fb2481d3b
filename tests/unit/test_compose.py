"""The Docker Compose stack must stay the twin of the local stack.

Nothing here runs Docker: the compose file cannot be started where the tests run, so
a drift between it and the local stack (a port, a variable name, an image version,
a start-up order) would otherwise go unnoticed until someone with Docker tried it.
These tests read docker-compose.yml, the Dockerfile and .dockerignore as data and
pin what they promise.
"""

from __future__ import annotations

import re
import shlex
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import SplitResult, urlsplit

import pytest
import yaml

from gateway.auth import KeyRing, parse_keys

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
SOURCE_DIRS = ("gateway", "worker", "scripts", "contracts")

# Host ports of the local stack. Held here, not imported from the stack module, so
# the test states the expectation on its own and catches either side drifting.
LOCAL_STACK = {"gateway": 5000, "kafka": 9092, "registry": 8081, "postgres": 5432}

KAFKA_BOOTSTRAP = "GATEKEEPER_KAFKA_BOOTSTRAP"
REGISTRY_URL = "GATEKEEPER_SCHEMA_REGISTRY_URL"
DATABASE_URL = "GATEKEEPER_DATABASE_URL"
GATEWAY_PORT = "GATEKEEPER_GATEWAY_PORT"
GATEWAY_HOST = "GATEKEEPER_GATEWAY_HOST"
API_KEYS_FILE = "GATEKEEPER_API_KEYS_FILE"
GATEKEEPER_VARS = {
    KAFKA_BOOTSTRAP,
    REGISTRY_URL,
    DATABASE_URL,
    GATEWAY_PORT,
    GATEWAY_HOST,
    API_KEYS_FILE,
}

# The settings each project process receives: what it needs and nothing more.
SERVICE_VARS = {
    "register-schemas": {REGISTRY_URL},
    "gateway": {
        KAFKA_BOOTSTRAP,
        REGISTRY_URL,
        DATABASE_URL,
        GATEWAY_PORT,
        GATEWAY_HOST,
        API_KEYS_FILE,
    },
    "worker": {KAFKA_BOOTSTRAP, REGISTRY_URL, DATABASE_URL},
}

IMAGES = {
    "postgres": "postgres:15",
    "kafka": "apache/kafka:4.1.1",
    "registry": "apicurio/apicurio-registry:3.3.3",
}

COMMANDS = {
    "register-schemas": ["python", "-m", "scripts.register_schemas"],
    "gateway": [
        "gunicorn",
        "-c",
        "gateway/gunicorn_conf.py",
        "gateway.app:create_app()",
    ],
    "worker": ["python", "-m", "worker"],
}

SERVICES = set(IMAGES) | set(COMMANDS)

HEALTHY = "service_healthy"
COMPLETED = "service_completed_successfully"
DEPENDS_ON = {
    "postgres": {},
    "kafka": {},
    "registry": {"postgres": HEALTHY},
    "register-schemas": {"registry": HEALTHY},
    "gateway": {"kafka": HEALTHY, "register-schemas": COMPLETED},
    "worker": {
        "kafka": HEALTHY,
        "postgres": HEALTHY,
        "register-schemas": COMPLETED,
    },
}

ONE_SHOT = {"register-schemas"}
# The worker listens on no port, so a probe would have nothing to ask it, and no
# service waits for it. Listed explicitly so that dropping any other probe fails.
UNPROBED = {"worker"}

INIT_DIR = "/docker-entrypoint-initdb.d"


@cache
def compose() -> dict[str, Any]:
    """The parsed compose file, read once: every test looks at the same data."""
    return yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))


def service(name: str) -> dict[str, Any]:
    """One service's definition."""
    return compose()["services"][name]


def environment(name: str) -> dict[str, str]:
    """A service's environment as strings, whichever of the two syntaxes it uses."""
    env = service(name).get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {key: str(value) for key, value in env.items()}


def gatekeeper_env(name: str) -> dict[str, str]:
    """Only the project's own settings in a service's environment."""
    return {k: v for k, v in environment(name).items() if k.startswith("GATEKEEPER_")}


def port_mappings(name: str) -> list[tuple[int, int]]:
    """(host, container) port pairs, from the short or the long ports syntax."""
    pairs = []
    for entry in service(name).get("ports", []):
        if isinstance(entry, dict):
            pairs.append((int(entry["published"]), int(entry["target"])))
            continue
        parts = str(entry).split("/")[0].split(":")
        assert len(parts) >= 2, f"{name} publishes {entry!r} on a random host port"
        pairs.append((int(parts[-2]), int(parts[-1])))
    return pairs


def container_port(name: str) -> int:
    """The port the service listens on inside its container."""
    (mapping,) = port_mappings(name)
    return mapping[1]


def as_argv(command: str | list[str]) -> list[str]:
    """A command as an argument list, so string and list forms compare equal."""
    return shlex.split(command) if isinstance(command, str) else list(command)


def depends_on(name: str) -> dict[str, str]:
    """Dependency name to start condition; the list syntax means 'started'."""
    deps = service(name).get("depends_on") or {}
    if isinstance(deps, list):
        return dict.fromkeys(deps, "service_started")
    return {dep: spec.get("condition", "service_started") for dep, spec in deps.items()}


def kafka_listeners(variable: str) -> dict[str, tuple[str, int]]:
    """Listener name to (host, port) from a KAFKA_*LISTENERS variable."""
    found = {}
    for item in environment("kafka")[variable].split(","):
        listener, address = item.strip().split("://", 1)
        host, _, port = address.rpartition(":")
        found[listener] = (host, int(port))
    return found


def bootstrap_address() -> tuple[str, int]:
    """Where the project's processes expect to find Kafka."""
    host, _, port = environment("gateway")[KAFKA_BOOTSTRAP].rpartition(":")
    return host, int(port)


def url(name: str, variable: str) -> SplitResult:
    """A URL-valued setting of a service, split into its parts."""
    return urlsplit(environment(name)[variable])


def healthcheck_command(name: str) -> str:
    """A service's healthcheck test as one string, for looking inside it."""
    test = (service(name).get("healthcheck") or {}).get("test") or []
    return test if isinstance(test, str) else " ".join(test)


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with continuation lines joined."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text(encoding="utf-8"))
    pairs = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            instruction, _, args = line.partition(" ")
            pairs.append((instruction.upper(), args.strip()))
    return pairs


def instruction_args(instruction: str) -> list[str]:
    """The arguments of every occurrence of one Dockerfile instruction."""
    return [args for name, args in dockerfile_instructions() if name == instruction]


def test_compose_defines_exactly_the_six_services() -> None:
    assert set(compose()["services"]) == SERVICES


@pytest.mark.parametrize("name", sorted(IMAGES))
def test_third_party_services_run_the_pinned_image(name: str) -> None:
    assert service(name).get("image") == IMAGES[name]
    assert "build" not in service(name)


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_project_services_are_built_from_the_repository(name: str) -> None:
    build = service(name).get("build")
    spec = {"context": build} if isinstance(build, str) else build or {}
    assert (COMPOSE_FILE.parent / spec.get("context", "")).resolve() == ROOT
    assert spec.get("dockerfile", "Dockerfile") == DOCKERFILE.name


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_project_services_run_their_entry_point(name: str) -> None:
    assert as_argv(service(name).get("command", [])) == COMMANDS[name]


def test_published_host_ports_match_the_local_stack() -> None:
    published = {}
    for name in sorted(SERVICES):
        mappings = port_mappings(name)
        assert len(mappings) <= 1, f"{name} publishes more than one port"
        if mappings:
            published[name] = mappings[0][0]
    assert published == LOCAL_STACK


@pytest.mark.parametrize("name", ["gateway", "registry", "postgres"])
def test_service_listens_in_its_container_on_the_published_port(name: str) -> None:
    assert container_port(name) == LOCAL_STACK[name]


def test_gateway_is_told_to_listen_on_its_container_port() -> None:
    assert environment("gateway")[GATEWAY_PORT] == str(container_port("gateway"))


def test_registry_is_told_to_listen_on_its_container_port() -> None:
    assert environment("registry")["QUARKUS_HTTP_PORT"] == str(
        container_port("registry")
    )


def test_kafka_runs_as_one_node_that_is_broker_and_controller() -> None:
    env = environment("kafka")
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    voter_id, _, voter = env["KAFKA_CONTROLLER_QUORUM_VOTERS"].partition("@")
    assert voter_id == env["KAFKA_NODE_ID"]
    name = env["KAFKA_CONTROLLER_LISTENER_NAMES"]
    _, controller_port = kafka_listeners("KAFKA_LISTENERS")[name]
    assert int(voter.rpartition(":")[2]) == controller_port


def test_kafka_listeners_are_all_plaintext() -> None:
    mapping = environment("kafka")["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"]
    protocols = dict(item.split(":", 1) for item in mapping.split(","))
    assert set(protocols) == set(kafka_listeners("KAFKA_LISTENERS"))
    assert set(protocols.values()) == {"PLAINTEXT"}


def test_containers_reach_kafka_at_the_address_it_advertises() -> None:
    host, port = bootstrap_address()
    assert host == "kafka"
    advertised = kafka_listeners("KAFKA_ADVERTISED_LISTENERS")
    (listener,) = [name for name, addr in advertised.items() if addr == (host, port)]
    assert kafka_listeners("KAFKA_LISTENERS")[listener][1] == port


def test_host_reaches_kafka_on_localhost_at_the_published_port() -> None:
    (published, target) = port_mappings("kafka")[0]
    bound = kafka_listeners("KAFKA_LISTENERS")
    (listener,) = [name for name, (_, port) in bound.items() if port == target]
    advertised = kafka_listeners("KAFKA_ADVERTISED_LISTENERS")
    assert advertised[listener] == ("localhost", published)


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_each_service_receives_only_the_settings_it_needs(name: str) -> None:
    assert set(gatekeeper_env(name)) == SERVICE_VARS.get(name, set())


@pytest.mark.parametrize("variable", sorted(GATEKEEPER_VARS))
def test_a_shared_setting_has_one_value_everywhere(variable: str) -> None:
    values = {
        name: gatekeeper_env(name)[variable]
        for name in SERVICE_VARS
        if variable in gatekeeper_env(name)
    }
    assert values, f"no service sets {variable}"
    assert len(set(values.values())) == 1, values


def test_every_setting_comes_from_the_shared_anchor_block() -> None:
    shared: dict[str, str] = {}
    for group in compose()["x-gatekeeper-env"].values():
        shared.update({key: str(value) for key, value in group.items()})
    assert set(shared) == GATEKEEPER_VARS
    for name in SERVICE_VARS:
        for variable, value in gatekeeper_env(name).items():
            assert value == shared[variable], (name, variable)


def test_registry_url_targets_the_ccompat_api_of_the_registry_service() -> None:
    parts = url("gateway", REGISTRY_URL)
    assert parts.scheme == "http"
    assert parts.hostname == "registry"
    assert parts.port == container_port("registry")
    assert parts.path.rstrip("/").endswith("/apis/ccompat/v7")


def test_database_url_uses_the_postgres_service_and_its_credentials() -> None:
    parts = url("worker", DATABASE_URL)
    postgres = environment("postgres")
    assert parts.scheme in {"postgresql", "postgres"}
    assert parts.hostname == "postgres"
    assert parts.port == container_port("postgres")
    assert parts.username == postgres["POSTGRES_USER"]
    assert parts.password == postgres["POSTGRES_PASSWORD"]
    assert parts.path == "/" + postgres["POSTGRES_DB"]


def test_registry_stores_its_data_in_postgres_with_the_same_credentials() -> None:
    env = environment("registry")
    postgres = environment("postgres")
    assert env["APICURIO_STORAGE_KIND"] == "sql"
    assert env["APICURIO_STORAGE_SQL_KIND"] == "postgresql"
    jdbc = urlsplit(env["APICURIO_DATASOURCE_URL"].removeprefix("jdbc:"))
    assert (jdbc.scheme, jdbc.hostname) == ("postgresql", "postgres")
    assert jdbc.port == container_port("postgres")
    assert jdbc.path.lstrip("/") != postgres["POSTGRES_DB"]
    assert env["APICURIO_DATASOURCE_USERNAME"] == postgres["POSTGRES_USER"]
    assert env["APICURIO_DATASOURCE_PASSWORD"] == postgres["POSTGRES_PASSWORD"]


def test_postgres_init_script_creates_the_registry_database() -> None:
    mounts = [
        str(volume).split(":")
        for volume in service("postgres").get("volumes", [])
        if str(volume).split(":")[1].startswith(INIT_DIR)
    ]
    assert mounts, f"nothing is mounted into {INIT_DIR}"
    database = urlsplit(environment("registry")["APICURIO_DATASOURCE_URL"][5:]).path
    created = set()
    for source, *_ in mounts:
        sql = (COMPOSE_FILE.parent / source).read_text(encoding="utf-8")
        created |= set(re.findall(r"CREATE\s+DATABASE\s+(\w+)", sql, re.IGNORECASE))
    assert database.lstrip("/") in created


@pytest.mark.parametrize("name", sorted(SERVICES - ONE_SHOT - UNPROBED))
def test_long_running_service_defines_a_healthcheck(name: str) -> None:
    healthcheck = service(name).get("healthcheck") or {}
    assert not healthcheck.get("disable", False)
    assert healthcheck_command(name) not in {"", "NONE"}


def test_healthchecks_probe_where_each_service_listens() -> None:
    kafka_port = bootstrap_address()[1]
    expected = {
        "postgres": "pg_isready",
        "kafka": f"kafka-broker-api-versions.sh --bootstrap-server "
        f"localhost:{kafka_port}",
        "registry": f"localhost:{container_port('registry')}/apis/ccompat/v7",
        "gateway": f"localhost:{container_port('gateway')}/healthz",
    }
    for name, fragment in expected.items():
        assert fragment in healthcheck_command(name), name


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_service_starts_only_once_its_dependencies_are_ready(name: str) -> None:
    assert depends_on(name) == DEPENDS_ON[name]


def test_every_awaited_service_can_report_its_health() -> None:
    for name in SERVICES:
        for dependency, condition in depends_on(name).items():
            if condition == HEALTHY:
                assert healthcheck_command(dependency), (name, dependency)


def test_schema_registration_runs_once_and_is_not_restarted() -> None:
    # An unquoted `no` would load as False, which compose rejects.
    assert service("register-schemas").get("restart") == "no"


def test_dockerfile_builds_on_python_311_slim() -> None:
    assert instruction_args("FROM") == ["python:3.11-slim"]


def test_dockerfile_installs_the_project_without_a_pip_cache() -> None:
    runs = " ".join(instruction_args("RUN"))
    assert "pip install --no-cache-dir ." in runs


def test_dockerfile_exposes_the_gateway_port() -> None:
    exposed = {
        int(port.split("/")[0])
        for args in instruction_args("EXPOSE")
        for port in args.split()
    }
    assert exposed == {LOCAL_STACK["gateway"], container_port("gateway")}


def test_image_processes_run_as_an_unprivileged_user() -> None:
    users = instruction_args("USER")
    assert users, "the image runs as root"
    assert users[-1].split(":")[0] not in {"root", "0"}


def test_dockerignore_admits_everything_the_dockerfile_copies() -> None:
    admitted = {
        line[1:].strip().strip("/")
        for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
        if line.startswith("!")
    }
    for args in instruction_args("COPY"):
        *sources, _ = [word for word in args.split() if not word.startswith("--")]
        for source in sources:
            assert source.removeprefix("./").strip("/") in admitted, source


def test_every_compose_setting_is_read_by_the_project() -> None:
    used = set(re.findall(r"GATEKEEPER_[A-Z0-9_]+", COMPOSE_FILE.read_text("utf-8")))
    assert used == GATEKEEPER_VARS
    files = [path for folder in SOURCE_DIRS for path in (ROOT / folder).rglob("*.py")]
    readme = ROOT / "README.md"
    if readme.exists():
        files.append(readme)
    corpus = "\n".join(path.read_text(encoding="utf-8") for path in files)
    unknown = sorted(variable for variable in used if variable not in corpus)
    assert not unknown, f"compose sets variables the project never reads: {unknown}"


# The token whose digest scripts/compose/api-keys.json holds; README.md gives it to
# people who run the compose file.
COMPOSE_TOKEN = "compose-local-development-token-0001"


def test_the_compose_gateway_gets_a_key_file_that_accepts_the_documented_token() -> (
    None
):
    mounts = {
        target: source
        for source, target, *_ in (
            volume.split(":") for volume in service("gateway").get("volumes", [])
        )
    }
    keys_path = environment("gateway")[API_KEYS_FILE]
    source = ROOT / mounts[keys_path]

    keys = parse_keys(source.read_text(), str(source))
    key = KeyRing(keys).authenticate(f"Bearer {COMPOSE_TOKEN}")

    assert key is not None
    assert COMPOSE_TOKEN in (ROOT / "README.md").read_text()
