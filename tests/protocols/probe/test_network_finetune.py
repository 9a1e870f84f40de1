"""Whole-network fine-tuning (low-shot): eval points, the checkpoint's life, 10-crop top-1."""

from __future__ import annotations

import copy
import os
import socket

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp

from dcbench.core.distributed import DistInfo, init_from_env, shutdown
from dcbench.data import transforms as T
from dcbench.data.folders import ImageFolderDataset, find_dataset
from dcbench.models import create_backbone
from dcbench.protocols.probe.network_finetune import (
    FinetuneSettings,
    crop_averaged_logits,
    finetune,
    top1,
    top1_hits,
)


def test_curve_has_every_eval_point_and_the_checkpoint_is_removed(cls_data, small_net, tmp_path):
    data = find_dataset(cls_data, "train", T.center_crop(64, 73))
    net = copy.deepcopy(small_net)
    settings = FinetuneSettings(0.01, 1e-4, 0.9, iterations=5, eval_every=2, batch_size=8,
                                eval_batch_size=8, seed=0)
    ckpt = tmp_path / "ft.pt"
    seen = []
    curve = finetune(net, 4, data, np.arange(16), settings,
                     lambda m: seen.append(ckpt.is_file()) or float(len(seen)),
                     device="cpu", checkpoint=ckpt)
    assert curve == [(2, 1.0), (4, 2.0), (5, 3.0)]  # every eval_every and the last step
    assert seen == [False, True, True]  # saved after each eval point
    assert not ckpt.exists()  # a finished run leaves no checkpoint behind


def test_ten_crop_scores_are_the_softmax_average():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 3))
    crops = torch.randn(2, 10, 3, 2, 2)
    got = crop_averaged_logits(model, crops)
    expected = torch.stack([model(c).softmax(-1).mean(0) for c in crops])
    torch.testing.assert_close(got, expected)


def test_top1_hits_are_each_images_ten_crop_argmax_in_dataset_order(cls_set, small_net):
    """Against a plain loop over the images (undecodable ones absent, as in the top-1)."""
    small_net.reset_top_layer(4, torch.Generator().manual_seed(0))
    data = find_dataset(cls_set, "train", T.ten_crop(32, 36))
    value, hits = top1_hits(small_net, data, None, 5, "cpu")
    expected = []
    small_net.eval()
    with torch.no_grad():
        for i in range(len(data)):
            image, label, _ = data[i]
            if image is None:  # the fixture's corrupt files
                continue
            scores = small_net(image).softmax(-1).mean(0)
            expected.append(bool(scores.argmax() == label))
    assert hits.tolist() == expected and len(hits) == 24
    assert value == pytest.approx(100 * np.mean(expected))
    assert top1(small_net, data, None, 7, "cpu") == value


class Killed(Exception):
    """Stands for SIGKILL: the run stops where it is, only its checkpoint file survives."""


def test_a_run_killed_mid_way_and_resumed_equals_an_uninterrupted_one(cls_set, small_net,
                                                                      tmp_path):
    # random crops + flips and dropout: every random stream must be tied to the iteration
    data = find_dataset(cls_set, "train", T.deepcluster_train(32, scale=(0.3, 1.0)))
    settings = FinetuneSettings(0.01, 1e-4, 0.9, iterations=5, eval_every=2, batch_size=6,
                                eval_batch_size=8, seed=3)
    positions = np.arange(0, 28, 2)  # 14 images (2 undecodable): passes of 6 + 6 + 2

    def score(model) -> float:
        return float(sum(p.detach().double().sum() for p in model.parameters()))

    def run(ckpt, kill_at=None):
        net = copy.deepcopy(small_net)
        calls = []

        def evaluate(model):
            calls.append(1)
            if len(calls) == kill_at:
                raise Killed
            return score(model)

        torch.manual_seed(1234 + (kill_at or 0))  # the caller's global RNG must not matter
        curve = finetune(net, 4, data, positions, settings, evaluate, device="cpu",
                         checkpoint=ckpt)
        return net, curve

    ref, ref_curve = run(tmp_path / "ref.pt")
    ckpt = tmp_path / "killed.pt"
    for kill_at in (2, 2):  # killed at iteration 4 (checkpoint of 2), then at 5 (of 4)
        with pytest.raises(Killed):
            run(ckpt, kill_at)
        assert ckpt.is_file()
    resumed, curve = run(ckpt)
    assert curve[-1] == ref_curve[-1]
    for (name, a), b in zip(ref.state_dict().items(), resumed.state_dict().values(),
                            strict=True):
        assert torch.equal(a, b), name


