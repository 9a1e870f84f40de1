"""After Ctrl-C, train and eval print the exact command that continues the run, with the run
dir actually used, and that command works as printed."""

from __future__ import annotations

import json
import shlex

import pytest

from dcbench.cli.entry import main
from dcbench.cli.resume_hint import resume_command
from dcbench.protocols.base import PROTOCOLS, get_protocol
from dcbench.training import deepcluster
from dcbench.training.rundir import RunDir

from ..training.conftest import MICRO_OVERRIDES, micro_data  # noqa: F401  (fixture)

MODEL = "arch:alexnet_small?sobel=1"


def _printed_command(err: str) -> list[str]:
    line = err.strip().splitlines()[-1].strip()
    words = shlex.split(line)
    assert words[0] == "dcbench"
    return words[1:]


def test_resume_command_adds_out_and_resume_and_quotes():
    cmd = resume_command(["eval", "--model", "a b"], "/runs/x y")
    assert shlex.split(cmd) == ["dcbench", "eval", "--model", "a b", "--out", "/runs/x y",
                                "--resume"]
    # an --out (any spelling) and --resume already typed are kept, not repeated
    assert shlex.split(resume_command(["train", "--out=r", "--resume"], "r")) == \
        ["dcbench", "train", "--out=r", "--resume"]


def test_eval_interrupted_without_out_prints_the_auto_run_dir(cls_data, tmp_path, capsys,
                                                              monkeypatch, isolated_home):
    knn = type(get_protocol("knn"))
    real_run = knn.run

    def interrupted(self, *args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(knn, "run", interrupted)
    argv = ["eval", "--protocol", "knn", "--model", MODEL, "--data", str(cls_data),
            "--schedule", "smoke", "--store", str(tmp_path / "r.sqlite"), "--no-progress"]
    assert main(argv) == 130
    words = _printed_command(capsys.readouterr().err)
    out = words[words.index("--out") + 1]
    assert words[:len(argv)] == argv and words[-1] == "--resume"
    assert out.startswith(str(isolated_home / "runs")) and (
        json.loads((isolated_home / "runs" / out.rsplit("/", 1)[1] / "run.json").read_text())
        ["protocol"] == "knn")
    # the printed command continues that run (it no longer fails with "--resume needs --out")
    monkeypatch.setattr(knn, "run", real_run)
    assert PROTOCOLS.get("knn").run is real_run
    assert main(words) == 0
    assert (isolated_home / "runs" / out.rsplit("/", 1)[1] / "results.json").is_file()


def test_eval_interrupted_before_the_run_dir_says_to_start_again(cls_data, tmp_path, capsys,
                                                                 monkeypatch):
    def interrupted(spec):
        raise KeyboardInterrupt

    monkeypatch.setattr("dcbench.cli.eval.load_model", interrupted)
    argv = ["eval", "--protocol", "knn", "--model", MODEL, "--data", str(cls_data),
            "--no-store"]
    assert main(argv) == 130
    err = capsys.readouterr().err
    assert "start again" in err and _printed_command(err) == argv


def test_train_interrupted_before_an_epoch_prints_the_resume_command(micro_data, tmp_path,  # noqa: F811
                                                                    capsys, monkeypatch):
    def interrupt_first_clustering(point, value):
        if point == "cluster":
            raise KeyboardInterrupt

    monkeypatch.setattr(deepcluster, "inject_fault", interrupt_first_clustering)
    out = tmp_path / "run dir"
    argv = ["train", "--recipe", "tiny", "--data", str(micro_data), "--out", str(out),
            "--no-progress", *[a for o in MICRO_OVERRIDES for a in ("--set", o)]]
    assert main(argv) == 130
    assert _printed_command(capsys.readouterr().err) == argv + ["--resume"]
    assert RunDir(out).is_run()  # so --resume is accepted


@pytest.mark.slow
def test_train_interrupted_prints_a_command_that_resumes(micro_data, tmp_path, capsys,  # noqa: F811
                                                         monkeypatch):
    def interrupt_at_second_clustering(point, value):
        if (point, value) == ("cluster", 1):
            raise KeyboardInterrupt

    real_fault = deepcluster.inject_fault
    monkeypatch.setattr(deepcluster, "inject_fault", interrupt_at_second_clustering)
    out = tmp_path / "run"
    argv = ["train", "--recipe", "tiny", "--data", str(micro_data), "--out", str(out),
            "--epochs", "2", "--no-progress"]
    argv += [a for o in MICRO_OVERRIDES for a in ("--set", o)]
    assert main(argv) == 130
    words = _printed_command(capsys.readouterr().err)
    assert words == argv + ["--resume"]
    assert [r["epoch"] for r in RunDir(out).read_log()] == [0]
    monkeypatch.setattr(deepcluster, "inject_fault", real_fault)
    assert main(words) == 0
    assert [r["epoch"] for r in RunDir(out).read_log()] == [0, 1]
