"""benchmarks/linear_epoch.py in its CPU mode (tiny sizes): mixed-size JPEGs on disk, the
all-heads linear-conv epoch next to its one-head baseline and the trunk bound."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from PIL import Image

from benchmarks.linear_epoch import TINY, write_mixed_jpegs

ROOT = Path(__file__).resolve().parents[2]


def test_jpegs_have_mixed_sizes_in_range(tmp_path: Path) -> None:
    p = {**TINY, "jpegs": 40, "classes": 4}
    folder = write_mixed_jpegs(tmp_path, p, seed=1)
    files = sorted(folder.rglob("*.jpg"))
    assert len(files) == 40 and len({f.parent.name for f in files}) == 4
    sizes = set()
    for f in files:
        with Image.open(f) as img:
            assert img.format == "JPEG" and img.mode == "RGB"
            sizes.add(img.size)
    assert len(sizes) > 30  # not one uniform size
    assert all(p["side_min"] <= s <= p["side_max"] for size in sizes for s in size)


def test_tiny_cpu_run_reports_the_epoch(tmp_path: Path) -> None:
    out = tmp_path / "linear_epoch.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT),
           "CUDA_VISIBLE_DEVICES": ""}
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "linear_epoch.py"),
                             "--tiny", "--jpegs", "48", "--out", str(out)], capture_output=True,
                            text=True, env=env, timeout=300, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(out.read_text())
    rows = report["rows"]
    assert len(rows) == 2 and report["params"]["jpegs"] == 48
    epoch, bound = rows
    assert "10 heads, 48 " in epoch["what"] and epoch["unit"] == "img/s"
    assert epoch["dcbench"] > 0 and epoch["baseline"] > 0 and epoch["ratio"] > 0
    assert bound["dcbench"] == epoch["dcbench"] and bound["baseline"] > 0
