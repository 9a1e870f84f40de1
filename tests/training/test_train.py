"""The DeepCluster loop end to end on a micro image folder (in process)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from dcbench.cli.entry import main
from dcbench.core.errors import UserError
from dcbench.data.folders import ImageFolderDataset
from dcbench.models.checkpoints import load_hub_dir
from dcbench.training.config import resolve_config
from dcbench.training.deepcluster import train
from dcbench.training.rundir import RunDir

from .conftest import MICRO_OVERRIDES


def micro(*extra: str, epochs: int = 2):
    return resolve_config("tiny", [*MICRO_OVERRIDES, *extra], epochs=epochs)


def test_run_writes_logs_assignments_and_checkpoints(micro_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    train(micro(), micro_data, out)
    run = RunDir(out)
    records = run.read_log()
    assert [r["epoch"] for r in records] == [0, 1]
    for key in ("clustering_s", "clustering_loss", "n_clusters", "size_max", "train_loss",
                "nmi_labels", "ratio_edge_intra_class", "features_s", "train_s"):
        assert key in records[1], key
    assert records[0]["nmi_prev"] is None and 0 <= records[1]["nmi_prev"] <= 1
    assert records[1]["n_clusters"] == 6 and records[1]["n_bad_images"] == 2
    # corrupt files are skipped (label -1), every other image is in one of the k clusters
    samples = ImageFolderDataset(micro_data).samples
    bad = np.array(["corrupt" in path for path, _ in samples])
    labels = run.load_assignment(1)
    assert labels.shape == (len(samples),) and (labels[bad] == -1).all()
    assert set(labels[~bad]) == set(range(6))
    # hub-format checkpoints load strictly; state.pt loads with weights_only
    model = load_hub_dir(out / "final")
    assert (out / "final" / "README.md").is_file() and model.config["arch"] == "alexnet_small"
    # final/ holds no clustering head (as the official eval drops it): model(x) is the fc7
    # embedding of width num_features; checkpoints/latest keeps the head for --resume
    assert model.top_layer is None and model.config["num_classes"] == 0
    with torch.no_grad():
        x = torch.rand(2, 3, 32, 32)
        assert torch.equal(model.eval()(x), model.forward_features(x, ["fc7"])["fc7"])
    assert model(x).shape == (2, model.num_features)
    assert load_hub_dir(run.latest).top_layer.out_features == 6
    state = torch.load(run.state, weights_only=True)
    assert state["epoch"] == 2 and torch.equal(state["prev_labels"], torch.from_numpy(labels))
    assert "k: 6" in (out / "config.yaml").read_text()


def test_resume_guards_and_extension(micro_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    train(micro(epochs=1), micro_data, out)
    with pytest.raises(UserError, match="--resume"):
        train(micro(epochs=1), micro_data, out)
    with pytest.raises(UserError, match="different settings: k"):
        train(micro("k=5", epochs=2), micro_data, out, resume=True)
    train(micro(epochs=2), micro_data, out, resume=True)
    assert [r["epoch"] for r in RunDir(out).read_log()] == [0, 1]


def test_pic_sgt_and_subset_variants(micro_data: Path, tmp_path: Path) -> None:
    train(micro("clustering=pic", "pic_nnn=3", "pic_singletons=drop", epochs=1), micro_data,
          tmp_path / "pic")
    rec = RunDir(tmp_path / "pic").read_log()[0]
    assert rec["n_clusters"] >= 1 and np.isfinite(rec["train_loss"])
    train(micro("sgt=3", epochs=1), micro_data, tmp_path / "sgt")
    assert np.isfinite(RunDir(tmp_path / "sgt").read_log()[0]["train_loss"])
    train(micro("subset_size=20", epochs=2), micro_data, tmp_path / "subset")
    run = RunDir(tmp_path / "subset")
    chosen = [set(np.flatnonzero(run.load_assignment(e) >= 0)) for e in (0, 1)]
    assert all(18 <= len(c) <= 20 for c in chosen) and chosen[0] != chosen[1]


def test_cli_train_and_bad_input(micro_data: Path, tmp_path: Path,
                                 capsys: pytest.CaptureFixture) -> None:
    args = ["train", "--recipe", "tiny", "--out", str(tmp_path / "cli"), "--epochs", "1"]
    sets = [a for o in MICRO_OVERRIDES for a in ("--set", o)]
    assert main([*args, "--data", str(tmp_path / "missing"), *sets]) == 2
    assert "image folder not found" in capsys.readouterr().err
    assert not (tmp_path / "cli").exists()
    assert main([*args, "--data", str(micro_data), *sets, "--set", "k=100"]) == 2
    assert "k=100 exceeds" in capsys.readouterr().err
    assert main([*args, "--data", str(micro_data), *sets]) == 0
    record = json.loads((tmp_path / "cli" / "log.jsonl").read_text().splitlines()[0])
    assert record["epoch"] == 0
