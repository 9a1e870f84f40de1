"""Estimated time of each run of a reproduce plan, from this machine's measured rates.

How the estimate is made (printed by `dcbench reproduce --dry-run`):
1. *rates*: the model is timed on this device on random batches at its input size: images
   per second through the network without gradients (`forward`) and with a backward pass
   and SGD step (`train`), best of a few repeats after a warm-up;
2. *work*: from each run's resolved config and the image counts of the given data roots,
   the number of images the run pushes through the network, forward only or with a
   backward pass, and how much larger than the input size they are (VOC detection scales,
   retrieval's 1024-px images: cost grows with the pixel count);
3. ETA = forward images / forward rate + train images / train rate, divided by the number
   of processes when launched by `torchrun --nproc_per_node N` (each has its device and
   every pass is sharded; the rate is one device's).

Not counted: decoding and loading images, the SVM fits, linear heads on cached features.
The estimate is a lower bound when image decoding, not the network, is the bottleneck.

SEAM: `estimate_seconds(protocol, config, counts, rates, input_size)` is the one place the
estimate is computed; when `dcbench eval` gets its own plan/ETA function, this module should
call it instead (the coordinator unifies them).
"""

from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path
from typing import Any

import torch

from dcbench.core.errors import UserError
from dcbench.data.folders import list_file_candidates
from dcbench.data.voc import find_voc
from dcbench.models.backbone import Backbone
from dcbench.protocols.plan import plan_eval
from dcbench.protocols.retrieval import find_folder

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".ppm", ".tif", ".tiff")
HOW = ("ETA = images each run pushes through the network (from its resolved config and the "
       "image counts of your data) / this machine's measured rates; decoding, SVM fits and "
       "heads on cached features are not counted")


@dataclasses.dataclass(frozen=True)
class Rates:
    """Measured images per second of one model on one device."""

    device: str
    input_size: int
    forward: float  # images/s, no gradients
    train: float  # images/s, forward + backward + SGD step

    def describe(self) -> str:
        """One line saying what was measured."""
        return (f"measured on {self.device}: {self.forward:,.0f} img/s forward, "
                f"{self.train:,.0f} img/s forward+backward, {self.input_size}-px random "
                "batches of 8 (best of 3)")


def measure_rates(model: Backbone, device: str = "cpu", batch: int = 8,
                  repeats: int = 3) -> Rates:
    """Time the model's forward and training step on random input (the model is copied
    nowhere: it is put in train mode for the step and restored)."""
    size = int(model.config.get("input_size", 224))
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(batch, 3, size, size, generator=generator).to(device)
    model = model.to(device)
    tap = model.embedding_tap
    was_training = model.training

    def forward() -> None:
        with torch.no_grad():
            model.forward_features(x, [tap])

    def train() -> None:
        model.zero_grad(set_to_none=True)
        out = model.forward_features(x, [tap])[tap]
        out.float().square().mean().backward()

    try:
        model.eval()
        fwd = batch / _best_time(forward, repeats, device)
        model.train()
        step = batch / _best_time(train, repeats, device)
    finally:
        model.zero_grad(set_to_none=True)
        model.train(was_training)
    return Rates(device, size, fwd, step)


def _best_time(fn: Any, repeats: int, device: str) -> float:
    fn()  # warm-up
    best = float("inf")
    for _ in range(repeats):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return max(best, 1e-9)


def count_images(data: str, root: Path) -> dict[str, int]:
    """Image counts of a data root: {split or set: n} (files, list lines or VOC id lists)."""
    if data in ("imagenet", "places205"):
        return {split: _split_count(root, split) for split in ("train", "val")}
    if data == "voc":
        counts = {}
        for year, folder, splits in (("2007", "Main", ("trainval", "test")),
                                     ("2012", "Segmentation", ("train", "val"))):
            try:
                base = find_voc(root, year) / "ImageSets" / folder
            except UserError:  # a year the plan may not need
                continue
            for split in splits:
                counts[f"voc{year[2:]}-{split}"] = _lines(base / f"{split}.txt")
        return counts
    if data == "retrieval":
        return {name: _files(find_folder(root, name)) for name in ("oxford5k", "paris6k")}
    raise ValueError(f"unknown data {data!r}")


def _split_count(root: Path, split: str) -> int:
    if (root / split).is_dir():
        return _files(root / split)
    for candidate in list_file_candidates(root, split):
        if candidate.is_file():
            return _lines(candidate)
    return 0


def _files(folder: Path) -> int:
    return sum(1 for _, _, names in os.walk(folder) for n in names
               if n.lower().endswith(IMAGE_SUFFIXES))


def _lines(path: Path) -> int:
    if not path.is_file():
        return 0
    with open(path, encoding="utf-8-sig", errors="replace") as handle:
        return sum(1 for line in handle if line.strip())


def run_work(protocol: str, config: Any, counts: dict[str, int],
             input_size: int) -> tuple[float, float]:
    """(forward images, train images) of one run, in input-size image equivalents."""
    if protocol in ("linear-conv", "mlp"):  # dcbench eval's own plan (probe heads: no backward)
        sizes = {"train": counts.get("train", 0), "val": counts.get("val", 0)}
        return float(plan_eval(protocol, config, sizes).image_passes), 0.0
    if protocol == "voc07-cls":
        iterations = config.resolved_iterations()  # fc6-8's count depends on the pipeline
        scale = ((config.crop_size or input_size) / input_size) ** 2
        test = counts.get("voc07-test", 0) * config.eval_passes
        return test * scale, float(iterations * config.batch_size) * scale
    if protocol == "voc07-det":  # pixel sizes are for a 224-px model, scaled per model
        scales = config.train_scales or (600,)
        train_scale = (sum(scales) / len(scales) / 224) ** 2
        test_scale = (config.test_scale / 224) ** 2
        return (counts.get("voc07-test", 0) * test_scale,
                float(config.iterations * config.batch_size) * train_scale)
    if protocol == "voc12-seg":
        scale = (500 / 224) ** 2  # VOC images are about 500 x 375 px, segmented whole
        return (counts.get("voc12-val", 0) * scale,
                float(config.iterations * config.batch_size) * scale)
    if protocol in ("voc07-svm", "voc07-lowshot-svm"):
        return float(counts.get("voc07-trainval", 0) + counts.get("voc07-test", 0)), 0.0
    if protocol == "retrieval":
        scale = (config.image_size / input_size) ** 2
        return float(sum(counts.values())) * scale, 0.0
    return float(sum(counts.values())), 0.0


def estimate_seconds(protocol: str, config: Any, counts: dict[str, int], rates: Rates,
                     processes: int = 1) -> float:
    """The estimated seconds of one run (see the module docstring for how), shared by
    `processes` torchrun processes (each with its device: every pass is sharded)."""
    forward, train = run_work(protocol, config, counts, rates.input_size)
    return (forward / rates.forward + train / rates.train) / max(int(processes), 1)


def format_duration(seconds: float) -> str:
    """1h 05m / 12m 30s / 45 s."""
    seconds = max(0, round(seconds))
    if seconds >= 3600:
        return f"{seconds // 3600}h {seconds % 3600 // 60:02d}m"
    if seconds >= 60:
        return f"{seconds // 60}m {seconds % 60:02d}s"
    return f"{seconds} s"
