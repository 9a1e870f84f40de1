"""benchmarks/gpu_epoch.py in its CPU mode (tiny sizes): every part (a)-(d) reports its figures
(comparisons next to their baseline), the JSON carries the machine and the sizes, and the
epoch formula built from measured phases agrees with a measured whole epoch within 15%."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_tiny_cpu_run_reports_every_part(tmp_path: Path) -> None:
    out = tmp_path / "gpu_epoch.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT),
           "CUDA_VISIBLE_DEVICES": ""}
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_epoch.py"), "--tiny",
                             "--out", str(out)], capture_output=True, text=True, env=env,
                            timeout=300, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(out.read_text())
    rows = report["rows"]
    parts = {r["what"][:3] for r in rows}
    assert parts == {"(a)", "(b)", "(c)", "(d)"}
    assert all(r["dcbench"] > 0 for r in rows)
    compared = [r for r in rows if r["unit"] in ("s", "img/s") and r["baseline_name"] != "-"]
    assert len(compared) >= 8 and all(r["baseline"] and r["ratio"] > 0 for r in compared)
    fidelity = next(r for r in rows if "fidelity" in r["what"])
    assert 0 <= fidelity["dcbench"] <= 1
    assert report["params"]["arch"] == "alexnet_small" and report["machine"]["gpu"] is None
    # issue 18: the epoch formula (measured phases only) agrees with a measured whole epoch
    check = next(r for r in rows if "formula vs measured" in r["what"])
    assert 0.85 <= check["dcbench"] / check["baseline"] <= 1.15, check
    phases = [r for r in rows if "epoch phase" in r["what"]]
    assert len(phases) == 4
