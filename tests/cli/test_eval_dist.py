"""`torchrun --nproc_per_node 2 -m dcbench eval` (gloo on CPU) gives the rows of one process.

Each test launches torchrun once: `eval_dist_worker.py` runs several protocols one after the
other on the two processes (one interpreter start per rank for all of them). The
single-process rows come from the same commands through the entry point in this process.

Tolerances: the feature protocols shard the images, gather the features in dataset order
and run the same pure cores, so their rows agree to 1e-6 (relative, the rows are percents
or [0, 1] scores): CPU convolutions of the same image in another batch may differ in the
last float bits (tests/training/test_ddp.py measured 8e-8), which here never moved a row.
linear-conv --fast trains on the same global batches with row-weighted all-reduced
gradients (float64 sums), so its rows agree to the same 1e-6.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from dcbench.cli.entry import main
from dcbench.core.outcomes import OUTCOMES_FILE, read_outcomes
from dcbench.data.dali_pipeline import dali_available
from dcbench.data.planned_images import PlannedImages, sniff_jpeg
from dcbench.data.synthetic_jpeg import add_bad_files, make_jpeg_folder
from dcbench.data.synthetic_retrieval import write_retrieval_set
from dcbench.leaderboards.paired import paired_delta

from .eval_dist_worker import record_reads

WORKER = Path(__file__).with_name("eval_dist_worker.py")
ROOT = Path(__file__).resolve().parents[2]
MODEL = "random-alexnet_small-sobel"
REL_TOL = 1e-6


@pytest.fixture(scope="module")
def ret_set(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small Oxford/Paris-style retrieval set (3 landmarks, 128 px)."""
    return write_retrieval_set(tmp_path_factory.mktemp("ret") / "set", landmarks=3,
                               per_landmark=4, distractors=4, size=128)


def _argv(protocol: str, data: Path, *extra: str) -> list[str]:
    """A smoke-schedule eval of the test model (the run dir is added by `_compare`)."""
    return ["eval", "--protocol", protocol, "--model", MODEL, "--data", str(data),
            "--schedule", "smoke", "--no-store", *extra]


def launch(commands: list[list[str]], tmp: Path, nproc: int = 2, fault: str | None = None,
           timeout: float = 240, reads: Path | None = None) -> subprocess.CompletedProcess:
    """Run `commands` on `nproc` torchrun processes (gloo, one thread each); with `reads`,
    through the worker, which writes each rank's DALI image reads there."""
    spec = tmp / f"commands-{len(list(tmp.glob('commands-*')))}.json"
    spec.write_text(json.dumps(commands))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
           "DCBENCH_DIST_TIMEOUT": "120"}
    env.pop("DCBENCH_FAULT", None)
    if fault:
        env["DCBENCH_FAULT"] = fault
    # one command: the README's form (`torchrun ... -m dcbench eval ...`); several: the worker
    target = ["-m", "dcbench", *commands[0]] if len(commands) == 1 and reads is None else \
        [str(WORKER), str(spec), *([str(reads)] if reads is not None else [])]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
           f"--nproc_per_node={nproc}", *target]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout,
                          cwd=tmp)


def _rows(run_dir: Path) -> dict[tuple, float]:
    rows = json.loads((run_dir / "results.json").read_text())
    return {(r["dataset"], r["split"], r["layer"], r["metric"], r["seed"]): r["value"]
            for r in rows}


def _assert_same_rows(one: Path, two: Path, rel: float = REL_TOL) -> None:
    a, b = _rows(one), _rows(two)
    assert a.keys() == b.keys()
    for key, value in a.items():
        assert abs(value - b[key]) <= rel * max(1.0, abs(value)), (one.name, key, value, b[key])


