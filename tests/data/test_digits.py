"""`dcbench data digits`: sklearn's real digits as an ImageFolder, checked against sklearn."""

from __future__ import annotations

import numpy as np
from PIL import Image
from sklearn.datasets import load_digits

from dcbench.cli.entry import main
from dcbench.data.digits import make_digits_set


def _files(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*.png"))


def test_every_digit_written_once_with_its_label(tmp_path):
    out = make_digits_set(tmp_path / "d", size=8, seed=0)
    digits = load_digits()
    seen = {}
    for line in (out / "train.txt").read_text().splitlines() + \
            (out / "val.txt").read_text().splitlines():
        rel, label = line.split()
        index = int(rel.rsplit("_", 1)[1].removesuffix(".png"))
        assert rel.split("/")[1] == label == str(digits.target[index])
        seen[index] = rel
    assert sorted(seen) == list(range(1797))
    # at 8 px the image is the scan itself: grey = value * 255 / 16 (three equal channels)
    arr = np.asarray(Image.open(out / seen[5]))
    expected = np.round(digits.data[5].reshape(8, 8) * 255 / 16)
    assert arr.shape == (8, 8, 3) and np.array_equal(arr[..., 0], expected)
    assert np.array_equal(arr[..., 0], arr[..., 2])


def test_split_is_stratified_and_deterministic(tmp_path):
    a = make_digits_set(tmp_path / "a", size=16, seed=3)
    b = make_digits_set(tmp_path / "b", size=16, seed=3)
    c = make_digits_set(tmp_path / "c", size=16, seed=4)
    assert _files(a) == _files(b) != _files(c)
    counts = np.bincount(load_digits().target)
    for digit, total in enumerate(counts):
        n_val = len(list((a / "val" / str(digit)).glob("*.png")))
        assert abs(n_val - 0.25 * total) <= 1
    assert Image.open(next((a / "train" / "0").glob("*.png"))).size == (16, 16)


def test_cli_writes_and_refuses_a_non_empty_folder(tmp_path, capsys):
    assert main(["data", "digits", "--out", str(tmp_path / "d"), "--size", "32"]) == 0
    assert "train/ (1347 images) val/ (450)" in capsys.readouterr().out
    assert main(["data", "digits", "--out", str(tmp_path / "d")]) == 2


def test_per_class_keeps_a_balanced_subset(tmp_path):
    out = make_digits_set(tmp_path / "d", size=8, per_class=20, seed=1)
    for digit in range(10):
        n_train = len(list((out / "train" / str(digit)).glob("*.png")))
        n_val = len(list((out / "val" / str(digit)).glob("*.png")))
        assert (n_train, n_val) == (15, 5)
