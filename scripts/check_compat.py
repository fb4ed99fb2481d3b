"""Check contract changes before they are registered, and say what they do.

Two modes, both used in CI:

* offline (the default): each changed contract in the working tree is compared
  with the versions of its file in git history, reachable from a baseline commit:
  ``--against REF``, else the merge base of HEAD with ``main`` (or
  ``origin/main``), else HEAD itself (no main branch, or on main: the working tree
  against the last commit). No server is needed.
* online (``--online`` or ``--registry-url``): each contract is compared with what
  the registry holds, and the registry's ``/compatibility`` endpoint gives its
  verdict, so what CI says is what ``register-schemas`` will do.

Both modes apply the same rules (``contracts.compatibility``): Avro's own checker
on the key and derived value schemas, under the contract's compatibility level,
plus the contract's own rule on new required fields. Apicurio Registry 3.3
answers the compatibility endpoint with a bare verdict and no reasons, so the
online report gives the registry's verdict with the reasons Avro's checker finds
against the registered versions.

For every compatible change the report shows the DDL the worker will apply, or
why the change is unsafe for the database although Avro allows it, with the
migration to run first (``contracts.evolution``). Unsafe-for-the-database is a
warning, not a refusal: the worker stops the table until it is migrated, and
nothing is lost.

Version numbers in the report are the subject's: offline, the N-th distinct
schema of the subject in the file's history; online, the registry's version.

Exit status: 0 compatible, 1 at least one contract incompatible or breaking the
lint rules, 2 the check could not be made (no git history, registry unreachable).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from pathlib import Path
from typing import Any

from contracts import evolution
from contracts.catalogue import DEFAULT_COMPATIBILITY, Contract, load_contract
from contracts.compatibility import (
    Part,
    Problem,
    Version,
    check_subject,
    compared_versions,
    level_rule,
    new_required_fields,
)
from contracts.errors import ConfigurationError, ContractError, RegistryError
from contracts.evolution import Plan, TableShape
from contracts.settings import check_environment
from scripts.contract_history import Baseline, ContractHistory, Revision
from scripts.lint_contracts import lint_file
from scripts.options import add_contracts_dir
from scripts.register_schemas import (
    DEFAULT_REGISTRY_URL,
    REGISTRY_URL_ENV,
    Registry,
    Target,
    configure_logging,
    failure_message,
    targets,
)

logger = logging.getLogger(__name__)

DB_SCHEMA_ENV = "GATEKEEPER_DB_SCHEMA"
DEFAULT_DB_SCHEMA = "public"

EXIT_OK = 0
EXIT_INCOMPATIBLE = 1
EXIT_FAILED = 2

NO_REGISTRY_REASONS = (
    "the registry refuses it without saying why, and Avro's checker finds no "
    "reason here; `make register-schemas` reports the registry's own"
)


PART_LABELS = {
    Part.KEY: "key schema",
    Part.VALUE: "value schema",
    Part.CONTRACT: "contract rule",
}


class Verdict(StrEnum):
    """Where a contract stands after the check."""

    NEW = "new"
    UNCHANGED = "unchanged"
    COMPATIBLE = "compatible"
    INCOMPATIBLE = "incompatible"
    INVALID = "invalid"
    REMOVED = "removed"

    @property
    def refused(self) -> bool:
        return self in (Verdict.INCOMPATIBLE, Verdict.INVALID)


@dataclass(frozen=True)
class History:
    """A contract's earlier versions, from git or from the registry.

    ``value`` and ``key`` are the subjects' schemas, oldest first; ``shape`` is the
    table they imply (``contracts.evolution``); ``level`` the latest level.
    """

    value: tuple[Version, ...] = ()
    key: tuple[Version, ...] = ()
    shape: TableShape | None = None
    level: str | None = None


@dataclass(frozen=True)
class Report:
    """The check of one contract: verdict, reasons, and what the table gets."""

    table: str
    verdict: Verdict
    level: str = DEFAULT_COMPATIBILITY
    compared: tuple[int, ...] = ()
    problems: tuple[Problem, ...] = ()
    lint: tuple[str, ...] = ()
    plan: Plan | None = None
    created: TableShape | None = None
    notes: tuple[str, ...] = ()

    @property
    def unsafe(self) -> bool:
        """A compatible change that the worker cannot apply without a migration."""
        compatible = self.verdict is Verdict.COMPATIBLE
        return compatible and self.plan is not None and not self.plan.safe


@dataclass(frozen=True)
class Outcome:
    """Every contract's report, and what they were compared with."""

    mode: str
    baseline: str
    reports: tuple[Report, ...] = ()

    @property
    def exit_code(self) -> int:
        refused = any(r.verdict.refused for r in self.reports)
        return EXIT_INCOMPATIBLE if refused else EXIT_OK


