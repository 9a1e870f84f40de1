"""nmi: the k-means-vs-labels core against sklearn and a hand-written NMI (both averages)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

from dcbench.clustering.kmeans import pca_whiten
from dcbench.clustering.preprocess import preprocess_features, whitening_dim
from dcbench.core.errors import UserError
from dcbench.protocols import get_protocol
from dcbench.protocols.nmi import nmi_core, partition_metrics


def test_nmi_on_planted_blobs_against_sklearn():
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(5), 40)
    centers = rng.normal(size=(5, 10)) * 20
    x = (centers[labels] + rng.normal(size=(200, 10))).astype(np.float32)
    got = nmi_core(x, labels, k=5, seed=0)
    assert got["nmi"] > 0.99 and got["ari"] > 0.99
    assert got["cluster_size_min"] == got["cluster_size_max"] == 40
    noise = rng.normal(size=(200, 10)).astype(np.float32)
    assert nmi_core(noise, labels, k=5)["nmi"] < 0.2


def test_partition_metrics_are_sklearns():
    rng = np.random.default_rng(1)
    a, b = rng.integers(0, 4, 100), rng.integers(0, 3, 100)
    got = partition_metrics(a, b, 4)
    assert math.isclose(got["nmi"], normalized_mutual_info_score(b, a))
    assert math.isclose(got["ari"], adjusted_rand_score(b, a))
    sizes = np.bincount(a, minlength=4)
    assert math.isclose(got["cluster_size_cv"], sizes.std() / sizes.mean())


def test_whitening_keeps_a_quarter_of_the_dims_at_most():
    """Whitening every direction of a 256-d feature turns noise into signal; capped at d/4."""
    assert whitening_dim(256, 10_000, 4096) == 256  # the official 4096 -> 256 unchanged
    assert whitening_dim(256, 10_000, 256) == 64
    assert whitening_dim(256, 30, 4096) == 29
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(8), 100)
    signal = rng.normal(size=(8, 32))[labels] * 2 + rng.normal(size=(800, 32))
    x = np.concatenate([signal, rng.normal(size=(800, 224))], axis=1)
    x = x @ rng.normal(size=(256, 256))
    capped = preprocess_features(x, "pca-whiten", 256)
    assert capped.shape == (800, 64)
    everything = pca_whiten(x, dim=255)
    nmi_capped = nmi_core(capped, labels, 8)["nmi"]
    nmi_everything = nmi_core(everything, labels, 8)["nmi"]
    assert nmi_capped > 0.8 and nmi_everything < 0.3


def _reference_nmi(a: np.ndarray, b: np.ndarray, average: str) -> float:
    """NMI written from its definition: I(A;B) / mean(H(A), H(B)) (natural logs)."""
    n = a.size
    joint = {}
    for x, y in zip(a.tolist(), b.tolist(), strict=True):
        joint[(x, y)] = joint.get((x, y), 0) + 1
    pa = {x: np.mean(a == x) for x in set(a.tolist())}
    pb = {y: np.mean(b == y) for y in set(b.tolist())}
    mi = sum(c / n * math.log((c / n) / (pa[x] * pb[y])) for (x, y), c in joint.items())
    ha = -sum(p * math.log(p) for p in pa.values())
    hb = -sum(p * math.log(p) for p in pb.values())
    norm = (ha + hb) / 2 if average == "arithmetic" else math.sqrt(ha * hb)
    return mi / norm


def test_nmi_average_switch_matches_the_definition():
    """geometric = sklearn < 0.22's default, what the 2018 code computed (issue 11 item 8)."""
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 5, 300)
    clusters = np.where(rng.random(300) < 0.6, labels * 2 % 7, rng.integers(0, 7, 300))
    arith = partition_metrics(clusters, labels, 7)["nmi"]
    geo = partition_metrics(clusters, labels, 7, "geometric")["nmi"]
    assert math.isclose(arith, _reference_nmi(clusters, labels, "arithmetic"), rel_tol=1e-9)
    assert math.isclose(geo, _reference_nmi(clusters, labels, "geometric"), rel_tol=1e-9)
    assert geo != arith  # the entropies differ (7 vs 5 groups), so the averages do
    with pytest.raises(UserError):
        partition_metrics(clusters, labels, 7, "max")


def test_faithful_and_fig2a_dialects():
    proto = get_protocol("nmi")
    assert proto.resolve_config().nmi_average == "arithmetic"
    assert proto.resolve_config(dialect="faithful-2018").nmi_average == "geometric"
    fig2a = proto.resolve_config(dialect="eccv-fig2a")
    assert (fig2a.k, fig2a.split, fig2a.nmi_average) == (10000, "train", "geometric")


def test_k_other_than_the_number_of_classes():
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(3), 30)
    x = (rng.normal(size=(3, 8))[labels] * 10 + rng.normal(size=(90, 8))).astype(np.float32)
    got = nmi_core(x, labels, k=9, seed=0)
    assert got["cluster_size_max"] <= 30 and 0.5 < got["nmi"] < 1.0
