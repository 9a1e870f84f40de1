"""Sharded clustering with 2 gloo CPU processes against one process on the same rows.

Expectation (stated in `dcbench.clustering.sharded`): k-means on the same whitened rows gives
bit-identical labels (float64 per-cluster sums, all-reduced); whitening + k-means from raw
features agrees with ARI >= 0.99, because the float32 chunk products of the scatter matrix
are grouped by rank and rows nearly tied between two centroids may flip.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from sklearn.metrics import adjusted_rand_score

from dcbench.clustering.backend import whiten_on_device
from dcbench.clustering.pic import run_pic
from dcbench.clustering.sharded import sharded_kmeans, sharded_pic, sharded_whiten
from dcbench.clustering.torch_kmeans import torch_kmeans
from dcbench.core.distributed import DistInfo

SPLIT = 1300  # uneven shards: rows [0, 1300) on rank 0, the rest on rank 1
K, DIM, SEED = 30, 16, 7


def features() -> np.ndarray:
    rng = np.random.default_rng(0)
    centers = rng.standard_normal((K, 64)) * 2.0
    truth = rng.integers(0, K, 2500)
    mix = rng.standard_normal((64, 64))
    return ((centers[truth] + rng.standard_normal((2500, 64))) @ mix).astype(np.float32)


def _worker(rank: int, world: int, init_file: str, out_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank,
                            world_size=world)
    info = DistInfo(rank=rank, world_size=world)
    x = features()
    local = torch.from_numpy(x[:SPLIT] if rank == 0 else x[SPLIT:])
    reduced = sharded_whiten(local, DIM, info)
    labels, loss = sharded_kmeans(reduced, K, niter=10, seed=SEED, info=info)
    same_input = whiten_on_device(x, DIM, "cpu")
    mine = same_input[:SPLIT] if rank == 0 else same_input[SPLIT:]
    labels_same, _ = sharded_kmeans(mine, K, niter=10, seed=SEED, info=info)
    pic_labels, _ = sharded_pic(mine, info, torch.device("cpu"), nnn=5)
    if rank == 0:
        np.save(Path(out_dir) / "reduced0.npy", reduced.numpy())
        np.savez(Path(out_dir) / "two.npz", labels=labels, loss=loss, labels_same=labels_same,
                 pic=pic_labels)
    dist.destroy_process_group()


def test_two_gloo_processes_match_one_process(tmp_path: Path) -> None:
    mp.spawn(_worker, args=(2, str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True)
    two = np.load(tmp_path / "two.npz")
    x = features()
    reduced = whiten_on_device(x, DIM, "cpu")
    one, loss = torch_kmeans(reduced, K, niter=10, seed=SEED)
    # the whitened rows differ only in the last float32 bits
    np.testing.assert_allclose(np.load(tmp_path / "reduced0.npy"), reduced[:SPLIT].numpy(),
                               atol=1e-5)
    np.testing.assert_array_equal(two["labels_same"], one)
    assert adjusted_rand_score(one, two["labels"]) >= 0.99
    assert float(two["loss"]) == np.float64(loss) or abs(float(two["loss"]) - loss) <= 1e-5 * loss
    np.testing.assert_array_equal(two["pic"], run_pic(reduced, nnn=5)[0])


def test_one_process_sharded_equals_torch_kmeans() -> None:
    reduced = whiten_on_device(features(), DIM, "cpu")
    got, loss = sharded_kmeans(reduced, K, niter=10, seed=SEED, info=DistInfo())
    ref, ref_loss = torch_kmeans(reduced, K, niter=10, seed=SEED)
    np.testing.assert_array_equal(got, ref)
    assert loss == ref_loss
