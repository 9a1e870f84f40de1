"""PASCAL VOC readers: classification (VOC07 protocol), detection, segmentation (VOC12).

Everything is read from the standard devkit files (ImageSets lists, Annotations XML,
SegmentationClass PNG masks) with the standard library and PIL; coordinates are kept
1-based exactly as written in the XML. Items follow the folder datasets' convention
`(image_or_None, target, index)` so `make_loader` batches them the same way.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset
from torchvision import tv_tensors

from dcbench.core.errors import UserError
from dcbench.data.crop_plan import CropPlan, Draws, plan_transform
from dcbench.data.decode import open_image
from dcbench.data.planned_targets import mask_by_draws
from dcbench.data.transforms import to_float_tensor

VOC_CLASSES: tuple[str, ...] = (
    "aeroplane",
    "bicycle",
    "bird",
    "boat",
    "bottle",
    "bus",
    "car",
    "cat",
    "chair",
    "cow",
    "diningtable",
    "dog",
    "horse",
    "motorbike",
    "person",
    "pottedplant",
    "sheep",
    "sofa",
    "train",
    "tvmonitor",
)
IGNORE_INDEX = 255

VOC_LAYOUT = """expected layout (any of these ROOTs is accepted):
  ROOT/VOCdevkit/VOC2007/{Annotations,ImageSets/Main,JPEGImages}
  ROOT = VOCdevkit:  ROOT/VOC2007/...
  ROOT = VOC2007:    ROOT/{Annotations,ImageSets,JPEGImages,SegmentationClass}"""


def voc_palette() -> list[int]:
    """The 256-entry VOC colour map (bit-interleaved class index), flattened RGB."""
    palette = []
    for index in range(256):
        r = g = b = 0
        c = index
        for shift in range(7, -1, -1):
            r |= (c & 1) << shift
            g |= ((c >> 1) & 1) << shift
            b |= ((c >> 2) & 1) << shift
            c >>= 3
        palette += [r, g, b]
    return palette


def find_voc(root: str | os.PathLike, year: str | int) -> Path:
    """Resolve the `VOC{year}` folder from its parent, `VOCdevkit/`, or the folder itself."""
    base = Path(root).expanduser()
    name = f"VOC{year}"
    for candidate in (base / "VOCdevkit" / name, base / name, base):
        if (candidate / "ImageSets").is_dir() and (candidate / "JPEGImages").is_dir():
            if candidate == base and base.name.startswith("VOC") and base.name != name:
                continue  # a different year's folder
            return candidate
    if not base.exists():
        raise UserError(f"VOC root not found: {base}", detail=VOC_LAYOUT)
    raise UserError(
        f"no {name} folder (with ImageSets/ and JPEGImages/) under {base}", detail=VOC_LAYOUT
    )


def _text(node: ET.Element | None, tag: str, default: str | None = None) -> str | None:
    found = node.find(tag) if node is not None else None
    return found.text.strip() if found is not None and found.text is not None else default


def read_annotation(xml_path: str | os.PathLike) -> dict[str, Any]:
    """Parse one VOC XML file: filename, width, height, depth and the list of objects.

    Each object is `dict(name, bbox=(xmin, ymin, xmax, ymax), difficult, truncated, pose)`
    with 1-based integer pixel coordinates as written. Raises UserError on malformed XML.
    """
    try:
        root = ET.parse(xml_path).getroot()
    except (ET.ParseError, OSError) as err:
        raise UserError(f"cannot read VOC annotation {xml_path}: {err}") from err
    size = root.find("size")
    objects = []
    for obj in root.findall("object"):
        box = obj.find("bndbox")
        try:
            bbox = tuple(
                int(round(float(_text(box, k) or "nan"))) for k in ("xmin", "ymin", "xmax", "ymax")
            )
        except ValueError as err:
            raise UserError(f"{xml_path}: object without a valid bndbox") from err
        objects.append(
            {
                "name": (_text(obj, "name") or "").lower(),
                "bbox": bbox,
                "difficult": int(_text(obj, "difficult", "0") or 0),
                "truncated": int(_text(obj, "truncated", "0") or 0),
                "pose": _text(obj, "pose", "Unspecified"),
            }
        )
    return {
        "filename": _text(root, "filename", ""),
        "width": int(_text(size, "width", "0") or 0),
        "height": int(_text(size, "height", "0") or 0),
        "depth": int(_text(size, "depth", "3") or 3),
        "objects": objects,
    }


def read_id_list(path: Path) -> list[str]:
    """Image ids, one per line (first token), from an ImageSets list."""
    if not path.is_file():
        raise UserError(f"VOC split list not found: {path}", detail=VOC_LAYOUT)
    text = path.read_text(encoding="utf-8-sig")  # -sig: a BOM (Windows editors) is dropped
    return [line.split()[0] for line in text.splitlines() if line.strip()]


def read_class_labels(folder: Path, split: str) -> tuple[list[str], np.ndarray]:
    """Read `ImageSets/Main/{cls}_{split}.txt` for the 20 classes -> (ids, int8 [N, 20])."""
    ids: list[str] | None = None
    columns = []
    for cls in VOC_CLASSES:
        path = folder / "ImageSets" / "Main" / f"{cls}_{split}.txt"
        if not path.is_file():
            raise UserError(f"VOC class list not found: {path}", detail=VOC_LAYOUT)
        text = path.read_text(encoding="utf-8-sig")
        rows = [line.split() for line in text.splitlines() if line.strip()]
        if any(len(r) != 2 or r[1] not in ("1", "0", "-1") for r in rows):
            raise UserError(f"{path}: every line must be `image_id label` with label 1, 0 or -1")
        if ids is None:
            ids = [r[0] for r in rows]
        elif [r[0] for r in rows] != ids:
            raise UserError(f"{path}: image ids differ from {VOC_CLASSES[0]}_{split}.txt")
        columns.append(np.array([int(r[1]) for r in rows], dtype=np.int8))
    return list(ids or []), np.stack(columns, axis=1)


class _VOCBase(Dataset):
    def __init__(self, root: str | os.PathLike, year: str | int, split: str) -> None:
        self.folder = find_voc(root, year)
        self.year, self.split = str(year), split

    def image_path(self, image_id: str) -> Path:
        return self.folder / "JPEGImages" / f"{image_id}.jpg"

    def __len__(self) -> int:
        return len(self.ids)


class VOCClassification(_VOCBase):
    """VOC multi-label classification: item = (image, int8[20] labels in {1,0,-1}, index).

    Label 0 means the image holds only `difficult` instances of the class (ignored by the
    VOC07 protocol). `.labels` is the full (N, 20) matrix.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        year: str | int = 2007,
        split: str = "trainval",
        transform: Callable[[Any], Any] | None = None,
    ) -> None:
        super().__init__(root, year, split)
        self.transform = transform
        self.ids, self.labels = read_class_labels(self.folder, split)
        self.samples = [
            (str(self.image_path(i)), row) for i, row in zip(self.ids, self.labels, strict=True)
        ]

    def __getitem__(self, index: int) -> tuple[Any, np.ndarray, int]:
        img = open_image(self.image_path(self.ids[index]))
        labels = self.labels[index]
        if img is None:
            return None, labels, index

        return (self.transform or to_float_tensor)(img), labels, index