@pytest.fixture(scope="module")
def jpeg_set(tmp_path_factory: pytest.TempPathFactory):
    """3 classes x 8 JPEGs (some progressive, CMYK, EXIF-rotated) plus the bad files."""
    from dcbench.data.synthetic_jpeg import add_bad_files, make_jpeg_folder

    root = make_jpeg_folder(tmp_path_factory.mktemp("ft_jpeg") / "set", n_classes=3,
                            per_class=8, sizes="small", seed=4, progressive=0.3, cmyk=0.1,
                            rotated=0.3)
    add_bad_files(root / "c01")
    return root


@pytest.fixture()
def dali_batches(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The sizes of the batches DaliLoader prepares (proves DALI read them)."""
    dali = pytest.importorskip("dcbench.data.dali_pipeline")
    pytest.importorskip("nvidia.dali")
    seen: list[int] = []
    prepare = dali.DaliLoader._prepare

    def counting(self, planned):
        batch = prepare(self, planned)
        seen.append(len(batch))
        return batch

    monkeypatch.setattr(dali.DaliLoader, "_prepare", counting)
    return seen


def _grey(diff: torch.Tensor) -> torch.Tensor:
    """A difference of normalised images in grey levels (0..255)."""
    return diff.abs() * (torch.tensor(T.IMAGENET_STD).view(3, 1, 1) * 255)


def test_stream_batches_through_dali_are_the_pil_paths(jpeg_set, dali_batches):
    """The DALI stream batch has the PIL path's images (same labels, same crop boxes and flips:
    a wrong box differs by tens of grey levels) and leaves torch's RNG where the PIL path
    leaves it (the step's dropout masks follow), bad files included."""
    from dcbench.protocols.probe import network_finetune as nf

    data = ImageFolderDataset(jpeg_set, T.deepcluster_train(40, scale=(0.2, 1.0)))
    positions = np.arange(len(data))
    diffs = []
    for index in range(4):  # two passes of 24 + bad files in batches of 8
        out = {}
        for pipeline in ("cpu", "dali"):
            torch.manual_seed(100 + index)
            batch = nf.stream_batch(data, positions, 8, seed=5, index=index, pipeline=pipeline)
            out[pipeline] = (batch, torch.get_rng_state())
        (pil, pil_rng), (dali, dali_rng) = out["cpu"], out["dali"]
        assert torch.equal(pil_rng, dali_rng)
        assert torch.equal(pil[1], dali[1]) and pil[0].shape == dali[0].shape
        diffs.append(_grey(dali[0] - pil[0]).flatten())
    assert torch.cat(diffs).mean() < 0.5  # measured ~0.15 grey levels
    assert len(dali_batches) == 4 and sum(dali_batches) == sum(len(d) for d in diffs) // (
        3 * 40 * 40)  # every stream batch was read by DALI


def test_top1_through_dali_counts_every_image_like_pil(jpeg_set, small_net, dali_batches):
    from dcbench.data.decode import decode_image
    from dcbench.protocols.probe.network_finetune import top1

    data = ImageFolderDataset(jpeg_set, T.ten_crop(64, 73))
    positions = np.arange(0, len(data), 2)
    net = copy.deepcopy(small_net)
    net.reset_top_layer(3, torch.Generator().manual_seed(0))
    scores = {p: top1(net, data, positions, 8, "cpu", pipeline=p) for p in ("cpu", "dali")}
    decodable = sum(decode_image(data.samples[i][0]).image is not None for i in positions)
    assert sum(dali_batches) == decodable >= 12  # each decodable image once, through DALI
    # one image is <= 8.4 points; the pixels differ by ~0.1 grey level
    assert abs(scores["cpu"] - scores["dali"]) <= 2 * 100 / decodable


