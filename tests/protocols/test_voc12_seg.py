"""voc12-seg: FCN net surgery, the ignore-aware loss and mIoU, an end-to-end run."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import dcbench
from dcbench.data.synthetic import make_voc_set
from dcbench.data.voc import find_voc, read_mask
from dcbench.protocols.base import get_protocol
from dcbench.protocols.voc.fcn import FCNNet
from dcbench.protocols.voc.nets import backbone_parts
from dcbench.protocols.voc12_seg import segmentation_loss, voc12_seg_metrics

MICRO = ["iterations=3", "checkpoint_every=2"]


@pytest.fixture(scope="module")
def voc_root(tmp_path_factory):
    return make_voc_set(tmp_path_factory.mktemp("voc"), n_train=6, n_val=5, n_test=2,
                        size=96, seed=1)


@pytest.fixture()
def model():
    return dcbench.load_model("arch:alexnet_small?sobel=1&seed=0")



def test_loss_ignores_255_pixels():
    logits = torch.tensor([[[[2.0, 0.0, 1.0]], [[0.0, 5.0, 0.0]], [[0.0, 0.0, 3.0]]]])
    mask = torch.tensor([[[0, 255, 2]]], dtype=torch.uint8)
    p0 = -np.log(np.exp(2) / (np.exp(2) + 2))
    p2 = -np.log(np.exp(3) / (np.exp(3) + np.exp(1) + 1))
    assert float(segmentation_loss(logits, mask, normalize=False)) == pytest.approx(p0 + p2)
    assert float(segmentation_loss(logits, mask, normalize=True)) == pytest.approx((p0 + p2) / 2)


def test_metrics_core_names_every_class():
    cm = np.zeros((21, 21), dtype=np.int64)
    cm[0, 0], cm[0, 3], cm[3, 3] = 6, 2, 2  # background 6/8, class 3: 2 / (2 + 2)
    metrics = voc12_seg_metrics(cm)
    assert metrics["iou_background"] == pytest.approx(0.75)
    assert metrics["iou_bird"] == pytest.approx(0.5)  # class index 3
    assert np.isnan(metrics["iou_cat"])
    assert metrics["miou"] == pytest.approx(0.625) and metrics["accuracy"] == pytest.approx(0.8)


def test_end_to_end_micro_schedule(model, voc_root, tmp_path):
    protocol = get_protocol("voc12-seg")
    config = protocol.resolve_config(schedule="smoke", overrides=MICRO)
    rows = protocol.run(model, voc_root, config, run_id="t", device="cpu", progress=False,
                        work_dir=tmp_path)
    values = {r.metric: r.value for r in rows}
    assert {r.split for r in rows} == {"val"} and {r.dataset for r in rows} == {"voc2012"}
    ious = [v for k, v in values.items() if k.startswith("iou_")]
    assert values["miou"] == pytest.approx(np.mean(ious))
    saved = json.loads((tmp_path / "metrics.json").read_text())
    cm = np.array(saved["confusion_matrix"])
    folder = find_voc(voc_root, 2012)
    ids = (folder / "ImageSets/Segmentation/val.txt").read_text().split()
    valid = sum(int((read_mask(folder / "SegmentationClass" / f"{i}.png") != 255).sum())
                for i in ids)
    assert cm.sum() == valid  # every non-ignored val pixel counted once, 255 never
    state = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    torch.testing.assert_close(state["state"]["model"]["features.0.weight"],
                               model.features[0].weight)
    assert state["position"]["iteration"] == 3
    # the per-image pixel counts kept for paired intervals sum to the saved matrix
    (entry,) = protocol.item_outcomes()
    assert (entry.split, entry.metric, entry.kind, entry.n_items) == \
        ("val", "miou", "confusion", len(ids))
    np.testing.assert_array_equal(entry.arrays["inter"].sum(0), np.diag(cm))
    np.testing.assert_array_equal(entry.arrays["pred"].sum(0), cm.sum(0))
    np.testing.assert_array_equal(entry.arrays["gt"].sum(0), cm.sum(1))


def test_fcn_fits_a_few_training_images(model, voc_root):
    """The training loop + FCN + metric learn: overfitting 4 images lifts mIoU well above
    the untrained net (zero score layer: background everywhere)."""
    from dcbench.data.loader import DecodeReport
    from dcbench.data.voc import VOCSegmentation
    from dcbench.protocols.voc.finetune_base import epoch_batches, train_iterations
    from dcbench.protocols.voc.nets import set_trainable
    from dcbench.protocols.voc12_seg import (
        collate_segmentation,
        seg_transform,
        segment_confusion,
        voc12_seg_metrics,
    )

    data = VOCSegmentation(voc_root, 2012, "train",
                           transform=seg_transform(model.config["mean"], model.config["std"],
                                                   False))
    data.ids, data.samples = data.ids[:4], data.samples[:4]
    net = FCNNet(backbone_parts(model, "voc12-seg"))
    set_trainable(net, "all", False)
    cpu = torch.device("cpu")

    def miou() -> float:
        cm = segment_confusion(net, data, device=cpu, workers=0, report=DecodeReport())
        return voc12_seg_metrics(cm)["miou"]

    before = miou()
    params = [p for p in net.parameters() if p.requires_grad]
    opt = torch.optim.SGD(params, lr=0.01, momentum=0.9, weight_decay=5e-4)

    def step(batch):
        opt.zero_grad()
        for image, mask in zip(batch.images, batch.masks, strict=True):
            (segmentation_loss(net(image[None]), mask[None], True) / 2).backward()
        opt.step()
        return 0.0

    train_iterations(net, opt, batches=epoch_batches(data, batch_size=2, seed=0, workers=0,
                                                     collate=collate_segmentation),
                     step=step, iterations=200, lr=0.01, stepsize=10**6, gamma=0.1, seed=0)
    assert miou() > before + 0.1


@pytest.mark.slow
def test_smoke_schedule_on_the_built_in_data(model, tmp_path):
    root = make_voc_set(tmp_path / "voc", seed=0)
    protocol = get_protocol("voc12-seg")
    rows = protocol.run(model, root, protocol.resolve_config(schedule="smoke"), run_id="t",
                        device="cpu", progress=False, work_dir=tmp_path / "run")
    assert any(r.metric == "miou" for r in rows)
