"""What an evaluation will do and about how long it will take, before it starts.

`plan_eval(protocol, config, sizes)` is pure: from a resolved protocol config and the
dataset's split sizes it lists the phases of the run, each as passes x images x network
passes per image (crops, and 3 for a forward + backward through the network being trained).
`EvalPlan.seconds(rate)` turns that into time with a rate measured on real batches
(`engine.throughput.seconds_per_image`), and `EvalPlan.describe` prints it. `dataset_sizes`
counts the images a protocol reads (it runs the protocol's own dataset checks, so a bad tree
is refused here, before anything is written). `dcbench eval` prints the plan before it
starts; other commands (a dry run of a reproduction) can reuse the same functions.

What the estimate leaves out, and says so: loader workers overlapping decoding (the rate is
measured in one process, so it errs long), the probe heads and SVMs on cached features
(small against the network passes), and a feature cache filled by an earlier run (then the
feature passes are free).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from dcbench.data.folders import find_dataset
from dcbench.data.labelled_splits import open_labelled_splits
from dcbench.data.voc import VOCClassification, VOCSegmentation, find_voc

# Network passes of one image trained through the network (forward + backward ~ 3 forwards).
TRAIN_COST = 3.0
CLASSIFICATION = ("linear-conv", "mlp", "low-shot", "knn")
VOC_FINETUNES = ("voc07-cls", "voc07-det", "voc12-seg")


@dataclasses.dataclass(frozen=True)
class Phase:
    """`passes` x `images` images, each costing `cost` network passes at the model's size."""

    name: str
    passes: int
    images: int
    cost: float = 1.0
    detail: str = ""

    @property
    def image_passes(self) -> float:
        """Network passes at the model's input size (the unit the measured rate is in)."""
        return self.passes * self.images * self.cost


@dataclasses.dataclass(frozen=True)
class EvalPlan:
    """The phases of one protocol run under one config."""

    protocol: str
    phases: tuple[Phase, ...]
    notes: tuple[str, ...] = ()
    processes: int = 1  # torchrun processes, each with its device, sharing every pass

    @property
    def image_passes(self) -> float:
        """All phases' network passes."""
        return sum(p.image_passes for p in self.phases)

    def seconds(self, seconds_per_image: float) -> float:
        """Estimated wall time: network passes x the measured seconds per image (of one
        process on one device), divided among the `processes` (every pass is sharded)."""
        return self.image_passes * seconds_per_image / max(self.processes, 1)

    def describe(self, seconds_per_image: float | None = None) -> list[str]:
        """One line per phase, then the total (with time when a rate is given)."""
        lines = []
        for phase in self.phases:
            cost = f" x {phase.cost:g}" if phase.cost != 1 else ""
            detail = f" ({phase.detail})" if phase.detail else ""
            lines.append(f"  {phase.name}: {phase.passes:,} x {phase.images:,} images{cost}"
                         f"{detail} = {_count(phase.image_passes)} image passes")
        total = f"  total {_count(self.image_passes)} image passes"
        if seconds_per_image is not None:
            shared = f" / {self.processes} processes" if self.processes > 1 else ""
            total += (f" x {seconds_per_image * 1000:.2f} ms{shared} = about "
                      f"{format_duration(self.seconds(seconds_per_image))}")
        return lines + [total] + [f"  ({note})" for note in self.notes]


def format_duration(seconds: float) -> str:
    """`45 s`, `12 min`, `3 h 05 min`, `2.5 days`."""
    if seconds < 90:
        return f"{max(1, round(seconds))} s"
    if seconds < 3600:
        return f"{round(seconds / 60)} min"
    if seconds < 48 * 3600:
        hours, minutes = divmod(round(seconds / 60), 60)
        return f"{hours} h {minutes:02d} min"
    return f"{seconds / 86400:.1f} days"


def _count(n: float) -> str:
    return f"{n / 1e6:.1f}M" if n >= 1e6 else f"{round(n):,}"


def _held_out(n_train: int, fraction: float) -> int:
    """About how many training images a stratified hold-out of `fraction` sets aside."""
    return max(1, round(n_train * fraction)) if n_train > 0 else 0


