"""Range checks on protocol configs, run by `dcbench eval` before anything is written.

Each protocol validates its own semantics; these are the generic ranges every protocol
shares by key name (a batch of 0, a negative learning rate, a fraction above 1), so that
`--set batch_size=0` is one line and exit 2 rather than a DataLoader traceback after the
run folder was made.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from dcbench.core.errors import UserError

POSITIVE_INTS = {"batch_size", "eval_batch_size", "epochs", "iterations", "draws", "niter",
                 "eval_every", "eval_passes", "checkpoint_every", "stepsize", "stepsize_all",
                 "stepsize_fc6_8", "pca_dim", "test_scale", "train_max_size", "test_max_size",
                 "box_batch_size_per_image", "crop_size"}
NON_NEGATIVE_INTS = {"workers", "seed", "k"}  # k=0: "as many as classes" (nmi)
POSITIVE_FLOATS = {"temperature", "lr", "lr_all", "lr_fc6_8"}
NON_NEGATIVE_FLOATS = {"momentum", "weight_decay", "clip_grad_norm", "gamma", "lr_gamma"}
FRACTIONS = {"heldout_fraction", "iou_threshold", "box_nms_thresh"}  # in [0, 1)
POSITIVE_LISTS = {"lrs", "shots", "milestones", "train_scales", "anchor_sizes"}
NON_NEGATIVE_LISTS = {"weight_decays"}
MAX_INT = 2**31 - 1  # above this a size or count is a typo (and overflows torch/faiss)


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _bad(key: str, value: Any) -> str | None:
    if value is None:
        return None
    if key in POSITIVE_INTS and not (_number(value) and 1 <= value <= MAX_INT):
        return f"must be an integer in [1, {MAX_INT}]"
    if key in NON_NEGATIVE_INTS and not (_number(value) and 0 <= value <= 2**63 - 1):
        return "must be an integer >= 0"
    if key in POSITIVE_FLOATS and not (_number(value) and value > 0):
        return "must be a number > 0"
    if key in NON_NEGATIVE_FLOATS and not (_number(value) and value >= 0):
        return "must be a number >= 0"
    if key in FRACTIONS and not (_number(value) and 0 <= value < 1):
        return "must be a number in [0, 1)"
    if key in POSITIVE_LISTS and not all(_number(v) and 0 < v <= MAX_INT for v in value):
        return "must hold numbers > 0"
    if key in NON_NEGATIVE_LISTS and not all(_number(v) and v >= 0 for v in value):
        return "must hold numbers >= 0"
    return None


def check_protocol_config(config: Any, protocol: str) -> None:
    """Refuse (one line, naming the key) a protocol config value outside its generic range."""
    for field in dataclasses.fields(config):
        problem = _bad(field.name, getattr(config, field.name))
        if problem:
            raise UserError(f"{protocol}: config key '{field.name}' {problem}, "
                            f"got {getattr(config, field.name)!r:.60}")
