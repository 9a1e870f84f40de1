"""DeepCluster training through the DALI input pipeline (DALI's CPU backend here): a run
finishes end to end, logs which pipeline ran, skips the PIL path's bad files, and two gloo
processes embed every image exactly once (the same pseudo-labels as one process)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dcbench.data.synthetic_jpeg import add_bad_files, make_jpeg_folder
from dcbench.training.rundir import RunDir

from .test_ddp import launch

pytest.importorskip("nvidia.dali")


@pytest.fixture(scope="module")
def jpeg_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """36 generated JPEGs (some progressive, CMYK, EXIF-rotated) in 4 classes + 9 awkward
    files (4 of them undecodable)."""
    root = make_jpeg_folder(tmp_path_factory.mktemp("dali_train") / "train", n_classes=4,
                            per_class=9, sizes="small", seed=5, cmyk=0.1, rotated=0.2)
    add_bad_files(root / "c01")
    return root


def test_dali_training_run_finishes_and_logs_its_pipeline(jpeg_data: Path, tmp_path: Path
                                                          ) -> None:
    """Two epochs through DALI (clustering pass: resize + centre crop; training pass:
    RandomResizedCrop + flip) finish, log `input_pipeline: dali`, and skip the 4 files PIL
    cannot decode (the pixel agreement with PIL is tests/data/test_dali_pipeline.py's)."""
    result = launch(jpeg_data, tmp_path / "run", 1, "input_pipeline=dali", epochs=2)
    assert result.returncode == 0, result.stderr[-6000:]
    records = RunDir(tmp_path / "run").read_log()
    assert [r["input_pipeline"] for r in records] == ["dali", "dali"]
    assert [r["n_bad_images"] for r in records] == [4, 4]
    assert records[0]["n_clusters"] == 6 and all(np.isfinite(r["train_loss"]) for r in records)


def test_two_gloo_processes_cover_every_image_once(jpeg_data: Path, tmp_path: Path) -> None:
    """Each rank reads its shard through DALI; the gathered embeddings of the 2-process run
    cluster exactly as one process does, so every image was embedded once and in place."""
    for out, nproc in ((tmp_path / "one", 1), (tmp_path / "two", 2)):
        result = launch(jpeg_data, out, nproc, "input_pipeline=dali", epochs=1)
        assert result.returncode == 0, result.stderr[-6000:]
    one, two = RunDir(tmp_path / "one"), RunDir(tmp_path / "two")
    np.testing.assert_array_equal(one.load_assignment(0), two.load_assignment(0))
    assert (one.load_assignment(0) >= 0).sum() == 41  # 45 files, 4 undecodable