def _compare(cases: dict[str, list[str]], tmp: Path, *, rel: float = REL_TOL) -> None:
    """Run each case in this process and on 2 processes; the rows must agree."""
    for name, argv in cases.items():
        assert main(_argv_out(argv, tmp / "one" / name)) == 0, name
    result = launch([_argv_out(argv, tmp / "two" / name) for name, argv in cases.items()], tmp)
    assert result.returncode == 0, result.stderr[-6000:]
    for name in cases:
        _assert_same_rows(tmp / "one" / name, tmp / "two" / name, rel)
        # only rank 0 wrote: the run dir holds the files of a one-process run, no more
        # (a TensorBoard event file is named by time and pid: compared as one per section)
        assert _run_files(tmp / "two" / name) == _run_files(tmp / "one" / name)
        assert _outcome_keys(tmp / "one" / name) == _outcome_keys(tmp / "two" / name)
        _assert_outcomes_make_rows(tmp / "two" / name)


def _outcome_keys(run_dir: Path) -> list[tuple]:
    """(split, layer, metric, seed, dataset, kind, listing, items) of each per-item entry."""
    path = run_dir / OUTCOMES_FILE
    return [(*e.key(), e.seed, e.dataset, e.kind, e.listing, e.n_items)
            for e in (read_outcomes(path) if path.is_file() else [])]


def _assert_outcomes_make_rows(run_dir: Path) -> None:
    """Each per-item entry (gathered from every rank, in dataset order) recomputes its row."""
    path = run_dir / OUTCOMES_FILE
    rows = json.loads((run_dir / "results.json").read_text())
    for entry in read_outcomes(path) if path.is_file() else []:
        value = paired_delta(entry, entry, resamples=1).a  # by the entry's own rule
        match = [r["value"] for r in rows if (r["split"], r["layer"], r["metric"])
                 == entry.key() and entry.dataset in (None, r["dataset"])
                 and (entry.seed is None or r["seed"] == entry.seed)
                 and (entry.model_sha256 in (None, r["model_sha256"]))]
        assert match and value == pytest.approx(match[0], rel=1e-9), (run_dir.name, entry.key())


def _run_files(run_dir: Path) -> list[Path]:
    """The run dir's paths, an event file standing for `SECTION/<events>`."""
    return sorted(p.parent / "<events>" if p.name.startswith("events.out.tfevents.") else p
                  for p in (q.relative_to(run_dir) for q in run_dir.rglob("*")))


def _argv_out(argv: list[str], out: Path) -> list[str]:
    return [*argv, "--out", str(out)]


def test_classification_feature_protocols_and_fast_linear_match_one_process(
        cls_set: Path, tmp_path: Path) -> None:
    """knn, knn-graph, nmi (sharded feature passes; cls_set has 4 undecodable train files,
    reported once) and linear-conv --fast (cached features + DDP-style heads)."""
    cases = {
        "knn": _argv("knn", cls_set, "--set", "k=3"),
        "knn-graph": _argv("knn-graph", cls_set, "--set", "k=3"),
        "nmi": _argv("nmi", cls_set),
        "linear-conv": _argv("linear-conv", cls_set, "--fast", "--layers",
                             "conv2,conv5"),
    }
    _compare(cases, tmp_path)


def test_voc_svms_match_one_process(voc_set: Path, tmp_path: Path) -> None:
    """voc07-svm, voc07-lowshot-svm: sharded features, the SVMs on every rank; voc07-svm
    also through DALI (CPU backend) when installed: each rank squashes its shard with the
    two DALI resize stages, and the rows equal the one-process DALI run's."""
    cases = {"voc07-svm": _argv("voc07-svm", voc_set, "--layers", "conv5"),
             "voc07-lowshot-svm": _argv("voc07-lowshot-svm", voc_set, "--layers", "conv5")}
    if dali_available():
        cases["voc07-svm-dali"] = [*cases["voc07-svm"], "--set", "input_pipeline=dali"]
    _compare(cases, tmp_path)


def test_retrieval_matches_one_process(ret_set: Path, tmp_path: Path) -> None:
    """retrieval: R-MAC shards split across ranks, gathered, written by rank 0; also read
    through DALI (CPU backend) when installed: each rank decodes its own shards."""
    cases = {"retrieval": _argv("retrieval", ret_set, "--set", "shard_size=5")}
    if dali_available():
        cases["retrieval-dali"] = [*cases["retrieval"], "--set", "input_pipeline=dali"]
    _compare(cases, tmp_path)
    for name in cases:
        shards = sorted(p.relative_to(tmp_path / "two") for p in
                        (tmp_path / "two" / name).rglob("shard_*"))
        assert shards and shards == sorted(p.relative_to(tmp_path / "one") for p in
                                           (tmp_path / "one" / name).rglob("shard_*"))
        assert all(p.parent.name.endswith("-dali") == name.endswith("-dali") for p in shards)


