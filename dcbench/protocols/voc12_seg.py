"""`voc12-seg`: PASCAL VOC2012 semantic segmentation transfer (ECCV Table 2 "seg").

The paper used the FCN code of Shelhamer et al. (fcn.berkeleyvision.org) and reported mIoU
on VOC2012 val; DeepCluster's solver was never released, so the defaults follow the
reference setup of Zhang et al. for these comparisons (UNVERIFIED for DeepCluster itself):
FCN-32s (`voc_fcn.py`) on full-size images (no resizing, no augmentation), per-pixel
softmax cross-entropy summed over non-ignored pixels (Caffe `normalize: false`), gradients
accumulated over 20 images per iteration (`iter_size` 20, averaged), SGD lr 1e-4, momentum
0.9, wd 5e-4, 150k iterations in three 50k phases (lr x0.1 at each phase; the exact drop is
not documented). fc6/fc7 keep their pretrained weights, convolutionalised;
`train_layers=fc6-8` freezes the conv trunk, `all` fine-tunes it; BN always uses its
stored statistics. Training on VOC12 `train`; `list_file` + `mask_dir` switch to the
SBD-augmented list (e.g. `train_aug.txt` + `SegmentationClassAug`).

Metric (`voc_metrics`): a 21x21 confusion matrix over val pixels, 255 ignored; per-class
IoU = TP / (TP + FP + FN); mIoU = mean over the classes present in the ground truth or the
prediction (a class absent from both is undefined and left out, the FCN nan-mean); also
pixel accuracy (`accuracy`).

Schedules: `smoke` (built-in data, ~1 min on 2 CPU cores) changes: iterations 60, 2 images
per iteration, loss averaged over pixels (`loss_normalize`) with lr 0.01 (a sum-over-pixels
loss at lr 1e-4 is tuned for 500x375 images and 150k iterations), stepsize 40, checkpoint
every 20, workers 0.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import torch
from torch import nn
from torch.utils.data import Subset
from torchvision.transforms import v2

from dcbench.core.bounds import MAX_COUNT, bounded
from dcbench.core.dist_eval import broadcast_buffers, gather_objects, sync_gradients
from dcbench.core.outcomes import ItemOutcomes
from dcbench.data.loader import DecodeReport
from dcbench.data.pipeline import target_loader
from dcbench.data.voc import IGNORE_INDEX, VOC_CLASSES, VOCSegmentation
from dcbench.engine.inference import eval_mode, inference_batches
from dcbench.engine.sharded import shard_positions, sum_arrays
from dcbench.protocols.base import register_protocol
from dcbench.protocols.probe.feature_cache import dataset_fingerprint
from dcbench.protocols.voc.fcn import FCNNet
from dcbench.protocols.voc.finetune_base import (
    FinetuneTask,
    ImageList,
    VOCFinetuneConfig,
    VOCFinetuneProtocol,
    epoch_batches,
)
from dcbench.protocols.voc.metrics import confusion_matrix, segmentation_scores
from dcbench.protocols.voc.nets import (
    backbone_parts,
    layer_label,
    reinit_linear,
    set_trainable,
)

if TYPE_CHECKING:
    from dcbench.models.backbone import Backbone

SEG_CLASSES: tuple[str, ...] = ("background", *VOC_CLASSES)


@dataclasses.dataclass
class VOC12SegConfig(VOCFinetuneConfig):
    """VOC12 FCN-32s fine-tuning; defaults = the Zhang et al. FCN reference solver."""

    split: Literal["train", "trainval"] = "train"
    eval_split: Literal["val", "train"] = "val"
    list_file: str | None = None  # e.g. the SBD-augmented train_aug.txt
    mask_dir: str = "SegmentationClass"  # e.g. SegmentationClassAug with list_file
    iterations: int = bounded(150000, ge=1, le=MAX_COUNT)
    # images per iteration (FCN iter_size), one forward each
    batch_size: int = bounded(20, ge=1, le=MAX_COUNT)
    lr: float = bounded(1e-4, gt=0, le=10)
    stepsize: int = bounded(50000, ge=1, le=MAX_COUNT)
    lr_gamma: float = bounded(0.1, ge=0, le=1)
    weight_decay: float = bounded(5e-4, ge=0, le=1)
    loss_normalize: bool = False  # False: sum over pixels (FCN); True: mean over pixels
    flip: bool = False
    reinit_fc: bool = False  # True: fc6/fc7 re-initialised N(0, 0.01), bias 0.1


@dataclasses.dataclass
class SegBatch:
    """Images of different sizes as lists, plus the undecodable indices."""

    images: ImageList
    masks: list[torch.Tensor]
    indices: list[int]
    bad: list[int]

    def __len__(self) -> int:
        return len(self.images)


def collate_segmentation(items: list[tuple[Any, Any, int]]) -> SegBatch:
    """Keep decodable (image, mask) pairs as lists; record the others in `bad`."""
    good = [item for item in items if item[0] is not None]
    return SegBatch(ImageList(g[0] for g in good), [torch.as_tensor(g[1]) for g in good],
                    [g[2] for g in good], [item[2] for item in items if item[0] is None])


def seg_transform(mean: list[float], std: list[float], flip: bool) -> v2.Compose:
    """Full-size image normalised (and optionally flipped together with its mask)."""
    steps: list[nn.Module] = [v2.ToImage()]
    if flip:
        steps.append(v2.RandomHorizontalFlip())
    steps += [v2.ToDtype(torch.float32, scale=True), v2.Normalize(mean, std)]
    return v2.Compose(steps)


def segmentation_loss(logits: torch.Tensor, mask: torch.Tensor, normalize: bool) -> torch.Tensor:
    """Per-pixel cross-entropy, 255 ignored; summed (FCN) or averaged over valid pixels."""
    loss = nn.functional.cross_entropy(logits, mask.long(), ignore_index=IGNORE_INDEX,
                                       reduction="sum")
    if normalize:
        loss = loss / (mask != IGNORE_INDEX).sum().clamp(min=1)
    return loss


def voc12_seg_metrics(cm: np.ndarray) -> dict[str, float]:
    """Pure core: a 21x21 confusion matrix -> `miou`, `accuracy`, `iou_<class>`."""
    scores = segmentation_scores(cm)
    metrics = {"miou": float(scores["miou"]), "accuracy": float(scores["pixel_acc"])}
    metrics.update({f"iou_{name}": float(v)
                    for name, v in zip(SEG_CLASSES, scores["iou"], strict=True)})
    return metrics


def segment_confusion(net: nn.Module, dataset: VOCSegmentation, *, device: torch.device,
                      workers: int, report: DecodeReport, progress: bool = False,
                      per_image: list[np.ndarray] | None = None,
                      pipeline: str = "cpu") -> np.ndarray:
    """Accumulate the confusion matrix of the argmax prediction over `dataset` (full images,
    read through `pipeline`: `data.pipeline.target_loader`). `per_image`, when given,
    receives each image's confusion matrix in dataset order."""
    cm = np.zeros((len(SEG_CLASSES), len(SEG_CLASSES)), dtype=np.int64)
    mine = Subset(dataset, shard_positions(np.arange(len(dataset))).tolist())  # torchrun
    mine_cms: list[np.ndarray] = []
    loader = target_loader(mine, 1, collate=collate_segmentation, pipeline=pipeline,
                           device=device, workers=workers)

    def predict(images: list[torch.Tensor]) -> list[np.ndarray]:
        return [net(image.unsqueeze(0)).argmax(1)[0].cpu().numpy() for image in images]

    with eval_mode(net):
        for batch, preds in inference_batches(loader, predict, device=device, dataset=dataset,
                                              report=report, progress=progress, desc="segment",
                                              total=len(mine)):
            for pred, mask in zip(preds, batch.masks, strict=True):
                image_cm = confusion_matrix(pred, mask.numpy(), len(SEG_CLASSES), IGNORE_INDEX)
                cm += image_cm
                if per_image is not None:
                    mine_cms.append(image_cm)
    if per_image is not None:  # torchrun: every rank's contiguous shard, in dataset order
        per_image.extend(cm_i for part in gather_objects(mine_cms) for cm_i in part)
    return sum_arrays(cm)  # torchrun: every rank's images, each counted once


