"""One DeepCluster epoch of the `tiny` recipe on the built-in images: dcbench vs a plain epoch.

dcbench: `dcbench.training.deepcluster.train` with `epochs=1` (embed, PCA-whiten, k-means,
uniform-over-clusters pass, checkpoint and run-directory bookkeeping included), timed wall to
wall; the phase split comes from the run's `log.jsonl`. Baseline: the same epoch written the
straightforward way with stock tools: torchvision `ImageFolder` + PIL transforms, scikit-learn
`PCA(whiten=True)` + `KMeans`, a `WeightedRandomSampler` (weights 1/cluster size) and a plain
SGD loop on the same model and hyper-parameters, with nothing saved.
"""

from __future__ import annotations

import contextlib
import io
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmarks.common import Row

SEED = 0


def tiny_config(quick: bool) -> Any:
    """The `tiny` recipe for one epoch (k lowered to 16 for the quick set of 96 images)."""
    from dcbench.training.config import resolve_config

    overrides = ["k=16", "workers=0", "device=cpu"] if quick else ["workers=0", "device=cpu"]
    return resolve_config("tiny", overrides, epochs=1)


def dcbench_epoch(config: Any, data: Path, out: Path) -> tuple[float, dict[str, Any]]:
    """Wall seconds of `train(config)` for one epoch and its log record."""
    from dcbench.training.deepcluster import train

    start = time.perf_counter()
    with contextlib.redirect_stderr(io.StringIO()):
        train(config, data, out)
    seconds = time.perf_counter() - start
    record = json.loads((out / "log.jsonl").read_text().splitlines()[-1])
    return seconds, record


def baseline_epoch(config: Any, data: Path) -> tuple[float, dict[str, float]]:
    """The same epoch with torchvision + scikit-learn + a plain loop; wall seconds and phases."""
    from sklearn.cluster import KMeans
    from sklearn.decomposition import PCA
    from sklearn.preprocessing import normalize
    from torch.utils.data import DataLoader, WeightedRandomSampler
    from torchvision import datasets, transforms

    from dcbench.models import create_backbone

    start = time.perf_counter()
    torch.manual_seed(SEED)
    model = create_backbone(config.model_config(), seed=config.seed)
    mean, std = model.config["mean"], model.config["std"]
    size = config.input_size or int(model.config["input_size"])
    resize = config.resize or round(size * 256 / 224)
    plain = transforms.Compose([transforms.Resize(resize), transforms.CenterCrop(size),
                                transforms.ToTensor(), transforms.Normalize(mean, std)])
    augment = transforms.Compose([
        transforms.RandomResizedCrop(size, scale=tuple(config.crop_scale)),
        transforms.RandomHorizontalFlip(), transforms.ToTensor(), transforms.Normalize(mean, std)])
    model.eval()
    with torch.no_grad():
        feats = torch.cat([
            model.forward_features(x, [model.embedding_tap])[model.embedding_tap]
            for x, _ in DataLoader(datasets.ImageFolder(str(data), plain),
                                   batch_size=config.batch_size)
        ]).numpy()
    t_feat = time.perf_counter()
    reduced = normalize(PCA(config.pca_dim, whiten=True, random_state=SEED).fit_transform(feats))
    labels = KMeans(config.k, n_init=1, max_iter=config.kmeans_iters,
                    random_state=SEED).fit_predict(reduced)
    t_clus = time.perf_counter()
    model.reset_top_layer(int(labels.max()) + 1, torch.Generator().manual_seed(SEED))
    weights = 1.0 / np.bincount(labels)[labels]
    sampler = WeightedRandomSampler(weights.tolist(), len(labels),
                                    generator=torch.Generator().manual_seed(SEED))
    targets = torch.from_numpy(labels.astype(np.int64))
    train_set = datasets.ImageFolder(str(data), augment)
    optimizer = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum,
                                weight_decay=config.weight_decay)
    model.train()
    order = list(sampler)  # ImageFolder items carry no index, so batches are stacked here
    for begin in range(0, len(order), config.batch_size):
        batch = order[begin:begin + config.batch_size]
        images = torch.stack([train_set[i][0] for i in batch])
        loss = torch.nn.functional.cross_entropy(model(images), targets[batch])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    end = time.perf_counter()
    return end - start, {"features_s": t_feat - start, "clustering_s": t_clus - t_feat,
                         "train_s": end - t_clus}


def run(quick: bool) -> list[Row]:
    """Epoch img/s and the clustering share, dcbench vs the plain epoch, same images."""
    from dcbench.data.synthetic import make_classification_set

    config = tiny_config(quick)
    per_class = 12 if quick else 64
    with tempfile.TemporaryDirectory(prefix="dcbench-bench-") as tmp:
        data = make_classification_set(Path(tmp) / "cls", train_per_class=per_class,
                                       val_per_class=0, seed=SEED) / "train"
        base_s, base = baseline_epoch(config, data)
        dc_s, rec = dcbench_epoch(config, data, Path(tmp) / "run")
    n = int(rec["n_images"])
    share_dc = 100.0 * rec["clustering_s"] / dc_s
    share_base = 100.0 * base["clustering_s"] / base_s
    split = (f"dcbench: features {rec['features_s']:.1f}s, clustering {rec['clustering_s']:.2f}s, "
             f"train {rec['train_s']:.1f}s; plain: features {base['features_s']:.1f}s, "
             f"clustering {base['clustering_s']:.2f}s, train {base['train_s']:.1f}s")
    what = f"{config.arch} Sobel, k={config.k}, {n} images, batch {config.batch_size}"
    return [
        Row(benchmark="train_epoch", what=f"one DeepCluster epoch (tiny recipe), {what}",
            dcbench=n / dc_s, unit="img/s",
            baseline_name="torchvision ImageFolder + sklearn PCA/KMeans + SGD loop",
            baseline=n / base_s,
            notes=f"wall to wall, dcbench incl. checkpoints; {split}"),
        Row(benchmark="train_epoch", what="clustering share of that epoch", dcbench=share_dc,
            unit="% of epoch", baseline_name="same plain epoch", baseline=share_base,
            notes="dcbench: torch PCA-whitening + faiss k-means; plain: sklearn"),
    ]
