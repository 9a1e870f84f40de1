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
    ties: tuple[str, ...] = ()  # comparisons equal at the printed precision (not wins)


FRACTION_METRICS = ("ratio_edge_intra_class", "nmi")
MODEL_ORDER = ("random-sobel", "tiny-sobel", "random-rgb", "tiny-rgb", "digits-sobel",
               "random-alexnet_small")


def format_value(metric: str, value: float) -> str:
    """One precision per kind of number: percent with 1 decimal, [0, 1] scores with 3."""
    if pd.isna(value):
        return ""
    return f"{value:.3f}" if metric in FRACTION_METRICS else f"{value:.1f}"


def shown(metric: str, value: float) -> float:
    """`value` rounded to the digits the demo prints for `metric`."""
    return round(float(value), 3 if metric in FRACTION_METRICS else 1)


def beats(metric: str, a: float, b: float) -> bool:
    """a > b as printed: equal at the printed precision is a tie, not a win; NaN never wins."""
    if pd.isna(a) or pd.isna(b):
        return False
    return shown(metric, a) > shown(metric, b)


def is_tie(metric: str, a: float, b: float) -> bool:
    """Both values print the same (and neither is missing)."""
    return not (pd.isna(a) or pd.isna(b)) and shown(metric, a) == shown(metric, b)


def demo_table(results: pd.DataFrame) -> pd.DataFrame:
    """(dataset, protocol, layer, metric) x model, mean over seeds, for the metrics shown."""
    frame = results.copy()
    frame["short"] = frame["model"].map(lambda m: Path(str(m)).name)
    keep = pd.Series(False, index=frame.index)
    for protocol, metric in SHOWN:
        keep |= (frame.protocol == protocol) & (frame.metric == metric)
    frame = frame[keep & frame.split.isin(["val", "test"])]
    table = frame.pivot_table(index=["dataset", "protocol", "layer", "metric"], columns="short",
                              values="value", aggfunc="mean", sort=False)
    order = [m for m in MODEL_ORDER if m in table.columns]
    table = table[order + [c for c in table.columns if c not in order]]
    table.columns.name = "model"
    return table


def table_text(table: pd.DataFrame) -> str:
    """The demo table as text, each value in its metric's precision."""
    shown = table.copy().astype(object)
    for index in table.index:
        shown.loc[index] = [format_value(index[-1], v) for v in table.loc[index]]
    return shown.to_string()


