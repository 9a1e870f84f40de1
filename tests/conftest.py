"""Shared test setup: an isolated DCBENCH_HOME, offline Hub, few threads, quiet progress bars."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("OMP_NUM_THREADS", "2")
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
os.environ["TQDM_DISABLE"] = "1"


@pytest.fixture(autouse=True)
def isolated_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    """Every test gets its own empty $DCBENCH_HOME (hub cache, features, results)."""
    home = tmp_path_factory.mktemp("dcbench_home")
    monkeypatch.setenv("DCBENCH_HOME", str(home))
    return home