def _frozen_probe(cfg: Any, sizes: Mapping[str, int]) -> list[Phase]:
    """linear-conv / mlp: one pass per epoch training every head, evaluated on held-out and
    val (`selection_pass: one`), or held-out selection then the final fit (`two`)."""
    n_train, n_val = sizes["train"], sizes["val"]
    held = _held_out(n_train, cfg.heldout_fraction)
    if cfg.fast:
        return [Phase("features (cached center crops)", 1, n_train + n_val,
                      detail="the heads then train on the cache")]
    crops = 10 if cfg.ten_crop else 1
    epochs = int(cfg.epochs)
    if cfg.selection_pass == "one":
        return [Phase("one pass (selection + final heads)", epochs,
                      n_train + (held + n_val) * crops,
                      detail=f"{n_train:,} train + ({held:,} held-out + {n_val:,} val) x "
                             f"{crops} crops per epoch")]
    return [
        Phase("select (held-out)", epochs, (n_train - held) + held * crops,
              detail=f"{n_train - held:,} train + {held:,} held-out x {crops} crops per epoch"),
        Phase("final (val)", epochs, n_train + n_val * crops,
              detail=f"{n_train:,} train + {n_val:,} val x {crops} crops per epoch"),
    ]


def _low_shot(cfg: Any, sizes: Mapping[str, int]) -> list[Phase]:
    """Per shot count and init: each lr candidate on draw 0, then every draw."""
    phases = []
    crops = 10 if cfg.ten_crop else 1
    held = _held_out(sizes["train"], cfg.heldout_fraction)
    classes = max(1, int(sizes.get("classes", 1)))
    runs = len(cfg.inits) * (len(cfg.lrs) + int(cfg.draws))
    for shots in cfg.shots:
        batch = min(int(cfg.batch_size), shots * classes)
        phases.append(Phase(f"{shots}-shot fine-tunes", runs * int(cfg.iterations), batch,
                            TRAIN_COST, detail=f"{runs} runs x {cfg.iterations} iterations"))
    evals = len(cfg.shots) * len(cfg.inits) * (
        len(cfg.lrs) * held * max(1, int(cfg.iterations) // int(cfg.eval_every))
        + int(cfg.draws) * sizes["val"])
    phases.append(Phase("evaluations", 1, evals, crops, detail=f"{crops} crops"))
    return phases


def _voc_finetune(name: str, cfg: Any, sizes: Mapping[str, int]) -> list[Phase]:
    """Fine-tuning iterations (x pixel area against the model's input size) + the test pass."""
    # voc07-cls: the mode's published count when `iterations` is unset (fc6-8's depends on
    # the pipeline: the config resolves it)
    iterations = (cfg.resolved_iterations() if hasattr(cfg, "resolved_iterations")
                  else cfg.iterations)
    area = 1.0
    if name == "voc07-det":  # images resized to the train scales, not the model's crop
        mean_scale = sum(cfg.train_scales) / len(cfg.train_scales)
        area = (mean_scale / 224) ** 2
    cost = TRAIN_COST if cfg.train_layers == "all" else 1.0
    test = sizes.get("test", sizes.get("val", 0))
    return [Phase("fine-tune", int(iterations), int(cfg.batch_size), round(cost * area, 2),
                  detail=f"{cfg.train_layers}"),
            Phase("test", 1, test, round(area, 2) * int(getattr(cfg, "eval_passes", 1) or 1))]


def plan_eval(protocol: str, config: Any, sizes: Mapping[str, int], *,
              input_size: int = 224, processes: int = 1) -> EvalPlan:
    """Pure: the phases of `protocol` under a resolved `config` for split `sizes` (from
    `dataset_sizes`); `input_size` is the model's (pixel sizes of VOC det are for 224);
    `processes`: the torchrun processes sharing the work (the time is divided by it)."""
    if protocol in ("linear-conv", "mlp"):
        phases = _frozen_probe(config, sizes)
    elif protocol == "low-shot":
        phases = _low_shot(config, sizes)
    elif protocol in VOC_FINETUNES:
        phases = _voc_finetune(protocol, config, sizes)
    elif protocol == "retrieval":
        area = (int(config.image_size) / input_size) ** 2
        phases = [Phase("features (R-MAC)", 1, image_count(sizes), round(area, 2),
                        detail=f"{config.image_size}-px images")]
    else:  # knn, knn-graph, nmi, the SVMs: one feature pass per split read, then CPU work
        splits = [k for k in sizes if k != "classes"]
        phases = [Phase("features", 1, image_count(sizes), detail=" + ".join(splits))]
    return EvalPlan(protocol, tuple(p for p in phases if p.image_passes > 0),
                    processes=max(int(processes), 1))


def _voc_ids(root: Path, year: str, folder: str, split: str) -> int:
    """Image ids listed in `VOC<year>/ImageSets/<folder>/<split>.txt`."""
    path = find_voc(root, year) / "ImageSets" / folder / f"{split}.txt"
    if not path.is_file():
        return 0
    return len([ln for ln in path.read_text(encoding="utf-8-sig").splitlines() if ln.strip()])


def dataset_sizes(protocol: str, data_dir: str | os.PathLike, config: Any) -> dict[str, int]:
    """Images per split `protocol` reads under `config` (its own dataset checks run first).

    Classification protocols also return `classes`; it is not counted as images.
    """
    root = Path(data_dir).expanduser()
    if protocol in CLASSIFICATION:
        train, val, classes = open_labelled_splits(root, config.eval_split)
        return {"train": len(train), "val": len(val), "classes": classes}
    if protocol in ("knn-graph", "nmi"):
        return {config.split: len(find_dataset(root, config.split))}
    if protocol == "voc12-seg":  # the datasets the run opens, with their checks
        train = VOCSegmentation(root, 2012, config.split, list_file=config.list_file,
                                mask_dir=config.mask_dir)
        val = VOCSegmentation(root, 2012, config.eval_split)
        return {"train": len(train), "val": len(val)}
    if protocol.startswith("voc07"):
        train_split = getattr(config, "train_split", getattr(config, "split", "trainval"))
        if protocol != "voc07-det":  # the class lists the run reads (refused when missing)
            test_split = getattr(config, "test_split", "val" if protocol == "voc07-cls"
                                 and train_split == "train" else "test")
            return {"train": len(VOCClassification(root, 2007, train_split)),
                    "test": len(VOCClassification(root, 2007, test_split))}
        return {"train": _voc_ids(root, "2007", "Main", train_split),
                "test": _voc_ids(root, "2007", "Main", getattr(config, "test_split", "test"))}
    return {"images": sum(1 for _ in _image_files(root))}


def _image_files(root: Path) -> Any:
    for folder, dirs, files in os.walk(root):
        dirs.sort()
        for name in sorted(files):
            if name.lower().endswith((".jpg", ".jpeg", ".png", ".bmp", ".webp")):
                yield Path(folder) / name


def sample_images(data_dir: str | os.PathLike, count: int) -> list[Path]:
    """The first `count` image files under `data_dir` in sorted walk order (for timing)."""
    out: list[Path] = []
    for path in _image_files(Path(data_dir).expanduser()):
        out.append(path)
        if len(out) >= count:
            break
    return out


def image_count(sizes: Mapping[str, int]) -> int:
    """Images in `sizes` (the `classes` entry excluded)."""
    return sum(v for k, v in sizes.items() if k != "classes")


def quick_schedules(schedules: Sequence[str], fields: Sequence[str], current: str,
                    fast: bool) -> list[tuple[str, dict[str, Any]]]:
    """The quicker forms to suggest: (flags, config layer) for `--schedule smoke` and, where
    the protocol has `fast`, `--fast` (alone and with smoke)."""
    out: list[tuple[str, dict[str, Any]]] = []
    if "fast" in fields and not fast:
        out.append(("--fast", {"fast": True}))
    if "smoke" in schedules and current != "smoke":
        out.append(("--schedule smoke", {}))
        if "fast" in fields and not fast:
            out.append(("--schedule smoke --fast", {"fast": True}))
    return out
