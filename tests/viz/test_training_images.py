"""The images a training run shows live: a few clusters (one row each) and conv1 filters."""

from __future__ import annotations

import numpy as np

from dcbench.data.folders import ImageFolderDataset
from dcbench.models import create_backbone
from dcbench.viz.filters import filters_image
from dcbench.viz.training_images import clusters_image, pick_clusters, training_images


def test_pick_clusters_draws_members_of_non_empty_clusters_only():
    labels = np.array([0, 0, 0, 2, 2, -1, 5, 5, 5, 5, 5])
    picked = pick_clusters(labels, clusters=2, per_cluster=3, seed=1)
    assert len(picked) == 2 and [c for c, _ in picked] == sorted(c for c, _ in picked)
    for cluster, indices in picked:
        assert cluster in (0, 2, 5)
        assert len(indices) == min(3, int((labels == cluster).sum()))
        assert (labels[indices] == cluster).all() and len(set(indices)) == len(indices)
    assert [c for c, _ in pick_clusters(labels, 10, 2, 0)] == [0, 2, 5]
    assert pick_clusters(np.array([-1, -1]), 3, 3, 0) == []
    again = pick_clusters(labels, 2, 3, 1)
    assert all(a[0] == b[0] and (a[1] == b[1]).all() for a, b in zip(picked, again,
                                                                      strict=True))


def test_clusters_image_has_one_row_per_cluster(cls_set):
    paths = [p for p, _ in ImageFolderDataset(cls_set / "train").samples]
    labels = np.arange(len(paths)) % 3  # 3 clusters, every image assigned
    image = clusters_image(paths, labels, clusters=2, per_cluster=4, tile=16, seed=0)
    pad = 2  # torchvision's make_grid padding
    assert image.dtype == np.uint8
    assert image.shape == (2 * (16 + pad) + pad, 4 * (16 + pad) + pad, 3)


def test_training_images_callback_draws_both_pictures(cls_set):
    model = create_backbone({"arch": "alexnet_small", "sobel": True, "num_classes": 0}, seed=0)
    draw = training_images(cls_set / "train", seed=3)
    n = len(ImageFolderDataset(cls_set / "train").samples)
    images = draw(model, np.arange(n) % 4, 0)
    assert set(images) == {"images/clusters", "images/conv1_filters"}
    assert np.array_equal(images["images/conv1_filters"], filters_image(model))
