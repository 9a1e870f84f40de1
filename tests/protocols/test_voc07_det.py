"""voc07-det: VOC box conventions, the detector built on our trunk, an end-to-end run."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import dcbench
from dcbench.core.errors import UserError
from dcbench.data.synthetic import make_voc_set
from dcbench.data.voc import VOC_CLASSES
from dcbench.protocols.base import get_protocol
from dcbench.protocols.voc.detector import (
    DetectorSpec,
    build_detector,
)
from dcbench.protocols.voc.finetune_base import SeededView
from dcbench.protocols.voc.nets import backbone_parts
from dcbench.protocols.voc07_det import (
    DetectionItems,
    annotation_arrays,
    collate_detection,
    voc07_det_metrics,
)

MICRO = ["iterations=3", "checkpoint_every=2"]
SPEC = DetectorSpec(train_scales=(96,), train_max_size=160, test_scale=96, test_max_size=160,
                    anchor_sizes=(16, 32, 64))


@pytest.fixture(scope="module")
def voc_root(tmp_path_factory):
    return make_voc_set(tmp_path_factory.mktemp("voc"), n_train=6, n_val=4, n_test=5,
                        size=96, seed=2)


@pytest.fixture()
def model():
    return dcbench.load_model("arch:alexnet_small?sobel=1&seed=0")


class _OneImage:
    """A stand-in VOCDetection: one 4x10 image whose bright columns are VOC x = 3..4."""

    ids = ["img"]
    samples = [("img.jpg", -1)]

    def __len__(self):
        return 1

    def __getitem__(self, index):
        image = torch.zeros(3, 4, 10)
        image[:, :, 2:4] = 1.0
        ann = {"objects": [
            {"name": "cat", "bbox": (3, 1, 4, 4), "difficult": 0},
            {"name": "dog", "bbox": (8, 1, 9, 2), "difficult": 1},
        ]}
        return image, ann, index


def test_training_items_drop_difficult_and_flip_boxes_with_the_image():
    items = DetectionItems(_OneImage(), train=True, flip=True)
    flipped = set()
    for epoch in range(12):
        image, target, _ = SeededView(items, 0, 1, epoch)[0]
        assert target["labels"].tolist() == [VOC_CLASSES.index("cat") + 1]  # dog is difficult
        x1, _, x2, _ = target["boxes"][0].tolist()
        bright = torch.nonzero(image[0, 0] > 0.5).flatten()
        assert (x1, x2) == (float(bright.min()), float(bright.max() + 1))
        flipped.add(x1 == 6.0)
    assert flipped == {True, False}
    image, target, _ = DetectionItems(_OneImage(), train=False, flip=True)[0]
    assert len(target["labels"]) == 2  # evaluation keeps difficult boxes (ignored by the AP)


def test_unknown_class_name_is_a_user_error():
    with pytest.raises(UserError, match="unknown VOC class"):
        annotation_arrays({"objects": [{"name": "unicorn", "bbox": (1, 1, 2, 2),
                                        "difficult": 0}]}, "x.xml")


def test_perfect_detections_score_one():
    gts = [{"boxes": np.array([[1, 1, 20, 20], [5, 5, 9, 9]], float),
            "labels": np.array([2, 7]), "difficult": np.array([False, True])}]
    dets = [{"boxes": gts[0]["boxes"][:1], "labels": np.array([2]), "scores": np.array([0.9])}]
    metrics = voc07_det_metrics(dets, gts)
    assert metrics["map"] == pytest.approx(1.0) and metrics["ap_bird"] == pytest.approx(1.0)
    assert np.isnan(metrics["ap_car"])  # only a difficult box: no positives, left out


def test_detector_reuses_fc6_fc7_and_detects(model):
    parts = backbone_parts(model, "voc07-det")
    detector = build_detector(parts, SPEC, 21, model.config["mean"], model.config["std"], 0)
    head = detector.roi_heads.box_head.classifier
    torch.testing.assert_close(head[1].weight, model.classifier[1].weight)
    torch.testing.assert_close(head[4].weight, model.classifier[4].weight)
    assert detector.roi_heads.box_roi_pool.output_size == (parts.grid, parts.grid)
    assert not isinstance(detector.backbone.features[-1], torch.nn.MaxPool2d)
    detector.train()
    assert not detector.backbone.training and head.training
    items = DetectionItems(_OneImage(), train=True, flip=False)
    batch = collate_detection([items[0]])
    image = torch.nn.functional.interpolate(batch.images[0][None], size=(64, 96))[0]
    scale = torch.tensor([9.6, 16.0, 9.6, 16.0])  # 4x10 -> 64x96
    target = {"boxes": batch.targets[0]["boxes"] * scale, "labels": batch.targets[0]["labels"]}
    losses = detector([image], [target])
    assert set(losses) >= {"loss_classifier", "loss_box_reg", "loss_objectness"}
    detector.eval()
    out = detector([torch.rand(3, 70, 90)])[0]
    assert set(out) == {"boxes", "labels", "scores"}


def test_end_to_end_micro_schedule(model, voc_root, tmp_path):
    protocol = get_protocol("voc07-det")
    config = protocol.resolve_config(schedule="smoke", overrides=MICRO)
    rows = protocol.run(model, voc_root, config, run_id="t", device="cpu", progress=False,
                        work_dir=tmp_path)
    values = {r.metric: r.value for r in rows}
    assert {r.split for r in rows} == {"test"} and {r.layer for r in rows} == {"fc6-8"}
    assert 0.0 <= values["map"] <= 100.0  # rows are in percent, like the tables
    state = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert state["position"]["iteration"] == 3
    torch.testing.assert_close(state["state"]["model"]["backbone.features.0.weight"],
                               model.features[0].weight)  # fc6-8: conv trunk frozen
    config = protocol.resolve_config(schedule="smoke", overrides=[
        *MICRO, "train_layers=all", "ap_method=all", "split=train"])
    rows = protocol.run(model, voc_root, config, run_id="t", device="cpu", progress=False,
                        work_dir=tmp_path / "all")
    assert {r.split for r in rows} == {"val"} and {r.layer for r in rows} == {"all"}
    state = torch.load(tmp_path / "all" / "checkpoint.pt", weights_only=True)
    assert not torch.equal(state["state"]["model"]["backbone.features.0.weight"],
                           model.features[0].weight)


@pytest.mark.slow
def test_detector_fits_a_few_training_images(model, tmp_path):
    """Boxes, training, detection and AP fit together: overfitting 4 images of the built-in
    data gives a high AP on them (0.94 measured; random init, 400 iterations)."""
    from dcbench.data.loader import DecodeReport
    from dcbench.data.voc import VOCDetection
    from dcbench.protocols.voc.detector import set_scales
    from dcbench.protocols.voc.finetune_base import epoch_batches, train_iterations
    from dcbench.protocols.voc.nets import set_trainable
    from dcbench.protocols.voc07_det import detect

    root = make_voc_set(tmp_path / "voc", n_train=4, n_val=2, n_test=2, size=128, seed=0)
    spec = DetectorSpec(train_scales=(171,), train_max_size=286, test_scale=171,
                        test_max_size=286, anchor_sizes=(9, 18, 37, 73, 146))
    detector = build_detector(backbone_parts(model, "voc07-det"), spec, 21,
                              model.config["mean"], model.config["std"], 0)
    set_trainable(detector.backbone, "all", False)
    voc = VOCDetection(root, 2007, "train")
    params = [p for p in detector.parameters() if p.requires_grad]
    opt = torch.optim.SGD(params, lr=0.02, momentum=0.9, weight_decay=5e-4)

    def step(batch):
        loss = sum(detector(batch.images, batch.targets).values())
        opt.zero_grad()
        loss.backward()
        opt.step()
        return float(loss.detach())

    train_iterations(detector, opt, batches=epoch_batches(
        DetectionItems(voc, train=True, flip=False), batch_size=2, seed=0, workers=0,
        collate=collate_detection), step=step, iterations=400, lr=0.02, stepsize=10**6,
        gamma=0.1, seed=0)
    set_scales(detector, spec, training=False)
    detections, truth = detect(detector, voc, batch_size=2, workers=0,
                               device=torch.device("cpu"), report=DecodeReport())
    assert voc07_det_metrics(detections, truth)["map"] > 0.5


@pytest.mark.slow
def test_smoke_schedule_on_the_built_in_data(model, tmp_path):
    root = make_voc_set(tmp_path / "voc", seed=0)
    protocol = get_protocol("voc07-det")
    rows = protocol.run(model, root, protocol.resolve_config(schedule="smoke"), run_id="t",
                        device="cpu", progress=False, work_dir=tmp_path / "run")
    assert any(r.metric == "map" for r in rows)
