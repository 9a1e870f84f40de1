"""A linear-conv training epoch on ImageNet-sized JPEGs (issue 27): img/s, all heads at once.

    PYTHONPATH=. python benchmarks/linear_epoch.py --out linear_epoch.json   # on a GPU
    PYTHONPATH=. python benchmarks/linear_epoch.py --tiny                    # CPU check
    PYTHONPATH=. torchrun --nproc_per_node 2 benchmarks/linear_epoch.py --tiny  # N processes

The published `linear-conv` is 90 epochs of held-out selection plus 90 of the final fit
over ImageNet: its speed is this epoch's img/s. The epoch runs through the protocol's own
pieces: `ImageSource.train_batches` (the dc2018 training crops, today's loader, its
workers), the frozen AlexNet (Sobel) trunk's conv1-conv5 taps pooled by the dc2018 table,
and a `ProbeSet` of every head the selection trains side by side (5 layers x the 2
weight-decay candidates), on JPEGs of mixed sizes (each side uniform in 224-500 px, as
ImageNet's photos are; `--tiny`: 40-90 px and the small AlexNet). Rows, measured in the same
run on the same files (a warm-up pass first, so worker start and autotuning are not rates):
- the all-heads epoch against the same epoch with ONE head (conv5: what one run of the
  official single-layer `eval_linear.py` trains): how much the nine extra heads cost;
- the frozen trunk + pooling alone on a batch already on the device (no decoding): the
  bound the input pipeline leaves on the table (the issue's target is >= 10,000 img/s
  for the epoch on one H100, i.e. 90 + 90 epochs in under 7 hours);
- the heads' step alone (every head on pooled features already on the device):
  `ProbeSet.train_step` (no host read; under torchrun one collective a step) against the
  step it replaced, kept here as `per_head_sync_step` (each head reads its loss back and
  syncs alone: one device sync, and under torchrun one all-reduce + one broadcast, per
  head), timed alternately in interleaved rounds (median) on the same batches.
Under torchrun every rank takes its slice of the epoch's global batches (as `dcbench eval`
does) and a batch of its own in the step rows; rates are global (all ranks), rank 0 prints.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from benchmarks.common import Row, add_size_args, machine, map_jobs, resolve_sizes
from dcbench.core.dist_eval import broadcast_buffers, sum_over_ranks, sync_gradients
from dcbench.core.distributed import current, init_from_env, shutdown
from dcbench.data.folders import ImageFolderDataset
from dcbench.data.transforms import center_crop
from dcbench.models import create_backbone
from dcbench.protocols.probe.batch_sources import ImageSource
from dcbench.protocols.probe.frozen_features import tap_featurizer
from dcbench.protocols.probe.frozen_fit import train_transform
from dcbench.protocols.probe.heads import HeadSpec, LinearHead, OptimSettings, ProbeSet
from dcbench.protocols.probe.pooling import model_pool_specs, pool_features
from dcbench.protocols.probe.splits import Sizes

NAME = "linear_epoch"
LAYERS = ("conv1", "conv2", "conv3", "conv4", "conv5")
WEIGHT_DECAYS = (1e-7, 1e-4)  # the dc2018 selection candidates
TARGET_IMG_S = 10_000

FULL = {"arch": "alexnet", "jpegs": 4096, "side_min": 224, "side_max": 500, "classes": 100,
        "batch": 256, "workers": 16, "trunk_batches": 20, "step_rounds": 5, "steps": 10}
TINY = {"arch": "alexnet_small", "jpegs": 96, "side_min": 40, "side_max": 90, "classes": 8,
        "batch": 16, "workers": 0, "trunk_batches": 2, "step_rounds": 3, "steps": 4}


def _write_jpeg(job: tuple[str, int, int, int]) -> None:
    path, w, h, seed = job
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (max(2, h // 24), max(2, w // 24), 3), dtype=np.uint8)
    img = Image.fromarray(small).resize((w, h), Image.BICUBIC)
    noise = rng.integers(-12, 13, (h, w, 3))
    Image.fromarray(np.clip(np.asarray(img, np.int16) + noise, 0, 255).astype(np.uint8)).save(
        path, quality=90)


def write_mixed_jpegs(root: Path, p: dict[str, Any], seed: int = 0) -> Path:
    """`root/jpeg/cK/*.jpg`: `p['jpegs']` photo-like JPEGs, each side uniform in
    [`side_min`, `side_max`] (seeded)."""
    rng = np.random.default_rng(seed)
    sides = rng.integers(p["side_min"], p["side_max"] + 1, (p["jpegs"], 2))
    jobs = []
    for i, (w, h) in enumerate(sides.tolist()):
        folder = root / "jpeg" / f"c{i % p['classes']:03d}"
        folder.mkdir(parents=True, exist_ok=True)
        jobs.append((str(folder / f"{i:06d}.jpg"), w, h, seed * 1_000_003 + i))
    map_jobs(_write_jpeg, jobs, chunksize=32)
    return root / "jpeg"


def per_head_sync_step(probes: ProbeSet, feats: dict[str, torch.Tensor],
                       labels: torch.Tensor) -> float:
    """The baseline: `ProbeSet.train_step` as it was before one sync per step (unmasked
    batches): each head's loss read back to the host, then its own gradient all-reduce and
    buffer broadcast under torchrun."""
    probes.train()
    losses = []
    for name, head in probes.heads.items():
        opt = probes.optimizers[name]
        opt.zero_grad(set_to_none=True)
        loss = torch.nn.functional.cross_entropy(head(feats[probes.specs[name].layer]), labels)
        loss.backward()
        rows, value = sync_gradients(head.parameters(), int(labels.numel()),
                                     float(loss.detach()))
        broadcast_buffers(head)
        if rows:
            opt.step()
            probes.schedulers[name].step()
            losses.append(value)
    return sum(losses) / max(len(losses), 1)


def _sync(device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter()


class LinearEpoch:
    """The frozen trunk, the pooled taps and the image source of a linear-conv run."""

    def __init__(self, folder: Path, p: dict[str, Any], device: torch.device) -> None:
        self.p, self.device = p, device
        model = create_backbone({"arch": p["arch"], "sobel": True, "num_classes": 0}, seed=0)
        self.model = model.to(device).eval()
        for param in self.model.parameters():
            param.requires_grad_(False)
        self.sizes = Sizes.for_model(self.model)
        self.specs = model_pool_specs(self.model, list(LAYERS), self.sizes.crop, "dc2018")
        shapes = self.model.feature_shapes(list(LAYERS), self.sizes.crop)
        self.pooled = {layer: spec.output_shape(shapes[layer])
                       for layer, spec in self.specs.items()}
        self.dataset = ImageFolderDataset(folder)
        self.featurize = tap_featurizer(self.model, LAYERS)
        center = center_crop(self.sizes.crop, self.sizes.resize, self.sizes.mean, self.sizes.std)
        self.source = ImageSource(
            self.dataset, featurize=self.featurize, specs=self.specs,
            train_transform=train_transform("center-then-random", self.sizes),
            eval_transform=center, eval_crops=1, device=str(device), workers=p["workers"])

    def probes(self, layers: tuple[str, ...], decays: tuple[float, ...]) -> ProbeSet:
        n_classes = len(self.dataset.classes)
        heads = [HeadSpec(f"{layer} wd={wd:g}", layer,
                          LinearHead(math.prod(self.pooled[layer]), n_classes), 0.01, wd)
                 for layer in layers for wd in decays]
        iters = math.ceil(len(self.dataset) / self.p["batch"])
        return ProbeSet(heads, OptimSettings(), iters).to(self.device)

    def step_rates(self) -> tuple[float, float]:
        """img/s of (train_step, per_head_sync_step) for every head on pooled features of
        random batches already on the device: `step_rounds` interleaved rounds of `steps`
        steps each, medians (each step form trains its own copy of the heads)."""
        gen = torch.Generator(self.device).manual_seed(1)
        crop, batch = self.sizes.crop, self.p["batch"]
        with torch.no_grad():
            images = torch.randn(batch, 3, crop, crop, device=self.device, generator=gen)
            out = self.featurize(images)
            feats = {layer: pool_features(out[layer], spec) for layer, spec in self.specs.items()}
        labels = torch.randint(len(self.dataset.classes), (batch,), device=self.device,
                               generator=gen)
        forms = {"one": (self.probes(LAYERS, WEIGHT_DECAYS), ProbeSet.train_step),
                 "per-head": (self.probes(LAYERS, WEIGHT_DECAYS), per_head_sync_step)}
        times: dict[str, list[float]] = {name: [] for name in forms}
        for probes, step in forms.values():
            step(probes, feats, labels)  # warm-up
        for _ in range(self.p["step_rounds"]):
            for name, (probes, step) in forms.items():
                start = _sync(self.device)
                for _ in range(self.p["steps"]):
                    step(probes, feats, labels)
                times[name].append(_sync(self.device) - start)
        images_timed = batch * self.p["steps"]
        return (images_timed / statistics.median(times["one"]),
                images_timed / statistics.median(times["per-head"]))

    def epoch(self, probes: ProbeSet, epoch: int) -> tuple[float, int]:
        """(seconds, images) of one training epoch of `probes` over every image."""
        start, images = _sync(self.device), 0
        for feats, labels in self.source.train_batches(None, epoch, 0, self.p["batch"]):
            probes.train_step(feats, labels)
            images += len(labels)
        return _sync(self.device) - start, images

    @torch.no_grad()
    def trunk_rate(self) -> float:
        """img/s of the frozen trunk + pooling on a batch already on the device."""
        crop = self.sizes.crop
        x = torch.randn(self.p["batch"], 3, crop, crop, device=self.device,
                        generator=torch.Generator(self.device).manual_seed(0))

        def once() -> None:
            out = self.featurize(x)
            for layer, spec in self.specs.items():
                pool_features(out[layer], spec)

        once()  # warm-up (autotuning, allocator)
        start = _sync(self.device)
        for _ in range(self.p["trunk_batches"]):
            once()
        return self.p["batch"] * self.p["trunk_batches"] / (_sync(self.device) - start)


def measure(p: dict[str, Any], device: torch.device) -> list[Row]:
    """The rows (see the module docstring), on freshly written JPEGs."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = write_mixed_jpegs(Path(tmp), p)
        run = LinearEpoch(folder, p, device)
        all_heads = run.probes(LAYERS, WEIGHT_DECAYS)
        one_head = run.probes(("conv5",), WEIGHT_DECAYS[:1])
        run.epoch(all_heads, epoch=99)  # warm-up: workers, cudnn autotuning, allocator
        t_all, n = run.epoch(all_heads, epoch=0)
        t_one, _ = run.epoch(one_head, epoch=0)
        trunk = run.trunk_rate()
        step_one, step_per_head = run.step_rates()
    world = current().world_size  # torchrun: global images and rates
    n = int(sum_over_ranks([n])[0])
    trunk, step_one, step_per_head = (world * r for r in (trunk, step_one, step_per_head))
    where = f"{p['side_min']}-{p['side_max']} px JPEGs, {p['workers']} workers" + (
        f", {world} processes" if world > 1 else "")
    heads = len(LAYERS) * len(WEIGHT_DECAYS)
    return [
        Row(benchmark=NAME, what=f"linear-conv training epoch, conv1-5 x {len(WEIGHT_DECAYS)} "
            f"wd = {heads} heads, {n} {where}", dcbench=n / t_all, unit="img/s",
            baseline_name="the same epoch, one conv5 head", baseline=n / t_one,
            notes=f"{p['arch']} (Sobel), batch {p['batch']}, today's loader (PIL in workers); "
            f"target >= {TARGET_IMG_S} img/s on one H100"),
        Row(benchmark=NAME, what=f"linear-conv epoch vs the frozen trunk + pooling alone "
            f"(batch on the device), {p['arch']}", dcbench=n / t_all, unit="img/s",
            baseline_name="trunk + pooling, no decoding", baseline=trunk,
            notes="ratio < 1: the share of the trunk's speed the epoch reaches"),
        Row(benchmark=NAME, what=f"probe step alone, {heads} heads on pooled features on the "
            f"device, {p['arch']}, batch {p['batch']}", dcbench=step_one, unit="img/s",
            baseline_name="the per-head-sync step (a host read per head)",
            baseline=step_per_head,
            notes=f"median of {p['step_rounds']} interleaved rounds of {p['steps']} steps; "
            + (f"{world} processes: 1 all-reduce a step vs 2 collectives per head"
               if world > 1 else "one process: no collective in either")),
    ]


def run(quick: bool) -> list[Row]:
    """`dcbench bench` entry: full sizes on a CUDA GPU (quick: tiny), tiny without one."""
    on_gpu = torch.cuda.is_available()
    return measure(dict(FULL if on_gpu and not quick else TINY),
                   torch.device("cuda" if on_gpu else "cpu"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_size_args(parser, FULL)
    args = parser.parse_args(argv)
    on_gpu = torch.cuda.is_available()
    params = resolve_sizes(args, FULL, TINY, on_gpu)
    info = init_from_env("cuda" if on_gpu else "cpu")  # one process unless torchrun
    device = torch.device("cuda", info.local_rank) if on_gpu else torch.device("cpu")
    try:
        rows = measure(params, device)
    finally:
        shutdown(info)
    if not info.is_main:
        return 0
    for r in rows:
        print(f"{r.what}: {r.dcbench:.4g} {r.unit} | {r.baseline_name}: {r.baseline:.4g} | "
              f"ratio {r.ratio:.2f}x | {r.notes}", file=sys.stderr, flush=True)
    text = json.dumps({"machine": machine(), "params": params,
                       "rows": [r.to_dict() for r in rows]}, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
