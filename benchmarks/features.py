"""Feature extraction: share of the matmul peak, and JPEG pipelines vs plain torchvision.

Two questions: how close the frozen-feature step gets to the machine's measured matmul
peak, and how dcbench's JPEG-to-pooled-features pipeline compares with a plain torchvision
ImageFolder + PIL + DataLoader one.

Compute rows: dcbench's extraction step (`tap_featurizer` + `pool_features`, what
`extract_pooled` runs per batch) on random batches; the baseline figure is the images/s the
network would reach if its convolutions ran at the speed of a 2048^3 fp32 matmul measured in
the same run (FLOPs per image from `torch.utils.flop_counter`), so the ratio is the fraction
of peak. Pipeline rows: the same built-in images saved as JPEG, read by dcbench
(`ImageFolderDataset` + `transforms.center_crop` + `make_loader`) and by torchvision's
`ImageFolder` with PIL transforms and the default `DataLoader`, one worker-less process each.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from benchmarks.common import Row, matmul_peak_gflops, timeit

SEED = 0


def model_for(arch: str) -> Any:
    """A randomly initialised dcbench Backbone (Sobel, no top layer), in eval mode."""
    from dcbench.models import create_backbone

    return create_backbone({"arch": arch, "sobel": True, "num_classes": 0}, seed=SEED).eval()


def conv5_extractor(model: Any, size: int) -> Callable[[torch.Tensor], torch.Tensor]:
    """images -> conv5 pooled with the dc2018 table: dcbench's per-batch extraction step."""
    from dcbench.protocols.probe.frozen_features import tap_featurizer
    from dcbench.protocols.probe.pooling import model_pool_specs, pool_features

    spec = model_pool_specs(model, ["conv5"], size, "dc2018")["conv5"]
    featurize = tap_featurizer(model, ["conv5"])

    def extract(images: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return pool_features(featurize(images)["conv5"], spec)

    return extract


def flops_per_image(fn: Callable[[torch.Tensor], Any], size: int) -> float:
    """FLOPs (2 x multiply-adds of convs and matmuls) of `fn` on one size x size image."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn(torch.zeros(1, 3, size, size))
    return float(counter.get_total_flops())


def compute_row(arch: str, size: int, batch: int, repeat: int, peak: float, peak_n: int) -> Row:
    """img/s of conv5 pooled on random batches vs the img/s implied by the matmul peak."""
    model = model_for(arch)
    extract = conv5_extractor(model, size)
    flops = flops_per_image(extract, size)
    images = torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(SEED))
    seconds, _ = timeit(lambda: extract(images), repeat=repeat, warmup=1)
    ips = batch / seconds
    at_peak = peak * 1e9 / flops
    return Row(benchmark="features",
               what=f"{arch} (Sobel) conv5 pooled, {size} px, batch {batch}", dcbench=ips,
               unit="img/s", baseline_name="matmul-peak bound", baseline=at_peak,
               notes=f"{flops / 1e9:.3g} GFLOP/img; ratio = fraction of the measured peak "
               f"({peak:.0f} GFLOP/s, fp32 {peak_n}^3 matmul)")


def write_jpeg_set(out: Path, per_class: int, side: int) -> Path:
    """The built-in shapes (`make_classification_set`) re-encoded as side x side JPEG files."""
    from PIL import Image

    from dcbench.data.synthetic import make_classification_set

    png_root = make_classification_set(out / "png", train_per_class=per_class, val_per_class=0,
                                       seed=SEED) / "train"
    jpeg_root = out / "jpeg"
    for png in sorted(png_root.glob("*/*.png")):
        target = jpeg_root / png.parent.name / (png.stem + ".jpg")
        target.parent.mkdir(parents=True, exist_ok=True)
        with Image.open(png) as img:
            img.convert("RGB").resize((side, side), Image.BILINEAR).save(target, quality=90)
    return jpeg_root


def dcbench_pipeline(root: Path, size: int, resize: int, batch: int,
                     extract: Callable[[torch.Tensor], torch.Tensor] | None) -> int:
    """Run dcbench's loader over `root` (and `extract` on each batch); images seen."""
    from dcbench.data.folders import ImageFolderDataset
    from dcbench.data.loader import make_loader
    from dcbench.data.transforms import center_crop

    dataset = ImageFolderDataset(root, center_crop(size, resize))
    seen = 0
    for out in make_loader(dataset, batch):
        if extract is not None:
            extract(out.images)
        seen += len(out)
    return seen


def torchvision_pipeline(root: Path, size: int, resize: int, batch: int,
                         extract: Callable[[torch.Tensor], torch.Tensor] | None) -> int:
    """The same with plain torchvision: ImageFolder + PIL transforms + default DataLoader."""
    from torch.utils.data import DataLoader
    from torchvision import datasets, transforms

    from dcbench.data.transforms import IMAGENET_MEAN, IMAGENET_STD

    pipeline = transforms.Compose([
        transforms.Resize(resize), transforms.CenterCrop(size), transforms.ToTensor(),
        transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD),
    ])
    seen = 0
    for images, _ in DataLoader(datasets.ImageFolder(str(root), pipeline), batch_size=batch):
        if extract is not None:
            extract(images)
        seen += len(images)
    return seen


def pipeline_row(root: Path, what: str, size: int, resize: int, batch: int,
                 extract: Callable[[torch.Tensor], torch.Tensor] | None) -> Row:
    """img/s of dcbench's JPEG pipeline vs torchvision's, alternating runs, best of two."""
    best = {"dcbench": 0.0, "torchvision": 0.0}
    for _ in range(2):
        for name, fn in (("dcbench", dcbench_pipeline), ("torchvision", torchvision_pipeline)):
            start = time.perf_counter()
            seen = fn(root, size, resize, batch, extract)
            best[name] = max(best[name], seen / (time.perf_counter() - start))
    return Row(benchmark="features", what=what, dcbench=best["dcbench"], unit="img/s",
               baseline_name="torchvision ImageFolder + PIL + DataLoader",
               baseline=best["torchvision"],
               notes="same JPEG files, 0 workers; dcbench: robust decode + transforms v2")


def run(quick: bool) -> list[Row]:
    """Compute efficiency at 224 (AlexNet) and 64 px (alexnet_small), then JPEG pipelines."""
    peak_n = 1024 if quick else 2048
    peak = matmul_peak_gflops(peak_n)
    rows = [
        compute_row("alexnet", 224, 4 if quick else 64, 1 if quick else 3, peak, peak_n),
        compute_row("alexnet_small", 64, 16 if quick else 256, 1 if quick else 3, peak, peak_n),
    ]
    with tempfile.TemporaryDirectory(prefix="dcbench-bench-") as tmp:
        big = write_jpeg_set(Path(tmp) / "256", 2 if quick else 16, 256)
        small = write_jpeg_set(Path(tmp) / "64", 2 if quick else 64, 64)
        n_big, n_small = (len(list(root.glob("*/*.jpg"))) for root in (big, small))
        rows.append(pipeline_row(big, f"{n_big} JPEGs 256 px -> 224 crops, loader only", 224,
                                 256, 64, None))
        rows.append(pipeline_row(big, f"{n_big} JPEGs 256 px -> alexnet conv5 pooled", 224, 256,
                                 64, conv5_extractor(model_for("alexnet"), 224)))
        rows.append(pipeline_row(small, f"{n_small} JPEGs 64 px -> alexnet_small conv5 pooled",
                                 64, 73, 64, conv5_extractor(model_for("alexnet_small"), 64)))
    return rows
