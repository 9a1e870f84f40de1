"""`voc07-det`: PASCAL VOC2007 object detection transfer (ECCV Tables 2-4 "det").

What the paper did: Fast R-CNN (py-faster-rcnn) on the DeepCluster AlexNet/VGG16, trained
on VOC07 trainval with selective-search proposals, tested on VOC07 test (hyperparameters
never released; the community protocol of Krähenbühl et al. is multi-scale training,
single-scale testing, 150k iterations, lr /10 every 50k).

What we run: selective-search proposals are not available here (no precomputed boxes, no
maintained implementation), so the detector is torchvision's **Faster R-CNN**, whose RPN
produces the proposals and is trained jointly, built on our trunk (`voc_detector.py`):
Sobel + conv1-conv5 (no last max-pool) as the backbone, RoIAlign to fc6's grid, and the
pretrained fc6/fc7 as the box head (Fast R-CNN's reuse of the classifier). Consequently
numbers are comparable in spirit, not digit for digit, with the published ones.

Settings (published schedule): SGD lr 0.001, momentum 0.9, wd 5e-4, 150k iterations of 2
images, lr x0.1 every 50k; training short side drawn from {480, 576, 688, 864, 1200} (max
2000) with horizontal flips, test short side 600 (max 1000); 64 RoIs per image, 25%
foreground; test NMS 0.3, score threshold 0.05, 100 detections per image (Fast R-CNN test
settings); RPN anchors of sizes 32-512 x aspect ratios 0.5/1/2 on the one conv5 map,
other RPN settings torchvision's defaults (2000/1000 proposals after NMS 0.7 in
training/testing); "difficult" objects are left out of training. `train_layers=fc6-8`
freezes the conv trunk (RPN and heads train), `all` fine-tunes it; the trunk's BN uses its
stored statistics. Pixel sizes are for a 224-px model and scale with `input_size` (x64/224
for `alexnet_small`).

Metric: the official VOC07 AP (`voc/metrics.py`): IoU >= 0.5, difficult objects neither
counted nor penalised, duplicates false positives, 11-point interpolation (`ap_method=all`
for the VOC2010+ all-point variant); mAP = mean over classes. Switches (defaults = the MATLAB
devkit's rules, exactly): `ap_thresholds` exact | devkit (py-faster-rcnn's
`np.arange(0., 1.1, 0.1)` with `rec >= t`, so a recall of exactly 0.3/0.6/0.7 misses its
point), `score_order` stable | quicksort (tied scores), `iou_match` ge | gt (IoU exactly 0.5),
`det_rounding` none | py-faster-rcnn (scores to 3 decimals and boxes to 0.1 px, as its
results files hold them: `'{:.3f} {:.1f} ...'`; at most ~2e-4 AP).
Dialects: `dc2018`; `faithful-2018` = py-faster-rcnn's `_write_voc_results_file` +
`voc_eval.py` (py-faster-rcnn rounding, devkit, quicksort, gt), where most published
detection numbers were computed.

Schedules: `smoke` (built-in data, ~1-2 min on 2 CPU cores) changes only: iterations 200,
stepsize 150, checkpoint every 50, workers 0.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import torch
from torch.utils.data import Dataset, Subset
from torchvision.transforms import v2

from dcbench.core.bounds import MAX_COUNT, MAX_IMAGE_SIDE, bounded
from dcbench.core.dist_eval import broadcast_buffers, gather_objects, sync_gradients
from dcbench.core.distributed import current
from dcbench.core.errors import UserError
from dcbench.data.crop_plan import CropPlan, Draws
from dcbench.data.loader import DecodeReport
from dcbench.data.pipeline import target_loader
from dcbench.data.planned_targets import boxes_by_draws
from dcbench.data.voc import VOC_CLASSES, VOCDetection
from dcbench.engine.inference import eval_mode, inference_batches
from dcbench.engine.sharded import shard_positions
from dcbench.protocols.base import register_protocol
from dcbench.protocols.probe.feature_cache import dataset_fingerprint
from dcbench.protocols.voc.det_outcomes import detection_outcomes
from dcbench.protocols.voc.detector import (
    DetectorSpec,
    build_detector,
    continuous_to_voc,
    set_scales,
    voc_to_continuous,
)
from dcbench.protocols.voc.finetune_base import (
    FinetuneTask,
    ImageList,
    VOCFinetuneConfig,
    VOCFinetuneProtocol,
    epoch_batches,
)
from dcbench.protocols.voc.metrics import (
    ClassRanking,
    DetRounding,
    class_rankings,
    round_like_results_file,
    voc_detection_ap,
)
from dcbench.protocols.voc.nets import backbone_parts, layer_label, reinit_linear, set_trainable

if TYPE_CHECKING:
    from dcbench.models.backbone import Backbone


@dataclasses.dataclass
class VOC07DetConfig(VOCFinetuneConfig):
    """VOC07 detection fine-tuning; pixel sizes are for a 224-px model (scaled per model)."""

    split: Literal["trainval", "train"] = "trainval"
    iterations: int = bounded(150000, ge=1, le=MAX_COUNT)
    batch_size: int = bounded(2, ge=1, le=MAX_COUNT)
    lr: float = bounded(0.001, gt=0, le=10)
    stepsize: int = bounded(50000, ge=1, le=MAX_COUNT)
    lr_gamma: float = bounded(0.1, ge=0, le=1)
    weight_decay: float = bounded(5e-4, ge=0, le=1)
    train_scales: tuple[int, ...] = bounded((480, 576, 688, 864, 1200), ge=16, le=MAX_IMAGE_SIDE,
                                            min_len=1)
    train_max_size: int = bounded(2000, ge=16, le=MAX_IMAGE_SIDE)
    test_scale: int = bounded(600, ge=16, le=MAX_IMAGE_SIDE)
    test_max_size: int = bounded(1000, ge=16, le=MAX_IMAGE_SIDE)
    anchor_sizes: tuple[int, ...] = bounded((32, 64, 128, 256, 512), ge=1, le=MAX_IMAGE_SIDE,
                                            min_len=1)
    box_batch_size_per_image: int = bounded(64, ge=1, le=MAX_COUNT)
    box_nms_thresh: float = bounded(0.3, ge=0, le=1)
    flip: bool = True
    reinit_fc: bool = False  # True: fc6/fc7 re-initialised N(0, 0.01), bias 0.1
    ap_method: Literal["11point", "all"] = "11point"
    iou_threshold: float = bounded(0.5, gt=0, lt=1)
    ap_thresholds: Literal["exact", "devkit"] = "exact"
    score_order: Literal["stable", "quicksort"] = "stable"
    iou_match: Literal["ge", "gt"] = "ge"
    det_rounding: DetRounding = "none"  # py-faster-rcnn: score to 3 decimals, boxes to 0.1 px
    eval_batch_size: int = bounded(2, ge=1, le=MAX_COUNT)


def annotation_arrays(ann: dict[str, Any], source: str) -> dict[str, np.ndarray]:
    """A parsed VOC annotation -> boxes (VOC coordinates), class indices, difficult flags."""
    index = {name: i for i, name in enumerate(VOC_CLASSES)}
    unknown = sorted({o["name"] for o in ann["objects"]} - set(index))
    if unknown:
        raise UserError(f"{source}: unknown VOC class name(s) {', '.join(unknown)}")
    objects = ann["objects"]
    return {
        "boxes": np.array([o["bbox"] for o in objects], dtype=np.float64).reshape(-1, 4),
        "labels": np.array([index[o["name"]] for o in objects], dtype=np.int64),
        "difficult": np.array([bool(o["difficult"]) for o in objects], dtype=bool),
    }


class DetectionItems(Dataset):
    """(image in [0, 1], torchvision target, index) items; training drops difficult boxes
    and flips half the images (torch RNG, seeded per item by `SeededView`). With
    `input_pipeline: dali` the same flips are drawn by `joint_plan` / `planned_target`
    (`data.planned_targets`) and DALI decodes the images."""

    def __init__(self, voc: VOCDetection, *, train: bool, flip: bool) -> None:
        self.voc, self.train, self.flip = voc, train, flip
        self.samples = voc.samples

    def __len__(self) -> int:
        return len(self.voc)

    def _target(self, ann: dict[str, Any], index: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The continuous boxes and 1-based labels (difficult ones left out in training)."""
        arrays = annotation_arrays(ann, self.voc.ids[index])
        keep = ~arrays["difficult"] if self.train else np.ones(len(arrays["labels"]), bool)
        boxes = torch.from_numpy(voc_to_continuous(arrays["boxes"][keep]))
        return boxes, torch.from_numpy(arrays["labels"][keep] + 1)  # 0 is the background

    def __getitem__(self, index: int) -> tuple[Any, dict[str, torch.Tensor], int]:
        image, ann, _ = self.voc[index]
        boxes, labels = self._target(ann, index)
        if image is not None and self.train and self.flip and bool(torch.rand(()) < 0.5):
            width = image.shape[-1]
            image = image.flip(-1)
            boxes = torch.stack([width - boxes[:, 2], boxes[:, 1],
                                 width - boxes[:, 0], boxes[:, 3]], dim=1)
        return image, {"boxes": boxes, "labels": labels}, index

    def joint_plan(self) -> CropPlan:
        """The geometry for the DALI input pipeline: the full image in [0, 1] (mean 0, std
        1), mirrored with probability 1/2 in training (one `torch.rand` draw, as above)."""
        return CropPlan([v2.RandomHorizontalFlip(0.5)] if self.train and self.flip else [])

    def planned_target(self, index: int, shape: tuple[int, int], plan: CropPlan
                       ) -> tuple[Draws, dict[str, torch.Tensor]]:
        """For DALI: item `index`'s draws (image of oriented `shape`) and its target moved
        by them (`boxes_by_draws`: the flip arithmetic of `__getitem__`)."""
        boxes, labels = self._target(self.voc.annotation(index), index)
        draws = plan.draw(*shape)
        return draws, {"boxes": boxes_by_draws(boxes, draws), "labels": labels}


