"""Register every contract's key and value schemas in the schema registry.

Run it before a contract change reaches the gateway: the gateway serialises with the
schemas found in the registry, so a contract must be registered first, and a change
that would break readers of older records must be refused here, not in production.

Per table there are up to two subjects (topic name strategy): ``<topic>-key`` for
keyed contracts, then ``<topic>-value``. Each is taken through these steps:

* the exact schema is already registered: unchanged (only a differing compatibility
  level is corrected);
* the subject exists: its compatibility level is set first, so that the check uses
  the contract's rule, then the registry checks the schema, then it is registered;
* the subject is new: its compatibility level is set, then the schema registered.

A value schema the registry would accept is still refused when it breaks the
contract's own rule: no new non-nullable field without a default (see
``contracts.compatibility``). A contract is registered only when all of its
subjects pass, so a key and its value never drift apart. Running twice changes
nothing the second time.

``--dry-run`` changes nothing, compatibility levels included, so an existing
subject is checked under the level it has now; the report says where the contract
would set another.

Exit status: 0 done, 1 at least one contract refused as incompatible, 2 nothing
could be done (registry unreachable or refusing requests, unreadable contracts).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from typing import Any
from urllib.parse import quote

import requests
from confluent_kafka.schema_registry import (
    RegisteredSchema,
    Schema,
    SchemaRegistryError,
)

from contracts import registry as registry_client
from contracts.catalogue import Contract, load_catalogue
from contracts.compatibility import Version, new_required_fields
from contracts.errors import ConfigurationError, ContractError, RegistryError
from contracts.settings import DEFAULT_REGISTRY_URL, check_environment
from scripts.options import add_contracts_dir

logger = logging.getLogger(__name__)

REGISTRY_URL_ENV = "GATEKEEPER_SCHEMA_REGISTRY_URL"
CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"

HTTP_NOT_FOUND = 404
HTTP_CONFLICT = 409

EXIT_OK = 0
EXIT_INCOMPATIBLE = 1
EXIT_FAILED = 2

NO_REASONS_IN_DRY_RUN = (
    "the registry's check gave no reasons; a run without --dry-run reports them"
)

LOG_FORMAT = "%(asctime)s level=%(levelname)s logger=%(name)s %(message)s"


class Change(StrEnum):
    """What a run did, or in a dry run would do, to one subject."""

    UNCHANGED = "unchanged"
    REGISTERED = "registered"
    NEW_SUBJECT = "new subject"
    COMPATIBILITY_SET = "compatibility set"
    WOULD_REGISTER = "would register (dry run)"
    INCOMPATIBLE = "incompatible"


class Action(StrEnum):
    """What a subject needs, decided before anything of its contract is registered."""

    KEEP = "keep"
    CREATE = "create"
    REGISTER = "register"
    REFUSE = "refuse"


@dataclass(frozen=True)
class Target:
    """One subject a contract needs: its name, its schema and its compatibility."""

    subject: str
    schema: Schema
    compatibility: str


@dataclass(frozen=True)
class Step:
    """The decision for one subject, with what the registry told us on the way."""

    target: Target
    action: Action
    registered: RegisteredSchema | None = None  # set exactly when action is KEEP
    reasons: tuple[str, ...] = ()


@dataclass(frozen=True)
class Verdict:
    """The registry's answer to a compatibility check."""

    compatible: bool
    reasons: tuple[str, ...] = ()


@dataclass(frozen=True)
class SubjectResult:
    """One row of the report: a subject, where it stands, and what changed."""

    subject: str
    change: Change
    version: int | None = None
    schema_id: int | None = None
    note: str = ""
    reasons: tuple[str, ...] = ()

    @property
    def change_text(self) -> str:
        return f"{self.change.value} {self.note}".strip()


