"""The bytes-in-workers, decode-on-device pipeline (run here with device=cpu) against the CPU
(PIL) pipeline: same files dropped, fallbacks for what the device decoder must not take,
crops close to PIL's, torchvision's RandomResizedCrop rule, seeded and reproducible."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dcbench.data import gpu_decode
from dcbench.data.decode import decode_image
from dcbench.data.folders import ImageFolderDataset
from dcbench.data.gpu_decode import (
    BatchDecoder,
    DecodingLoader,
    EncodedImages,
    collate_bytes,
    device_decodable,
    jpeg_header,
)
from dcbench.data.loader import make_loader
from dcbench.data.transforms import IMAGENET_MEAN, IMAGENET_STD, center_crop

CPU = torch.device("cpu")


def photo(seed: int, w: int = 80, h: int = 60) -> Image.Image:
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 255, (6, 8, 3), dtype=np.uint8)
    return Image.fromarray(small).resize((w, h), Image.BILINEAR)


@pytest.fixture(scope="module")
def mixed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One class folder with every kind of file the pipeline must route."""
    root = tmp_path_factory.mktemp("gpu_decode") / "set"
    d = root / "a"
    d.mkdir(parents=True)
    for i in range(4):
        photo(i).save(d / f"rgb_{i}.jpg", quality=92)
    photo(10).convert("L").save(d / "gray.jpg")
    photo(11).convert("CMYK").save(d / "cmyk.jpg")
    photo(12).save(d / "png.png")
    photo(13).save(d / "progressive.jpg", progressive=True)
    full = (d / "rgb_0.jpg").read_bytes()
    (d / "truncated.jpg").write_bytes(full[: len(full) * 2 // 3])
    (d / "corrupt.jpg").write_bytes(b"\xff\xd8\xff" + b"garbage" * 20)
    (d / "empty.jpg").write_bytes(b"")
    return root


def cpu_pipeline(root: Path) -> tuple[dict[int, torch.Tensor], list[int]]:
    data = ImageFolderDataset(root, center_crop(32, 40, IMAGENET_MEAN, IMAGENET_STD))
    images, bad = {}, []
    for batch in make_loader(data, 5):
        bad += batch.bad
        images.update({int(i): img for i, img in zip(batch.indices, batch.images, strict=True)})
    return images, bad


def test_center_pass_drops_the_same_files_and_matches_pil(mixed: Path) -> None:
    ref, ref_bad = cpu_pipeline(mixed)
    data = EncodedImages(ImageFolderDataset(mixed))
    decoder = BatchDecoder(CPU, 32, IMAGENET_MEAN, IMAGENET_STD, mode="center", resize=40)
    got, bad = {}, []
    for batch in DecodingLoader(data, 5, decoder):
        bad += batch.bad
        got.update({int(i): img for i, img in zip(batch.indices, batch.images, strict=True)})
    # corrupt + empty + truncated (truncated files count as bad, as on the CPU path)
    assert sorted(bad) == sorted(ref_bad) and len(bad) == 3
    assert got.keys() == ref.keys()
    for i, img in got.items():  # libjpeg vs PIL + tensor vs PIL resize: small differences
        assert img.shape == (3, 32, 32)
        assert (img - ref[i]).abs().mean() < 0.1, data.samples[i][0]
    names = {Path(p).name: device_decodable(torch.frombuffer(bytearray(Path(p).read_bytes()),
                                                               dtype=torch.uint8))
             for p, _ in data.samples if Path(p).stat().st_size}
    assert names == {"rgb_0.jpg": True, "rgb_1.jpg": True, "rgb_2.jpg": True, "rgb_3.jpg": True,
                     "gray.jpg": True, "progressive.jpg": False, "cmyk.jpg": False,
                     "png.png": False, "truncated.jpg": False, "corrupt.jpg": False}
    # cmyk, png, progressive, truncated, corrupt: decoded by PIL in the loader (the empty
    # file: no bytes)
    assert decoder.fallbacks == 5


def test_jpeg_header_reads_components_and_size(mixed: Path) -> None:
    assert jpeg_header((mixed / "a" / "rgb_0.jpg").read_bytes()) == (0xC0, 3, 60, 80)
    assert jpeg_header((mixed / "a" / "cmyk.jpg").read_bytes())[1] == 4
    assert jpeg_header((mixed / "a" / "png.png").read_bytes()) is None


def test_train_pass_is_seeded_and_reproducible(mixed: Path) -> None:
    data = EncodedImages(ImageFolderDataset(mixed))

    def run(seed: int) -> torch.Tensor:
        decoder = BatchDecoder(CPU, 24, IMAGENET_MEAN, IMAGENET_STD, mode="train",
                               scale=(0.3, 1.0), generator=torch.Generator().manual_seed(seed))
        return torch.cat([b.images for b in DecodingLoader(data, 4, decoder)])

    a, b, c = run(0), run(0), run(1)
    assert a.shape == (8, 3, 24, 24) and torch.equal(a, b) and not torch.equal(a, c)


def test_workers_deliver_every_batch_instead_of_hanging(mixed: Path) -> None:
    """Issue 18: with DataLoader workers the byte tensors must cross the process boundary
    (memory-mapped `read_file` storages did not: OSError in the feeder, the main process
    waited forever). A loader timeout makes a regression fail instead of hang."""
    data = EncodedImages(ImageFolderDataset(mixed))
    decoder = BatchDecoder(CPU, 24, IMAGENET_MEAN, IMAGENET_STD, mode="center", resize=28)
    loader = DecodingLoader(data, 4, decoder, workers=2)
    loader.loader.timeout = 20  # whatever the default, fail within the test's time
    got, bad = [], []
    for batch in loader:
        got += batch.indices.tolist()
        bad += batch.bad
    assert sorted(got + bad) == list(range(len(data))) and len(bad) == 3


def test_exif_rotated_jpegs_decode_as_pil_shows_them(tmp_path: Path) -> None:
    """Issue 27: the device path applies EXIF orientation (nvjpeg ignores it): every
    Orientation value 1-8 gives the crop the PIL pipeline gives (within decoder rounding)."""
    root = tmp_path / "exif"
    (root / "a").mkdir(parents=True)
    for o in range(1, 9):
        exif = Image.Exif()
        exif[0x0112] = o
        photo(20 + o, w=90, h=50).save(root / "a" / f"o{o}.jpg", quality=95, exif=exif.tobytes())
    ref, _ = cpu_pipeline(root)
    data = EncodedImages(ImageFolderDataset(root))
    decoder = BatchDecoder(CPU, 32, IMAGENET_MEAN, IMAGENET_STD, mode="center", resize=40)
    got = {int(i): img for b in DecodingLoader(data, 8, decoder)
           for i, img in zip(b.indices, b.images, strict=True)}
    assert decoder.fallbacks == 0 and got.keys() == ref.keys() == set(range(8))
    for i, img in got.items():
        assert (img - ref[i]).abs().mean() < 0.1, data.samples[i][0]


def test_producer_decodes_nothing_on_the_cpu_and_pools_rejected_files(
        mixed: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 27: PNG/CMYK/progressive/truncated files are decoded where the items are made
    (the DataLoader workers), so the producer thread's decoder never runs PIL for them; a
    JPEG the device decoder rejects at decode time goes to the thread pool."""
    data = EncodedImages(ImageFolderDataset(mixed))
    batch = collate_bytes([data[i] for i in range(len(data))])
    assert batch.cpu_decoded == 5 and len(batch.shapes) == 3  # cmyk, png, progressive
    ref, _ = cpu_pipeline(mixed)
    def refuse(path: str) -> None:
        raise AssertionError(f"decoded in the producer: {path}")

    monkeypatch.setattr(gpu_decode, "decode_image", refuse)
    decoder = BatchDecoder(CPU, 32, IMAGENET_MEAN, IMAGENET_STD, mode="center", resize=40)
    out = decoder(batch, data.samples)
    assert sorted(out.bad) == sorted(i for i in range(len(data)) if i not in ref)
    for i, img in zip(out.indices.tolist(), out.images, strict=True):
        assert (img - ref[i]).abs().mean() < 0.1
    # the device decoder rejects every other JPEG: those come from the pool, same pixels
    monkeypatch.setattr(gpu_decode, "decode_image", decode_image)
    real = decoder._device_decode
    monkeypatch.setattr(decoder, "_device_decode",
                        lambda files: [None if k % 2 else img
                                       for k, img in enumerate(real(files))])
    before = decoder.fallbacks
    again = decoder(batch, data.samples)
    assert decoder.fallbacks - before == 5 + int(batch.device_ok.sum()) // 2
    assert torch.equal(again.indices, out.indices)
    assert (again.images - out.images).abs().mean() < 0.1