@dataclasses.dataclass
class DetBatch:
    """A detection batch: lists (images differ in size) plus undecodable indices."""

    images: ImageList
    targets: list[dict[str, torch.Tensor]]
    indices: list[int]
    bad: list[int]

    def __len__(self) -> int:
        return len(self.images)


def collate_detection(items: list[tuple[Any, dict, int]]) -> DetBatch:
    """Keep decodable items as lists; record the others in `bad`."""
    good = [item for item in items if item[0] is not None]
    return DetBatch(ImageList(g[0] for g in good), [g[1] for g in good], [g[2] for g in good],
                    [item[2] for item in items if item[0] is None])


def voc07_det_metrics(detections: list[dict[str, np.ndarray]],
                      ground_truth: list[dict[str, np.ndarray]], *,
                      method: str = "11point", iou_threshold: float = 0.5,
                      ap_thresholds: str = "exact", score_order: str = "stable",
                      iou_match: str = "ge", det_rounding: str = "none") -> dict[str, float]:
    """Pure core: per-image detections and ground truth -> `map` and `ap_<class>`.

    `det_rounding=py-faster-rcnn` first rounds the detections as its results files do."""
    return voc07_det_scores(detections, ground_truth, method=method,
                            iou_threshold=iou_threshold, ap_thresholds=ap_thresholds,
                            score_order=score_order, iou_match=iou_match,
                            det_rounding=det_rounding)[0]


