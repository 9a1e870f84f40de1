"""The eval plan: phases counted like the protocols' own loops (written out here as plain
loops over epochs and images), time = passes x a measured rate, and the quicker forms."""

from __future__ import annotations

import time

import pytest
import torch
from PIL import Image

from dcbench.engine.throughput import seconds_per_image
from dcbench.protocols.base import get_protocol
from dcbench.protocols.plan import (
    dataset_sizes,
    format_duration,
    plan_eval,
    quick_schedules,
    sample_images,
)


def _frozen_probe_passes_by_loop(epochs, n_train, n_held, n_val, crops):
    """select: train minus held-out + held-out x crops per epoch; final: train + val x crops."""
    total = 0
    for _ in range(epochs):
        for _ in range(n_train - n_held):
            total += 1
        for _ in range(n_held):
            total += crops
    for _ in range(epochs):
        for _ in range(n_train):
            total += 1
        for _ in range(n_val):
            total += crops
    return total


def _one_pass_by_loop(epochs, n_train, n_held, n_val, crops):
    """one pass: every train image once, then held-out and val x crops, per epoch."""
    total = 0
    for _ in range(epochs):
        for _ in range(n_train):
            total += 1
        for _ in range(n_held + n_val):
            total += crops
    return total


@pytest.mark.parametrize("schedule", ["published", "smoke"])
@pytest.mark.parametrize("selection_pass", ["one", "two"])
def test_linear_conv_plan_counts_the_protocols_passes(schedule, selection_pass):
    proto = get_protocol("linear-conv")
    cfg = proto.resolve_config(schedule=schedule,
                               overrides=[f"selection_pass={selection_pass}"])
    sizes = {"train": 1347, "val": 450, "classes": 10}
    plan = plan_eval("linear-conv", cfg, sizes)
    held = round(1347 * cfg.heldout_fraction)
    by_loop = _one_pass_by_loop if selection_pass == "one" else _frozen_probe_passes_by_loop
    assert plan.image_passes == by_loop(cfg.epochs, 1347, held, 450, 10)
    assert plan.seconds(0.002) == pytest.approx(plan.image_passes * 0.002)
    fast = plan_eval("linear-conv", proto.resolve_config(schedule=schedule, layers=[
        {"fast": True, "selection_pass": selection_pass}]), sizes)
    assert fast.image_passes == 1347 + 450  # one cached feature pass over train + val


def test_published_one_pass_plan_drops_the_second_training_pass():
    """ImageNet sizes: the default plan reads train once per epoch instead of twice."""
    proto = get_protocol("linear-conv")
    sizes = {"train": 1281167, "val": 50000, "classes": 1000}
    one = plan_eval("linear-conv", proto.resolve_config(), sizes)
    two = plan_eval("linear-conv", proto.resolve_config(dialect="faithful-2018"), sizes)
    held = round(1281167 * 0.05)
    assert two.image_passes - one.image_passes == 90 * (1281167 - held)
    assert [p.name for p in one.phases] == ["one pass (selection + final heads)"]


def test_feature_protocols_and_finetunes():
    knn = plan_eval("knn", get_protocol("knn").resolve_config(),
                    {"train": 100, "val": 40, "classes": 4})
    assert knn.image_passes == 140  # `classes` is not an image count
    cls = get_protocol("voc07-cls").resolve_config(layers=[{"train_layers": "all"}])
    plan = plan_eval("voc07-cls", cls, {"train": 5011, "test": 4952})
    # 150k iterations x 16 images, forward + backward through the whole network
    assert plan.phases[0].image_passes == 150000 * 16 * 3
    text = "\n".join(plan.describe(0.01))
    assert "fine-tune" in text and "about" in text


@pytest.mark.parametrize("pipeline, iterations", [("pytorch", 80000), ("caffe", 150000)])
def test_voc07_cls_fc6_8_published_iterations_follow_the_pipeline(pipeline, iterations):
    # fc6-8's published count is unset in the config (the pipeline decides it): the plan of
    # `eval --dry-run` must count it, not fail on None (eval_voc_classif.py 80k, .sh 150k)
    cls = get_protocol("voc07-cls").resolve_config(
        layers=[{"train_layers": "fc6-8", "pipeline_fc6_8": pipeline}])
    assert cls.iterations is None and cls.iterations_fc6_8 is None
    plan = plan_eval("voc07-cls", cls, {"train": 5011, "test": 4952})
    assert plan.phases[0].image_passes == iterations * 16


def test_format_duration():
    assert [format_duration(s) for s in (3, 600, 6600, 3 * 86400)] == \
        ["3 s", "10 min", "1 h 50 min", "3.0 days"]


def test_quick_schedules_suggests_fast_and_smoke():
    forms = quick_schedules(["published", "smoke"], ["fast", "epochs"], "published", False)
    assert [f for f, _ in forms] == ["--fast", "--schedule smoke", "--schedule smoke --fast"]
    assert quick_schedules(["published", "smoke"], ["epochs"], "smoke", False) == []


def test_dataset_sizes_runs_the_eval_check(cls_data, tmp_path):
    proto = get_protocol("linear-conv")
    sizes = dataset_sizes("linear-conv", cls_data, proto.resolve_config())
    assert sizes == {"train": 64, "val": 24, "classes": 4}
    (tmp_path / "train" / "a").mkdir(parents=True)
    Image.new("RGB", (8, 8)).save(tmp_path / "train" / "a" / "x.png")
    with pytest.raises(Exception, match="val"):  # no val/: refused like eval refuses it
        dataset_sizes("linear-conv", tmp_path, proto.resolve_config())


def test_seconds_per_image_times_real_batches_after_a_warm_up(cls_data):
    paths = sample_images(cls_data, 12)
    assert len(paths) == 12 and paths == sorted(paths)
    calls = []

    def forward(x):
        calls.append(x.shape[0])
        time.sleep(0.05)

    def to_tensor(img):
        return torch.zeros(3, 4, 4)

    rate = seconds_per_image(torch.nn.Identity(), paths, to_tensor, forward, batch_size=4)
    assert calls == [4, 4, 4] and rate >= 0.05 / 4  # the warm-up batch is not counted
    assert seconds_per_image(torch.nn.Identity(), paths[:5], to_tensor, forward,
                             batch_size=4) is None
