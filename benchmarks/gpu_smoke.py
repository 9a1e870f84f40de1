"""GPU smoke benchmark: one DeepCluster epoch at realistic size on synthetic images.

    python benchmarks/gpu_smoke.py                         # AlexNet, 224 px, batch 256, k=10000
    python benchmarks/gpu_smoke.py --arch vgg16 --images 50000 --out smoke.json
    python benchmarks/gpu_smoke.py --allow-cpu --images 64 --size 64 --arch alexnet_small \
        --batch 16 --k 8                                   # the CPU check the tests run

It runs the training loop's own pieces (dcbench.training: embedding extraction, PCA-whitening
+ faiss k-means on the GPU, uniform-over-clusters sampling, a full training pass) on
procedurally generated images held in memory (no disk I/O, so it measures the GPU), and
reports images/s for feature extraction and training and the share of the epoch spent
clustering. Without a CUDA GPU it refuses, unless `--allow-cpu` is given with tiny sizes.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F
from torch.utils.data import Dataset

CPU_LIMITS = {"images": 512, "size": 64, "k": 64}


class SyntheticImages(Dataset):
    """Smooth random images, deterministic per index: (3, size, size) tensor, label -1, index."""

    def __init__(self, n: int, size: int, seed: int = 0) -> None:
        self.n, self.size, self.seed = n, size, seed

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int, int]:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + index)
        coarse = torch.randn(1, 3, 8, 8, generator=g)
        img = F.interpolate(coarse, size=(self.size, self.size), mode="bilinear",
                            align_corners=False)[0]
        return img + 0.1 * torch.randn(img.shape, generator=g), -1, index


def refuse_reason(args: argparse.Namespace) -> str | None:
    """Why this configuration may not run here (None when it may)."""
    if torch.cuda.is_available():
        return None
    if not args.allow_cpu:
        return ("no CUDA GPU here: this benchmark measures a realistic-size epoch on a GPU; "
                "pass --allow-cpu with tiny sizes (e.g. --images 64 --size 64 --k 8 "
                "--arch alexnet_small --batch 16) to check it runs")
    too_big = [f"--{k} {getattr(args, k)} > {v}" for k, v in CPU_LIMITS.items()
               if getattr(args, k) > v]
    if too_big:
        return "--allow-cpu is for tiny sizes only: " + ", ".join(too_big)
    return None


def measure_epoch(args: argparse.Namespace) -> dict:
    """One epoch: features -> PCA-whiten + k-means -> top reset -> training pass."""
    from dcbench.clustering.kmeans import gpu_available
    from dcbench.core.distributed import DistInfo
    from dcbench.data.loader import make_loader
    from dcbench.data.samplers import UniformLabelSampler
    from dcbench.models import create_backbone
    from dcbench.training.config import TrainConfig
    from dcbench.training.deepcluster import cluster_features
    from dcbench.training.embeddings import extract_embeddings
    from dcbench.training.train_pass import PassSettings, train_pass

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    config = TrainConfig(arch=args.arch, k=args.k, batch_size=args.batch, pca_dim=args.pca)
    model = create_backbone(config.model_config(), seed=0).to(device)
    data = SyntheticImages(args.images, args.size)
    info = DistInfo()

    def sync() -> float:
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter()

    t0 = sync()
    feats, ok = extract_embeddings(model, data, np.arange(len(data)), batch_size=args.batch,
                                   device=device, workers=args.workers)
    t1 = sync()
    labels, loss, _ = cluster_features(feats[ok], config, seed=0)
    t2 = sync()
    model.reset_top_layer(int(labels.max()) + 1, torch.Generator().manual_seed(0))
    opt = torch.optim.SGD(list(model.trunk_parameters()), lr=0.05, momentum=0.9,
                          weight_decay=1e-5)
    sampler = UniformLabelSampler(labels, len(labels), seed=0)
    loader = make_loader(data, args.batch, sampler=sampler, workers=args.workers,
                         pin_memory=device.type == "cuda")
    train_loss = train_pass(model, loader, labels, opt, PassSettings(0.05, 1e-5), device, info,
                            torch.Generator().manual_seed(0))
    t3 = sync()
    total = t3 - t0
    return {
        "device": torch.cuda.get_device_name(0) if device.type == "cuda" else "cpu",
        "faiss_gpu": gpu_available(), "arch": args.arch, "images": args.images,
        "size": args.size, "batch": args.batch, "k": args.k,
        "features_images_per_s": args.images / (t1 - t0),
        "train_images_per_s": len(sampler) / (t3 - t2),
        "epoch_images_per_s": args.images / total,
        "clustering_s": t2 - t1, "clustering_share": (t2 - t1) / total,
        "features_s": t1 - t0, "train_s": t3 - t2, "epoch_s": total,
        "clustering_loss": loss, "train_loss": train_loss,
        "peak_gpu_mem_gb": (torch.cuda.max_memory_allocated() / 2**30
                            if device.type == "cuda" else None),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--arch", default="alexnet")
    parser.add_argument("--images", type=int, default=50000)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--k", type=int, default=10000)
    parser.add_argument("--pca", type=int, default=256)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--allow-cpu", action="store_true", help="run on CPU (tiny sizes only)")
    parser.add_argument("--out", type=Path, help="write the result as JSON here")
    args = parser.parse_args(argv)
    if args.allow_cpu and not torch.cuda.is_available():
        args.workers = 0
    reason = refuse_reason(args)
    if reason:
        print(f"gpu_smoke: refused: {reason}", file=sys.stderr)
        return 2
    if args.k > args.images:
        print(f"gpu_smoke: refused: k={args.k} exceeds --images {args.images}", file=sys.stderr)
        return 2
    result = measure_epoch(args)
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
