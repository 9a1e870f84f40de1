"""A synthetic PASCAL VOC devkit: JPEG scenes, real-schema XML, ImageSets, palette masks.

Each of the 20 VOC class names is bound to one (outline shape, texture) pair, e.g.
`aeroplane` = solid ellipse, `bicycle` = ellipse with horizontal stripes; colours are random.
Scenes hold 1-4 objects; objects whose box is under `DIFFICULT_AREA` pixels are flagged
`difficult`, objects whose box touches the image border `truncated`. Masks follow real VOC: class
index per pixel, 255 on a band along object borders and over difficult objects.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from xml.sax.saxutils import escape

import numpy as np
from PIL import Image
from scipy import ndimage

from dcbench.core.errors import UserError
from dcbench.core.files import staged_dir
from dcbench.data import shapes
from dcbench.data.voc import IGNORE_INDEX, VOC_CLASSES, voc_palette

CLASS_LOOK: dict[str, tuple[str, str]] = {
    name: (
        shapes.OBJ_SHAPES[i // len(shapes.OBJ_TEXTURES)],
        shapes.OBJ_TEXTURES[i % len(shapes.OBJ_TEXTURES)],
    )
    for i, name in enumerate(VOC_CLASSES)
}
DIFFICULT_AREA = 18 * 18


def _draw_scene(
    rng: np.random.Generator, size: int, first_class: int
) -> tuple[np.ndarray, np.ndarray, list[dict]]:
    """One scene -> (uint8 RGB image, uint8 label map, objects in VOC annotation form)."""
    height, width = (int(v) for v in rng.integers(int(size * 0.75), size + 1, size=2))
    top, bottom = shapes.contrasting_colours(rng, 2, min_gap=0.0)
    ramp = np.linspace(0.0, 1.0, height)[:, None, None]
    img = np.broadcast_to(top * (1 - ramp) + bottom * ramp, (height, width, 3)).copy()
    labels = np.zeros((height, width), dtype=np.uint8)
    n_objects = int(rng.integers(1, 5))
    classes = [first_class] + [int(c) for c in rng.integers(0, len(VOC_CLASSES), n_objects - 1)]
    scale = rng.uniform(0.06, 0.32, size=n_objects) * np.sqrt(width * height)
    aspect = np.sqrt(rng.uniform(0.6, 1.6, size=n_objects))  # width / height, mildly varied
    extents = np.stack([scale * aspect, scale / aspect], axis=1)  # half-extents (rx, ry)
    order = np.argsort(-extents.prod(axis=1), kind="stable")  # big first, small on top
    objects = []
    for j in order:
        cls = VOC_CLASSES[classes[j]]
        rx, ry = extents[j]
        cx = rng.uniform(0.5 * rx, width - 0.5 * rx)  # may cross the border: truncated
        cy = rng.uniform(0.5 * ry, height - 0.5 * ry)
        shape, texture = CLASS_LOOK[cls]
        u, v = shapes.frame_coords(height, width, cx, cy, 0.0)
        mask = shapes.obj_shape_mask(shape, u, v, rx, ry)
        if mask.sum() < 12:
            continue
        c1, c2 = shapes.contrasting_colours(rng, 2)
        period = float(rng.uniform(3.5, 5.5))
        img[mask] = c1
        img[mask & shapes.texture_mask(texture, u, v, period)] = c2
        rows, cols = np.nonzero(mask)
        xmin, xmax, ymin, ymax = cols.min(), cols.max(), rows.min(), rows.max()
        area = (xmax - xmin + 1) * (ymax - ymin + 1)
        difficult = int(area < DIFFICULT_AREA)
        labels[mask] = IGNORE_INDEX if difficult else classes[j] + 1
        cut = xmin == 0 or ymin == 0 or xmax == width - 1 or ymax == height - 1
        objects.append(
            {
                "name": cls,
                "difficult": difficult,
                "truncated": int(cut),
                "bbox": (int(xmin) + 1, int(ymin) + 1, int(xmax) + 1, int(ymax) + 1),
            }
        )
    edges = np.zeros_like(labels, dtype=bool)
    edges[:, 1:] |= labels[:, 1:] != labels[:, :-1]
    edges[1:, :] |= labels[1:, :] != labels[:-1, :]
    labels[ndimage.binary_dilation(edges, iterations=1)] = IGNORE_INDEX
    return shapes.finish(img, rng, 4.0), labels, objects


def _annotation_xml(
    folder: str, image_id: str, width: int, height: int, objects: list[dict], segmented: bool
) -> str:
    parts = [
        "<annotation>",
        f"\t<folder>{folder}</folder>",
        f"\t<filename>{image_id}.jpg</filename>",
        "\t<source>\n\t\t<database>dcbench synthetic VOC</database>\n\t</source>",
        f"\t<size>\n\t\t<width>{width}</width>\n\t\t<height>{height}</height>\n"
        "\t\t<depth>3</depth>\n\t</size>",
        f"\t<segmented>{int(segmented)}</segmented>",
    ]
    for obj in objects:
        xmin, ymin, xmax, ymax = obj["bbox"]
        parts.append(
            f"\t<object>\n\t\t<name>{escape(obj['name'])}</name>\n\t\t<pose>Unspecified</pose>\n"
            f"\t\t<truncated>{obj['truncated']}</truncated>\n"
            f"\t\t<difficult>{obj['difficult']}</difficult>\n\t\t<bndbox>\n"
            f"\t\t\t<xmin>{xmin}</xmin>\n\t\t\t<ymin>{ymin}</ymin>\n"
            f"\t\t\t<xmax>{xmax}</xmax>\n\t\t\t<ymax>{ymax}</ymax>\n\t\t</bndbox>\n\t</object>"
        )
    parts.append("</annotation>")
    return "\n".join(parts) + "\n"


def _write_year(
    folder: Path,
    year: str,
    splits: dict[str, list[str]],
    base_splits: list[str],
    seed: int,
    size: int,
    segmentation: bool,
) -> None:
    """Draw every image of `base_splits` and write the year's devkit files."""
    for sub in ("Annotations", "JPEGImages", "ImageSets/Main", "ImageSets/Segmentation"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    if segmentation:
        (folder / "SegmentationClass").mkdir()
    palette = voc_palette()
    presence: dict[str, np.ndarray] = {}  # id -> per-class 1/0/-1
    ordered = [i for split in base_splits for i in splits[split]]
    for n, image_id in enumerate(ordered):
        rng = np.random.default_rng([seed, int(year), n])
        img, labels, objects = _draw_scene(rng, size, first_class=n % len(VOC_CLASSES))
        height, width = labels.shape
        buf = io.BytesIO()
        Image.fromarray(img).save(buf, format="JPEG", quality=90)
        (folder / "JPEGImages" / f"{image_id}.jpg").write_bytes(buf.getvalue())
        xml = _annotation_xml(f"VOC{year}", image_id, width, height, objects, segmentation)
        (folder / "Annotations" / f"{image_id}.xml").write_text(xml)
        if segmentation:
            mask = Image.fromarray(labels, mode="P")
            mask.putpalette(palette)
            mask.save(folder / "SegmentationClass" / f"{image_id}.png")
        row = np.full(len(VOC_CLASSES), -1, dtype=np.int8)
        for obj in objects:
            k = VOC_CLASSES.index(obj["name"])
            row[k] = max(row[k], 0 if obj["difficult"] else 1)
        presence[image_id] = row
    for split, ids in splits.items():
        (folder / "ImageSets" / "Main" / f"{split}.txt").write_text("".join(f"{i}\n" for i in ids))
        if segmentation:
            seg = folder / "ImageSets" / "Segmentation" / f"{split}.txt"
            seg.write_text("".join(f"{i}\n" for i in ids))
        for k, cls in enumerate(VOC_CLASSES):
            lines = "".join(f"{i} {int(presence[i][k]):2d}\n" for i in ids)
            (folder / "ImageSets" / "Main" / f"{cls}_{split}.txt").write_text(lines)


def write_voc_set(
    out: str | os.PathLike,
    *,
    n_train: int = 80,
    n_val: int = 80,
    n_test: int = 120,
    size: int = 128,
    seed: int = 0,
) -> Path:
    """Write `out/VOCdevkit/VOC2007` (train/val/trainval/test, no masks) and
    `out/VOCdevkit/VOC2012` (train/val/trainval with SegmentationClass masks). Returns `out`.
    """
    if min(n_train, n_val, n_test) < 1 or size < 48:
        raise UserError("need n_train, n_val, n_test >= 1 and size >= 48")
    out = Path(out).expanduser()
    with staged_dir(out) as stage:
        devkit = stage / "VOCdevkit"
        ids07 = [f"{i:06d}" for i in range(1, n_train + n_val + n_test + 1)]
        train, val = ids07[:n_train], ids07[n_train : n_train + n_val]
        splits07 = {
            "train": train,
            "val": val,
            "trainval": train + val,
            "test": ids07[n_train + n_val :],
        }
        _write_year(
            devkit / "VOC2007",
            "2007",
            splits07,
            ["trainval", "test"],
            seed,
            size,
            segmentation=False,
        )
        ids12 = [f"2012_{i:06d}" for i in range(1, n_train + n_val + 1)]
        splits12 = {"train": ids12[:n_train], "val": ids12[n_train:], "trainval": ids12}
        _write_year(
            devkit / "VOC2012", "2012", splits12, ["trainval"], seed, size, segmentation=True
        )
    return out
