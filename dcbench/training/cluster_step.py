"""The clustering step of an epoch: embeddings -> pseudo-labels (+ label diagnostics).

Three ways, same semantics:
- on the device (one process, torch backend; issue 18): the embeddings never leave the
  device they were computed on; whitening, k-means or PIC and the ratio-edge k-NN run
  there, and only int64 labels (and a few floats) come back (`cluster_on_device`);
- gathered (one process, or a faiss backend under torchrun): rank 0 holds every embedding,
  PCA-whitens, clusters (faiss or torch, see `clustering.backend`) and broadcasts labels;
- sharded (a torch backend under torchrun): embeddings stay on their rank; whitening and
  k-means all-reduce moments and per-cluster sums (`clustering.sharded`); PIC and the label
  diagnostics see all-gathered reduced (`pca_dim`-d) rows at most; only int64 ids travel.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from dcbench.clustering import diagnostics
from dcbench.clustering.backend import kmeans, whiten_on_device
from dcbench.clustering.kmeans import derived_seed, pca_whiten, run_kmeans
from dcbench.clustering.pic import run_pic
from dcbench.clustering.sharded import sharded_kmeans, sharded_pic, sharded_whiten, total_rows
from dcbench.core.distributed import DistInfo, gather_varying
from dcbench.core.errors import UserError
from dcbench.training.config import TrainConfig


def _pic_args(config: TrainConfig) -> dict[str, Any]:
    return {"nnn": config.pic_nnn, "sigma": config.pic_sigma, "alpha": config.pic_alpha,
            "iters": config.pic_iters, "singletons": config.pic_singletons,
            "dtype": config.pic_dtype}


def cluster_features(features: np.ndarray, config: TrainConfig, seed: int,
                     backend: str = "faiss-cpu", stats: dict[str, int] | None = None
                     ) -> tuple[np.ndarray, float, np.ndarray]:
    """PCA-whiten + L2 + k-means/PIC: (labels, loss, reduced features for diagnostics).

    `backend` is a name from `resolve_backend`; the faiss ones keep today's path exactly."""
    if config.clustering == "kmeans" and config.k > len(features):
        raise UserError(f"k={config.k} exceeds the {len(features)} images clustered")
    if backend.startswith("torch"):
        reduced_t = whiten_on_device(features, config.pca_dim,
                                     "cuda" if backend == "torch-cuda" else "cpu")
        if config.clustering == "kmeans":
            labels, loss = kmeans(reduced_t, config.k, config.kmeans_iters, seed, backend,
                                  stats)
        else:
            labels, pic_info = run_pic(reduced_t, backend=backend, **_pic_args(config))
            loss = float(pic_info["loss"])
        return labels, loss, reduced_t.cpu().numpy()
    reduced = pca_whiten(features, config.pca_dim)  # on the GPU when there is one
    if config.clustering == "kmeans":
        labels, loss = run_kmeans(reduced, config.k, niter=config.kmeans_iters, seed=seed,
                                  use_gpu=backend == "faiss-gpu", stats=stats)
    else:
        labels, pic_info = run_pic(reduced, use_gpu=backend == "faiss-gpu", **_pic_args(config))
        loss = float(pic_info["loss"])
    return labels, loss, reduced


def cluster_on_device(features: torch.Tensor, config: TrainConfig, seed: int, backend: str,
                      stats: dict[str, int] | None = None
                      ) -> tuple[np.ndarray, float, torch.Tensor]:
    """`cluster_features` for device-resident rows (float32 or bf16, e.g. `compact_rows_`'s
    view): (int64 labels on the host, loss, reduced rows left on the device). A faiss
    backend gets the reduced (`pca_dim`-d) rows on the host, never the embeddings."""
    if config.clustering == "kmeans" and config.k > len(features):
        raise UserError(f"k={config.k} exceeds the {len(features)} images clustered")
    reduced = whiten_on_device(features, config.pca_dim, features.device)
    if config.clustering == "kmeans":
        labels, loss = kmeans(reduced, config.k, config.kmeans_iters, seed, backend, stats)
    else:
        gpu = backend == "faiss-gpu"
        labels, pic_info = (run_pic(reduced, backend=backend, **_pic_args(config))
                            if backend.startswith("torch") else
                            run_pic(reduced.cpu().numpy(), use_gpu=gpu, **_pic_args(config)))
        loss = float(pic_info["loss"])
    return labels, loss, reduced


