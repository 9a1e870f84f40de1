"""`knn`: weighted k-NN classification on L2-normalised frozen features (the cheap sanity probe).

Convention (Wu et al. 2018 "InstDisc", reused by DINO 2021): cosine similarity between a
test feature and every training feature, the k most similar vote for their class with weight
exp(sim / T). Defaults k=20, T=0.07 (DINO's reported setting); the `instdisc2018` preset uses
k=200 (InstDisc's). DeepCluster itself published no k-NN protocol, so the `dc2018` dialect
is simply the default. Features are the center-crop pooled taps shared with linear-conv's
`--fast` cache (`fast=true` reads/fills that cache; otherwise they are extracted fresh).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Any

import faiss
import numpy as np
import torch

from dcbench.core.bounds import MAX_COUNT, bounded
from dcbench.core.dist_eval import check_all, gather_objects
from dcbench.core.distributed import current, shard
from dcbench.core.errors import UserError
from dcbench.core.outcomes import correct_outcomes
from dcbench.protocols.base import (
    CONV_LAYERS,
    Protocol,
    ProtocolConfig,
    Result,
    register_protocol,
    results_from_metrics,
    run_info,
)
from dcbench.protocols.metrics import hits_accuracy, top_hits
from dcbench.protocols.probe.feature_cache import dataset_fingerprint
from dcbench.protocols.probe.frozen_features import frozen_features
from dcbench.protocols.probe.pooling import POOLING_TABLES
from dcbench.protocols.probe.splits import load_splits

if TYPE_CHECKING:
    from dcbench.models.backbone import Backbone


@dataclasses.dataclass
class KNNConfig(ProtocolConfig):
    """Weighted k-NN (InstDisc/DINO convention): `k` neighbours, vote weight exp(cos / T)."""

    layers: list[str] = bounded(default_factory=lambda: list(CONV_LAYERS), min_len=1)
    k: int = bounded(20, ge=1, le=MAX_COUNT)
    temperature: float = bounded(0.07, gt=0, le=100)
    pooling: str = bounded("dc2018", choices=POOLING_TABLES)
    fast: bool = True
    batch_size: int = bounded(128, ge=1, le=MAX_COUNT)
    eval_split: str = "val"


def l2_normalize(x: np.ndarray) -> np.ndarray:
    """Row-wise L2 normalisation (zero rows stay zero), float32."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, 1e-12)


def weighted_knn_scores(
    train: np.ndarray, train_labels: np.ndarray, test: np.ndarray, num_classes: int,
    k: int = 20, temperature: float = 0.07,
) -> np.ndarray:
    """Pure core: (N_test, C) class scores = sum over the k nearest (cosine) of exp(sim / T)."""
    if not 1 <= k <= train.shape[0]:  # never clipped: the config must record the k used
        raise ValueError(f"k must be in [1, {train.shape[0]}] (the training features), got {k}")
    train_n, test_n = l2_normalize(train), l2_normalize(test)
    index = faiss.IndexFlatIP(train_n.shape[1])
    index.add(train_n)
    sims, idx = index.search(test_n, k)
    weights = np.exp(sims.astype(np.float64) / temperature)
    scores = np.zeros((test.shape[0], num_classes), dtype=np.float64)
    np.add.at(scores, (np.arange(test.shape[0])[:, None], train_labels[idx]), weights)
    return scores


def knn_metrics(train: np.ndarray, train_labels: np.ndarray, test: np.ndarray,
                test_labels: np.ndarray, num_classes: int, k: int = 20,
                temperature: float = 0.07) -> dict[str, float]:
    """Top-1 (and top-5 when C > 5) of the weighted k-NN classifier, in percent."""
    return knn_metrics_and_items(train, train_labels, test, test_labels, num_classes, k,
                                 temperature)[0]


def knn_metrics_and_items(train: np.ndarray, train_labels: np.ndarray, test: np.ndarray,
                          test_labels: np.ndarray, num_classes: int, k: int = 20,
                          temperature: float = 0.07) -> tuple[dict[str, float], np.ndarray]:
    """`knn_metrics` and the per-test-item top-1 correctness (bool) behind `top1`."""
    metrics, hits = knn_metrics_and_hits(train, train_labels, test, test_labels, num_classes,
                                         k, temperature)
    return metrics, hits["top1"]


