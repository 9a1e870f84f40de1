"""Expected cost of each demo step, in image passes, from the demo's sizes.

One unit is about one 64-px image through `alexnet_small` forward; a training image is a
forward and a backward (3 units) plus its share of the epoch's feature pass (1 unit). The numbers
only weight the steps against each other for the whole-demo ETA (`cli/demo_steps.py`),
which then rescales them with the seconds each kind of step actually took, so they need to
be roughly proportional, not exact. The per-kind constants were calibrated on one
`dcbench demo --quick` run on the 2-core VM (measured under load): with them every kind of
step took 0.0062-0.0071 s per unit there (training: 0.0069); on the quiet VM a whole demo
took 0.00093 s per unit and `--quick` 0.00104.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

SHAPE_CLASSES = 8
DIGIT_CLASSES = 10
N_DIGITS = 1797
DIGITS_VAL_FRACTION = 0.25

TRAIN_UNITS = 4.0  # per image and epoch: features (1) + forward/backward (3)
SYNTH_UNITS = 0.5  # per generated image (drawing + PNG encoding)
DIGIT_IMAGE_UNITS = 0.2  # per written digit (8x8 upscaled, PNG encoding)
#: per image of the train + val splits: linear-conv extracts the features (filling the
#: cache) and trains 5 probes; knn, knn-graph and nmi mostly read that cache
EVAL_UNITS = {"linear-conv": 4.0, "knn": 0.1, "knn-graph": 0.3, "nmi": 0.16}
VOC_UNITS_PER_ITER, VOC_UNITS_PER_IMAGE = 12.0, 2.5  # fine-tune batches; 10-crop test
LOW_SHOT_UNITS_PER_ITER = 32.0  # one batch of 32 images, forward and backward
REPORT_UNITS = 450.0


class SizeLike(Protocol):
    """The fields of `cli.demo.DemoSize` the costs read."""

    per_class: int
    val_per_class: int
    voc_images: tuple[int, int, int]
    digits_per_class: int | None
    low_shot: tuple[str, ...]
    voc_iters: int


@dataclass(frozen=True)
class DemoCosts:
    """Expected units per step for one demo size."""

    size: SizeLike

    @property
    def shapes_train(self) -> int:
        """Training images of the shapes."""
        return SHAPE_CLASSES * self.size.per_class

    @property
    def shapes_val(self) -> int:
        """Validation images of the shapes."""
        return SHAPE_CLASSES * self.size.val_per_class

    @property
    def digits_total(self) -> int:
        """Digits written (all 1,797, or `digits_per_class` of each)."""
        per_class = self.size.digits_per_class
        return N_DIGITS if per_class is None else DIGIT_CLASSES * per_class

    @property
    def digits_train(self) -> int:
        """Training images of the digits (75%)."""
        return round(self.digits_total * (1 - DIGITS_VAL_FRACTION))

    def synth(self) -> float:
        """`data synth --kind all`: shapes train + val and the VOC images."""
        return SYNTH_UNITS * (self.shapes_train + self.shapes_val + sum(self.size.voc_images))

    def digits_data(self) -> float:
        """`data digits`."""
        return DIGIT_IMAGE_UNITS * self.digits_total

    def train(self, epochs: int, images: int) -> float:
        """One DeepCluster run."""
        return TRAIN_UNITS * epochs * images

    def eval(self, protocol: str, dataset: str) -> float:
        """One evaluation on `dataset` (`cls`, `digits` or the VOC folder)."""
        if protocol == "voc07-cls":
            return (VOC_UNITS_PER_ITER * self.size.voc_iters
                    + VOC_UNITS_PER_IMAGE * sum(self.size.voc_images))
        if protocol == "low-shot":  # per draw and shot: fine-tunes from checkpoint and random
            values = dict(item.split("=", 1) for item in self.size.low_shot)
            shots = [int(s) for s in values.get("shots", "[4,16]").strip("[]").split(",")]
            draws, iterations = int(values.get("draws", 3)), int(values.get("iterations", 50))
            return (2 * draws * len(shots) * iterations * LOW_SHOT_UNITS_PER_ITER
                    + 2 * self.shapes_val)
        images = (self.digits_total if dataset == "digits"
                  else self.shapes_train + self.shapes_val)
        return EVAL_UNITS[protocol] * images

    def report(self) -> float:
        """`leaderboard report` (reads the store, draws the curves)."""
        return REPORT_UNITS
