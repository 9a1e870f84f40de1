"""`dcbench status RUN_DIR`: one screen from the run folder's files, for train, eval,
reproduce and demo folders; the resume command it prints for a stopped run works as printed;
a bad RUN_DIR is one line and exit 2."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from dcbench.cli.entry import main
from dcbench.core.liveness import PROCESS_FILE, record_process

MICRO = ["arch=alexnet_small", "k=6", "pca_dim=12", "batch_size=8", "input_size=32",
         "resize=32", "crop_scale=[0.5,1.0]", "workers=0", "device=cpu", "knn_ratio_k=3"]
README = Path(__file__).resolve().parents[2] / "README.md"


def dead_pid() -> int:
    child = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                           capture_output=True, text=True, check=True)
    return int(child.stdout)


def mark_dead(run: Path) -> None:
    record = json.loads((run / PROCESS_FILE).read_text())
    (run / PROCESS_FILE).write_text(json.dumps({**record, "pid": dead_pid()}))


def readme_commands(prefix: str) -> list[list[str]]:
    """The words of the commands starting with `prefix` in the README's Watch section."""
    text = README.read_text()
    section = text[text.index("### Watch a long run"):]
    section = section[:section.index("\n### ", 5)]
    return [shlex.split(line.split("#")[0]) for line in section.splitlines()
            if line.strip().startswith(prefix)]


@pytest.fixture(scope="module")
def train_run(tmp_path_factory, cls_set) -> Path:
    """`runs/tiny`: the README's `dcbench train` command (W&B offline, 2 epochs of the micro
    settings), run in a folder where `synth/cls` is the built-in classification set."""
    root = tmp_path_factory.mktemp("status")
    (root / "synth").mkdir()
    (root / "synth" / "cls").symlink_to(cls_set)
    [words] = readme_commands("dcbench train ")
    saved = {k: os.environ.get(k) for k in ("WANDB_MODE", "WANDB_DIR", "WANDB_SILENT")}
    os.environ.update(WANDB_MODE="offline", WANDB_DIR=str(root), WANDB_SILENT="true")
    cwd = os.getcwd()
    os.chdir(root)
    try:
        assert main([*words[1:], "--epochs", "2",
                     *[a for o in MICRO for a in ("--set", o)]]) == 0
    finally:
        os.chdir(cwd)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    if importlib.util.find_spec("wandb") is not None:
        assert list(root.glob("wandb/offline-run-*/run-*.wandb"))
    return root / "runs" / "tiny"


def status(run: Path, capsys) -> str:
    assert main(["status", str(run)]) == 0
    return capsys.readouterr().out


def test_finished_train_run(train_run, capsys):
    mark_dead(train_run)
    text = status(train_run, capsys)
    assert "kind      train (finished)" in text
    assert "recipe    tiny" in text and "alexnet_small, Sobel, kmeans k=6" in text
    assert "epoch 2/2 (100%)" in text
    last = json.loads((train_run / "log.jsonl").read_text().splitlines()[-1])
    assert f"train loss {last['train_loss']:.4g}" in text
    assert "not running" in text and "resume" not in text.split("process")[-1]


def test_stopped_train_run_prints_a_resume_command_that_works(train_run, tmp_path, capsys,
                                                              monkeypatch):
    run = tmp_path / "stopped"
    subprocess.run(["cp", "-r", str(train_run), str(run)], check=True)
    # as if started with --epochs 4 and killed after epoch 1
    argv = json.loads((run / PROCESS_FILE).read_text())["argv"]
    argv[argv.index("--epochs") + 1] = "4"
    argv[argv.index("--out") + 1] = str(run)
    record_process(run, "train", argv)
    mark_dead(run)
    record = json.loads((run / PROCESS_FILE).read_text())  # started where the README ran
    (run / PROCESS_FILE).write_text(json.dumps({**record, "cwd": str(train_run.parent.parent)}))
    config = yaml.safe_load((run / "config.yaml").read_text())
    (run / "config.yaml").write_text(yaml.safe_dump({**config, "epochs": 4}))
    records = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    text = status(run, capsys)
    assert "train (stopped)" in text and "epoch 2/4 (50%)" in text
    per = sorted(r["epoch_s"] for r in records)
    median = (per[0] + per[1]) / 2
    assert re.search(r"per epoch; ETA .* once resumed", text)
    assert f"{median:.1f} s per epoch" in text or "min" in text
    command = text.split("resume    ")[1].strip()
    started_in = train_run.parent.parent  # the README command ran there: relative --data
    assert command == f"cd {shlex.quote(str(started_in))} && " + shlex.join(
        ["dcbench", *argv, "--resume"])
    monkeypatch.setenv("DCBENCH_PROGRESS", "0")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    monkeypatch.setenv("WANDB_SILENT", "true")
    cd, rest = command.split(" && ")
    monkeypatch.chdir(shlex.split(cd)[1])
    assert main(shlex.split(rest)[1:]) == 0  # the printed command, as printed
    assert "epoch 4/4" in status(run, capsys)


