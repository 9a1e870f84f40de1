"""The linear-conv core on tensors: selection never looks at val; both numbers reported."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dcbench.protocols.linear_conv import linear_probe
from dcbench.protocols.probe.batch_sources import TensorSource
from dcbench.protocols.probe.feature_cache import FeatureSet
from dcbench.protocols.probe.frozen_features import tap_featurizer
from dcbench.protocols.probe.heads import OptimSettings
from dcbench.protocols.probe.selection import FitSettings


def _blobs(n_per_class: int, seed: int, shift: float = 3.0) -> FeatureSet:
    gen = torch.Generator().manual_seed(seed)
    labels = torch.arange(3).repeat_interleave(n_per_class)
    centers = torch.eye(3, 20) * shift
    x = centers[labels] + torch.randn(labels.numel(), 20, generator=gen)
    return FeatureSet(x, labels, torch.arange(labels.numel()))


def _probe(train: dict[str, FeatureSet], val: dict[str, FeatureSet], num_classes: int,
           settings: FitSettings, heldout_fraction: float, bn_head: bool = False):
    """`linear_probe` on in-memory features (the same core `run()` calls)."""
    labels = next(iter(train.values())).labels.numpy()
    shapes = {layer: (feats.features.shape[1],) for layer, feats in train.items()}
    return linear_probe(TensorSource(train), TensorSource(val), labels, num_classes, settings,
                        heldout_fraction, pooled_shapes=shapes, bn_head=bn_head)


SETTINGS = FitSettings(candidates=((0.05, 1e-4), (0.05, 1.0)), optim=OptimSettings(0.9, "sqrt"),
                       epochs=6, batch_size=16, eval_batch_size=64, seed=0)


def test_linear_probe_learns_and_reports_selected_and_best_epoch():
    train, val = {"conv3": _blobs(30, 0)}, {"conv3": _blobs(10, 1)}
    out = _probe(train, val, 3, SETTINGS, 0.2)["conv3"]
    metrics = out.metrics()
    assert metrics["val"]["top1"] > 80
    assert metrics["val"]["top1_best_epoch"] >= metrics["val"]["top1"]
    assert 1 <= out.selected_epoch <= 6 and len(out.val_curve) == 6
    assert out.weight_decay == 1e-4  # the absurd wd=1 loses on held-out data


def test_selection_does_not_depend_on_val_labels():
    train = {"conv3": _blobs(30, 0)}
    val = _blobs(10, 1)
    shuffled = FeatureSet(val.features, val.labels[torch.randperm(30, generator=torch.Generator()
                                                                  .manual_seed(0))], val.indices)
    a = _probe(train, {"conv3": val}, 3, SETTINGS, 0.2)["conv3"]
    b = _probe(train, {"conv3": shuffled}, 3, SETTINGS, 0.2)["conv3"]
    assert (a.weight_decay, a.selected_epoch, a.heldout_top1) == \
           (b.weight_decay, b.selected_epoch, b.heldout_top1)
    assert a.val_curve != b.val_curve


def test_goyal_bn_head_runs_and_is_deterministic():
    train, val = {"conv1": _blobs(20, 2)}, {"conv1": _blobs(5, 3)}
    a = _probe(train, val, 3, SETTINGS, 0.25, bn_head=True)["conv1"]
    b = _probe(train, val, 3, SETTINGS, 0.25, bn_head=True)["conv1"]
    assert a.val_curve == b.val_curve


def test_goyal_places205_dialect_uses_the_vissl_schedule():
    """issue 11 item 5: Places205 under Goyal/VISSL trains 14 epochs, x0.1 at 4/8/12
    (ImageNet: 28 epochs, 8/16/24)."""
    from dcbench.protocols import get_protocol

    proto = get_protocol("linear-conv")
    imagenet = proto.resolve_config(dialect="goyal2019")
    places = proto.resolve_config(dialect="goyal2019-places205")
    assert (imagenet.epochs, imagenet.milestones) == (28, [8, 16, 24])
    assert (places.epochs, places.milestones) == (14, [4, 8, 12])
    assert places.bn_head and places.pooling == "goyal2019" and places.weight_decays == [5e-4]


@pytest.mark.parametrize("fast", [False, True])
def test_one_pass_halves_the_training_forwards_of_an_image_run(cls_data, small_net, tmp_path,
                                                               monkeypatch, fast):
    """(issue 28) images through the frozen trunk, counted at the featurizer, in a faithful
    (augmented + 10-crop) run: two-pass reads train minus held-out, held-out x 10, train and
    val x 10 per epoch; one-pass reads train, held-out x 10 and val x 10. `--fast` extracts
    the cached features once either way."""
    from dcbench.protocols import get_protocol, linear_conv

    counted: list[int] = []

    def counting(model, layers):
        inner = tap_featurizer(model, layers)

        def featurize(images):
            counted.append(images.shape[0])
            return inner(images)

        return featurize

    monkeypatch.setattr(linear_conv, "tap_featurizer", counting)
    proto = get_protocol("linear-conv")
    images = {}
    for mode in ("one", "two"):
        counted.clear()
        monkeypatch.setenv("DCBENCH_HOME", str(tmp_path / mode))  # a cold feature cache each
        config = proto.resolve_config(schedule="smoke", overrides=[
            "epochs=2", "layers=[conv2]", f"selection_pass={mode}", f"fast={str(fast).lower()}"])
        proto.run(small_net, cls_data, config, run_id="t", device="cpu", progress=False,
                  work_dir=None)
        images[mode] = sum(counted)
    n_train, n_held, n_val = 64, 4 * round(16 * 0.2), 24  # stratified: round(0.2 x 16) a class
    if fast:
        assert images == {"one": n_train + n_val, "two": n_train + n_val}
        return
    evaluation = n_held * 10 + n_val * 10
    assert images["two"] == 2 * ((n_train - n_held) + n_train + evaluation)
    assert images["one"] == 2 * (n_train + evaluation)


def test_per_item_hits_make_the_reported_top1_and_survive_a_resume(tmp_path):
    """The val hits kept at the selected and at the best epoch average to the rows' top1 and
    top1_best_epoch; a rerun that finds the finished checkpoint returns the same hits."""
    train, val = {"conv3": _blobs(30, 0, shift=1.0)}, {"conv3": _blobs(10, 1, shift=1.0)}
    labels = train["conv3"].labels.numpy()
    run = lambda: linear_probe(  # noqa: E731
        TensorSource(train), TensorSource(val), labels, 3, SETTINGS, 0.2,
        pooled_shapes={"conv3": (20,)}, work_dir=tmp_path)["conv3"]
    out = run()
    hits = out.item_hits()
    assert set(hits) == {"top1", "top1_best_epoch"} and len(hits["top1"]) == 30
    metrics = out.metrics()["val"]
    assert 100 * hits["top1"].mean() == pytest.approx(metrics["top1"])
    assert 100 * hits["top1_best_epoch"].mean() == pytest.approx(metrics["top1_best_epoch"])
    again = run().item_hits()
    for name, values in hits.items():
        np.testing.assert_array_equal(again[name], values)


def test_per_item_top5_hits_make_the_reported_top5(tmp_path):
    """With more than 5 classes the probe reports top5: its per-item hits are a second
    `correct` array (every top-1 hit is a top-5 hit), averaging to the row."""
    gen = torch.Generator().manual_seed(4)

    def blobs(n_per_class: int) -> FeatureSet:
        labels = torch.arange(8).repeat_interleave(n_per_class)
        x = torch.eye(8, 20)[labels] * 0.7 + torch.randn(labels.numel(), 20, generator=gen)
        return FeatureSet(x, labels, torch.arange(labels.numel()))

    train, val = {"conv3": blobs(12)}, {"conv3": blobs(6)}
    out = linear_probe(TensorSource(train), TensorSource(val), train["conv3"].labels.numpy(),
                       8, SETTINGS, 0.25, pooled_shapes={"conv3": (20,)},
                       work_dir=tmp_path)["conv3"]
    hits = out.item_hits()
    assert set(hits) == {"top1", "top5", "top1_best_epoch"} and len(hits["top5"]) == 48
    metrics = out.metrics()["val"]
    assert 100 * hits["top5"].mean() == pytest.approx(metrics["top5"])
    assert 100 * hits["top1"].mean() == pytest.approx(metrics["top1"])
    assert not np.any(hits["top1"] & ~hits["top5"]) and metrics["top5"] > metrics["top1"]
