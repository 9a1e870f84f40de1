"""`dcbench reproduce`: list, dry-run, bad input (exit 2, nothing written), and a whole table
end to end on the built-in data with --schedule smoke, resumed."""

from __future__ import annotations

import json

import pytest

import dcbench.cli.eval as cli_eval
import dcbench.cli.reproduce as cli_reproduce
import dcbench.core.errors
from dcbench.data.synthetic_retrieval import write_retrieval_set
from dcbench.leaderboards import reproduce as planner
from dcbench.leaderboards.published import list_tables, load_published
from dcbench.leaderboards.store import ResultsStore

MODEL = "random-alexnet_small-sobel"
# the smoke schedule, shortened further for the test suite
LINEAR = ["--set", "epochs=2", "--set", "milestones=[1]"]
VOC = ["--set", "iterations=3", "--set", "checkpoint_every=2", "--set", "eval_passes=1"]


def test_list_shows_every_planned_table_and_its_data(cli, capsys):
    assert cli("reproduce", "--list") == 0
    out = capsys.readouterr().out
    for table in ("thesis-5.2", "thesis-5.3", "thesis-5.4", "thesis-5.5",
                  "eccv-table1-imagenet", "eccv-table1-places", "eccv-table2", "eccv-table3",
                  "eccv-table4", "eccv-table5", "mmselfsup-r50-voc07-svm"):
        assert f"{table}: " in out
    assert "needs --data imagenet, places205" in out  # eccv-table1-earlier
    assert "reference only" in out and "retrieval" in out


def test_dry_run_prints_commands_data_and_estimate_and_writes_nothing(cli, capsys, tmp_path,
                                                                      cls_set):
    out = tmp_path / "plan"
    assert cli("reproduce", "eccv-table1-earlier", "--model", MODEL, "--data",
               f"imagenet={cls_set}", "--schedule", "smoke", "--dry-run",
               "--out", out) == 0
    printed = capsys.readouterr().out
    assert f"$ dcbench eval --protocol linear-conv --model {MODEL} --data {cls_set}" in printed
    assert "--layers conv1,conv2,conv3,conv4,conv5" in printed
    assert "reads imagenet at" in printed and "train 28, val 8 images" in printed
    assert "not run: no --data places205=ROOT" in printed
    assert "estimated total" in printed and "img/s forward" in printed
    assert not out.exists()
    assert not (tmp_path / "home" / "results.sqlite").exists()


@pytest.mark.parametrize("argv, message", [
    (["nope-table", "--model", MODEL], "unknown table 'nope-table'"),
    (["thesis-5.3", "--model", MODEL, "--data", "imagenett=DIR"], "unknown data name"),
    (["thesis-5.3", "--model", MODEL, "--data", "voc=DIR"], "does not read 'voc'"),
    (["thesis-5.3", "--model", MODEL, "--data", "imagenet=DIR"], "no train/ folder"),
    (["thesis-5.5", "--model", "arch:resnet50", "--data", "voc=VOC"],
     "needs an AlexNet/VGG-style network"),
    (["thesis-5.3", "--model", MODEL, "--data", "imagenet=CLS", "--set", "iterations=3"],
     "no protocol of thesis-5.3"),
    (["mmselfsup-r50-linear", "--model", MODEL], "reference only"),
    (["thesis-5.3", "--model", MODEL], "nothing to run"),
    (["thesis-5.3", "--model", MODEL, "--data", "imagenet=CLS", "--against", "Nobody"],
     "no such row"),
])
def test_bad_input_is_one_line_exit_2_and_nothing_written(cli, capsys, tmp_path, cls_set,
                                                          voc_set, argv, message):
    (tmp_path / "DIR").mkdir()
    argv = [a.replace("=DIR", f"={tmp_path / 'DIR'}").replace("=CLS", f"={cls_set}")
            .replace("=VOC", f"={voc_set}") for a in argv]
    out = tmp_path / "plan"
    assert cli("reproduce", *argv, "--out", out) == 2
    err = capsys.readouterr().err
    assert err.startswith("dcbench: error: ") and message in err.splitlines()[0]
    assert not out.exists()
    assert not (tmp_path / "home" / "results.sqlite").exists()


