"""Sampling uniformly over pseudo-labels (thesis 3.2; official `UnifLabelSampler`, fixed).

Each epoch draws `num_samples` dataset indices so that every non-empty cluster contributes
the same number of draws: `ceil(num_samples / n_nonempty)` per cluster, without replacement
when the cluster is large enough and with replacement otherwise; the pooled draws are
shuffled and truncated to `num_samples`. Unlike the official code, the indices refer to the
dataset the labels came from, so `labels[index]` is the pseudo-label the sample is trained
on (the official sampler indexed a cluster-sorted copy, so the uniform weighting landed on
permuted positions). Empty clusters are skipped. Seeding: `numpy.random.default_rng((seed,
epoch))`, so every epoch (and every rank) sees a reproducible sequence.

`rule="official-2018"` reproduces what the released code did instead (docs/fidelity.md item
2): `int(N / n_nonempty) + 1` draws per non-empty cluster (with replacement when the cluster
has at most that many members), pooled, shuffled and truncated to N, with numpy's legacy
`RandomState`; those *dataset* indices then index the cluster-sorted `ReassignedDataset`,
so the image actually loaded is the one at that position of the cluster-sorted order. In
effect images are drawn about in proportion to cluster size. The sampler yields the image
loaded, so `labels[index]` is still the label it is trained on (as in the official code).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Literal

import numpy as np
from torch.utils.data import Sampler


def uniform_label_draw(
    labels: np.ndarray, num_samples: int, seed: int, epoch: int = 0
) -> np.ndarray:
    """The epoch's draw: `num_samples` dataset indices, uniform over non-empty labels."""
    labels = np.asarray(labels).reshape(-1)
    if num_samples < 0:
        raise ValueError(f"num_samples must be >= 0, got {num_samples}")
    valid = np.flatnonzero(labels >= 0)  # negative labels (unassigned) are never drawn
    if num_samples == 0:
        return np.empty(0, dtype=np.int64)
    if valid.size == 0:
        raise ValueError("uniform_label_draw: no sample has a non-negative label")
    rng = np.random.default_rng([int(seed), int(epoch)])
    order = valid[np.argsort(labels[valid], kind="stable")]
    clusters, starts = np.unique(labels[order], return_index=True)
    members = np.split(order, starts[1:])
    per_cluster = -(-num_samples // len(clusters))  # ceil
    draws = [rng.choice(m, per_cluster, replace=m.size < per_cluster) for m in members]
    pooled = np.concatenate(draws)
    rng.shuffle(pooled)
    return pooled[:num_samples].astype(np.int64)


def official_2018_draw(
    labels: np.ndarray, num_samples: int, seed: int, epoch: int = 0
) -> np.ndarray:
    """The released code's draw (`UnifLabelSampler` indexing `ReassignedDataset`): the image
    indices actually loaded. Images with a negative label are not part of the clustered set,
    which plays the role of the official dataset (positions in ascending index order)."""
    labels = np.asarray(labels).reshape(-1)
    if num_samples < 0:
        raise ValueError(f"num_samples must be >= 0, got {num_samples}")
    valid = np.flatnonzero(labels >= 0)
    if num_samples == 0:
        return np.empty(0, dtype=np.int64)
    if valid.size == 0:
        raise ValueError("official_2018_draw: no sample has a non-negative label")
    rng = np.random.RandomState([int(seed), int(epoch)])
    # images_lists: per cluster (ascending label), its members' positions in ascending order
    sorted_positions = np.argsort(labels[valid], kind="stable")
    _, starts = np.unique(labels[valid][sorted_positions], return_index=True)
    images_lists = np.split(sorted_positions, starts[1:])
    per_cluster = int(num_samples / len(images_lists)) + 1
    pooled = np.concatenate([
        rng.choice(members, per_cluster, replace=len(members) <= per_cluster)
        for members in images_lists])
    rng.shuffle(pooled)
    drawn = pooled[:num_samples]  # per_cluster * n_clusters > num_samples: never padded
    # the drawn positions index the cluster-sorted dataset, not the one they came from
    return valid[sorted_positions[drawn]].astype(np.int64)


SamplingRule = Literal["uniform", "official-2018"]
DRAWS = {"uniform": uniform_label_draw, "official-2018": official_2018_draw}


class UniformLabelSampler(Sampler[int]):
    """Yield `num_samples` dataset indices per epoch, uniform over the non-empty clusters
    (or, with `rule="official-2018"`, as the released code drew them)."""

    def __init__(self, labels: np.ndarray, num_samples: int, seed: int = 0,
                 rule: SamplingRule = "uniform") -> None:
        if rule not in DRAWS:
            raise ValueError(f"unknown sampling rule {rule!r}; valid: {', '.join(DRAWS)}")
        self.labels = np.asarray(labels).astype(np.int64).reshape(-1)
        self.num_samples = int(num_samples)
        self.seed = int(seed)
        self.epoch = 0
        self.draw = DRAWS[rule]

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose (deterministic) draw the next iteration yields."""
        self.epoch = int(epoch)

    def indices(self) -> np.ndarray:
        """This epoch's indices as an array (what `__iter__` yields)."""
        return self.draw(self.labels, self.num_samples, self.seed, self.epoch)

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices().tolist())

    def __len__(self) -> int:
        return self.num_samples


