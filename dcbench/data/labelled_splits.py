"""The one check of a labelled classification benchmark (train + an evaluation split).

`open_labelled_splits` is what `dcbench eval` (linear-conv, mlp, low-shot, knn) reads and
what `dcbench data check` runs, so a tree that passes the check is one eval accepts.
"""

from __future__ import annotations

import os
from typing import Any

from dcbench.core.errors import UserError
from dcbench.data.folders import find_dataset


def open_labelled_splits(root: str | os.PathLike, eval_split: str = "val"
                         ) -> tuple[Any, Any, int]:
    """(train, eval dataset, number of classes): `ROOT/train` + `ROOT/<eval_split>` folders or
    list files, with the same classes, labelled, at least two classes; UserError otherwise."""
    train = find_dataset(root, "train")
    val = find_dataset(root, eval_split)
    train_classes = list(getattr(train, "classes", []))
    val_classes = list(getattr(val, "classes", []))
    folders = hasattr(train, "class_to_idx") and hasattr(val, "class_to_idx")
    if folders and train_classes != val_classes:
        missing = sorted(set(val_classes) ^ set(train_classes))[:5]
        raise UserError(
            f"train and {eval_split} splits of {root} have different classes "
            f"(e.g. {', '.join(missing)}); both must hold the same class folders"
        )
    if (train.targets < 0).any():
        raise UserError(f"{root}/train has unlabelled images; this protocol needs labels")
    num_classes = int(max(train.targets.max(), val.targets.max())) + 1
    if num_classes < 2:
        raise UserError(f"{root} has a single class; classification needs at least two")
    return train, val, num_classes