def test_model_without_the_tables_layers_is_refused(cli, capsys, tmp_path, cls_set):
    # a ResNet has no fc6-fc7 head: the MLP of Table 5.2 cannot run on it
    assert cli("reproduce", "thesis-5.2", "--model", "arch:resnet50", "--data",
               f"imagenet={cls_set}", "--out", tmp_path / "plan") == 2
    assert "needs an AlexNet/VGG-style network" in capsys.readouterr().err
    assert not (tmp_path / "plan").exists()


def test_smoke_table_end_to_end_then_resume_keeps_finished_runs(cli, capsys, tmp_path,
                                                                 cls_set):
    out, store = tmp_path / "plan", tmp_path / "results.sqlite"
    argv = ["reproduce", "thesis-5.3", "--model", MODEL, "--data", f"imagenet={cls_set}",
            "--schedule", "smoke", "--fast", *LINEAR, "--store", store, "--out", out]
    assert cli(*argv) == 0
    captured = capsys.readouterr()
    assert "$ dcbench eval --protocol linear-conv" in captured.err
    # the model's row holds this plan's rows: the store's top1_best_epoch per layer
    run_id = json.loads((out / "01-linear-conv-imagenet" / "run.json").read_text())["run_id"]
    rows = ResultsStore(store).results(run_id=run_id, metric="top1_best_epoch", split="val")
    assert set(rows.layer) == {"conv1", "conv2", "conv3", "conv4", "conv5"}
    line = next(x for x in captured.out.splitlines() if x.startswith(f"{MODEL} (ours)"))
    values = [float(v) for v in line.split()[-5:]]
    expected = rows.set_index("layer").loc[[f"conv{i}" for i in range(1, 6)], "value"]
    assert values == pytest.approx(list(expected), abs=0.051)
    # deltas against the thesis's km-ImNet-Sob row, computed here from the shipped CSV
    published = load_published("thesis-5.3").set_index("method").loc["Ours. km-ImNet-Sob"]
    delta_line = next(x for x in captured.out.splitlines() if "Δ vs Ours. km-ImNet-Sob" in x)
    deltas = [float(v) for v in delta_line.split()[-5:]]
    assert deltas == pytest.approx(list(expected.to_numpy() - published[
        [f"conv{i}" for i in range(1, 6)]].to_numpy(dtype=float)), abs=0.051)
    assert max(len(x) for x in captured.out.splitlines()) <= 120
    md = (out / "table.md").read_text()
    assert f"{MODEL} (ours)" in md and "Δ conv5" in md
    assert "\\begin{tabular}" in (out / "table.tex").read_text()
    assert "<table" in (out / "table.html").read_text()
    n_rows = len(ResultsStore(store).results())
    # a second start without --resume is refused; --resume keeps the finished run
    assert cli(*argv) == 2
    assert "pass --resume" in capsys.readouterr().err
    assert cli(*argv, "--resume") == 0
    captured = capsys.readouterr()
    assert "finished before, kept" in captured.err and "$ dcbench eval" not in captured.err
    assert len(ResultsStore(store).results()) == n_rows
    assert f"{MODEL} (ours)" in captured.out
    # resuming with another plan (here another schedule) is refused, nothing run
    changed = ["published" if a == "smoke" else a for a in argv]
    assert cli(*changed, "--resume") == 2
    assert "resume with the same table, --model and --schedule" in capsys.readouterr().err
    assert len(ResultsStore(store).results()) == n_rows


def test_resume_continues_an_interrupted_run(cli, capsys, tmp_path, cls_set):
    out, store = tmp_path / "plan", tmp_path / "results.sqlite"
    argv = ["reproduce", "thesis-5.3", "--model", MODEL, "--data", f"imagenet={cls_set}",
            "--schedule", "smoke", "--fast", *LINEAR, "--store", store, "--out", out]
    assert cli(*argv) == 0
    run_dir = out / "01-linear-conv-imagenet"
    (run_dir / "results.json").unlink()  # as if killed before the run finished
    capsys.readouterr()
    assert cli(*argv, "--resume") == 0
    err = capsys.readouterr().err
    command = next(x for x in err.splitlines() if x.startswith("  $ dcbench eval"))
    assert f"--out {run_dir}" in command and command.endswith(" --resume")  # continues it
    assert (run_dir / "results.json").is_file()


