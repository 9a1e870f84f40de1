"""Per-item outcomes of the VOC07 SVM protocols: the test images' SVM scores per class.

The test mAP of `voc07-svm` (and each low-shot sample's of `voc07-lowshot-svm`) is the mean
over classes of the VOC all-point interpolated AP (`core.voc_ap`) of the SVM scores
`w.x + b` on the decodable VOC2007 test images, "difficult" left out. The scores (float64,
as the AP saw them) and the labels (1 positive, 0 negative, -1 difficult = ignored) are a
`multilabel-voc` entry, keyed by the fingerprint of the scored images' files and labels.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from dcbench.core.outcomes import ItemOutcomes
from dcbench.protocols.probe.feature_cache import dataset_fingerprint
from dcbench.protocols.svm.core import ClassFit


def class_scores(fits: Mapping[int, ClassFit], features: np.ndarray) -> np.ndarray:
    """(N, C) SVM scores of every class on (N, D) features, classes in index order."""
    return np.stack([fits[c].decision(features) for c in range(len(fits))], axis=1)


def svm_outcomes(layer: str, paths: Sequence[str], labels: np.ndarray, scores: np.ndarray,
                 *, metric: str = "map", seed: int | None = None) -> ItemOutcomes:
    """The `multilabel-voc` entry behind one test mAP: VOC labels {1, -1, 0 = difficult}
    stored as 1 positive, 0 negative, -1 ignored."""
    labels = np.asarray(labels)
    targets = np.where(labels == 1, 1, np.where(labels == 0, -1, 0)).astype(np.int8)
    listing = dataset_fingerprint(list(paths), ["".join(f"{int(v):+d}" for v in row)
                                              for row in labels])
    return ItemOutcomes("test", layer, metric, "multilabel-voc", listing,
                        {"scores": np.asarray(scores, np.float64), "targets": targets}, seed)