def voc07_det_scores(detections: list[dict[str, np.ndarray]],
                     ground_truth: list[dict[str, np.ndarray]], *,
                     method: str = "11point", iou_threshold: float = 0.5,
                     ap_thresholds: str = "exact", score_order: str = "stable",
                     iou_match: str = "ge", det_rounding: str = "none"
                     ) -> tuple[dict[str, float], list[ClassRanking]]:
    """`voc07_det_metrics` plus the ranked, matched detections of every class that made
    them (the per-detection records of the paired intervals come from those)."""
    if det_rounding == "py-faster-rcnn":
        detections = round_like_results_file(detections)
    rankings = class_rankings(detections, ground_truth, len(VOC_CLASSES),
                              iou_threshold=iou_threshold, score_order=score_order,
                              iou_match=iou_match)
    aps = voc_detection_ap(detections, ground_truth, len(VOC_CLASSES),
                           iou_threshold=iou_threshold, method=method,
                           ap_thresholds=ap_thresholds, score_order=score_order,
                           iou_match=iou_match, rankings=rankings)
    metrics = {"map": float(np.nanmean(aps)) if np.isfinite(aps).any() else float("nan")}
    metrics.update({f"ap_{name}": float(ap) for name, ap in zip(VOC_CLASSES, aps, strict=True)})
    return metrics, rankings