# --- the rules, whichever the source of history -----------------------------------


def assess(contract: Contract, history: History, db_schema: str) -> Report:
    """Check a changed contract against its history: Avro, the contract, the table.

    1. Avro's checker on the key schema, then on the derived value schema;
    2. the contract's own rule on new required fields;
    3. the plan for the table: DDL to apply, or hazards with their migrations.
    """
    level = contract.compatibility
    problems = _avro_problems(contract, history)
    problems += new_required_fields(contract, history.value)

    plan = None
    if history.shape is not None:
        plan = evolution.plan(history.shape, contract, db_schema)
    compared = tuple(v.number for v in compared_versions(level, history.value))
    verdict = Verdict.INCOMPATIBLE if problems else Verdict.COMPATIBLE
    notes = _level_notes(contract, history)
    return Report(
        contract.table,
        verdict,
        level,
        compared,
        sort_problems(problems),
        plan=plan,
        notes=notes,
    )


def sort_problems(problems: Iterable[Problem]) -> tuple[Problem, ...]:
    """Key schema first, then value schema, then the contract's rules."""
    order = list(Part)
    return tuple(sorted(problems, key=lambda p: order.index(p.part)))


def _avro_problems(contract: Contract, history: History) -> list[Problem]:
    level = contract.compatibility
    problems = []
    key_schema = contract.key_schema()
    if key_schema is not None and history.key:
        problems += check_subject(Part.KEY, key_schema, history.key, level)
    problems += check_subject(Part.VALUE, contract.value_schema(), history.value, level)
    return problems


def _level_notes(contract: Contract, history: History) -> tuple[str, ...]:
    if history.level is None or history.level == contract.compatibility:
        return ()
    return (
        f"compatibility changes from {history.level} to {contract.compatibility}; "
        "register-schemas sets it before registering",
    )


def new_report(contract: Contract, note: str = "") -> Report:
    """A contract with no earlier version: the worker creates its table."""
    notes = (note,) if note else ()
    return Report(
        contract.table,
        Verdict.NEW,
        contract.compatibility,
        created=evolution.create_shape(contract),
        notes=notes,
    )


def fold_shape(contracts: Sequence[Contract], db_schema: str) -> TableShape | None:
    """The table a sequence of versions implies, earlier migrations assumed done."""
    if not contracts:
        return None
    shape = evolution.create_shape(contracts[0])
    for contract in contracts[1:]:
        shape = evolution.evolve(shape, contract, db_schema)
    return shape


def lint_report(path: Path) -> Report | None:
    """An INVALID report when the contract breaks a lint rule, else None."""
    problems = lint_file(path)
    if not problems:
        return None
    return Report(path.stem, Verdict.INVALID, lint=tuple(str(p) for p in problems))


# --- offline: history from git ----------------------------------------------------


def check_offline(
    directory: Path, against: str | None, db_schema: str, tables: Sequence[str] = ()
) -> Outcome:
    """Compare every contract in the folder with its history up to the baseline."""
    history = ContractHistory(directory)
    baseline = history.baseline(against)
    paths = _select(directory, tables)

    reports = [_offline_report(path, history, baseline, db_schema) for path in paths]
    present = {path.stem for path in paths}
    for table in history.tables(baseline.commit):
        if table not in present and (not tables or table in tables):
            reports.append(_removed_report(table))
    reports.sort(key=lambda r: r.table)
    where = f"{baseline.description} ({baseline.short})"
    return Outcome("offline", where, tuple(reports))


def _offline_report(
    path: Path, history: ContractHistory, baseline: Baseline, db_schema: str
) -> Report:
    table = path.stem
    revisions = history.revisions(table, baseline.commit)
    text = path.read_text(encoding="utf-8")
    if revisions and text == history.text_at(table, baseline.commit):
        return Report(table, Verdict.UNCHANGED, _level_of(text))

    invalid = lint_report(path)
    if invalid is not None:
        return invalid
    contract = load_contract(path)
    earlier = [c for c in (earlier_contract(table, r) for r in revisions) if c]
    if not earlier:
        return new_report(contract)

    past = git_history(earlier, db_schema)
    if _same_schemas(contract, past):
        return _unchanged_report(contract, past)
    return assess(contract, past, db_schema)


