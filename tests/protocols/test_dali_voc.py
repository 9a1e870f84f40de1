"""voc07-det and voc12-seg through the DALI input pipeline (CPU backend): the detection items
(boxes, labels, flips, order, bad files) equal the PIL path's for the seeded epochs, the
test images of different sizes go through in batches, and `--set input_pipeline=dali` runs
both protocols end to end with metrics next to the PIL run's.

Measured: the detection images (full images in [0, 1], no resize) are equal to the PIL
path's to the bit on this set (mean absolute difference 0.0 grey levels: same decoder, no
resampling); voc12-seg's differ by ~1e-5 grey levels (the float normalisation)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from dcbench.cli.entry import main
from dcbench.data.dali_pipeline import DaliLoader
from dcbench.data.decode import decode_image
from dcbench.data.pipeline import describe_loader, target_loader
from dcbench.data.synthetic import make_voc_set
from dcbench.data.voc import VOCDetection
from dcbench.protocols.voc.finetune_base import epoch_batches
from dcbench.protocols.voc07_det import DetectionItems, collate_detection
from tests.data.test_dali_targets import bad_voc, spoil_voc  # noqa: F401 (a fixture)

pytest.importorskip("nvidia.dali")

MODEL = "arch:alexnet_small?sobel=1"


def detection_epoch(items: DetectionItems, pipeline: str, workers: int) -> list:
    """The batches of epoch 0, then of epoch 1 resumed at its third batch: (epoch, batch)."""
    batches = epoch_batches(items, batch_size=3, seed=4, workers=workers,
                            collate=collate_detection, pipeline=pipeline)
    return [(0, b) for b in batches(0, 0)] + [(1, b) for b in batches(1, 2)]


@pytest.mark.parametrize("workers", [0, 2])
def test_detection_items_match_pil(bad_voc: Path, workers: int) -> None:  # noqa: F811
    """Two seeded epochs (the second resumed at its third batch): same order, boxes,
    labels, flips and bad files; the images are equal (full images, same decoder)."""
    items = DetectionItems(VOCDetection(bad_voc, 2007, "train"), train=True, flip=True)
    pil = detection_epoch(items, "cpu", workers)
    dali = detection_epoch(items, "dali", workers)
    assert [(e, b.indices, b.bad) for e, b in pil] == [(e, b.indices, b.bad) for e, b in dali]
    for (_, a), (_, b) in zip(pil, dali, strict=True):
        for ta, tb, ia, ib in zip(a.targets, b.targets, a.images, b.images, strict=True):
            assert torch.equal(ta["boxes"], tb["boxes"]) and torch.equal(ta["labels"],
                                                                         tb["labels"])
            assert ia.shape == ib.shape and float((ia - ib).abs().max()) < 1.01 / 255
    truncated = decode_image(Path(items.samples[2][0])).image is None
    # 0-byte and corrupt, and the truncated file where PIL skips it
    assert sorted(i for e, b in pil if e == 0 for i in b.bad) == [0, 1] + ([2] * truncated)


def test_detection_flips_follow_the_seeded_draws(bad_voc: Path) -> None:  # noqa: F811
    """About half the training images are mirrored on both paths, the same ones."""
    items = DetectionItems(VOCDetection(bad_voc, 2007, "train"), train=True, flip=True)
    plain = DetectionItems(items.voc, train=True, flip=False)
    mirrored = {}
    for pipeline in ("cpu", "dali"):
        flips = []
        for (_, batch), (_, ref) in zip(detection_epoch(items, pipeline, 0),
                                        detection_epoch(plain, pipeline, 0), strict=True):
            flips += [not torch.equal(a["boxes"], b["boxes"])
                      for a, b in zip(batch.targets, ref.targets, strict=True)]
        mirrored[pipeline] = flips
    assert mirrored["cpu"] == mirrored["dali"] and 0 < sum(mirrored["cpu"]) < len(mirrored["cpu"])


def test_detection_test_batches_of_different_sizes(bad_voc: Path) -> None:  # noqa: F811
    """The test pass (`detect`'s loader): batches of 2 full images of different sizes."""
    items = DetectionItems(VOCDetection(bad_voc, 2007, "test"), train=False, flip=False)
    out = {}
    for pipeline in ("cpu", "dali"):
        loader = target_loader(items, 2, collate=collate_detection, pipeline=pipeline)
        assert describe_loader(loader) == pipeline
        out[pipeline] = list(loader)
    shapes = [tuple(im.shape) for b in out["dali"] for im in b.images]
    assert shapes == [tuple(im.shape) for b in out["cpu"] for im in b.images]
    assert len(set(shapes)) > 1
    for a, b in zip(out["cpu"], out["dali"], strict=True):
        assert a.indices == b.indices and all(
            torch.equal(ta["boxes"], tb["boxes"]) for ta, tb in zip(a.targets, b.targets,
                                                                    strict=True))


@pytest.fixture()
def dali_batches(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the JPEGs DALI decodes."""
    seen: list[int] = []
    decode = DaliLoader._decode

    def counting(self, encoded, positions):
        seen.append(len(encoded))
        return decode(self, encoded, positions)

    monkeypatch.setattr(DaliLoader, "_decode", counting)
    return seen


def _eval(data: Path, out: Path, protocol: str, pipeline: str, *extra: str) -> dict:
    """One `dcbench eval` run; its rows as {(split, metric): value}."""
    rc = main(["eval", "--protocol", protocol, "--model", MODEL, "--data", str(data),
               "--schedule", "smoke", "--no-store", "--no-progress", "--out", str(out),
               "--set", f"input_pipeline={pipeline}", *extra])
    assert rc == 0
    run = json.loads((out / "run.json").read_text())
    assert run["input_pipeline"] == pipeline
    return {(r["split"], r["metric"]): r["value"]
            for r in json.loads((out / "results.json").read_text())}


@pytest.mark.parametrize(("protocol", "headline", "settings"), [
    ("voc12-seg", ("val", "miou"), ("iterations=6", "checkpoint_every=3", "flip=true")),
    ("voc07-det", ("test", "map"), ("iterations=6", "checkpoint_every=3")),
])
def test_smoke_runs_through_dali_next_to_the_pil_run(
        bad_voc: Path, tmp_path: Path, dali_batches: list[int],  # noqa: F811
        capsys: pytest.CaptureFixture[str], protocol: str, headline: tuple[str, str],
        settings: tuple[str, ...]) -> None:
    """End to end on the synthetic VOCdevkit with bad training files: the same training
    loss, test numbers and skipped-file report as the PIL run."""
    extra = [w for s in settings for w in ("--set", s)]
    skipped = {}
    rows = {}
    for pipeline in ("cpu", "dali"):
        capsys.readouterr()
        rows[pipeline] = _eval(bad_voc, tmp_path / pipeline, protocol, pipeline, *extra)
        err = capsys.readouterr().err
        skipped[pipeline] = err[err.index("skipped "):].splitlines()[0]
        if pipeline == "cpu":
            assert dali_batches == []
    pil, dali = rows["cpu"], rows["dali"]
    # training batches and every test image (4) went through DALI
    assert sum(dali_batches) >= 4 + 6
    assert skipped["cpu"] == skipped["dali"] and skipped["cpu"].startswith("skipped ")
    assert pil.keys() == dali.keys()
    # same draws, (nearly) the same pixels: the same training loss and test numbers
    losses = [json.loads((tmp_path / p / "log.jsonl").read_text().splitlines()[-1])["loss"]
              for p in ("cpu", "dali")]
    assert losses[1] == pytest.approx(losses[0], rel=1e-4)
    assert abs(pil[headline] - dali[headline]) <= 2.0, (pil[headline], dali[headline])


@pytest.fixture(scope="module")
def svm_voc(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A synthetic VOCdevkit big enough for the SVMs, whose first VOC2007 training images
    are empty, corrupt, truncated, CMYK, a PNG named .jpg, grey, EXIF-rotated and -mirrored."""
    root = make_voc_set(tmp_path_factory.mktemp("svm") / "set", n_train=16, n_val=16,
                        n_test=24, size=96, seed=0)
    folder = root / "VOCdevkit" / "VOC2007"
    ids = (folder / "ImageSets" / "Main" / "train.txt").read_text().split()
    spoil_voc(folder, ids[:8])
    return root


@pytest.mark.parametrize(("protocol", "headline", "settings"), [
    ("voc07-svm", ("test", "map"), ()),
    ("voc07-lowshot-svm", ("test", "map_mean"), ("shots=[1]",)),
])
def test_svm_features_squash_through_dali_next_to_the_pil_run(
        svm_voc: Path, tmp_path: Path, dali_batches: list[int],
        capsys: pytest.CaptureFixture[str], protocol: str, headline: tuple[str, str],
        settings: tuple[str, ...]) -> None:
    """The default SVM features (resize_short 256: Resize(short side) then the square
    squash) go through DALI's two resize stages: every decodable trainval and test image
    once, the same skipped-file report, and an mAP next to the PIL run's."""
    extra = [w for s in ("layers=[conv5]", *settings) for w in ("--set", s)]
    skipped, rows = {}, {}
    for pipeline in ("cpu", "dali"):
        capsys.readouterr()
        rows[pipeline] = _eval(svm_voc, tmp_path / pipeline, protocol, pipeline, *extra)
        err = capsys.readouterr().err
        skipped[pipeline] = err[err.index("skipped "):].splitlines()[0]
        if pipeline == "cpu":
            assert dali_batches == []
    pil, dali = rows["cpu"], rows["dali"]
    assert skipped["cpu"] == skipped["dali"] and skipped["cpu"].startswith("skipped ")
    # DALI decodes every image but the skipped ones and the two the sniff sends to PIL
    # (CMYK, the PNG named .jpg), once
    n_skipped = int(skipped["cpu"].split()[1])  # 0-byte, corrupt (and truncated: PIL's call)
    assert sum(dali_batches) == 32 + 24 - n_skipped - 2  # every other trainval + test image
    assert pil.keys() == dali.keys()
    # pixels within ~0.2 grey levels: the same SVMs up to a few tenths of mAP
    assert abs(pil[headline] - dali[headline]) <= 2.0, (pil[headline], dali[headline])
