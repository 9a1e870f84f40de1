"""One pass per epoch for every probe head (issue 28) vs the two-pass selection it replaces.

1. Time: the same faithful linear-conv run (augmented crops through the frozen network each
   epoch, 10-crop held-out and val evaluation; built-in synthetic shapes, random-init
   AlexNet-Sobel-small, conv1-conv5, smoke schedule) with `selection_pass=one` (dcbench's
   default) and `selection_pass=two` (the baseline: what dcbench did before, and what a
   select-then-refit script does), in the same process. Also the trunk forwards of each
   (images through the network, from `protocols.plan`, which the tests check against counted
   featurizer calls).
2. Numbers: how far apart the two forms' val top-1 are, per layer over seeds, with `--fast`
   on the demo's shapes data (seed changes the held-out split, the batch order and the head
   init): mean and max |one - two|, and the same for `top1_best_epoch`.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.common import Row


def _run(data: Path, overrides: list[str]) -> tuple[float, dict[tuple[str, str], float], Any]:
    """Wall seconds, {(layer, metric): val value} and the config of one linear-conv run."""
    from dcbench.models import create_backbone
    from dcbench.protocols import get_protocol

    model = create_backbone({"arch": "alexnet_small", "sobel": True}, seed=0)
    proto = get_protocol("linear-conv")
    config = proto.resolve_config(schedule="smoke", overrides=overrides)
    start, cpu = time.perf_counter(), time.process_time()
    rows = proto.run(model, data, config, run_id="bench", device="cpu", progress=False,
                     work_dir=None)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    values = {(r.layer, r.metric): r.value for r in rows if r.split == "val"}
    values[("", "cpu_seconds")] = cpu
    return seconds, values, config


def _image_passes(config: Any, data: Path) -> float:
    from dcbench.protocols.plan import dataset_sizes, plan_eval

    sizes = dataset_sizes("linear-conv", data, config)
    return plan_eval("linear-conv", config, sizes).image_passes


def time_one_vs_two(data: Path, n_train: int, epochs: int) -> list[Row]:
    """Wall time and trunk forwards of a faithful run, one-pass vs two-pass."""
    base = [f"epochs={epochs}", "fast=false"]
    t_two, two, cfg_two = _run(data, [*base, "selection_pass=two"])
    t_one, one, cfg_one = _run(data, [*base, "selection_pass=one"])
    cpu_one, cpu_two = one[("", "cpu_seconds")], two[("", "cpu_seconds")]
    p_one, p_two = _image_passes(cfg_one, data), _image_passes(cfg_two, data)
    what = f"linear-conv conv1-5 faithful, {n_train} train 64-px images, {epochs} epochs"
    return [
        Row(benchmark="probe_passes", what=f"{what}: wall time", dcbench=t_one, unit="s",
            baseline_name="two passes per epoch (selection_pass=two)", baseline=t_two,
            notes=f"process CPU time {cpu_one:.0f} s vs {cpu_two:.0f} s "
                  f"({cpu_two / max(cpu_one, 1e-9):.2f}x); one pass trains selection "
                  "(held-out rows masked) and final heads"),
        Row(benchmark="probe_passes", what=f"{what}: trunk forwards", dcbench=p_one,
            unit="image passes", baseline_name="two passes per epoch (selection_pass=two)",
            baseline=p_two,
            notes="train images + 10-crop held-out and val evaluations, per the eval plan"),
    ]


def numbers_over_seeds(data: Path, seeds: tuple[int, ...]) -> list[Row]:
    """|val top-1 one-pass - two-pass| per layer over seeds (fast mode, smoke schedule)."""
    deltas: dict[str, list[float]] = {"top1": [], "top1_best_epoch": []}
    for seed in seeds:
        _, one, _ = _run(data, ["fast=true", f"seed={seed}", "selection_pass=one"])
        _, two, _ = _run(data, ["fast=true", f"seed={seed}", "selection_pass=two"])
        for (layer, metric), value in one.items():
            if metric in deltas:
                deltas[metric].append(abs(value - two[(layer, metric)]))
    rows = []
    for metric, values in deltas.items():
        rows.append(Row(
            benchmark="probe_passes",
            what=f"|val {metric} one-pass - two-pass|, conv1-5 x {len(seeds)} seeds, --fast",
            dcbench=statistics.mean(values), unit="points",
            notes=f"max {max(values):.2f} over {len(values)} (layer, seed) cells; the "
                  "numbers are each protocol's own, not one number twice"))
    return rows


def run(quick: bool) -> list[Row]:
    """Both measurements (quick: 8 classes x 6 images, 1 epoch, 1 seed; full: the demo's
    shapes data, 8 x 250 train / 100 val, and 8 x 64 train for the faithful timing)."""
    from dcbench.data.synthetic import make_classification_set

    saved_home = os.environ.get("DCBENCH_HOME")
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["DCBENCH_HOME"] = str(Path(tmp) / "home")
        try:
            per_class, epochs = (6, 1) if quick else (64, 10)
            timed = make_classification_set(Path(tmp) / "timed", n_classes=8,
                                            train_per_class=per_class, val_per_class=2 if quick
                                            else 16, seed=0)
            rows = time_one_vs_two(timed, 8 * per_class, epochs)
            demo = timed if quick else make_classification_set(
                Path(tmp) / "demo", n_classes=8, train_per_class=250, val_per_class=100, seed=0)
            rows += numbers_over_seeds(demo, (0,) if quick else (0, 1, 2))
        finally:
            if saved_home is None:
                os.environ.pop("DCBENCH_HOME", None)
            else:
                os.environ["DCBENCH_HOME"] = saved_home
    return rows
