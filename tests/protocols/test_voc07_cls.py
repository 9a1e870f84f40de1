"""voc07-cls: metric core vs sklearn, the masked loss, freezing rules, end-to-end runs."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from scipy import stats
from sklearn.metrics import average_precision_score

import dcbench
from dcbench.core.errors import UserError
from dcbench.data.caffe_transform import CaffeTransformation
from dcbench.data.loader import DecodeReport
from dcbench.data.synthetic import make_voc_set
from dcbench.data.voc import VOC_CLASSES
from dcbench.protocols.base import get_protocol
from dcbench.protocols.voc.metrics import multilabel_ap
from dcbench.protocols.voc07_cls import (
    classification_loss,
    mode_iterations,
    train_transform,
    voc07_cls_metrics,
)
from tests.data.test_caffe_transform import port_affine, port_forward

MICRO = ["iterations=4", "batch_size=4", "eval_passes=2", "checkpoint_every=2"]


@pytest.fixture(scope="module")
def voc_root(tmp_path_factory):
    return make_voc_set(tmp_path_factory.mktemp("voc"), n_train=8, n_val=6, n_test=6,
                        size=96, seed=0)


@pytest.fixture()
def model():
    return dcbench.load_model("arch:alexnet_small?sobel=1&seed=0")


def test_metrics_core_matches_sklearn_on_non_difficult_entries():
    rng = np.random.default_rng(1)
    scores = rng.normal(size=(30, 20))
    labels = rng.choice([1, -1, -1, -1, 0], size=(30, 20)).astype(np.int8)
    labels[0] = 1  # every class has a positive
    metrics = voc07_cls_metrics(scores, labels)
    aps = []
    for c, name in enumerate(VOC_CLASSES):
        keep = labels[:, c] != 0
        aps.append(average_precision_score(labels[keep, c] == 1, scores[keep, c]))
        assert metrics[f"ap_{name}"] == pytest.approx(aps[-1])
    assert metrics["map"] == pytest.approx(np.mean(aps))


def test_loss_ignores_difficult_entries_and_averages_over_the_batch():
    logits = torch.tensor([[2.0, -1.0, 0.5], [0.0, 3.0, -2.0]])
    labels = torch.tensor([[1, -1, 0], [0, 1, -1]], dtype=torch.int8)

    def bce(x, y):
        return -(y * np.log(1 / (1 + np.exp(-x))) + (1 - y) * np.log(1 - 1 / (1 + np.exp(-x))))

    expected = (bce(2.0, 1) + bce(-1.0, 0) + bce(3.0, 1) + bce(-2.0, 0)) / 2
    assert float(classification_loss(logits, labels)) == pytest.approx(expected, rel=1e-6)



def _run(model, root, work_dir, overrides, schedule="smoke"):
    protocol = get_protocol("voc07-cls")
    config = protocol.resolve_config(schedule=schedule, overrides=overrides)
    return protocol.run(model, root, config, run_id="t", device="cpu", progress=False,
                        work_dir=work_dir)


def test_end_to_end_micro_schedule(model, voc_root, tmp_path):
    sha = model.weights_sha256()
    conv1 = model.features[0].weight.detach().clone()
    rows = _run(model, voc_root, tmp_path, MICRO)
    assert model.weights_sha256() == sha  # the caller's model is not modified
    assert {r.split for r in rows} == {"test", "train"}
    assert {r.layer for r in rows} == {"fc6-8"} and {r.dataset for r in rows} == {"voc2007"}
    test = {r.metric: r.value for r in rows if r.split == "test"}
    assert 0.0 <= test["map"] <= 100.0  # rows are in percent, like the tables
    assert set(test) <= {"map", *(f"ap_{c}" for c in VOC_CLASSES)}
    per_class = [v for k, v in test.items() if k.startswith("ap_")]
    assert test["map"] == pytest.approx(np.mean(per_class))
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert 100 * saved["test"]["map"] == pytest.approx(test["map"])  # metrics.json: fractions
    state = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert state["position"]["iteration"] == 4
    torch.testing.assert_close(state["state"]["model"]["features.0.weight"], conv1)  # conv frozen
    assert torch.allclose(state["state"]["model"]["classifier.1.bias"].mean(), torch.tensor(0.1),
                          atol=0.01)  # re-initialised fc6 (bias 0.1), barely moved


def test_keeps_the_test_scores_behind_the_map(model, voc_root, tmp_path):
    """The per-image scores kept for paired intervals recompute the stored mAP (sklearn's
    AP on them, difficult entries ignored)."""
    protocol = get_protocol("voc07-cls")
    config = protocol.resolve_config(schedule="smoke", overrides=MICRO)
    rows = protocol.run(model, voc_root, config, run_id="t", device="cpu", progress=False,
                        work_dir=tmp_path)
    (entry,) = protocol.item_outcomes()
    assert (entry.split, entry.layer, entry.metric, entry.kind) == \
        ("test", "fc6-8", "map", "multilabel")
    t = entry.arrays["targets"]
    aps = multilabel_ap(entry.arrays["scores"], (t == 1).astype(np.int64), t != -1)
    stored = next(r.value for r in rows if r.split == "test" and r.metric == "map")
    assert 100 * np.nanmean(aps) == pytest.approx(stored)
    assert set(np.unique(t)) <= {-1, 0, 1} and entry.arrays["scores"].shape == t.shape


def test_all_layers_train_the_trunk_and_bn_switch_is_labelled(model, voc_root, tmp_path):
    rows = _run(model, voc_root, tmp_path / "all", [*MICRO, "train_layers=all",
                                                     "eval_train_split=false"])
    assert {r.layer for r in rows} == {"all"} and {r.split for r in rows} == {"test"}
    state = torch.load(tmp_path / "all" / "checkpoint.pt", weights_only=True)
    assert not torch.equal(state["state"]["model"]["features.0.weight"], model.features[0].weight)
    torch.testing.assert_close(state["state"]["model"]["sobel.1.weight"], model.sobel[1].weight)
    rows = _run(model, voc_root, tmp_path / "bn", [*MICRO, "train_bn_scales=true",
                                                    "eval_train_split=false"])
    assert {r.layer for r in rows} == {"fc6-8+bn"}
    state = torch.load(tmp_path / "bn" / "checkpoint.pt", weights_only=True)
    torch.testing.assert_close(state["state"]["model"]["features.0.weight"],
                               model.features[0].weight)
    assert not torch.equal(state["state"]["model"]["features.1.weight"], model.features[1].weight)


def test_deterministic_resume_and_tencrop(model, voc_root, tmp_path):
    overrides = [*MICRO, "eval_train_split=false"]
    first = {r.metric: r.value for r in _run(model, voc_root, tmp_path / "a", overrides)}
    again = {r.metric: r.value for r in _run(model, voc_root, tmp_path / "b", overrides)}
    assert first == again  # seeded: same numbers from a fresh work dir
    resumed = {r.metric: r.value for r in _run(model, voc_root, tmp_path / "a", overrides)}
    assert resumed == first  # finished checkpoint: no retraining, same evaluation
    tencrop = _run(model, voc_root, tmp_path / "c", [*overrides, "eval_crops=tencrop"])
    assert any(r.metric == "map" for r in tencrop)


def test_bad_input_is_a_user_error(model, tmp_path):
    with pytest.raises(UserError):
        _run(model, tmp_path / "missing", tmp_path / "w", MICRO)
    with pytest.raises(UserError, match="unknown config key"):
        _run(model, tmp_path, tmp_path / "w", ["iteratons=3"])
    with pytest.raises(UserError):
        _run(model, tmp_path, tmp_path / "w", ["train_layers=conv5"])
    with pytest.raises(UserError, match=r"'iterations' must be an integer in \[1,"):
        _run(model, tmp_path, tmp_path / "w", ["iterations=0"])


def test_cli_runs_and_stores_per_class_rows(voc_root, tmp_path, capsys):
    from dcbench.cli.entry import main
    from dcbench.leaderboards.store import ResultsStore

    store = tmp_path / "results.sqlite"
    argv = ["eval", "--protocol", "voc07-cls", "--model", "arch:alexnet_small?sobel=1&seed=0",
            "--data", str(voc_root), "--train-layers", "fc6-8", "--train-bn-scales",
            "--schedule", "smoke", "--out", str(tmp_path / "run"), "--store", str(store),
            *(f"--set={o}" for o in [*MICRO, "eval_train_split=false"])]
    assert main(argv) == 0
    frame = ResultsStore(store).results(protocol="voc07-cls")
    assert set(frame["layer"]) == {"fc6-8+bn"} and "map" in set(frame["metric"])
    assert frame["metric"].str.startswith("ap_").sum() >= 1
    assert (tmp_path / "run" / "checkpoint.pt").is_file()
    # bad input: one line, exit 2, no run dir left behind
    bad = ["eval", "--protocol", "voc07-cls", "--model", "arch:resnet18", "--data",
           str(voc_root), "--schedule", "smoke", "--out", str(tmp_path / "bad"), "--no-store"]
    assert main(bad) == 2
    assert "AlexNet/VGG-style" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()


@pytest.mark.slow
def test_smoke_schedule_on_the_built_in_data(model, tmp_path):
    root = make_voc_set(tmp_path / "voc", seed=0)
    rows = _run(model, root, tmp_path / "run", [])
    assert {r.split for r in rows if r.metric == "map"} == {"test", "train"}


def test_all_layers_uses_the_caffe_schedule_behind_73_7():
    """issue 11 item 4: `all` = eval_voc_classif_all.sh (Caffe): lr 0.001, step 20k, 150k
    iterations; fc6-8 stays the PyTorch script's 0.003 / 5k / 80k."""
    from dcbench.protocols.voc07_cls import mode_iterations

    proto = get_protocol("voc07-cls")
    all_cfg = proto.resolve_config(overrides=["train_layers=all"])
    assert (all_cfg.lr_all, all_cfg.stepsize_all, mode_iterations(all_cfg)) == (0.001, 20000,
                                                                                  150000)
    fc = proto.resolve_config()
    assert (fc.lr_fc6_8, fc.stepsize_fc6_8, mode_iterations(fc)) == (0.003, 5000, 80000)
    assert mode_iterations(proto.resolve_config(overrides=["iterations=7"])) == 7


