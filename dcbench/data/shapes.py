"""Procedural shapes and textures as boolean masks on a pixel grid (numpy only).

The synthetic datasets define classes by *shape or texture*, never by colour: colours are
drawn at random per image, so a model must use edges (hence the Sobel layer matters), as
on natural images. All masks are computed in the object's own rotated frame (u, v).
"""

from __future__ import annotations

import numpy as np

CLS_SHAPES: tuple[str, ...] = (
    "circle",
    "ring",
    "square",
    "frame",
    "triangle",
    "cross",
    "vstripes",
    "hstripes",
    "checker",
)
OBJ_SHAPES: tuple[str, ...] = ("ellipse", "box", "triangle", "cross")
OBJ_TEXTURES: tuple[str, ...] = ("solid", "hstripes", "vstripes", "checker", "dots")


def frame_coords(
    height: int, width: int, cx: float, cy: float, angle: float
) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates rotated by `angle` (radians) about (cx, cy)."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float64) + 0.5
    dx, dy = x - cx, y - cy
    c, s = np.cos(angle), np.sin(angle)
    return c * dx + s * dy, -s * dx + c * dy


def _triangle(u: np.ndarray, v: np.ndarray, r: float, ry: float | None = None) -> np.ndarray:
    """Equilateral triangle (apex up) of circumradius r; `ry` stretches it vertically."""
    v = v * (r / ry) if ry else v
    inside = np.ones(u.shape, dtype=bool)
    for theta in np.deg2rad([90.0, 210.0, 330.0]):
        inside &= u * np.cos(theta) + v * np.sin(theta) < r / 2
    return inside


def cls_shape_mask(kind: str, u: np.ndarray, v: np.ndarray, r: float, period: float) -> np.ndarray:
    """Mask of a classification-set shape of radius `r` in frame coordinates (u, v)."""
    box = (np.abs(u) < r * 0.8) & (np.abs(v) < r * 0.8)
    if kind == "circle":
        return u**2 + v**2 < r**2
    if kind == "ring":
        d2 = u**2 + v**2
        return (d2 < r**2) & (d2 > (0.62 * r) ** 2)
    if kind == "square":
        return box
    if kind == "frame":
        return box & ~((np.abs(u) < r * 0.5) & (np.abs(v) < r * 0.5))
    if kind == "triangle":
        return _triangle(u, v, r)
    if kind == "cross":
        return ((np.abs(u) < r) & (np.abs(v) < 0.3 * r)) | ((np.abs(v) < r) & (np.abs(u) < 0.3 * r))
    if kind == "vstripes":
        return box & (np.floor(u / period) % 2 == 0)
    if kind == "hstripes":
        return box & (np.floor(v / period) % 2 == 0)
    if kind == "checker":
        return box & ((np.floor(u / period) + np.floor(v / period)) % 2 == 0)
    raise ValueError(f"unknown shape {kind!r}")


def obj_shape_mask(kind: str, u: np.ndarray, v: np.ndarray, rx: float, ry: float) -> np.ndarray:
    """Mask of a VOC-set object outline with half-extents (rx, ry)."""
    if kind == "ellipse":
        return (u / rx) ** 2 + (v / ry) ** 2 < 1.0
    if kind == "box":
        return (np.abs(u) < rx) & (np.abs(v) < ry)
    if kind == "triangle":
        return _triangle(u, v * 1.0, rx * 1.15, ry * 1.15)
    if kind == "cross":
        return ((np.abs(u) < rx) & (np.abs(v) < 0.32 * ry)) | (
            (np.abs(v) < ry) & (np.abs(u) < 0.32 * rx)
        )
    raise ValueError(f"unknown object shape {kind!r}")


def texture_mask(kind: str, u: np.ndarray, v: np.ndarray, period: float) -> np.ndarray:
    """Where the second colour of a two-colour texture goes (all False for `solid`)."""
    if kind == "solid":
        return np.zeros(u.shape, dtype=bool)
    if kind == "hstripes":
        return np.floor(v / period) % 2 == 0
    if kind == "vstripes":
        return np.floor(u / period) % 2 == 0
    if kind == "checker":
        return (np.floor(u / period) + np.floor(v / period)) % 2 == 0
    if kind == "dots":
        du = np.mod(u, period) - period / 2
        dv = np.mod(v, period) - period / 2
        return du**2 + dv**2 < (period * 0.3) ** 2
    raise ValueError(f"unknown texture {kind!r}")


def contrasting_colours(
    rng: np.random.Generator, n: int = 2, min_gap: float = 70.0
) -> list[np.ndarray]:
    """`n` random RGB colours whose luminances differ pairwise by at least `min_gap`."""
    weights = np.array([0.299, 0.587, 0.114])
    while True:
        colours = [rng.integers(0, 256, size=3).astype(np.float64) for _ in range(n)]
        lum = [float(c @ weights) for c in colours]
        if all(abs(a - b) >= min_gap for i, a in enumerate(lum) for b in lum[i + 1 :]):
            return colours


def downsample(mask: np.ndarray, factor: int) -> np.ndarray:
    """Box-average a supersampled boolean mask into float coverage (anti-aliasing)."""
    h, w = mask.shape
    return mask.reshape(h // factor, factor, w // factor, factor).mean(axis=(1, 3))


def composite(background: np.ndarray, colour: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Alpha-blend a flat colour over a float RGB image."""
    return background * (1.0 - alpha[..., None]) + colour[None, None, :] * alpha[..., None]


def finish(img: np.ndarray, rng: np.random.Generator, noise_std: float) -> np.ndarray:
    """Add Gaussian pixel noise and quantise to uint8."""
    noisy = img + rng.normal(0.0, noise_std, size=img.shape)
    return np.clip(np.rint(noisy), 0, 255).astype(np.uint8)
