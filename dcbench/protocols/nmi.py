"""`nmi`: how well k-means clusters of a model's features agree with the labels (ECCV Fig. 2).

Features of one split (default: the clustering tap on val), preprocessed as DeepCluster does
(PCA-whiten to 256 dims + L2; `preprocess` can be none/l2), clustered with the training code's
faiss k-means (`dcbench.clustering.kmeans.run_kmeans`, empty clusters refilled as in
DeepCluster) with k = number of classes unless set (`k=10000` on `split=train` is ECCV Figure
2a's measurement: the training clustering's k against the labels). Reported: NMI and ARI
against the labels (scikit-learn) and cluster-size statistics (smallest, largest,
coefficient of variation).

`nmi_average` normalises the mutual information by the `arithmetic` mean of the two
entropies (scikit-learn's default since 0.22, our default) or their `geometric` mean (the
pre-0.22 default, i.e. what the 2018 code computed). Dialects: `faithful-2018` = geometric;
`eccv-fig2a` = geometric, k = 10000 on the training split.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

from dcbench.clustering.kmeans import run_kmeans
from dcbench.clustering.preprocess import preprocess_features
from dcbench.core.bounds import MAX_COUNT, bounded
from dcbench.core.errors import UserError
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
from dcbench.protocols.probe.frozen_features import frozen_features

if TYPE_CHECKING:
    from dcbench.models.backbone import Backbone


@dataclasses.dataclass
class NMIConfig(ProtocolConfig):
    """`k` = 0 means the number of classes; `layers` empty = the model's clustering tap."""

    layers: list[str] = dataclasses.field(default_factory=list)
    k: int = bounded(0, ge=0, le=MAX_COUNT)
    niter: int = bounded(20, ge=1, le=100000)
    split: str = "val"
    preprocess: Literal["none", "l2", "pca-whiten"] = "pca-whiten"
    pca_dim: int = bounded(256, ge=1, le=MAX_COUNT)
    fast: bool = True
    batch_size: int = bounded(128, ge=1, le=MAX_COUNT)
    nmi_average: Literal["arithmetic", "geometric"] = "arithmetic"


def partition_size_stats(assignments: np.ndarray, k: int) -> dict[str, float]:
    """Smallest and largest cluster and the coefficient of variation of the k cluster sizes."""
    sizes = np.bincount(np.asarray(assignments), minlength=k).astype(np.float64)
    return {"cluster_size_min": float(sizes.min()), "cluster_size_max": float(sizes.max()),
            "cluster_size_cv": float(sizes.std() / max(sizes.mean(), 1e-12))}


def partition_metrics(assignments: np.ndarray, labels: np.ndarray, k: int,
                      nmi_average: str = "arithmetic") -> dict[str, float]:
    """NMI (`nmi_average` normalisation) and ARI of a partition against labels, plus its
    cluster-size statistics."""
    if nmi_average not in ("arithmetic", "geometric"):
        raise UserError(f"nmi_average must be arithmetic or geometric, got {nmi_average!r}")
    nmi = normalized_mutual_info_score(labels, assignments, average_method=nmi_average)
    return {"nmi": float(nmi), "ari": float(adjusted_rand_score(labels, assignments)),
            **partition_size_stats(assignments, k)}


def nmi_core(x: np.ndarray, labels: np.ndarray, k: int, niter: int = 20, seed: int = 0,
             nmi_average: str = "arithmetic") -> dict[str, float]:
    """Pure core: faiss k-means on `x` (already preprocessed), scored against `labels`."""
    assignments, _ = run_kmeans(np.ascontiguousarray(x, dtype=np.float32), k, niter=niter,
                                seed=seed, use_gpu=False)
    return partition_metrics(assignments, labels, k, nmi_average)


def _nmi_split(data_dir: str | Path, config: NMIConfig) -> tuple[Any, int]:
    """(the labelled split, k: the config's or the number of classes); refused: another
    split name, unlabelled images, fewer listed images than k."""
    if config.split not in ("train", "val", "test"):
        raise UserError(f"nmi split must be train, val or test, got {config.split!r}")
    dataset = find_dataset(data_dir, config.split)
    labels = dataset.targets
    if (labels < 0).any():
        raise UserError(f"{data_dir}/{config.split} has unlabelled images; nmi needs labels")
    k = config.k or int(labels.max()) + 1
    if k > len(dataset):
        raise UserError(f"nmi: k={k} clusters need at least as many images; "
                        f"{data_dir}/{config.split} has {len(dataset)}")
    return dataset, k


@register_protocol("nmi")
class NMI(Protocol):
    """k-means on frozen features vs labels: NMI, ARI, cluster sizes."""

    Config = NMIConfig
    summary = "k-means of the features vs labels: NMI, ARI, cluster sizes (ECCV Fig. 2)"
    DIALECTS: dict[str, dict[str, Any]] = {
        "dc2018": {},
        "faithful-2018": {"nmi_average": "geometric"},
        "eccv-fig2a": {"nmi_average": "geometric", "k": 10000, "split": "train"},
    }
    SCHEDULES: dict[str, dict[str, Any]] = {"published": {}, "smoke": {"batch_size": 64}}

    def check_data(self, data_dir: str | Path, config: NMIConfig) -> None:
        """The split, its labels, and at least k listed images."""
        _nmi_split(data_dir, config)

    def run(self, model: Backbone, data_dir: str | Path, config: NMIConfig, *, run_id: str,
            device: str, progress: bool, work_dir: Path | None) -> list[Result]:
        """Features of one split -> preprocess -> k-means -> NMI/ARI per layer."""
        dataset, k = _nmi_split(data_dir, config)
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
            metrics = nmi_core(x, feats[layer].labels.numpy(), k, config.niter, config.seed,
                               config.nmi_average)
            rows += results_from_metrics(info, metrics, split=config.split, layer=layer)
        return rows