def test_a_dali_fine_tune_builds_one_graph_per_batch_size(jpeg_set, small_net, dali_batches,
                                                          monkeypatch):
    """Each step's batch goes through DALI, but the graph (decoders and all) is built once
    per batch size for the run, not once per step."""
    from dcbench.data.dali_pipeline import DaliGraph

    built: list[int] = []
    init = DaliGraph.__init__
    monkeypatch.setattr(DaliGraph, "__init__",
                        lambda self, *a, **k: built.append(a[1]) or init(self, *a, **k))
    data = ImageFolderDataset(jpeg_set, T.deepcluster_train(64, scale=(0.3, 1.0)))
    settings = FinetuneSettings(0.01, 1e-4, 0.9, iterations=3, eval_every=3, batch_size=10,
                                eval_batch_size=8, seed=0)
    finetune(copy.deepcopy(small_net), 3, data, np.arange(24), settings, lambda m: 0.0,
             device="cpu", pipeline="dali")
    assert len(dali_batches) == 3  # every step read through DALI
    assert sorted(built) == [4, 10]  # passes of 10 + 10 + 4 images: two sizes, two graphs


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _fine_tune_sync(rank: int, world: int, port: int, root: str, mode: str, out: str) -> None:
    """One rank (or the one process) fine-tuning the no-dropout net on fixed crops."""
    if world > 1:  # a spawned rank (the one process leaves the test's environment alone)
        torch.set_num_threads(1)
        os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                          WORLD_SIZE=str(world), LOCAL_RANK=str(rank))
    info = init_from_env("cpu") if world > 1 else DistInfo()
    net = create_backbone({"arch": "alexnet_small", "sobel": True}, seed=0)
    for layer in net.modules():
        if isinstance(layer, torch.nn.Dropout):
            layer.p = 0.0  # the one per-rank draw left: dropout masks
    data = find_dataset(root, "train", T.center_crop(64, 73))  # no random crops either
    # 15 images, batches of 7: slices 4 / 3, then a batch of 1 (rank 1's slice empty)
    settings = FinetuneSettings(0.05, 1e-4, 0.9, iterations=4, eval_every=4, batch_size=7,
                                eval_batch_size=8, seed=2)
    finetune(net, 4, data, np.arange(0, 30, 2), settings, lambda m: 0.0, device="cpu",
             bn_sync=mode)
    if info.is_main:
        torch.save(net.state_dict(), out)
    shutdown(info)


def test_global_bn_fine_tunes_two_ranks_like_one_process(cls_data, tmp_path):
    """low-shot's trunk BN with `bn_sync=global` on 2 gloo processes: with the per-rank
    draws (crops, flips, dropout) taken out, the fine-tuned weights and BN statistics are
    one process's (uneven slices, one empty; 4 SGD steps, float32 sums in another order:
    1e-4 relative); `rank` (each slice's statistics) is not."""
    one = tmp_path / "one.pt"
    _fine_tune_sync(0, 1, 0, str(cls_data), "global", str(one))
    ref = torch.load(one)
    for mode in ("global", "rank"):
        out = tmp_path / f"{mode}.pt"
        mp.spawn(_fine_tune_sync, args=(2, _free_port(), str(cls_data), mode, str(out)),
                 nprocs=2, join=True)
        got = torch.load(out)
        assert got.keys() == ref.keys()
        close = all(torch.allclose(got[k].double(), ref[k].double(), rtol=1e-4, atol=1e-5)
                    for k in ref)
        assert close == (mode == "global"), mode
