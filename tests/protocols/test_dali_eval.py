"""Evaluations through the DALI input pipeline (CPU backend): `--set input_pipeline=dali`
runs linear-conv's augmented training crops + 10-crop evaluation and k-NN's feature passes
through DALI end to end, with results next to the PIL path's."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import dcbench
from dcbench.cli.entry import main
from dcbench.data import pipeline
from dcbench.data.dali_pipeline import DaliLoader
from dcbench.data.synthetic import make_voc_set
from dcbench.protocols.base import get_protocol

pytest.importorskip("nvidia.dali")

MODEL = "arch:alexnet_small?sobel=1"


@pytest.fixture(scope="module")
def jpeg_cls(cls_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The session's tiny classification set (PNG) re-encoded as JPEG, same tree."""
    root = tmp_path_factory.mktemp("jpeg_cls") / "set"
    for png in cls_data.rglob("*.png"):
        out = root / png.relative_to(cls_data).with_suffix(".jpg")
        out.parent.mkdir(parents=True, exist_ok=True)
        Image.open(png).convert("RGB").save(out, "JPEG", quality=92)
    return root


def _eval(data: Path, out: Path, protocol: str, pipeline: str, *extra: str) -> list[dict]:
    rc = main(["eval", "--protocol", protocol, "--model", MODEL, "--data", str(data),
               "--schedule", "smoke", "--store", str(out.parent / "results.sqlite"),
               "--no-progress", "--out", str(out), "--set", f"input_pipeline={pipeline}",
               *extra])
    assert rc == 0
    return json.loads((out / "results.json").read_text())


@pytest.fixture()
def dali_batches(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the batches DaliLoader prepares."""
    seen: list[int] = []
    prepare = DaliLoader._prepare

    def counting(self, planned):
        batch = prepare(self, planned)
        seen.append(len(batch))
        return batch

    monkeypatch.setattr(DaliLoader, "_prepare", counting)
    return seen


def test_linear_conv_trains_and_evaluates_through_dali(jpeg_cls: Path, tmp_path: Path,
                                                       dali_batches: list[int]) -> None:
    args = ("--layers", "conv5", "--set", "epochs=2")
    pil = _eval(jpeg_cls, tmp_path / "pil", "linear-conv", "cpu", *args)
    assert dali_batches == []
    dali = _eval(jpeg_cls, tmp_path / "dali", "linear-conv", "dali", *args)
    # train crops (2 epochs + selection) and the 10-crop passes all went through DALI
    assert sum(dali_batches) > 2 * 64
    values = {(r["split"], r["metric"]): r["value"] for r in pil if r["layer"] == "conv5"}
    for row in dali:
        if row["layer"] == "conv5" and row["metric"] == "top1":
            # 24 val images: one image is 4.2 points; the pixels differ by ~0.1 grey level
            assert abs(row["value"] - values[(row["split"], "top1")]) <= 12.5


def test_dali_without_dali_is_refused_before_writing(
        jpeg_cls: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(pipeline, "dali_available", lambda: False)
    rc = main(["eval", "--protocol", "knn", "--model", MODEL, "--data", str(jpeg_cls),
               "--schedule", "smoke", "--store", str(tmp_path / "r.sqlite"), "--out",
               str(tmp_path / "run"), "--set", "input_pipeline=dali"])
    assert rc == 2 and not (tmp_path / "run").exists() and not (tmp_path / "r.sqlite").exists()
    assert "dcbench[dali]" in capsys.readouterr().err


def test_knn_feature_passes_through_dali(jpeg_cls: Path, tmp_path: Path,
                                         dali_batches: list[int]) -> None:
    pil = _eval(jpeg_cls, tmp_path / "pil", "knn", "cpu", "--set", "layers=[conv5]")
    dali = _eval(jpeg_cls, tmp_path / "dali", "knn", "dali", "--set", "layers=[conv5]")
    assert sum(dali_batches) == 4 * (16 + 6)  # every train and val image, once
    runs = {p: json.loads((tmp_path / p / "run.json").read_text()) for p in ("pil", "dali")}
    assert runs["pil"]["input_pipeline"] == "cpu" and runs["dali"]["input_pipeline"] == "dali"
    a = np.array([r["value"] for r in pil])
    b = np.array([r["value"] for r in dali])
    assert a.shape == b.shape and np.abs(a - b).max() <= 12.5


def test_voc07_cls_crops_through_dali_follow_the_seeded_views(
        tmp_path: Path, dali_batches: list[int]) -> None:
    """voc07-cls reseeds the RNG per item (`SeededView`): the DALI path draws its
    RandomResizedCrop + flip training crops and its random evaluation crops from the same
    per-item seeds, so its mAP stays next to the PIL path's."""
    root = make_voc_set(tmp_path / "voc", n_train=8, n_val=6, n_test=6, size=96, seed=0)
    protocol = get_protocol("voc07-cls")
    maps = {}
    for name in ("cpu", "dali"):
        config = protocol.resolve_config(schedule="smoke", overrides=[
            "iterations=4", "batch_size=4", "eval_passes=2", "checkpoint_every=2",
            f"input_pipeline={name}"])
        model = dcbench.load_model("arch:alexnet_small?sobel=1&seed=0")
        rows = protocol.run(model, root, config, run_id="t", device="cpu", progress=False,
                            work_dir=tmp_path / name)
        maps[name] = {(r.split, r.metric): r.value for r in rows}
    assert sum(dali_batches) >= 4 * 4 + 2 * 6  # training batches + the test passes
    assert maps["cpu"].keys() == maps["dali"].keys()
    assert abs(maps["cpu"][("test", "map")] - maps["dali"][("test", "map")]) < 5.0
