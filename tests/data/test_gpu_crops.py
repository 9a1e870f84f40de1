"""The batched crops of the device pipeline against torchvision: the RandomResizedCrop boxes
follow its sampling rule (statistically, and exactly where the rule is deterministic), and
`roi_align` crops match a per-image `resized_crop`/`resize` + `center_crop` reference."""

from __future__ import annotations

import numpy as np
import torch
from scipy.stats import ks_2samp
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as TF

from dcbench.data.gpu_crops import canvas_groups, center_boxes, crop_batch, rrc_boxes

SCALE, RATIO = (0.08, 1.0), (3 / 4, 4 / 3)


def torchvision_boxes(h: int, w: int, n: int, seed: int) -> np.ndarray:
    torch.manual_seed(seed)  # torchvision draws from the global generator
    rrc = v2.RandomResizedCrop(32, scale=SCALE, ratio=RATIO)
    img = torch.zeros(1, h, w)
    out = []
    for _ in range(n):
        p = rrc.make_params([img])
        out.append((p["top"], p["left"], p["height"], p["width"]))
    return np.asarray(out, dtype=np.float64)


def test_rrc_boxes_follow_torchvisions_distribution() -> None:
    n = 3000
    fallback = {(60, 80): (0, 0, 60, 80), (300, 40): (123, 0, 53, 40)}  # worked by hand
    for h, w in ((60, 80), (300, 40)):  # the tall one often falls back to the center crop
        ours = rrc_boxes(torch.full((n,), h), torch.full((n,), w), SCALE, RATIO,
                         torch.Generator().manual_seed(1)).double().numpy()
        ref = torchvision_boxes(h, w, n, seed=2)
        top, left, bh, bw = ours.T
        assert (top >= 0).all() and (left >= 0).all() and (top + bh <= h).all()
        assert (left + bw <= w).all() and (bh > 0).all() and (bw > 0).all()
        for stat in (lambda b, a=h * w: b[:, 2] * b[:, 3] / a,  # area fraction
                     lambda b: np.log(b[:, 3] / b[:, 2]),   # aspect ratio
                     lambda b: b[:, 0] + b[:, 2] / 2,       # vertical centre
                     lambda b: b[:, 1] + b[:, 3] / 2):      # horizontal centre
            assert ks_2samp(stat(ours), stat(ref)).pvalue > 1e-3
        # the fallback (no try fits: the centred, ratio-clamped box) as often as torchvision
        box = fallback[(h, w)]
        share = (ours == box).all(1).mean()
        assert abs(share - (ref == box).all(1).mean()) < 0.03 and (h == 60 or share > 0.05)


def test_rrc_boxes_fallback_is_torchvisions_center_crop() -> None:
    # a 10 x 400 image: no area in [0.08, 1] with ratio in [3/4, 4/3] fits, every time
    ours = rrc_boxes(torch.tensor([10, 400]), torch.tensor([400, 10]), SCALE, RATIO,
                     torch.Generator().manual_seed(0)).tolist()
    assert ours[0] == list(torchvision_boxes(10, 400, 1, 0)[0].astype(int))
    assert ours[1] == list(torchvision_boxes(400, 10, 1, 0)[0].astype(int))


def smooth_images(seed: int, shapes: list[tuple[int, int]]) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    out = []
    for h, w in shapes:
        coarse = torch.rand(1, 3, 5, 6, generator=g) * 255
        img = torch.nn.functional.interpolate(coarse, size=(h, w), mode="bicubic")
        out.append(img[0].clamp(0, 255).round().to(torch.uint8))
    return out


def test_crop_batch_matches_per_image_resized_crop() -> None:
    shapes = [(60, 80), (80, 60), (64, 64), (120, 90), (61, 83), (200, 150)]
    images = smooth_images(0, shapes)
    boxes = rrc_boxes(torch.tensor([h for h, _ in shapes]), torch.tensor([w for _, w in shapes]),
                      (0.02, 1.0), RATIO, torch.Generator().manual_seed(3))
    size = 24
    got = crop_batch(images, boxes, size)
    for img, box, crop in zip(images, boxes.tolist(), got, strict=True):
        top, left, h, w = box
        ref = TF.resized_crop(img.float(), top, left, h, w, [size, size], antialias=True)
        if h <= size and w <= size:  # upsampling: bilinear at the same points, exactly
            # (inside the border: resized_crop clamps at the crop's edge, roi_align samples
            # the real pixels just outside it, which is what resizing the image would do)
            plain = TF.resized_crop(img.float(), top, left, h, w, [size, size], antialias=False)
            b = int(np.ceil(size / min(h, w) / 2)) + 1
            assert (crop - plain)[:, b:-b, b:-b].abs().max() < 1e-2
        assert (crop - ref).abs().mean() < 1.5, box  # area average vs triangle filter (0..255)
    assert any(h <= size and w <= size for _, _, h, w in boxes.tolist())
    assert any(h > 2 * size for _, _, h, w in boxes.tolist())


def test_center_boxes_equal_resize_then_center_crop() -> None:
    shapes = [(30, 40), (40, 30), (33, 33), (29, 47)]
    images = smooth_images(1, shapes)
    got = crop_batch(images, center_boxes([h for h, _ in shapes], [w for _, w in shapes],
                                          36, 32), 32)
    for img, crop in zip(images, got, strict=True):  # upsampling: no anti-aliasing involved
        ref = TF.center_crop(TF.resize(img.float(), [36], antialias=False), [32, 32])
        assert (crop - ref).abs().max() < 1e-2


def test_canvas_groups_cover_every_image_once_and_bound_padding() -> None:
    shapes = [(375, 500), (500, 375), (375, 500), (3000, 4000), (333, 500), (64, 64)]
    groups = canvas_groups(shapes)
    assert sorted(i for g in groups for i in g) == list(range(len(shapes)))
    for g in groups:
        mh, mw = max(shapes[i][0] for i in g), max(shapes[i][1] for i in g)
        assert len(g) == 1 or mh * mw * len(g) <= 1.5 * sum(shapes[i][0] * shapes[i][1]
                                                             for i in g)