class Registry:
    """The few registry calls this script needs, with errors turned into ours.

    Failures become ``RegistryError`` carrying the HTTP status and the registry's
    error code (status None when the registry cannot be reached), so callers decide
    by code, never by message text.
    """

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")
        self._client = registry_client.connect(self.url)
        self._http = requests.Session()

    def close(self) -> None:
        self._client.close()
        self._http.close()

    def versions(self, subject: str) -> list[int] | None:
        """The subject's versions, or None when the subject does not exist.

        Existence is asked separately from lookup because the "not found" codes of
        a lookup differ between registries and releases; a 404 here means one thing.
        """
        try:
            with self._errors():
                return list(self._client.get_versions(subject))
        except RegistryError as exc:
            if exc.status == HTTP_NOT_FOUND:
                return None
            raise

    def lookup(self, subject: str, schema: Schema) -> RegisteredSchema | None:
        """The registration of this exact schema under the subject, if there is one."""
        try:
            with self._errors():
                return self._client.lookup_schema(subject, schema)
        except RegistryError as exc:
            # Both answer 404 (40403 schema not found; Apicurio also 40401 while the
            # subject does not exist). Existence was settled before, so 404 suffices.
            if exc.status == HTTP_NOT_FOUND:
                return None
            raise

    def level(self, subject: str) -> str | None:
        """The subject's own compatibility level, or None when it has none."""
        try:
            with self._errors():
                return self._client.get_compatibility(subject)
        except RegistryError as exc:
            # Confluent answers 404/40408 for a subject without a level of its own;
            # Apicurio answers 200 with the global level instead (and 40401 for an
            # unknown subject). Either way the contract's level is then set.
            if exc.status == HTTP_NOT_FOUND:
                return None
            raise

    def set_level(self, subject: str, level: str) -> None:
        """Give the subject its own compatibility level; allowed before it exists."""
        with self._errors():
            self._client.set_compatibility(subject, level)

    def check(
        self, subject: str, schema: Schema, every_version: bool = False
    ) -> Verdict:
        """Ask the registry whether the schema may follow the subject's latest version.

        The client's ``test_compatibility`` accepts ``verbose`` but returns only a
        bool, so this one call goes over plain HTTP to read the reasons as well.
        Checked against ``versions/latest``, Confluent and Apicurio compare with
        that version alone, even under a transitive level, while registration
        applies the whole rule: a 409 there is reported like a failed check (see
        Registrar._register). ``every_version`` asks ``/versions`` instead, which
        both answer with the check that registration makes.
        """
        url = f"{self.url}/compatibility/subjects/{quote(subject, safe='')}"
        versions = "versions" if every_version else "versions/latest"
        with self._errors():
            response = self._http.post(
                f"{url}/{versions}",
                params={"verbose": "true"},
                data=json.dumps(schema.to_dict()),
                headers={"Content-Type": CONTENT_TYPE},
                timeout=registry_client.REQUEST_TIMEOUT_S,
            )
        body = _json_or_raise(response)
        return Verdict(bool(body.get("is_compatible")), _reasons(body))

    def schemas(self, subject: str) -> list[tuple[int, dict[str, Any]]]:
        """Every version of the subject with its schema, oldest first; [] if none."""
        found = []
        for version in self.versions(subject) or []:
            with self._errors():
                registered = self._client.get_version(subject, version)
            found.append((version, json.loads(registered.schema.schema_str)))
        return found

    def register(self, subject: str, schema: Schema) -> RegisteredSchema:
        """Register the schema and return its registration with id and version.

        The registration answer may hold only the id (Apicurio's always does), so
        the version is read back with a lookup.
        """
        with self._errors():
            self._client.register_schema(subject, schema)

        registered = self.lookup(subject, schema)
        if registered is None:
            raise RegistryError(
                f"{subject}: the registered schema is not found by lookup",
                HTTP_NOT_FOUND,
            )
        return registered

    @contextmanager
    def _errors(self) -> Iterator[None]:
        """Translate the client's and the transport's exceptions into RegistryError."""
        try:
            yield
        except SchemaRegistryError as exc:
            raise RegistryError(
                f"registry at {self.url} answered HTTP {exc.http_status_code}: "
                f"{exc.error_message}",
                exc.http_status_code,
                exc.error_code,
            ) from exc
        except (registry_client.TransportError, requests.RequestException) as exc:
            raise RegistryError(
                f"registry at {self.url} is unreachable: {exc}"
            ) from exc


def _json_or_raise(response: requests.Response) -> dict[str, Any]:
    """The JSON body of a successful answer; a RegistryError for any other."""
    try:
        body = response.json()
    except ValueError:
        body = {}

    if response.ok:
        return body
    raise RegistryError(
        f"registry answered HTTP {response.status_code}: {body.get('message', '')}",
        response.status_code,
        body.get("error_code"),
    )


def _reasons(body: Mapping[str, Any]) -> tuple[str, ...]:
    """The reasons of a verbose compatibility answer, in whichever shape it came.

    Confluent sends a ``messages`` list; Apicurio 2.x sends one ``reason`` string;
    Apicurio 3.3 sends neither (see Registrar._refusal for how reasons are found).
    """
    messages = body.get("messages") or []
    reason = body.get("reason")
    if reason:
        messages = [*messages, reason]
    return tuple(str(message) for message in messages)


