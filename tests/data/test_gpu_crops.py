"""The batched crops of the device pipeline against torchvision: the RandomResizedCrop boxes
follow its sampling rule (statistically, and exactly where the rule is deterministic), and
`roi_align` crops match a per-image `resized_crop`/`resize` + `center_crop` reference."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import ks_2samp
from torchvision.ops import roi_align
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as TF

from dcbench.data import gpu_crops
from dcbench.data.gpu_crops import atlas_layout, center_boxes, crop_batch, rrc_boxes

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


def imagenet_like_shapes(n: int, seed: int, scale: float = 0.1) -> list[tuple[int, int]]:
    """ImageNet's size mix (mostly 500 x 375/333 either way, some square, a few small and a
    few multi-megapixel photos), scaled by `scale` to keep the test fast."""
    rng = np.random.default_rng(seed)
    common = [(375, 500), (500, 375), (333, 500), (500, 333), (500, 500), (400, 500),
              (281, 500), (500, 400), (150, 200), (2592, 3888), (1200, 1600), (90, 120)]
    weights = np.array([30, 12, 10, 5, 6, 5, 4, 3, 2, 1, 1, 1], dtype=float)
    picks = rng.choice(len(common), n, p=weights / weights.sum())
    jitter = rng.integers(-20, 21, (n, 2))
    return [(max(4, int((common[k][0] + j[0]) * scale)), max(4, int((common[k][1] + j[1]) * scale)))
            for k, j in zip(picks, jitter, strict=True)]


def per_image_roi_align(images: list[torch.Tensor], boxes: torch.Tensor, size: int
                        ) -> torch.Tensor:
    """The crops one image at a time (each image its own canvas: what the grouped canvases
    of issue 18 computed, up to float rounding)."""
    out = []
    for img, (top, left, h, w) in zip(images, boxes.double().tolist(), strict=True):
        roi = torch.tensor([[0.0, left, top, left + w, top + h]], dtype=torch.float32)
        out.append(roi_align(img[None].float(), roi, [size, size], 1.0, -1, True)[0])
    return torch.stack(out)


def test_one_roi_align_per_batch_equals_per_image_crops(monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 27: a realistic size mix is cropped by ONE roi_align over one atlas (the
    grouped canvases needed ~36 groups, each with its own sync, for such a batch), and the
    crops equal the per-image ones to float tolerance (0..255 scale)."""
    shapes = imagenet_like_shapes(48, seed=0)
    assert len(set(shapes)) > 30  # many sizes, as in ImageNet
    g = torch.Generator().manual_seed(5)
    images = [(torch.rand(3, h, w, generator=g) * 255).to(torch.uint8) for h, w in shapes]
    heights, widths = torch.tensor([h for h, _ in shapes]), torch.tensor([w for _, w in shapes])
    calls = []
    real = gpu_crops.roi_align
    monkeypatch.setattr(gpu_crops, "roi_align", lambda *a, **k: calls.append(1) or real(*a, **k))
    for boxes in (rrc_boxes(heights, widths, SCALE, RATIO, g),
                  center_boxes(heights.tolist(), widths.tolist(), 29, 24)):
        got = crop_batch(images, boxes, 24)
        ref = per_image_roi_align(images, boxes, 24)
        assert got.shape == (48, 3, 24, 24)
        assert (got - ref).abs().max() < 0.02  # float32 sample positions, nothing else
    assert len(calls) == 2  # one per batch


def test_int64_indices_give_the_same_crops(monkeypatch: pytest.MonkeyPatch) -> None:
    """Batches of over 2**31 pixels gather with int64 indices: forced here on a small one."""
    shapes = imagenet_like_shapes(12, seed=3)
    images = smooth_images(6, shapes)
    boxes = center_boxes([h for h, _ in shapes], [w for _, w in shapes], 29, 24)
    small = crop_batch(images, boxes, 24)
    monkeypatch.setattr(gpu_crops, "_INT32_LIMIT", 0)
    assert torch.equal(crop_batch(images, boxes, 24), small)


def test_flips_mirror_the_crops() -> None:
    images = smooth_images(4, [(40, 50), (50, 40), (30, 30)])
    boxes = torch.tensor([[2, 3, 30, 35], [0, 0, 50, 40], [5, 5, 20, 20]])
    flips = torch.tensor([True, False, True])
    plain = crop_batch(images, boxes, 16)
    mirrored = crop_batch(images, boxes, 16, flips)
    assert torch.equal(mirrored[1], plain[1])
    assert torch.equal(mirrored[0], plain[0].flip(-1)) and torch.equal(mirrored[2],
                                                                       plain[2].flip(-1))


def test_atlas_holds_every_image_once_with_little_padding() -> None:
    for shapes in (imagenet_like_shapes(256, seed=1, scale=1.0),
                   [(375, 500)] * 8 + [(3000, 4000)] + [(64, 64)] * 3):
        layout = atlas_layout(shapes)
        taken = np.zeros((layout.height, layout.width), dtype=np.int32)
        for (h, w), top, left in zip(shapes, layout.tops, layout.lefts, strict=True):
            assert top >= 1 and left >= 1  # room for the 1-pixel border
            taken[top - 1 : top + h + 1, left - 1 : left + w + 1] += 1
        assert taken.max() == 1  # slots (image + border) never overlap
        padded = sum((h + 2) * (w + 2) for h, w in shapes)
        waste = layout.height * layout.width / padded
        assert waste < 1.2, waste


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_crop_batch_never_synchronises_on_cuda() -> None:
    shapes = imagenet_like_shapes(64, seed=2, scale=1.0)
    images = [torch.randint(0, 255, (3, h, w), dtype=torch.uint8, device="cuda")
              for h, w in shapes]
    boxes = rrc_boxes(torch.tensor([h for h, _ in shapes]), torch.tensor([w for _, w in shapes]),
                      SCALE, RATIO, torch.Generator().manual_seed(0))
    flips = torch.rand(64, generator=torch.Generator().manual_seed(1)) < 0.5
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        got = crop_batch(images, boxes, 224, flips)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    ref = per_image_roi_align([im.cpu() for im in images], boxes, 224)
    ref = torch.where(flips[:, None, None, None], ref.flip(-1), ref)
    assert (got.cpu() - ref).abs().max() < 0.05