def detect(detector: torch.nn.Module, voc: VOCDetection, *, batch_size: int, workers: int,
           device: torch.device, report: DecodeReport, progress: bool = False,
           pipeline: str = "cpu"
           ) -> tuple[list[dict[str, np.ndarray]], list[dict[str, np.ndarray]]]:
    """Run the detector over `voc`: (detections, ground truth) in VOC box coordinates,
    for the images that decoded (the others are recorded in `report` and left out); images
    read through `pipeline` (`data.pipeline.target_loader`). Under torchrun each rank
    detects a contiguous shard and the per-image results are gathered in dataset order on
    every rank."""
    items = DetectionItems(voc, train=False, flip=False)
    mine = Subset(items, shard_positions(np.arange(len(items))).tolist())
    loader = target_loader(mine, batch_size, collate=collate_detection, pipeline=pipeline,
                           device=device, workers=workers)
    detections, ground_truth, order = [], [], []
    with eval_mode(detector):
        batches = inference_batches(loader, detector, device=device, dataset=voc, report=report,
                                    progress=progress, desc="detect", total=len(mine))
        for batch, outputs in batches:
            for index, out in zip(batch.indices, outputs, strict=True):
                order.append(int(index))
                detections.append({
                    "boxes": continuous_to_voc(out["boxes"].cpu().numpy()),
                    "labels": out["labels"].cpu().numpy() - 1,
                    "scores": out["scores"].cpu().numpy(),
                })
                ground_truth.append(annotation_arrays(voc.annotation(index), voc.ids[index]))
    if current().active:  # every rank's images, in dataset order
        mine_rows = list(zip(order, detections, ground_truth, strict=True))
        parts = [p for part in gather_objects(mine_rows) for p in part]
        parts.sort(key=lambda p: p[0])
        detections, ground_truth = [p[1] for p in parts], [p[2] for p in parts]
    return detections, ground_truth


