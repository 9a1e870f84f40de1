"""What `dcbench demo` prints at the end: our numbers, the published rows, the claims checked.

Every number comes from the results store and the training logs written by the demo's own
commands; the claims are evaluated on them and reported as they came out, held or not.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from dcbench.leaderboards.store import ResultsStore
from dcbench.leaderboards.tables import Leaderboard
from dcbench.training.rundir import RunDir

# (protocol, metric) pairs shown in the demo table, in order.
SHOWN = [
    ("linear-conv", "top1"), ("knn", "top1"), ("knn-graph", "ratio_edge_intra_class"),
    ("nmi", "nmi"), ("voc07-cls", "map"), ("low-shot", "top1_mean"),
]


@dataclass(frozen=True)
class Claim:
    """One thesis claim evaluated on the demo's own measurements."""

    text: str
    holds: bool
    evidence: str


def demo_table(results: pd.DataFrame) -> pd.DataFrame:
    """(protocol, layer, metric) x model, mean over seeds, for the metrics worth showing."""
    frame = results.copy()
    frame["short"] = frame["model"].map(lambda m: Path(str(m)).name)
    keep = pd.Series(False, index=frame.index)
    for protocol, metric in SHOWN:
        keep |= (frame.protocol == protocol) & (frame.metric == metric)
    frame = frame[keep & frame.split.isin(["val", "test"])]
    table = frame.pivot_table(index=["protocol", "layer", "metric"], columns="short",
                              values="value", aggfunc="mean", sort=False)
    order = [m for m in ("random-sobel", "tiny-sobel", "random-rgb", "tiny-rgb",
                         "random-alexnet_small") if m in table.columns]
    return table[order + [c for c in table.columns if c not in order]]


def _cell(table: pd.DataFrame, protocol: str, layer: str, metric: str, model: str) -> float:
    try:
        return float(table.loc[(protocol, layer, metric), model])
    except KeyError:
        return float("nan")


def evaluate_claims(table: pd.DataFrame, sobel_run: Path, rgb_run: Path) -> list[Claim]:
    """Trained > random (linear conv3-5, graph ratio, k-means NMI); Sobel > RGB; NMI rises."""
    claims = []
    pairs = [(f"linear-conv {c}", ("linear-conv", c, "top1")) for c in ("conv3", "conv4", "conv5")]
    graph_layer = _embedding_row(table, "knn-graph", "ratio_edge_intra_class")
    pairs.append(("graph ratio", ("knn-graph", graph_layer, "ratio_edge_intra_class")))
    nmi_layer = _embedding_row(table, "nmi", "nmi")
    pairs.append(("k-means NMI", ("nmi", nmi_layer, "nmi")))
    wins = []
    for label, key in pairs:
        trained, random = _cell(table, *key, "tiny-sobel"), _cell(table, *key, "random-sobel")
        wins.append((label, trained > random, f"{label} {trained:.3g} vs {random:.3g}"))
    claims.append(Claim("trained beats random init (Sobel)", all(w[1] for w in wins),
                        "; ".join(w[2] for w in wins)))

    sob = [_cell(table, "linear-conv", "conv5", "top1", m) for m in ("tiny-sobel", "tiny-rgb")]
    graph = [_cell(table, "knn-graph", graph_layer, "ratio_edge_intra_class", m)
             for m in ("tiny-sobel", "tiny-rgb")]
    claims.append(Claim(
        "Sobel beats RGB when colour is a nuisance", sob[0] > sob[1] and graph[0] > graph[1],
        f"linear conv5 {sob[0]:.3g} vs {sob[1]:.3g}; graph ratio {graph[0]:.3g} vs "
        f"{graph[1]:.3g}"))
    for name, run in (("Sobel", sobel_run), ("RGB", rgb_run)):
        records = RunDir(run).read_log()
        nmi = [r["nmi_prev"] for r in records if r.get("nmi_prev") is not None]
        if len(nmi) >= 2:
            third = max(1, len(nmi) // 3)
            first, last = sum(nmi[:third]) / third, sum(nmi[-third:]) / third
            claims.append(Claim(f"NMI between consecutive assignments rises ({name})",
                                last > first, f"first epochs {first:.3f} -> last {last:.3f}"))
    return claims


def _embedding_row(table: pd.DataFrame, protocol: str, metric: str) -> str:
    layers = [idx[1] for idx in table.index if idx[0] == protocol and idx[2] == metric]
    return layers[-1] if layers else "fc7"


def print_summary(store_path: str, sobel_run: Path, rgb_run: Path) -> list[Claim]:
    """Print the demo's table, the published Table 5.3 beside it, and the claims."""

    results = ResultsStore(store_path).results()
    table = demo_table(results)
    with pd.option_context("display.width", 140, "display.max_rows", 200):
        print("Measured on the built-in data (percent; ratio and NMI in [0, 1]):")
        print(table.to_string(float_format=lambda v: f"{v:.3g}"))
        published = Leaderboard.from_store(store_path).published("thesis-5.3")
        print("\nPublished (thesis Table 5.3, ImageNet linear-conv top-1; a different "
              "dataset and scale, shown for orientation only, no delta is computed):")
        print(published.to_string(index=False, na_rep=""))
    claims = evaluate_claims(table, sobel_run, rgb_run)
    knn = [_cell(table, "knn", "conv5", "top1", m) for m in ("tiny-sobel", "random-sobel")]
    print(f"\nAlso measured: weighted k-NN top-1 on conv5, trained {knn[0]:.3g} vs random "
          f"{knn[1]:.3g} (the thesis makes no claim about it).")
    print("\nThe thesis's claims on these measurements:")
    for claim in claims:
        print(f"  [{'holds' if claim.holds else 'does NOT hold'}] {claim.text}: {claim.evidence}")
    return claims
