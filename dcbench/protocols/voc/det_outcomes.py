"""The per-detection records behind a VOC detection mAP (`core.outcomes` kind `detection`).

Matching a detection (greedy by score, against its own image's boxes) involves one image
only, so once the devkit has labelled every ranked detection TP / FP / ignored, the mAP is
a function of (image, class, rank, TP) records and each image's per-class count of
non-difficult boxes; resampling images re-weights the records without re-matching
(`leaderboards.paired_det`). Records keep the evaluation's ranking (class by class, the
order `score_order` gave), so ties are ordered exactly as in the reported number.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from dcbench.core.outcomes import ItemOutcomes
from dcbench.protocols.voc.metrics import ClassRanking


def detection_arrays(rankings: Sequence[ClassRanking],
                     ground_truth: Sequence[Mapping[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """The `detection` outcome arrays: `npos` (N, C) and the counted records (a hit on a
    difficult box is neither TP nor FP, so the devkit ignores it and it is left out)."""
    n_classes = len(rankings)
    npos = np.zeros((len(ground_truth), n_classes), np.int32)
    for i, gt in enumerate(ground_truth):
        labels = np.asarray(gt["labels"], np.int64).reshape(-1)
        counted = labels[~np.asarray(gt["difficult"], bool).reshape(-1)]
        npos[i] = np.bincount(counted, minlength=n_classes)[:n_classes]
    images, classes, scores, tps = [], [], [], []
    for c, ranked in enumerate(rankings):
        counted = (np.asarray(ranked.tp) + np.asarray(ranked.fp)) > 0
        images.append(np.asarray(ranked.images, np.int32)[counted])
        classes.append(np.full(int(counted.sum()), c, np.int16))
        scores.append(np.asarray(ranked.scores, np.float32)[counted])
        tps.append(np.asarray(ranked.tp)[counted].astype(np.int8))

    def joined(parts: list[np.ndarray], dtype: type) -> np.ndarray:
        return np.concatenate(parts).astype(dtype) if parts else np.zeros(0, dtype)

    return {"npos": npos, "det_image": joined(images, np.int32),
            "det_class": joined(classes, np.int16), "det_score": joined(scores, np.float32),
            "det_tp": joined(tps, np.int8)}


def detection_outcomes(split: str, layer: str, listing: str, rankings: Sequence[ClassRanking],
                       ground_truth: Sequence[Mapping[str, np.ndarray]], *, ap_method: str,
                       ap_thresholds: str, seed: int | None = None) -> ItemOutcomes:
    """The `map` entry of a detection run: its records plus the AP rule that made `map`."""
    return ItemOutcomes(split, layer, "map", "detection", listing,
                        detection_arrays(rankings, ground_truth), seed,
                        {"ap_method": ap_method, "ap_thresholds": ap_thresholds})
