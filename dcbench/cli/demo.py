"""`dcbench demo`: the whole suite end to end on built-in data, offline, on a laptop CPU.

Generates the built-in datasets (synthetic shapes, a VOC-format set, and scikit-learn's
1,797 real handwritten digits), trains DeepCluster three times (the `tiny` recipe on the
shapes with Sobel and with RGB; the `digits` recipe, chosen on a held-out part of the
digits' training split by `benchmarks/digits_k_study.py`, on the digits), evaluates
random-init and trained networks (linear-conv, knn, knn-graph, nmi; voc07-cls and low-shot
on shapes), stores every row in the results store (the default one unless --store), prints
the comparison and the thesis's claims as they came out, and writes an HTML report of every
result. Every step is the real CLI command (printed as it runs), so each can be re-run by
hand; `--resume` skips the steps an interrupted demo finished. One bar (and each step's
header line) shows how much of the whole demo is done and its ETA (`cli/demo_steps.py`).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from dcbench.cli.demo_costs import DemoCosts
from dcbench.cli.demo_steps import PlannedStep, Steps
from dcbench.cli.demo_summary import print_summary
from dcbench.core.errors import UserError
from dcbench.core.files import check_output_dir, write_json
from dcbench.core.home import results_store_path
from dcbench.core.liveness import record_process
from dcbench.core.state_files import read_json_state
from dcbench.models.checkpoints import save_hub_dir
from dcbench.models.factory import load_model
from dcbench.training.config import resolve_config


@dataclass(frozen=True)
class DemoSize:
    """How big each step is; `full` is the README run, `quick` the test run."""

    per_class: int
    val_per_class: int
    voc_images: tuple[int, int, int]
    epochs: int
    k: int
    digit_epochs: int | None  # None: the digits recipe's
    digit_k: int | None  # None: the digits recipe's
    digits_per_class: int | None  # None: all 1,797 digits
    linear: tuple[str, ...]  # --set overrides of the linear-conv smoke schedule
    low_shot: tuple[str, ...]
    voc_iters: int

    def digit_overrides(self) -> list[str]:
        """`dcbench train` arguments that shorten the digits recipe (none for the full demo)."""
        return ([*(["--epochs", str(self.digit_epochs)] if self.digit_epochs else []),
                 *(["--set", f"k={self.digit_k}"] if self.digit_k else [])])

    def digit_epochs_used(self) -> int:
        """Epochs the digits training runs (for the ETA)."""
        return self.digit_epochs or resolve_config(DIGITS_RECIPE).epochs


FULL = DemoSize(per_class=250, val_per_class=100, voc_images=(80, 80, 120), epochs=20, k=80,
                digit_epochs=None, digit_k=None, digits_per_class=None, linear=(),
                low_shot=("shots=[4,16]",), voc_iters=150)
QUICK = DemoSize(per_class=80, val_per_class=30, voc_images=(24, 24, 32), epochs=6, k=40,
                 digit_epochs=None, digit_k=None, digits_per_class=None, linear=(),
                 low_shot=("shots=[4]", "draws=3", "iterations=30", "eval_every=30"),
                 voc_iters=20)

DIGITS_RECIPE = "digits"  # chosen on a held-out part of the digits' training split
SHAPE_MODELS = ("random-sobel", "tiny-sobel", "random-rgb", "tiny-rgb")
DIGIT_MODELS = ("random-sobel", "digits-sobel")
STATE_FILE = "demo.json"
# everything the demo writes into --out (`--force` removes these and nothing else)
DEMO_ENTRIES = ("data", "runs", "models", "evals", "report.html", STATE_FILE)


def _read_state(path: Path) -> dict:
    """The demo state file, checked: a JSON object whose `done` is a list of step strings."""
    torn = UserError(f"{path} is not a demo state file (torn or edited); start a new demo "
                     "with another --out")
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        raise torn from None
    if not isinstance(state, dict):
        raise torn
    done = state.get("done", [])
    if not isinstance(done, list) or not all(isinstance(step, str) for step in done):
        raise torn
    return state


def _prepare(args: argparse.Namespace, store: str) -> dict:
    """Check --out (new, --force, or --resume) and return the demo state to continue."""
    out: Path = args.out
    check_output_dir(out)
    state_path = out / STATE_FILE
    settings = {"quick": args.quick, "seed": args.seed, "store": store}
    if args.resume:
        if not state_path.is_file():
            raise UserError(f"nothing to resume in {out} (no {STATE_FILE}); run without "
                            "--resume")
        state = _read_state(state_path)
        saved = {k: state.get(k) for k in settings}
        if saved != settings:
            raise UserError(f"{out} holds a demo with {saved}; resume with the same "
                            "--quick/--seed/--store")
        return state
    if out.exists() and any(out.iterdir()):
        if not args.force:
            raise UserError(f"{out} exists and is not empty; pass --force to replace it "
                            "or --resume to continue it")
        if not _is_demo_state(state_path):
            raise UserError(f"{out} does not look like a demo folder (no {STATE_FILE} written "
                            "by dcbench demo); refusing to delete anything in it")
        for name in DEMO_ENTRIES:  # only the demo's own files: anything else in --out stays
            entry = out / name
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            elif entry.exists() or entry.is_symlink():
                entry.unlink()
    out.mkdir(parents=True, exist_ok=True)
    write_json(state_path, settings)
    return dict(settings)


def _is_demo_state(path: Path) -> bool:
    """True when `path` is a demo.json that `dcbench demo` wrote (its settings keys)."""
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError):
        return False
    return isinstance(state, dict) and {"quick", "seed", "store"} <= set(state)


def run(args: argparse.Namespace) -> int:
    """Data -> train (shapes Sobel/RGB, digits) -> eval x models -> store -> claims -> report."""
    size = QUICK if args.quick else FULL
    out: Path = args.out.expanduser().resolve()
    args.out = out
    store = str((args.store or results_store_path()).expanduser().resolve())
    state = _prepare(args, store)
    record_process(out, "demo", list(getattr(args, "_argv", None) or sys.argv[1:]))
    step = Steps(out / STATE_FILE, state)
    print(f"dcbench demo: results go to {store}; files to {out}", flush=True)
    plan(step, size, out, store, args.seed)
    step.run_all()
    print(f"\ndemo finished in {step.elapsed()}: {out / 'report.html'}\n"
          f"the rows are in {store}: `dcbench leaderboard compare random-sobel tiny-sobel` "
          "shows them again")
    sys.stdout.flush()
    return 0


def plan(step: Steps, size: DemoSize, out: Path, store: str, seed_value: int) -> None:
    """Every step of the demo, in order, with its expected cost (see `demo_costs`)."""
    data, runs, models, evals = out / "data", out / "runs", out / "models", out / "evals"
    cls, voc, digits = data / "shapes" / "cls", data / "shapes" / "voc" / "VOCdevkit", \
        data / "digits"
    seed = str(seed_value)
    cost = DemoCosts(size)

    def add(title: str, argv: list[str], units: float, kind: str, **extra: object) -> None:
        step.add(PlannedStep(title, argv, units, kind, **extra))  # type: ignore[arg-type]

    add("1/7 built-in datasets (shapes with nuisance colours; a VOC-format set)",
        ["data", "synth", "--out", str(data / "shapes"), "--kind", "all", "--seed", seed,
         "--per-class", str(size.per_class), "--val-per-class", str(size.val_per_class),
         "--voc-images", *map(str, size.voc_images)], cost.synth(), "data",
        output=data / "shapes")
    add("2/7 real data: scikit-learn's handwritten digits (all 1,797), 64 px",
        ["data", "digits", "--out", str(digits), "--seed", seed,
         *(["--per-class", str(size.digits_per_class)] if size.digits_per_class else [])],
        cost.digits_data(), "data", output=digits)
    trainings = (("tiny-sobel", cls, "tiny", ["--epochs", str(size.epochs), "--set",
                                              f"k={size.k}", "--set", "sobel=true"],
                  cost.train(size.epochs, cost.shapes_train)),
                 ("tiny-rgb", cls, "tiny", ["--epochs", str(size.epochs), "--set",
                                            f"k={size.k}", "--set", "sobel=false"],
                  cost.train(size.epochs, cost.shapes_train)),
                 ("digits-sobel", digits, DIGITS_RECIPE, size.digit_overrides(),
                  cost.train(size.digit_epochs_used(), cost.digits_train)))
    for name, data_dir, recipe, settings, units in trainings:
        add(f"3/7 train DeepCluster, recipe {recipe}: {name}",
            ["train", "--recipe", recipe, "--data", str(data_dir / "train"),
             "--out", str(runs / name), *settings], units, "train", output=runs / name,
            before=lambda: _ensure_random(models, seed_value),
            after=lambda n=name: _link_model(runs / n, models / n))

    def evaluate(title: str, protocol: str, name: str, data_dir: Path, *extra: str) -> None:
        run_dir = evals / f"{data_dir.name}-{name}-{protocol}"
        add(f"{title} {name} on {data_dir.name}: {protocol}",
            ["eval", "--protocol", protocol, "--model", str(models / name),
             "--data", str(data_dir), "--seed", seed, "--store", store,
             "--schedule", "smoke", "--out", str(run_dir), *extra],
            cost.eval(protocol, data_dir.name), f"eval:{protocol}", output=run_dir)

    linear = ["--fast", *[arg for item in size.linear for arg in ("--set", item)]]
    for name in SHAPE_MODELS:
        # Table 5.3 (linear-conv conv1..conv5): the plan comes from `dcbench reproduce`
        table_dir = evals / f"{cls.name}-{name}-thesis-5.3"
        add(f"4/7 Table 5.3 {name} on {cls.name}: dcbench reproduce (linear-conv conv1-5)",
            ["reproduce", "thesis-5.3", "--model", str(models / name), "--data",
             f"imagenet={cls}", "--schedule", "smoke", "--seed", seed, "--store", store,
             "--out", str(table_dir), *linear], cost.eval("linear-conv", cls.name),
            "eval:linear-conv", output=table_dir)
        evaluate("4/7", "knn", name, cls)
        evaluate("4/7", "knn-graph", name, cls)  # ratio edge intra-class, 10-NN graph
        evaluate("4/7", "nmi", name, cls)  # k-means on fc7 vs labels
    for name in DIGIT_MODELS:
        evaluate("5/7", "linear-conv", name, digits, *linear)
        evaluate("5/7", "knn", name, digits)
        evaluate("5/7", "nmi", name, digits)
    for name in ("random-sobel", "tiny-sobel"):
        evaluate("6/7", "voc07-cls", name, voc, "--set", f"iterations={size.voc_iters}")
    # low-shot fine-tunes from the checkpoint and from random init in the same run
    evaluate("6/7", "low-shot", "tiny-sobel", cls,
             *[arg for item in size.low_shot for arg in ("--set", item)])

    def summary() -> None:
        print(f"\n[{step.elapsed()}] 7/7 results (this demo's rows of {store})")
        claims = print_summary(store, runs / "tiny-sobel", runs / "tiny-rgb",
                               run_ids=_eval_run_ids(evals))
        write_json(out / "claims.json", [{"text": c.text, "holds": bool(c.holds),
                                          "verdict": c.verdict, "evidence": c.evidence}
                                         for c in claims])

    def report() -> list[str]:
        argv = ["leaderboard", "report", "--store", store, "--output", str(out / "report.html"),
                "--title", "dcbench demo report", "--table", "thesis-5.3",
                "--claims", str(out / "claims.json")]
        for name in ("tiny-sobel", "tiny-rgb", "digits-sobel"):
            argv += ["--run", str(runs / name)]
        for run_id in _eval_run_ids(evals):
            argv += ["--eval-run", run_id]
        return argv

    step.add(PlannedStep("7/7 HTML report of every result above", report, cost.report(),
                         "report", before=summary, always=True))


def _eval_run_ids(evals: Path) -> list[str]:
    """The run ids of this demo's evaluations (their run.json files, also those of the
    `dcbench reproduce` plan folders), in order."""
    ids = []
    for run_file in sorted([*evals.glob("*/run.json"), *evals.glob("*/*/run.json")]):
        ids.append(read_json_state(run_file, "run file", keys={"run_id": str},
                                   hint="start a new demo with another --out")["run_id"])
    return ids


def _link_model(run_dir: Path, dest: Path) -> None:
    """Copy the run's final hub folder under a short name (that name appears in the tables)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(run_dir / "final", dest)


def _ensure_random(models: Path, seed: int) -> None:
    """Export the random-init baselines unless both are there (a resumed demo)."""
    if not (models / "random-sobel").is_dir() or not (models / "random-rgb").is_dir():
        _export_random(models, seed)


def _export_random(models: Path, seed: int) -> None:
    """The random-init baselines as hub folders, so every model is named the same way."""
    for kind in ("sobel", "rgb"):
        model = load_model(f"random-alexnet_small-{kind}?seed={seed}")
        if (models / f"random-{kind}").exists():
            shutil.rmtree(models / f"random-{kind}")
        save_hub_dir(model, models / f"random-{kind}")
