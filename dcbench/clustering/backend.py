"""Which k-means/k-NN implementation runs: faiss (CPU, or a GPU build) or plain torch.

`clustering_backend: auto | faiss | torch` in a training config. `auto` picks faiss-gpu only
when the installed faiss already has GPU support, the torch code on a CUDA device otherwise,
and faiss-cpu on CPU (the default numerics, unchanged). There is no pip extra for faiss-gpu:
the `faiss-gpu` / `faiss-gpu-cu12` wheels need a second, CUDA 12 stack (~700 MB) that a
CUDA 13 torch image cannot load, and the CUDA 13 builds pin an older toolkit or one Python
(issue 18); faiss-cpu on a GPU machine was measured 37x slower than torch on the GPU (issue
15), and the torch k-means matched faiss's quality on CPU (same NMI to planted truth). So
the torch k-means is the GPU backend. The resolved name (`faiss-gpu`, `faiss-cpu`,
`torch-cuda`, `torch-cpu`) is what the run log records.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch

from dcbench.clustering.kmeans import (
    as_float_tensor,
    faiss_available,
    fit_whitening,
    gpu_available,
    l2_normalize,
    run_kmeans,
)
from dcbench.clustering.torch_kmeans import torch_kmeans
from dcbench.core.errors import UserError

BackendName = Literal["auto", "faiss", "torch"]
BACKENDS: tuple[str, ...] = ("auto", "faiss", "torch")
_KNN_BLOCK_BYTES = 256 << 20


def resolve_backend(name: str, device: torch.device | str = "cpu") -> str:
    """The implementation that runs for `name` on `device`: faiss-gpu | faiss-cpu |
    torch-cuda | torch-cpu."""
    if name not in BACKENDS:
        raise UserError(f"unknown clustering_backend {name!r}; valid: {', '.join(BACKENDS)}")
    on_cuda = torch.device(device).type == "cuda"
    if name == "faiss" or (name == "auto" and faiss_available() and (gpu_available()
                                                                      or not on_cuda)):
        return "faiss-gpu" if gpu_available() else "faiss-cpu"
    return "torch-cuda" if on_cuda else "torch-cpu"


def whiten_on_device(x: np.ndarray | torch.Tensor, dim: int, device: torch.device | str
                     ) -> torch.Tensor:
    """PCA-whiten to `dim` + L2-normalise, computed and kept on `device` (float32 tensor).

    A bf16/fp16 tensor already on `device` is read chunk by chunk (mean and covariance
    accumulated in float64, products in float32), never copied whole."""
    t = as_float_tensor(x, keep_half=True).to(device)
    return l2_normalize(fit_whitening(t, dim).apply(t))


def kmeans(x: np.ndarray | torch.Tensor, k: int, niter: int, seed: int, backend: str,
           stats: dict[str, int] | None = None) -> tuple[np.ndarray, float]:
    """k-means with a resolved backend name; (int64 labels, loss), every cluster non-empty
    (`stats["empty_resplit"]`: the empty clusters re-split on the way)."""
    if backend.startswith("torch"):
        return torch_kmeans(x, k, niter=niter, seed=seed,
                            device="cuda" if backend == "torch-cuda" else None, stats=stats)
    data = x.cpu().numpy() if isinstance(x, torch.Tensor) else x
    return run_kmeans(data, k, niter=niter, seed=seed, use_gpu=backend == "faiss-gpu",
                      stats=stats)


@torch.no_grad()
def knn_search_device(x: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The k nearest other rows of each row of `x`, on its device, by chunked matmul + top-k:
    (squared L2 distances, int64 ids), both (N, k), with `pic.knn_search`'s self-removal
    rule (search k+1, drop the query itself wherever it lands, else the farthest hit)."""
    t = x.float().contiguous()
    n = len(t)
    if not 1 <= k < n:
        raise UserError(f"k-NN graph needs 1 <= k < number of samples ({n}), got k={k}")
    sq = (t * t).sum(1)
    # bigger blocks on a GPU (2 GiB): an exact 10-NN over 1.28M rows is ~3k blocks, not 25k
    budget = _KNN_BLOCK_BYTES * (8 if t.is_cuda else 1)
    rows = max(64, budget // (4 * n))
    dist = torch.empty(n, k + 1, dtype=torch.float32, device=t.device)
    ids = torch.empty(n, k + 1, dtype=torch.int64, device=t.device)
    for s in range(0, n, rows):
        xb = t[s : s + rows]
        block = torch.addmm(sq.unsqueeze(0), xb, t.T, alpha=-2.0) + sq[s : s + rows, None]
        d, i = torch.topk(block, k + 1, dim=1, largest=False, sorted=True)
        dist[s : s + rows], ids[s : s + rows] = d.clamp_min_(0), i
    is_self = ids == torch.arange(n, device=t.device)[:, None]
    is_self[:, -1] |= ~is_self.any(1)
    keep = ~is_self
    return dist[keep].reshape(n, k), ids[keep].reshape(n, k)


def knn_search_torch(x: np.ndarray | torch.Tensor, k: int, device: torch.device | str | None = None
                     ) -> tuple[np.ndarray, np.ndarray]:
    """`knn_search_device` on `device` (default: where `x` is), results as numpy arrays."""
    t = as_float_tensor(x)
    dist, ids = knn_search_device(t.to(device) if device is not None else t, k)
    return dist.cpu().numpy(), ids.cpu().numpy()


__all__ = ["BACKENDS", "BackendName", "kmeans", "knn_search_device", "knn_search_torch",
           "resolve_backend",
           "whiten_on_device"]