@register_protocol("voc07-det")
class VOC07Detection(VOCFinetuneProtocol):
    """VOC07 detection with a Faster R-CNN on our trunk, VOC07 11-point mAP on test."""

    Config = VOC07DetConfig
    DIALECTS = {
        "dc2018": {},
        "faithful-2018": {"ap_thresholds": "devkit", "score_order": "quicksort",
                          "iou_match": "gt", "det_rounding": "py-faster-rcnn"},
    }
    SCHEDULES = {
        "published": {},
        "smoke": {"iterations": 200, "stepsize": 150, "checkpoint_every": 50, "workers": 0},
    }
    summary = "VOC2007 detection (Faster R-CNN on our trunk; fc6-8 | all), VOC07 AP@0.5"
    DATASET = "voc2007"
    POSITIVE_KEYS = ("iterations", "batch_size", "lr", "stepsize", "eval_batch_size",
                     "checkpoint_every", "test_scale", "test_max_size")

    def build(self, model: Backbone, data_dir: str | Path, config: VOC07DetConfig,
              device: torch.device, report: DecodeReport, progress: bool) -> FinetuneTask:
        """The detector on our trunk, the detection data and step, and the VOC07 AP eval."""
        eval_split = "val" if config.split == "train" else "test"
        train_voc = VOCDetection(data_dir, 2007, config.split)
        eval_voc = VOCDetection(data_dir, 2007, eval_split)
        factor = float(model.config.get("input_size", 224)) / 224.0

        def px(value: float) -> int:
            return max(1, round(value * factor))

        spec = DetectorSpec(
            train_scales=tuple(px(s) for s in config.train_scales),
            train_max_size=px(config.train_max_size), test_scale=px(config.test_scale),
            test_max_size=px(config.test_max_size),
            anchor_sizes=tuple(px(s) for s in config.anchor_sizes),
            box_batch_size_per_image=config.box_batch_size_per_image,
            box_nms_thresh=config.box_nms_thresh,
        )
        parts = backbone_parts(model, self.name)
        if config.reinit_fc:
            generator = torch.Generator().manual_seed(config.seed)
            for layer in parts.linears():
                reinit_linear(layer, generator)
        detector = build_detector(parts, spec, len(VOC_CLASSES) + 1, model.config["mean"],
                                  model.config["std"], config.seed)
        set_trainable(detector.backbone, config.train_layers, config.train_bn_scales)
        detector.to(device)
        set_scales(detector, spec, training=True)

        def step(batch: DetBatch, optimizer: torch.optim.Optimizer) -> float | None:
            report.add(batch.bad, train_voc)
            optimizer.zero_grad(set_to_none=True)
            value = 0.0
            if batch.images:  # (torchrun: this rank's slice may be empty; it still syncs)
                losses = detector([im.to(device) for im in batch.images],
                                  [{k: v.to(device) for k, v in t.items()}
                                   for t in batch.targets])
                loss = sum(losses.values())
                loss.backward()
                value = float(loss.detach())
            # torchrun: gradients averaged over ranks weighted by images (DDP's average for
            # equal slices; the RPN/ROI losses are means over each rank's samples)
            rows, value = sync_gradients([p for g in optimizer.param_groups
                                          for p in g["params"]], len(batch.images), value)
            broadcast_buffers(detector)
            if rows == 0:
                return None
            optimizer.step()
            return value

        def evaluate() -> tuple[dict[str, dict[str, float]], dict[str, Any]]:
            set_scales(detector, spec, training=False)
            detections, ground_truth = detect(
                detector, eval_voc, batch_size=config.eval_batch_size, workers=config.workers,
                device=device, report=report, progress=progress,
                pipeline=config.input_pipeline)
            metrics, rankings = voc07_det_scores(detections, ground_truth,
                                                 **metric_switches(config))
            # the per-detection records: paired intervals of the mAP between runs
            self.keep_outcomes([detection_outcomes(
                eval_split, layer_label(config.train_layers, config.train_bn_scales),
                detection_listing(eval_voc), rankings, ground_truth,
                ap_method=config.ap_method, ap_thresholds=config.ap_thresholds,
                seed=config.seed)])
            return {eval_split: metrics}, {}

        return FinetuneTask(
            net=detector, iterations=config.iterations, lr=config.lr, stepsize=config.stepsize,
            batches=epoch_batches(DetectionItems(train_voc, train=True, flip=config.flip),
                                  batch_size=config.batch_size, seed=config.seed,
                                  workers=config.workers, collate=collate_detection,
                                  pipeline=config.input_pipeline, device=device),
            step=step, evaluate=evaluate, headline="map")


def detection_listing(voc: VOCDetection) -> str:
    """The fingerprint of a detection split: its images and their annotation files."""
    return dataset_fingerprint([path for path, _ in voc.samples]
                               + [str(voc.folder / "Annotations" / f"{i}.xml") for i in voc.ids])


def metric_switches(config: VOC07DetConfig) -> dict[str, Any]:
    """The AP settings of a config, as `voc07_det_metrics` keywords."""
    return {"method": config.ap_method, "iou_threshold": config.iou_threshold,
            "ap_thresholds": config.ap_thresholds, "score_order": config.score_order,
            "iou_match": config.iou_match, "det_rounding": config.det_rounding}
