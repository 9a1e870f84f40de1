"""Honest hyperparameter selection for frozen-feature probes.

1. `select` phase: one head per (layer, lr, weight decay) candidate trained on the training
   split minus a seeded stratified held-out part, evaluated on that held-out part each epoch.
   The (lr, wd, epoch) with the best held-out top-1 is chosen per layer. The val set is never
   looked at.
2. `final` phase: one head per layer with the chosen (lr, wd), retrained on the full training
   split and evaluated on val after every epoch.
Reported: val top-1/top-5 at the selected epoch (`top1`, `top5`, the honest numbers), the
best val top-1 over epochs (`top1_best_epoch`, the convention behind the published tables,
e.g. `best_prec1` of eval_linear.py) and the held-out top-1 (split `train-heldout`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Protocol as TypingProtocol

import numpy as np
import torch
from torch import nn

from dcbench.core.errors import UserError
from dcbench.protocols.probe.heads import (
    Batches,
    HeadSpec,
    OptimSettings,
    ProbeSet,
    best_epoch,
    evaluate,
    train_phase,
)
from dcbench.protocols.probe.item_track import ItemTrack
from dcbench.protocols.probe.splits import stratified_split


class Source(TypingProtocol):
    """What `fit_with_selection` needs from a batch source (see probe/batch_sources.py)."""

    def train_batches(self, positions: np.ndarray | None, epoch: int, seed: int,
                      batch_size: int) -> Batches: ...

    def eval_batches(self, positions: np.ndarray | None, batch_size: int = ...): ...


@dataclasses.dataclass(frozen=True)
class FitSettings:
    """Training settings shared by both phases."""

    candidates: tuple[tuple[float, float], ...]  # (lr, weight decay) pairs
    optim: OptimSettings
    epochs: int
    batch_size: int
    eval_batch_size: int
    seed: int


@dataclasses.dataclass
class LayerOutcome:
    """What the two phases found for one layer."""

    layer: str
    lr: float
    weight_decay: float
    selected_epoch: int  # 1-based
    heldout_top1: float
    val_curve: list[dict[str, float]]
    best_val_epoch: int  # 1-based
    # per-item val top-1 hits behind `top1` ("selected") and `top1_best_epoch` ("best")
    items: dict[str, np.ndarray] = dataclasses.field(default_factory=dict, repr=False)

    def record(self) -> dict[str, object]:
        """The JSON record of `selection.json` (everything but the per-item hits)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                if f.name != "items"}

    def item_hits(self) -> dict[str, np.ndarray]:
        """Val metric name -> per-item top-1 hits (bool, val items in dataset order)."""
        names = {"selected": "top1", "best": "top1_best_epoch"}
        return {names[key]: hits for key, hits in self.items.items()}

    def metrics(self) -> dict[str, dict[str, float]]:
        """Rows by split: val top1/top5 at the selected epoch + best-epoch top1; held-out top1."""
        at = self.val_curve[self.selected_epoch - 1]
        val = {"top1": at["top1"]}
        if "top5" in at:
            val["top5"] = at["top5"]
        val["top1_best_epoch"] = self.val_curve[self.best_val_epoch - 1]["top1"]
        return {"val": val, "train-heldout": {"top1": self.heldout_top1}}


def _head_name(layer: str, lr: float, wd: float) -> str:
    return f"{layer}|lr={lr:g}|wd={wd:g}"


def fit_with_selection(
    layers: list[str],
    make_head: Callable[[str], nn.Module],
    train_source: Source,
    val_source: Source,
    train_positions: np.ndarray,
    heldout_positions: np.ndarray,
    settings: FitSettings,
    *,
    device: str = "cpu",
    work_dir: Path | None = None,
    progress: bool = False,
) -> dict[str, LayerOutcome]:
    """Select (lr, wd, epoch) per layer on held-out data, then retrain on all and test on val."""
    if heldout_positions.size == 0:
        raise ValueError("hyperparameter selection needs a non-empty held-out split")
    def build(choices: dict[str, list[tuple[float, float]]], seed_offset: int,
              n_train: int) -> ProbeSet:
        heads = []
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(settings.seed * 1000 + seed_offset)
            for layer, pairs in choices.items():
                for lr, wd in pairs:
                    heads.append(HeadSpec(_head_name(layer, lr, wd), layer, make_head(layer),
                                          lr, wd))
        iters = _iters_per_epoch(n_train, settings.batch_size)
        return ProbeSet(heads, settings.optim, iters).to(device)

    select = build({layer: list(settings.candidates) for layer in layers}, 1,
                   train_positions.size)
    held_hist = train_phase(
        select, epochs=settings.epochs, phase="select", work_dir=work_dir, progress=progress,
        batches_per_epoch=_iters_per_epoch(train_positions.size, settings.batch_size),
        train_batches=lambda e: train_source.train_batches(
            train_positions, e, settings.seed * 1000 + 1, settings.batch_size),
        evaluate_fn=lambda: evaluate(
            select, train_source.eval_batches(heldout_positions, settings.eval_batch_size)),
    )
    chosen: dict[str, tuple[float, float, int, float]] = {}
    for layer in layers:
        best = None
        for lr, wd in settings.candidates:
            curve = held_hist[_head_name(layer, lr, wd)]
            epoch = best_epoch(curve)
            score = curve[epoch]["top1"]
            if best is None or score > best[3]:
                best = (lr, wd, epoch, score)
        chosen[layer] = best
    all_positions = np.sort(np.concatenate([train_positions, heldout_positions]))
    final = build({layer: [chosen[layer][:2]] for layer in layers}, 2, all_positions.size)
    track = ItemTrack({_head_name(layer, *chosen[layer][:2]): chosen[layer][2]
                       for layer in layers})
    val_hist = train_phase(
        final, epochs=settings.epochs, phase="final", work_dir=work_dir, progress=progress,
        batches_per_epoch=_iters_per_epoch(all_positions.size, settings.batch_size),
        train_batches=lambda e: train_source.train_batches(
            all_positions, e, settings.seed * 1000 + 2, settings.batch_size),
        evaluate_fn=lambda: evaluate(final, val_source.eval_batches(
            None, settings.eval_batch_size), hits=track.sink()),
        track=track,
    )
    out = {}
    for layer in layers:
        lr, wd, epoch, held_top1 = chosen[layer]
        curve = val_hist[_head_name(layer, lr, wd)]
        out[layer] = LayerOutcome(layer, lr, wd, epoch + 1, held_top1, curve,
                                  best_epoch(curve) + 1,
                                  track.result.get(_head_name(layer, lr, wd), {}))
    return out


def _iters_per_epoch(n: int, batch_size: int) -> int:
    return max(1, -(-n // batch_size))


def select_and_fit(
    layers: list[str],
    make_head: Callable[[str], nn.Module],
    train_source: Source,
    val_source: Source,
    train_labels: np.ndarray,
    settings: FitSettings,
    heldout_fraction: float,
    *,
    device: str = "cpu",
    work_dir: Path | None = None,
    progress: bool = False,
) -> dict[str, LayerOutcome]:
    """Hold out a seeded stratified `heldout_fraction` of the training positions (labels =
    `train_labels`), then `fit_with_selection`: the probes' one path from sources to outcomes."""
    train_pos, held_pos = stratified_split(train_labels, heldout_fraction, settings.seed)
    if held_pos.size == 0:
        raise UserError("the training split is too small to hold out data for selection")
    return fit_with_selection(layers, make_head, train_source, val_source, train_pos, held_pos,
                              settings, device=device, work_dir=work_dir, progress=progress)