class VOCDetection(_VOCBase):
    """VOC detection: item = (image, annotation dict from `read_annotation`, index)."""

    def __init__(
        self,
        root: str | os.PathLike,
        year: str | int = 2007,
        split: str = "trainval",
        transform: Callable[[Any], Any] | None = None,
    ) -> None:
        super().__init__(root, year, split)
        self.transform = transform
        self.ids = read_id_list(self.folder / "ImageSets" / "Main" / f"{split}.txt")
        self.samples = [(str(self.image_path(i)), -1) for i in self.ids]

    def annotation(self, index: int) -> dict[str, Any]:
        """The parsed XML of item `index` (no image decode)."""
        return read_annotation(self.folder / "Annotations" / f"{self.ids[index]}.xml")

    def __getitem__(self, index: int) -> tuple[Any, dict[str, Any], int]:
        target = self.annotation(index)
        img = open_image(self.image_path(self.ids[index]))
        if img is None:
            return None, target, index

        return (self.transform or to_float_tensor)(img), target, index


def read_mask(path: str | os.PathLike) -> np.ndarray:
    """A VOC mask as uint8 class indices (255 = ignore): palette ('P'), gray, or RGB colours."""
    with Image.open(path) as mask:
        if mask.mode in ("P", "L"):
            return np.array(mask, dtype=np.uint8)
        rgb = np.asarray(mask.convert("RGB"), dtype=np.int64)
    colour_to_index = {}
    palette = voc_palette()
    for index in [*range(len(VOC_CLASSES) + 1), IGNORE_INDEX]:
        r, g, b = palette[3 * index : 3 * index + 3]
        colour_to_index[(r << 16) | (g << 8) | b] = index
    keys = (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]
    out = np.full(keys.shape, IGNORE_INDEX, dtype=np.uint8)
    for key, index in colour_to_index.items():
        out[keys == key] = index
    return out


