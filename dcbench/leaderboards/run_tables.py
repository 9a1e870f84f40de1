"""The user's own results as readable tables: one per protocol and dataset, random vs trained.

Rows are result cells (dataset, split, layer, metric); columns are models (display names,
`identity.identify`) with `mean ± std` over seeds, then `Δ MODEL` = MODEL minus its
random-init baseline. A trained model's baseline is a random-init model (`random-*`,
`@random`, `arch:`) evaluated in the same protocol on the same dataset *with the same
architecture* (arch and Sobel/RGB, `identity.with_architectures`), preferring the one
whose name shares its suffix (`tiny-sobel` -> `random-sobel`); a model of unknown
architecture, or with no such random init, gets no delta. Per-class rows (`ap_*`, `iou_*`)
are kept apart (`split_detail`) so a summary can come first. Numbers keep their own
precision: three decimals for scores in [0, 1], one for percentages, and deltas as many
decimals as the values they compare.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

from dcbench.leaderboards.identity import (
    ARCH_COLUMN,
    KEY_COLUMN,
    RANDOM_COLUMN,
    is_random_init,
    model_label,
    with_architectures,
)
from dcbench.leaderboards.paired_table import NO_DATA, OutcomeIndex, cell_test
from dcbench.leaderboards.tables import summarize

CELL_INDEX = ["dataset", "split", "layer", "metric"]
DETAIL_PREFIXES = ("ap_", "iou_")  # per-class metrics: folded under the summary
CI_PREFIX = "Δ 95% CI, p "  # the paired-interval column of a model (also a Δ column)


def short_names(models: Iterable[str]) -> dict[str, str]:
    """Model spec -> a short unique label (the folder name when it is unique)."""
    models = sorted(set(models))
    base = {m: model_label(str(m)) for m in models}
    counts = pd.Series(list(base.values())).value_counts()
    return {m: (b if counts[b] == 1 else str(m)) for m, b in base.items()}


def is_random(label: str) -> bool:
    """Whether a model label names a random-init baseline (`identity.is_random_init`)."""
    return is_random_init(label, label)


def baseline_for(label: str, randoms: list[str], arch: dict[str, str] | None = None
                 ) -> str | None:
    """The random init `label` is compared with (see the module docstring), or None.

    `arch` maps labels to their architecture (`""` = unknown); only a random init of the
    same known architecture qualifies.
    """
    if not randoms or is_random(label):
        return None
    arch = arch or {}
    mine = arch.get(label, "")
    if not mine:
        return None
    candidates = [r for r in randoms if arch.get(r, "") == mine]
    suffix = label.split("-", 1)[-1]
    same = [r for r in candidates if r.split("-", 1)[-1] == suffix]
    return (same or candidates or [None])[0]


def is_detail(metric: str) -> bool:
    """Whether a metric is a per-class detail (`ap_aeroplane`, `iou_cat`)."""
    return str(metric).startswith(DETAIL_PREFIXES)


def split_detail(table: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(summary rows, per-class rows) of a `protocol_tables` table."""
    detail = table["metric"].map(is_detail)
    return table[~detail].reset_index(drop=True), table[detail].reset_index(drop=True)


def decimals(values: Iterable[float]) -> int:
    """3 decimals when every value is a score in [-1, 1], else 1."""
    finite = [abs(float(v)) for v in values if v is not None and np.isfinite(v)]
    return 3 if finite and max(finite) <= 1.0 else 1


def protocol_tables(results: pd.DataFrame, refs: pd.DataFrame | None = None
                    ) -> list[tuple[str, pd.DataFrame]]:
    """(`PROTOCOL on DATASET`, display table) for each pair present in `results` (current rows).

    The Δ columns are named `Δ MODEL`. With `refs` (the store's per-item outcome
    references) a `Δ 95% CI, p MODEL` column follows where some cell has per-item outcomes
    for both the model and its random init (`paired_table`; "—": no per-item data, no
    interval). `table.attrs`: `baselines` (model -> the random init it is compared with),
    `architectures` (model -> `ARCH (Sobel|RGB)` or ""), `seeds` (the most seeds behind any
    cell), `tests` (paired tests made)."""
    results = with_architectures(results)
    stats = summarize(results)
    if stats.empty:
        return []
    randoms = set(results.loc[results[RANDOM_COLUMN], "model"])
    arch_of = dict(zip(results["model"], results[ARCH_COLUMN], strict=True))
    stats["label"] = stats["model"]
    out = []
    for (dataset, protocol), part in stats.groupby(["dataset", "protocol"], sort=True):
        order = sorted(part["label"].unique(),
                       key=lambda m: (m.split("-", 1)[-1], m not in randoms, m))
        means = part.pivot_table(index=CELL_INDEX, columns="label", values="mean",
                                 aggfunc="mean", sort=True)[order]
        stds = part.pivot_table(index=CELL_INDEX, columns="label", values="std",
                                aggfunc="mean", sort=True, dropna=False).reindex(
            index=means.index, columns=order)
        here = [m for m in order if m in randoms]
        baselines = {m: b for m in order if m not in randoms
                     and (b := baseline_for(m, here, arch_of)) is not None}
        table = pd.DataFrame(index=means.index)
        for label in order:
            table[label] = [_cell(v, s, decimals(means.loc[i].to_numpy()))
                            for i, v, s in zip(means.index, means[label], stds[label],
                                               strict=True)]
        for label, base in baselines.items():
            delta = means[label] - means[base]
            table[f"Δ {label}"] = [
                _delta(d, decimals(means.loc[i].to_numpy())) for i, d in delta.items()]
        table.attrs["tests"] = 0
        if refs is not None:
            index = OutcomeIndex(refs)
            for label, base in baselines.items():
                texts = [_interval(results, index, label, base, protocol, cell)
                         for cell in means.index]
                if any(t != NO_DATA for t in texts):
                    table[f"{CI_PREFIX}{label}"] = ["—" if t == NO_DATA else t for t in texts]
                    table.attrs["tests"] += sum("[" in t for t in texts)
        table.attrs["baselines"] = baselines
        table.attrs["architectures"] = {m: arch_of.get(m, "") for m in order}
        table.attrs["randoms"] = here
        table.attrs["seeds"] = int(part["n"].max())
        out.append((f"{protocol} on {dataset}", table.reset_index()))
    return out


def _interval(results: pd.DataFrame, index: OutcomeIndex, label: str, base: str,
              protocol: str, cell: tuple) -> str:
    """The paired test of `label` minus `base` in one (dataset, split, layer, metric) cell."""
    dataset, split, layer, metric = cell
    rows = results[(results["model"] == label) & (results["protocol"] == protocol)
                   & (results["dataset"] == dataset) & (results["split"] == split)
                   & (results["layer"] == layer) & (results["metric"] == metric)]
    if rows.empty:
        return NO_DATA
    key_of = dict(zip(results["model"], results[KEY_COLUMN], strict=True))
    full = (protocol, rows["dialect"].iloc[-1], dataset, split, layer, metric)
    return cell_test(results, index, key_of[label], key_of[base], full).text()


def _cell(value: float, std: float, places: int) -> str:
    if pd.isna(value):
        return ""
    text = f"{value:.{places}f}"
    return text + (f" ± {std:.{places}f}" if not pd.isna(std) else "")


def _delta(value: float, places: int) -> str:
    return "" if pd.isna(value) else f"{value:+.{places}f}"
