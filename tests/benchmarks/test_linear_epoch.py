"""benchmarks/linear_epoch.py in its CPU mode (tiny sizes): mixed-size JPEGs on disk, the
all-heads linear-conv epoch next to its one-head baseline and the trunk bound."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import torch
from PIL import Image

from benchmarks.linear_epoch import TINY, per_head_sync_step, write_mixed_jpegs
from dcbench.protocols.probe.heads import HeadSpec, LinearHead, OptimSettings, ProbeSet

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
    assert len(rows) == 3 and report["params"]["jpegs"] == 48
    epoch, bound, step = rows
    assert "10 heads, 48 " in epoch["what"] and epoch["unit"] == "img/s"
    assert epoch["dcbench"] > 0 and epoch["baseline"] > 0 and epoch["ratio"] > 0
    assert bound["dcbench"] == epoch["dcbench"] and bound["baseline"] > 0
    assert "10 heads" in step["what"] and step["dcbench"] > 0 and step["baseline"] > 0


def test_the_per_head_sync_baseline_trains_like_train_step() -> None:
    """The benchmark's baseline is the old step: same heads after the same batches."""
    gen = torch.Generator().manual_seed(0)
    feats = {"a": torch.randn(12, 5, generator=gen), "b": torch.randn(12, 3, generator=gen)}
    labels = torch.randint(0, 3, (12,), generator=gen)

    def probes() -> ProbeSet:
        torch.manual_seed(0)
        return ProbeSet([HeadSpec(f"{layer} {wd}", layer, LinearHead(feats[layer].shape[1], 3),
                                  0.1, wd) for layer in feats for wd in (0.0, 1e-2)],
                        OptimSettings(0.9, "sqrt"), 3)

    new, old = probes(), probes()
    for start in (0, 4, 8):
        part = {k: v[start:start + 4] for k, v in feats.items()}
        got = new.train_step(part, labels[start:start + 4])
        assert float(got) == per_head_sync_step(old, part, labels[start:start + 4])
    for name in new.heads:
        for a, b in zip(new.heads[name].parameters(), old.heads[name].parameters(),
                        strict=True):
            assert torch.equal(a, b)


def test_tiny_run_under_torchrun_reports_global_rates_once(tmp_path: Path) -> None:
    """`torchrun --nproc_per_node 2 benchmarks/linear_epoch.py --tiny`: every image once over
    the two ranks, one report (rank 0), the step row naming the collectives it compares."""
    out = tmp_path / "linear_epoch.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT),
           "CUDA_VISIBLE_DEVICES": ""}
    result = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                             "--nproc_per_node=2", str(ROOT / "benchmarks" / "linear_epoch.py"),
                             "--tiny", "--jpegs", "32", "--steps", "2", "--out", str(out)],
                            capture_output=True, text=True, env=env, timeout=300, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = json.loads(out.read_text())["rows"]
    assert "10 heads, 32 " in rows[0]["what"] and "2 processes" in rows[0]["what"]
    assert "1 all-reduce a step" in rows[2]["notes"] and rows[2]["baseline"] > 0
    assert result.stderr.count("probe step alone") == 1
