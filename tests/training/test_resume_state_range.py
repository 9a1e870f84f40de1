"""A tampered resume state that claims more epochs than the run asks for is refused (issue
19): it used to skip every epoch and exit 0 with the old weights as the result."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from dcbench.cli.entry import main
from dcbench.core.errors import UserError
from dcbench.training.deepcluster import train
from dcbench.training.rundir import RunDir

from .conftest import MICRO_OVERRIDES
from .test_train import micro


@pytest.fixture(scope="module")
def one_epoch_run(micro_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished 1-epoch micro run (trained once for the module; tests copy it)."""
    out = tmp_path_factory.mktemp("resume") / "run"
    train(micro(epochs=1), micro_data, out)
    return out


def _tampered(run_dir: Path, dest: Path, epoch: int) -> RunDir:
    shutil.copytree(run_dir, dest)
    run = RunDir(dest)
    state = torch.load(run.state, weights_only=True)
    state["epoch"] = epoch
    torch.save(state, run.state)
    return run


@pytest.mark.parametrize("epoch", [10**12, 3])
def test_state_epoch_beyond_the_asked_epochs_is_refused(one_epoch_run: Path, micro_data: Path,
                                                        tmp_path: Path, epoch: int) -> None:
    run = _tampered(one_epoch_run, tmp_path / "run", epoch)
    before = run.log.read_bytes()
    with pytest.raises(UserError, match=f"says {epoch} epochs are done") as err:
        train(micro(epochs=2), micro_data, run.root, resume=True)
    assert "\n" not in str(err.value)
    assert run.log.read_bytes() == before


def test_the_cli_exits_2_on_a_tampered_epoch(one_epoch_run: Path, micro_data: Path,
                                             tmp_path: Path,
                                             capsys: pytest.CaptureFixture) -> None:
    run = _tampered(one_epoch_run, tmp_path / "run", 10**12)
    sets = [arg for pair in MICRO_OVERRIDES for arg in ("--set", pair)]
    code = main(["train", "--recipe", "tiny", "--data", str(micro_data), "--out",
                 str(run.root), *sets, "--epochs", "1", "--resume"])
    err = capsys.readouterr().err
    assert code == 2 and "epochs are done" in err, err
