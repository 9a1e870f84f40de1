"""The user's own results as readable tables: one per protocol and dataset, random vs trained.

Rows are result cells (dataset, split, layer, metric); columns are models (short names)
with `mean ± std` over seeds, then `Δ MODEL` = MODEL minus its random-init baseline. A
model's baseline is the random model (name starting with `random`) evaluated in the same
protocol whose name shares the most of its suffix (`tiny-sobel` -> `random-sobel`), else
the only random model there. Numbers keep their own precision: three decimals for scores
in [0, 1], one for percentages, and deltas as many decimals as the values they compare.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from dcbench.leaderboards.tables import summarize

CELL_INDEX = ["dataset", "split", "layer", "metric"]


def short_names(models: Iterable[str]) -> dict[str, str]:
    """Model spec -> a short unique label (the folder name when it is unique)."""
    models = sorted(set(models))
    base = {m: _folder_label(str(m)) for m in models}
    counts = pd.Series(list(base.values())).value_counts()
    return {m: (b if counts[b] == 1 else str(m)) for m, b in base.items()}


def _folder_label(model: str) -> str:
    """`runs/tiny/final` -> `tiny`; `models/tiny-sobel` -> `tiny-sobel`; names unchanged."""
    path = Path(model.rstrip("/"))
    if path.name in ("final", "latest") and path.parent.name:
        path = path.parent.parent if path.parent.name == "checkpoints" else path.parent
    return path.name or model


def is_random(label: str) -> bool:
    """Whether a model label names a random-init baseline."""
    return label.startswith("random")


def baseline_for(label: str, randoms: list[str]) -> str | None:
    """The random model `label` is compared with (see the module docstring)."""
    if not randoms or is_random(label):
        return None
    suffix = label.split("-", 1)[-1]
    same = [r for r in randoms if r.split("-", 1)[-1] == suffix]
    if same:
        return same[0]
    return randoms[0] if len(randoms) == 1 else None


def decimals(values: Iterable[float]) -> int:
    """3 decimals when every value is a score in [-1, 1], else 1."""
    finite = [abs(float(v)) for v in values if v is not None and np.isfinite(v)]
    return 3 if finite and max(finite) <= 1.0 else 1


def protocol_tables(results: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    """(`PROTOCOL on DATASET`, display table) for each pair present in `results` (current rows).

    The Δ columns are named `Δ MODEL`; `baselines(table)` says which random model each
    compares with."""
    stats = summarize(results)
    if stats.empty:
        return []
    labels = short_names(stats["model"])
    stats["label"] = stats["model"].map(labels)
    out = []
    for (dataset, protocol), part in stats.groupby(["dataset", "protocol"], sort=True):
        order = sorted(part["label"].unique(),
                       key=lambda m: (m.split("-", 1)[-1], not is_random(m), m))
        means = part.pivot_table(index=CELL_INDEX, columns="label", values="mean",
                                 aggfunc="mean", sort=True)[order]
        stds = part.pivot_table(index=CELL_INDEX, columns="label", values="std",
                                aggfunc="mean", sort=True, dropna=False).reindex(
            index=means.index, columns=order)
        randoms = [m for m in order if is_random(m)]
        table = pd.DataFrame(index=means.index)
        for label in order:
            table[label] = [_cell(v, s, decimals(means.loc[i].to_numpy()))
                            for i, v, s in zip(means.index, means[label], stds[label],
                                               strict=True)]
        for label in order:
            base = baseline_for(label, randoms)
            if base is None:
                continue
            delta = means[label] - means[base]
            table[f"Δ {label}"] = [
                _delta(d, decimals(means.loc[i].to_numpy())) for i, d in delta.items()]
        table.attrs["baselines"] = {label: baseline_for(label, randoms) for label in order
                                    if baseline_for(label, randoms)}
        out.append((f"{protocol} on {dataset}", table.reset_index()))
    return out


def _cell(value: float, std: float, places: int) -> str:
    if pd.isna(value):
        return ""
    text = f"{value:.{places}f}"
    return text + (f" ± {std:.{places}f}" if not pd.isna(std) else "")


def _delta(value: float, places: int) -> str:
    return "" if pd.isna(value) else f"{value:+.{places}f}"
