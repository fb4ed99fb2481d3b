"""check-compat: offline against throwaway git repositories, online against a registry.

Every case of the issue runs in both modes on the same contract versions: the
earlier versions are committed to a git repository made for the test, and
registered in the session's real registry under a table name of the test's own.
The verdicts must agree, with the expected one, down to the fields named.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from contracts.catalogue import SCHEMA_DIR
from scripts import register_schemas
from scripts.check_compat import (
    Report,
    Verdict,
    check_offline,
    check_online,
    main,
    render_report,
)
from scripts.stack import Stack
from tests.contracts.builders import (
    GitRepo,
    Schema,
    field,
    nullable,
    orders,
    replace_field,
    with_field,
    with_symbols,
    without_field,
    write_contract,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
UNREACHABLE_URL = "http://127.0.0.1:1/apis/ccompat/v7"
DB_SCHEMA = "public"


@dataclass(frozen=True)
class Case:
    """Earlier versions, the candidate, and what both checks must say about it."""

    history: Callable[[str], list[Schema]]
    candidate: Callable[[str], Schema]
    verdict: Verdict
    fields: frozenset[tuple[str, str]] = frozenset()  # (part, field) of problems
    unsafe: bool = False
    text: tuple[str, ...] = ()  # in both reports


def _v1(table: str) -> list[Schema]:
    return [orders(table)]


def _leveled(level: str) -> Callable[[str], Schema]:
    return lambda t: orders(t, compatibility=level)


def _transitive_history(level: str) -> Callable[[str], list[Schema]]:
    def history(table: str) -> list[Schema]:
        first = with_field(
            orders(table, compatibility=level), nullable("legacy", "int")
        )
        return [first, without_field(first, "legacy")]

    return history


def _legacy_as_string(level: str) -> Callable[[str], Schema]:
    return lambda t: with_field(
        orders(t, compatibility=level), nullable("legacy", "string")
    )


CASES = {
    "add nullable field": Case(
        _v1,
        lambda t: with_field(orders(t), nullable("coupon", "string")),
        Verdict.COMPATIBLE,
        text=(
            "DDL the worker will apply:",
            'ADD COLUMN IF NOT EXISTS "coupon" text',
        ),
    ),
    "add non-null field without default": Case(
        _v1,
        lambda t: with_field(orders(t), field("region", "string")),
        Verdict.INCOMPATIBLE,
        frozenset({("contract", "region")}),
        text=("field region is new, not nullable and has no default",),
    ),
    "add non-null field with default": Case(
        _v1,
        lambda t: with_field(orders(t), field("region", "string", default="eu")),
        Verdict.COMPATIBLE,
        text=("rows already in the table hold NULL, not 'eu'",),
    ),
    "remove nullable field": Case(
        _v1,
        lambda t: without_field(orders(t), "note"),
        Verdict.COMPATIBLE,
        text=("column note stays (columns are never dropped)",),
    ),
    "rename without aliases": Case(
        _v1,
        lambda t: replace_field(orders(t), "quantity", field("qty", "int")),
        Verdict.INCOMPATIBLE,
        frozenset({("contract", "qty")}),
    ),
    "rename with aliases": Case(
        _v1,
        lambda t: replace_field(
            orders(t), "quantity", field("qty", "int", aliases=["quantity"])
        ),
        Verdict.COMPATIBLE,
        unsafe=True,
        text=('RENAME COLUMN "quantity" TO "qty"',),
    ),
    "widen int to long": Case(
        _v1,
        lambda t: replace_field(orders(t), "quantity", field("quantity", "long")),
        Verdict.COMPATIBLE,
        unsafe=True,
        text=(
            "column quantity is integer but the new version makes it bigint",
            'ALTER COLUMN "quantity" TYPE bigint',
        ),
    ),
    "widen int to long under FULL": Case(
        lambda t: [orders(t, compatibility="FULL")],
        lambda t: replace_field(
            orders(t, compatibility="FULL"), "quantity", field("quantity", "long")
        ),
        Verdict.INCOMPATIBLE,
        frozenset({("value", "quantity")}),
        text=("readers of version 1 cannot read records written with the new",),
    ),
    "enum symbol added": Case(
        _v1,
        lambda t: with_symbols(orders(t), "PLACED", "PAID", "SHIPPED"),
        Verdict.COMPATIBLE,
        text=("DDL the worker will apply: none",),
    ),
    "enum symbol removed": Case(
        _v1,
        lambda t: with_symbols(orders(t), "PLACED"),
        Verdict.INCOMPATIBLE,
        frozenset({("value", "status")}),
        text=("field status drops enum symbol(s) PAID",),
    ),
    "transitive violation across three versions": Case(
        _transitive_history("BACKWARD_TRANSITIVE"),
        _legacy_as_string("BACKWARD_TRANSITIVE"),
        Verdict.INCOMPATIBLE,
        frozenset({("value", "legacy")}),
        text=(
            "against versions 1, 2)",
            "field legacy changes type from int to string: the new version cannot "
            "read records written with version 1",
        ),
    ),
    "same three versions under BACKWARD": Case(
        _transitive_history("BACKWARD"),
        _legacy_as_string("BACKWARD"),
        Verdict.COMPATIBLE,
        unsafe=True,
        text=("column legacy is integer but the new version makes it text",),
    ),
    "new key field": Case(
        _v1,
        lambda t: with_field(
            orders(t, primary_key=["order_id", "region"]),
            field("region", "string"),
        ),
        Verdict.INCOMPATIBLE,
        frozenset({("key", "region"), ("value", "region")}),
    ),
    "doc changed only": Case(
        _v1,
        lambda t: orders(t, doc="Orders, one row per order; the doc changed."),
        Verdict.UNCHANGED,
    ),
    "unchanged contract": Case(_v1, orders, Verdict.UNCHANGED),
    "new contract": Case(lambda t: [], orders, Verdict.NEW),
}


def check_both(
    case: Case, table: str, git_repo: GitRepo, registry_url: str, tmp_path: Path
) -> tuple[Report, Report]:
    """Run the offline and the online check of one case; return both reports."""
    online_dir = tmp_path / "online"
    for version in case.history(table):
        git_repo.commit(version)
        write_contract(online_dir, version)
        assert register(registry_url, online_dir) == 0

    candidate = case.candidate(table)
    git_repo.write(candidate)
    write_contract(online_dir, candidate)

    offline = check_offline(git_repo.contracts, None, DB_SCHEMA)
    online = check_online(registry_url, online_dir, DB_SCHEMA)
    assert len(offline.reports) == len(online.reports) == 1
    return offline.reports[0], online.reports[0]


def register(registry_url: str, directory: Path) -> int:
    return register_schemas.main(
        ["--registry-url", registry_url, "--contracts-dir", str(directory)]
    )


def problem_fields(report: Report) -> frozenset[tuple[str, str]]:
    return frozenset((p.part.value, p.field) for p in report.problems)


@pytest.fixture
def registry_url(stack: Stack) -> str:
    return stack.config.registry_url


@pytest.mark.stack
@pytest.mark.parametrize("name", list(CASES))
def test_offline_and_online_agree(
    name: str, table: str, git_repo: GitRepo, registry_url: str, tmp_path: Path
) -> None:
    case = CASES[name]

    offline, online = check_both(case, table, git_repo, registry_url, tmp_path)

    assert offline.verdict is online.verdict is case.verdict
    assert problem_fields(offline) == problem_fields(online) == case.fields
    assert offline.unsafe is online.unsafe is case.unsafe
    for report in (offline, online):
        text = "\n".join(render_report(report))
        for expected in case.text:
            assert expected in text, f"{expected!r} missing from:\n{text}"


@pytest.mark.stack
def test_unchanged_contract_registers_no_new_version(
    table: str, registry_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_contract(tmp_path, orders(table))
    assert register(registry_url, tmp_path) == 0

    assert main(["--registry-url", registry_url, "--contracts-dir", str(tmp_path)]) == 0
    assert f"{table}: unchanged" in capsys.readouterr().out

    assert register(registry_url, tmp_path) == 0
    out = capsys.readouterr().out
    for subject in (f"activities.{table}-key", f"activities.{table}-value"):
        line = next(x for x in out.splitlines() if x.startswith(subject))
        assert line.split()[1] == "1"
        assert line.endswith("unchanged")


# --- offline: which history -------------------------------------------------------


def test_feature_branch_is_compared_with_its_merge_base_with_main(
    table: str, git_repo: GitRepo
) -> None:
    git_repo.commit(orders(table))
    git_repo.git("switch", "--quiet", "-c", "feature")
    git_repo.commit(with_symbols(orders(table), "PLACED"), message="drop a symbol")

    outcome = check_offline(git_repo.contracts, None, DB_SCHEMA)

    [report] = outcome.reports
    assert report.verdict is Verdict.INCOMPATIBLE
    assert outcome.baseline.startswith("merge base of HEAD and main")
    assert outcome.exit_code == 1


def test_remote_main_serves_when_there_is_no_local_main(
    table: str, git_repo: GitRepo, tmp_path: Path
) -> None:
    git_repo.commit(orders(table))
    clone = tmp_path / "clone"
    git_repo.git("clone", "--quiet", str(git_repo.root), str(clone))
    cloned = GitRepo.existing(clone)
    cloned.git("switch", "--quiet", "-c", "feature")
    cloned.git("branch", "--quiet", "-D", "main")
    cloned.commit(with_field(orders(table), nullable("coupon", "string")))

    outcome = check_offline(cloned.contracts, None, DB_SCHEMA)

    assert outcome.baseline.startswith("merge base of HEAD and origin/main")
    assert outcome.reports[0].verdict is Verdict.COMPATIBLE


@pytest.mark.parametrize("branch", ["main", "trunk"])
def test_on_main_or_without_main_the_working_tree_is_compared_with_head(
    branch: str, table: str, tmp_path: Path
) -> None:
    git_repo = GitRepo(tmp_path / "repo", branch=branch)
    git_repo.commit(orders(table))
    git_repo.commit(with_field(orders(table), nullable("coupon", "string")))

    assert check_offline(git_repo.contracts, None, DB_SCHEMA).reports[0].verdict is (
        Verdict.UNCHANGED
    )
    git_repo.write(with_symbols(orders(table), "PLACED"))
    outcome = check_offline(git_repo.contracts, None, DB_SCHEMA)

    assert outcome.baseline.startswith("HEAD")
    assert outcome.reports[0].verdict is Verdict.INCOMPATIBLE
    assert outcome.reports[0].compared == (1, 2)


def test_against_names_the_baseline(table: str, git_repo: GitRepo) -> None:
    git_repo.commit(orders(table))
    git_repo.commit(with_field(orders(table), nullable("coupon", "string")))

    outcome = check_offline(git_repo.contracts, "HEAD~1", DB_SCHEMA)

    [report] = outcome.reports
    assert report.verdict is Verdict.COMPATIBLE
    assert [c.name for c in report.plan.added] == ["coupon"]
    assert outcome.baseline.startswith("HEAD~1")


def test_level_change_alone_is_no_new_version_but_is_noted(
    table: str, git_repo: GitRepo
) -> None:
    git_repo.commit(orders(table), orders(f"{table}_b"))
    git_repo.write(orders(table, compatibility="FULL"))

    outcome = check_offline(git_repo.contracts, None, DB_SCHEMA, [table])

    [report] = outcome.reports
    assert report.verdict is Verdict.UNCHANGED
    assert report.notes == (
        "compatibility changes from BACKWARD_TRANSITIVE to FULL; register-schemas "
        "sets it before registering",
    )


def test_repository_without_commits_has_only_new_contracts(
    table: str, git_repo: GitRepo
) -> None:
    git_repo.write(orders(table))

    outcome = check_offline(git_repo.contracts, None, DB_SCHEMA)

    assert [r.verdict for r in outcome.reports] == [Verdict.NEW]
    assert outcome.exit_code == 0


def test_removed_contract_is_reported_and_allowed(
    table: str, git_repo: GitRepo
) -> None:
    git_repo.commit(orders(table), orders(f"{table}_b"))
    (git_repo.contracts / f"{table}_b.avsc").unlink()

    outcome = check_offline(git_repo.contracts, None, DB_SCHEMA)

    assert [(r.table, r.verdict) for r in outcome.reports] == [
        (table, Verdict.UNCHANGED),
        (f"{table}_b", Verdict.REMOVED),
    ]
    assert outcome.exit_code == 0


def test_contract_breaking_lint_rules_is_invalid(table: str, git_repo: GitRepo) -> None:
    git_repo.commit(orders(table))
    git_repo.write(with_field(orders(table), nullable("select", "string")))

    outcome = check_offline(git_repo.contracts, None, DB_SCHEMA)

    [report] = outcome.reports
    assert report.verdict is Verdict.INVALID
    assert (
        "field select: field name 'select' is a PostgreSQL reserved" in report.lint[0]
    )
    assert outcome.exit_code == 1


def test_removed_required_field_is_unsafe_for_its_not_null_column(
    table: str, git_repo: GitRepo
) -> None:
    git_repo.commit(orders(table))
    git_repo.write(without_field(orders(table), "quantity"))

    [report] = check_offline(git_repo.contracts, None, DB_SCHEMA).reports

    assert report.verdict is Verdict.COMPATIBLE
    assert report.unsafe
    text = "\n".join(render_report(report))
    assert "column quantity is NOT NULL but the new version has no field" in text
    assert f'ALTER TABLE "public"."{table}" ALTER COLUMN "quantity" DROP NOT NULL;' in (
        text
    )


def test_command_line_exits_1_with_the_report(table: str, git_repo: GitRepo) -> None:
    git_repo.commit(orders(table))
    git_repo.write(with_symbols(orders(table), "PLACED"))
    command = [sys.executable, "-m", "scripts.check_compat"]
    command += ["--contracts-dir", str(git_repo.contracts), "--db-schema", "sales"]

    done = subprocess.run(
        command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=120
    )

    assert done.returncode == 1, done.stderr
    assert f"{table}: incompatible (BACKWARD_TRANSITIVE, against version 1)" in (
        done.stdout
    )
    assert "summary: 1 incompatible" in done.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--against", "no-such-ref"], "--against 'no-such-ref' names no commit"),
        ([], "not a git repository"),
    ],
    ids=["unknown ref", "no repository"],
)
def test_offline_check_that_cannot_be_made_exits_2(
    args: list[str],
    message: str,
    table: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    if args:
        GitRepo(tmp_path).commit(orders(table))
        directory = tmp_path / "contracts"
    else:
        directory = tmp_path / "plain"
        write_contract(directory, orders(table))

    assert main(["--contracts-dir", str(directory), *args]) == 2
    assert message in capsys.readouterr().err


# --- online -----------------------------------------------------------------------


@pytest.mark.stack
def test_online_check_of_the_registered_catalogue_passes(
    registered: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    """What CI runs against the stack the tests start, after registering."""
    assert main(["--online"]) == 0

    out = capsys.readouterr().out
    packaged = len(list(SCHEMA_DIR.glob("*.avsc")))
    assert f"against {registered.config.registry_url}" in out
    assert f"summary: {packaged} unchanged" in out


@pytest.mark.stack
def test_registry_level_other_than_the_contracts_is_noted(
    table: str, registry_url: str, tmp_path: Path
) -> None:
    write_contract(tmp_path, orders(table, compatibility="NONE"))
    assert register(registry_url, tmp_path) == 0
    write_contract(tmp_path, with_symbols(orders(table), "PLACED"))

    [report] = check_online(registry_url, tmp_path, DB_SCHEMA).reports

    assert report.verdict is Verdict.INCOMPATIBLE
    assert any(
        "has compatibility NONE; registration sets BACKWARD_TRANSITIVE first" in note
        for note in report.notes
    )


def test_unreachable_registry_exits_2(
    table: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_contract(tmp_path, orders(table))

    args = ["--registry-url", UNREACHABLE_URL, "--contracts-dir", str(tmp_path)]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert f"schema registry unreachable at {UNREACHABLE_URL}" in err
