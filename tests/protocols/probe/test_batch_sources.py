"""Batch sources: seeded epoch orders, positions mapped to cached rows, crops in eval batches."""

from __future__ import annotations

import numpy as np
import torch

from dcbench.protocols.probe.batch_sources import TensorSource, epoch_generator
from dcbench.protocols.probe.feature_cache import FeatureSet


def _source() -> TensorSource:
    feats = torch.arange(20, dtype=torch.float32).view(10, 2)
    # position 3 was undecodable: no row for it
    positions = torch.tensor([0, 1, 2, 4, 5, 6, 7, 8, 9, 10])
    return TensorSource({"x": FeatureSet(feats, torch.arange(10) % 2, positions)})


def test_positions_map_to_rows_and_missing_ones_are_skipped():
    src = _source()
    assert src.rows(np.array([0, 3, 4, 10])).tolist() == [0, 3, 9]
    assert src.rows(None).tolist() == list(range(10))


def test_train_order_is_a_seeded_permutation_per_epoch():
    src = _source()

    def order(epoch: int) -> list[float]:
        return [v for f, _ in src.train_batches(None, epoch, 7, 4) for v in f["x"][:, 0].tolist()]

    assert sorted(order(0)) == [float(2 * i) for i in range(10)]  # every row, batches of 4
    assert order(0) == order(0) and order(0) != order(1)
    a = torch.rand(3, generator=epoch_generator(7, 1))
    assert torch.equal(a, torch.rand(3, generator=epoch_generator(7, 1)))


def test_eval_batches_keep_the_given_order_one_view_each():
    batches = list(_source().eval_batches(np.array([9, 0, 1]), batch_size=2))
    assert [b[0]["x"][:, 0].tolist() for b in batches] == [[16.0, 0.0], [2.0]]
    assert all(n_crops == 1 for _, _, n_crops in batches)


def test_batches_reach_the_device_without_a_blocking_copy(monkeypatch):
    """Every host-to-device copy of a batch (features per layer, labels) is non-blocking: a
    blocking one would wait for the heads' queued steps once per batch and layer on a GPU.
    (`meta` stands in for the device.)"""
    src = _source()
    src.device = "meta"
    calls = []
    real = torch.Tensor.to

    def to(self, *args, **kwargs):
        calls.append(kwargs.get("non_blocking", False))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(torch.Tensor, "to", to)
    train = list(src.train_batches(None, 0, 7, 4))
    evals = list(src.eval_batches(None, 4))
    monkeypatch.undo()
    assert len(train) == len(evals) == 3 and train[0][0]["x"].device.type == "meta"
    assert calls and all(calls)
