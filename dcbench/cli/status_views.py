"""What `dcbench status` reads in each kind of run folder (files only: no torch, no model).

A `RunView` says what the run is, how far it got (`done` of `total` units), the seconds one
unit takes (from the times in its log), its last metrics and whether it finished. One reader
per kind: `train` (the `.dcbench-run.json` marker), `eval` (`run.json` with a protocol),
`reproduce` (`plan.json`), `demo` (`demo.json`).
"""

from __future__ import annotations

import dataclasses
import json
import statistics
from itertools import pairwise
from pathlib import Path
from typing import Any

import yaml

from dcbench.core.errors import UserError
from dcbench.core.runlog import read_log_records

#: metrics of a training epoch shown by `dcbench status` (log.jsonl key -> label)
TRAIN_METRICS = {"train_loss": "train loss", "clustering_loss": "clustering loss",
                 "nmi_prev": "NMI prev", "nmi_labels": "NMI labels",
                 "ratio_edge_intra_class": "ratio edge intra-class", "n_clusters": "clusters"}


@dataclasses.dataclass
class RunView:
    """One run folder, as `dcbench status` shows it."""

    kind: str  # train | eval | reproduce | demo
    about: list[tuple[str, str]]  # (label, value) lines: recipe / protocol, model, data
    done: int
    total: int | None
    unit: str  # epoch, iteration, run, step
    seconds_per_unit: float | None
    finished: bool
    failed: bool = False
    metrics: dict[str, Any] = dataclasses.field(default_factory=dict)
    last_update: float | None = None  # unix time of the last log record


