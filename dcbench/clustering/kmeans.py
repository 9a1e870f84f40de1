"""The clustering step of DeepCluster: PCA-whitening, L2 normalisation and k-means.

The official code whitens with faiss `PCAMatrix(4096, 256, eigen_power=-0.5)`, which is slow
on CPU (about 95 s for 50k x 4096 features, see measured-baselines.md). Here the covariance
is one large float32 matmul (near machine peak, only the upper block triangle is computed)
and the top eigenvectors come from a float64 eigendecomposition, several times faster. The
projection is near-identical to faiss's, not identical (docs/fidelity.md item 27). k-means
is faiss (a GPU index only when the installed faiss build has GPU support; on CUDA the torch
k-means of `torch_kmeans` is the GPU backend, see `backend`), never subsampled, with the
thesis's guarantee of no empty cluster (Section 3.2).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.linalg
import torch
from threadpoolctl import threadpool_limits

from dcbench.core.errors import UserError

try:
    import faiss
except ImportError:  # a GPU image without it (faiss-cpu is a dependency): torch backends only
    faiss = None

log = logging.getLogger(__name__)

_ROW_CHUNK = 16384
_COL_BLOCK = 1024


def as_float_tensor(x: np.ndarray | torch.Tensor, keep_half: bool = False) -> torch.Tensor:
    """A 2-D float32 tensor view/copy of `x` (numpy arrays are shared, not copied); with
    `keep_half` a bf16/fp16 tensor stays as it is (the chunked consumers widen each chunk,
    so 1.28M x 4096 device-resident features are never copied whole)."""
    t = torch.from_numpy(np.ascontiguousarray(x)) if isinstance(x, np.ndarray) else x
    if t.ndim != 2:
        raise UserError(f"features must be a 2-D (N, D) array, got shape {tuple(t.shape)}")
    if not all(torch.isfinite(t[s : s + _ROW_CHUNK]).all() for s in range(0, len(t), _ROW_CHUNK)):
        raise UserError("features contain NaN or inf; the network diverged (lower the LR)")
    if keep_half and t.dtype in (torch.bfloat16, torch.float16):
        return t
    return t.float()


def scatter_matrix(x: torch.Tensor, mean: torch.Tensor) -> torch.Tensor:
    """Sum of outer products (float64, D x D) of the rows of `x` centred on `mean`, in row chunks.

    Each chunk is centred in float32 and multiplied block-wise over the upper triangle of the
    D x D result (symmetric), so the cost is about 0.6 * N * D^2 flops at matmul speed. Sums
    from several shards (torchrun ranks) add up to the scatter of all rows.
    """
    n, d = x.shape
    out = torch.zeros(d, d, dtype=torch.float64, device=x.device)
    blocks = [(s, min(s + _COL_BLOCK, d)) for s in range(0, d, _COL_BLOCK)]
    mean32 = mean.to(x.device, torch.float32)
    for start in range(0, n, _ROW_CHUNK):
        xc = x[start : start + _ROW_CHUNK] - mean32
        for i, (a0, a1) in enumerate(blocks):
            for b0, b1 in blocks[i:]:
                out[a0:a1, b0:b1] += (xc[:, a0:a1].T @ xc[:, b0:b1]).double()
    upper = torch.triu(out)
    return upper + upper.T - torch.diag(torch.diagonal(out))


def covariance(x: torch.Tensor, mean: torch.Tensor) -> torch.Tensor:
    """Covariance (float64, D x D) of the rows of `x` around `mean` (see `scatter_matrix`)."""
    return scatter_matrix(x, mean) / max(len(x) - 1, 1)


def column_mean(x: torch.Tensor) -> torch.Tensor:
    """Float64 mean of the rows, accumulated chunk by chunk (no float64 copy of `x`)."""
    total = torch.zeros(x.shape[1], dtype=torch.float64, device=x.device)
    for start in range(0, len(x), _ROW_CHUNK):
        total += x[start : start + _ROW_CHUNK].double().sum(0)
    return total / len(x)


def top_eigenpairs(cov: torch.Tensor, dim: int) -> tuple[np.ndarray, np.ndarray]:
    """The `dim` largest eigenpairs of a symmetric float64 matrix (ascending order).

    On GPU: cuSOLVER via torch. On CPU: LAPACK's MRRR on the wanted subset only, with BLAS
    limited to one thread on small machines, where a multi-threaded tridiagonalisation
    competing with other work was measured 3x slower than a single thread.
    """
    d = cov.shape[0]
    if cov.is_cuda:
        vals, vecs = torch.linalg.eigh(cov)
        return vals[d - dim :].cpu().numpy(), vecs[:, d - dim :].cpu().numpy()
    threads = 1 if (os.cpu_count() or 1) <= 4 else None
    with threadpool_limits(threads, user_api="blas"):
        return scipy.linalg.eigh(cov.numpy(), subset_by_index=[d - dim, d - 1], driver="evr")


@dataclass(frozen=True)
class Whitening:
    """A fitted PCA-whitening: y = (x - mean) @ projection (D x dim), float32."""

    mean: torch.Tensor
    projection: torch.Tensor
    eigenvalues: torch.Tensor

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        """Project rows of `x` (chunked, float32) into the whitened space."""
        mean = self.mean.to(x.device, torch.float32)
        proj = self.projection.to(x.device, torch.float32)
        parts = [(x[s : s + _ROW_CHUNK] - mean) @ proj for s in range(0, len(x), _ROW_CHUNK)]
        return torch.cat(parts) if parts else x.new_zeros((0, proj.shape[1]))


def fit_whitening(x: np.ndarray | torch.Tensor, dim: int = 256) -> Whitening:
    """Fit PCA to `dim` components with whitening (eigenvalue power -0.5), like faiss PCAMatrix.

    `dim` is lowered to N-1 when there are fewer samples than dimensions (the covariance
    then has rank N-1 and whitening more directions would divide by zero); this is logged.
    """
    t = as_float_tensor(x, keep_half=True)
    n, d = t.shape
    if dim < 1 or dim > d:
        raise UserError(f"PCA dimension must be in [1, {d}] for {d}-d features, got {dim}")
    if n < 2:
        raise UserError(f"PCA needs at least 2 samples, got {n}")
    if dim > n - 1:
        log.warning("PCA dimension lowered from %d to %d (only %d samples)", dim, n - 1, n)
        dim = n - 1
    mean = column_mean(t)
    return whitening_from_moments(mean, covariance(t, mean), dim)


def whitening_from_moments(mean: torch.Tensor, cov: torch.Tensor, dim: int) -> Whitening:
    """The whitening of `fit_whitening` from a mean and a float64 covariance (which may
    come from all-reduced shards): top `dim` eigenpairs, signs fixed, power -0.5."""
    vals, vecs = top_eigenpairs(cov, dim)
    order = np.argsort(vals)[::-1]
    vals = np.clip(vals[order], vals.max() * 1e-12 + 1e-30, None)
    vecs = vecs[:, order]
    # fix the sign of each eigenvector (largest |component| positive) so results are stable
    signs = np.sign(vecs[np.abs(vecs).argmax(0), np.arange(dim)])
    vecs = vecs * np.where(signs == 0, 1.0, signs)
    projection = torch.from_numpy(vecs / np.sqrt(vals)).float()
    return Whitening(
        mean=mean.float().cpu(), projection=projection, eigenvalues=torch.from_numpy(vals)
    )


def l2_normalize(x: torch.Tensor) -> torch.Tensor:
    """Rows scaled to unit L2 norm (zero rows stay zero), like faiss.normalize_L2."""
    norms = x.norm(dim=1, keepdim=True)
    return x / torch.where(norms > 0, norms, torch.ones_like(norms))


def pca_whiten(x: np.ndarray | torch.Tensor, dim: int = 256) -> np.ndarray:
    """DeepCluster's preprocessing: PCA-whiten to `dim` dims then L2-normalise rows (float32)."""
    t = as_float_tensor(x)
    if torch.cuda.is_available() and t.device.type == "cpu" and len(t) * t.shape[1] > 1 << 24:
        t = t.cuda()
    whitening = fit_whitening(t, dim)
    return np.ascontiguousarray(l2_normalize(whitening.apply(t)).cpu().numpy(), dtype=np.float32)


