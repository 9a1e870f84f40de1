"""VOC readers on a hand-written devkit and on the synthetic one."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.transforms import v2

from dcbench.core.errors import UserError
from dcbench.data.voc import (
    VOC_CLASSES,
    VOCClassification,
    VOCDetection,
    VOCSegmentation,
    find_voc,
    read_annotation,
    read_mask,
    voc_palette,
)

XML = """<annotation>
  <folder>VOC2007</folder><filename>000005.jpg</filename>
  <size><width>500</width><height>375</height><depth>3</depth></size>
  <object><name>chair</name><pose>Rear</pose><truncated>0</truncated><difficult>0</difficult>
    <bndbox><xmin>263</xmin><ymin>211</ymin><xmax>324</xmax><ymax>339</ymax></bndbox></object>
  <object><name>Chair</name><pose>Unspecified</pose><truncated>1</truncated>
    <difficult>1</difficult>
    <bndbox><xmin>5</xmin><ymin>244</ymin><xmax>67.0</xmax><ymax>374</ymax></bndbox></object>
  <object><name>person</name>
    <bndbox><xmin>1</xmin><ymin>2</ymin><xmax>3</xmax><ymax>4</ymax></bndbox></object>
</annotation>
"""


def test_voc_classes_standard_order() -> None:
    assert len(VOC_CLASSES) == 20 and VOC_CLASSES[0] == "aeroplane"
    assert VOC_CLASSES[14] == "person" and VOC_CLASSES[-1] == "tvmonitor"


def test_read_annotation_keeps_coords_and_flags(tmp_path: Path) -> None:
    path = tmp_path / "a.xml"
    path.write_text(XML)
    ann = read_annotation(path)
    assert (ann["filename"], ann["width"], ann["height"]) == ("000005.jpg", 500, 375)
    first, second, third = ann["objects"]
    assert first == {
        "name": "chair",
        "bbox": (263, 211, 324, 339),
        "difficult": 0,
        "truncated": 0,
        "pose": "Rear",
    }
    assert second["name"] == "chair" and second["bbox"] == (5, 244, 67, 374)
    assert second["difficult"] == 1 and second["truncated"] == 1
    assert third["difficult"] == 0 and third["pose"] == "Unspecified"  # defaults
    (tmp_path / "bad.xml").write_text("<annotation><object>")
    with pytest.raises(UserError, match="cannot read VOC annotation"):
        read_annotation(tmp_path / "bad.xml")


def _tiny_devkit(root: Path) -> Path:
    folder = root / "VOCdevkit" / "VOC2007"
    for sub in (
        "Annotations",
        "JPEGImages",
        "ImageSets/Main",
        "ImageSets/Segmentation",
        "SegmentationClass",
    ):
        (folder / sub).mkdir(parents=True)
    ids = ["000001", "000002"]
    for n, image_id in enumerate(ids):
        Image.new("RGB", (6, 4), (n * 100, 0, 0)).save(folder / "JPEGImages" / f"{image_id}.jpg")
    for k, cls in enumerate(VOC_CLASSES):
        labels = {0: ("1", "-1"), 1: ("0", "1")}.get(k, ("-1", "-1"))
        text = "".join(f"{i} {lab:>2}\n" for i, lab in zip(ids, labels, strict=True))
        (folder / "ImageSets" / "Main" / f"{cls}_train.txt").write_text(text)
    (folder / "ImageSets" / "Main" / "train.txt").write_text("000001\n000002\n")
    (folder / "Annotations" / "000001.xml").write_text(XML)
    (folder / "ImageSets" / "Segmentation" / "train.txt").write_text("000001\n")
    mask = np.array([[0, 0, 1, 1, 255, 15]] * 4, dtype=np.uint8)
    img = Image.fromarray(mask, mode="P")
    img.putpalette(voc_palette())
    img.save(folder / "SegmentationClass" / "000001.png")
    return folder


def test_find_voc_accepts_three_roots(tmp_path: Path) -> None:
    folder = _tiny_devkit(tmp_path)
    for root in (tmp_path, tmp_path / "VOCdevkit", folder):
        assert find_voc(root, 2007) == folder
    with pytest.raises(UserError, match="no VOC2012 folder") as err:
        find_voc(tmp_path, "2012")
    assert "VOCdevkit/VOC2007" in err.value.detail
    with pytest.raises(UserError, match="VOC root not found"):
        find_voc(tmp_path / "missing", 2007)


def test_classification_labels_with_difficult_zero(tmp_path: Path) -> None:
    _tiny_devkit(tmp_path)
    ds = VOCClassification(tmp_path, 2007, "train")
    assert ds.ids == ["000001", "000002"] and ds.labels.dtype == np.int8
    assert ds.labels[:, 0].tolist() == [1, -1] and ds.labels[:, 1].tolist() == [0, 1]
    image, labels, index = ds[1]
    assert image.shape == (3, 4, 6) and labels[1] == 1 and index == 1
    with pytest.raises(UserError, match="class list not found"):
        VOCClassification(tmp_path, 2007, "val")


def test_detection_items(tmp_path: Path) -> None:
    _tiny_devkit(tmp_path)
    ds = VOCDetection(tmp_path, 2007, "train")
    assert len(ds) == 2 and ds.annotation(0)["objects"][0]["bbox"] == (263, 211, 324, 339)


def test_segmentation_keeps_255_and_joint_transform(tmp_path: Path) -> None:
    folder = _tiny_devkit(tmp_path)
    assert read_mask(folder / "SegmentationClass" / "000001.png")[0].tolist() == [
        0,
        0,
        1,
        1,
        255,
        15,
    ]
    ds = VOCSegmentation(tmp_path, 2007, "train")
    image, mask, _ = ds[0]
    assert mask.dtype == torch.uint8 and mask[0].tolist() == [0, 0, 1, 1, 255, 15]
    flip = VOCSegmentation(
        tmp_path,
        2007,
        "train",
        transform=v2.Compose([v2.ToImage(), v2.RandomHorizontalFlip(p=1.0)]),
    )
    fimage, fmask, _ = flip[0]
    assert fmask[0].tolist() == [15, 255, 1, 1, 0, 0]
    assert torch.equal(
        fimage,
        v2.functional.to_image(
            Image.open(folder / "JPEGImages" / "000001.jpg").convert("RGB")
        ).flip(-1),
    )
    # an RGB-coloured mask (as some tools save them) maps back through the palette
    pal = voc_palette()
    rgb = np.array([[pal[3 * v : 3 * v + 3] for v in (0, 1, 255, 15)]], dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    assert read_mask(tmp_path / "rgb.png")[0].tolist() == [0, 1, 255, 15]


def test_segmentation_sbd_list_and_mask_dir(tmp_path: Path) -> None:
    folder = _tiny_devkit(tmp_path)
    (folder / "SegmentationClassAug").mkdir()
    Image.fromarray(np.full((4, 6), 3, dtype=np.uint8), mode="L").save(
        folder / "SegmentationClassAug" / "000002.png"
    )
    aug = tmp_path / "train_aug.txt"
    aug.write_text("000002\n")
    ds = VOCSegmentation(tmp_path, 2007, "train", list_file=aug, mask_dir="SegmentationClassAug")
    assert ds.ids == ["000002"] and set(ds[0][1].unique().tolist()) == {3}


def test_synthetic_voc_labels_agree_with_annotations(voc_set: Path) -> None:
    ds = VOCClassification(voc_set, 2007, "trainval")
    assert len(ds) == 40 and (ds.labels == 1).any(axis=0).sum() >= 15
    det = VOCDetection(voc_set, 2007, "trainval")
    n_difficult = 0
    for i in range(len(det)):
        expected = np.full(20, -1, dtype=np.int8)
        for obj in det.annotation(i)["objects"]:
            k = VOC_CLASSES.index(obj["name"])
            expected[k] = max(expected[k], 0 if obj["difficult"] else 1)
            n_difficult += obj["difficult"]
        assert np.array_equal(ds.labels[i], expected)
    assert n_difficult > 0


def test_synthetic_masks_match_boxes(voc_set: Path) -> None:
    seg = VOCSegmentation(voc_set, 2012, "train")
    det = VOCDetection(voc_set, 2012, "train")
    assert det.ids == seg.ids
    for i in range(5):
        image, mask, _ = seg[i]
        m = mask.numpy()
        assert m.shape == tuple(image.shape[1:]) and (m == 255).any()
        assert set(np.unique(m).tolist()) <= set(range(21)) | {255}
        for obj in det.annotation(i)["objects"]:
            if obj["difficult"]:
                continue
            xmin, ymin, xmax, ymax = obj["bbox"]
            ys, xs = np.nonzero(m == VOC_CLASSES.index(obj["name"]) + 1)
            inside = (xs + 1 >= xmin) & (xs + 1 <= xmax) & (ys + 1 >= ymin) & (ys + 1 <= ymax)
            assert inside.any()  # the box (1-based) covers labelled pixels of its class
