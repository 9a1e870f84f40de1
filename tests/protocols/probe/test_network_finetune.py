"""Whole-network fine-tuning (low-shot): eval points, the checkpoint's life, 10-crop top-1."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from dcbench.data import transforms as T
from dcbench.data.folders import find_dataset
from dcbench.protocols.probe.network_finetune import (
    FinetuneSettings,
    crop_averaged_logits,
    finetune,
    top1,
    top1_hits,
)


def test_curve_has_every_eval_point_and_the_checkpoint_is_removed(cls_data, small_net, tmp_path):
    data = find_dataset(cls_data, "train", T.center_crop(64, 73))
    net = copy.deepcopy(small_net)
    settings = FinetuneSettings(0.01, 1e-4, 0.9, iterations=5, eval_every=2, batch_size=8,
                                eval_batch_size=8, seed=0)
    ckpt = tmp_path / "ft.pt"
    seen = []
    curve = finetune(net, 4, data, np.arange(16), settings,
                     lambda m: seen.append(ckpt.is_file()) or float(len(seen)),
                     device="cpu", checkpoint=ckpt)
    assert curve == [(2, 1.0), (4, 2.0), (5, 3.0)]  # every eval_every and the last step
    assert seen == [False, True, True]  # saved after each eval point
    assert not ckpt.exists()  # a finished run leaves no checkpoint behind


def test_ten_crop_scores_are_the_softmax_average():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 3))
    crops = torch.randn(2, 10, 3, 2, 2)
    got = crop_averaged_logits(model, crops)
    expected = torch.stack([model(c).softmax(-1).mean(0) for c in crops])
    torch.testing.assert_close(got, expected)


def test_top1_hits_are_each_images_ten_crop_argmax_in_dataset_order(cls_set, small_net):
    """Against a plain loop over the images (undecodable ones absent, as in the top-1)."""
    small_net.reset_top_layer(4, torch.Generator().manual_seed(0))
    data = find_dataset(cls_set, "train", T.ten_crop(32, 36))
    value, hits = top1_hits(small_net, data, None, 5, "cpu")
    expected = []
    small_net.eval()
    with torch.no_grad():
        for i in range(len(data)):
            image, label, _ = data[i]
            if image is None:  # the fixture's corrupt files
                continue
            scores = small_net(image).softmax(-1).mean(0)
            expected.append(bool(scores.argmax() == label))
    assert hits.tolist() == expected and len(hits) == 24
    assert value == pytest.approx(100 * np.mean(expected))
    assert top1(small_net, data, None, 7, "cpu") == value


class Killed(Exception):
    """Stands for SIGKILL: the run stops where it is, only its checkpoint file survives."""


def test_a_run_killed_mid_way_and_resumed_equals_an_uninterrupted_one(cls_set, small_net,
                                                                      tmp_path):
    # random crops + flips and dropout: every random stream must be tied to the iteration
    data = find_dataset(cls_set, "train", T.deepcluster_train(32, scale=(0.3, 1.0)))
    settings = FinetuneSettings(0.01, 1e-4, 0.9, iterations=5, eval_every=2, batch_size=6,
                                eval_batch_size=8, seed=3)
    positions = np.arange(0, 28, 2)  # 14 images (2 undecodable): passes of 6 + 6 + 2

    def score(model) -> float:
        return float(sum(p.detach().double().sum() for p in model.parameters()))

    def run(ckpt, kill_at=None):
        net = copy.deepcopy(small_net)
        calls = []

        def evaluate(model):
            calls.append(1)
            if len(calls) == kill_at:
                raise Killed
            return score(model)

        torch.manual_seed(1234 + (kill_at or 0))  # the caller's global RNG must not matter
        curve = finetune(net, 4, data, positions, settings, evaluate, device="cpu",
                         checkpoint=ckpt)
        return net, curve

    ref, ref_curve = run(tmp_path / "ref.pt")
    ckpt = tmp_path / "killed.pt"
    for kill_at in (2, 2):  # killed at iteration 4 (checkpoint of 2), then at 5 (of 4)
        with pytest.raises(Killed):
            run(ckpt, kill_at)
        assert ckpt.is_file()
    resumed, curve = run(ckpt)
    assert curve[-1] == ref_curve[-1]
    for (name, a), b in zip(ref.state_dict().items(), resumed.state_dict().values(),
                            strict=True):
        assert torch.equal(a, b), name