class VOCSegmentation(_VOCBase):
    """VOC semantic segmentation: item = (image, uint8 mask (H, W) with 255 = ignore, index).

    `transform`, if given, is called as `transform(image, mask)` with the mask wrapped as a
    `tv_tensors.Mask`, so torchvision v2 transforms crop/flip both consistently. `list_file`
    (e.g. the SBD-augmented `train_aug.txt`) and `mask_dir` (e.g. `SegmentationClassAug`)
    replace the standard split list and mask folder.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        year: str | int = 2012,
        split: str = "train",
        transform: Callable[..., Any] | None = None,
        *,
        list_file: str | os.PathLike | None = None,
        mask_dir: str = "SegmentationClass",
    ) -> None:
        super().__init__(root, year, split)
        self.transform = transform
        lst = (
            Path(list_file)
            if list_file
            else self.folder / "ImageSets" / "Segmentation" / (f"{split}.txt")
        )
        self.ids = read_id_list(lst)
        self.mask_folder = self.folder / mask_dir
        if not self.mask_folder.is_dir():
            raise UserError(f"VOC mask folder not found: {self.mask_folder}", detail=VOC_LAYOUT)
        self.samples = [(str(self.image_path(i)), -1) for i in self.ids]

    def mask_path(self, image_id: str) -> Path:
        return self.mask_folder / f"{image_id}.png"

    def joint_plan(self) -> CropPlan | None:
        """The image transform's geometry for the DALI input pipeline (`data.planned_targets`),
        None when it cannot be expressed (then the PIL path reads every item)."""
        return plan_transform(self.transform)

    def planned_target(self, index: int, shape: tuple[int, int],
                       plan: CropPlan) -> tuple[Draws, torch.Tensor] | None:
        """For DALI: the draws of item `index` (image of oriented `shape`) and its mask moved
        by them, drawing as `__getitem__` does; None when that item has no usable mask (the
        PIL item reports it, drawing nothing)."""
        try:
            mask = read_mask(self.mask_path(self.ids[index]))
        except OSError:
            return None
        if mask.shape != tuple(shape):
            return None
        draws = plan.draw(*shape)
        return draws, mask_by_draws(torch.from_numpy(mask), draws)

    def __getitem__(self, index: int) -> tuple[Any, Any, int]:
        image_id = self.ids[index]
        img = open_image(self.image_path(image_id))
        try:
            mask = read_mask(self.mask_path(image_id))
        except OSError:
            mask = None
        if img is None or mask is None or mask.shape != (img.height, img.width):
            empty = torch.empty(0, dtype=torch.uint8)
            return None, empty, index
        mask_t = tv_tensors.Mask(torch.from_numpy(mask))
        if self.transform is None:

            return to_float_tensor(img), mask_t.as_subclass(torch.Tensor), index
        image_t, mask_t = self.transform(img, mask_t)
        return image_t, torch.as_tensor(mask_t).as_subclass(torch.Tensor), index
