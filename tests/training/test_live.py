"""What a training run reports live: the tags of each epoch (checked against its log.jsonl
record), the cluster-size histogram, images every `image_every` epochs, a killed and resumed
run with each TensorBoard step once and the same W&B run, and nothing changed without the
extras."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from dcbench.core.tracking import Tracker, TrackingOptions
from dcbench.training.config import resolve_config
from dcbench.training.deepcluster import train
from dcbench.training.live import RECORD_TAGS, cluster_sizes, epoch_scalars, report_epoch
from dcbench.training.rundir import RunDir

from ..core.wandb_records import wait_for_rows, wandb_run_records
from .conftest import MICRO_OVERRIDES

#: every scalar tag of the README's training table
TRAIN_TAGS = {*RECORD_TAGS, "train/lr", "speed/features_img_s", "speed/train_img_s"}


class Recorder(Tracker):
    def __init__(self) -> None:
        self.scalar_calls: list[tuple[int, dict]] = []
        self.histograms: list[tuple[int, str, np.ndarray]] = []
        self.images: list[tuple[int, str]] = []

    def scalars(self, section, step, values):
        assert section == "train"
        self.scalar_calls.append((step, dict(values)))

    def histogram(self, section, step, tag, values):
        self.histograms.append((step, tag, np.asarray(values)))

    def image(self, section, step, tag, image):
        assert image.dtype == np.uint8 and image.ndim == 3
        self.images.append((step, tag))


def test_epoch_scalars_rename_the_record_and_derive_the_rates():
    record = {"epoch": 3, "clustering_loss": 2.5, "clustering_s": 1.5, "nmi_prev": None,
              "nmi_labels": 0.4, "ratio_edge_intra_class": 0.3, "n_clusters": 6,
              "largest_share": 0.25, "n_singletons": 0, "train_loss": 1.75, "features_s": 2.0,
              "train_s": 4.0, "epoch_s": 8.0, "n_bad_images": 2, "n_images": 40,
              "n_draws": 38}
    values = epoch_scalars(record, lr=0.05)
    assert set(values) == TRAIN_TAGS
    assert values["clustering/loss"] == 2.5 and values["train/loss"] == 1.75
    assert values["clustering/nmi_prev"] is None and values["train/lr"] == 0.05
    assert values["speed/features_img_s"] == 40 / 2.0
    assert values["speed/train_img_s"] == 38 / 4.0
    assert epoch_scalars({"epoch": 0}, lr=0.1)["speed/train_img_s"] is None


def test_cluster_sizes_count_the_members_of_non_empty_clusters():
    labels = np.array([4, 4, 0, -1, 2, 4, 0, -1])
    _, counts = np.unique(labels[labels >= 0], return_counts=True)
    assert sorted(cluster_sizes(labels).tolist()) == sorted(counts.tolist()) == [1, 2, 3]
    assert cluster_sizes(np.array([-1, -1])).size == 0


def test_images_every_n_epochs_and_a_failing_drawing_never_stops_training(capsys):
    tracker = Recorder()
    calls = []

    def draw(model, labels, epoch):
        calls.append(epoch)
        if epoch == 4:
            raise ValueError("no image")
        return {"images/clusters": np.zeros((4, 4, 3), np.uint8)}

    for epoch in range(6):
        report_epoch(tracker, {"epoch": epoch, "train_loss": 1.0}, np.array([0, 1, 1]),
                     lr=0.1, images=draw, image_every=2)
    assert calls == [0, 2, 4]
    assert tracker.images == [(0, "images/clusters"), (2, "images/clusters")]
    assert "images of epoch 4 not drawn: no image" in capsys.readouterr().err
    assert [s for s, _ in tracker.scalar_calls] == list(range(6))
    assert [(s, t) for s, t, _ in tracker.histograms][:1] == [(0, "clustering/cluster_sizes")]


def _train_cli(data: Path, out: Path, env: dict, *extra: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "dcbench", "train", "--recipe", "tiny", "--data", str(data),
           "--out", str(out), "--epochs", "3", "--set", "image_every=1", *extra]
    cmd += [a for o in MICRO_OVERRIDES for a in ("--set", o)]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)


def _wandb_services() -> set[int]:
    """Pids of the running W&B service processes (`wandb-core`)."""
    pids = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if b"wandb-core" in (entry / "cmdline").read_bytes():
                    pids.add(int(entry.name))
            except OSError:
                continue
    return pids


def _wait_until_gone(pids: set[int], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while pids and time.monotonic() < deadline:
        pids = {p for p in pids if Path(f"/proc/{p}").exists()}
        time.sleep(0.5)


def test_killed_and_resumed_run_continues_the_same_tensorboard_and_wandb_run(
        micro_data, tmp_path):
    accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
    has_wandb = importlib.util.find_spec("wandb") is not None  # the W&B half needs it
    wandb = ["--wandb", "proj"] if has_wandb else []
    env = {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "offline",
           "WANDB_DIR": str(tmp_path), "WANDB_SILENT": "true"}
    env.pop("DCBENCH_FAULT", None)
    # a W&B service started by an earlier test in this pytest process is advertised in
    # WANDB_SERVICE: the runs here must start their own (the killed one's dies with it)
    env.pop("WANDB_SERVICE", None)
    out = tmp_path / "run"
    # killed in epoch 1's commit: TensorBoard already has its step 1, the state is epoch 0's
    services = _wandb_services()
    killed = _train_cli(micro_data, out, {**env, "DCBENCH_FAULT": "swap:1"}, *wandb)
    assert killed.returncode == -9
    # the killed process's W&B service holds its run id until it notices the death (seconds
    # on a quiet machine, longer under load): resume once it has gone, as a user would
    _wait_until_gone(_wandb_services() - services, timeout_s=180)
    resumed = _train_cli(micro_data, out, env, *wandb, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    reader = accumulator.EventAccumulator(str(out / "tensorboard" / "train"), size_guidance={
        "scalars": 0, "images": 0, "histograms": 0})
    reader.Reload()
    tags = reader.Tags()
    assert set(tags["scalars"]) == TRAIN_TAGS
    for tag in TRAIN_TAGS - {"clustering/nmi_prev"}:
        assert [e.step for e in reader.Scalars(tag)] == [0, 1, 2], tag
    assert [e.step for e in reader.Scalars("clustering/nmi_prev")] == [1, 2]  # none at 0
    log = RunDir(out).read_log()
    assert [e.value for e in reader.Scalars("train/loss")] == \
        pytest.approx([r["train_loss"] for r in log])
    assert [e.value for e in reader.Scalars("clustering/nmi_labels")] == \
        pytest.approx([r["nmi_labels"] for r in log])
    assert set(tags["images"]) == {"images/clusters", "images/conv1_filters"}
    assert [e.step for e in reader.Images("images/clusters")] == [0, 1, 2]
    sizes = reader.Histograms("clustering/cluster_sizes")
    assert [h.step for h in sizes] == [0, 1, 2]
    assert sizes[-1].histogram_value.num == log[-1]["n_clusters"]
    assert sizes[-1].histogram_value.sum == 40  # micro_data: every decodable image, clustered
    status = json.loads((out / "process.json").read_text())
    assert "--resume" in status["argv"] and status["kind"] == "train"
    if not has_wandb:
        return
    assert "wandb sync" in resumed.stderr
    # W&B: both starts wrote into the one run whose id is saved in the run folder (what the
    # killed process had not handed to W&B's service is lost with it, as with kill -9)
    saved = json.loads((out / "wandb-run.json").read_text())
    files = sorted(tmp_path.glob("wandb/offline-run-*/run-*.wandb"))
    assert len(files) == 2 and all(f.name == f"run-{saved['id']}.wandb" for f in files)
    rows = [r for r in wait_for_rows(files, 6) if "train/train/loss" in r]
    assert [r["train/step"] for r in rows][-2:] == [1, 2]
    config = {i.key for f in files for rec in wandb_run_records(f)
              if rec.WhichOneof("record_type") == "run" for i in rec.run.config.update}
    assert {"k", "arch", "versions"} <= config


def test_without_the_extras_training_runs_and_writes_the_same_log(micro_data, tmp_path,
                                                                 monkeypatch):
    config = resolve_config("tiny", MICRO_OVERRIDES + ["image_every=1"], epochs=2)
    with_tb = tmp_path / "with"
    train(config, micro_data, with_tb, tracking=TrackingOptions())
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    monkeypatch.setitem(sys.modules, "wandb", None)
    without = tmp_path / "without"
    train(config, micro_data, without, tracking=TrackingOptions(wandb="proj"))
    assert (with_tb / "tensorboard" / "train").is_dir()
    assert not (without / "tensorboard").exists() and not (without / "wandb-run.json").exists()

    def numbers(run: Path) -> list[dict]:
        return [{k: v for k, v in r.items() if not k.endswith("_s") and k != "time"}
                for r in RunDir(run).read_log()]

    assert numbers(without) == numbers(with_tb)
    assert (with_tb / "final" / "model.safetensors").read_bytes() == \
        (without / "final" / "model.safetensors").read_bytes()