def _unchanged_report(contract: Contract, history: History) -> Report:
    """No new schema for either subject, though the file changed: say how."""
    notes = list(_level_notes(contract, history))
    latest_key = history.key[-1].schema if history.key else None
    if (history.value[-1].schema, latest_key) != (
        contract.value_schema(),
        contract.key_schema(),
    ):
        notes.append(
            "only docs or aliases changed: the registry keeps the version it has"
        )
    return Report(
        contract.table, Verdict.UNCHANGED, contract.compatibility, notes=tuple(notes)
    )


def git_history(earlier: Sequence[Contract], db_schema: str) -> History:
    """Number the distinct key and value schemas of earlier versions, as a registry.

    A version that changes neither schema (only its compatibility level, say) is
    no new version of either subject; registering it would not make one.
    """
    value = _distinct(c.value_schema() for c in earlier)
    key = _distinct(c.key_schema() for c in earlier)
    shape = fold_shape(earlier, db_schema)
    return History(value, key, shape, earlier[-1].compatibility)


def _distinct(schemas: Iterable[Mapping[str, Any] | None]) -> tuple[Version, ...]:
    versions: list[Version] = []
    for schema in schemas:
        if schema is None:
            continue
        if all(identity(v.schema) != identity(schema) for v in versions):
            versions.append(Version(len(versions) + 1, schema))
    return tuple(versions)


def identity(schema: Any) -> Any:
    """A schema without docs and aliases: what makes a new version of a subject.

    Apicurio Registry 3.3 registers no new version for a change of docs or aliases
    alone (it answers with the existing one), and the offline check counts
    versions the same way. Confluent's registry would register one; there the
    online check calls such a change compatible where offline says unchanged.
    """
    if isinstance(schema, list):
        return [identity(item) for item in schema]
    if isinstance(schema, Mapping):
        return {
            key: identity(value)
            for key, value in schema.items()
            if key not in ("doc", "aliases")
        }
    return schema


def _same_schemas(contract: Contract, history: History) -> bool:
    """Whether the contract changes neither of its subjects' latest schemas."""
    latest_key = history.key[-1].schema if history.key else None
    return (
        bool(history.value)
        and identity(history.value[-1].schema) == identity(contract.value_schema())
        and identity(latest_key) == identity(contract.key_schema())
    )


def earlier_contract(table: str, revision: Revision) -> Contract | None:
    """An earlier version as a Contract; None when it never was a usable one.

    Earlier versions are not held to today's lint rules, only to being a record
    with fields, since their schemas were registered as they were.
    """
    try:
        schema = json.loads(revision.text)
        contract = Contract(
            table,
            schema,
            tuple(schema.get("primary_key", ())),
            schema.get("compatibility", DEFAULT_COMPATIBILITY),
        )
        contract.value_schema()
        contract.key_schema()
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        logger.warning(
            "table=%s commit=%s skipped: not a usable contract (%s)",
            table,
            revision.commit[:12],
            exc,
        )
        return None
    return contract


def _level_of(text: str) -> str:
    try:
        return json.loads(text).get("compatibility", DEFAULT_COMPATIBILITY)
    except (ValueError, AttributeError):
        return DEFAULT_COMPATIBILITY


def _removed_report(table: str) -> Report:
    note = (
        "the contract file is gone: the gateway stops accepting its activities; "
        "its subjects, topic and table stay as they are"
    )
    return Report(table, Verdict.REMOVED, notes=(note,))


# --- online: history from the registry --------------------------------------------


def check_online(
    registry_url: str, directory: Path, db_schema: str, tables: Sequence[str] = ()
) -> Outcome:
    """Compare every contract in the folder with what the registry holds."""
    registry = Registry(registry_url)
    try:
        reports = [
            _online_report(registry, path, db_schema)
            for path in _select(directory, tables)
        ]
    finally:
        registry.close()
    return Outcome("online", registry_url, tuple(reports))


