"""What a DeepCluster run reports to TensorBoard / W&B each epoch (section `train`, step =
the 0-based epoch), under the tag names the README's "Watch a long run" table lists.

The values are the epoch's `log.jsonl` record (`deepcluster.py`), renamed to stable tags, plus
the rates derived from it, the cluster-size histogram and, every `image_every` epochs, the
images drawn by a callback the CLI passes in (viz is a sibling layer of training).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import numpy as np

from dcbench.core.tracking import Tracker

SECTION = "train"

#: tag -> key of the epoch record in log.jsonl
RECORD_TAGS = {
    "clustering/loss": "clustering_loss",
    "clustering/time_s": "clustering_s",
    "clustering/nmi_prev": "nmi_prev",
    "clustering/nmi_labels": "nmi_labels",
    "clustering/ratio_edge_intra_class": "ratio_edge_intra_class",
    "clustering/n_clusters": "n_clusters",
    "clustering/largest_share": "largest_share",
    "clustering/n_singletons": "n_singletons",
    "clustering/n_empty_resplit": "n_empty_resplit",
    "train/loss": "train_loss",
    "time/features_s": "features_s",
    "time/train_s": "train_s",
    "time/epoch_s": "epoch_s",
    "data/n_bad_images": "n_bad_images",
}


def epoch_scalars(record: dict[str, Any], lr: float) -> dict[str, float | None]:
    """The scalar tags of one epoch record (images/s of each pass derived from its times)."""
    values: dict[str, float | None] = {tag: record.get(key) for tag, key in RECORD_TAGS.items()}
    values["train/lr"] = lr
    features_s, train_s = record.get("features_s"), record.get("train_s")
    values["speed/features_img_s"] = (record["n_images"] / features_s
                                      if features_s and record.get("n_images") else None)
    values["speed/train_img_s"] = (record["n_draws"] / train_s
                                   if train_s and record.get("n_draws") else None)
    return values


def cluster_sizes(labels: np.ndarray) -> np.ndarray:
    """The size of every non-empty cluster (unassigned images, label -1, not counted)."""
    labels = np.asarray(labels).reshape(-1)
    sizes = np.bincount(labels[labels >= 0]) if (labels >= 0).any() else np.zeros(0, np.int64)
    return sizes[sizes > 0]


ImageFn = Callable[[Any, np.ndarray, int], dict[str, np.ndarray]]


def report_epoch(tracker: Tracker, record: dict[str, Any], labels: np.ndarray, *, lr: float,
                 model: Any = None, images: ImageFn | None = None, image_every: int = 0) -> None:
    """Report one finished epoch: scalars, the cluster-size histogram and, on epochs that
    are due (every `image_every`, counting the first), `images(model, labels, epoch)`."""
    epoch = int(record["epoch"])
    tracker.scalars(SECTION, epoch, epoch_scalars(record, lr))
    tracker.histogram(SECTION, epoch, "clustering/cluster_sizes", cluster_sizes(labels))
    if images is None or image_every <= 0 or epoch % image_every:
        return
    try:
        drawn = images(model, labels, epoch)
    except (OSError, ValueError, RuntimeError) as err:  # a picture never stops the training
        print(f"dcbench: images of epoch {epoch} not drawn: {err}", file=sys.stderr)
        return
    for tag, image in drawn.items():
        tracker.image(SECTION, epoch, tag, image)