class Registrar:
    """Brings the registry in line with the contracts, one contract at a time."""

    def __init__(self, registry: Registry, dry_run: bool) -> None:
        self.registry = registry
        self.dry_run = dry_run

    def sync(self, contract: Contract) -> list[SubjectResult]:
        """Register a contract's subjects, or none of them if one is refused."""
        steps = [self._inspect(target) for target in targets(contract)]
        steps = [self._apply_contract_rules(contract, step) for step in steps]

        if any(step.action is Action.REFUSE for step in steps):
            return [self._refuse(step) for step in steps]
        return [self._apply(step) for step in steps]

    def _inspect(self, target: Target) -> Step:
        """Decide what the subject needs; only its compatibility level may change."""
        if self.registry.versions(target.subject) is None:
            return Step(target, Action.CREATE)

        registered = self.registry.lookup(target.subject, target.schema)
        if registered is not None:
            return Step(target, Action.KEEP, registered)

        self._align_level(target)

        verdict = self.registry.check(target.subject, target.schema)
        if verdict.compatible:
            return Step(target, Action.REGISTER)
        return Step(target, Action.REFUSE, reasons=verdict.reasons)

    def _apply_contract_rules(self, contract: Contract, step: Step) -> Step:
        """Refuse a value schema that breaks the contract's own rules.

        The derived value schema makes every non-key field optional, so the
        registry accepts a new non-nullable field without a default; the
        contract's rule (``contracts.compatibility.new_required_fields``) does not.
        """
        if step.action is not Action.REGISTER:
            return step
        if step.target.subject != contract.value_subject:
            return step

        previous = [
            Version(number, schema)
            for number, schema in self.registry.schemas(step.target.subject)
        ]
        problems = new_required_fields(contract, previous)
        if not problems:
            return step
        return Step(
            step.target, Action.REFUSE, reasons=tuple(p.reason for p in problems)
        )

    def _apply(self, step: Step) -> SubjectResult:
        """Carry out the decision taken for the subject."""
        if step.registered is not None:
            return self._keep(step.target, step.registered)
        if self.dry_run:
            return SubjectResult(step.target.subject, Change.WOULD_REGISTER)
        if step.action is Action.CREATE:
            self._set_level(step.target)
            return self._register(step.target, Change.NEW_SUBJECT)
        return self._register(step.target, Change.REGISTERED)

    def _refuse(self, step: Step) -> SubjectResult:
        """Report a refused contract: none of its subjects gets a new version."""
        if step.action is Action.REFUSE:
            return self._refusal(step)
        if step.registered is not None:
            return self._keep(step.target, step.registered)
        return SubjectResult(
            step.target.subject,
            Change.INCOMPATIBLE,
            reasons=("not registered: another subject of the contract is refused",),
        )

    def _keep(self, target: Target, registered: RegisteredSchema) -> SubjectResult:
        """An already registered schema; at most its compatibility level changes."""
        changed = self._align_level(target)

        level = target.compatibility
        if changed and self.dry_run:
            change, note = Change.UNCHANGED, f"(would set compatibility → {level})"
        elif changed:
            change, note = Change.COMPATIBILITY_SET, f"→ {level}"
        else:
            change, note = Change.UNCHANGED, ""
        return self._result(target, change, registered, note)

    def _refusal(self, step: Step) -> SubjectResult:
        """Report an incompatible subject with the registry's reasons.

        Apicurio 3.3 leaves the reasons out of a verbose compatibility check (where
        Confluent lists them); they come only with its 409 refusal of a
        registration. Lacking them, the registration is attempted: the subject's
        level was set just before, so the registry refuses and stores nothing.
        """
        target = step.target
        if step.reasons:
            return _incompatible(target, step.reasons)
        if self.dry_run:
            return _incompatible(target, (NO_REASONS_IN_DRY_RUN,))

        logger.info("subject=%s asking for reasons by registering", target.subject)
        result = self._register(target, Change.REGISTERED)
        if result.change is Change.REGISTERED:
            logger.warning(
                "subject=%s registry accepted a refused schema", target.subject
            )
        return result

    def _register(self, target: Target, change: Change) -> SubjectResult:
        """Register the schema; a 409 refusal is reported, not raised."""
        try:
            registered = self.registry.register(target.subject, target.schema)
        except RegistryError as exc:
            if exc.status == HTTP_CONFLICT:
                return _incompatible(target, (_refusal_message(exc),))
            raise
        return self._result(target, change, registered)

    def _align_level(self, target: Target) -> bool:
        """Give an existing subject the contract's level; True when it differed."""
        current = self.registry.level(target.subject)
        if current == target.compatibility:
            return False

        if self.dry_run:
            logger.info(
                "subject=%s compatibility=%s would_set=%s dry_run=true",
                target.subject,
                current,
                target.compatibility,
            )
            return True

        self._set_level(target)
        return True

    def _set_level(self, target: Target) -> None:
        self.registry.set_level(target.subject, target.compatibility)
        logger.info(
            "subject=%s compatibility=%s set", target.subject, target.compatibility
        )

    def _result(
        self,
        target: Target,
        change: Change,
        registered: RegisteredSchema,
        note: str = "",
    ) -> SubjectResult:
        """Build the row for a registered schema and log it."""
        logger.info(
            "subject=%s version=%s id=%s change=%r",
            target.subject,
            registered.version,
            registered.schema_id,
            change.value,
        )
        return SubjectResult(
            target.subject, change, registered.version, registered.schema_id, note
        )