def knn_metrics_and_hits(train: np.ndarray, train_labels: np.ndarray, test: np.ndarray,
                         test_labels: np.ndarray, num_classes: int, k: int = 20,
                         temperature: float = 0.07
                         ) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    """`knn_metrics` and, per reported metric (`top1`, `top5`), the per-test-item hits.

    Under torchrun each rank scores a contiguous shard of the test rows (the neighbours of
    a row do not depend on the others) and the per-item hits are gathered in row order:
    every rank returns the whole, one process's numbers."""
    info = current()
    start, stop = shard(len(test), info)
    error, hits = None, torch.zeros(0, 0, dtype=torch.bool)
    try:
        scores = torch.from_numpy(weighted_knn_scores(
            train, train_labels, test[start:stop], num_classes, k, temperature))
        hits = top_hits(scores, torch.from_numpy(test_labels[start:stop]), 5)
    except Exception as err:  # agreed below: every rank stops with this message
        error = err
    check_all(error, info)
    if info.active:
        hits = torch.cat(gather_objects(hits, info))
    metrics = hits_accuracy(hits, num_classes)
    per_item = {"top1": hits[:, 0].numpy(), "top5": hits.any(dim=1).numpy()}
    return metrics, {name: per_item[name] for name in metrics}


def _check_k(k: int, n_train: int, which: str = "") -> None:
    """Refuse a k above the training set instead of silently using fewer neighbours."""
    if k > n_train:
        raise UserError(f"knn k={k} exceeds the {n_train} training images{which}; "
                        f"choose k <= {n_train}")


@register_protocol("knn")
class KNN(Protocol):
    """Weighted k-NN top-1 on center-crop pooled features of each requested tap."""

    Config = KNNConfig
    summary = "weighted k-NN on L2-normalised frozen features (InstDisc/DINO convention)"
    DIALECTS: dict[str, dict[str, Any]] = {"dc2018": {}, "instdisc2018": {"k": 200}}
    SCHEDULES: dict[str, dict[str, Any]] = {"published": {}, "smoke": {"batch_size": 64}}

    def check_data(self, data_dir: str | Path, config: KNNConfig) -> None:
        """k and the temperature, k against the training images listed."""
        if config.k < 1 or config.temperature <= 0:
            raise UserError("knn needs k >= 1 and temperature > 0")
        _check_k(config.k, len(load_splits(data_dir, config.eval_split).train))

    def run(self, model: Backbone, data_dir: str | Path, config: KNNConfig, *, run_id: str,
            device: str, progress: bool, work_dir: Path | None) -> list[Result]:
        """Extract (or read cached) features for train and val, classify val by its neighbours."""
        if config.k < 1 or config.temperature <= 0:
            raise UserError("knn needs k >= 1 and temperature > 0")
        model.check_layers(list(config.layers))
        splits = load_splits(data_dir, config.eval_split)
        _check_k(config.k, len(splits.train))
        common = dict(use_cache=config.fast, batch_size=config.batch_size, device=device,
                      progress=progress, pooling=config.pooling,
                      pipeline=config.input_pipeline)
        train = frozen_features(model, splits.train, config.layers, desc="train features",
                                **common)
        val = frozen_features(model, splits.val, config.layers, desc="val features", **common)
        info = run_info(model, self.name, config, run_id=run_id, device=device,
                        dataset=splits.name)
        rows: list[Result] = []
        listing = dataset_fingerprint(splits.val.paths, list(splits.val.targets))
        for layer in config.layers:
            _check_k(config.k, len(train[layer]), " that decoded")
            metrics, hits = knn_metrics_and_hits(
                train[layer].features.numpy(), train[layer].labels.numpy(),
                val[layer].features.numpy(), val[layer].labels.numpy(), splits.num_classes,
                config.k, config.temperature)
            rows += results_from_metrics(info, metrics, split="val", layer=layer)
            self.keep_outcomes([correct_outcomes("val", layer, metric, listing, correct)
                                for metric, correct in hits.items()])
        return rows
