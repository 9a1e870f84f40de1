"""`dcbench hub convert` and the safe loader: official files convert, unsafe or wrong ones not."""

from __future__ import annotations

import csv
import pickle

import torch

import dcbench
from dcbench.cli.entry import main
from dcbench.leaderboards import published
from dcbench.models.sources.catalog import list_entries
from dcbench.models.sources.pull import cached_dir
from tests.models.test_official_layout import official_alexnet_state_dict, save_official


class Exploit:
    """A pickle payload that would run code on a bare torch.load."""

    def __reduce__(self):
        return (print, ("pwned",))


def test_convert_official_checkpoint(tmp_path, capsys):
    sd = official_alexnet_state_dict(k=10)
    src = tmp_path / "checkpoint.pth.tar"
    save_official(src, sd)
    out = tmp_path / "hub"
    assert main(["hub", "convert", str(src), str(out)]) == 0
    assert {p.name for p in out.iterdir()} == {"config.json", "model.safetensors", "README.md"}
    model = dcbench.load_model(str(out))
    assert torch.equal(model.state_dict()["features.0.weight"], sd["features.module.0.weight"])
    assert model.config["num_classes"] == 10 and model.config["sobel"] is True
    card = (out / "README.md").read_text()
    assert "alexnet" in card.lower()


def test_unsafe_pickle_is_refused_and_nothing_written(tmp_path, capsys):
    src = tmp_path / "evil.pth.tar"
    with open(src, "wb") as handle:
        pickle.dump({"arch": "alexnet", "state_dict": {}, "payload": Exploit()}, handle)
    out = tmp_path / "hub"
    assert main(["hub", "convert", str(src), str(out)]) == 2
    err = capsys.readouterr()
    assert "refused" in err.err and "pwned" not in err.out
    assert not out.exists() and not (tmp_path / "hub.partial").exists()


def test_wrong_keys_are_refused_with_a_report(tmp_path, capsys):
    sd = official_alexnet_state_dict(k=10)
    sd["features.module.99.weight"] = torch.zeros(1)
    del sd["classifier.4.bias"]
    src = tmp_path / "bad.pth.tar"
    save_official(src, sd)
    assert main(["hub", "convert", str(src), str(tmp_path / "hub")]) == 2
    err = capsys.readouterr().err
    assert "missing keys (1): classifier.4.bias" in err
    assert "unexpected keys (1): features.99.weight" in err
    assert not (tmp_path / "hub").exists()


def test_truncated_checkpoint_is_a_clear_error(tmp_path, capsys):
    sd = official_alexnet_state_dict(k=10)
    src = tmp_path / "cut.pth.tar"
    save_official(src, sd)
    src.write_bytes(src.read_bytes()[:5000])
    assert main(["hub", "convert", str(src), str(tmp_path / "hub")]) == 2
    assert "not a PyTorch checkpoint" in capsys.readouterr().err


def _columns(listing: str) -> list[dict[str, str]]:
    """The table of `hub list` as dicts, cut at the header words' start positions."""
    lines = listing.splitlines()
    header = lines[0]
    names = header.split()
    starts = [header.index(n) if n != "weights" else header.rindex(n) for n in names]
    rows = []
    for line in lines[1:]:
        if not line.strip() or line.startswith(("headline:", "cached:", "`dcbench")):
            continue
        bounds = [*starts[1:], None]
        rows.append({n: line[s:e].strip() for n, s, e in zip(names, starts, bounds,
                                                              strict=True)})
    return rows


def test_hub_list_cached_and_headline_columns_are_never_cut(capsys, isolated_home):
    cached = cached_dir("deepcluster-alexnet")  # as a pull leaves it
    cached.mkdir(parents=True)
    (cached / "config.json").write_text("{}")
    (cached / "model.safetensors").write_bytes(b"")
    assert main(["hub", "list"]) == 0
    listing = capsys.readouterr().out
    assert max(len(line) for line in listing.splitlines()) <= 120
    rows = {r["name"]: r for r in _columns(listing)}
    entries = list_entries("*")
    assert set(rows) == {e.name for e in entries}  # every name whole
    for entry in entries:  # every cell whole: equal to the catalog's own text
        assert rows[entry.name]["arch"] == entry.arch
    assert rows["km-fl1m-sob"]["weights"] == "none published; recipe km-fl1m-sob"
    assert rows["deepcluster-alexnet"]["cached"] == "yes"
    assert rows["deepcluster-vgg16"]["cached"] == "no"
    assert rows["random-alexnet-sobel"]["cached"] == "-"
    # the headline is the published number, read here straight from the shipped CSV
    with open(published.PUBLISHED_DIR / "eccv-table1-imagenet.csv", newline="") as handle:
        conv5 = next(r["conv5"] for r in csv.DictReader(handle) if r["method"] == "DeepCluster")
    assert rows["deepcluster-alexnet"]["headline"] == f"IN conv5 {conv5}"
    assert rows["deepclusterv2-r50-800ep"]["headline"] == "IN top-1 75.2"
    assert rows["random-alexnet_small-sobel"]["headline"] == ""  # no published row names it
    assert main(["hub", "list", "--wide"]) == 0
    wide = capsys.readouterr().out
    assert "eccv-table1-imagenet, row DeepCluster" in wide and "ImageNet (train, no labels)" in wide


def test_convert_keeps_a_users_sibling_partial_folder(tmp_path, capsys):
    src = tmp_path / "checkpoint.pth.tar"
    save_official(src, official_alexnet_state_dict(k=10))
    mine = tmp_path / "hub.partial"
    mine.mkdir()
    (mine / "notes.txt").write_text("mine")
    assert main(["hub", "convert", str(src), str(tmp_path / "hub")]) == 0
    assert (mine / "notes.txt").read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.pth.tar", "hub",
                                                          "hub.partial"]
