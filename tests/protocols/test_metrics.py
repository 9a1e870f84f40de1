"""Top-k, 10-crop averaging, the random-graph reference, against plain re-implementations."""

from __future__ import annotations

import math

import numpy as np
import torch

from dcbench.protocols.metrics import (
    average_crops,
    mean_std,
    random_graph_ratio,
    topk_accuracy,
)


def test_topk_accuracy_against_a_loop():
    gen = torch.Generator().manual_seed(0)
    scores = torch.randn(50, 10, generator=gen)
    labels = torch.randint(0, 10, (50,), generator=gen)
    ranked = scores.argsort(dim=1, descending=True).tolist()
    top1 = 100 * sum(r[0] == y for r, y in zip(ranked, labels.tolist(), strict=True)) / 50
    top5 = 100 * sum(y in r[:5] for r, y in zip(ranked, labels.tolist(), strict=True)) / 50
    got = topk_accuracy(scores, labels)
    assert math.isclose(got["top1"], top1) and math.isclose(got["top5"], top5)
    assert "top5" not in topk_accuracy(scores[:, :4], labels % 4)  # top-5 of 4 classes: moot


def test_ten_crop_softmax_averaging_against_a_loop():
    gen = torch.Generator().manual_seed(1)
    logits = torch.randn(3, 10, 7, generator=gen)
    expected = torch.zeros(3, 7)
    for i in range(3):
        for c in range(10):
            e = torch.exp(logits[i, c] - logits[i, c].max())
            expected[i] += e / e.sum() / 10
    assert torch.allclose(average_crops(logits), expected, atol=1e-6)
    # softmax-then-average differs from average-then-softmax
    two = torch.tensor([[[4.0, 0.0], [0.0, 3.0]]])
    assert not torch.allclose(average_crops(two), two.mean(dim=1).softmax(-1))


def test_random_graph_reference_by_hand():
    # classes of size 3, 1 and 2 (N = 6): mean of (2/5, 0/5, 1/5) = 0.2
    labels = np.array([0, 0, 0, 1, 2, 2])
    assert math.isclose(random_graph_ratio(labels), 0.2)
    balanced = np.repeat(np.arange(250), 4)
    # balanced classes: equals the brief's sum_c (n_c/N)(n_c-1)/(N-1) = 3/999
    assert math.isclose(random_graph_ratio(balanced), 3 / 999)


def test_mean_std_sample_std():
    mean, std = mean_std([1.0, 2.0, 4.0])
    assert math.isclose(mean, 7 / 3)
    assert math.isclose(std, math.sqrt(((1 - 7 / 3) ** 2 + (2 - 7 / 3) ** 2 + (4 - 7 / 3) ** 2)
                                       / 2))
    assert mean_std([3.0]) == (3.0, 0.0)