def miou_outcomes(split: str, layer: str, dataset: VOCSegmentation,
                  per_image: list[np.ndarray], seed: int) -> ItemOutcomes:
    """Per-image pixel counts behind `miou` (intersection, predicted, true per class),
    keyed by the split's image listing."""
    stack = np.stack(per_image) if per_image else np.zeros((0, len(SEG_CLASSES),
                                                            len(SEG_CLASSES)), np.int64)
    arrays = {"inter": np.diagonal(stack, axis1=1, axis2=2).copy(), "pred": stack.sum(1),
              "gt": stack.sum(2)}
    listing = dataset_fingerprint([path for path, _ in dataset.samples])
    return ItemOutcomes(split, layer, "miou", "confusion", listing, arrays, seed)


@register_protocol("voc12-seg")
class VOC12Segmentation(VOCFinetuneProtocol):
    """VOC12 segmentation with FCN-32s on our trunk (fc6-8 | all), mIoU on val."""

    Config = VOC12SegConfig
    DIALECTS = {"dc2018": {}}
    SCHEDULES = {
        "published": {},
        "smoke": {"iterations": 60, "batch_size": 2, "loss_normalize": True, "lr": 0.01,
                  "stepsize": 40, "checkpoint_every": 20, "workers": 0},
    }
    summary = "VOC2012 segmentation (FCN-32s on our trunk; fc6-8 | all), val mIoU"
    DATASET = "voc2012"
    POSITIVE_KEYS = ("iterations", "batch_size", "lr", "stepsize", "checkpoint_every")

    def build(self, model: Backbone, data_dir: str | Path, config: VOC12SegConfig,
              device: torch.device, report: DecodeReport, progress: bool) -> FinetuneTask:
        """FCN-32s on our trunk, full-size images, the per-pixel loss and the mIoU eval."""
        mean, std = list(model.config["mean"]), list(model.config["std"])
        train_set = VOCSegmentation(data_dir, 2012, config.split,
                                    transform=seg_transform(mean, std, config.flip),
                                    list_file=config.list_file, mask_dir=config.mask_dir)
        eval_set = VOCSegmentation(data_dir, 2012, config.eval_split,
                                   transform=seg_transform(mean, std, False))
        parts = backbone_parts(model, self.name)
        if config.reinit_fc:
            generator = torch.Generator().manual_seed(config.seed)
            for layer in parts.linears():
                reinit_linear(layer, generator)
        net = FCNNet(parts, len(SEG_CLASSES))
        set_trainable(net, config.train_layers, config.train_bn_scales)
        net.to(device)

        def step(batch: SegBatch, optimizer: torch.optim.Optimizer) -> float | None:
            report.add(batch.bad, train_set)
            optimizer.zero_grad(set_to_none=True)
            total = 0.0
            for image, mask in zip(batch.images, batch.masks, strict=True):
                logits = net(image.unsqueeze(0).to(device))
                loss = segmentation_loss(logits, mask.unsqueeze(0).to(device),
                                         config.loss_normalize) / len(batch.images)
                loss.backward()
                total += float(loss.detach())
            # torchrun: this rank's slice of the global batch (maybe empty) -> the global
            # batch's mean gradient; one image per forward, so BN sees what one process sees
            rows, total = sync_gradients([p for g in optimizer.param_groups for p in g["params"]],
                                         len(batch.images), total)
            broadcast_buffers(net)
            if rows == 0:
                return None
            optimizer.step()
            return total

        def evaluate() -> tuple[dict[str, dict[str, float]], dict[str, Any]]:
            per_image: list[np.ndarray] = []
            cm = segment_confusion(net, eval_set, device=device, workers=config.workers,
                                   report=report, progress=progress, per_image=per_image,
                                   pipeline=config.input_pipeline)
            self.keep_outcomes([miou_outcomes(
                config.eval_split, layer_label(config.train_layers, config.train_bn_scales),
                eval_set, per_image, config.seed)])
            return {config.eval_split: voc12_seg_metrics(cm)}, {"confusion_matrix": cm.tolist()}

        return FinetuneTask(
            net=net, iterations=config.iterations, lr=config.lr, stepsize=config.stepsize,
            batches=epoch_batches(train_set, batch_size=config.batch_size, seed=config.seed,
                                  workers=config.workers, collate=collate_segmentation,
                                  pipeline=config.input_pipeline, device=device),
            step=step, evaluate=evaluate, headline="miou")
