"""Training curves: tolerant log parsing, panel choice, reproducible PNG, CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from dcbench.cli.entry import main
from dcbench.core.errors import UserError
from dcbench.viz.curves import available_panels, curves_figure, figure_png, parse_log, read_curves

RECORD = {"epoch": 0, "nmi_prev": None, "nmi_labels": 0.27, "clustering_loss": 64.5,
          "train_loss": 2.08, "n_clusters": 8, "n_singletons": 0, "size_min": 6,
          "size_median": 11.5, "size_max": 19, "largest_share": 0.2,
          "ratio_edge_intra_class": 0.24, "features_s": 0.75, "clustering_s": 0.02,
          "train_s": 0.9}


def _write_run(folder, n_epochs: int, torn: bool = True, drop: tuple[str, ...] = ()):
    folder.mkdir(parents=True)
    lines = []
    for epoch in range(n_epochs):
        rec = {k: v for k, v in RECORD.items() if k not in drop}
        rec.update(epoch=epoch, nmi_prev=None if epoch == 0 else 0.3 + 0.1 * epoch,
                   train_loss=2.0 - 0.1 * epoch)
        lines.append(json.dumps(rec))
    text = "\n".join(lines) + "\n"
    if torn:
        text += '{"epoch": 9, "nmi_prev": 0.'  # killed mid-write
    (folder / "log.jsonl").write_text(text)
    return folder


def test_parse_log_tolerates_torn_lines_aliases_and_repeats():
    text = "\n".join([
        json.dumps({"epoch": 1, "train_loss": 1.5, "n_nonempty": 7, "clustering_time": 0.5}),
        json.dumps({"epoch": 0, "train_loss": 2.0}),
        json.dumps({"epoch": 1, "train_loss": 1.4}),  # a rewritten epoch: the last one wins
        "not json",
        json.dumps([1, 2]),
        json.dumps({"no_epoch": 1}),
        '{"epoch": 2, "train_lo',
    ])
    frame = parse_log(text)
    assert frame["epoch"].tolist() == [0, 1]
    assert frame["train_loss"].tolist() == [2.0, 1.4]
    assert "n_clusters" not in frame or frame["n_clusters"].isna().all()


def test_aliases_are_renamed():
    frame = parse_log(json.dumps({"epoch": 0, "n_nonempty": 7, "clustering_time": 0.5}))
    assert frame.loc[0, "n_clusters"] == 7 and frame.loc[0, "clustering_s"] == 0.5


def test_panels_follow_the_available_keys(tmp_path):
    full = read_curves(_write_run(tmp_path / "a", 3))
    assert len(available_panels({"a": full})) == 8
    sparse = read_curves(_write_run(tmp_path / "b", 2, drop=tuple(k for k in RECORD
                                                               if k not in ("epoch",))))
    titles = [p.title for p in available_panels({"b": sparse})]
    assert titles == ["NMI", "ConvNet loss"]  # nmi_prev and train_loss are set per epoch


def test_png_is_reproducible_and_sized(tmp_path):
    frames = {"a": read_curves(_write_run(tmp_path / "a", 4)),
              "b": read_curves(_write_run(tmp_path / "b", 2, drop=("ratio_edge_intra_class",)))}
    first = figure_png(curves_figure(frames, columns=4))
    assert first == figure_png(curves_figure(frames, columns=4))
    image = np.asarray(Image.open(__import__("io").BytesIO(first)).convert("RGB"))
    assert image.shape == (2 * 300, 4 * 420, 3)  # 8 panels in 2 rows of 4, 4.2 x 3.0 in at 100 dpi
    assert image.std() > 10  # something was drawn


def test_missing_or_empty_logs(tmp_path):
    with pytest.raises(UserError, match="training log not found"):
        read_curves(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "log.jsonl").write_text('{"epoch": 0, "nmi')
    with pytest.raises(UserError, match="no finished epoch"):
        read_curves(tmp_path / "empty")


def test_cli_overlays_runs(tmp_path, capsys):
    a, b = _write_run(tmp_path / "sobel", 3), _write_run(tmp_path / "rgb", 2)
    out = tmp_path / "curves.png"
    assert main(["viz", "curves", str(a), str(b / "log.jsonl"), "--out", str(out)]) == 0
    assert "sobel: 3 epochs, rgb: 2 epochs" in capsys.readouterr().out
    assert Image.open(out).size == (3 * 420, 3 * 300)
    assert main(["viz", "curves", str(tmp_path / "none"), "--out", str(tmp_path / "x.png")]) == 2
    assert not (tmp_path / "x.png").exists()