def _cell(table: pd.DataFrame, protocol: str, layer: str, metric: str, model: str,
          dataset: str = "cls") -> float:
    try:
        return float(table.loc[(dataset, protocol, layer, metric), model])
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
    wins, ties = [], []
    for label, key in pairs:
        trained, random = _cell(table, *key, "tiny-sobel"), _cell(table, *key, "random-sobel")
        wins.append((label, beats(key[2], trained, random),
                     f"{label} {format_value(key[2], trained)} vs "
                     f"{format_value(key[2], random)}"))
        if is_tie(key[2], trained, random):
            ties.append(label)
    claims.append(Claim("trained beats random init (Sobel)", all(w[1] for w in wins),
                        "; ".join(w[2] for w in wins), tuple(ties)))

    sob = [_cell(table, "linear-conv", "conv5", "top1", m) for m in ("tiny-sobel", "tiny-rgb")]
    graph = [_cell(table, "knn-graph", graph_layer, "ratio_edge_intra_class", m)
             for m in ("tiny-sobel", "tiny-rgb")]
    ratio = "ratio_edge_intra_class"
    claims.append(Claim(
        "Sobel beats RGB when colour is a nuisance",
        beats("top1", *sob) and beats(ratio, *graph),
        f"linear conv5 {sob[0]:.1f} vs {sob[1]:.1f}; graph ratio {graph[0]:.3f} vs "
        f"{graph[1]:.3f}",
        tuple(label for label, metric, pair in (("linear conv5", "top1", sob),
                                                ("graph ratio", ratio, graph))
              if is_tie(metric, *pair))))
    for name, run in (("Sobel", sobel_run), ("RGB", rgb_run)):
        records = RunDir(run).read_log()
        nmi = [r["nmi_prev"] for r in records if r.get("nmi_prev") is not None]
        if len(nmi) >= 2:
            third = max(1, len(nmi) // 3)
            first, last = sum(nmi[:third]) / third, sum(nmi[-third:]) / third
            claims.append(Claim(f"NMI between consecutive assignments rises ({name})",
                                beats("nmi", last, first),
                                f"first epochs {first:.3f} -> last {last:.3f}",
                                ("NMI",) if is_tie("nmi", last, first) else ()))
    return claims


def _embedding_row(table: pd.DataFrame, protocol: str, metric: str) -> str:
    layers = [idx[2] for idx in table.index if idx[1] == protocol and idx[3] == metric]
    return layers[-1] if layers else "fc7"


def digits_claim(table: pd.DataFrame) -> Claim | None:
    """Trained on real digits beats random init on them (linear conv5, k-NN conv5, NMI)."""
    if "digits-sobel" not in table.columns:
        return None
    checks = [("linear-conv conv5", ("linear-conv", "conv5", "top1")),
              ("k-NN conv5", ("knn", "conv5", "top1")),
              ("k-means NMI", ("nmi", _embedding_row(table, "nmi", "nmi"), "nmi"))]
    parts, wins, ties = [], [], []
    for label, key in checks:
        trained = _cell(table, *key, "digits-sobel", dataset="digits")
        random = _cell(table, *key, "random-sobel", dataset="digits")
        wins.append(beats(key[2], trained, random))
        if is_tie(key[2], trained, random):
            ties.append(label)
        parts.append(f"{label} {format_value(key[2], trained)} vs "
                     f"{format_value(key[2], random)}")
    return Claim("on real digits, DeepCluster beats random init", all(wins), "; ".join(parts),
                 tuple(ties))


def print_summary(store_path: str, sobel_run: Path, rgb_run: Path,
                  run_ids: list[str] | None = None) -> list[Claim]:
    """Print the demo's table (its own rows only), Table 5.3 for orientation, the claims."""
    results = ResultsStore(store_path).results(**({"run_id": run_ids} if run_ids else {}))
    table = demo_table(results)
    with pd.option_context("display.width", 120, "display.max_rows", 200):
        print("Measured on the built-in data (cls = synthetic shapes, digits = real "
              "handwritten digits; percent, ratio and NMI in [0, 1]):")
        print(table_text(table))
        published = Leaderboard.from_store(store_path).published("thesis-5.3")
        print("\nPublished (thesis Table 5.3, ImageNet linear-conv top-1; a different "
              "dataset and scale, shown for orientation only, no delta is computed):")
        columns = ["method", "conv1", "conv2", "conv3", "conv4", "conv5"]
        print(published[columns].to_string(index=False, na_rep="",
                                           float_format=lambda v: f"{v:.1f}"))
    claims = evaluate_claims(table, sobel_run, rgb_run)
    knn = [_cell(table, "knn", "conv5", "top1", m) for m in ("tiny-sobel", "random-sobel")]
    print(f"\nAlso measured: weighted k-NN top-1 on conv5, trained {knn[0]:.1f} vs random "
          f"{knn[1]:.1f} (the thesis makes no claim about it).")
    digits = digits_claim(table)
    print("\nThe thesis's claims on these measurements:")
    for claim in claims:
        print(verdict_line(claim))
    if digits is not None:
        print("On real images (not a thesis table; reported as it came out):")
        print(verdict_line(digits))
        claims.append(digits)
    return claims


def verdict_line(claim: Claim) -> str:
    """`  [holds] text: evidence` as the demo prints it, naming any tie (which is no win)."""
    line = f"  [{'holds' if claim.holds else 'does NOT hold'}] {claim.text}: {claim.evidence}"
    if claim.ties:
        line += f" (a tie at the printed precision is not a win: {', '.join(claim.ties)})"
    return line
