"""knn-graph: the ratio edge intra-class core on a hand-made graph."""

from __future__ import annotations

import math

import numpy as np

from dcbench.protocols.knn_graph import knn_graph_metrics


def test_ratio_edge_intra_class_on_a_hand_made_graph():
    # points on a line: class 0 at 0, 1, 2; class 1 at 10, 11; class 2 at 11.4
    x = np.array([[0.0], [1.0], [2.0], [10.0], [11.0], [11.4]], dtype=np.float32)
    y = np.array([0, 0, 0, 1, 1, 2])
    metrics, classes, ratios = knn_graph_metrics(x, y, k=1)
    # 1-NN: 0->1, 1->0|2, 2->1 (all intra); 10->11 (intra), 11->11.4 (inter); 11.4->11 (inter)
    assert list(classes) == [0, 1, 2]
    assert np.allclose(ratios, [1.0, 0.5, 0.0])
    assert math.isclose(metrics["ratio_edge_intra_class"], 0.5)
    assert math.isclose(metrics["ratio_edge_intra_class_random"], (2 / 5 + 1 / 5 + 0) / 3)
    _, _, ratios2 = knn_graph_metrics(x, y, k=2)
    # 2-NN: class 0 nodes all point inside (6/6); 10 -> {11, 11.4}: 1/2, 11 -> {11.4, 10}: 1/2
    assert np.allclose(ratios2, [1.0, 0.5, 0.0])
