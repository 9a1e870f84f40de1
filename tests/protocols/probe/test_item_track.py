"""Per-item hits kept at the reported epochs: bit packing and the earliest-best rule."""

from __future__ import annotations

import numpy as np
import torch

from dcbench.protocols.probe.heads import best_epoch
from dcbench.protocols.probe.item_track import ItemTrack, decode_hits, encode_hits
from dcbench.protocols.probe.selection import LayerOutcome


def test_hits_round_trip_through_json_text() -> None:
    rng = np.random.default_rng(0)
    for n in (0, 1, 7, 8, 9, 1001):
        hits = rng.random(n) < 0.5
        np.testing.assert_array_equal(decode_hits(encode_hits(hits)), hits)


def test_keeps_the_fixed_epoch_and_the_earliest_best_epoch() -> None:
    top1 = [50.0, 70.0, 60.0, 70.0]  # best: epoch 1 (the earliest of the two 70s)
    track, extra = ItemTrack({"h": 2}), {}
    per_epoch = [torch.tensor([i % 2 == 0, True, i == 3]) for i in range(4)]
    for epoch, value in enumerate(top1):
        track.sink().setdefault("h", []).append(per_epoch[epoch])
        track.update(extra, epoch, {"h": {"top1": value}})
    kept = ItemTrack.read(extra, "h")
    assert best_epoch([{"top1": v} for v in top1]) == 1
    np.testing.assert_array_equal(kept["best"], per_epoch[1].numpy())
    np.testing.assert_array_equal(kept["selected"], per_epoch[2].numpy())


def test_two_column_hits_round_trip_and_make_top1_and_top5() -> None:
    """(top-1, top-5) pairs pack with their shape; a probe state of an older version (1-D
    top-1 hits) still gives top1, and no top5 it never recorded."""
    rng = np.random.default_rng(1)
    pairs = rng.random((13, 2)) < 0.5
    np.testing.assert_array_equal(decode_hits(encode_hits(pairs)), pairs)
    curve = [{"top1": 50.0, "top5": 80.0}]
    new = LayerOutcome("conv5", 0.1, 0.0, 1, 50.0, curve, 1, {"selected": pairs, "best": pairs})
    assert set(new.item_hits()) == {"top1", "top5", "top1_best_epoch"}
    np.testing.assert_array_equal(new.item_hits()["top5"], pairs[:, 1])
    old = LayerOutcome("conv5", 0.1, 0.0, 1, 50.0, curve, 1, {"selected": pairs[:, 0]})
    assert set(old.item_hits()) == {"top1"}
