"""PCA-whitening learned on region descriptors (the official `eval_retrieval.py` recipe).

Centre, eigendecompose X^T X, clamp eigenvalues below 1e-5 x the largest up to that floor,
keep the `dims` largest, scale by 1 / sqrt(eigenvalue). The overall scale of X^T X (not
divided by N) does not matter: every whitened vector is L2-normalised afterwards.
"""

from __future__ import annotations

import numpy as np
import torch

EPS_RATIO = 1e-5


def fit_whitening(x: np.ndarray, dims: int, eps_ratio: float = EPS_RATIO
                  ) -> tuple[np.ndarray, np.ndarray, float]:
    """(N, C) -> (mean (C,), projection (min(dims, C), C), kept energy fraction)."""
    x = np.asarray(x, dtype=np.float64)
    mean = x.mean(axis=0)
    centred = x - mean
    eigvals, eigvecs = np.linalg.eigh(centred.T @ centred)
    eigvals = np.maximum(eigvals, eigvals.max() * eps_ratio)
    order = np.argsort(eigvals)[::-1][: min(dims, x.shape[1])]
    kept = float(eigvals[order].sum() / eigvals.sum())
    projection = eigvecs[:, order].T / np.sqrt(eigvals[order])[:, None]
    return mean, projection, kept


def as_tensors(mean: np.ndarray, projection: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """float32 torch copies for `regions.aggregate`."""
    return (torch.from_numpy(np.asarray(mean, np.float32)),
            torch.from_numpy(np.asarray(projection, np.float32)))
