"""benchmarks/gpu_smoke.py refuses clearly on CPU, and runs end to end with --allow-cpu."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "gpu_smoke.py"
TINY = ["--images", "48", "--size", "64", "--arch", "alexnet_small", "--batch", "16", "--k", "6",
        "--pca", "16"]


def smoke(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True,
                          env=env, timeout=180)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU refusal")
def test_refuses_on_cpu_without_flag_or_with_big_sizes() -> None:
    result = smoke()
    assert result.returncode == 2 and "no CUDA GPU here" in result.stderr
    result = smoke("--allow-cpu")  # realistic defaults are not tiny
    assert result.returncode == 2 and "tiny sizes only" in result.stderr


def test_allow_cpu_tiny_epoch_reports_throughput(tmp_path: Path) -> None:
    out = tmp_path / "smoke.json"
    result = smoke("--allow-cpu", *TINY, "--out", str(out))
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(out.read_text())
    assert report["features_images_per_s"] > 0 and report["train_images_per_s"] > 0
    assert 0 < report["clustering_share"] < 1
    assert report["k"] == 6 and report["train_loss"] > 0