def _online_report(registry: Registry, path: Path, db_schema: str) -> Report:
    """1. lint, 2. new or unchanged?, 3. the rules, 4. the registry's verdicts."""
    invalid = lint_report(path)
    if invalid is not None:
        return invalid
    contract = load_contract(path)

    if registry.versions(contract.value_subject) is None:
        return new_report(contract, "no version in the registry yet")
    subjects = targets(contract)
    changed = [t for t in subjects if registry.lookup(t.subject, t.schema) is None]
    if not changed:
        return Report(contract.table, Verdict.UNCHANGED, contract.compatibility)

    past = registry_history(registry, contract, db_schema)
    report = assess(contract, past, db_schema)
    for target in changed:
        if registry.versions(target.subject) is not None:
            report = _with_registry_verdict(registry, contract, target, report)
    return report


def registry_history(registry: Registry, contract: Contract, db_schema: str) -> History:
    """The subjects' registered versions, and the table they imply.

    The registered value schemas keep the key fields' types but make every other
    field optional, so the implied table knows no NOT NULL outside the key: a
    removed field's NOT NULL column is a hazard only the offline check can see.
    """
    value = tuple(Version(n, s) for n, s in registry.schemas(contract.value_subject))
    key = tuple(Version(n, s) for n, s in registry.schemas(contract.key_subject))
    key_fields = tuple(f["name"] for f in key[-1].schema["fields"]) if key else ()

    earlier = [
        Contract(contract.table, v.schema, key_fields, contract.compatibility)
        for v in value
    ]
    return History(value, key, fold_shape(earlier, db_schema), None)


def _with_registry_verdict(
    registry: Registry, contract: Contract, target: Target, report: Report
) -> Report:
    """Let the registry decide its subject, keeping Avro's reasons for the why.

    Registration sets the contract's level before it checks; when the subject has
    another level now, the registry's verdict is for the wrong rule, and Avro's
    checker under the contract's level decides instead.
    """
    part = Part.KEY if target.subject == contract.key_subject else Part.VALUE
    level = registry.level(target.subject)
    if level != contract.compatibility:
        note = (
            f"{target.subject} has compatibility {level}; registration sets "
            f"{contract.compatibility} first, so Avro's checker decides here"
        )
        return replace(report, notes=(*report.notes, note))

    # Asked about /versions, Apicurio 3.3 compares with every version even under a
    # non-transitive level, where registration compares with the latest alone.
    transitive = level_rule(contract.compatibility).transitive
    verdict = registry.check(target.subject, target.schema, every_version=transitive)
    mine = [p for p in report.problems if p.part is part]
    others = [p for p in report.problems if p.part is not part]
    said = "compatible" if verdict.compatible else "incompatible"
    notes = [f"the registry finds {target.subject} {said} under {level}"]
    notes += [f"registry: {reason}" for reason in verdict.reasons]
    if verdict.compatible and mine:
        notes.append(
            f"{target.subject}: the registry accepts what Avro's checker refuses"
        )
        mine = []
    elif not verdict.compatible and not mine:
        compared = report.compared or (0,)
        mine = [Problem(part, "", "registry", NO_REGISTRY_REASONS, "", compared)]

    problems = sort_problems([*others, *mine])
    verdict_now = Verdict.INCOMPATIBLE if problems else Verdict.COMPATIBLE
    return replace(
        report, verdict=verdict_now, problems=problems, notes=(*report.notes, *notes)
    )


# --- shared -----------------------------------------------------------------------


def _select(directory: Path, tables: Sequence[str]) -> list[Path]:
    """The contract files to check: the named tables, or all of them."""
    if not directory.is_dir():
        raise ConfigurationError(f"contracts folder {directory} does not exist")
    paths = sorted(directory.glob("*.avsc"))
    if not tables:
        return paths

    unknown = sorted(set(tables) - {p.stem for p in paths})
    if unknown:
        raise ConfigurationError(f"--table names no contract: {', '.join(unknown)}")
    return [p for p in paths if p.stem in tables]


def render(outcome: Outcome, directory: Path) -> str:
    """The report: one block per contract, then a summary line."""
    lines = [
        f"check-compat ({outcome.mode}): {len(outcome.reports)} contract(s) in "
        f"{directory}, against {outcome.baseline}",
    ]
    for report in outcome.reports:
        lines += ["", *render_report(report)]
    lines += ["", _summary(outcome.reports)]
    return "\n".join(lines)


