"""`dcbench hub convert` and the safe loader: official files convert, unsafe or wrong ones not."""

from __future__ import annotations

import pickle

import torch

import dcbench
from dcbench.cli.entry import main
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
