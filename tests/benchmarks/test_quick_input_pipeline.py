"""`dcbench bench --quick --only input_pipeline`: the three input pipelines side by side on
generated JPEGs, plus the Caffe VOC warp and retrieval's batch-1 resize through PIL and
DALI (structure and sanity only; timings are never asserted)."""

from __future__ import annotations

import importlib.util
import json
import math
import os
from pathlib import Path

import pytest
import torch

from dcbench.cli.entry import main


def test_quick_input_pipeline_rows(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "r.json"
    assert main(["bench", "--quick", "--only", "input_pipeline", "--output", str(out)]) == 0
    data = json.loads(out.read_text())
    assert data["failures"] == {}
    rows = data["rows"]
    dali = importlib.util.find_spec("nvidia.dali") is not None
    # training crops, centre crops: torchvision (+ DALI); the Caffe warp, retrieval: DALI
    assert len(rows) == (6 if dali else 2)
    for row in rows:
        assert row["benchmark"] == "input_pipeline" and row["unit"] == "img/s"
        assert math.isfinite(row["dcbench"]) and row["dcbench"] > 0
        assert math.isfinite(row["ratio"]) and row["ratio"] > 0
        retrieval = row["what"].startswith("retrieval")
        assert row["baseline_name"] == ("PIL (calling thread)" if retrieval
                                        else f"PIL workers ({_cores()})")
        assert ("batch 1" in row["notes"]) == retrieval
    assert sum(": DALI (" in r["what"] for r in rows) == (4 if dali else 0)
    assert [r["what"].split(":")[0] for r in rows if ": DALI (" in r["what"]] == (
        ["training crops (RandomResizedCrop 224 + flip)",
         "centre-crop features (Resize 256 + CenterCrop 224)",
         "Caffe VOC07 warp (voc07-cls pipeline_all=caffe, 224, scale 0.5-2)",
         "retrieval longest-side resize (1024 px, batch 1, no workers)"] if dali else [])
    assert "| input_pipeline |" in capsys.readouterr().out


def _cores() -> int:
    return max(1, min(8, os.cpu_count() or 1))


@pytest.mark.parametrize("job,batch", [("caffe", 4), ("retrieval", 1)])
def test_protocol_rows_read_through_the_protocols_dali_loader(tmp_path: Path, job: str,
                                                              batch: int) -> None:
    """The Caffe and retrieval rows time the loaders their protocols run: the DALI warp
    (`WarpLoader`) and the batch-1 resizing graph (`ResizingLoader`), with the JPEGs
    through DALI (no per-file fallback), and the same images as the PIL path."""
    pytest.importorskip("nvidia.dali")
    from benchmarks.input_pipeline import _loaders
    from dcbench.data.dali_warp import WarpLoader
    from dcbench.data.item_plans import ResizingLoader
    from dcbench.data.synthetic_jpeg import make_jpeg_folder

    root = make_jpeg_folder(tmp_path / "j", n_classes=2, per_class=4, sizes="small", seed=1,
                            progressive=0.3, cmyk=0.2, rotated=0.2)
    loaders = _loaders(root, job, batch, 2, torch.device("cpu"))
    assert sorted(loaders) == ["dali", "pil"]
    dali, pil = loaders["dali"](), loaders["pil"]()
    assert type(dali) is {"caffe": WarpLoader, "retrieval": ResizingLoader}[job]
    torch.manual_seed(0)
    got = [(b.indices.tolist(), tuple(b.images.shape)) for b in dali]
    torch.manual_seed(0)
    want = [(b.indices.tolist(), tuple(b.images.shape)) for b in pil]
    assert got == want and dali.fallbacks == 0
    assert sum(len(i) for i, _ in got) == (8 if job == "caffe" else 2)  # every 4th: 2 of 8