def test_a_running_process_is_alive_and_gets_an_eta_clock(train_run, tmp_path, capsys):
    run = tmp_path / "running"
    subprocess.run(["cp", "-r", str(train_run), str(run)], check=True)
    record_process(run, "train", ["train", "--out", str(run)])  # this test's own pid
    config = yaml.safe_load((run / "config.yaml").read_text())
    (run / "config.yaml").write_text(yaml.safe_dump({**config, "epochs": 10}))
    text = status(run, capsys)
    assert "train (running)" in text and "alive (pid" in text
    assert re.search(r"ETA .* \(about \d{4}-\d\d-\d\d \d\d:\d\d UTC\)", text)
    assert "resume" not in text.split("process")[-1]


def test_eval_run_dir(tmp_path, capsys):
    run = tmp_path / "lin"
    run.mkdir()
    (run / "run.json").write_text(json.dumps({
        "run_id": "linear-conv-1", "protocol": "linear-conv", "model": "runs/tiny/final",
        "name": "tiny", "data": "/data/cls", "schedule": "smoke"}))
    (run / "config.yaml").write_text("dialect: dc2018\nepochs: 3\n")
    t0 = time.time() - 100
    lines = [{"phase": "select", "epoch": e, "loss": 1.0 / e, "time": t0 + 10 * e,
              "eval": {"conv3|lr=0.01|wd=1e-07": {"top1": 20.0 + e}}} for e in (1, 2, 3)]
    lines.append({"phase": "final", "epoch": 1, "loss": 0.5, "time": t0 + 40,
                  "eval": {"conv3|lr=0.01|wd=1e-07": {"top1": 30.0}}})
    (run / "log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    record_process(run, "eval", ["eval", "--protocol", "linear-conv", "--model",
                                 "runs/tiny/final", "--data", "/data/cls", "--out", str(run)])
    mark_dead(run)
    text = status(run, capsys)
    assert "eval (stopped)" in text and "linear-conv (dialect dc2018, schedule smoke)" in text
    assert "epoch 4/6 (67%)" in text
    assert "10.0 s per epoch; ETA 20.0 s once resumed" in text
    assert "best head top-1 (conv3|lr=0.01|wd=1e-07) 30" in text
    assert text.strip().endswith("--out " + str(run) + " --resume")
    (run / "results.json").write_text(json.dumps([
        {"split": "val", "layer": "conv3", "metric": "top1", "value": 31.5}]))
    text = status(run, capsys)
    assert "eval (finished)" in text and "val conv3 top1 31.5" in text


def test_reproduce_and_demo_folders(tmp_path, capsys):
    plan = tmp_path / "plan"
    (plan / "a").mkdir(parents=True)
    (plan / "b").mkdir()
    (plan / "plan.json").write_text(json.dumps({
        "table": "thesis-table-5.3", "model": "m", "schedule": "smoke",
        "runs": {"a": ["eval"], "b": ["eval"], "c": ["eval"]}}))
    (plan / "a" / "results.json").write_text("[]")
    (plan / "b" / "run.json").write_text("{}")
    text = status(plan, capsys)
    assert "reproduce" in text and "run 1/3 (33%)" in text
    assert "a finished, b started, c waiting" in text
    demo = tmp_path / "demo"
    demo.mkdir()
    (demo / "demo.json").write_text(json.dumps({"quick": True, "seed": 0, "store": "s",
                                                "done": ["x", "y"], "seconds": {"x": 4.0}}))
    text = status(demo, capsys)
    assert "demo" in text and "2 step(s) done" in text


@pytest.mark.parametrize("make", ["missing", "file", "empty", "foreign"])
def test_bad_run_dir_is_one_line_and_exit_2(tmp_path, capsys, make):
    target = tmp_path / "x"
    if make == "file":
        target.write_text("hi")
    elif make == "empty":
        target.mkdir()
    elif make == "foreign":
        target.mkdir()
        (target / "run.json").write_text('{"something": 1}')
    assert main(["status", str(target)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("dcbench: error: ")


def test_readme_status_example_runs_on_a_built_in_run(train_run, capsys, monkeypatch):
    commands = readme_commands("dcbench status ")
    assert commands, "the README's Watch section shows a dcbench status command"
    monkeypatch.chdir(train_run.parent.parent)  # where the README's runs/tiny is
    for words in commands:
        assert main(words[1:]) == 0
        assert "dcbench status: runs/tiny" in capsys.readouterr().out