def test_fc6_8_iteration_count_is_the_pipeline_switch():
    """issue 21 item 1: fc6-8 runs 80k in eval_voc_classif.py (--nit default), 150k in
    eval_voc_classif_fc6_8.sh (-nit 150000); `iterations_fc6_8` overrides both."""
    proto = get_protocol("voc07-cls")
    assert mode_iterations(proto.resolve_config(dialect="faithful-2018")) == 80000
    caffe = proto.resolve_config(overrides=["pipeline_fc6_8=caffe"])
    assert (caffe.lr_fc6_8, caffe.stepsize_fc6_8, mode_iterations(caffe)) == (0.003, 5000,
                                                                              150000)
    assert mode_iterations(proto.resolve_config(overrides=["pipeline_fc6_8=caffe",
                                                           "iterations_fc6_8=1234"])) == 1234
    faithful_all = proto.resolve_config(dialect="faithful-2018", overrides=["train_layers=all"])
    assert faithful_all.pipeline_all == "caffe" and mode_iterations(faithful_all) == 150000
    assert proto.resolve_config().pipeline_all == "pytorch"  # dc2018 keeps the mix


def _built_net(model, voc_root, overrides, dialect="faithful-2018"):
    proto = get_protocol("voc07-cls")
    config = proto.resolve_config(dialect=dialect, schedule="smoke", overrides=overrides)
    task = proto.build(model, voc_root, config, torch.device("cpu"), DecodeReport(), False)
    return config, task.net


