"""The versions of each contract file that git remembers, read with the git CLI.

The offline compatibility check and the contract docs need no server: the earlier
versions of a contract are the versions of its file in the repository's history.
Versions are the file's contents at the commits that changed it, reachable from
a chosen ref, oldest first; identical contents count once.
"""

from __future__ import annotations

import logging
import subprocess
from dataclasses import dataclass
from pathlib import Path

from contracts.errors import ConfigurationError

logger = logging.getLogger(__name__)

# The branches the default comparison starts from, in order of preference: a local
# main, else the remote one that CI checkouts usually have instead.
MAIN_BRANCHES = ("refs/heads/main", "refs/remotes/origin/main")

GIT_TIMEOUT_S = 60


class HistoryError(ConfigurationError):
    """The contracts' git history cannot be read: no git, no repository, bad ref."""


@dataclass(frozen=True)
class Revision:
    """One version of a contract file: the commit that wrote it and its text."""

    commit: str
    text: str


@dataclass(frozen=True)
class Baseline:
    """The commit a check compares with, and how it was chosen (for the report)."""

    commit: str | None
    description: str

    @property
    def short(self) -> str:
        return self.commit[:12] if self.commit else "none"


class ContractHistory:
    """The git history of one contracts folder."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory.resolve()
        if not self.directory.is_dir():
            raise HistoryError(f"contracts folder {directory} does not exist")

        root = self._git("rev-parse", "--show-toplevel", cwd=self.directory)
        self.root = Path(root.strip())
        prefix = self.directory.relative_to(self.root).as_posix()
        self.prefix = "" if prefix == "." else f"{prefix}/"

    def __repr__(self) -> str:
        return f"<ContractHistory root={self.root} prefix={self.prefix!r}>"

    def baseline(self, against: str | None = None) -> Baseline:
        """The commit to compare with: ``against``, else the merge base with main.

        Without a main branch, or on main itself, that is HEAD: the working tree
        is compared with the last commit. A repository without commits has no
        baseline, and every contract in it is new.
        """
        if against is not None:
            commit = self.commit(f"{against}^{{commit}}")
            if commit is None:
                raise HistoryError(f"--against {against!r} names no commit")
            return Baseline(commit, against)

        head = self.commit("HEAD")
        if head is None:
            return Baseline(None, "no commits yet")
        for branch in MAIN_BRANCHES:
            main = self.commit(branch)
            if main is None:
                continue
            base = self._merge_base(head, main)
            name = branch.removeprefix("refs/heads/").removeprefix("refs/remotes/")
            if base is not None and base != head:
                return Baseline(base, f"merge base of HEAD and {name}")
            break
        return Baseline(head, "HEAD")

    def commit(self, ref: str) -> str | None:
        """The commit a ref names, or None."""
        done = self._run("rev-parse", "--verify", "--quiet", ref)
        return done.stdout.strip() if done.returncode == 0 else None

    def tables(self, commit: str | None) -> list[str]:
        """The contracts (table names) present at a commit."""
        if commit is None:
            return []
        listing = self._git("ls-tree", "--name-only", commit, "--", self.prefix or ".")
        names = [Path(line).name for line in listing.splitlines()]
        return sorted(name[: -len(".avsc")] for name in names if name.endswith(".avsc"))

    def text_at(self, table: str, commit: str | None) -> str | None:
        """The contract file as it was at a commit, or None if it was not there."""
        if commit is None:
            return None
        shown = self._run("show", f"{commit}:{self.prefix}{table}.avsc")
        return shown.stdout if shown.returncode == 0 else None

    def revisions(self, table: str, commit: str | None) -> list[Revision]:
        """Each distinct version of a contract reachable from a commit, oldest first."""
        if commit is None:
            return []
        path = f"{self.prefix}{table}.avsc"
        log = self._git("log", "--format=%H", "--reverse", commit, "--", path)

        revisions, seen = [], set()
        for sha in log.split():
            shown = self._run("show", f"{sha}:{path}")
            if shown.returncode != 0:  # the commit deleted the file
                continue
            if shown.stdout not in seen:
                seen.add(shown.stdout)
                revisions.append(Revision(sha, shown.stdout))
        logger.debug("table=%s commit=%s revisions=%d", table, commit, len(revisions))
        return revisions

    def _merge_base(self, head: str, other: str) -> str | None:
        done = self._run("merge-base", head, other)
        return done.stdout.strip() if done.returncode == 0 else None

    def _git(self, *args: str, cwd: Path | None = None) -> str:
        """Run git; raise HistoryError with git's own words when it fails."""
        done = self._run(*args, cwd=cwd)
        if done.returncode != 0:
            raise HistoryError(
                f"git {' '.join(args)} failed in {cwd or self.root}: "
                f"{done.stderr.strip()}"
            )
        return done.stdout

    def _run(self, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
        try:
            return subprocess.run(
                ["git", *args],
                cwd=cwd or self.root,
                capture_output=True,
                text=True,
                encoding="utf-8",
                timeout=GIT_TIMEOUT_S,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise HistoryError(f"cannot run git: {exc}") from exc
