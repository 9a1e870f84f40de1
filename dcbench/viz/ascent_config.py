"""Gradient-ascent settings (`AscentConfig`), apart from the torch code of `viz.ascent` so that
the `viz` argument parser can show their defaults without importing torch."""

from __future__ import annotations

from dataclasses import dataclass

from dcbench.core.bounds import MAX_COUNT, MAX_IMAGE_SIDE, MAX_SEED, bounded
from dcbench.core.config import check_bounds

OBJECTIVES = ("ce", "mean")


@dataclass
class AscentConfig:
    """Gradient-ascent settings; the defaults give smooth, recognisable patterns."""

    iters: int = bounded(300, ge=1, le=MAX_COUNT)
    lr: float = bounded(0.05, gt=0, le=1e3)  # RMS step per (normalised) input value
    weight_decay: float = bounded(1e-4, ge=0, le=1e6)  # L2 penalty on the normalised input
    sigma: float = bounded(1.0, ge=0, le=100)  # Gaussian blur sigma in pixels (0 = no blur)
    blur_every: int = bounded(5, ge=1, le=MAX_COUNT)  # blur every this many steps (thesis: 5)
    objective: str = bounded("ce", choices=OBJECTIVES)
    noise_std: float = bounded(0.08, ge=0, le=10)  # initial noise, [0, 1] pixel units (20/255)
    size: int | None = bounded(None, ge=16, le=MAX_IMAGE_SIDE)  # input side; None: native
    seed: int = bounded(0, ge=0, le=MAX_SEED)

    def validate(self) -> None:
        """Refuse settings that cannot work (NaN, negative, out of range), naming the key."""
        check_bounds(self)
