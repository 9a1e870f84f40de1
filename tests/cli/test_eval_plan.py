"""`dcbench eval` prints its plan and estimated time before starting, with the quicker forms;
`--dry-run` stops there and writes nothing."""

from __future__ import annotations

import re

import pytest

from dcbench.cli.entry import main

MODEL = "arch:alexnet_small?sobel=1"


def test_dry_run_prints_plan_estimate_and_quick_forms(cls_data, tmp_path, capsys,
                                                      isolated_home):
    store = tmp_path / "results.sqlite"
    rc = main(["eval", "--protocol", "linear-conv", "--model", MODEL, "--data", str(cls_data),
               "--store", str(store), "--dry-run"])
    err = capsys.readouterr().err
    assert rc == 0
    assert "plan: linear-conv, schedule published" in err
    # which backend `auto` picks here, and why (this CLI run is on the CPU)
    assert "  input pipeline: cpu (PIL in loader workers; auto: cpu is not a CUDA device (" \
        in err.splitlines()[err.splitlines().index("plan: linear-conv, schedule published") + 1]
    # one pass per epoch: 90 x (64 train + (held-out + 24 val) x 10 crops)
    held = round(64 * 0.05)
    assert f"one pass (selection + final heads): 90 x {64 + (held + 24) * 10:,} images" in err
    assert re.search(r"total [\d,.M]+ image passes x [\d.]+ ms = about \d", err)
    assert "timed on 2 batches of 8 real images" in err
    assert "quicker: add --schedule smoke: about" in err and "--schedule smoke --fast" in err
    assert not store.exists() and not (isolated_home / "runs").exists()
    # two-pass (faithful-2018): 90 x (train - held-out + held-out x 10), then 90 x (64 + 24 x 10)
    assert main(["eval", "--protocol", "linear-conv", "--model", MODEL, "--data", str(cls_data),
                 "--no-store", "--dry-run", "--dialect", "faithful-2018"]) == 0
    err = capsys.readouterr().err
    assert f"select (held-out): 90 x {64 - held + held * 10:,} images" in err
    assert f"final (val): 90 x {64 + 24 * 10:,} images" in err


def test_a_real_run_prints_the_plan_first(cls_data, tmp_path, capsys):
    rc = main(["eval", "--protocol", "knn", "--model", MODEL, "--data", str(cls_data),
               "--schedule", "smoke", "--no-store", "--no-progress", "--out",
               str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert rc == 0
    assert err.index("plan: knn") < err.index("result rows written")
    assert "features: 1 x 88 images (train + val)" in err


def test_quicker_forms_are_only_shown_when_they_are_quicker(cls_data, capsys):
    # nmi reads one feature pass either way: smoke only changes the batch size
    assert main(["eval", "--protocol", "nmi", "--model", MODEL, "--data", str(cls_data),
                 "--no-store", "--dry-run"]) == 0
    err = capsys.readouterr().err
    assert "features: 1 x 24 images (val)" in err and "quicker" not in err


def test_the_plan_names_a_set_input_pipeline(cls_data, capsys):
    pytest.importorskip("nvidia.dali")
    assert main(["eval", "--protocol", "nmi", "--model", MODEL, "--data", str(cls_data),
                 "--no-store", "--dry-run", "--set", "input_pipeline=dali"]) == 0
    assert "  input pipeline: dali (NVIDIA DALI; set: input_pipeline=dali; " \
        in capsys.readouterr().err
