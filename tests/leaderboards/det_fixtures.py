"""Small VOC-like detection sets with real boxes (for the detection-record tests)."""

from __future__ import annotations

import numpy as np

Image = dict[str, np.ndarray]


def jitter(box: np.ndarray, rng: np.random.Generator, scale: float) -> np.ndarray:
    """A box near `box` (VOC corners), each corner moved by up to `scale` of the size."""
    w, h = box[2] - box[0] + 1, box[3] - box[1] + 1
    out = box + rng.uniform(-scale, scale, 4) * np.array([w, h, w, h])
    out[2:] = np.maximum(out[2:], out[:2] + 1)
    return out


def truth_set(n_images: int, n_classes: int, seed: int) -> list[Image]:
    """Ground truth per image: 0-4 objects of random classes, 20% difficult."""
    rng = np.random.default_rng(seed)
    truth = []
    for _ in range(n_images):
        m = int(rng.integers(0, 5))
        xy = rng.uniform(1, 200, (m, 2))
        truth.append({"boxes": np.concatenate([xy, xy + rng.uniform(20, 120, (m, 2))], 1),
                      "labels": rng.integers(0, n_classes, m),
                      "difficult": rng.random(m) < 0.2})
    return truth


def detections_for(truth: list[Image], n_classes: int, seed: int, *, score_grid: int = 0,
                   hit: float = 0.85) -> list[Image]:
    """A detector's output per image: near-hits for most objects (some duplicated, some too
    loose, a `1 - hit` share with a wrong class), plus background false positives. Scores
    are continuous or (`score_grid` > 0) drawn without replacement from `score_grid` levels
    per image and class: ties across images, never two tied same-class detections in one
    image."""
    rng = np.random.default_rng(seed)
    detections = []
    for gt in truth:
        boxes, labels = [], []
        for box, label in zip(gt["boxes"], gt["labels"], strict=True):
            for _ in range(int(rng.choice([0, 1, 1, 2]))):  # missed, found, duplicated
                boxes.append(jitter(box, rng, float(rng.choice([0.05, 0.3]))))
                labels.append(label if rng.random() < hit else rng.integers(n_classes))
        for _ in range(int(rng.integers(0, 4))):  # background
            xy = rng.uniform(1, 250, 2)
            boxes.append(np.concatenate([xy, xy + rng.uniform(10, 80, 2)]))
            labels.append(rng.integers(n_classes))
        label_array = np.asarray(labels, np.int64).reshape(-1)
        scores = rng.random(len(boxes))
        if score_grid:
            for c in np.unique(label_array):
                mine = label_array == c
                scores[mine] = rng.choice(score_grid, int(mine.sum()), replace=False) / score_grid
        detections.append({"boxes": np.asarray(boxes, np.float64).reshape(-1, 4),
                           "labels": label_array, "scores": scores})
    return detections


def duplicated(images: list[Image], weights: np.ndarray) -> list[Image]:
    """The set with image i present weights[i] times, copies next to each other."""
    return [image for image, w in zip(images, weights, strict=True) for _ in range(int(w))]
