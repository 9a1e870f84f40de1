"""Honest hyperparameter selection for frozen-feature probes.

Two forms (`FitSettings.selection_pass`), the same rule:
- `one` (default, probe/one_pass.py): one pass per epoch over all training positions
  trains selection heads (held-out rows masked out of their loss) and final heads side by
  side; half the trunk forwards of the two-pass form's training batches.
- `two` (the form before issue 28):
  1. `select` phase: one head per (layer, lr, weight decay) candidate trained on the training
     split minus a seeded stratified held-out part, evaluated on that held-out part each epoch.
  2. `final` phase: one head per layer with the chosen (lr, wd), retrained on the full
     training split and evaluated on val after every epoch.
In both, the (lr, wd, epoch) with the best held-out top-1 is chosen per layer; the val set
is never looked at to choose.
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
from dcbench.core.tracking import active
from dcbench.protocols.probe import one_pass
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
                      batch_size: int, *, with_positions: bool = False) -> Batches: ...

    def eval_batches(self, positions: np.ndarray | None, batch_size: int = ...): ...


@dataclasses.dataclass(frozen=True)
class FitSettings:
    """Training settings shared by every head; `selection_pass`: one | two (module doc)."""

    candidates: tuple[tuple[float, float], ...]  # (lr, weight decay) pairs
    optim: OptimSettings
    epochs: int
    batch_size: int
    eval_batch_size: int
    seed: int
    selection_pass: str = "one"


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
    # per-item val hits of the selected epoch ("selected") and of the best val epoch ("best"):
    # (N, 2) (top-1 hit, top-5 hit), or (N,) top-1 hits in probe states of older versions
    items: dict[str, np.ndarray] = dataclasses.field(default_factory=dict, repr=False,
                                                     compare=False)

    def record(self) -> dict[str, object]:
        """The JSON record of `selection.json` (everything but the per-item hits)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                if f.name != "items"}

    def item_hits(self) -> dict[str, np.ndarray]:
        """Val metric name -> per-item hits (bool, val items in dataset order): `top1` and
        `top5` (where reported) at the selected epoch, `top1_best_epoch` at the best one."""
        out = {}
        for key, metric in (("selected", "top1"), ("best", "top1_best_epoch")):
            if key in self.items:
                hits = np.asarray(self.items[key])
                out[metric] = hits[:, 0] if hits.ndim == 2 else hits
        selected = np.asarray(self.items.get("selected", np.zeros(0)))
        if selected.ndim == 2 and "top5" in self.val_curve[self.selected_epoch - 1]:
            out["top5"] = selected[:, 1]
        return out

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


SELECTION_PASSES = ("one", "two")
CHECKPOINTS = {"one": ("one-pass.pt",), "two": ("select.pt", "final.pt")}


def check_work_dir(work_dir: Path | None, selection_pass: str) -> None:
    """Refuse to resume a run folder whose probe checkpoints belong to the other form."""
    if work_dir is None:
        return
    other = "two" if selection_pass == "one" else "one"
    found = [n for n in CHECKPOINTS[other] if (work_dir / "checkpoints" / n).is_file()]
    if found:
        raise UserError(f"{work_dir} holds a selection_pass={other} probe run "
                        f"(checkpoints/{found[0]}); resume it with selection_pass={other} "
                        "or use a fresh run dir")


def choose(layers: list[str], candidates: tuple[tuple[float, float], ...],
           held_hist: dict[str, list[dict[str, float]]], name: Callable[..., str]
           ) -> dict[str, tuple[float, float, int, float]]:
    """Per layer, the (lr, wd, epoch index, held-out top-1) with the best held-out top-1
    (ties: the earliest epoch, then the first candidate); `name(layer, lr, wd)` is a head's
    key in `held_hist`."""
    chosen: dict[str, tuple[float, float, int, float]] = {}
    for layer in layers:
        best = None
        for lr, wd in candidates:
            curve = held_hist[name(layer, lr, wd)]
            epoch = best_epoch(curve)
            score = curve[epoch]["top1"]
            if best is None or score > best[3]:
                best = (lr, wd, epoch, score)
        chosen[layer] = best
    return chosen


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
    """Select (lr, wd, epoch) per layer on held-out data; report the head trained on all
    training positions with that (lr, wd) on val (in one pass per epoch or two)."""
    if heldout_positions.size == 0:
        raise ValueError("hyperparameter selection needs a non-empty held-out split")
    if settings.selection_pass not in SELECTION_PASSES:
        raise ValueError(f"selection_pass must be one of {SELECTION_PASSES}, got "
                         f"{settings.selection_pass!r}")
    check_work_dir(work_dir, settings.selection_pass)
    if settings.selection_pass == "one":
        return _fit_one_pass(layers, make_head, train_source, val_source, train_positions,
                             heldout_positions, settings, device=device, work_dir=work_dir,
                             progress=progress)
    return _fit_two_pass(layers, make_head, train_source, val_source, train_positions,
                         heldout_positions, settings, device=device, work_dir=work_dir,
                         progress=progress)


