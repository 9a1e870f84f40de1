"""The digits study's selection rule, and the shipped `digits` recipe being what it chose."""

from __future__ import annotations

import csv
from pathlib import Path

from benchmarks.digits_k_study import AUGMENTATIONS, select
from dcbench.core import config as cfg
from dcbench.training.config import resolve_config

RESULTS = Path(__file__).resolve().parents[2] / "benchmarks" / "results" / "digits_k_study.csv"


def _row(k, aug, epoch, knn, nmi, random=(90.0, 0.3)):
    return {"k": k, "augmentation": aug, "epoch": epoch, "heldout_knn_conv5": knn,
            "heldout_nmi_fc7": nmi, "score": (knn - random[0]) / 100 + (nmi - random[1])}


def test_rule_maximises_the_score_and_breaks_ties_by_epochs_then_k():
    rows = [_row(0, "random init", 0, 90.0, 0.3), _row(30, "tiny", 4, 95.0, 0.30),
            _row(10, "tiny", 4, 91.0, 0.34), _row(100, "digit", 2, 91.0, 0.34),
            _row(10, "digit", 2, 92.0, 0.33)]
    # scores: 0.05, 0.05, 0.05, 0.05 -> the fewest epochs (2), then the smaller k (10)
    chosen = select(rows)
    assert (chosen["chosen"]["k"], chosen["chosen"]["augmentation"]) == (10, "digit")
    assert chosen["helps"]
    # a setting better in k-NN but worse in NMI than random init does not "help"
    worse = [rows[0], _row(10, "tiny", 1, 99.0, 0.2)]
    assert select(worse)["chosen"]["k"] == 10 and not select(worse)["helps"]


def test_the_shipped_recipe_is_the_studys_choice():
    with open(RESULTS, newline="") as handle:
        rows = [{**r, "k": int(r["k"]), "epoch": int(r["epoch"]),
                 **{key: float(r[key]) for key in ("heldout_knn_conv5", "heldout_nmi_fc7",
                                                   "score")}}
                for r in csv.DictReader(handle)]
    best = select(rows)["chosen"]
    study = resolve_config("tiny", [f"k={best['k']}", "sobel=true",
                                    *AUGMENTATIONS[best["augmentation"]]], epochs=best["epoch"])
    assert cfg.to_dict(resolve_config("digits")) == cfg.to_dict(study)