def _incompatible(target: Target, reasons: tuple[str, ...]) -> SubjectResult:
    logger.warning("subject=%s change=incompatible reasons=%r", target.subject, reasons)
    return SubjectResult(target.subject, Change.INCOMPATIBLE, reasons=reasons)


def _refusal_message(exc: RegistryError) -> str:
    cause = exc.__cause__
    if isinstance(cause, SchemaRegistryError):
        return cause.error_message
    return str(exc)


def targets(contract: Contract) -> list[Target]:
    """The contract's subjects, key first, so no value is registered without it."""
    subjects = []
    key_schema = contract.key_schema()
    if key_schema is not None:
        subjects.append((contract.key_subject, key_schema))
    subjects.append((contract.value_subject, contract.value_schema()))

    return [
        Target(subject, Schema(json.dumps(schema), "AVRO"), contract.compatibility)
        for subject, schema in subjects
    ]


def select(contracts: Mapping[str, Contract], tables: Sequence[str]) -> list[Contract]:
    """The contracts named with --table, or all; an unknown name is an error."""
    if not tables:
        return list(contracts.values())

    unknown = sorted(set(tables) - set(contracts))
    if unknown:
        raise ConfigurationError(f"--table names no contract: {', '.join(unknown)}")
    return [contracts[table] for table in dict.fromkeys(tables)]


def render(results: Sequence[SubjectResult]) -> str:
    """The report: one row per subject, then the reasons of every refusal."""
    rows = [("subject", "version", "id", "change")]
    rows += [
        (r.subject, _cell(r.version), _cell(r.schema_id), r.change_text)
        for r in results
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    lines = [
        f"{s:<{widths[0]}}  {v:>{widths[1]}}  {i:>{widths[2]}}  {c}".rstrip()
        for s, v, i, c in rows
    ]

    for result in results:
        if result.change is Change.INCOMPATIBLE:
            lines.append(f"\n{result.subject} is incompatible:")
            lines += [f"  - {reason}" for reason in result.reasons]
    return "\n".join(lines)


def _cell(number: int | None) -> str:
    return "-" if number is None else str(number)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m scripts.register_schemas",
        description="Register the contracts' key and value schemas in the registry.",
    )
    parser.add_argument(
        "--registry-url",
        default=os.environ.get(REGISTRY_URL_ENV) or DEFAULT_REGISTRY_URL,
        help=f"Confluent-compatible API base URL (default: ${REGISTRY_URL_ENV}, "
        f"else {DEFAULT_REGISTRY_URL})",
    )
    add_contracts_dir(parser)
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="check and report what would change, without changing the registry",
    )
    parser.add_argument(
        "--table",
        action="append",
        default=[],
        help="only this table; repeat for several",
    )
    return parser.parse_args(argv)


def configure_logging() -> None:
    """INFO to stderr, so stdout carries the report alone."""
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format=LOG_FORMAT)

    # The HTTP client logs every request at INFO; the report says what matters.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpx2").setLevel(logging.WARNING)


def run(args: argparse.Namespace) -> list[SubjectResult]:
    """Load the chosen contracts and bring the registry in line with them."""
    check_environment()

    contracts = select(load_catalogue(args.contracts_dir), args.table)
    if not contracts:
        raise ConfigurationError(f"no contracts (*.avsc) in {args.contracts_dir}")

    registry = Registry(args.registry_url)
    try:
        registrar = Registrar(registry, args.dry_run)
        return [result for c in contracts for result in registrar.sync(c)]
    finally:
        registry.close()


def failure_message(exc: RegistryError, url: str) -> str:
    """One line that says what went wrong and what to do about it."""
    if exc.status is None:
        return (
            f"error: schema registry unreachable at {url}; start the stack with "
            f"`make up`, or set {REGISTRY_URL_ENV} to a running registry"
        )
    return f"error: {exc} (error code {exc.error_code})"


def main(argv: list[str] | None = None) -> int:
    """Run the registration; return the exit status described in the module doc."""
    args = parse_args(argv)
    configure_logging()

    try:
        results = run(args)
    except RegistryError as exc:
        logger.debug("registry_url=%s error=%r", args.registry_url, exc.__cause__)
        print(failure_message(exc, args.registry_url), file=sys.stderr)
        return EXIT_FAILED
    except (ContractError, ConfigurationError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED

    print(render(results))
    if any(r.change is Change.INCOMPATIBLE for r in results):
        return EXIT_INCOMPATIBLE
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
