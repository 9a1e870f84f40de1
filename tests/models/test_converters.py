"""Strict converters: fixtures built in each project's real layout, refusals, catalog pulls."""

from __future__ import annotations

import hashlib

import pytest
import torch
import torchvision

from dcbench.cli.entry import main
from dcbench.core.errors import UserError
from dcbench.models import create_backbone
from dcbench.models.converters import CONVERTER_NAMES, convert_state, load_converted
from dcbench.models.converters import CONVERTERS as C
from dcbench.models.sobel import make_sobel
from dcbench.models.sources import catalog
from dcbench.models.sources.pull import pull


@pytest.fixture(scope="module")
def r50():
    """A random torchvision ResNet-50 state_dict (torchvision naming, fc dropped)."""
    torch.manual_seed(0)
    state = torchvision.models.resnet50().state_dict()
    return {k: v for k, v in state.items() if not k.startswith("fc.")}


@pytest.fixture(scope="module")
def r50_sobel(r50):
    state = dict(r50)
    state["conv1.weight"] = torch.randn(64, 2, 7, 7)
    return state


def _same_body(model, state):
    own = model.state_dict()
    for key, value in state.items():
        assert torch.equal(own["body." + key], value), key


def swav_layout(state, prototypes=3):
    """SwAV `main_deepclusterv2.py` saves DDP state: `module.` + projection head + prototypes."""
    out = {"module." + k: v for k, v in state.items()}
    out.update({"module.projection_head.0.weight": torch.randn(16, 2048),
                "module.projection_head.0.bias": torch.randn(16),
                "module.projection_head.1.weight": torch.randn(16),
                "module.projection_head.1.running_mean": torch.zeros(16),
                "module.projection_head.1.num_batches_tracked": torch.tensor(5),
                "module.projection_head.3.weight": torch.randn(8, 16)})
    for i in range(prototypes):
        out[f"module.prototypes.prototypes{i}.weight"] = torch.randn(30, 8)
    return out


def test_swav_release_file_and_nesting(r50, tmp_path):
    path = tmp_path / "deepclusterv2_800ep_pretrain.pth.tar"
    torch.save(swav_layout(r50), path)
    model = load_converted(path, "swav")
    _same_body(model, r50)
    assert model.config["source"]["dropped_head_keys"] == 9
    nested = convert_state({"state_dict": swav_layout(r50)}, C["swav"])  # SeLa-v2 style
    _same_body(nested, r50)


def test_vissl_resnet_layouts(r50):
    classy = {"classy_state_dict": {"base_model": {"model": {
        "trunk": {"_feature_blocks." + k: v for k, v in r50.items()},
        "heads": {"0.clf.0.weight": torch.randn(3, 2048)}}}}}
    _same_body(convert_state(classy, C["vissl-resnet"]), r50)
    appended = {"model_state_dict": {"trunk.base_model._feature_blocks." + k: v
                                     for k, v in r50.items()}}
    _same_body(convert_state(appended, C["vissl-resnet"]), r50)
    _same_body(convert_state(swav_layout(r50), C["vissl-resnet"]), r50)  # re-hosted SwAV files


def official_alexnet():
    """An official-layout DeepCluster AlexNet state (DataParallel `features.module.`)."""
    model = create_backbone({"arch": "alexnet", "sobel": True}, seed=3)
    return {k.replace("features.", "features.module.", 1): v for k, v in model.state_dict().items()
            if not k.endswith("num_batches_tracked")}


def test_vissl_alexnet_deepcluster(tmp_path):
    official = official_alexnet()
    # VISSL's documented renaming: features.module.{0,1,4,5,8,9,11,12,14,15} ->
    # _feature_blocks.{0,2,4,5,6}.{0,1}; sobel / classifier / top_layer skipped.
    table = {"0": "0.0", "1": "0.1", "4": "2.0", "5": "2.1", "8": "4.0", "9": "4.1",
             "11": "5.0", "12": "5.1", "14": "6.0", "15": "6.1"}
    vissl = {}
    for key, value in official.items():
        if key.startswith("features.module."):
            index, rest = key.removeprefix("features.module.").split(".", 1)
            vissl[f"_feature_blocks.{table[index]}.{rest}"] = value
    path = tmp_path / "deepcluster_alexnet_checkpoint.torch"
    torch.save({"model_state_dict": vissl}, path)
    model = load_converted(path, "vissl-alexnet-deepcluster")
    own = model.state_dict()
    for key, value in official.items():
        if key.startswith("features.module."):
            assert torch.equal(own[key.replace("features.module.", "features.")], value)
    assert torch.equal(own["sobel.1.weight"], make_sobel()[1].weight)
    fresh = create_backbone({"arch": "alexnet", "sobel": True}, seed=0).state_dict()
    assert torch.equal(own["classifier.1.weight"], fresh["classifier.1.weight"])
    assert model.config["source"]["random_init"] == ["classifier."]
    prefixed = {"model_state_dict": {"trunk.base_model." + k: v for k, v in vissl.items()}}
    convert_state(prefixed, C["vissl-alexnet-deepcluster"])


