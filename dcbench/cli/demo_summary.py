"""What `dcbench demo` prints at the end: our numbers, the published rows, the claims checked.

Every number comes from the results store and the training logs written by the demo's own
commands; the claims are evaluated on them (`demo_claims`: paired intervals where the runs
kept per-item outcomes) and reported as they came out: held, not held, or undecided.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pandas as pd

from dcbench.cli.demo_claims import (
    Claim,
    Comparison,
    Intervals,
    compare,
    format_value,
    make_claim,
    verdict_line,
)
from dcbench.leaderboards.paired_table import CellTest, OutcomeIndex, run_test
from dcbench.leaderboards.store import ResultsStore
from dcbench.leaderboards.tables import Leaderboard
from dcbench.training.rundir import RunDir

# (protocol, metric) pairs shown in the demo table, in order.
SHOWN = [
    ("linear-conv", "top1"), ("knn", "top1"), ("knn-graph", "ratio_edge_intra_class"),
    ("nmi", "nmi"), ("voc07-cls", "map"), ("low-shot", "top1_mean"),
]


MODEL_ORDER = ("random-sobel", "tiny-sobel", "random-rgb", "tiny-rgb", "digits-sobel",
               "random-alexnet_small")


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


def evaluate_claims(table: pd.DataFrame, sobel_run: Path, rgb_run: Path,
                    intervals: Intervals | None = None) -> list[Claim]:
    """Trained > random (linear conv3-5, graph ratio, k-means NMI); Sobel > RGB; NMI rises.
    `intervals` gives the paired test of two models in a cell where both kept per-item
    outcomes (else the comparison is on the printed numbers)."""
    test = intervals or (lambda *_: None)

    def versus(label: str, key: tuple[str, str, str], a: str, b: str,
               dataset: str = "cls") -> Comparison:
        return compare(label, key[2], _cell(table, *key, a, dataset),
                       _cell(table, *key, b, dataset), test(dataset, *key, a, b))

    graph_layer = _embedding_row(table, "knn-graph", "ratio_edge_intra_class")
    nmi_layer = _embedding_row(table, "nmi", "nmi")
    graph = ("knn-graph", graph_layer, "ratio_edge_intra_class")
    trained = [versus(f"linear-conv {c}", ("linear-conv", c, "top1"), "tiny-sobel",
                      "random-sobel") for c in ("conv3", "conv4", "conv5")]
    trained.append(versus("graph ratio", graph, "tiny-sobel", "random-sobel"))
    trained.append(versus("k-means NMI", ("nmi", nmi_layer, "nmi"), "tiny-sobel",
                          "random-sobel"))
    claims = [make_claim("trained beats random init (Sobel)", trained)]
    claims.append(make_claim("Sobel beats RGB when colour is a nuisance", [
        versus("linear conv5", ("linear-conv", "conv5", "top1"), "tiny-sobel", "tiny-rgb"),
        versus("graph ratio", graph, "tiny-sobel", "tiny-rgb")]))
    for name, run in (("Sobel", sobel_run), ("RGB", rgb_run)):
        records = RunDir(run).read_log()
        nmi = [r["nmi_prev"] for r in records if r.get("nmi_prev") is not None]
        if len(nmi) >= 2:
            third = max(1, len(nmi) // 3)
            first, last = sum(nmi[:third]) / third, sum(nmi[-third:]) / third
            rise = compare("NMI", "nmi", last, first)
            claims.append(make_claim(
                f"NMI between consecutive assignments rises ({name})",
                [dataclasses.replace(rise, evidence=f"first epochs {first:.3f} -> last "
                                     f"{last:.3f} (one training run: no interval)")]))
    return claims


def _embedding_row(table: pd.DataFrame, protocol: str, metric: str) -> str:
    layers = [idx[2] for idx in table.index if idx[1] == protocol and idx[3] == metric]
    return layers[-1] if layers else "fc7"


def digits_claim(table: pd.DataFrame, intervals: Intervals | None = None) -> Claim | None:
    """Trained on real digits beats random init on them (linear conv5, k-NN conv5, NMI)."""
    if "digits-sobel" not in table.columns:
        return None
    test = intervals or (lambda *_: None)
    checks = [("linear-conv conv5", ("linear-conv", "conv5", "top1")),
              ("k-NN conv5", ("knn", "conv5", "top1")),
              ("k-means NMI", ("nmi", _embedding_row(table, "nmi", "nmi"), "nmi"))]
    return make_claim("on real digits, DeepCluster beats random init", [
        compare(label, key[2], _cell(table, *key, "digits-sobel", dataset="digits"),
                _cell(table, *key, "random-sobel", dataset="digits"),
                test("digits", *key, "digits-sobel", "random-sobel"))
        for label, key in checks])


def store_intervals(results: pd.DataFrame, refs: pd.DataFrame) -> Intervals:
    """Paired tests between the demo's runs, from the per-item outcomes the store references
    (`results`: the demo's rows; models by their short name, as the demo table shows them)."""
    index = OutcomeIndex(refs)
    short = results["model"].map(lambda m: Path(str(m)).name)
    split = results["split"].isin(["val", "test"])

    def intervals(dataset: str, protocol: str, layer: str, metric: str, a: str,
                  b: str) -> CellTest | None:
        runs = []
        for model in (a, b):
            rows = results[split & (short == model) & (results.dataset == dataset)
                           & (results.protocol == protocol) & (results.layer == layer)
                           & (results.metric == metric)]
            if rows.empty:
                return None
            runs.append(rows.iloc[-1])
        return run_test(index, runs[0]["run_id"], runs[1]["run_id"], runs[0]["split"], layer,
                        metric, dataset=dataset,
                        seeds=tuple(_seed(r.get("seed")) for r in runs),
                        models=tuple(r.get("model_sha256") or None for r in runs))

    return intervals


def _seed(value: object) -> int | None:
    """A row's seed as `OutcomeIndex.entry` takes it (None when the row has none)."""
    return None if value is None or pd.isna(value) else int(value)


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
    intervals = store_intervals(results, ResultsStore(store_path).outcome_refs())
    claims = evaluate_claims(table, sobel_run, rgb_run, intervals)
    pair = ("tiny-sobel", "random-sobel")
    knn = compare("trained vs random", "top1",
                  *[_cell(table, "knn", "conv5", "top1", m) for m in pair],
                  intervals("cls", "knn", "conv5", "top1", *pair))
    print(f"\nAlso measured: weighted k-NN top-1 on conv5, {knn.evidence} (the thesis makes "
          "no claim about it).")
    digits = digits_claim(table, intervals)
    print("\nThe thesis's claims on these measurements:")
    print("  (Δ: trained minus random, with its 95% paired bootstrap interval over the test "
          "images,\n  10,000 resamples, seed 0, and McNemar's exact p; undecided at this size: "
          "the interval\n  contains 0, or numbers without per-item data tie as printed)")
    for claim in claims:
        print(verdict_line(claim))
    if digits is not None:
        print("On real images (not a thesis table; reported as it came out):")
        print(verdict_line(digits))
        claims.append(digits)
    return claims