def test_faithful_all_redraws_fc6_to_fc8_like_random_from(model, voc_root):
    """train_cls.py `--random-from DropoutBackward23`: every layer with weights after that
    dropout (fc6, fc7, the new fc8) gets N(0, 0.01) weights and bias 0.1."""
    _, net = _built_net(model, voc_root, ["train_layers=all"])
    linears = [m for m in net.modules() if isinstance(m, torch.nn.Linear)]
    assert len(linears) == 3 and linears[-1].out_features == 20
    for layer in linears:
        w = layer.weight.detach().double().numpy().ravel()
        assert stats.kstest(w, stats.norm(0, 0.01).cdf).pvalue > 1e-3
        assert torch.all(layer.bias == 0.1)
    # the PyTorch fc6-8 script keeps nn.Linear's default init on fc8 (uniform, not normal)
    _, net = _built_net(model, voc_root, [])
    w = net.top_layer.weight.detach().double().numpy().ravel()
    bound = 1 / np.sqrt(net.top_layer.in_features)
    assert stats.kstest(w, stats.uniform(-bound, 2 * bound).cdf).pvalue > 1e-3
    assert stats.kstest(w, stats.norm(0, 0.01).cdf).pvalue < 1e-6


def test_faithful_all_trains_on_the_caffe_transformation_layer(model, voc_root):
    """`pipeline_all=caffe` crops with Caffe's TransformationLayer (the port in
    tests/data/test_caffe_transform.py) on the normalised image, for training and test."""
    proto = get_protocol("voc07-cls")
    mean, std = model.config["mean"], model.config["std"]
    arr = np.random.default_rng(0).integers(0, 256, size=(40, 56, 3), dtype=np.uint8)
    config = proto.resolve_config(dialect="faithful-2018", overrides=["train_layers=all"])
    torch.manual_seed(5)
    got = train_transform(config, 32, mean, std)(Image.fromarray(arr)).double().numpy()
    torch.manual_seed(5)
    draw = CaffeTransformation(32, (0.5, 2.0)).make_params(40, 56)
    assert 0.5 <= draw.scale <= 40 / 32
    normalised = ((arr.transpose(2, 0, 1) / 255.0 - np.asarray(mean)[:, None, None])
                  / np.asarray(std)[:, None, None])
    affine = port_affine(draw.scale, draw.sx, draw.sy, draw.mirror, h=40, w=56, wo=32, ho=32)
    np.testing.assert_allclose(got, port_forward(normalised, affine, 32), atol=1e-5)
    pytorch = train_transform(proto.resolve_config(overrides=["train_layers=all"]), 32, mean,
                              std)
    assert not any(isinstance(t, CaffeTransformation) for t in pytorch.transforms)
    with pytest.raises(UserError, match="caffe_scale"):
        train_transform(proto.resolve_config(overrides=["pipeline_fc6_8=caffe",
                                                        "caffe_scale=[2.0,0.5]"]), 32, mean,
                        std)


