"""PCA-whitening: whitened training data has identity scatter; clamping keeps it finite."""

from __future__ import annotations

import numpy as np

from dcbench.protocols.rmac.whitening import fit_whitening


def test_whitening_whitens_and_clamps():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 6)) @ rng.normal(size=(6, 6))
    mean, projection, kept = fit_whitening(x, 4)
    z = (x - mean) @ projection.T
    assert np.allclose(z.T @ z, np.eye(4), atol=1e-8) and 0 < kept <= 1
    flat = np.concatenate([x, np.zeros((400, 2))], axis=1)  # rank-deficient: clamped, finite
    _, proj, _ = fit_whitening(flat, 8)
    assert proj.shape == (8, 8) and np.isfinite(proj).all()


def test_clamp_floor_is_relative_to_the_largest_eigenvalue():
    x = np.zeros((50, 3))
    x[:, 0] = np.random.default_rng(0).normal(size=50) * 10
    _, projection, _ = fit_whitening(x, 3, eps_ratio=1e-5)
    centred = x - x.mean(0)
    top = np.linalg.eigvalsh(centred.T @ centred).max()
    # the two null directions are scaled by 1 / sqrt(1e-5 * top), not blown up to infinity
    norms = np.sort(np.linalg.norm(projection, axis=1))
    assert np.allclose(norms[1:], 1 / np.sqrt(1e-5 * top))