def mmselfsup_layout(state, sobel=None):
    out = {"backbone." + k: v for k, v in state.items()}
    out.update({"head.fc_cls.weight": torch.randn(10, 2048), "head.fc_cls.bias": torch.zeros(10),
                "loss_weight": torch.full((10,), 0.1)})
    if sobel is not None:
        out.update({f"sobel_layer.sobel.{k}": v for k, v in sobel.state_dict().items()})
    return {"meta": {"epoch": 200, "mmselfsup_version": "1.0.0"}, "state_dict": out}


def test_mmselfsup_sobel_resnet(r50_sobel, tmp_path):
    path = tmp_path / "deepcluster-sobel_resnet50.pth"
    torch.save(mmselfsup_layout(r50_sobel), path)
    model = load_converted(path, "mmselfsup-resnet")
    _same_body(model, r50_sobel)
    assert model.config["sobel"] is True
    _same_body(convert_state(mmselfsup_layout(r50_sobel, make_sobel()), C["mmselfsup-resnet"]),
               r50_sobel)
    wrong = make_sobel()
    with torch.no_grad():
        wrong[0].weight.fill_(0.5)
    with pytest.raises(UserError, match="fixed Sobel"):
        convert_state(mmselfsup_layout(r50_sobel, wrong), C["mmselfsup-resnet"])


def test_refusals_carry_the_key_report(r50):
    extra = swav_layout(r50)
    extra["module.layer5.0.conv1.weight"] = torch.zeros(1)
    with pytest.raises(UserError) as err:
        convert_state(extra, C["swav"])
    assert "unexpected keys" in err.value.detail and "layer5" in err.value.detail
    missing = {k: v for k, v in swav_layout(r50).items() if "layer4.2" not in k}
    with pytest.raises(UserError) as err:
        convert_state(missing, C["swav"])
    assert "missing keys" in err.value.detail and "body.layer4.2.conv1.weight" in err.value.detail
    shaped = swav_layout(r50)
    shaped["module.conv1.weight"] = torch.zeros(64, 2, 7, 7)  # a Sobel stem into an RGB net
    with pytest.raises(UserError) as err:
        convert_state(shaped, C["swav"])
    assert "shape mismatches" in err.value.detail
    with pytest.raises(UserError, match="no state_dict"):
        convert_state({"model": "nothing"}, C["mmselfsup-resnet"])
    with pytest.raises(UserError, match="unknown checkpoint layout"):
        load_converted("x.pth", "visl-resnet")


def test_catalog_family_entries_name_known_converters():
    family = [e for e in catalog.list_entries() if e.converter != "deepcluster-official"]
    assert {e.converter for e in family} == set(CONVERTER_NAMES) - {"deepcluster-official"}
    assert all(e.source == "url" and e.url.startswith("https://") for e in family)
    for name in ("deepclusterv2-r50-800ep", "selav2-r50-400ep", "vissl-deepcluster-alexnet",
                 "vissl-deepclusterv2-r50-800ep", "mmselfsup-deepcluster-r50-sobel"):
        assert catalog.has_entry(name)


