"""Figures readable at a glance: big enough, titles without paths, no text on top of text.

Overlap is checked independently of the layout code: PIL's `textbbox` of each drawn line
(PIL figures) and matplotlib's renderer extents of every visible text (the curves figure).
"""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from dcbench.viz.curves import curves_figure, read_curves
from dcbench.viz.filters import effective_filters, filters_image, filters_title
from dcbench.viz.grid import FONT_SIZE, header_layout, short_name, with_header, with_title
from dcbench.viz.neighbors import NeighborPanel, NeighborResult, neighbors_header

SPECS = {
    "runs/tiny/final": "tiny",
    "/home/me/dcbench-demo/models/tiny-sobel": "tiny-sobel",
    "dcbench-demo/models/tiny-sobel/": "tiny-sobel",
    "random-alexnet_small-sobel": "random-alexnet_small-sobel",
    "hf-hub:someone/deepcluster-alexnet@v1": "deepcluster-alexnet@v1",
    "ckpts/run3/model.safetensors": "run3",
    "weights/alexnet.pth.tar": "alexnet",
    "runs/x/checkpoints/latest": "x",
    "C:\\models\\mine\\final": "mine",
}


@pytest.mark.parametrize("spec", list(SPECS))
def test_short_names_have_no_path(spec):
    name = short_name(spec)
    assert name == SPECS[spec]
    assert "/" not in name and "\\" not in name


def _boxes(placed, size=FONT_SIZE):
    draw = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    font = ImageFont.load_default(size=size)
    return [draw.textbbox((x, y), line, font=font) for x, y, line in placed]


def _overlap(a, b):
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _neighbors(names, same=0.67, k=3):
    panels = [NeighborPanel(n, np.zeros((2, k), dtype=np.int64), np.zeros((2, k)), same)
              for n in names]
    return NeighborResult(queries=np.array([0, 1]), panels=panels)


@pytest.mark.parametrize("tile,scale,k", [(64, 1, 3), (64, 1, 1), (32, 1, 2), (64, 2, 3)])
def test_neighbour_column_titles_neither_overlap_nor_leave_the_image(tile, scale, k):
    # the case: two long model names over narrow columns
    result = _neighbors(["/home/me/dcbench-demo/models/tiny-sobel",
                         "random-alexnet_small-sobel"], k=k)
    texts = neighbors_header(result, tile, scale)
    width = scale * (2 + (1 + 2 * (k + 1)) * (tile + 2))
    placed = header_layout(texts, width)
    boxes = _boxes(placed)
    for a, b in itertools.combinations(boxes, 2):
        assert not _overlap(a, b), (a, b)
    assert all(box[0] >= 0 and box[2] <= width for box in boxes)
    lines = [line for _, _, line in placed]
    assert not any("/" in line for line in lines)
    # every word of the titles is drawn (wrapped, never dropped)
    drawn = "".join(lines).replace(" ", "")
    for word in ("tiny-sobel", "random-alexnet_small-sobel", "67%sameclass"):
        assert word in drawn


def test_with_header_grows_to_hold_wrapped_titles():
    image = np.zeros((50, 120, 3), dtype=np.uint8)
    out = with_header(image, [(0, "a rather long title that needs three lines"), (60, "b")])
    placed = header_layout([(0, "a rather long title that needs three lines"), (60, "b")], 120)
    assert max(box[3] for box in _boxes(placed)) <= out.shape[0] - 50
    assert out.shape[1] == 120


def test_filters_figure_is_big_and_titled_without_a_path(small_sobel):
    image = with_title(filters_image(small_sobel),
                       filters_title("runs/tiny/final", effective_filters(small_sobel), True))
    assert image.shape[1] >= 480 and image.shape[0] >= 480
    title = filters_title("dcbench-demo/models/tiny-sobel", effective_filters(small_sobel), True)
    assert title[0] == "conv1 filters of tiny-sobel"
    assert not any("/" in line for line in title)


def _log(tmp_path, name, epochs=6):
    run = tmp_path / name
    run.mkdir()
    records = [{"epoch": e, "nmi_prev": None if e == 0 else 0.5 + 0.01 * e,
                "nmi_labels": 0.2 + 0.001 * e, "train_loss": 4.6245 + 1e-5 * e,
                "clustering_loss": 890 - e, "n_clusters": 100, "singletons": 0,
                "size_min": 2 + e, "size_median": 13, "size_max": 30 + e,
                "largest_share": 0.02, "ratio_edge_intra_class": 0.8248 - 1e-4 * e,
                "features_s": 15.0, "clustering_s": 0.5, "train_s": 17.0} for e in range(epochs)]
    (run / "log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return run


@pytest.mark.parametrize("n_runs", [1, 3])
def test_curves_texts_do_not_overlap(tmp_path, n_runs):
    names = ["tiny-sobel", "tiny-rgb", "digits-sobel"][:n_runs]
    frames = {n: read_curves(_log(tmp_path, n)) for n in names}
    fig = curves_figure(frames)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    width, height = fig.canvas.get_width_height()
    assert width >= 800 and height >= 500
    texts = [fig._suptitle] if fig._suptitle is not None else []
    for ax in fig.axes:
        texts += [ax.title, ax.xaxis.label, ax.yaxis.label]
        for ticks, labels, (lo, hi) in ((ax.get_xticks(), ax.get_xticklabels(), ax.get_xlim()),
                                        (ax.get_yticks(), ax.get_yticklabels(), ax.get_ylim())):
            lo, hi = min(lo, hi), max(lo, hi)  # labels of ticks outside the view are not drawn
            texts += [t for v, t in zip(ticks, labels, strict=True)
                      if lo - 1e-9 * abs(hi - lo) <= v <= hi + 1e-9 * abs(hi - lo)]
        assert "e+" not in "".join(t.get_text() for t in ax.get_yticklabels())
        assert ax.yaxis.get_offset_text().get_text() == ""  # no "+4.624" offsets
    shown = [t for t in texts if t.get_visible() and t.get_text().strip()]
    boxes = [t.get_window_extent(renderer) for t in shown]
    for (ta, a), (tb, b) in itertools.combinations(zip(shown, boxes, strict=True), 2):
        assert not a.overlaps(b), (ta.get_text(), tb.get_text())
    for box in boxes:
        assert box.x0 >= 0 and box.y0 >= 0 and box.x1 <= width and box.y1 <= height
    assert "tiny-sobel" in fig._suptitle.get_text() and "/" not in fig._suptitle.get_text()