def read_json(path: Path) -> Any:
    """Parsed JSON, or None (missing, unreadable, not JSON)."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError):
        return None


def read_yaml(path: Path) -> dict[str, Any]:
    """A YAML mapping, or {} (missing, unreadable, not a mapping)."""
    try:
        value = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return {}
    return value if isinstance(value, dict) else {}


def unit_seconds(times: list[float]) -> float | None:
    """Seconds per unit: the median gap between consecutive log times (a pause between an
    interruption and its resume is one outlier, not the typical unit)."""
    gaps = [b - a for a, b in pairwise(times) if b >= a]
    return statistics.median(gaps) if gaps else None


def train_view(root: Path) -> RunView:
    """A `dcbench train` run: epochs from log.jsonl, the total from config.yaml."""
    config = read_yaml(root / "config.yaml")
    records = read_log_records(root / "log.jsonl")
    total = int(config.get("epochs", 0)) or None
    epoch_s = [float(r["epoch_s"]) for r in records if isinstance(r.get("epoch_s"), int | float)]
    per = statistics.median(epoch_s[-5:]) if epoch_s else unit_seconds(
        [float(r["time"]) for r in records if isinstance(r.get("time"), int | float)])
    last = records[-1] if records else {}
    run_info = read_json(root / "run.json") or {}
    model = f"{config.get('arch', '?')}, {'Sobel' if config.get('sobel') else 'RGB'}, " \
            f"{config.get('clustering', '?')} k={config.get('k', '?')}"
    about = [("recipe", str(run_info.get("recipe") or "(see config.yaml)")), ("model", model)]
    if run_info.get("data"):
        about.append(("data", str(run_info["data"])))
    done = len({int(r["epoch"]) for r in records if isinstance(r.get("epoch"), int)})
    finished = (root / "final").is_dir() and total is not None and done >= total
    return RunView("train", about, done, total, "epoch", per, finished,
                   metrics={label: last[k] for k, label in TRAIN_METRICS.items() if k in last},
                   last_update=last.get("time"))


def eval_view(root: Path, run: dict[str, Any]) -> RunView:
    """A `dcbench eval` run: probe epochs (both phases) or fine-tune iterations from
    log.jsonl, finished when results.json is there."""
    config = read_yaml(root / "config.yaml")
    records = read_log_records(root / "log.jsonl")
    about = [("protocol", f"{run.get('protocol')} (dialect {config.get('dialect', '?')}, "
                          f"schedule {run.get('schedule', '?')})"),
             ("model", f"{run.get('name') or run.get('model')} ({run.get('model')})"),
             ("data", str(run.get("data", "?")))]
    metrics: dict[str, Any] = {}
    if "iterations" in config:  # the VOC fine-tunes
        steps = [r for r in records if isinstance(r.get("iteration"), int)]
        done, total, unit = (steps[-1]["iteration"] if steps else 0), int(config["iterations"]), \
            "iteration"
        times = [(r["iteration"], r["time"]) for r in steps if isinstance(r.get("time"), float)]
        gaps = [(t2 - t1) / (i2 - i1) for (i1, t1), (i2, t2) in pairwise(times) if i2 > i1]
        per = statistics.median(gaps) if gaps else None
        if steps:
            metrics = {"loss": steps[-1].get("loss"), "lr": steps[-1].get("lr")}
    else:
        epochs = [r for r in records if "phase" in r and isinstance(r.get("epoch"), int)]
        phases = 2 if "epochs" in config else 0  # held-out selection + final training
        done, unit = len({(r["phase"], r["epoch"]) for r in epochs}), "epoch"
        total = phases * int(config["epochs"]) if phases else None
        per = unit_seconds([float(r["time"]) for r in epochs if isinstance(r.get("time"), float)])
        if epochs:
            best = max(epochs[-1].get("eval", {}).items(), default=None,
                       key=lambda kv: kv[1].get("top1", 0))
            metrics = {"phase": epochs[-1]["phase"], "loss": epochs[-1].get("loss")}
            if best is not None:
                metrics[f"best head top-1 ({best[0]})"] = best[1].get("top1")
    finished = (root / "results.json").is_file()
    if finished:
        results = read_json(root / "results.json") or []
        metrics = {f"{r.get('split')} {r.get('layer')} {r.get('metric')}": r.get("value")
                   for r in results if isinstance(r, dict)}
    last = records[-1].get("time") if records else None
    return RunView("eval", about, done, total, unit, per, finished,
                   failed=run.get("status") == "failed", metrics=metrics, last_update=last)


def reproduce_view(root: Path, plan: dict[str, Any]) -> RunView:
    """A `dcbench reproduce` plan folder: runs finished (results.json) of the planned runs."""
    runs = plan.get("runs") if isinstance(plan.get("runs"), dict) else {}
    finished = [name for name in runs if (root / name / "results.json").is_file()]
    started = [name for name in runs if (root / name / "run.json").is_file()
               and name not in finished]
    about = [("table", str(plan.get("table"))), ("model", str(plan.get("model"))),
             ("schedule", str(plan.get("schedule")))]
    metrics = {name: ("finished" if name in finished else "started" if name in started
                      else "waiting") for name in runs}
    return RunView("reproduce", about, len(finished), len(runs), "run", None,
                   finished=(root / "table.md").is_file() and len(finished) == len(runs),
                   metrics=metrics)


def demo_view(root: Path, state: dict[str, Any]) -> RunView:
    """A `dcbench demo` folder: the steps it finished (demo.json)."""
    done = state.get("done") if isinstance(state.get("done"), list | dict) else []
    seconds = state.get("seconds") if isinstance(state.get("seconds"), dict) else {}
    times = [float(v) for v in seconds.values() if isinstance(v, int | float)]
    about = [("size", "quick" if state.get("quick") else "full"),
             ("store", str(state.get("store")))]
    return RunView("demo", about, len(done), None, "step",
                   statistics.median(times) if times else None,
                   finished=(root / "report.html").is_file())


def read_view(root: Path) -> RunView:
    """The view of the run in `root`; a UserError when it holds no dcbench run."""
    marker = read_json(root / ".dcbench-run.json")
    if isinstance(marker, dict) and marker.get("dcbench") == "train-run":
        return train_view(root)
    run = read_json(root / "run.json")
    if isinstance(run, dict) and "protocol" in run and "run_id" in run:
        return eval_view(root, run)
    plan = read_json(root / "plan.json")
    if isinstance(plan, dict) and "table" in plan and "runs" in plan:
        return reproduce_view(root, plan)
    demo = read_json(root / "demo.json")
    if isinstance(demo, dict) and {"quick", "seed", "store"} <= set(demo):
        return demo_view(root, demo)
    raise UserError(f"{root} holds no dcbench run (expected the folder of dcbench train, "
                    "eval, reproduce or demo: .dcbench-run.json, run.json, plan.json or "
                    "demo.json)")