def gpu_available() -> bool:
    """True when faiss was built with GPU support and sees at least one GPU."""
    return faiss is not None and hasattr(faiss, "StandardGpuResources") and (
        faiss.get_num_gpus() > 0)


def faiss_available() -> bool:
    """True when faiss imports (it is a dependency; a bare GPU image may lack it)."""
    return faiss is not None


def _require_faiss() -> None:
    if faiss is None:
        raise UserError("faiss is not installed: pip install faiss-cpu, or set "
                        "clustering_backend: torch")


def flat_l2_index(d: int, use_gpu: bool | None = None) -> Any:
    """An exact L2 index (a faiss.Index); on all visible GPUs (sharded) when available."""
    _require_faiss()
    use_gpu = gpu_available() if use_gpu is None else use_gpu
    index = faiss.IndexFlatL2(d)
    if use_gpu:
        if not gpu_available():
            raise UserError("GPU clustering requested but faiss has no GPU support here")
        co = faiss.GpuMultipleClonerOptions()
        co.shard = True
        return faiss.index_cpu_to_all_gpus(index, co=co)
    return index


def fill_empty_clusters(labels: np.ndarray, k: int, seed: int = 0,
                        stats: dict[str, int] | None = None) -> np.ndarray:
    """Give every empty cluster half of the members of a random non-empty one (thesis 3.2).

    The donor is drawn uniformly among clusters with at least 2 members and a random half of
    its members (floor(n/2)) moves to the empty cluster. Raises if k exceeds the sample count.
    """
    labels = np.asarray(labels, dtype=np.int64).copy()
    if k > len(labels):
        raise UserError(f"cannot make {k} non-empty clusters from {len(labels)} samples")
    rng = np.random.default_rng(seed)
    counts = np.bincount(labels, minlength=k)
    count_resplit(stats, int((counts == 0).sum()))
    for empty in np.flatnonzero(counts == 0):
        donors = np.flatnonzero(counts >= 2)
        donor = rng.choice(donors)
        members = np.flatnonzero(labels == donor)
        moved = rng.permutation(members)[: len(members) // 2]
        labels[moved] = empty
        counts[donor] -= len(moved)
        counts[empty] = len(moved)
    return labels


def run_kmeans(
    x: np.ndarray | torch.Tensor,
    k: int,
    niter: int = 20,
    seed: int = 0,
    use_gpu: bool | None = None,
    stats: dict[str, int] | None = None,
) -> tuple[np.ndarray, float]:
    """faiss k-means on all rows (no subsampling); returns (int64 labels, final loss).

    Every one of the `k` clusters is non-empty on return (see `fill_empty_clusters`).
    `stats["empty_resplit"]` (when given) counts the empty clusters re-split: faiss's
    splits during the iterations plus the final fill.
    """
    data = np.ascontiguousarray(as_float_tensor(x).cpu().numpy(), dtype=np.float32)
    n, d = data.shape
    if not 1 <= k <= n:
        raise UserError(f"k-means needs 1 <= k <= number of samples ({n}), got k={k}")
    _require_faiss()
    clus = faiss.Clustering(d, k)
    clus.niter = niter
    clus.seed = int(seed) % (2**31 - 1)
    clus.max_points_per_centroid = 10_000_000
    clus.min_points_per_centroid = 1
    index = flat_l2_index(d, use_gpu)
    clus.train(data, index)
    _, assign = index.search(data, 1)
    iters = clus.iteration_stats
    loss = float(iters.at(iters.size() - 1).obj) if iters.size() else 0.0
    count_resplit(stats, sum(int(iters.at(i).nsplit) for i in range(iters.size())))
    labels = fill_empty_clusters(assign[:, 0], k, seed=seed, stats=stats)
    return labels, loss


def count_resplit(stats: dict[str, int] | None, n: int) -> None:
    """Add `n` empty clusters re-split to `stats["empty_resplit"]` (no-op without stats)."""
    if stats is not None:
        stats["empty_resplit"] = stats.get("empty_resplit", 0) + int(n)


def derived_seed(*parts: int) -> int:
    """A 31-bit seed derived deterministically from integers (e.g. run seed, epoch, purpose)."""
    value = np.random.SeedSequence([int(p) for p in parts]).generate_state(1)[0]
    return int(value) % (2**31 - 1)


__all__ = [
    "Whitening",
    "column_mean",
    "covariance",
    "derived_seed",
    "faiss_available",
    "fill_empty_clusters",
    "fit_whitening",
    "flat_l2_index",
    "gpu_available",
    "l2_normalize",
    "top_eigenpairs",
    "pca_whiten",
    "run_kmeans",
    "scatter_matrix",
    "whitening_from_moments",
]
