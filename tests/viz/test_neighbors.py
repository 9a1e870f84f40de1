"""k-NN queries: the search against sklearn, the figure's shape, trained-vs-random side by side."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
from PIL import Image
from sklearn.neighbors import NearestNeighbors

from dcbench.cli.entry import main
from dcbench.core.errors import UserError
from dcbench.viz.neighbors import find_neighbors, knn_cosine, neighbors_image
from dcbench.viz.tap_stats import image_dataset, pick_indices


def test_knn_cosine_matches_sklearn():
    gen = torch.Generator().manual_seed(0)
    base = torch.nn.functional.normalize(torch.randn(50, 16, generator=gen), dim=1)
    order, sims = knn_cosine(base[:5], base, k=4, exclude=torch.arange(5))
    ref = NearestNeighbors(n_neighbors=5, metric="cosine").fit(base.numpy())
    dist, idx = ref.kneighbors(base[:5].numpy())
    np.testing.assert_array_equal(order.numpy(), idx[:, 1:])  # sklearn returns self first
    np.testing.assert_allclose(sims.numpy(), 1.0 - dist[:, 1:], atol=1e-5)


def test_knn_cosine_ties_go_to_the_lower_row_and_k_is_checked():
    base = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0], [1.0, 0.0]])
    order, _ = knn_cosine(base[:1], base, k=2, exclude=torch.tensor([0]))
    assert order.tolist() == [[3, 1]]
    with pytest.raises(UserError):
        knn_cosine(base[:1], base, k=4, exclude=torch.tensor([0]))


def test_pick_indices_is_even_and_deterministic():
    assert pick_indices(10, None).tolist() == list(range(10))
    assert pick_indices(10, 3).tolist() == [0, 4, 9]  # linspace(0, 9, 3) rounded
    with pytest.raises(UserError):
        pick_indices(10, 0)


def test_trained_vs_random_panels(synth, small_sobel, small_rgb):
    result = find_neighbors([small_sobel, small_rgb], synth / "val", layer="conv5", k=3,
                            n_queries=4)
    dataset = image_dataset(small_sobel, synth / "val")
    assert len(result.queries) == 4 and len(result.panels) == 2
    targets = dataset.targets
    for panel in result.panels:
        assert panel.neighbors.shape == (4, 3) and panel.similarities.shape == (4, 3)
        assert not (panel.neighbors == result.queries[:, None]).any()  # never the query itself
        assert (np.diff(panel.similarities, axis=1) <= 1e-6).all()  # best first
        same = (targets[panel.neighbors] == targets[result.queries][:, None]).mean()
        assert panel.same_class == pytest.approx(same)
    # the first neighbour under the first model, recomputed by brute force (mean-pooled conv5)
    q = int(result.queries[0])
    with torch.no_grad():
        batch = torch.stack([dataset[i][0] for i in range(len(dataset))])
        f = small_sobel.forward_features(batch, ["conv5"])["conv5"].mean(dim=(2, 3))
    f = torch.nn.functional.normalize(f, dim=1)
    sims = f @ f[q]
    sims[q] = -2
    assert int(sims.argmax()) == result.panels[0].neighbors[0, 0]
    image = neighbors_image(result, small_sobel, synth / "val")
    # 9 columns (query, blank, 3, blank, 3) of 64 px + 2 px padding, enlarged x2 (tiles of at
    # least 96 px), under a header of two lines per model (name, same-class share)
    assert image.shape[1] == (9 * 66 + 2) * 2
    assert image.shape[0] - (4 * 66 + 2) * 2 >= 2 * 18
    again = find_neighbors([small_sobel, small_rgb], synth / "val", layer="conv5", k=3,
                           n_queries=4)
    np.testing.assert_array_equal(again.panels[1].neighbors, result.panels[1].neighbors)
    np.testing.assert_array_equal(neighbors_image(again, small_sobel, synth / "val"), image)


def test_an_exact_duplicate_is_the_nearest_neighbour(synth, small_sobel, tmp_path):
    folder = tmp_path / "dup"
    shutil.copytree(synth / "val", folder)
    src = sorted((folder / "circle").glob("*.png"))[0]
    shutil.copy(src, folder / "square" / "zz_copy_of_circle.png")
    dataset = image_dataset(small_sobel, folder)
    query = [i for i, (p, _) in enumerate(dataset.samples) if p == str(src)]
    result = find_neighbors([small_sobel], folder, layer="conv3", k=1, query_indices=query)
    found = dataset.samples[int(result.panels[0].neighbors[0, 0])][0]
    assert found.endswith("zz_copy_of_circle.png")
    assert result.panels[0].similarities[0, 0] == pytest.approx(1.0, abs=1e-5)


def test_bad_input(synth, small_sobel):
    with pytest.raises(UserError, match="unknown layer"):
        find_neighbors([small_sobel], synth / "val", layer="pool9")
    with pytest.raises(UserError, match="out of range"):
        find_neighbors([small_sobel], synth / "val", query_indices=[10_000])
    with pytest.raises(UserError, match="not found"):
        find_neighbors([small_sobel], synth / "missing")


def test_cli(synth, tmp_path, capsys):
    out = tmp_path / "nn.png"
    argv = ["viz", "neighbors", "--model", "random-alexnet_small-sobel", "--compare",
            "arch:alexnet_small?sobel=0&seed=1", "--data", str(synth / "train"), "--k", "2",
            "--queries", "3", "--out", str(out)]
    assert main(argv) == 0
    text = capsys.readouterr()
    assert "share the query's class" in text.out
    assert "skipped 1 undecodable image" in text.err
    width, height = Image.open(out).size
    assert width == (7 * 66 + 2) * 2 and height - (3 * 66 + 2) * 2 >= 2 * 18