def cluster_sharded(local: np.ndarray | torch.Tensor, config: TrainConfig, seed: int,
                    info: DistInfo, device: torch.device, stats: dict[str, int] | None = None
                    ) -> tuple[np.ndarray, float, torch.Tensor]:
    """This rank's valid embedding rows -> (labels of all ranks' rows in rank order, loss,
    this rank's reduced rows). Collective: every rank calls it."""
    rows = torch.from_numpy(local) if isinstance(local, np.ndarray) else local
    reduced = sharded_whiten(rows.to(device), config.pca_dim, info)
    if config.clustering == "kmeans":
        labels, loss = sharded_kmeans(reduced, config.k, config.kmeans_iters, seed, info,
                                      stats)
        return labels, loss, reduced
    labels, pic_info = sharded_pic(reduced, info, device, backend="torch-" + device.type,
                                   **_pic_args(config))
    return labels, float(pic_info.get("loss", 0.0)), reduced


def diagnostic_rows(used: np.ndarray, targets: np.ndarray, config: TrainConfig, epoch: int,
                    seed_purpose: int) -> np.ndarray | None:
    """Positions (into `used`) of the labelled rows the label diagnostics look at, or None
    when there are too few labelled rows (subsampled to `diagnostics_max`, seeded)."""
    known = targets[used] >= 0
    if known.sum() <= config.knn_ratio_k:
        return None
    rows = np.flatnonzero(known)
    if config.diagnostics_max and len(rows) > config.diagnostics_max:
        rng = np.random.default_rng(derived_seed(config.seed, epoch, seed_purpose))
        rows = np.sort(rng.choice(rows, config.diagnostics_max, replace=False))
    return rows


def gather_selected(reduced_local: torch.Tensor, rows: np.ndarray, info: DistInfo
                    ) -> torch.Tensor:
    """The reduced rows at global positions `rows` (sorted), gathered from their ranks onto
    this rank's device (a tensor: the label diagnostics then run there, in torch, with no
    faiss; issue 27)."""
    _, offset = total_rows(reduced_local, info)
    mine = rows[(rows >= offset) & (rows < offset + len(reduced_local))] - offset
    picked = reduced_local[torch.from_numpy(mine).to(reduced_local.device)]
    return gather_varying(picked.contiguous(), info)


def label_diagnostics(reduced_rows: np.ndarray | torch.Tensor, rows: np.ndarray | None,
                      used: np.ndarray, labels: np.ndarray, targets: np.ndarray,
                      config: TrainConfig) -> dict[str, Any]:
    """NMI against the true labels and the ratio edge intra-class (labelled data only);
    `reduced_rows` are the reduced features of `used[rows]` (a tensor: the exact k-NN runs
    on its device, torch; an array: faiss on the host)."""
    if rows is None:
        return {}
    out: dict[str, Any] = {"nmi_labels": diagnostics.assignment_nmi(
        labels[used], targets[used], config.nmi_average)}
    ratio = (diagnostics.ratio_edge_intra_class_device
             if isinstance(reduced_rows, torch.Tensor) else diagnostics.ratio_edge_intra_class)
    out["ratio_edge_intra_class"] = ratio(reduced_rows, targets[used][rows],
                                          k=config.knn_ratio_k)
    return out


__all__ = ["cluster_features", "cluster_on_device", "cluster_sharded", "diagnostic_rows",
           "gather_selected", "label_diagnostics"]