def _fit_one_pass(layers: list[str], make_head: Callable[[str], nn.Module], train_source: Source,
                  val_source: Source, train_positions: np.ndarray,
                  heldout_positions: np.ndarray, settings: FitSettings, *, device: str,
                  work_dir: Path | None, progress: bool) -> dict[str, LayerOutcome]:
    """Selection and final heads from the same batches (probe/one_pass.py)."""
    n_all = train_positions.size + heldout_positions.size
    heads = one_pass.build_heads(layers, settings.candidates, make_head, settings.seed)
    probes = ProbeSet(heads, settings.optim, _iters_per_epoch(n_all, settings.batch_size)
                      ).to(device)
    track = ItemTrack(None)  # every epoch's val hits of the final heads
    history = one_pass.train_one_pass(
        probes, train_source, val_source, train_positions, heldout_positions,
        epochs=settings.epochs, seed=settings.seed, batch_size=settings.batch_size,
        eval_batch_size=settings.eval_batch_size, work_dir=work_dir, progress=progress,
        track=track)
    chosen = choose(layers, settings.candidates, history,
                    lambda *key: one_pass.head_name(one_pass.SELECT, *key))
    report_selection(chosen)
    out = {}
    for layer in layers:
        lr, wd, epoch, held_top1 = chosen[layer]
        name = one_pass.head_name(one_pass.FINAL, layer, lr, wd)
        curve = history[name]
        out[layer] = LayerOutcome(layer, lr, wd, epoch + 1, held_top1, curve,
                                  best_epoch(curve) + 1,
                                  ItemTrack.read(track.extra, name, epoch))
    return out


def _fit_two_pass(layers: list[str], make_head: Callable[[str], nn.Module], train_source: Source,
                  val_source: Source, train_positions: np.ndarray,
                  heldout_positions: np.ndarray, settings: FitSettings, *, device: str,
                  work_dir: Path | None, progress: bool) -> dict[str, LayerOutcome]:
    """A select phase on train minus held-out, then a final phase on all (module doc)."""
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
    chosen = choose(layers, settings.candidates, held_hist, _head_name)
    report_selection(chosen)
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


def report_selection(chosen: dict[str, tuple[float, float, int, float]]) -> None:
    """The selected head of each layer to the live view (section `selected`, step 0, written
    anew by a resumed run): `LAYER/lr`, `LAYER/wd`, `LAYER/epoch`, `LAYER/heldout_top1`."""
    tracker = active()
    tracker.start_section("selected", 0)
    for layer, (lr, wd, epoch, score) in chosen.items():
        tracker.scalars("selected", 0, {f"{layer}/lr": lr, f"{layer}/wd": wd,
                                        f"{layer}/epoch": epoch + 1,
                                        f"{layer}/heldout_top1": score})
        tracker.text("selected", 0, layer, f"lr {lr:g}, weight decay {wd:g}, epoch {epoch + 1}: "
                                           f"held-out top-1 {score:.2f}")


def _iters_per_epoch(n: int, batch_size: int) -> int:
    return max(1, -(-n // batch_size))


def heldout_split(labels: np.ndarray, fraction: float, seed: int
                  ) -> tuple[np.ndarray, np.ndarray]:
    """`stratified_split`, refused when nothing can be held out (every class has one image)."""
    train_pos, held_pos = stratified_split(labels, fraction, seed)
    if held_pos.size == 0:
        raise UserError("the training split is too small to hold out data for selection "
                        "(every class has a single image)")
    return train_pos, held_pos


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
    train_pos, held_pos = heldout_split(train_labels, heldout_fraction, settings.seed)
    return fit_with_selection(layers, make_head, train_source, val_source, train_pos, held_pos,
                              settings, device=device, work_dir=work_dir, progress=progress)
