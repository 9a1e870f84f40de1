"""The training loop with the device input pipeline (`input_pipeline=gpu`, decoding on the CPU
here): bytes in workers, decode + crops in the main process, bad files counted as today."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dcbench.training.rundir import RunDir

from .test_ddp import launch


def test_device_input_pipeline_trains_and_counts_bad_files(micro_data: Path, tmp_path: Path
                                                           ) -> None:
    """input_pipeline=gpu on CPU (the device pipeline decoding on the CPU): the run finishes,
    skips the same 2 corrupt files as the PIL pipeline, and clusters into k clusters."""
    result = launch(micro_data, tmp_path / "run", 1, "input_pipeline=gpu")
    assert result.returncode == 0, result.stderr[-6000:]
    records = RunDir(tmp_path / "run").read_log()
    assert [r["n_bad_images"] for r in records] == [2, 2]
    assert records[0]["n_clusters"] == 6 and np.isfinite(records[1]["train_loss"])


def test_device_input_pipeline_with_two_workers_completes(micro_data: Path, tmp_path: Path
                                                           ) -> None:
    """Issue 18: `dcbench train` with the device pipeline and 2 DataLoader workers used to
    hang at its first batch (memory-mapped byte tensors could not leave the workers); it now
    finishes, with the same bad files counted, and records its numerics flags."""
    result = launch(micro_data, tmp_path / "run", 1, "input_pipeline=gpu", "workers=2",
                    epochs=1)
    assert result.returncode == 0, result.stderr[-6000:]
    (record,) = RunDir(tmp_path / "run").read_log()
    assert record["n_bad_images"] == 2 and np.isfinite(record["train_loss"])
    assert record["matmul_fp32"] == "ieee" and record["conv_fp32"] == "ieee"
    assert record["cudnn_benchmark"] is False  # CPU run