def _serve(tmp_path, monkeypatch, name, payload, **fields):
    src = tmp_path / "server" / name
    src.parent.mkdir(parents=True, exist_ok=True)
    torch.save(payload, src)
    base = catalog.get_entry(fields.pop("like")).as_dict()
    entry = catalog.CatalogEntry(**{**base, "name": "fixture-" + name, "url": src.as_uri(),
                                    **fields})
    monkeypatch.setitem(catalog.CATALOG._items, entry.name, entry)
    monkeypatch.delenv("DCBENCH_OFFLINE", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    return entry, hashlib.sha256(src.read_bytes()).hexdigest()


def test_pull_converts_records_sha_and_checks_name_prefix(r50, r50_sobel, tmp_path, monkeypatch):
    entry, sha = _serve(tmp_path, monkeypatch, "dcv2.pth.tar", swav_layout(r50),
                        like="deepclusterv2-r50-800ep")
    folder = pull(entry.name, progress=False)
    assert (folder / "model.safetensors").is_file()
    record = (folder.parent / "downloads" / entry.name / "download.json").read_text()
    assert sha in record  # trust on first use: recorded for later pulls
    bad, sha = _serve(tmp_path, monkeypatch, "mm.pth", mmselfsup_layout(r50_sobel),
                      like="mmselfsup-deepcluster-r50-sobel", extra={"sha256_prefix": "zz"})
    with pytest.raises(UserError, match="starts with zz"):
        pull(bad.name, progress=False)
    good, sha = _serve(tmp_path, monkeypatch, "mm2.pth", mmselfsup_layout(r50_sobel),
                       like="mmselfsup-deepcluster-r50-sobel")
    good = catalog.CatalogEntry(**{**good.as_dict(), "extra": {"sha256_prefix": sha[:8]}})
    monkeypatch.setitem(catalog.CATALOG._items, good.name, good)
    assert (pull(good.name, progress=False) / "config.json").is_file()


def test_hub_convert_cli_takes_a_layout(r50, tmp_path, capsys):
    src = tmp_path / "selav2_400ep_pretrain.pth.tar"
    torch.save({"state_dict": swav_layout(r50, prototypes=0)}, src)
    out = tmp_path / "hub"
    assert main(["hub", "convert", str(src), str(out), "--layout", "swav"]) == 0
    assert (out / "model.safetensors").is_file() and "resnet50" in capsys.readouterr().out
    assert main(["hub", "convert", str(src), str(tmp_path / "hub2")]) == 2  # not official


def mmselfsup1_sobel_layout(state, sobel):
    """MMSelfSup 1.x `ResNetSobel`: the Sobel module lives in the backbone
    (`backbone.sobel_layer.sobel.{0,1}.*`), the data preprocessor and head beside it."""
    out = mmselfsup_layout(state)
    out["state_dict"].update({f"backbone.sobel_layer.sobel.{k}": v
                              for k, v in sobel.state_dict().items()})
    out["state_dict"]["data_preprocessor.mean"] = torch.tensor([123.675, 116.28, 103.53])
    return out


def test_mmselfsup1_resnet_sobel_keys_in_the_backbone(r50_sobel, tmp_path):
    path = tmp_path / "deepcluster_resnet50-sobel.pth"
    torch.save(mmselfsup1_sobel_layout(r50_sobel, make_sobel()), path)
    model = load_converted(path, "mmselfsup-resnet")
    _same_body(model, r50_sobel)
    assert torch.equal(model.state_dict()["sobel.1.weight"], make_sobel()[1].weight)
    wrong = make_sobel()
    with torch.no_grad():
        wrong[1].weight.mul_(2)
    with pytest.raises(UserError, match="fixed Sobel"):
        convert_state(mmselfsup1_sobel_layout(r50_sobel, wrong), C["mmselfsup-resnet"])
    extra = mmselfsup1_sobel_layout(r50_sobel, make_sobel())
    extra["state_dict"]["backbone.sobel_layer.sobel.2.weight"] = torch.zeros(1)
    with pytest.raises(UserError) as err:  # still strict inside the Sobel module
        convert_state(extra, C["mmselfsup-resnet"])
    assert "sobel.2.weight" in err.value.detail


def vissl_linear_eval_layout(trunk):
    """A VISSL linear-evaluation checkpoint: the frozen trunk is wrapped in the feature
    extractor (`trunk.base_model._feature_blocks.*` as `base_model._feature_blocks.*` under
    `trunk`), the linear heads under `heads`."""
    return {"classy_state_dict": {"base_model": {"model": {
        "trunk": {"base_model._feature_blocks." + k: v for k, v in trunk.items()},
        "heads": {"0.channel_bn.weight": torch.ones(2048),
                  "0.clf.clf.0.weight": torch.randn(1000, 2048)}}}},
        "loss": {}, "train_phase_idx": 27}


def test_vissl_linear_evaluation_checkpoints(r50, tmp_path):
    path = tmp_path / "model_final_checkpoint_phase27.torch"
    torch.save(vissl_linear_eval_layout(r50), path)
    _same_body(load_converted(path, "vissl-resnet"), r50)
    official = official_alexnet()
    table = {"0": "0.0", "1": "0.1", "4": "2.0", "5": "2.1", "8": "4.0", "9": "4.1",
             "11": "5.0", "12": "5.1", "14": "6.0", "15": "6.1"}
    blocks = {f"{table[k.split('.')[2]]}.{k.split('.', 3)[3]}": v for k, v in official.items()
              if k.startswith("features.module.")}
    model = convert_state(vissl_linear_eval_layout(blocks), C["vissl-alexnet-deepcluster"])
    own = model.state_dict()
    for key, value in official.items():
        if key.startswith("features.module."):
            assert torch.equal(own[key.replace("features.module.", "features.")], value)
    missing = vissl_linear_eval_layout({k: v for k, v in r50.items() if "layer4.2" not in k})
    with pytest.raises(UserError) as err:
        convert_state(missing, C["vissl-resnet"])
    assert "body.layer4.2.conv1.weight" in err.value.detail


def test_load_converted_returns_an_eval_mode_model(r50, tmp_path):
    path = tmp_path / "dcv2.pth.tar"
    torch.save(swav_layout(r50), path)
    model = load_converted(path, "swav")
    assert not model.training and not any(m.training for m in model.modules())
    official = tmp_path / "checkpoint.pth.tar"
    torch.save({"arch": "alexnet", "epoch": 1, "state_dict": {
        **official_alexnet(), "top_layer.weight": torch.randn(10, 4096),
        "top_layer.bias": torch.zeros(10)}}, official)
    assert not load_converted(official, "deepcluster-official").training
