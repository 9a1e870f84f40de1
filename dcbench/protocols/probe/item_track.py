"""Per-item top-1 hits of the probe heads at the epochs whose val numbers are reported.

A probe reports val top-1 at the epoch chosen on held-out data (`top1`) and at the best val
epoch (`top1_best_epoch`, the published convention). The per-item outcomes behind both are
kept while the final phase trains: the hits of the fixed (selected) epoch, and those of the
best epoch so far (replaced only by a strictly better epoch: the earliest of ties, as
`heads.best_epoch`). They live in the resumable loop's JSON extra (bit-packed, base64), so a
resumed run still has them. `heads.evaluate` gives per item (top-1 hit, top-5 hit): column
0 makes `top1` (and `top1_best_epoch`), column 1 `top5` where it is reported.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from dcbench.core.dist_eval import gather_objects


def encode_hits(hits: np.ndarray) -> dict[str, Any]:
    """Bool (N,) or (N, K) -> JSON-able {n, bits} (+ `cols` = K for a 2-D array)."""
    hits = np.asarray(hits, dtype=bool)
    record = {"n": int(hits.shape[0]) if hits.ndim else int(hits.size),
              "bits": base64.b64encode(np.packbits(hits).tobytes()).decode()}
    if hits.ndim == 2:
        record["cols"] = int(hits.shape[1])
    return record


def decode_hits(record: Mapping[str, Any]) -> np.ndarray:
    """{n, bits[, cols]} -> bool (N,) or (N, cols)."""
    packed = np.frombuffer(base64.b64decode(record["bits"]), dtype=np.uint8)
    cols = record.get("cols")
    n = int(record["n"])
    if cols is None:
        return np.unpackbits(packed, count=n).astype(bool)
    return np.unpackbits(packed, count=n * int(cols)).astype(bool).reshape(n, int(cols))


class ItemTrack:
    """Keeps, per head, the val hits at `fixed[head]` (0-based epoch) and at the best epoch.

    `fixed=None` keeps every epoch's hits of every head it sees (one-pass selection: the
    selected epoch is known only once the pass ends); `read(..., epoch=E)` then gives the
    hits of epoch E as `selected`. Under torchrun each rank holds the hits of its contiguous
    shard of the val set: they are gathered in rank (= dataset) order before being kept."""

    def __init__(self, fixed: Mapping[str, int] | None) -> None:
        self.fixed = None if fixed is None else dict(fixed)
        self.latest: dict[str, list[torch.Tensor]] = {}
        self.result: dict[str, dict[str, np.ndarray]] = {}  # set by heads.train_phase
        self.extra: dict[str, Any] = {}  # the loop's record, set by heads.train_phase

    def sink(self) -> dict[str, list[torch.Tensor]]:
        """A fresh dict for `heads.evaluate(..., hits=...)` to fill with this epoch's hits."""
        self.latest = {}
        return self.latest

    def update(self, extra: dict[str, Any], epoch: int,
               metrics: Mapping[str, Mapping[str, float]]) -> None:
        """Record this epoch's hits in the loop's `extra` where the epoch is one reported."""
        items = extra.setdefault("items", {})
        for name, parts in sorted(self.latest.items()):  # the same order on every rank
            hits = torch.cat(parts).numpy() if parts else np.zeros((0, 2), bool)
            hits = np.concatenate(gather_objects(hits))  # torchrun: every shard, in order
            record = items.setdefault(name, {})
            if self.fixed is None:
                record.setdefault("epochs", {})[str(epoch)] = encode_hits(hits)
            elif self.fixed.get(name) == epoch:
                record["selected"] = encode_hits(hits)
            top1 = float(metrics[name]["top1"])  # the best epoch: by top-1, as reported
            if "best_top1" not in record or top1 > record["best_top1"]:
                record["best"], record["best_top1"] = encode_hits(hits), top1

    @staticmethod
    def read(extra: Mapping[str, Any], name: str, epoch: int | None = None
             ) -> dict[str, np.ndarray]:
        """{'selected': hits, 'best': hits} recorded for head `name` (what exists); with
        `epoch` (keep-every-epoch mode), `selected` is that 0-based epoch's hits."""
        record = extra.get("items", {}).get(name, {})
        out = {key: decode_hits(record[key]) for key in ("selected", "best") if key in record}
        if epoch is not None and str(epoch) in record.get("epochs", {}):
            out["selected"] = decode_hits(record["epochs"][str(epoch)])
        return out
