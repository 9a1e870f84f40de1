"""knn under 2 gloo processes: each rank scores only its contiguous shard of the test rows,
and both return the one-process metrics and per-item hits (gathered in row order)."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import dcbench.core.distributed as distributed
import dcbench.protocols.knn as knn
from dcbench.core.distributed import DistInfo
from dcbench.protocols.metrics import topk_accuracy

N_TEST, CLASSES = 11, 7  # uneven shards: 6 + 5 rows


def _data() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    train = rng.normal(size=(30, 6)).astype(np.float32)
    test = rng.normal(size=(N_TEST, 6)).astype(np.float32)
    return train, rng.integers(0, CLASSES, 30), test, rng.integers(0, CLASSES, N_TEST)


def _worker(rank: int, init_file: str, out_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    distributed._CURRENT = DistInfo(rank=rank, world_size=2)
    scored: list[int] = []
    real = knn.weighted_knn_scores

    def counted(train, train_labels, test, *args):
        scored.append(len(test))
        return real(train, train_labels, test, *args)

    knn.weighted_knn_scores = counted
    train, train_labels, test, test_labels = _data()
    metrics, correct = knn.knn_metrics_and_items(train, train_labels, test, test_labels,
                                                 CLASSES, 3, 0.1)
    # pickle, not torch.save: numpy arrays need weights_only=False, which CI's
    # TORCH_FORCE_WEIGHTS_ONLY_LOAD=1 overrides
    with open(Path(out_dir) / f"rank{rank}.pkl", "wb") as handle:
        pickle.dump({"metrics": metrics, "correct": correct, "scored": scored}, handle)
    dist.destroy_process_group()


def test_two_processes_score_their_shard_and_agree_with_one(tmp_path: Path) -> None:
    mp.spawn(_worker, args=(str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True)
    train, train_labels, test, test_labels = _data()
    # one process, the scores of every test row at once
    scores = torch.from_numpy(knn.weighted_knn_scores(train, train_labels, test, CLASSES, 3,
                                                      0.1))
    want = topk_accuracy(scores, torch.from_numpy(test_labels))
    want_correct = (scores.argmax(1).numpy() == test_labels)
    for rank, rows in ((0, 6), (1, 5)):
        with open(tmp_path / f"rank{rank}.pkl", "rb") as handle:
            out = pickle.load(handle)
        assert out["scored"] == [rows]
        assert out["metrics"] == want
        assert np.array_equal(out["correct"], want_correct)
