"""The standing bad-input suite: hostile files and common mistakes against every subcommand.

Each row of `CASES` is a bad `dcbench` invocation. Every one must exit 2 with exactly one
`dcbench: error:` line on stderr (no traceback, no torch advice) and leave the folder it
points at exactly as it was (a fresh --out is not created). Rows marked `detail` may follow
the line with the UserError's detail block that DESIGN.md asks for (the expected dataset
layout, a key report); every other row is exactly one line. The hostile files are built
here, by `corpus`; new holes get a row.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import stat
from collections.abc import Callable
from pathlib import Path

import pytest
from safetensors.torch import save_model

from dcbench.cli.entry import main
from dcbench.core.rows import Result
from dcbench.data.synthetic_retrieval import write_retrieval_set
from dcbench.leaderboards.store import ResultsStore
from dcbench.models import create_backbone
from tests.leaderboards.test_store import _corrupt_store
from tests.models.test_checkpoint_refusals import hostile_checkpoints

TRAIN = ["train", "--recipe", "tiny", "--set", "k=4", "--set", "workers=0"]
MODEL = "arch:alexnet_small"
EVAL = ["eval", "--protocol", "knn", "--schedule", "smoke", "--no-progress"]
REPRO = ["reproduce", "thesis-5.3", "--model", MODEL, "--schedule", "smoke"]


def _readonly_dir(base: Path) -> Path | None:
    """A folder this process cannot write (root ignores modes: then /proc/1, if it qualifies)."""
    folder = base / "readonly"
    folder.mkdir()
    folder.chmod(stat.S_IRUSR | stat.S_IXUSR)
    if not os.access(folder, os.W_OK):
        return folder
    proc = Path("/proc/1")
    return proc if proc.is_dir() and not os.access(proc, os.W_OK) else None


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory, cls_set: Path,
           voc_set: Path) -> dict[str, Path]:
    """Hostile files and folders, built once for the whole table."""
    base = tmp_path_factory.mktemp("hostile")
    c: dict[str, Path] = {"cls": cls_set, "train": cls_set / "train", "voc": voc_set}
    c.update(hostile_checkpoints(base))
    c["userdir"] = base / "userdir"
    (c["userdir"] / "final").mkdir(parents=True)
    (c["userdir"] / "final" / "important.txt").write_text("my thesis")
    (c["userdir"] / "log.jsonl").write_text("my notes\n")
    c["lookalike"] = base / "lookalike"  # config.yaml + versions.json, but not a dcbench run
    (c["lookalike"] / "final").mkdir(parents=True)
    (c["lookalike"] / "assignments").mkdir()
    (c["lookalike"] / "config.yaml").write_text("arch: alexnet_small\n")
    (c["lookalike"] / "versions.json").write_text("{}\n")
    (c["lookalike"] / "log.jsonl").write_text("my notes\n")
    (c["lookalike"] / "final" / "important.txt").write_text("my thesis")
    (c["lookalike"] / "assignments" / "epoch_0000.npy").write_bytes(b"my numbers")
    c["afile"] = base / "afile"
    c["afile"].write_text("a file, not a folder\n")
    c["hub_list"] = base / "hub_list"
    c["hub_list"].mkdir()
    save_model(create_backbone({"arch": "alexnet_small"}, seed=0),
               str(c["hub_list"] / "model.safetensors"))
    (c["hub_list"] / "config.json").write_text("[1, 2, 3]")
    c["hub_huge"] = base / "hub_huge"
    c["hub_huge"].mkdir()
    (c["hub_huge"] / "model.safetensors").write_bytes(
        (c["hub_list"] / "model.safetensors").read_bytes())
    (c["hub_huge"] / "config.json").write_text(
        json.dumps({"arch": "alexnet", "num_classes": 10**12}))
    c["garbage_store"] = base / "results.sqlite"
    c["garbage_store"].write_bytes(b"not sqlite at all " * 10)
    c["foreign_store"] = base / "clinic.sqlite"  # someone else's SQLite database
    with sqlite3.connect(c["foreign_store"]) as conn:
        conn.execute("CREATE TABLE patients (id INTEGER PRIMARY KEY, name TEXT)")
    c["corrupt_store"] = base / "corrupt.sqlite"
    _corrupt_store(c["corrupt_store"])
    c["loops"] = base / "loops" / "train"
    (c["loops"] / "a").mkdir(parents=True)
    os.symlink("l2.jpg", c["loops"] / "a" / "l1.jpg")
    os.symlink("l1.jpg", c["loops"] / "a" / "l2.jpg")
    readonly = _readonly_dir(base)
    if readonly is not None:
        c["readonly"] = readonly
    c["undecodable"] = base / "undecodable" / "train"  # issue 26: no image decodes
    for cls in ("a", "b"):
        (c["undecodable"] / cls).mkdir(parents=True)
        for i in range(3):
            (c["undecodable"] / cls / f"{i}.jpg").write_bytes(b"\xff\xd8 not a jpeg " * 4)
    for name, text in (("plan_torn", '{"table": "eccv'), ("plan_list", "[]"),
                       ("plan_no_runs", '{"table": "thesis-5.3", "model": "arch:alexnet_small", '
                                        '"schedule": "smoke"}')):
        c[name] = base / name  # issue 26: a damaged reproduce plan, then --resume
        c[name].mkdir()
        (c[name] / "plan.json").write_text(text)
    c["run_folder"] = base / "run_folder"  # an eval run folder given to `leaderboard add`
    c["run_folder"].mkdir()
    (c["run_folder"] / "run.json").write_text('{"run_id": "r"}')
    (c["run_folder"] / "results.json").write_text("[]")
    c["fresh"] = base / "fresh"  # never created: each case's fresh output goes under it
    c.update(parse_and_range_corpus(base, c["hub_list"]))
    return c


def _store_with(path: Path, statement: str) -> Path:
    """A real dcbench store (one row) then tampered by one SQL statement."""
    store = ResultsStore(path)
    store.add_results([Result(run_id="r", model="m", model_sha256="0" * 64, protocol="knn",
                              dialect="dc2018", dataset="d", split="val", layer="conv1",
                              metric="top1", value=1.0, seed=0, config_hash="h",
                              dcbench_version="0", code_revision="x", device="cpu",
                              timestamp="2026-01-01T00:00:00+00:00")])
    with sqlite3.connect(path) as conn:
        conn.execute(statement)
    return path


def parse_and_range_corpus(base: Path, hub_list: Path) -> dict[str, Path]:
    """Issue 19's parse traps: non-UTF-8 and 100k-deep config files, torn demo state files,
    tampered stores, a valid hub folder (for checks that must come before its card)."""
    c: dict[str, Path] = {}
    c["cfg_bytes"] = base / "bytes.yaml"
    c["cfg_bytes"].write_bytes(b"k: 3\n# caf\xe9 \xff\xfe\n")
    c["cfg_deep"] = base / "deep.yaml"
    c["cfg_deep"].write_text("k: " + "[" * 100_000)
    c["cfg_huge_float"] = base / "huge.yaml"
    c["cfg_huge_float"].write_text("k: 1e400\n")
    c["cfg_digits"] = base / "digits.yaml"
    c["cfg_digits"].write_text("k: " + "7" * 5000 + "\n")
    c["recipe_bytes"] = base / "recipe.yaml"
    c["recipe_bytes"].write_bytes(b"epochs: 1\nk: 4\n\x80\x81\n")
    c["demo_store"] = base / "demo.sqlite"  # named by --store, never created
    settings = f'"quick": true, "seed": 0, "store": {json.dumps(str(c["demo_store"]))}'
    for name, text in (("demo_torn", "{" + settings + ', "do'), ("demo_list", "[1, 2, 3]"),
                       ("demo_done", "{" + settings + ', "done": 7}')):
        c[name] = base / name
        c[name].mkdir()
        (c[name] / "demo.json").write_text(text)
    c["retrieval"] = write_retrieval_set(base / "retrieval", landmarks=1, per_landmark=2,
                                         queries_per_landmark=1, distractors=1, size=48)
    c["store_text_version"] = _store_with(base / "v.sqlite",
                                          "UPDATE schema_version SET version = 'two'")
    c["store_text_value"] = _store_with(base / "t.sqlite", "UPDATE results SET value = 'high'")
    c["store_bad_config"] = _store_with(base / "c.sqlite", "SELECT 1")  # issue 26
    ResultsStore(c["store_bad_config"]).add_run("r", "eval:knn", {}, {}, "cpu", "a", "b")
    conn = sqlite3.connect(c["store_bad_config"])
    with conn:
        conn.execute("UPDATE runs SET config_json = '{\"lr\": 0.1'")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    c["hub_ok"] = base / "hub_ok"
    c["hub_ok"].mkdir()
    (c["hub_ok"] / "model.safetensors").write_bytes((hub_list / "model.safetensors").read_bytes())
    (c["hub_ok"] / "config.json").write_text(json.dumps({"arch": "alexnet_small"}))
    return c


Argv = Callable[[dict[str, Path], Path], list[str]]
SVM = ["eval", "--protocol", "voc07-svm", "--model", MODEL, "--no-store"]
RET = ["eval", "--protocol", "retrieval", "--model", MODEL, "--no-store", "--schedule",
       "smoke"]
ASCENT = ["viz", "gradient-ascent", "--model", MODEL, "--layer", "conv1", "--iters", "2"]
# issue 19: values out of range and text that used to end in a traceback (or in a silent run)
RANGE_AND_PARSE_CASES: list[tuple[str, Argv, str | None]] = [
    ("train-momentum-negative", lambda c, o: [*TRAIN, "--data", c["train"], "--out", o,
                                              "--set", "momentum=-5"], None),
    ("train-recipe-not-utf8", lambda c, o: ["train", "--recipe", c["recipe_bytes"], "--data",
                                            c["train"], "--out", o], None),
    ("eval-set-torn-list", lambda c, o: [*EVAL, "--model", MODEL, "--data", c["cls"],
                                         "--out", o, "--set", "k=[1,"], None),
    ("eval-set-python-tag", lambda c, o: [*EVAL, "--model", MODEL, "--data", c["cls"],
                                          "--out", o, "--set",
                                          "k=!!python/object/apply:os.system [echo hacked]"],
     None),
    ("eval-set-5000-digits", lambda c, o: [*EVAL, "--model", MODEL, "--data", c["cls"],
                                           "--out", o, "--set", "k=" + "9" * 5000], None),
    ("eval-config-not-utf8", lambda c, o: [*EVAL, "--model", MODEL, "--data", c["cls"],
                                           "--out", o, "--config", c["cfg_bytes"]], None),
    ("eval-config-100k-deep", lambda c, o: [*EVAL, "--model", MODEL, "--data", c["cls"],
                                            "--out", o, "--config", c["cfg_deep"]], None),
    ("eval-config-1e400", lambda c, o: [*EVAL, "--model", MODEL, "--data", c["cls"],
                                        "--out", o, "--config", c["cfg_huge_float"]], None),
    ("eval-config-5000-digits", lambda c, o: [*EVAL, "--model", MODEL, "--data", c["cls"],
                                              "--out", o, "--config", c["cfg_digits"]], None),
    ("eval-layers-empty", lambda c, o: [*EVAL, "--model", MODEL, "--data", c["cls"],
                                        "--out", o, "--layers", ","], None),
    ("eval-svm-costs-nan", lambda c, o: [*SVM, "--data", c["cls"], "--out", o,
                                         "--set", "costs=[.nan]"], None),
    ("eval-svm-jobs-0", lambda c, o: [*SVM, "--data", c["cls"], "--out", o,
                                      "--set", "jobs=0"], None),
    ("eval-svm-max-iter-1e12", lambda c, o: [*SVM, "--data", c["cls"], "--out", o,
                                             "--set", "max_iter=1e12"], None),
    ("eval-svm-pooling-nope", lambda c, o: [*SVM, "--data", c["cls"], "--out", o,
                                            "--set", "pooling=nope"], None),
    ("eval-retrieval-image-size", lambda c, o: [*RET, "--data", c["retrieval"], "--out", o,
                                                "--set", "image_size=30000"], None),
    ("eval-retrieval-levels", lambda c, o: [*RET, "--data", c["retrieval"], "--out", o,
                                            "--set", "levels=1000"], None),
    ("eval-retrieval-holidays", lambda c, o: [*RET, "--data", c["retrieval"], "--out", o,
                                              "--set", "datasets=[holidays]"], None),
    ("eval-retrieval-no-datasets", lambda c, o: [*RET, "--data", c["retrieval"], "--out", o,
                                                 "--set", "datasets=[]"], None),
    ("eval-retrieval-fc7", lambda c, o: [*RET, "--data", c["retrieval"], "--out", o,
                                         "--set", "layer=fc7"], None),
    ("demo-resume-torn", lambda c, o: ["demo", "--quick", "--resume", "--out", c["demo_torn"],
                                            "--store", c["demo_store"]],
     "demo_torn"),
    ("demo-resume-list", lambda c, o: ["demo", "--quick", "--resume", "--out", c["demo_list"],
                                            "--store", c["demo_store"]],
     "demo_list"),
    ("demo-resume-done-int", lambda c, o: ["demo", "--quick", "--resume", "--out",
                                           c["demo_done"], "--store", c["demo_store"]],
     "demo_done"),
    ("leaderboard-store-text-version", lambda c, o: ["leaderboard", "show",
                                                     "eccv-table1-imagenet", "--results",
                                                     "--store", c["store_text_version"]],
     "store_text_version"),
    ("leaderboard-store-text-value", lambda c, o: ["leaderboard", "show",
                                                   "eccv-table1-imagenet", "--results",
                                                   "--store", c["store_text_value"]],
     "store_text_value"),
    ("leaderboard-store-runs-config-not-json",
     lambda c, o: ["leaderboard", "compare", "m", "0" * 64, "--store", c["store_bad_config"]],
     "store_bad_config"),
    ("leaderboard-report-runs-config-not-json",
     lambda c, o: ["leaderboard", "report", "--store", c["store_bad_config"],
                   "--output", o / "r.html"], "store_bad_config"),
    ("hub-push-revision-escape", lambda c, o: ["hub", "push", c["hub_ok"], "--repo", "org/x",
                                               "--revision", "a/../../b"], "hub_ok"),
    ("data-synth-seed-negative", lambda c, o: ["data", "synth", "--out", o, "--seed", "-1"],
     None),
    ("data-digits-seed-negative", lambda c, o: ["data", "digits", "--out", o, "--seed", "-1"],
     None),
    ("data-digits-seed-2-32", lambda c, o: ["data", "digits", "--out", o,
                                            "--seed", "4294967296"], None),
    ("data-digits-val-fraction", lambda c, o: ["data", "digits", "--out", o,
                                               "--val-fraction", "0.999"], None),
    ("data-digits-size-huge", lambda c, o: ["data", "digits", "--out", o, "--size", "100000"],
     None),
    ("data-check-sample-negative", lambda c, o: ["data", "check", "--data", c["cls"],
                                                 "--format", "imagenet", "--sample", "-5"],
     None),
    ("viz-ascent-lr-nan", lambda c, o: [*ASCENT, "--lr", "nan", "--out", o / "a.png"], None),
    ("viz-ascent-channels-huge", lambda c, o: [*ASCENT, "--channels", "0-100000",
                                               "--out", o / "a.png"], None),
    ("viz-neighbors-negative-query", lambda c, o: ["viz", "neighbors", "--model", MODEL,
                                                   "--data", c["cls"], "--query-indices",
                                                   "-5", "--out", o / "n.png"], None),
]
# (id, argv builder given (corpus, fresh out path), corpus folder that must stay unchanged,
#  or None, or "detail" when a detail block may follow the error line)
CASES: list[tuple[str, Argv, str | None]] = [
    # train
    ("train-foreign-out", lambda c, o: [*TRAIN, "--data", c["train"], "--out", c["userdir"]],
     "userdir"),
    ("train-lookalike-out", lambda c, o: [*TRAIN, "--data", c["train"], "--out",
                                          c["lookalike"]], "lookalike"),
    ("train-lookalike-resume", lambda c, o: [*TRAIN, "--data", c["train"], "--out",
                                             c["lookalike"], "--resume"], "lookalike"),
    ("train-pca-dim", lambda c, o: [*TRAIN, "--data", c["train"], "--out", o,
                                    "--set", "pca_dim=100000"], None),
    ("train-batch-0", lambda c, o: [*TRAIN, "--data", c["train"], "--out", o,
                                    "--set", "batch_size=0"], None),
    ("train-epochs-0", lambda c, o: [*TRAIN, "--data", c["train"], "--out", o, "--epochs", "0"],
     None),
    ("train-epochs-abc", lambda c, o: [*TRAIN, "--data", c["train"], "--out", o,
                                       "--epochs", "abc"], None),
    ("train-resume-new", lambda c, o: [*TRAIN, "--data", c["train"], "--out", o, "--resume"],
     None),
    ("train-out-file", lambda c, o: [*TRAIN, "--data", c["train"], "--out", c["afile"]], None),
    ("train-out-readonly", lambda c, o: [*TRAIN, "--data", c["train"], "--out",
                                         c["readonly"] / "run"], None),
    ("train-unknown-key", lambda c, o: [*TRAIN, "--data", c["train"], "--out", o,
                                        "--set", "kk=3"], None),
    ("train-no-data", lambda c, o: [*TRAIN, "--data", o / "nothing", "--out", o], None),
    ("train-nothing-decodes", lambda c, o: [*TRAIN, "--data", c["undecodable"], "--out", o],
     "undecodable"),
    ("train-bad-recipe", lambda c, o: ["train", "--recipe", "tiny2", "--data", c["train"],
                                       "--out", o], None),
    # eval
    ("eval-negative-classes", lambda c, o: [*EVAL, "--model", f"{MODEL}?num_classes=-3",
                                            "--data", c["cls"], "--out", o], None),
    ("eval-batch-0", lambda c, o: [*EVAL, "--model", MODEL, "--data", c["cls"], "--out", o,
                                   "--set", "batch_size=0", "--no-store"], None),
    ("eval-knn-k-huge", lambda c, o: [*EVAL, "--model", MODEL, "--data", c["cls"], "--out", o,
                                      "--set", "k=100000", "--no-store"], None),
    ("eval-zip-exploit", lambda c, o: [*EVAL, "--model", c["zip"], "--data", c["cls"],
                                       "--out", o], None),
    ("eval-legacy-exploit", lambda c, o: [*EVAL, "--model", c["legacy"], "--data", c["cls"],
                                          "--out", o], None),
    ("eval-random-bytes", lambda c, o: [*EVAL, "--model", c["random"], "--data", c["cls"],
                                        "--out", o], None),
    ("eval-zero-bytes", lambda c, o: [*EVAL, "--model", c["zero"], "--data", c["cls"],
                                      "--out", o], None),
    ("eval-config-list", lambda c, o: [*EVAL, "--model", c["hub_list"], "--data", c["cls"],
                                       "--out", o], "hub_list"),
    ("eval-config-petabyte", lambda c, o: [*EVAL, "--model", c["hub_huge"], "--data", c["cls"],
                                           "--out", o], "hub_huge"),
    ("eval-foreign-out", lambda c, o: [*EVAL, "--model", MODEL, "--data", c["cls"],
                                       "--out", c["userdir"]], "userdir"),
    ("eval-out-file", lambda c, o: [*EVAL, "--model", MODEL, "--data", c["cls"],
                                    "--out", c["afile"]], None),
    ("eval-out-readonly", lambda c, o: [*EVAL, "--model", MODEL, "--data", c["cls"],
                                        "--out", c["readonly"] / "run"], None),
    ("eval-store-readonly", lambda c, o: [*EVAL, "--model", MODEL, "--data", c["cls"],
                                          "--out", o, "--store",
                                          c["readonly"] / "results.sqlite"], None),
    ("eval-store-garbage", lambda c, o: [*EVAL, "--model", MODEL, "--data", c["cls"],
                                         "--out", o, "--store", c["garbage_store"]], None),
    ("eval-store-foreign", lambda c, o: [*EVAL, "--model", MODEL, "--data", c["cls"],
                                         "--out", o, "--store", c["foreign_store"]],
     "foreign_store"),
    ("eval-store-corrupt", lambda c, o: [*EVAL, "--model", MODEL, "--data", c["cls"],
                                         "--out", o, "--store", c["corrupt_store"]],
     "corrupt_store"),
    ("eval-resume-nothing", lambda c, o: [*EVAL, "--model", MODEL, "--data", c["cls"],
                                          "--out", o, "--resume"], None),
    ("eval-name-sha-prefix", lambda c, o: [*EVAL, "--model", MODEL, "--data", c["cls"],
                                           "--out", o, "--name", "abcdef12"], None),
    # issue 26: a dry run checks what the run checks
    *[(f"eval-dry-run-{p}-heldout-0",
       lambda c, o, p=p: ["eval", "--protocol", p, "--model", MODEL, "--data", c["cls"],
                          "--schedule", "smoke", "--set", "heldout_fraction=0", "--dry-run",
                          "--out", o], None) for p in ("linear-conv", "mlp", "low-shot")],
    ("eval-dry-run-svm-train-split", lambda c, o: [*SVM, "--data", c["voc"], "--set",
                                                   "train_split=nope", "--dry-run", "--out", o],
     "detail"),
    ("eval-dry-run-seg-list-file", lambda c, o: ["eval", "--protocol", "voc12-seg", "--model",
                                                 MODEL, "--data", c["voc"], "--set",
                                                 "list_file=abc", "--dry-run", "--out", o],
     "detail"),
    ("eval-bad-protocol", lambda c, o: ["eval", "--protocol", "knnn", "--model", MODEL,
                                        "--data", c["cls"], "--out", o], None),
    # hub
    ("hub-convert-exploit", lambda c, o: ["hub", "convert", c["legacy"], o], None),
    ("hub-convert-garbage", lambda c, o: ["hub", "convert", c["random"], o], None),
    ("hub-convert-out-file", lambda c, o: ["hub", "convert", c["zip"], c["afile"]], None),
    ("hub-convert-readonly", lambda c, o: ["hub", "convert", c["zip"], c["readonly"] / "h"],
     None),
    ("hub-pull-unknown", lambda c, o: ["hub", "pull", "deepcluster-alexnett"], None),
    ("hub-push-bad-revision", lambda c, o: ["hub", "push", c["hub_list"], "--repo", "org/x",
                                            "--revision", "../../x"], "hub_list"),
    # leaderboard
    ("leaderboard-add-run-folder", lambda c, o: ["leaderboard", "add", c["run_folder"]],
     "run_folder"),
    ("leaderboard-add-a-folder", lambda c, o: ["leaderboard", "add", c["userdir"]], "userdir"),
    ("leaderboard-unknown-table", lambda c, o: ["leaderboard", "show", "no-such-table"], None),
    # reproduce
    ("reproduce-unknown-table", lambda c, o: [*REPRO[:1], "no-such-table", *REPRO[2:],
                                              "--out", o], None),
    ("reproduce-unknown-data", lambda c, o: [*REPRO, "--data", f"imagenett={c['cls']}",
                                             "--out", o], None),
    ("reproduce-wrong-layout", lambda c, o: [*REPRO, "--data", f"imagenet={c['userdir']}",
                                             "--out", o], "detail"),
    ("reproduce-no-fc-head", lambda c, o: ["reproduce", "thesis-5.2", "--model", "arch:resnet50",
                                           "--data", f"imagenet={c['cls']}", "--out", o], None),
    ("reproduce-foreign-out", lambda c, o: [*REPRO, "--data", f"imagenet={c['cls']}",
                                            "--out", c["userdir"]], "userdir"),
    *[(f"reproduce-resume-{n.replace('_', '-')}",
       lambda c, o, n=n: [*REPRO, "--data", f"imagenet={c['cls']}", "--out", c[n], "--resume"],
       n) for n in ("plan_torn", "plan_list", "plan_no_runs")],
    ("reproduce-batch-0", lambda c, o: [*REPRO, "--data", f"imagenet={c['cls']}", "--out", o,
                                        "--set", "batch_size=0"], None),
    ("leaderboard-report-out-file", lambda c, o: ["leaderboard", "report", "--output",
                                                  c["afile"] / "r.html"], None),
    # viz
    ("viz-model-zero", lambda c, o: ["viz", "filters", "--model", c["zero"], "--out",
                                     o / "f.png"], None),
    ("viz-out-not-png", lambda c, o: ["viz", "filters", "--model", MODEL, "--out",
                                      o / "f.txt"], None),
    ("viz-out-readonly", lambda c, o: ["viz", "filters", "--model", MODEL, "--out",
                                       c["readonly"] / "f.png"], None),
    # data
    ("data-synth-out-file", lambda c, o: ["data", "synth", "--out", c["afile"]], None),
    ("data-synth-foreign", lambda c, o: ["data", "synth", "--out", c["userdir"]], "userdir"),
    ("data-synth-readonly", lambda c, o: ["data", "synth", "--out", c["readonly"] / "s"], None),
    ("data-check-missing", lambda c, o: ["data", "check", "--data", o / "nothing",
                                         "--format", "imagenet"], None),
    ("data-check-no-format", lambda c, o: ["data", "check", "--data", c["cls"]], None),
    ("data-check-symlink-loop", lambda c, o: ["data", "check", "--data", c["loops"].parent,
                                              "--format", "imagenet"], None),
    ("train-symlink-loop-only", lambda c, o: [*TRAIN, "--data", c["loops"], "--out", o],
     "detail"),
    # demo
    ("demo-out-file", lambda c, o: ["demo", "--quick", "--out", c["afile"]], None),
    ("demo-foreign-force", lambda c, o: ["demo", "--quick", "--force", "--out", c["userdir"]],
     "userdir"),
    # status (reads only), and the live-view flags
    ("status-missing", lambda c, o: ["status", o / "nothing"], None),
    ("status-file", lambda c, o: ["status", c["afile"]], "afile"),
    ("status-foreign", lambda c, o: ["status", c["userdir"]], "userdir"),
    ("status-lookalike", lambda c, o: ["status", c["lookalike"]], "lookalike"),
    ("train-bad-wandb", lambda c, o: [*TRAIN, "--data", c["train"], "--out", o,
                                      "--wandb", "team/proj/x"], None),
    # bench
    ("bench-unknown", lambda c, o: ["bench", "--only", "nope"], None),
    ("bench-output-readonly", lambda c, o: ["bench", "--only", "nope", "--output",
                                            c["readonly"] / "b.md"], None),
    *RANGE_AND_PARSE_CASES,
]


def _snapshot(path: Path) -> dict[str, str]:
    if path.is_file():
        return {".": hashlib.sha256(path.read_bytes()).hexdigest()}
    return {str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest()
            if p.is_file() else "dir" for p in sorted(path.rglob("*"))}


@pytest.mark.parametrize("argv, watched", [pytest.param(a, w, id=i) for i, a, w in CASES])
def test_bad_invocation_is_one_line_exit_2_and_writes_nothing(
        corpus: dict[str, Path], argv: Argv, watched: str | None, tmp_path: Path,
        capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DCBENCH_HOME", str(tmp_path / "home"))
    out = tmp_path / "out"
    try:
        args = [str(a) for a in argv(corpus, out)]
    except KeyError as missing:
        pytest.skip(f"no {missing} in this environment (e.g. no unwritable folder as root)")
    detail = watched == "detail"
    watched = None if detail else watched
    before = {name: _snapshot(corpus[name]) for name in ("userdir", "afile", watched) if name}
    code = main(args)
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    # eval prints its plan (`plan: ...` + indented lines) before the protocol starts
    lines = [line for line in lines if not line.startswith(("plan: ", "  "))]
    # eval announces its run before the protocol starts; the error is then the second line
    if lines and lines[0].startswith("dcbench eval: ") and len(lines) == 2:
        lines = lines[1:]
    assert code == 2, err
    assert lines and lines[0].startswith("dcbench: error: "), err
    assert len(lines) == 1 or detail, err
    assert err.count("dcbench: error:") == 1, err
    assert "Traceback" not in err and "weights_only" not in err
    assert not out.exists(), "a refused command left its output folder behind"
    for name, snap in before.items():
        assert _snapshot(corpus[name]) == snap, f"{name} changed"


def test_every_subcommand_has_a_row() -> None:
    from dcbench.cli.entry import SUBCOMMANDS

    covered = {case[0].split("-")[0] for case in CASES}
    assert covered == set(SUBCOMMANDS)


def test_train_where_no_image_decodes_says_so(corpus, tmp_path, capsys):
    out = tmp_path / "run"
    assert main([*TRAIN, "--data", str(corpus["undecodable"]), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"no image in {corpus['undecodable']} could be decoded (6 tried: 0.jpg, 1.jpg, " \
           "2.jpg, ...)" in err
    assert not out.exists()  # no config.yaml, versions.json or run marker left behind


@pytest.mark.parametrize("name, reason", [("plan_torn", "not valid JSON"),
                                          ("plan_list", "expected a JSON object, got list"),
                                          ("plan_no_runs", "no 'runs'")])
def test_a_damaged_reproduce_plan_names_the_file(corpus, capsys, name, reason):
    assert main([*REPRO, "--data", f"imagenet={corpus['cls']}", "--out", str(corpus[name]),
                 "--resume"]) == 2
    line = capsys.readouterr().err.splitlines()[0]
    assert f"reproduce plan {corpus[name] / 'plan.json'} is damaged ({reason}" in line


def test_leaderboard_add_of_a_run_folder_points_at_from(corpus, capsys):
    assert main(["leaderboard", "add", str(corpus["run_folder"])]) == 2
    assert (f"{corpus['run_folder']} is a run folder: use --from {corpus['run_folder']}"
            in capsys.readouterr().err)
