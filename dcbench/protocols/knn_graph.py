"""`knn-graph`: ratio edge intra-class of the 10-NN graph of a model's features (thesis 4.1).

For each class C: #{edges (i, j) with i, j in C} / #{edges (i, j) with i in C} in the directed
k-NN graph (Euclidean distance, self excluded, k = 10 in the thesis). Reported: the mean over
classes (`ratio_edge_intra_class`) and the value a random graph would have
(`ratio_edge_intra_class_random`, ~1/C). Per-class ratios go to `work_dir/knn_graph_<layer>.csv`.
Defaults: the model's clustering tap (fc7 pre-ReLU; `pool` for ResNet) on the val split.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from dcbench.clustering.diagnostics import ratio_edge_intra_class_per_class
from dcbench.clustering.preprocess import preprocess_features
from dcbench.core.bounds import MAX_COUNT, bounded
from dcbench.core.errors import UserError
from dcbench.core.files import write_text
from dcbench.data.folders import find_dataset
from dcbench.protocols.base import (
    Protocol,
    ProtocolConfig,
    Result,
    dataset_name,
    register_protocol,
    results_from_metrics,
    run_info,
)
from dcbench.protocols.metrics import random_graph_ratio
from dcbench.protocols.probe.frozen_features import frozen_features

if TYPE_CHECKING:
    from dcbench.models.backbone import Backbone


@dataclasses.dataclass
class KNNGraphConfig(ProtocolConfig):
    """`layers` empty = the model's clustering tap. `preprocess`: none (the thesis: raw
    descriptors), l2, or pca-whiten (DeepCluster's clustering input: PCA-whiten to
    `pca_dim`, then L2)."""

    layers: list[str] = dataclasses.field(default_factory=list)
    k: int = bounded(10, ge=1, le=MAX_COUNT)
    split: str = "val"
    preprocess: Literal["none", "l2", "pca-whiten"] = "none"
    pca_dim: int = bounded(256, ge=1, le=MAX_COUNT)
    fast: bool = True
    batch_size: int = bounded(128, ge=1, le=MAX_COUNT)


def knn_graph_metrics(x: np.ndarray, labels: np.ndarray, k: int = 10
                      ) -> tuple[dict[str, float], np.ndarray, np.ndarray]:
    """Pure core: (metrics, classes, per-class ratios) of the k-NN graph of `x`.

    The per-class ratio is the training diagnostics' function (one definition in dcbench).
    """
    per_class = ratio_edge_intra_class_per_class(x, labels, k)
    classes = np.array(sorted(per_class), dtype=np.int64)
    ratios = np.array([per_class[int(c)] for c in classes], dtype=np.float64)
    metrics = {"ratio_edge_intra_class": float(ratios.mean()),
               "ratio_edge_intra_class_random": random_graph_ratio(labels)}
    return metrics, classes, ratios


def _graph_split(data_dir: str | Path, config: KNNGraphConfig) -> Any:
    """The labelled split the graph is built on (refused: k < 1, another split name,
    unlabelled images, no more listed images than k; undecodable ones are found later)."""
    if config.k < 1:
        raise UserError("knn-graph needs k >= 1")
    if config.split not in ("train", "val", "test"):
        raise UserError(f"knn-graph split must be train, val or test, got {config.split!r}")
    dataset = find_dataset(data_dir, config.split)
    if (dataset.targets < 0).any():
        raise UserError(f"{data_dir}/{config.split} has unlabelled images; "
                        "knn-graph needs labels")
    if len(dataset) <= config.k:
        raise UserError(f"knn-graph with k={config.k} needs more than {config.k} images; "
                        f"{data_dir}/{config.split} has {len(dataset)} (choose a smaller k "
                        "or another split)")
    return dataset


@register_protocol("knn-graph")
class KNNGraph(Protocol):
    """Ratio edge intra-class of the 10-NN graph (thesis Section 4.1, Figures 4.1-4.10)."""

    Config = KNNGraphConfig
    summary = "ratio edge intra-class of the 10-NN graph vs a random graph (Section 4.1)"
    DIALECTS: dict[str, dict[str, Any]] = {"dc2018": {}}
    SCHEDULES: dict[str, dict[str, Any]] = {"published": {}, "smoke": {"batch_size": 64}}

    def check_data(self, data_dir: str | Path, config: KNNGraphConfig) -> None:
        """k, the split, its labels, and more listed images than k (the graph's nodes)."""
        _graph_split(data_dir, config)

    def run(self, model: Backbone, data_dir: str | Path, config: KNNGraphConfig, *,
            run_id: str, device: str, progress: bool, work_dir: Path | None) -> list[Result]:
        """Features of one split -> 10-NN graph -> per-class ratios and their mean."""
        dataset = _graph_split(data_dir, config)
        layers = list(config.layers) or [model.embedding_tap]
        model.check_layers(layers)
        feats = frozen_features(model, dataset, layers, use_cache=config.fast,
                                batch_size=config.batch_size, device=device, progress=progress,
                                pipeline=config.input_pipeline)
        info = run_info(model, self.name, config, run_id=run_id, device=device,
                        dataset=dataset_name(data_dir))
        rows: list[Result] = []
        for layer in layers:
            x = preprocess_features(feats[layer].features.numpy(), config.preprocess,
                                    config.pca_dim)
            metrics, classes, ratios = knn_graph_metrics(x, feats[layer].labels.numpy(),
                                                         config.k)
            rows += results_from_metrics(info, metrics, split=config.split, layer=layer)
            if work_dir is not None:
                names = getattr(dataset, "classes", None) or [str(c) for c in classes]
                lines = ["class,ratio_edge_intra_class"]
                lines += [f"{names[int(c)]},{r:.6f}" for c, r in zip(classes, ratios, strict=True)]
                write_text(work_dir / f"knn_graph_{layer}.csv", "\n".join(lines) + "\n")
        return rows
