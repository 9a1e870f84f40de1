"""`dcbench demo`: the whole suite end to end on built-in data, offline, on a laptop CPU.

Generates the built-in datasets, trains the `tiny` DeepCluster recipe twice (Sobel and RGB),
evaluates random-init and trained networks with linear-conv (fast), knn, knn-graph, nmi,
voc07-cls and low-shot, stores every row, prints the comparison next to the published
rows, checks the thesis's claims on what it measured, and writes an HTML report.
Every step is the real CLI command (printed as it runs), so each can be re-run by hand.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from dcbench.cli.demo_summary import print_summary
from dcbench.cli.entry import main
from dcbench.core.errors import UserError
from dcbench.core.files import check_output_dir, write_json
from dcbench.models.checkpoints import save_hub_dir
from dcbench.models.factory import load_model

HELP = "run everything end to end on built-in data (no data, no network needed)"
EPILOG = """examples:
  dcbench demo                      # ~5-6 minutes on 2 CPU cores: the numbers in the README
  dcbench demo --quick              # ~1 minute: smaller data, fewer epochs (used by the tests)
  dcbench demo --out /tmp/demo --force
afterwards:
  dcbench leaderboard compare --store dcbench-demo/results.sqlite \
      dcbench-demo/models/random-sobel dcbench-demo/models/tiny-sobel
  open dcbench-demo/report.html
"""


@dataclass(frozen=True)
class DemoSize:
    """How big each step is; `full` is the README run, `quick` the test run."""

    per_class: int
    val_per_class: int
    voc_images: tuple[int, int, int]
    epochs: int
    k: int
    low_shot: str
    voc_iters: int


FULL = DemoSize(per_class=250, val_per_class=100, voc_images=(80, 80, 120), epochs=20, k=80,
                low_shot="[4,16]", voc_iters=150)
QUICK = DemoSize(per_class=50, val_per_class=20, voc_images=(24, 24, 32), epochs=4, k=32,
                 low_shot="[4]", voc_iters=20)

MODELS = ("random-sobel", "tiny-sobel", "random-rgb", "tiny-rgb")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of `dcbench demo`."""
    parser.add_argument("--out", type=Path, default=Path("dcbench-demo"),
                        help="output folder (data, runs, results.sqlite, report.html)")
    parser.add_argument("--quick", action="store_true", help="the ~1-minute version")
    parser.add_argument("--force", action="store_true", help="replace an existing --out")
    parser.add_argument("--seed", type=int, default=0, help="seed of data, init and probes")


class Steps:
    """Runs CLI commands in-process, echoing each and timing it."""

    def __init__(self) -> None:
        self.started = time.perf_counter()

    def __call__(self, title: str, argv: list[str]) -> None:

        t0 = time.perf_counter()
        print(f"\n[{self.elapsed()}] {title}\n  $ dcbench {' '.join(argv)}", flush=True)
        code = main(argv)
        if code != 0:
            raise UserError(f"demo step failed (exit {code}): dcbench {' '.join(argv)}")
        print(f"  ({time.perf_counter() - t0:.1f} s)", flush=True)

    def elapsed(self) -> str:
        seconds = int(time.perf_counter() - self.started)
        return f"{seconds // 60:02d}:{seconds % 60:02d}"


def _prepare(out: Path, force: bool) -> None:
    check_output_dir(out)
    if out.exists() and any(out.iterdir()):
        if not force:
            raise UserError(f"{out} exists and is not empty; pass --force to replace it")
        if not (out / "demo.json").is_file():
            raise UserError(f"{out} does not look like a demo folder (no demo.json); "
                            "refusing to delete it")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)


def run(args: argparse.Namespace) -> int:
    """Data -> train (Sobel, RGB) -> eval x models -> store -> claims -> report."""
    size = QUICK if args.quick else FULL
    out: Path = args.out
    _prepare(out, args.force)
    write_json(out / "demo.json", {"quick": args.quick, "seed": args.seed})
    step = Steps()
    store = str(out / "results.sqlite")
    data, runs, models = out / "data", out / "runs", out / "models"
    cls, voc = data / "cls", data / "voc" / "VOCdevkit"

    step("1/6 built-in datasets (shapes with nuisance colours; a VOC-format set)",
         ["data", "synth", "--out", str(data), "--kind", "all", "--seed", str(args.seed),
          "--per-class", str(size.per_class), "--val-per-class", str(size.val_per_class),
          "--voc-images", *map(str, size.voc_images)])
    for kind, sobel in (("sobel", "true"), ("rgb", "false")):
        step(f"2/6 train DeepCluster, recipe tiny ({kind})",
             ["train", "--recipe", "tiny", "--data", str(cls / "train"),
              "--out", str(runs / f"tiny-{kind}"), "--epochs", str(size.epochs),
              "--set", f"k={size.k}", "--set", f"sobel={sobel}"])
        _link_model(runs / f"tiny-{kind}", models / f"tiny-{kind}")
    _export_random(models, args.seed)

    def evaluate(title: str, protocol: str, name: str, data_dir: Path, *extra: str) -> None:
        step(f"{title} {name}: {protocol}",
             ["eval", "--protocol", protocol, "--model", str(models / name),
              "--data", str(data_dir), "--seed", str(args.seed), "--store", store,
              "--schedule", "smoke", "--out", str(out / "evals" / f"{name}-{protocol}"),
              *extra])

    for name in MODELS:
        evaluate("3/6", "linear-conv", name, cls, "--fast")  # conv1..conv5
        evaluate("3/6", "knn", name, cls)
        evaluate("3/6", "knn-graph", name, cls)  # ratio edge intra-class, 10-NN graph
        evaluate("3/6", "nmi", name, cls)  # k-means on fc7 vs labels
    for name in ("random-sobel", "tiny-sobel"):
        evaluate("4/6", "voc07-cls", name, voc, "--set", f"iterations={size.voc_iters}")
    # low-shot fine-tunes from the checkpoint and from random init in the same run
    evaluate("4/6", "low-shot", "tiny-sobel", cls, "--set", f"shots={size.low_shot}")

    print(f"\n[{step.elapsed()}] 5/6 results next to the published tables")

    print_summary(store, runs / "tiny-sobel", runs / "tiny-rgb")
    step("6/6 HTML report", ["leaderboard", "report", "--store", store,
                             "--run", str(runs / "tiny-sobel"), "--run", str(runs / "tiny-rgb"),
                             "--table", "thesis-5.3", "--output", str(out / "report.html")])
    print(f"\ndemo finished in {step.elapsed()}: {out / 'report.html'}")
    sys.stdout.flush()
    return 0


def _link_model(run_dir: Path, dest: Path) -> None:
    """Copy the run's final hub folder under a short name (that name appears in the tables)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(run_dir / "final", dest)


def _export_random(models: Path, seed: int) -> None:
    """The random-init baselines as hub folders, so every model is named the same way."""

    for kind in ("sobel", "rgb"):
        model = load_model(f"random-alexnet_small-{kind}?seed={seed}")
        save_hub_dir(model, models / f"random-{kind}")