@pytest.mark.slow
def test_voc_table_end_to_end_on_the_built_in_voc_set(cli, capsys, tmp_path, voc_set):
    out, store = tmp_path / "plan", tmp_path / "results.sqlite"
    assert cli("reproduce", "thesis-5.5", "--model", MODEL, "--data", f"voc={voc_set}",
               "--schedule", "smoke", *VOC, "--store", store, "--out", out) == 0
    printed = capsys.readouterr().out
    ours = next(x for x in printed.splitlines() if x.startswith(f"{MODEL} (ours)"))
    assert len(ours.split()) == 1 + 1 + 4 and "not run" not in ours
    stored = ResultsStore(store).results()
    assert {("voc07-cls", "fc6-8"), ("voc07-cls", "all"), ("voc07-det", "all"),
            ("voc12-seg", "all")} <= set(zip(stored.protocol, stored.layer, strict=True))


def test_bad_input_only_a_protocol_sees_leaves_no_plan_behind(cli, capsys, tmp_path, cls_set):
    out = tmp_path / "plan"
    assert cli("reproduce", "thesis-5.3", "--model", MODEL, "--data", f"imagenet={cls_set}",
               "--schedule", "smoke", "--set", "pooling=nope", "--out", out) == 2
    err = capsys.readouterr().err
    assert err.count("dcbench: error:") == 1 and "config key 'pooling' must be one of" in err
    assert not out.exists()


@pytest.fixture(scope="module")
def retrieval_set(tmp_path_factory: pytest.TempPathFactory):
    """A tiny built-in Oxford5k + Paris6k pair."""
    return write_retrieval_set(tmp_path_factory.mktemp("retr") / "retrieval", landmarks=2,
                               per_landmark=2, queries_per_landmark=1, distractors=1, size=48)


def _planned_tables() -> list[str]:
    return [t.id for t in list_tables() if planner.column_plans(t.id)]


@pytest.mark.parametrize("table", _planned_tables())
def test_published_dry_run_of_every_planned_table(cli, capsys, tmp_path, table, cls_set,
                                                  voc_set, retrieval_set):
    # the README's first example, with the published schedule (the default), on every table:
    # the estimate must not depend on values the pipeline resolves only when it runs
    roots = {"imagenet": cls_set, "places205": cls_set, "voc": voc_set,
             "retrieval": retrieval_set}
    data = [a for n in planner.table_data(table) for a in ("--data", f"{n}={roots[n]}")]
    out = tmp_path / "plan"
    assert cli("reproduce", table, "--model", MODEL, *data, "--dry-run", "--out", out) == 0
    printed = capsys.readouterr().out
    assert "estimated total" in printed and "schedule published" in printed
    assert not out.exists()


@pytest.mark.parametrize("interrupted_call", [1, 2])
def test_ctrl_c_in_an_eval_stops_the_plan_with_the_resume_hint(cli, capsys, tmp_path, cls_set,
                                                               monkeypatch, interrupted_call):
    # the eval catches Ctrl-C and returns 130: the plan must stop there (no table, no next
    # run, no FileNotFoundError for a run.json never written), say how to resume, exit 130
    out, store = tmp_path / "plan", tmp_path / "results.sqlite"
    argv = ["reproduce", "eccv-table1-earlier", "--model", MODEL, "--data",
            f"imagenet={cls_set}", "--data", f"places205={cls_set}", "--schedule", "smoke",
            "--fast", *LINEAR, "--store", store, "--out", out]
    real, calls = cli_eval._evaluate, []

    def interrupted(*args, **kwargs):
        calls.append(1)
        if len(calls) == interrupted_call:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(cli_eval, "_evaluate", interrupted)
    assert cli(*argv) == 130
    err = capsys.readouterr().err
    assert len(calls) == interrupted_call
    assert err.rstrip().endswith(f"--out {out} --resume") and "dcbench reproduce " in err
    assert "Traceback" not in err and not (out / "table.md").exists()
    monkeypatch.setattr(cli_eval, "_evaluate", real)
    assert cli(*argv, "--resume") == 0
    assert (out / "table.md").is_file()


def test_a_dry_run_refused_on_the_way_prints_no_plan(cli, capsys, tmp_path, cls_set,
                                                     monkeypatch):
    # a refusal while the plan is measured is one error line, not half a plan before it
    def broken(data, root):
        raise dcbench.core.errors.UserError("the counts failed")

    monkeypatch.setattr(cli_reproduce, "count_images", broken)
    assert cli("reproduce", "thesis-5.3", "--model", MODEL, "--data", f"imagenet={cls_set}",
               "--dry-run", "--out", tmp_path / "plan") == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.strip() == "dcbench: error: the counts failed"
