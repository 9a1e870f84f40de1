"""Low-shot draws for the VOC07 SVM (FSSB `create_voc_low_shot_samples.py` / VISSL).

For each class c and each k: k images with c present (label 1) as positives and
(C - 1) * k images without c (label -1; "difficult" images are never drawn) as negatives,
without replacement; every other image is left out of that class's SVM. `samples`
independent draws (5 published). Draws are kept by image id in a JSON file so they can be
reused across models and runs (the fixed, published-indices practice).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from dcbench.core.errors import UserError
from dcbench.core.files import write_json

FORMAT_VERSION = 1
# samples[s][k][class_name] = {"pos": [ids], "neg": [ids]}
Draws = list[dict[int, dict[str, dict[str, list[str]]]]]


def feasible_shots(labels: np.ndarray, shots: Sequence[int]) -> list[int]:
    """The k of `shots` every class can fill: k positives and (classes - 1) x k negatives
    among `labels` ((N, classes) in {1, -1, 0 = difficult})."""
    labels = np.asarray(labels)
    n_classes = labels.shape[1]
    positives, negatives = (labels == 1).sum(0), (labels == -1).sum(0)
    return [int(k) for k in shots if k >= 1 and (positives >= k).all()
            and (negatives >= (n_classes - 1) * k).all()]


def draw_lowshot(labels: np.ndarray, ids: Sequence[str], classes: Sequence[str],
                 shots: Sequence[int], samples: int, seed: int) -> tuple[Draws, list[int]]:
    """Seeded draws; returns (draws, skipped k values that some class cannot fill)."""
    labels = np.asarray(labels)
    n_classes = len(classes)
    feasible = feasible_shots(labels, shots)
    skipped = [int(k) for k in shots if int(k) not in feasible]
    draws: Draws = []
    for s in range(samples):
        per_k: dict[int, dict[str, dict[str, list[str]]]] = {}
        for k in feasible:
            rng = np.random.default_rng([seed, s, k])
            per_class = {}
            for c, name in enumerate(classes):
                pos = rng.choice(np.flatnonzero(labels[:, c] == 1), k, replace=False)
                neg = rng.choice(np.flatnonzero(labels[:, c] == -1), (n_classes - 1) * k,
                                 replace=False)
                per_class[name] = {"pos": [ids[i] for i in sorted(pos)],
                                   "neg": [ids[i] for i in sorted(neg)]}
            per_k[k] = per_class
        draws.append(per_k)
    return draws, skipped


def draw_targets(draw: dict[str, dict[str, list[str]]], ids: Sequence[str],
                 classes: Sequence[str]) -> np.ndarray:
    """(N, C) SVM targets of one (sample, k): +1 drawn positive, -1 drawn negative, 0 left out.

    A drawn id missing from `ids` (an image that failed to decode) is a UserError.
    """
    row = {image_id: i for i, image_id in enumerate(ids)}
    targets = np.zeros((len(ids), len(classes)), dtype=np.int8)
    for c, name in enumerate(classes):
        for sign, key in ((1, "pos"), (-1, "neg")):
            missing = [i for i in draw[name][key] if i not in row]
            if missing:
                raise UserError(f"low-shot draw names images that are not available: "
                                f"{', '.join(missing[:5])}")
            targets[[row[i] for i in draw[name][key]], c] = sign
    return targets


def save_draws(path: Path, draws: Draws, classes: Sequence[str], seed: int) -> None:
    """Write the draws (by image id) for reuse."""
    write_json(path, {"format": FORMAT_VERSION, "seed": seed, "classes": list(classes),
                      "samples": [{str(k): v for k, v in d.items()} for d in draws]})


def _id_list(value: object) -> bool:
    return isinstance(value, list) and all(isinstance(i, str) for i in value)


def _draw(sample: object, classes: Sequence[str]) -> dict[int, dict[str, dict[str, list[str]]]]:
    """One sample {k: {class: {"pos": [ids], "neg": [ids]}}} checked, keys as ints (>= 1)."""
    if not isinstance(sample, dict):
        raise ValueError("a sample is not a mapping of k -> classes")
    out = {}
    for key, per_class in sample.items():
        k = int(key)
        if k < 1 or not isinstance(per_class, dict) or set(per_class) != set(classes):
            raise ValueError(f"k={key!r} does not map every class to its draw")
        for name, draw in per_class.items():
            if not (isinstance(draw, dict) and set(draw) == {"pos", "neg"}
                    and _id_list(draw["pos"]) and _id_list(draw["neg"])):
                raise ValueError(f"k={key} class {name}: expected {{'pos': [ids], 'neg': [ids]}}")
        out[k] = per_class
    return out


def load_draws(path: Path, classes: Sequence[str]) -> Draws:
    """Read draws saved by `save_draws` (classes must match; every entry's shape checked)."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as err:
        reason = "nested too deeply" if isinstance(err, RecursionError) else err
        raise UserError(f"{path} is not a readable low-shot draws file: {reason}") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT_VERSION \
            or data.get("classes") != list(classes):
        raise UserError(f"{path} holds low-shot draws for other classes or another format")
    samples = data.get("samples")
    if not isinstance(samples, list) or not samples:
        raise UserError(f"{path} is not a low-shot draws file: 'samples' is not a non-empty list")
    try:
        return [_draw(sample, classes) for sample in samples]
    except (ValueError, TypeError, OverflowError) as err:
        raise UserError(f"{path} is not a low-shot draws file: {err}") from None