def test_a_failing_rank_stops_every_rank_with_one_line(cls_set: Path, tmp_path: Path) -> None:
    """Rank 1 fails inside the sharded feature pass: rank 0 stops at the same phase boundary
    with `rank 1 of 2 failed: ...` (no hang), marks the run failed, and the corrected
    command (here: one process, no fault) continues it without --resume."""
    out = tmp_path / "run"
    argv = _argv_out(_argv("knn", cls_set, "--set", "k=3"), out)
    result = launch([argv], tmp_path, fault="eval-rank:1", timeout=180)
    assert result.returncode != 0
    assert "dcbench: error: rank 1 of 2 failed: injected fault eval-rank:1" in result.stderr
    assert json.loads((out / "run.json").read_text())["status"] == "failed"
    assert not (out / "results.json").exists()
    assert main(argv) == 0 and (out / "results.json").is_file()


def test_resume_with_another_number_of_processes(cls_set: Path, tmp_path: Path) -> None:
    """linear-conv --fast killed (SIGKILL on both ranks) before one-pass epoch 2 of a
    2-process run resumes in one process to the rows of an uninterrupted run: the probe
    checkpoints hold the heads of the global batches, whatever the number of ranks."""
    argv = _argv("linear-conv", cls_set, "--fast", "--layers", "conv5")
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    assert main(_argv_out(argv, straight)) == 0
    result = launch([_argv_out(argv, resumed)], tmp_path, fault="probe-epoch:2")
    assert result.returncode != 0
    assert (resumed / "checkpoints" / "one-pass.pt").is_file()  # selection_pass: one
    assert not (resumed / "results.json").exists()
    assert main([*_argv_out(argv, resumed), "--resume"]) == 0
    _assert_same_rows(straight, resumed)


def test_dry_run_eta_is_shared_by_the_processes(cls_set: Path, tmp_path: Path) -> None:
    """`torchrun --nproc_per_node 2 ... --dry-run` prints the plan once, with the time of
    the network passes divided by 2."""
    result = launch([_argv("knn", cls_set, "--dry-run")], tmp_path)
    assert result.returncode == 0, result.stderr[-4000:]
    assert result.stderr.count("plan: knn") == 1
    assert "ms / 2 processes = about" in result.stderr


def test_reproduce_under_torchrun_matches_one_process(cls_set: Path, tmp_path: Path) -> None:
    """`torchrun --nproc_per_node 2 -m dcbench reproduce thesis-5.3 ... --fast`: every planned
    eval runs on the two processes, rank 0 writes the plan, the run dirs, the store rows
    (once) and the tables; the rows are the one-process rows."""
    def argv(out: Path, store: Path) -> list[str]:
        return ["reproduce", "thesis-5.3", "--model", MODEL, "--data", f"imagenet={cls_set}",
                "--schedule", "smoke", "--fast", "--set", "epochs=2", "--out", str(out),
                "--store", str(store)]

    assert main(argv(tmp_path / "one", tmp_path / "one.sqlite")) == 0
    result = launch([argv(tmp_path / "two", tmp_path / "two.sqlite")], tmp_path)
    assert result.returncode == 0, result.stderr[-6000:]
    runs = sorted(p.parent.name for p in (tmp_path / "one").glob("*/results.json"))
    assert runs and runs == sorted(p.parent.name
                                   for p in (tmp_path / "two").glob("*/results.json"))
    for name in runs:
        _assert_same_rows(tmp_path / "one" / name, tmp_path / "two" / name)
    assert (tmp_path / "two" / "table.md").is_file()
    assert result.stdout.count("thesis-5.3:") == 1  # the table printed by rank 0 only
    with sqlite3.connect(tmp_path / "two.sqlite") as db:
        rows, runs_stored = (db.execute(f"select count(*) from {t}").fetchone()[0]
                             for t in ("results", "runs"))
    assert runs_stored == 1 and rows == len(_rows(tmp_path / "two" / runs[0]))


