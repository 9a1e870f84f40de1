"""`dcbench eval` end to end on a tiny synthetic ImageFolder, writing to a temp store."""

from __future__ import annotations

import json

import pytest

from dcbench.cli.entry import main
from dcbench.leaderboards.store import ResultsStore

MODEL = "arch:alexnet_small?sobel=1"


def _eval(cls_data, tmp_path, *extra: str) -> int:
    return main(["eval", "--model", MODEL, "--data", str(cls_data), "--schedule", "smoke",
                 "--store", str(tmp_path / "results.sqlite"), "--no-progress", *extra])


def test_linear_conv_fast_writes_run_dir_store_and_table(cls_data, tmp_path, capsys):
    out = tmp_path / "run"
    rc = _eval(cls_data, tmp_path, "--protocol", "linear-conv", "--fast", "--layers",
               "conv2,conv5", "--set", "epochs=2", "--out", str(out))
    assert rc == 0
    for name in ("config.yaml", "versions.json", "run.json", "results.json", "selection.json"):
        assert (out / name).is_file(), name
    rows = json.loads((out / "results.json").read_text())
    assert {(r["layer"], r["split"], r["metric"]) for r in rows} >= {
        ("conv5", "val", "top1"), ("conv5", "val", "top1_best_epoch"),
        ("conv2", "train-heldout", "top1")}
    stored = ResultsStore(tmp_path / "results.sqlite").results(protocol="linear-conv")
    assert len(stored) == len(rows) and set(stored["dialect"]) == {"dc2018"}
    table = capsys.readouterr().out
    assert "conv5" in table and "top1_best_epoch" in table
    # a finished run resumed gives the same rows; a fresh run into it is refused
    assert _eval(cls_data, tmp_path, "--protocol", "linear-conv", "--fast", "--layers",
                 "conv2,conv5", "--set", "epochs=2", "--out", str(out), "--resume") == 0
    again = json.loads((out / "results.json").read_text())
    assert [r["value"] for r in again] == [r["value"] for r in rows]
    assert _eval(cls_data, tmp_path, "--protocol", "linear-conv", "--fast", "--out",
                 str(out)) == 2
    assert _eval(cls_data, tmp_path, "--protocol", "linear-conv", "--fast", "--layers",
                 "conv2,conv5", "--set", "epochs=3", "--out", str(out), "--resume") == 2
    assert "differs" in capsys.readouterr().err


def test_a_run_dir_from_before_selection_pass_resumes_in_two_pass_mode(cls_data, tmp_path,
                                                                        capsys):
    """An older run dir (config.yaml without `selection_pass`, select/final checkpoints) is
    refused with the flag that resumes it, and resumes with that flag."""
    out = tmp_path / "old"
    args = ("--protocol", "linear-conv", "--fast", "--layers", "conv2", "--set", "epochs=2",
            "--out", str(out))
    assert _eval(cls_data, tmp_path, *args, "--set", "selection_pass=two") == 0
    assert (out / "checkpoints" / "select.pt").is_file()
    rows = json.loads((out / "results.json").read_text())
    config = out / "config.yaml"
    config.write_text("".join(line for line in config.read_text().splitlines(keepends=True)
                              if not line.startswith("selection_pass:")))
    capsys.readouterr()
    assert _eval(cls_data, tmp_path, *args, "--resume") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == (f"dcbench: error: {out} was started before the config key(s) "
                       "selection_pass existed; resume it with --set selection_pass=two")
    assert _eval(cls_data, tmp_path, *args, "--resume", "--set", "selection_pass=two") == 0
    again = json.loads((out / "results.json").read_text())
    assert [r["value"] for r in again] == [r["value"] for r in rows]


def test_linear_conv_faithful_ten_crop_path(cls_data, tmp_path):
    out = tmp_path / "faithful"
    rc = _eval(cls_data, tmp_path, "--protocol", "linear-conv", "--layers", "conv3",
               "--set", "epochs=1", "--set", "weight_decays=[1e-4]", "--out", str(out))
    assert rc == 0
    rows = json.loads((out / "results.json").read_text())
    assert {r["metric"] for r in rows if r["split"] == "val"} == {"top1", "top1_best_epoch"}


