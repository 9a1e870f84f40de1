"""Why does the `tiny` recipe not help on the real digits? A study of k, epochs and crops.

`python -m benchmarks.digits_k_study --out DIR` (about 45 min on 2 busy CPU cores)
writes DIR/digits_k_study.csv, DIR/digits_k_study.png and DIR/selection.json. It is a
study, not a speed benchmark (so it is not a `dcbench bench` entry): it measures how
well DeepCluster features separate the digits as training goes on, the way the thesis
studies k (Table 4.1: k = 100 / 1000 / 10000; ECCV Fig. 3a: NMI and transfer vs k).

Data. The demo's digits (`dcbench data digits --seed 0`: 1,347 train / 450 val). The val
split is the demo's reported test set and is NEVER read here. The 1,347 training images are
split again, stratified by class with seed 0, into a FIT part (75%, 1,010 images: the only
images DeepCluster trains on and the labelled bank of the k-NN) and a HELD-OUT part (25%,
337 images: the queries of the k-NN and the images clustered for NMI).

Grid (alexnet_small, Sobel, the `tiny` recipe otherwise). k in {10, 30, 100}, crossed with
two augmentations: `tiny` (random-resized crops of 25-100% of the image + horizontal flip,
as on the shapes) and `digit` (crops of 50-100%, no flip: a flipped 2, 3, 7 or 9 is no
longer that digit). Each of the 6 runs is measured after 1, 2 and 4 epochs (the grid is
small because the study had to fit ~40 min on 2 shared cores); random init (epoch 0) is
the reference. Every epoch's log also gives the NMI between the k clusters
and the labels on the fit part (the curve the thesis plots during training).

Held-out measurements. (a) weighted k-NN top-1 on conv5 (the `knn` protocol's core:
20 neighbours, T = 0.07, dc2018 pooling); (b) NMI of 10-means on fc7 (the `nmi` protocol's
core: PCA-whitening + L2, faiss k-means, seed 0).

Selection rule (fixed before the study ran; it reads held-out numbers only):
  score = (kNN - kNN_random) / 100 + (NMI - NMI_random)
  the setting (k, augmentation, epochs) with the highest score is the digits recipe;
  ties (equal to 4 decimals) go to fewer epochs, then smaller k. A setting "helps" only if
  both its held-out kNN and its held-out NMI are above random init; if the chosen one does
  not, the study says that no setting helps (and the README says so).
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np
from sklearn.model_selection import train_test_split

from dcbench.clustering.preprocess import preprocess_features
from dcbench.core.files import write_json
from dcbench.data.digits import make_digits_set
from dcbench.data.folders import ImageFolderDataset
from dcbench.models.factory import load_model
from dcbench.protocols.knn import knn_metrics
from dcbench.protocols.nmi import nmi_core
from dcbench.protocols.probe.frozen_features import frozen_features
from dcbench.protocols.probe.splits import load_splits
from dcbench.training.config import resolve_config
from dcbench.training.deepcluster import train
from dcbench.training.rundir import RunDir

KS = (10, 30, 100)
AUGMENTATIONS = {"tiny": ["crop_scale=[0.25,1.0]", "hflip=true"],
                 "digit": ["crop_scale=[0.5,1.0]", "hflip=false"]}
CHECKPOINTS = (1, 2, 4)
HELD_OUT = 0.25
KNN_LAYER, NMI_LAYER = "conv5", "fc7"
FIELDS = ["k", "augmentation", "epoch", "heldout_knn_conv5", "heldout_nmi_fc7", "score"]


def split_training_set(digits: Path, out: Path, seed: int) -> Path:
    """Copy digits/train into out/{train,val}: fit (75%) and held-out (25%), stratified."""
    source = ImageFolderDataset(digits / "train")
    paths = [Path(p) for p, _ in source.samples]
    fit, held = train_test_split(np.arange(len(paths)), test_size=HELD_OUT,
                                 stratify=source.targets, random_state=seed)
    if out.exists():
        shutil.rmtree(out)
    for split, indices in (("train", fit), ("val", held)):
        for i in sorted(indices):
            dest = out / split / paths[i].parent.name / paths[i].name
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(paths[i], dest)
    return out


def measure(model_spec: str, heldout: Path, seed: int) -> tuple[float, float]:
    """(held-out weighted k-NN top-1 on conv5, held-out NMI of 10-means on fc7)."""
    model = load_model(model_spec)
    splits = load_splits(heldout, "val")
    common = dict(use_cache=False, batch_size=64, device="cpu", progress=False)
    train_f = frozen_features(model, splits.train, [KNN_LAYER], **common)[KNN_LAYER]
    val_f = frozen_features(model, splits.val, [KNN_LAYER, NMI_LAYER], **common)
    knn = knn_metrics(train_f.features.numpy(), train_f.labels.numpy(),
                      val_f[KNN_LAYER].features.numpy(), val_f[KNN_LAYER].labels.numpy(),
                      splits.num_classes, k=20, temperature=0.07)["top1"]
    x = preprocess_features(val_f[NMI_LAYER].features.numpy(), "pca-whiten", 256)
    nmi = nmi_core(x, val_f[NMI_LAYER].labels.numpy(), splits.num_classes, seed=seed)["nmi"]
    return float(knn), float(nmi)


def write_csv(rows: list[dict], path: Path) -> None:
    """The measurements so far (rewritten after each, so a cut-short study keeps them)."""
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, FIELDS)
        writer.writeheader()
        for row in rows:
            writer.writerow({f: (f"{row[f]:.4f}" if isinstance(row[f], float) else row[f])
                             for f in FIELDS})


def read_csv(path: Path) -> list[dict]:
    """The rows `write_csv` wrote, with numbers as numbers."""
    with open(path, newline="") as handle:
        return [{**r, "k": int(r["k"]), "epoch": int(r["epoch"]),
                 **{f: float(r[f]) for f in FIELDS[3:]}} for r in csv.DictReader(handle)]


def select(rows: list[dict]) -> dict:
    """The rule of the module docstring, applied to the trained rows (epoch > 0)."""
    random = next(r for r in rows if r["epoch"] == 0)
    trained = [r for r in rows if r["epoch"] > 0]
    best = min(trained, key=lambda r: (-round(r["score"], 4), r["epoch"], r["k"]))
    helps = (best["heldout_knn_conv5"] > random["heldout_knn_conv5"]
             and best["heldout_nmi_fc7"] > random["heldout_nmi_fc7"])
    return {"chosen": best, "random": random, "helps": helps,
            "rule": "max (kNN - kNN_random)/100 + (NMI - NMI_random) on the held-out part; "
                    "ties: fewer epochs, then smaller k"}


def figure(rows: list[dict], logs: dict[tuple[int, str], list[dict]], path: Path) -> None:
    """Three panels: held-out k-NN and NMI vs epochs per (k, augmentation); training NMI."""
    import matplotlib  # lazy: plotting only when the study writes its figure

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # lazy: as above

    random = next(r for r in rows if r["epoch"] == 0)
    from matplotlib.ticker import MaxNLocator  # lazy: as above

    fig, axes = plt.subplots(1, 3, figsize=(15, 5.2), layout="constrained")
    colours = {10: "tab:blue", 30: "tab:orange", 100: "tab:green"}
    styles = {"tiny": "-", "digit": "--"}
    panels = [("heldout_knn_conv5", "held-out k-NN top-1, conv5 (%)"),
              ("heldout_nmi_fc7", "held-out NMI, 10-means on fc7")]
    for ax, (key, title) in zip(axes[:2], panels, strict=True):
        for (k, aug) in logs:
            pts = [random] + [r for r in rows if r["k"] == k and r["augmentation"] == aug]
            ax.plot([r["epoch"] for r in pts], [r[key] for r in pts], styles[aug],
                    marker="o", color=colours[k], label=f"k={k}, {aug} crops")
        ax.axhline(random[key], color="grey", linewidth=1, label="random init")
        ax.set_title(title)
        ax.set_xlabel("epochs of DeepCluster")
    for ax in axes:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(True, alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=7, fontsize=9)
    for (k, aug), records in logs.items():
        axes[2].plot([r["epoch"] + 1 for r in records],
                     [r.get("nmi_labels") for r in records], styles[aug], color=colours[k],
                     label=f"k={k}, {aug} crops")
    axes[2].set_title("training: NMI(k clusters, labels), fit part")
    axes[2].set_xlabel("epoch")
    fig.suptitle("DeepCluster on scikit-learn digits (alexnet_small, Sobel): k and crops")
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    """Run the grid, write the CSV, the figure and the selection."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--ks", type=int, nargs="+", default=list(KS))
    parser.add_argument("--checkpoints", type=int, nargs="+", default=list(CHECKPOINTS))
    parser.add_argument("--augmentations", nargs="+", default=list(AUGMENTATIONS),
                        choices=list(AUGMENTATIONS))
    parser.add_argument("--plot-only", action="store_true",
                        help="redraw the figure from --out's CSV and run logs (no training)")
    args = parser.parse_args(argv)
    out: Path = args.out
    if args.plot_only:
        rows = read_csv(out / "digits_k_study.csv")
        logs = {(r["k"], r["augmentation"]): RunDir(out / "runs" / f"k{r['k']}-"
                                                    f"{r['augmentation']}").read_log()
                for r in rows if r["epoch"] > 0}
        figure(rows, logs, out / "digits_k_study.png")
        return 0
    out.mkdir(parents=True, exist_ok=True)
    digits = out / "digits"
    if not digits.is_dir():
        make_digits_set(digits, seed=args.seed)
    heldout = split_training_set(digits, out / "heldout", args.seed)
    t0 = time.perf_counter()
    knn, nmi = measure(f"random-alexnet_small-sobel?seed={args.seed}", heldout, args.seed)
    rows = [{"k": 0, "augmentation": "random init", "epoch": 0, "heldout_knn_conv5": knn,
             "heldout_nmi_fc7": nmi, "score": 0.0}]
    write_csv(rows, out / "digits_k_study.csv")
    print(f"random init: kNN {knn:.1f} NMI {nmi:.3f}", flush=True)
    logs = {}
    for aug in args.augmentations:
        for k in args.ks:
            run = out / "runs" / f"k{k}-{aug}"
            if run.exists():
                shutil.rmtree(run)
            for i, epochs in enumerate(sorted(args.checkpoints)):
                config = resolve_config("tiny", [f"k={k}", "sobel=true", *AUGMENTATIONS[aug]],
                                        epochs=epochs)
                train(config, heldout / "train", run, resume=i > 0)
                knn_e, nmi_e = measure(str(run / "final"), heldout, args.seed)
                score = (knn_e - knn) / 100 + (nmi_e - nmi)
                rows.append({"k": k, "augmentation": aug, "epoch": epochs,
                             "heldout_knn_conv5": knn_e, "heldout_nmi_fc7": nmi_e,
                             "score": score})
                write_csv(rows, out / "digits_k_study.csv")
                print(f"k={k} {aug} epoch {epochs}: kNN {knn_e:.1f} NMI {nmi_e:.3f} "
                      f"score {score:+.4f} ({time.perf_counter() - t0:.0f} s)", flush=True)
            logs[(k, aug)] = RunDir(run).read_log()
    figure(rows, logs, out / "digits_k_study.png")
    selection = select(rows)
    write_json(out / "selection.json", selection)
    print(json.dumps(selection, indent=1), flush=True)
    print(f"study done in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