def test_bias_multipliers_follow_the_pipeline_script(model, voc_root):
    """train_cls.py (the caffe pipeline) trains conv/fc biases at 2x the lr, decay 1x;
    eval_voc_classif.py (pytorch) uses one lr; an explicit `bias_lr_mult` wins."""
    proto = get_protocol("voc07-cls")
    cases = [("faithful-2018", ["train_layers=all"], 2.0),
             ("dc2018", ["train_layers=all"], 1.0),
             ("faithful-2018", [], 1.0),
             ("dc2018", ["pipeline_fc6_8=caffe"], 2.0),
             ("faithful-2018", ["train_layers=all", "bias_lr_mult=1"], 1.0)]
    for dialect, overrides, want in cases:
        config = proto.resolve_config(dialect=dialect, schedule="smoke", overrides=overrides)
        task = proto.build(model, voc_root, config, torch.device("cpu"), DecodeReport(), False)
        assert (task.bias_lr_mult, task.bias_decay_mult) == (want, 1.0), (dialect, overrides)
    with pytest.raises(UserError, match="bias_lr_mult"):
        proto.resolve_config(overrides=["bias_lr_mult=-1"])


def test_bn_stats_batch_trains_the_trunk_bn_on_batch_statistics(model, voc_root, tmp_path):
    """`bn_stats=batch` (Caffe BatchNorm without use_global_stats) reaches the net and runs;
    the default keeps the trunk in eval mode (the rule itself: tests/protocols/voc/test_nets)."""
    config, net = _built_net(model, voc_root, ["train_layers=all", "bn_stats=batch"])
    assert net.train().features.training
    _, net = _built_net(model, voc_root, ["train_layers=all"])
    assert not net.train().features.training
    proto = get_protocol("voc07-cls")
    config = proto.resolve_config(dialect="faithful-2018", overrides=[
        *MICRO, "train_layers=all", "bn_stats=batch", "eval_train_split=false",
        "workers=0"])
    rows = proto.run(model, voc_root, config, run_id="t", device="cpu", progress=False,
                     work_dir=tmp_path)
    assert any(r.metric == "map" and np.isfinite(r.value) for r in rows)
    with pytest.raises(UserError, match="bn_stats"):
        proto.resolve_config(overrides=["bn_stats=running"])


