"""A model is its weights: one identity per sha256, one short name, many ways to name it."""

from __future__ import annotations

import hashlib
import os

import pandas as pd
import pytest
import torch

from dcbench.core.errors import UserError
from dcbench.leaderboards.identity import (
    card_name,
    default_name,
    identify,
    model_label,
    resolve_model,
    spec_architecture,
    weights_sha256_of,
)
from dcbench.leaderboards.run_tables import protocol_tables
from dcbench.leaderboards.tables import Leaderboard
from dcbench.models import create_backbone
from dcbench.models.checkpoints import save_hub_dir

SHA_A, SHA_B = "ab12" + "0" * 60, "ab34" + "1" * 60


def row(model: str, sha: str, value: float, **extra: object) -> dict:
    base = dict(run_id=f"eval-{model}", model=model, model_sha256=sha, protocol="knn",
                dialect="dc2018", dataset="digits", split="val", layer="conv5",
                metric="top1", value=value, seed=0, config_hash="h", dcbench_version="0",
                code_revision="", device="cpu", timestamp="2026-11-30T10:00:00+00:00")
    base.update(extra)
    return base


def plain_sha256(model: torch.nn.Module) -> str:
    """Independent port of the weights hash: sha256 over the state_dict, sorted keys."""
    digest = hashlib.sha256()
    for key, tensor in sorted(model.state_dict().items()):
        digest.update(key.encode())
        digest.update(str(tuple(tensor.shape)).encode())
        digest.update(str(tensor.dtype).encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


@pytest.mark.parametrize(("spec", "label"), [
    ("runs/tiny/final", "tiny"), ("/abs/runs/tiny/checkpoints/latest/", "tiny"),
    ("/abs/dcbench-demo/models/tiny-sobel", "tiny-sobel"), ("ckpt/model.safetensors", "ckpt"),
    ("weights/dc.pth.tar", "dc"), ("deepcluster-alexnet", "deepcluster-alexnet"),
    ("torchvision:resnet18@random", "torchvision:resnet18@random"),
    ("hf-hub:org/repo@v1", "hf-hub:org/repo@v1"),
])
def test_model_label(spec: str, label: str) -> None:
    assert model_label(spec) == label


def test_relative_and_absolute_paths_of_the_same_weights_are_one_model() -> None:
    rows = [row("models/tiny-sobel", SHA_A, 70.0, seed=0),
            row("/home/u/demo/models/tiny-sobel", SHA_A, 72.0, seed=1),
            row("/home/u/demo/models/random-sobel", SHA_B, 60.0)]
    frame = identify(pd.DataFrame(rows))
    assert frame.groupby("model")["model_sha256"].nunique().to_dict() == {
        "tiny-sobel": 1, "random-sobel": 1}
    (_, table), = protocol_tables(frame)
    # one column for the two paths: mean of 70 and 72, no absolute path anywhere
    assert table.iloc[0]["tiny-sobel"].startswith("71.0")
    assert not any("/" in str(c) for c in table.columns)


def test_same_name_for_different_weights_gets_the_sha() -> None:
    frame = identify(pd.DataFrame([row("a/tiny/final", SHA_A, 1.0),
                                   row("b/tiny/final", SHA_B, 2.0)]))
    assert sorted(set(frame.model)) == ["tiny@ab120000", "tiny@ab341111"]


def test_latest_name_wins_and_rows_without_sha_stay_apart() -> None:
    frame = identify(pd.DataFrame([
        row("runs/x/final", SHA_A, 1.0, timestamp="2026-01-01T00:00:00"),
        row("mine", SHA_A, 2.0, timestamp="2026-02-01T00:00:00"),
        row("p", "", 3.0), row("q", "", 4.0)]))
    assert set(frame.model) == {"mine", "p", "q"}


def test_resolve_by_name_spec_and_sha_prefix() -> None:
    frame = identify(pd.DataFrame([row("/abs/models/tiny-sobel", SHA_A, 1.0),
                                   row("random-sobel", SHA_B, 2.0)]))
    assert resolve_model(frame, "tiny-sobel") == SHA_A
    assert resolve_model(frame, "/abs/models/tiny-sobel") == SHA_A
    assert resolve_model(frame, "other/place/tiny-sobel") == SHA_A  # same short name
    assert resolve_model(frame, "AB3411") == SHA_B
    with pytest.raises(UserError, match="no results for model 'ab341'"):
        resolve_model(frame, "ab341")  # 5 digits: too short to be a prefix
    with pytest.raises(UserError, match="sha256 prefix 'ab1200' is ambiguous"):
        resolve_model(identify(pd.DataFrame([row("x", SHA_A, 1.0),
                                             row("y", "ab1200" + "2" * 58, 1.0)])), "ab1200")
    with pytest.raises(UserError, match="no results for model 'ghost'; models in the store"):
        resolve_model(frame, "ghost")


def test_paths_in_any_form_resolve_by_their_weights(tmp_path, monkeypatch) -> None:
    net = create_backbone({"arch": "alexnet_small", "sobel": True}, seed=0)
    folder = save_hub_dir(net, tmp_path / "demo" / "models" / "my-net")
    sha = plain_sha256(net)
    assert weights_sha256_of(folder) == sha == net.weights_sha256()
    # stored by an older dcbench under an unrelated absolute path string
    board = Leaderboard(pd.DataFrame([row("/elsewhere/copy", sha, 50.0),
                                      row("random-sobel", SHA_B, 40.0)]))
    monkeypatch.chdir(tmp_path / "demo")
    for spec in ("models/my-net", "./models/my-net/", str(folder),
                 os.path.join("..", "demo", "models", "my-net")):
        assert board.model_name(spec) == "copy", spec
    assert spec_architecture("models/my-net") == "alexnet_small (Sobel)"
    other = save_hub_dir(create_backbone({"arch": "alexnet_small", "sobel": True}, seed=1),
                         tmp_path / "unseen")
    with pytest.raises(UserError, match=r"no results for model .*weights sha256"):
        board.model_name(str(other))


def test_compare_names_columns_by_display_name() -> None:
    board = Leaderboard(pd.DataFrame([row("/abs/demo/models/tiny-sobel", SHA_A, 70.0),
                                      row("demo/models/tiny-sobel", SHA_A, 72.0, seed=1),
                                      row("/abs/demo/models/random-sobel", SHA_B, 60.0)]))
    frame = board.compare(["tiny-sobel", "random-sobel"])
    assert frame["tiny-sobel"].item() == 71.0 and frame["n tiny-sobel"].item() == 2
    assert frame["Δ random-sobel"].item() == pytest.approx(60.0 - 71.0)
    with pytest.raises(UserError, match="names the same model"):
        board.compare(["tiny-sobel", "ab12000"])


def test_a_config_json_in_the_working_directory_names_nothing(tmp_path, monkeypatch) -> None:
    (tmp_path / "config.json").write_text('{"arch": "vgg16", "sobel": true, "name": "cwd"}')
    monkeypatch.chdir(tmp_path)
    assert spec_architecture("my-model") == ""
    assert card_name("deepcluster-alexnet") is None
    assert default_name("deepcluster-alexnet", SHA_A) == "deepcluster-alexnet"
    assert spec_architecture("random-alexnet-sobel?seed=3") == "alexnet (Sobel)"


def test_default_name_prefers_the_stored_name_then_the_card(tmp_path) -> None:
    net = create_backbone({"arch": "alexnet_small", "sobel": False}, seed=0)
    folder = save_hub_dir(net, tmp_path / "hub" / "x", extra_config={"name": "carded"})
    assert default_name(str(folder), SHA_A) == "carded"
    stored = pd.DataFrame([row("first-name", SHA_A, 1.0, timestamp="2026-01-01T00:00:00"),
                           row("/p/later", SHA_A, 1.0, timestamp="2026-03-01T00:00:00")])
    assert default_name(str(folder), SHA_A, stored) == "later"
    assert default_name("runs/other/final", SHA_B, stored) == "other"


def test_show_match_accepts_any_name_of_the_model() -> None:
    rows = [row("/abs/models/tiny-sobel", SHA_A, 30.0, protocol="linear-conv",
                dataset="imagenet", layer="conv5", metric="top1_best_epoch")]
    frame = Leaderboard(pd.DataFrame(rows)).table(
        "eccv-table1-imagenet", match={"/abs/models/tiny-sobel": "DeepCluster"})
    mine = frame[frame["kind"] == "ours"]
    assert mine["method"].item() == "tiny-sobel (ours)"
    assert mine["Δ conv5"].item() == pytest.approx(30.0 - 38.2)


def test_a_name_stored_by_one_run_does_not_rename_a_model_many_runs_named() -> None:
    # the demo's random-sobel: four evals name it; then low-shot's random-init baseline, the
    # same weights (same seed), is stored under the protocol's label in one later run
    rows = [row("/abs/models/random-sobel", SHA_A, 1.0, run_id=f"eval-{i}",
                timestamp=f"2026-01-0{i + 1}T00:00:00") for i in range(4)]
    rows += [row("random-alexnet_small", SHA_A, 2.0, run_id="lowshot",
                 timestamp="2026-02-01T00:00:00")] * 3  # several rows, one run
    assert set(identify(pd.DataFrame(rows)).model) == {"random-sobel"}
