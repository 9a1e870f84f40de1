"""One pass per epoch feeds every probe head (`selection_pass: one`, the default).

The trunk is frozen, so one forward of a batch can train every head that needs it. Each
epoch is one shuffled pass over *all* training positions (train + held-out), and two sets
of heads learn from the same batches:
- selection heads, one per (layer, lr, wd) candidate: the held-out rows of each batch are
  masked out (`ProbeSet.train_step`'s `rows`), so they never see a held-out row (not in the
  loss, not in a BatchNorm statistic); evaluated on the held-out part after each epoch;
- final heads, one per candidate again, trained on every row; evaluated on val after
  each epoch.
(lr, wd, epoch) is picked per layer on the held-out curves exactly as in the two-pass form
(`selection.choose`); the report is the final head of the chosen (lr, wd): val at the
selected epoch and at its best epoch. Val is never used to choose.

What differs from the two-pass form (`selection_pass: two`, probe/selection.py) by design:
a selection head's batches hold only their non-held-out rows (about (1 - heldout_fraction)
of the batch), the epoch order is the final phase's (seed offset 2) for both head sets,
and a selection head's LR schedule counts the pass's iterations, skipped batches included
(a batch with no training row: no SGD step, but the schedule advances, so the `sqrt`
decay and the `step` milestones fall on the same iterations for both head sets).
Initialisation follows the two-pass seeds (selection heads: offset 1, final heads: offset
2, drawn in layer x candidate order), so with a single candidate per layer the final
heads are exactly the two-pass final heads. docs/fidelity.md item 30 has the measured
effect.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from dcbench.protocols.probe.heads import HeadSpec, ProbeSet, evaluate, train_phase
from dcbench.protocols.probe.item_track import ItemTrack

PHASE = "one-pass"  # the checkpoint is work_dir/checkpoints/one-pass.pt
SELECT, FINAL = "select", "final"


def head_name(group: str, layer: str, lr: float, wd: float) -> str:
    """The name of a head of `group` (select / final) in the combined ProbeSet."""
    return f"{group}:{layer}|lr={lr:g}|wd={wd:g}"


def build_heads(layers: list[str], candidates: tuple[tuple[float, float], ...],
                make_head: Callable[[str], nn.Module], seed: int) -> list[HeadSpec]:
    """Selection heads (init seed offset 1) then final heads (offset 2), each set drawn in
    layer x candidate order, as the two-pass phases draw theirs."""
    heads: list[HeadSpec] = []
    for group, offset in ((SELECT, 1), (FINAL, 2)):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed * 1000 + offset)
            for layer in layers:
                for lr, wd in candidates:
                    heads.append(HeadSpec(head_name(group, layer, lr, wd), layer,
                                          make_head(layer), lr, wd))
    return heads


def masked_batches(batches: Iterator[Any], heldout: torch.Tensor,
                   select_names: list[str]) -> Iterator[tuple[Any, torch.Tensor, dict]]:
    """(feats, labels, positions) -> (feats, labels, rows): the selection heads' mask keeps
    the rows whose position is not held out (final heads get no mask: every row). The mask
    stays on the host (positions are host tensors), so `ProbeSet.train_step` knows its row
    count without waiting for the device."""
    for feats, labels, positions in batches:
        keep = ~heldout[positions.long().cpu()]
        yield feats, labels, dict.fromkeys(select_names, keep)


def train_one_pass(
    probes: ProbeSet,
    source: Any,
    val_source: Any,
    train_positions: np.ndarray,
    heldout_positions: np.ndarray,
    *,
    epochs: int,
    seed: int,
    batch_size: int,
    eval_batch_size: int,
    work_dir: Path | None = None,
    progress: bool = False,
    track: ItemTrack | None = None,
) -> dict[str, list[dict[str, float]]]:
    """Train the combined head set (`build_heads`) for `epochs` passes over all training
    positions, resumable (one checkpoint of every head per epoch); the per-head history:
    selection heads on held-out, final heads on val. `track` (an `ItemTrack(None)`) keeps
    the final heads' per-item val hits of every epoch (the selected epoch is known only at
    the end)."""
    all_positions = np.sort(np.concatenate([train_positions, heldout_positions]))
    size = int(all_positions.max()) + 1 if all_positions.size else 0
    heldout = torch.zeros(size, dtype=torch.bool)
    heldout[torch.as_tensor(heldout_positions, dtype=torch.long)] = True
    select = [n for n in probes.heads if n.startswith(SELECT + ":")]
    final = [n for n in probes.heads if n.startswith(FINAL + ":")]

    def evaluate_fn() -> dict[str, dict[str, float]]:
        held = evaluate(probes, source.eval_batches(heldout_positions, eval_batch_size), select)
        sink = track.sink() if track is not None else None
        return {**held, **evaluate(probes, val_source.eval_batches(None, eval_batch_size),
                                   final, hits=sink)}

    return train_phase(
        probes, epochs=epochs, phase=PHASE, work_dir=work_dir, progress=progress,
        batches_per_epoch=max(1, -(-all_positions.size // batch_size)),
        train_batches=lambda e: masked_batches(
            source.train_batches(all_positions, e, seed * 1000 + 2, batch_size,
                                 with_positions=True), heldout, select),
        evaluate_fn=evaluate_fn, track=track,
    )