@pytest.mark.slow
def test_faithful_all_runs_end_to_end(model, voc_root, tmp_path):
    protocol = get_protocol("voc07-cls")
    config = protocol.resolve_config(dialect="faithful-2018", schedule="smoke",
                                     overrides=[*MICRO, "train_layers=all",
                                                "eval_train_split=false"])
    rows = protocol.run(model, voc_root, config, run_id="t", device="cpu", progress=False,
                        work_dir=tmp_path)
    assert {r.layer for r in rows} == {"all"} and any(r.metric == "map" for r in rows)


def test_fc8_init_switch_follows_eval_voc_classif(model):
    """issue 11 item 9: the official new fc8 keeps nn.Linear's default init (kaiming-uniform,
    a=sqrt(5): U(-1/sqrt(fan_in), 1/sqrt(fan_in))) and only fills its bias with 0.1."""
    from dcbench.protocols.voc.nets import reinit_linear, reset_linear_pytorch_default

    fc8 = torch.nn.Linear(4096, 20)
    reset_linear_pytorch_default(fc8, torch.Generator().manual_seed(0))
    bound = 1 / np.sqrt(4096)
    w = fc8.weight.detach().numpy()
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.99 * bound
    assert abs(w.std() - bound / np.sqrt(3)) < 0.02 * bound  # uniform: std = bound / sqrt(3)
    assert torch.all(fc8.bias == 0.1)
    reinit_linear(fc8, torch.Generator().manual_seed(0))  # our default: N(0, 0.01)
    assert abs(fc8.weight.std().item() - 0.01) < 5e-4
    proto = get_protocol("voc07-cls")
    assert proto.resolve_config().fc8_init == "normal-0.01"
    assert proto.resolve_config(dialect="faithful-2018").fc8_init == "pytorch-default"


def test_the_caffe_pipeline_runs_through_dali_next_to_pil(voc_root, tmp_path, monkeypatch):
    """`pipeline_all=caffe` with `input_pipeline=dali`: the Caffe layer's windows are warped
    by DALI from the per-item seeded draws (training and the random test passes), and the
    mAP stays next to the PIL path's (the windows differ by ~1e-4 grey level)."""
    pytest.importorskip("nvidia.dali")
    from dcbench.data.dali_warp import WarpLoader

    seen: list[int] = []
    prepare = WarpLoader._prepare
    monkeypatch.setattr(WarpLoader, "_prepare",
                        lambda self, planned: seen.append(len(planned.items))
                        or prepare(self, planned))
    protocol = get_protocol("voc07-cls")
    maps = {}
    for name in ("cpu", "dali"):
        config = protocol.resolve_config(schedule="smoke", overrides=[
            *MICRO, "train_layers=all", "pipeline_all=caffe", f"input_pipeline={name}"])
        rows = protocol.run(dcbench.load_model("arch:alexnet_small?sobel=1&seed=0"), voc_root,
                            config, run_id="t", device="cpu", progress=False,
                            work_dir=tmp_path / name)
        maps[name] = {(r.split, r.metric): r.value for r in rows}
        assert bool(seen) == (name == "dali")
    assert sum(seen) >= 4 * 4 + 2 * 6  # the training batches + the two test passes
    assert maps["cpu"].keys() == maps["dali"].keys()
    assert abs(maps["cpu"][("test", "map")] - maps["dali"][("test", "map")]) < 1.0
