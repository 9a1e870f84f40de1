"""A torchvision Faster R-CNN built on our AlexNet/VGG trunks, and VOC box conventions.

The detector: backbone = Sobel (frozen) + the conv trunk up to conv5 *without* its last
max-pool (stride 16 for AlexNet/VGG16, as Fast R-CNN's RoI pooling read conv5); an RPN
(`AnchorGenerator`, one feature map); `MultiScaleRoIAlign` pooling each RoI to the grid
fc6 expects (6x6 AlexNet, 7x7 VGG16, 3x3 alexnet_small), so the box head *is* the
pretrained fc6/fc7 (with their dropouts), reused as Fast R-CNN did; a new Fast R-CNN
predictor (21-way scores N(0, 0.01), box deltas N(0, 0.001)).

Box conventions: VOC boxes are 1-based inclusive pixel indices; torchvision boxes are
continuous corners. A VOC box (x1, y1, x2, y2) covers [x1 - 1, x2] x [y1 - 1, y2], and a
predicted continuous box (a, b, c, d) is written back as (a + 1, b + 1, c, d), so a
perfect prediction round-trips exactly and the devkit's `+1` widths hold.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn
from torchvision.models.detection import FasterRCNN
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor
from torchvision.ops import MultiScaleRoIAlign

from dcbench.protocols.voc.nets import BackboneParts


def voc_to_continuous(boxes: np.ndarray) -> np.ndarray:
    """VOC 1-based inclusive boxes -> continuous corners (x1 - 1, y1 - 1, x2, y2)."""
    out = np.asarray(boxes, dtype=np.float32).reshape(-1, 4).copy()
    out[:, :2] -= 1.0
    return out


def continuous_to_voc(boxes: np.ndarray) -> np.ndarray:
    """Continuous corners -> VOC 1-based inclusive boxes (x1 + 1, y1 + 1, x2, y2)."""
    out = np.asarray(boxes, dtype=np.float64).reshape(-1, 4).copy()
    out[:, :2] += 1.0
    return out


class DetectionTrunk(nn.Module):
    """Sobel + conv trunk without the last max-pool; always in eval mode (frozen BN stats)."""

    def __init__(self, parts: BackboneParts) -> None:
        super().__init__()
        layers = list(parts.features)
        if layers and isinstance(layers[-1], nn.MaxPool2d):
            layers = layers[:-1]
        self.sobel = parts.sobel or nn.Identity()
        self.features = nn.Sequential(*layers)
        self.out_channels = parts.conv_channels

    def train(self, mode: bool = True) -> DetectionTrunk:
        return super().train(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(self.sobel(x))


class FCBoxHead(nn.Module):
    """Flatten the pooled RoI and run the (pretrained) fc6/fc7 classifier."""

    def __init__(self, classifier: nn.Sequential) -> None:
        super().__init__()
        self.classifier = classifier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(x, 1))


@dataclasses.dataclass
class DetectorSpec:
    """Geometry and sampling settings of the detector (pixel sizes already scaled)."""

    train_scales: tuple[int, ...]
    train_max_size: int
    test_scale: int
    test_max_size: int
    anchor_sizes: tuple[int, ...]
    aspect_ratios: tuple[float, ...] = (0.5, 1.0, 2.0)
    box_batch_size_per_image: int = 64
    box_positive_fraction: float = 0.25
    box_score_thresh: float = 0.05
    box_nms_thresh: float = 0.3
    detections_per_img: int = 100


def build_detector(parts: BackboneParts, spec: DetectorSpec, num_classes: int,
                   mean: Sequence[float], std: Sequence[float], seed: int) -> FasterRCNN:
    """Faster R-CNN on `parts` (RPN + RoIAlign + fc6/fc7 box head); new layers seeded."""
    trunk = DetectionTrunk(parts)
    anchors = AnchorGenerator(sizes=(tuple(int(s) for s in spec.anchor_sizes),),
                              aspect_ratios=(tuple(spec.aspect_ratios),))
    pooler = MultiScaleRoIAlign(featmap_names=["0"], output_size=parts.grid, sampling_ratio=2)
    with torch.random.fork_rng(devices=[]):
        torch.default_generator.manual_seed(seed)  # the RPN head's init draws from it
        predictor = FastRCNNPredictor(parts.fc_dim, num_classes)
        generator = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            predictor.cls_score.weight.normal_(0.0, 0.01, generator=generator)
            predictor.bbox_pred.weight.normal_(0.0, 0.001, generator=generator)
            predictor.cls_score.bias.zero_()
            predictor.bbox_pred.bias.zero_()
        detector = FasterRCNN(
            trunk, num_classes=None, min_size=spec.train_scales, max_size=spec.train_max_size,
            image_mean=list(mean), image_std=list(std), rpn_anchor_generator=anchors,
            box_roi_pool=pooler, box_head=FCBoxHead(parts.classifier), box_predictor=predictor,
            box_score_thresh=spec.box_score_thresh, box_nms_thresh=spec.box_nms_thresh,
            box_detections_per_img=spec.detections_per_img,
            box_batch_size_per_image=spec.box_batch_size_per_image,
            box_positive_fraction=spec.box_positive_fraction,
        )
    return detector


def set_scales(detector: FasterRCNN, spec: DetectorSpec, training: bool) -> None:
    """Multi-scale training (a random short side per image) or single-scale testing."""
    if training:
        detector.transform.min_size = tuple(spec.train_scales)
        detector.transform.max_size = spec.train_max_size
    else:
        detector.transform.min_size = (spec.test_scale,)
        detector.transform.max_size = spec.test_max_size