@pytest.mark.parametrize(("protocol", "extra", "metric"), [
    ("knn", ["--layers", "conv5,fc7"], "top1"),
    ("knn-graph", [], "ratio_edge_intra_class"),
    ("nmi", ["--set", "pca_dim=8"], "nmi"),
    ("mlp", ["--fast", "--set", "epochs=2"], "top1"),
])
def test_other_protocols_end_to_end(cls_data, tmp_path, protocol, extra, metric):
    assert _eval(cls_data, tmp_path, "--protocol", protocol, *extra) == 0
    stored = ResultsStore(tmp_path / "results.sqlite").results(protocol=protocol)
    assert metric in set(stored["metric"])
    assert (stored["model_sha256"].str.len() == 64).all()


def test_bad_input_exits_2_and_writes_nothing(cls_data, tmp_path, capsys):
    out = tmp_path / "never"
    assert _eval(cls_data, tmp_path, "--protocol", "linear-cnv", "--out", str(out)) == 2
    assert "did you mean linear-conv" in capsys.readouterr().err.lower()
    assert _eval(cls_data, tmp_path, "--protocol", "linear-conv", "--layers", "conv9",
                 "--out", str(out)) == 2
    assert "valid: conv1" in capsys.readouterr().err
    assert _eval(cls_data, tmp_path, "--protocol", "knn", "--train-layers", "all") == 2
    assert _eval(tmp_path / "nowhere", tmp_path, "--protocol", "knn") == 2
    empty = tmp_path / "empty"
    (empty / "train").mkdir(parents=True)
    assert _eval(empty, tmp_path, "--protocol", "knn", "--out", str(out)) == 2
    assert not out.exists()
    assert not (tmp_path / "results.sqlite").exists()


def test_places_list_files_and_undecodable_images(tmp_path, capsys):
    """Places205-style list files (no class folders), with corrupt files skipped and reported."""
    import shutil

    from dcbench.data.synthetic import make_classification_set

    src = make_classification_set(tmp_path / "src", n_classes=3, train_per_class=10,
                                  val_per_class=4, seed=1, corrupt=3)
    places = tmp_path / "places"
    places.mkdir()
    for name in ("train.txt", "val.txt"):
        shutil.copy(src / name, places / name)
    (places / "images").symlink_to(src, target_is_directory=True)
    for fast in ([], ["--fast"]):
        out = tmp_path / f"run{len(fast)}"
        assert _eval(places, tmp_path, "--protocol", "linear-conv", *fast, "--layers", "conv5",
                     "--set", "epochs=1", "--set", "weight_decays=[1e-4]",
                     "--out", str(out)) == 0
        assert "skipped 3 undecodable image(s)" in capsys.readouterr().err
        rows = json.loads((out / "results.json").read_text())
        assert rows[0]["dataset"] == "places"


def test_batch_size_and_workers_flags(cls_data, tmp_path, capsys):
    assert _eval(cls_data, tmp_path, "--protocol", "knn", "--batch-size", "8", "--no-store",
                 "--out", str(tmp_path / "k")) == 0
    config = (tmp_path / "k" / "config.yaml").read_text()
    assert "batch_size: 8" in config
    # a protocol without a loader-workers key refuses the flag, naming its keys
    assert _eval(cls_data, tmp_path, "--protocol", "knn", "--workers", "2", "--no-store",
                 "--out", str(tmp_path / "k2")) == 2
    assert "does not take --workers" in capsys.readouterr().err


def test_name_is_stored_and_reused_for_the_same_weights(cls_data, tmp_path, capsys):
    store = tmp_path / "results.sqlite"
    assert _eval(cls_data, tmp_path, "--protocol", "knn", "--layers", "conv5",
                 "--name", "rand-a") == 0
    assert _eval(cls_data, tmp_path, "--protocol", "nmi", "--set", "pca_dim=8") == 0
    stored = ResultsStore(store).results()
    assert set(stored["model"]) == {"rand-a"}  # the second run reused the stored name
    run = ResultsStore(store).runs().iloc[0]
    assert run["extra"]["name"] == "rand-a" and run["extra"]["arch"] == "alexnet_small"
    assert run["extra"]["sobel"] is True and run["extra"]["model"] == MODEL
    capsys.readouterr()
    assert _eval(cls_data, tmp_path, "--protocol", "knn", "--name", "bad name") == 2
    assert "--name 'bad name'" in capsys.readouterr().err