def test_low_shot_and_mlp_train_on_two_processes(cls_set: Path, tmp_path: Path) -> None:
    """low-shot (whole-network fine-tuning) and mlp (dropout) split every batch across the
    ranks; their crops, dropout masks and BN batch statistics are drawn per rank
    (docs/fidelity.md item 32), so the rows are checked for shape and range here, and the
    gradient arithmetic against one process in tests/core/test_dist_eval.py."""
    short = [f"{k}={v}" for k, v in (("draws", 1), ("shots", "[2]"), ("iterations", 6),
                                     ("eval_every", 3), ("batch_size", 8))]
    _train_both({"low-shot": _argv("low-shot", cls_set, *[w for o in short
                                                          for w in ("--set", o)]),
                 "mlp": _argv("mlp", cls_set, "--fast", "--set", "epochs=2")}, tmp_path)


@pytest.fixture(scope="module")
def jpeg_cls_set(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """train/ (4 classes x 9 JPEGs, some progressive, CMYK, EXIF-rotated, + the 9 bad and
    awkward files of `add_bad_files` in c01) and val/ (4 x 3 JPEGs)."""
    root = tmp_path_factory.mktemp("jpeg_cls") / "set"
    make_jpeg_folder(root / "train", n_classes=4, per_class=9, sizes="small", seed=5,
                     progressive=0.3, cmyk=0.1, rotated=0.2)
    add_bad_files(root / "train" / "c01")
    make_jpeg_folder(root / "val", n_classes=4, per_class=3, sizes="small", seed=6,
                     progressive=0.3, cmyk=0.1, rotated=0.2)
    return root


def test_low_shot_through_dali_on_two_processes_reads_every_image_once(
        jpeg_cls_set: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """low-shot with `input_pipeline=dali` (DALI's CPU backend) on a JPEG set: the rows have
    the one-process keys and range (as the PIL test above: crops are per rank), and the two
    ranks together read every file exactly as often as one process does
    (each stream batch split between the ranks, each held-out and val image read by one
    rank); the JPEGs DALI decodes as PIL does went through DALI on both ranks, the others
    (CMYK, PNG, broken files: `sniff_jpeg` says None) through the PIL fallback."""
    pytest.importorskip("nvidia.dali")
    # one lr and one eval point: the held-out selection has no choice to make, so the final
    # fine-tune's length (and its reads) cannot follow the per-rank crops' scores
    short = [f"{k}={v}" for k, v in (("draws", 1), ("shots", "[2]"), ("iterations", 6),
                                     ("eval_every", 6), ("lrs", "[0.01]"), ("batch_size", 8),
                                     ("inits", "[pretrained]"), ("input_pipeline", "dali"))]
    argv = _argv("low-shot", jpeg_cls_set, *[w for o in short for w in ("--set", o)])
    one: list[list] = []
    monkeypatch.setattr(PlannedImages, "__getitem__", record_reads(one))
    assert main(_argv_out(argv, tmp_path / "one")) == 0
    reads = tmp_path / "reads"
    reads.mkdir()
    result = launch([_argv_out(argv, tmp_path / "two")], tmp_path, reads=reads)
    assert result.returncode == 0, result.stderr[-6000:]
    ranks = [json.loads((reads / f"rank-{r}.json").read_text()) for r in (0, 1)]

    def per_file(records: list[list]) -> Counter[str]:
        return Counter(path for path, _ in records)

    assert all(ranks) and per_file(ranks[0]) + per_file(ranks[1]) == per_file(one)
    val = {str(p) for p in (jpeg_cls_set / "val").rglob("*.JPEG")}
    assert len(val) == 12 and val <= per_file(one).keys()  # the val pass read all of them
    dali_files = {p for p in per_file(one) if sniff_jpeg(Path(p).read_bytes()) is not None}
    assert len(dali_files) >= 12
    for records in (one, *ranks):
        assert {p for p, through_dali in records if through_dali} <= dali_files
        assert all(through_dali == (p in dali_files) for p, through_dali in records)
    assert json.loads((tmp_path / "two" / "run.json").read_text())["input_pipeline"] == "dali"
    rows_one, rows_two = _rows(tmp_path / "one"), _rows(tmp_path / "two")
    assert rows_one.keys() == rows_two.keys() and all(0 <= v <= 100 for v in rows_two.values())


def test_voc_fine_tunes_on_two_processes(voc_set: Path, tmp_path: Path) -> None:
    """voc07-cls and voc12-seg: each rank takes its slice of every global batch (the
    per-item seeded crops are those of one process), gradients are all-reduced (before
    voc07-cls's clipping), the 10-crop test scores and the confusion matrix count each image
    once. Dropout (and voc07-cls's BN statistics) are per rank."""
    _train_both({"voc07-cls": _argv("voc07-cls", voc_set, "--set", "iterations=8",
                                    "--set", "batch_size=8"),
                 "voc12-seg": _argv("voc12-seg", voc_set, "--set", "iterations=6",
                                    "--set", "batch_size=3")},
                tmp_path)


def test_voc07_det_fine_tunes_on_two_processes(voc_set: Path, tmp_path: Path) -> None:
    """voc07-det: batch slices, gradients averaged over ranks weighted by images (the RPN and
    ROI losses are means over each rank's samples, as under DDP), detections of each rank's
    test images gathered in dataset order."""
    _train_both({"voc07-det": _argv("voc07-det", voc_set, "--set", "iterations=4",
                                    "--set", "batch_size=2")}, tmp_path)
    # the per-detection records (written by rank 0) cover every test image in dataset order
    one, two = (read_outcomes(tmp_path / n / "voc07-det" / OUTCOMES_FILE)[0]
                for n in ("one", "two"))
    assert (two.kind, two.n_items, two.listing) == ("detection", 20, one.listing)
    np.testing.assert_array_equal(two.arrays["npos"], one.arrays["npos"])
    assert two.arrays["npos"].sum() > 0
    value = _rows(tmp_path / "two" / "voc07-det")[("voc2007", "test", "fc6-8", "map", 0)]
    assert paired_delta(two, two, resamples=1).a == pytest.approx(value, abs=1e-12)


def _train_both(cases: dict[str, list[str]], tmp_path: Path) -> None:
    """Run the cases in one process and on two; same rows, every value a percent."""
    for name, argv in cases.items():
        assert main(_argv_out(argv, tmp_path / "one" / name)) == 0, name
    result = launch([_argv_out(argv, tmp_path / "two" / name) for name, argv in cases.items()],
                    tmp_path)
    assert result.returncode == 0, result.stderr[-6000:]
    for name in cases:
        one, two = _rows(tmp_path / "one" / name), _rows(tmp_path / "two" / name)
        assert one.keys() == two.keys() and all(0.0 <= v <= 100.0 for v in two.values())
        assert _outcome_keys(tmp_path / "one" / name) == _outcome_keys(tmp_path / "two" / name)
        _assert_outcomes_make_rows(tmp_path / "two" / name)


def test_voc_fine_tunes_through_dali_on_two_processes(voc_set: Path, tmp_path: Path) -> None:
    """voc12-seg and voc07-det with `input_pipeline=dali` (DALI's CPU backend) on two
    processes: each rank decodes its slices and its test shard through DALI, and the test
    pass reads every image exactly once in dataset order (the per-image ground-truth pixel
    counts behind the mIoU equal the one-process run's, image for image)."""
    pytest.importorskip("nvidia.dali")
    dali = ("--set", "input_pipeline=dali")
    _train_both({"voc12-seg": _argv("voc12-seg", voc_set, "--set", "iterations=4",
                                    "--set", "batch_size=3", *dali),
                 "voc07-det": _argv("voc07-det", voc_set, "--set", "iterations=3",
                                    "--set", "batch_size=2", *dali)}, tmp_path)
    counts = []
    for run in ("one", "two"):
        assert json.loads((tmp_path / run / "voc12-seg" / "run.json").read_text())[
            "input_pipeline"] == "dali"
        (entry,) = read_outcomes(tmp_path / run / "voc12-seg" / OUTCOMES_FILE)
        counts.append(entry.arrays["gt"])
    assert counts[0].shape[0] == 20 and (counts[0] == counts[1]).all()
    # voc07-det's per-detection records: every test image's box counts, in dataset order
    npos = [read_outcomes(tmp_path / run / "voc07-det" / OUTCOMES_FILE)[0].arrays["npos"]
            for run in ("one", "two")]
    assert npos[0].shape[0] == 20 and (npos[0] == npos[1]).all()


def _losses(run_dir: Path) -> list[float]:
    """The training losses a run logged, in order."""
    return [json.loads(line)["loss"] for line in
            (run_dir / "log.jsonl").read_text().splitlines() if '"loss"' in line]


def test_bn_sync_global_normalises_the_global_batch(cls_set: Path, voc_set: Path,
                                                    tmp_path: Path) -> None:
    """`bn_sync` (core/sync_bn.py). goyal2019's BN head (linear-conv --fast: the same global
    batches of 7, sliced 4 / 3, held-out rows masked per head) with the default `global`
    gives one process's rows (1e-6) and logged losses (1e-5); `rank` (each rank's slice, the
    behaviour before the key) gives other losses. goyal2019 on images, low-shot (the
    trunk's BN) and voc07-cls with `bn_stats=batch` (Caffe's accumulation, whole network
    trained; batches of 13 over 40 images end with a batch of 1, rank 1's slice empty) run
    with the global statistics; their crops and dropout masks are still drawn per rank, so
    their rows are checked for shape and range only (docs/fidelity.md item 32)."""
    goyal = _argv("linear-conv", cls_set, "--fast", "--dialect", "goyal2019", "--layers",
                  "conv2,conv5", "--set", "batch_size=7", "--set", "epochs=4")
    short = [w for o in ("draws=1", "shots=[2]", "iterations=4", "eval_every=2",
                         "batch_size=7") for w in ("--set", o)]
    cases = {"goyal": goyal, "goyal-rank": [*goyal, "--set", "bn_sync=rank"],
             # on images: 28 files in batches of 27 end with a batch of 1: rank 1 has no
             # features for it and runs the empty forward
             "goyal-images": _argv("linear-conv", cls_set, "--dialect", "goyal2019",
                                   "--layers", "conv5", "--set", "batch_size=27", "--set",
                                   "epochs=1"),
             "low-shot": _argv("low-shot", cls_set, *short),
             "voc07-cls": _argv("voc07-cls", voc_set, "--train-layers", "all", "--set",
                                "iterations=4", "--set", "batch_size=13", "--set",
                                "bn_stats=batch", "--set", "eval_passes=1")}
    for name in ("goyal", "goyal-images", "low-shot", "voc07-cls"):
        assert main(_argv_out(cases[name], tmp_path / "one" / name)) == 0, name
    result = launch([_argv_out(argv, tmp_path / "two" / name) for name, argv in cases.items()],
                    tmp_path)
    assert result.returncode == 0, result.stderr[-6000:]
    one, two = tmp_path / "one", tmp_path / "two"
    _assert_same_rows(one / "goyal", two / "goyal")
    # float32 sums in another order drift by a few 1e-6 over the 4 epochs (rows: 1e-6)
    np.testing.assert_allclose(_losses(two / "goyal"), _losses(one / "goyal"), rtol=1e-5)
    assert not np.allclose(_losses(two / "goyal-rank"), _losses(one / "goyal"), rtol=1e-3)
    for name in ("goyal-images", "low-shot", "voc07-cls"):
        a, b = _rows(one / name), _rows(two / name)
        assert a.keys() == b.keys() and all(0.0 <= v <= 100.0 for v in b.values())
    # `global` is what one process computes: left out of the config hash; `rank` is not
    hashes = {name: {r["config_hash"] for r in json.loads((two / name / "results.json")
                                                          .read_text())}
              for name in ("goyal", "goyal-rank")}
    one_hash = {r["config_hash"] for r in json.loads((one / "goyal" / "results.json")
                                                     .read_text())}
    assert hashes["goyal"] == one_hash and hashes["goyal-rank"].isdisjoint(one_hash)
