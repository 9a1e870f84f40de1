"""Tap statistics read their images through the one input pipeline (`data.pipeline`): the
DALI path (CPU backend) keeps the PIL path's images, order and skipped files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from dcbench.cli.entry import main
from dcbench.data import pipeline
from dcbench.data.synthetic_jpeg import add_bad_files, make_jpeg_folder
from dcbench.models import create_backbone
from dcbench.viz.tap_stats import image_dataset, pick_indices, spatial_mean, tap_stats


@pytest.fixture(scope="module")
def jpegs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = make_jpeg_folder(tmp_path_factory.mktemp("viz_jpeg") / "set", n_classes=3,
                            per_class=6, sizes="small", seed=6, progressive=0.3, cmyk=0.1,
                            rotated=0.3)
    add_bad_files(root / "c02")
    return root


def test_tap_stats_through_dali_match_the_pil_path(jpegs: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("nvidia.dali")
    from dcbench.data.dali_pipeline import DaliLoader

    model = create_backbone({"arch": "alexnet_small", "sobel": True}, seed=0)
    dataset = image_dataset(model, jpegs)
    chosen = pick_indices(len(dataset), 20)
    seen: list[int] = []
    prepare = DaliLoader._prepare
    monkeypatch.setattr(DaliLoader, "_prepare",
                        lambda self, planned: seen.append(1) or prepare(self, planned))
    stats = {p: tap_stats(model, dataset, "conv3", spatial_mean, chosen, 8, pipeline=p)
             for p in ("cpu", "dali")}
    assert seen  # the dali run went through DALI
    assert stats["cpu"].pipeline == "cpu" and stats["dali"].pipeline == "dali"
    assert np.array_equal(stats["cpu"].indices, stats["dali"].indices)
    assert stats["cpu"].skipped == stats["dali"].skipped > 0
    # ~0.1 grey level of pixel difference: the channel means move by far less than they vary
    spread = stats["cpu"].values.std(0).mean()
    assert (stats["cpu"].values - stats["dali"].values).abs().mean() < 0.05 * spread
    assert not torch.equal(stats["cpu"].values, stats["dali"].values)  # another decoder ran


def test_viz_input_pipeline_dali_without_dali_is_refused_before_writing(
        jpegs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(pipeline, "dali_available", lambda: False)
    out = tmp_path / "top.png"
    rc = main(["viz", "activations", "--model", "random-alexnet_small-sobel", "--data",
               str(jpegs), "--layer", "conv2", "--top", "2", "--input-pipeline", "dali",
               "--out", str(out)])
    assert rc == 2 and not out.exists()
    assert "dcbench[dali]" in capsys.readouterr().err


def test_viz_neighbors_cli_reads_through_dali(jpegs: Path, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("nvidia.dali")
    out = tmp_path / "nn.png"
    assert main(["viz", "neighbors", "--model", "random-alexnet_small-sobel", "--data",
                 str(jpegs), "--k", "2", "--query-indices", "0,7", "--input-pipeline", "dali",
                 "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert out.is_file() and "undecodable" in err
    assert "input pipeline dali (DALI; requested dali, device cpu)" in err.splitlines()


def test_viz_activations_says_which_pipeline_read_the_images(
        jpegs: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`auto` on a CPU machine reads with PIL (DALI is for CUDA), and the line says so;
    `cpu` is PIL too. One stderr line per run, before the PNG is written."""
    for request in ("auto", "cpu"):
        out = tmp_path / f"top-{request}.png"
        assert main(["viz", "activations", "--model", "random-alexnet_small-sobel", "--data",
                     str(jpegs), "--layer", "conv2", "--top", "2", "--channels", "0,1",
                     "--input-pipeline", request, "--out", str(out)]) == 0
        lines = [ln for ln in capsys.readouterr().err.splitlines()
                 if ln.startswith("input pipeline ")]
        assert out.is_file()
        assert lines == [f"input pipeline cpu (PIL; requested {request}, device cpu)"]