class DistributedUniformLabelSampler(UniformLabelSampler):
    """One rank's share of the global uniform draw: every rank computes the same sequence,
    pads it (by wrapping around) to a multiple of `world_size`, and takes `rank::world_size`.

    The ranks' shares are disjoint positions of that sequence, equal in size, and together
    they are exactly the single-process draw plus the padding.
    """

    def __init__(
        self,
        labels: np.ndarray,
        num_samples: int,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        rule: SamplingRule = "uniform",
    ) -> None:
        super().__init__(labels, num_samples, seed, rule)
        if world_size < 1 or not 0 <= rank < world_size:
            raise ValueError(f"invalid rank {rank} for world_size {world_size}")
        self.rank, self.world_size = int(rank), int(world_size)

    @property
    def total_size(self) -> int:
        """Length of the padded global sequence."""
        return -(-self.num_samples // self.world_size) * self.world_size

    def global_indices(self) -> np.ndarray:
        """The padded global sequence that the ranks split."""
        draw = self.draw(self.labels, self.num_samples, self.seed, self.epoch)
        if draw.size == 0:
            return draw
        pad = self.total_size - draw.size
        return np.concatenate([draw, np.resize(draw, pad)]) if pad else draw

    def indices(self) -> np.ndarray:
        """This rank's indices."""
        return self.global_indices()[self.rank :: self.world_size]

    def __len__(self) -> int:
        return self.total_size // self.world_size


class GlobalBatchSlices(Sampler[list[int]]):
    """A batch sampler for N processes that share every global batch (distributed eval,
    issue 28): the global order comes from `sampler` (e.g. a seeded `RandomSampler`, the
    order one process would see), cut into global batches of `batch_size`; this rank gets
    its contiguous slice of each (sizes differ by at most one; a slice may be empty when a
    batch has fewer images than ranks). Every rank yields one (maybe empty) list per global
    batch, so all ranks take the same number of steps and no image is padded or repeated."""

    def __init__(self, sampler: Sampler[int], batch_size: int, rank: int,
                 world_size: int) -> None:
        self.sampler, self.batch_size = sampler, int(batch_size)
        self.rank, self.world_size = int(rank), int(world_size)

    def __iter__(self) -> Iterator[list[int]]:
        order = list(self.sampler)
        for start in range(0, len(order), self.batch_size):
            chunk = order[start:start + self.batch_size]
            per, extra = divmod(len(chunk), self.world_size)
            first = self.rank * per + min(self.rank, extra)
            yield chunk[first:first + per + (1 if self.rank < extra else 0)]

    def __len__(self) -> int:
        return -(-len(self.sampler) // self.batch_size)  # type: ignore[arg-type]
