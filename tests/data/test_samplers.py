"""Uniform-over-clusters sampling: uniform, positions agree with labels, distributed split."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import chisquare
from torch.utils.data import Dataset, RandomSampler

from dcbench.data.folders import make_loader
from dcbench.data.samplers import (
    DistributedUniformLabelSampler,
    GlobalBatchSlices,
    UniformLabelSampler,
    official_2018_draw,
)


def _unbalanced_labels() -> np.ndarray:
    """Cluster 0 huge, 2 and 7 tiny, 1, 3-6 empty (k = 8), shuffled positions."""
    labels = np.array([0] * 900 + [2] * 3 + [7] * 40 + [5] * 1, dtype=np.int64)
    return np.random.default_rng(0).permutation(labels)


def test_label_frequencies_uniform_over_nonempty_clusters() -> None:
    labels = _unbalanced_labels()
    sampler = UniformLabelSampler(labels, num_samples=4000, seed=1)
    idx = np.fromiter(iter(sampler), dtype=np.int64)
    assert len(idx) == len(sampler) == 4000
    drawn = labels[idx]
    clusters, counts = np.unique(drawn, return_counts=True)
    assert clusters.tolist() == [0, 2, 5, 7]  # empty clusters skipped, all others drawn
    assert chisquare(counts).pvalue > 0.01  # uniform over the 4 non-empty clusters
    # without the fix (uniform over images) cluster 0 would take ~95% of the draws
    assert counts[0] < 0.3 * 4000


class _LabelEcho(Dataset):
    def __init__(self, labels: np.ndarray) -> None:
        self.labels = labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        return torch.zeros(1), int(self.labels[i]), i


def test_positions_and_labels_agree_through_a_loader() -> None:
    labels = _unbalanced_labels()
    sampler = UniformLabelSampler(labels, num_samples=200, seed=3)
    for batch in make_loader(_LabelEcho(labels), 64, sampler=sampler):
        assert torch.equal(batch.labels, torch.from_numpy(labels[batch.indices.numpy()]))


def test_without_replacement_for_large_clusters_and_seeding() -> None:
    labels = np.repeat(np.arange(4), 50)
    sampler = UniformLabelSampler(labels, num_samples=100, seed=0)
    idx = sampler.indices()
    assert len(set(idx.tolist())) == 100  # 25 per cluster out of 50: no repeats
    first = sampler.indices()
    sampler.set_epoch(1)
    assert not np.array_equal(first, sampler.indices())
    sampler.set_epoch(0)
    assert np.array_equal(first, sampler.indices())
    assert not np.array_equal(first, UniformLabelSampler(labels, 100, seed=9).indices())


def test_negative_labels_never_drawn_and_all_negative_refused() -> None:
    labels = np.array([-1, 0, -1, 1])
    assert set(UniformLabelSampler(labels, 50, seed=0).indices().tolist()) == {1, 3}
    with pytest.raises(ValueError, match="no sample"):
        UniformLabelSampler(-np.ones(3, dtype=int), 5).indices()


@pytest.mark.parametrize("world", [1, 2, 3])
def test_distributed_ranks_are_disjoint_and_cover_the_single_draw(world: int) -> None:
    labels = _unbalanced_labels()
    n = 301
    single = UniformLabelSampler(labels, n, seed=4)
    single.set_epoch(2)
    ranks = []
    for rank in range(world):
        s = DistributedUniformLabelSampler(labels, n, seed=4, rank=rank, world_size=world)
        s.set_epoch(2)
        ranks.append(list(s))
        assert len(ranks[-1]) == len(s) == -(-n // world)
    # interleave the ranks back: positions are disjoint and rebuild the global sequence
    rebuilt = [ranks[p % world][p // world] for p in range(len(ranks[0]) * world)]
    expected = single.indices().tolist()
    assert rebuilt[:n] == expected
    assert rebuilt[n:] == expected[: len(rebuilt) - n]  # padding wraps around


def test_distributed_rejects_bad_rank() -> None:
    with pytest.raises(ValueError, match="invalid rank"):
        DistributedUniformLabelSampler(np.zeros(4, dtype=int), 4, rank=2, world_size=2)


# --- rule="official-2018": checked against a plain port of the released code ---------------
# facebookresearch/deepcluster@2d1927e util.UnifLabelSampler and clustering.ReassignedDataset,
# re-written here from the reference (global numpy RNG, lists, float pooling as there).


class _PortUnifLabelSampler:
    def __init__(self, n: int, images_lists: list[list[int]]) -> None:
        self.n, self.images_lists = n, images_lists
        self.indexes = self.generate_indexes_epoch()

    def generate_indexes_epoch(self) -> list[int]:
        nonempty = sum(1 for members in self.images_lists if len(members) != 0)
        size_per_pseudolabel = int(self.n / nonempty) + 1
        res = np.array([])
        for members in self.images_lists:
            if len(members) == 0:
                continue
            picked = np.random.choice(members, size_per_pseudolabel,
                                      replace=(len(members) <= size_per_pseudolabel))
            res = np.concatenate((res, picked))
        np.random.shuffle(res)
        out = list(res.astype("int"))
        if len(out) >= self.n:
            return out[: self.n]
        return out + out[: self.n - len(out)]


class _PortReassignedDataset:
    def __init__(self, images_lists: list[list[int]]) -> None:
        image_indexes, pseudolabels = [], []
        for cluster, images in enumerate(images_lists):
            image_indexes.extend(images)
            pseudolabels.extend([cluster] * len(images))
        label_to_idx = {label: idx for idx, label in enumerate(set(pseudolabels))}
        self.imgs = [(image_indexes[j], label_to_idx[pseudolabels[j]])
                     for j in range(len(image_indexes))]

    def __getitem__(self, index: int) -> tuple[int, int]:
        return self.imgs[index]


def _port_pairs(labels: np.ndarray, n: int, seed: list[int]) -> list[tuple[int, int]]:
    k = int(labels.max()) + 1
    images_lists: list[list[int]] = [[] for _ in range(k)]
    for i, c in enumerate(labels.tolist()):  # run_kmeans: images in index order
        images_lists[c].append(i)
    np.random.seed(seed)
    sampler = _PortUnifLabelSampler(n, images_lists)
    dataset = _PortReassignedDataset(images_lists)
    return [dataset[i] for i in sampler.indexes]


def _skewed_labels(seed: int = 0) -> np.ndarray:
    """k = 12 with clusters 3 and 8 empty, one holding half the images, shuffled."""
    sizes = [300, 40, 9, 0, 70, 1, 2, 25, 0, 33, 60, 60]
    labels = np.repeat(np.arange(12), sizes)
    return np.random.default_rng(seed).permutation(labels)


@pytest.mark.parametrize(("seed", "epoch", "reassign"), [(31, 0, 1.0), (5, 3, 1.0), (7, 1, 2.5)])
def test_official_2018_equals_a_port_of_the_released_classes(
    seed: int, epoch: int, reassign: float
) -> None:
    labels = _skewed_labels(seed)
    n = int(reassign * len(labels))
    ours = UniformLabelSampler(labels, n, seed=seed, rule="official-2018")
    ours.set_epoch(epoch)
    idx = np.fromiter(iter(ours), dtype=np.int64)
    port = _port_pairs(labels, n, [seed, epoch])
    assert idx.tolist() == [image for image, _ in port]  # the same images, in the same order
    # the same labels up to the official label renumbering (a bijection)
    mapping = dict(zip(labels[idx].tolist(), [label for _, label in port], strict=True))
    assert len(set(mapping.values())) == len(mapping)
    assert [mapping[c] for c in labels[idx].tolist()] == [label for _, label in port]


def test_official_2018_skips_unlabelled_images_as_outside_the_dataset() -> None:
    labels = _skewed_labels(1)
    masked = labels.copy()
    masked[::7] = -1  # e.g. dropped singletons / images outside the epoch's subset
    idx = official_2018_draw(masked, 400, seed=2)
    assert (masked[idx] >= 0).all()
    valid = np.flatnonzero(masked >= 0)
    port = _port_pairs(masked[valid], 400, [2, 0])
    assert idx.tolist() == valid[[image for image, _ in port]].tolist()


def test_official_2018_draws_in_proportion_to_cluster_size() -> None:
    """The issue's simulation: a clustering whose largest cluster holds 20% of the images."""
    k, n = 500, 50_000
    sizes = np.r_[10_000, np.full(k - 1, 40_000 // (k - 1))]
    sizes[1 : 1 + n - sizes.sum()] += 1
    labels = np.random.default_rng(0).permutation(np.repeat(np.arange(k), sizes))
    share = {}
    for rule in ("uniform", "official-2018"):
        idx = UniformLabelSampler(labels, n, seed=31, rule=rule).indices()
        share[rule] = np.bincount(labels[idx], minlength=k).max() / n
    assert share["uniform"] < 0.003  # 1/k = 0.2%
    assert 0.18 < share["official-2018"] < 0.22  # ~ the cluster's 20% share of the images


def test_official_2018_distributed_split_and_unknown_rule() -> None:
    labels = _skewed_labels(2)
    single = official_2018_draw(labels, 301, seed=4, epoch=1)
    parts = []
    for rank in range(2):
        s = DistributedUniformLabelSampler(labels, 301, seed=4, rank=rank, world_size=2,
                                           rule="official-2018")
        s.set_epoch(1)
        parts.append(s.indices())
    assert len(parts[0]) == len(parts[1]) == 151
    assert sorted(np.r_[parts[0], parts[1]].tolist()) == sorted(
        np.r_[single, single[:1]].tolist())
    with pytest.raises(ValueError, match="unknown sampling rule"):
        UniformLabelSampler(labels, 10, rule="official")



def test_global_batch_slices_cover_each_global_batch_once() -> None:
    """Every rank's slices, concatenated in rank order, are the global batches of the
    sampler's order; a batch smaller than the number of ranks leaves some slices empty."""

    def sampler() -> RandomSampler:
        return RandomSampler(range(9), generator=torch.Generator().manual_seed(3))

    order, world = list(sampler()), 3
    per_rank = [list(GlobalBatchSlices(sampler(), 4, r, world)) for r in range(world)]
    assert all(len(s) == 3 for s in per_rank)  # ceil(9 / 4) steps on every rank
    for step in range(3):
        assert [i for r in range(world) for i in per_rank[r][step]] == \
            order[4 * step:4 * step + 4]
    assert [len(per_rank[r][0]) for r in range(world)] == [2, 1, 1]
    assert [len(per_rank[r][2]) for r in range(world)] == [1, 0, 0]
    assert len(GlobalBatchSlices(sampler(), 4, 0, 2)) == 3
