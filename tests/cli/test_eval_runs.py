"""`dcbench eval --out`: a resumed run keeps its weights, a failed run never blocks the fix."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dcbench.cli.entry import main
from dcbench.core.errors import UserError
from dcbench.core.files import write_json
from dcbench.leaderboards.store import ResultsStore
from dcbench.models import create_backbone
from dcbench.models.checkpoints import save_hub_dir
from dcbench.protocols.base import PROTOCOLS, get_protocol


def _knn(cls_set: Path, tmp_path: Path, model: str, out: Path, *extra: str) -> int:
    return main(["eval", "--protocol", "knn", "--model", model, "--data", str(cls_set),
                 "--schedule", "smoke", "--store", str(tmp_path / "results.sqlite"),
                 "--no-progress", "--out", str(out), *extra])


def test_resume_refuses_weights_that_changed_at_the_same_path(cls_set, tmp_path, capsys):
    model, out = tmp_path / "model", tmp_path / "run"
    save_hub_dir(create_backbone({"arch": "alexnet_small"}, seed=0), model)
    assert _knn(cls_set, tmp_path, str(model), out) == 0
    before = len(ResultsStore(tmp_path / "results.sqlite").results())
    save_hub_dir(create_backbone({"arch": "alexnet_small"}, seed=1), model)  # new weights
    capsys.readouterr()
    assert _knn(cls_set, tmp_path, str(model), out, "--resume") == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and err[0].startswith("dcbench: error:") and "sha256" in err[0]
    assert len(ResultsStore(tmp_path / "results.sqlite").results()) == before


def _failing(error: BaseException):
    """A protocol run that writes work files (as real protocols do), then fails."""

    def run(self, model, data_dir, config, *, work_dir=None, **kwargs):
        (work_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
        (work_dir / "checkpoints" / "phase.pt").write_bytes(b"half")
        write_json(work_dir / "selection.json", {"k": config.k})
        raise error

    return run


@pytest.mark.parametrize("error", [RuntimeError("CUDA out of memory"), MemoryError(),
                                   UserError("every image is undecodable")],
                         ids=["runtime", "memory", "user"])
@pytest.mark.parametrize("resume", [False, True])
@pytest.mark.parametrize("existing", [False, True])
def test_a_failed_run_leaves_a_folder_the_corrected_command_accepts(
        cls_set, tmp_path, monkeypatch, capsys, error, resume, existing):
    out = tmp_path / "run"
    if existing:
        out.mkdir()  # an empty folder the user made for the run
    proto = type(get_protocol("knn"))
    assert PROTOCOLS.get("knn") is proto
    real = proto.run
    monkeypatch.setattr(proto, "run", _failing(error))
    model = "arch:alexnet_small"
    if isinstance(error, UserError):
        assert _knn(cls_set, tmp_path, model, out, "--set", "k=3") == 2
        # bad input found inside a new run: the folder is exactly as before (nothing to resume)
        assert (sorted(out.iterdir()) == []) if existing else not out.exists()
        resume = False
    else:
        with pytest.raises(type(error)):
            _knn(cls_set, tmp_path, model, out, "--set", "k=3")
        (out / "mine.txt").write_text("my notes")  # the user's, added after the failure
    monkeypatch.setattr(proto, "run", real)
    # the corrected command (another k), with or without --resume
    assert _knn(cls_set, tmp_path, model, out, "--set", "k=2",
                *(["--resume"] if resume else [])) == 0, capsys.readouterr().err
    if not isinstance(error, UserError):
        assert (out / "mine.txt").read_text() == "my notes"
    assert not (out / "checkpoints" / "phase.pt").exists()  # the failed config's work is gone
    saved = json.loads((out / "run.json").read_text())
    assert saved.get("status", "finished") == "finished"
    assert (out / "results.json").is_file()
    assert "k: 2" in (out / "config.yaml").read_text()


def test_a_failed_run_with_unchanged_options_continues_from_its_files(
        cls_set, tmp_path, monkeypatch):
    out = tmp_path / "run"
    proto = type(get_protocol("knn"))
    real = proto.run
    monkeypatch.setattr(proto, "run", _failing(RuntimeError("disk full")))
    with pytest.raises(RuntimeError):
        _knn(cls_set, tmp_path, "arch:alexnet_small", out)
    first = json.loads((out / "run.json").read_text())
    assert first["status"] == "failed" and "checkpoints/phase.pt" in first["files"]
    monkeypatch.setattr(proto, "run", real)
    assert _knn(cls_set, tmp_path, "arch:alexnet_small", out, "--resume") == 0
    assert (out / "checkpoints" / "phase.pt").read_bytes() == b"half"  # kept: same run
    assert json.loads((out / "run.json").read_text())["run_id"] == first["run_id"]
    assert _knn(cls_set, tmp_path, "arch:alexnet_small", out) == 2  # finished: not failed


def test_user_files_survive_a_second_failure_in_a_replaced_run(cls_set, tmp_path,
                                                               monkeypatch):
    out = tmp_path / "run"
    proto = type(get_protocol("knn"))
    monkeypatch.setattr(proto, "run", _failing(RuntimeError("killed by the OOM killer")))
    with pytest.raises(RuntimeError):
        _knn(cls_set, tmp_path, "arch:alexnet_small", out, "--set", "k=3")
    (out / "mine.txt").write_text("my notes")
    monkeypatch.setattr(proto, "run", _failing(UserError("bad")))
    assert _knn(cls_set, tmp_path, "arch:alexnet_small", out, "--set", "k=2") == 2
    assert sorted(p.name for p in out.iterdir()) == ["mine.txt"]  # only the run's files went
