"""`dcbench train` never loses user files, validates before writing, refuses bad resume states."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from dcbench.core.errors import UserError
from dcbench.training.deepcluster import train
from dcbench.training.rundir import RunDir

from .test_train import micro


def test_non_empty_foreign_folder_is_refused_and_kept(micro_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "mine"
    (out / "final").mkdir(parents=True)
    (out / "final" / "important.txt").write_text("keep me")
    (out / "log.jsonl").write_text("my notes\n")
    with pytest.raises(UserError, match="not empty"):
        train(micro(epochs=1), micro_data, out)
    assert (out / "final" / "important.txt").read_text() == "keep me"
    assert (out / "log.jsonl").read_text() == "my notes\n"


def test_out_that_is_a_file_is_refused(micro_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "file"
    out.write_text("x")
    with pytest.raises(UserError, match="is a file"):
        train(micro(epochs=1), micro_data, out)
    assert out.read_text() == "x"


def test_bad_pca_dim_writes_nothing_and_the_fix_then_runs(micro_data: Path, tmp_path: Path):
    out = tmp_path / "run"
    with pytest.raises(UserError, match="pca_dim=100000"):
        train(micro("pca_dim=100000", epochs=1), micro_data, out)
    assert not out.exists()
    train(micro(epochs=1), micro_data, out)
    assert [r["epoch"] for r in RunDir(out).read_log()] == [0]


def test_a_run_that_never_finished_an_epoch_can_be_restarted(micro_data: Path, tmp_path):
    out = tmp_path / "run"
    # k above the images that decode (40 good of 42) only fails inside epoch 0
    with pytest.raises(UserError):
        train(micro("k=41", epochs=1), micro_data, out)
    train(micro(epochs=1), micro_data, out)
    assert [r["epoch"] for r in RunDir(out).read_log()] == [0]


def test_epochs_zero_and_resume_on_a_new_folder_are_refused(micro_data: Path, tmp_path):
    with pytest.raises(UserError, match=r"'epochs' must be an integer in \[1, "):
        micro(epochs=0)
    with pytest.raises(UserError, match="nothing to resume"):
        train(micro(epochs=1), micro_data, tmp_path / "new", resume=True)
    assert not (tmp_path / "new").exists()


@pytest.mark.parametrize("damage", ["empty", "shapes", "labels", "optimizer", "not-a-dict"])
def test_wrong_content_resume_states_are_one_line_errors(micro_data: Path, tmp_path: Path,
                                                          damage: str) -> None:
    out = tmp_path / "run"
    train(micro(epochs=1), micro_data, out)
    run = RunDir(out)
    state = torch.load(run.state, weights_only=True)
    if damage == "empty":
        state = {}
    elif damage == "shapes":
        state["model"]["features.0.weight"] = torch.zeros(1, 2, 3, 3)
    elif damage == "labels":
        state["prev_labels"] = state["prev_labels"][:-3]
    elif damage == "optimizer":
        state["optimizer"]["state"][0]["momentum_buffer"] = torch.zeros(7)
    else:
        state = [1, 2]
    torch.save(state, run.state)
    before = run.log.read_bytes()
    with pytest.raises(UserError, match="resume state") as err:
        train(micro(epochs=2), micro_data, out, resume=True)
    assert "\n" not in str(err.value)
    assert run.log.read_bytes() == before


def _lookalike(out: Path) -> dict[str, bytes]:
    """A user's folder that happens to hold config.yaml + versions.json (not a dcbench run)."""
    (out / "final").mkdir(parents=True)
    (out / "assignments").mkdir()
    files = {"config.yaml": b"arch: alexnet_small\n", "versions.json": b"{}\n",
             "log.jsonl": b"my notes\n", "final/important.txt": b"my thesis",
             "assignments/epoch_0000.npy": b"my numbers"}
    for name, data in files.items():
        (out / name).write_bytes(data)
    return files


@pytest.mark.parametrize("resume", [False, True])
def test_a_lookalike_folder_is_not_taken_for_a_run(micro_data: Path, tmp_path: Path,
                                                   resume: bool) -> None:
    out = tmp_path / "lookalike"
    files = _lookalike(out)
    with pytest.raises(UserError, match="no dcbench train run"):
        train(micro(epochs=1), micro_data, out, resume=resume)
    assert {p.relative_to(out).as_posix(): p.read_bytes()
            for p in out.rglob("*") if p.is_file()} == files


def test_a_run_whose_config_was_replaced_is_refused(micro_data: Path,
                                                                  tmp_path: Path) -> None:
    out = tmp_path / "run"
    train(micro(epochs=1), micro_data, out)
    (out / "config.yaml").write_text("my: notes\n")  # replaced by the user
    with pytest.raises(UserError, match="not the TrainConfig"):
        train(micro(epochs=2), micro_data, out, resume=True)


def test_user_files_inside_a_run_survive_resume_and_final(micro_data: Path, tmp_path: Path):
    out = tmp_path / "run"
    train(micro(epochs=1), micro_data, out)
    (out / "final" / "notes.txt").write_text("my notes")
    (out / "checkpoints" / "latest" / "mine.txt").write_text("mine")
    train(micro(epochs=2), micro_data, out, resume=True)
    assert (out / "final" / "notes.txt").read_text() == "my notes"
    assert (out / "checkpoints" / "latest" / "mine.txt").read_text() == "mine"
    assert [r["epoch"] for r in RunDir(out).read_log()] == [0, 1]


def test_state_pt_bytes_do_not_depend_on_temp_names(micro_data: Path, tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    for out in (a, b):
        train(micro(epochs=1), micro_data, out)
        train(micro(epochs=2), micro_data, out, resume=True)
    assert RunDir(a).state.read_bytes() == RunDir(b).state.read_bytes()
    assert (a / "final" / "README.md").read_bytes() == (b / "final" / "README.md").read_bytes()


def test_resuming_a_finished_run_keeps_final_bytes(micro_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    train(micro(epochs=1), micro_data, out)
    before = {p.name: p.read_bytes() for p in (out / "final").iterdir()}
    train(micro(epochs=1), micro_data, out, resume=True)
    assert {p.name: p.read_bytes() for p in (out / "final").iterdir()} == before
