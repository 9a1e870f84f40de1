"""benchmarks/gpu_run.sh without a GPU: its step limits fit the 8-minute budget, and its
control flow runs every step (each under `timeout`, logged with its exit status) with the
Python steps stubbed, skipping the input-pipeline comparison only when its module is absent."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "gpu_run.sh"
BUDGET_S, GRACE_S = 8 * 60, 5


def step_limits(text: str) -> list[int]:
    """Every step's limit: `step N ...` calls and the `part:N` pairs of the part loop."""
    direct = [int(n) for n in re.findall(r"^\s*step (\d+) ", text, flags=re.M)]
    loop = re.search(r"for part in ([^;]+);", text)
    looped = [int(p.split(":")[1]) for p in loop.group(1).split()] if loop else []
    return direct + looped


def test_step_limits_fit_the_budget() -> None:
    limits = step_limits(SCRIPT.read_text())
    assert len(limits) == 8  # wheel, machine, (d), linear-conv, pipelines, (c), (a), (b)
    assert sum(limits) + GRACE_S * len(limits) <= BUDGET_S, limits


@pytest.mark.parametrize("with_pipeline", [True, False])
def test_every_step_runs_under_timeout(tmp_path: Path, with_pipeline: bool) -> None:
    repo = tmp_path / "repo"
    (repo / "benchmarks").mkdir(parents=True)
    shutil.copy(SCRIPT, repo / "benchmarks" / "gpu_run.sh")
    if with_pipeline:
        (repo / "benchmarks" / "input_pipeline.py").write_text("")
    stubs = tmp_path / "bin"
    stubs.mkdir()
    calls = tmp_path / "calls.txt"
    (stubs / "python3").write_text(f'#!/bin/sh\necho "$@" >> {calls}\n')
    (stubs / "python3").chmod(0o755)
    out = tmp_path / "out"
    env = {**os.environ, "OUT": str(out), "PATH": f"{stubs}{os.pathsep}{os.environ['PATH']}"}
    result = subprocess.run(["bash", "benchmarks/gpu_run.sh"], cwd=repo, env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    log = (out / "gpu_epoch.log").read_text()
    ran = re.findall(r"^== (.+): exit (\d+) after", log, flags=re.M)
    names = [name for name, _ in ran]
    expected = ["machine", "part (d)", "linear-conv epoch"] + (
        ["input pipelines"] if with_pipeline else []) + ["part (c)", "part (a)", "part (b)"]
    assert names == expected
    assert all(rc == "0" for name, rc in ran if name != "machine")  # no nvidia-smi here
    invoked = calls.read_text().splitlines()
    assert any(line.startswith("-m benchmarks --only input_pipeline") for line in invoked) \
        == with_pipeline
    assert ("input pipelines: skipped" in log) != with_pipeline
    assert any("benchmarks/linear_epoch.py" in line for line in invoked)
