"""Fixtures for the contract tooling's tests: unique tables and git repositories.

Each test gets a table name of its own (``t_<uuid8>``), so its subjects never meet
another test's in the session's shared registry, and a throwaway git repository
in its own temporary folder for the offline checks.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from tests.contracts.builders import GitRepo


@pytest.fixture
def table() -> str:
    """A table name no other test uses."""
    return f"t_{uuid.uuid4().hex[:8]}"


@pytest.fixture
def git_repo(tmp_path: Path) -> GitRepo:
    """An empty git repository on branch main, contracts under ``contracts/``."""
    return GitRepo(tmp_path / "repo")