def render_report(report: Report) -> list[str]:
    headline = f"{report.table}: {report.verdict.value}"
    if report.unsafe:
        headline += ", UNSAFE FOR THE DATABASE"
    if report.compared:
        versions = ", ".join(str(n) for n in report.compared)
        plural = "s" if len(report.compared) > 1 else ""
        headline += f" ({report.level}, against version{plural} {versions})"

    lines = [headline]
    lines += [f"  - {problem}" for problem in report.lint]
    lines += [f"  - {PART_LABELS[p.part]}: {p.reason}" for p in report.problems]
    if report.created is not None:
        lines += _render_created(report.created)
    if report.plan is not None and not report.verdict.refused:
        lines += _render_plan(report.plan)
    lines += [f"  note: {note}" for note in report.notes]
    return lines


def _render_created(shape: TableShape) -> list[str]:
    key = f", primary key ({', '.join(shape.primary_key)})" if shape.primary_key else ""
    lines = [f"  the worker creates the table{key}:"]
    for column in shape.columns:
        not_null = " NOT NULL" if column.not_null else ""
        lines.append(f"    {column.name} {column.type}{not_null}")
    return lines


def _render_plan(plan: Plan) -> list[str]:
    lines = []
    for hazard in plan.hazards:
        lines.append(f"  ! {hazard.problem}")
        if hazard.migration is not None:
            lines.append(f"    migrate first: {evolution.as_text(hazard.migration)};")
    ddl = plan.ddl()
    if ddl is not None:
        lines.append("  DDL the worker will apply:")
        lines += [f"    {line}" for line in evolution.as_text(ddl).splitlines()]
    elif plan.safe:
        lines.append("  DDL the worker will apply: none")
    lines += [f"  note: {note}" for note in plan.notes]
    return lines


def _summary(reports: Sequence[Report]) -> str:
    counts = {v: sum(r.verdict is v for r in reports) for v in Verdict}
    parts = [f"{n} {v.value}" for v, n in counts.items() if n]
    unsafe = sum(r.unsafe for r in reports)
    if unsafe:
        parts.append(f"{unsafe} unsafe for the database")
    return "summary: " + (", ".join(parts) or "no contracts")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m scripts.check_compat",
        description="Check contract changes for compatibility, offline against git "
        "history or online against the registry.",
    )
    add_contracts_dir(parser)
    parser.add_argument(
        "--against",
        metavar="REF",
        help="offline: compare with the history up to this git ref (default: the "
        "merge base with main, else HEAD)",
    )
    parser.add_argument(
        "--online",
        action="store_true",
        help=f"check against the registry at --registry-url (default: "
        f"${REGISTRY_URL_ENV}, else {DEFAULT_REGISTRY_URL})",
    )
    parser.add_argument(
        "--registry-url", help="the registry to check against; implies --online"
    )
    parser.add_argument(
        "--db-schema",
        default=os.environ.get(DB_SCHEMA_ENV) or DEFAULT_DB_SCHEMA,
        help=f"PostgreSQL schema named in the DDL (default: ${DB_SCHEMA_ENV}, "
        f"else {DEFAULT_DB_SCHEMA})",
    )
    parser.add_argument(
        "--table", action="append", default=[], help="only this table; repeatable"
    )
    args = parser.parse_args(argv)
    if args.registry_url and args.against:
        parser.error("--against is for the offline check; --registry-url goes online")
    return args


def registry_url(args: argparse.Namespace) -> str:
    return args.registry_url or os.environ.get(REGISTRY_URL_ENV) or DEFAULT_REGISTRY_URL


def run(args: argparse.Namespace) -> Outcome:
    """The check the arguments ask for."""
    check_environment()
    if args.online or args.registry_url:
        return check_online(
            registry_url(args), args.contracts_dir, args.db_schema, args.table
        )
    return check_offline(args.contracts_dir, args.against, args.db_schema, args.table)


def main(argv: list[str] | None = None) -> int:
    """Run the check; return the exit status described in the module doc."""
    args = parse_args(argv)
    configure_logging()

    try:
        outcome = run(args)
    except RegistryError as exc:
        return _fail(failure_message(exc, registry_url(args)))
    except (ContractError, ConfigurationError) as exc:
        return _fail(f"error: {exc}")

    print(render(outcome, args.contracts_dir))
    return outcome.exit_code


def _fail(message: str) -> int:
    print(message, file=sys.stderr)
    print("check-compat could not check the contracts", file=sys.stderr)
    return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
