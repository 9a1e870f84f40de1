"""SIGKILL at any point (mid-epoch, mid-clustering, mid-save, mid-commit) and --resume: the run
finishes bit-identical to an uninterrupted one on CPU, and leaves no torn files."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from safetensors.torch import load_file

from dcbench.training.rundir import RunDir

from .conftest import MICRO_OVERRIDES

# micro run: 40 images, batch 8 -> 5 batches per epoch; batch:7 is in the middle of epoch 1
KILL_CHAIN = ["batch:7", "cluster:2", "save:2", "swap:2"]


def run_train(data: Path, out: Path, fault: str | None, resume: bool, epochs: int = 3) -> int:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    env.pop("DCBENCH_FAULT", None)
    if fault:
        env["DCBENCH_FAULT"] = fault
    cmd = [sys.executable, "-m", "dcbench", "train", "--recipe", "tiny", "--data", str(data),
           "--out", str(out), "--epochs", str(epochs)]
    cmd += [a for o in MICRO_OVERRIDES for a in ("--set", o)]
    if resume:
        cmd.append("--resume")
    return subprocess.run(cmd, env=env, capture_output=True, timeout=120).returncode


def assert_same_run(ref: Path, other: Path, epochs: int) -> None:
    a = load_file(ref / "final" / "model.safetensors")
    b = load_file(other / "final" / "model.safetensors")
    assert a.keys() == b.keys()
    assert all(a[k].equal(b[k]) for k in a), "resumed weights differ from the uninterrupted run"
    ref_run, other_run = RunDir(ref), RunDir(other)
    for epoch in range(epochs):
        np.testing.assert_array_equal(ref_run.load_assignment(epoch),
                                      other_run.load_assignment(epoch))

    def numbers(run: RunDir) -> list[dict]:
        return [{k: v for k, v in r.items() if not k.endswith("_s") and k != "time"}
                for r in run.read_log()]

    assert [r["epoch"] for r in numbers(other_run)] == list(range(epochs))
    assert numbers(other_run) == numbers(ref_run)
    leftovers = [p for p in other.rglob("*") if p.name.endswith(".tmp") or ".latest." in p.name]
    assert leftovers == []


def test_kill_mid_epoch_then_resume_is_bit_identical(micro_data: Path, tmp_path: Path) -> None:
    ref, crashed = tmp_path / "ref", tmp_path / "crashed"
    assert run_train(micro_data, ref, None, resume=False, epochs=2) == 0
    assert run_train(micro_data, crashed, "batch:7", resume=False, epochs=2) == -9
    assert RunDir(crashed).load_state()["epoch"] == 1 and not (crashed / "final").exists()
    assert run_train(micro_data, crashed, None, resume=True, epochs=2) == 0
    assert_same_run(ref, crashed, 2)


@pytest.mark.slow
def test_kill_anywhere_then_resume_is_bit_identical(micro_data: Path, tmp_path: Path) -> None:
    ref, crashed = tmp_path / "ref", tmp_path / "crashed"
    assert run_train(micro_data, ref, None, resume=False) == 0
    resume = False
    for fault in KILL_CHAIN:
        assert run_train(micro_data, crashed, fault, resume=resume) == -9, fault
        resume = True
        assert not (crashed / "final").exists()
        if fault.startswith("swap"):
            run = RunDir(crashed)
            assert not run.latest.exists()  # killed between the two renames
            assert run.has_state() and run.load_state()["epoch"] == 2  # repaired
    assert run_train(micro_data, crashed, None, resume=True) == 0
    assert_same_run(ref, crashed, 3)


def test_a_kill_inside_the_swap_keeps_the_users_files(micro_data: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    assert run_train(micro_data, run_dir, None, resume=False, epochs=1) == 0
    mine = run_dir / "checkpoints" / "latest" / "mine.txt"
    mine.write_text("my notes")
    assert run_train(micro_data, run_dir, "swap:1", resume=True, epochs=2) == -9
    assert run_train(micro_data, run_dir, None, resume=True, epochs=2) == 0
    assert mine.read_text() == "my notes"
    assert RunDir(run_dir).load_state()["epoch"] == 2
