"""Shared fixtures: run `dcbench leaderboard ...` through the real CLI entry point."""

from __future__ import annotations

from collections.abc import Callable

import pytest

import dcbench.cli


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, tmp_path) -> Callable[..., int]:
    """`cli("leaderboard", "list")` -> exit status, via `dcbench.cli.main` (home in tmp_path)."""
    monkeypatch.setenv("DCBENCH_HOME", str(tmp_path / "home"))
    return lambda *argv: dcbench.cli.main([str(a) for a in argv])
