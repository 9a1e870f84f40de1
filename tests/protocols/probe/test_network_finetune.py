"""Whole-network fine-tuning (low-shot): eval points, the checkpoint's life, 10-crop top-1."""

from __future__ import annotations

import copy

import numpy as np
import torch

from dcbench.data import transforms as T
from dcbench.data.folders import find_dataset
from dcbench.protocols.probe.network_finetune import (
    FinetuneSettings,
    crop_averaged_logits,
    finetune,
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
