"""Hostile model configs are one-line errors before any network is built (issue 14, item 3)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import dcbench
from dcbench.core.errors import UserError
from dcbench.models import create_backbone
from dcbench.models.checkpoints import load_hub_dir, save_hub_dir
from dcbench.models.config_schema import check_model_config

BAD_CONFIGS = {
    "list": "[1, 2, 3]",
    "abc": json.dumps({"arch": "alexnet_small", "num_classes": "abc"}),
    "petabyte": json.dumps({"arch": "alexnet_small", "num_classes": 10**12}),
    "malformed": '{"arch": "alexnet_small", ',
    "unknown-key": json.dumps({"arch": "alexnet_small", "sobell": True}),
    "no-arch": json.dumps({"sobel": True}),
    "bad-std": json.dumps({"arch": "alexnet_small", "std": [0, 1, 1]}),
    # issue 19: a std of 1e-320 (0 in float32) saturated every layer; a mean of 1e30 too
    "denormal-std": json.dumps({"arch": "alexnet_small", "std": [1e-320, 1, 1]}),
    "huge-mean": json.dumps({"arch": "alexnet_small", "mean": [1e30, 0, 0]}),
    "deep": '{"arch": ' + "[" * 100_000,
    "not-utf8": b"\xff\xfe\x00garbage",
}


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("hub") / "model"
    save_hub_dir(create_backbone({"arch": "alexnet_small"}, seed=0), folder)
    return folder


def _write(path: Path, text: str | bytes) -> None:
    path.write_bytes(text if isinstance(text, bytes) else text.encode())


@pytest.mark.parametrize("case", sorted(BAD_CONFIGS))
def test_bad_config_in_a_hub_folder(hub: Path, tmp_path: Path, case: str) -> None:
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "model.safetensors").write_bytes((hub / "model.safetensors").read_bytes())
    _write(folder / "config.json", BAD_CONFIGS[case])
    with pytest.raises(UserError) as err:
        dcbench.load_model(str(folder))
    assert "config.json" in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("case", sorted(BAD_CONFIGS))
def test_bad_config_beside_a_pth(tmp_path: Path, case: str) -> None:
    model = create_backbone({"arch": "alexnet_small"}, seed=0)
    torch.save(model.state_dict(), tmp_path / "weights.pth")
    _write(tmp_path / "config.json", BAD_CONFIGS[case])
    with pytest.raises(UserError) as err:
        dcbench.load_model(str(tmp_path / "weights.pth"))
    assert "config.json" in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("spec", ["arch:alexnet_small?num_classes=-3",
                                  "arch:alexnet_small?num_classes=abc",
                                  "arch:alexnet_small?seed=abc",
                                  "arch:alexnet_small?sobell=1",
                                  "random-alexnet_small-sobel?seed=x"])
def test_bad_arch_queries(spec: str) -> None:
    with pytest.raises(UserError, match="seed|num_classes|sobell"):
        dcbench.load_model(spec)


def test_good_configs_still_load(hub: Path) -> None:
    assert dcbench.load_model(str(hub)).config["arch"] == "alexnet_small"
    assert dcbench.load_model("arch:alexnet_small?num_classes=5&seed=3").config["num_classes"] == 5


@pytest.mark.parametrize("key, value", [
    ("taps", ["nope", 3]), ("taps", []), ("taps", "conv1"), ("weights_sha256", "abc"),
    ("name", 7), ("init_seed", -1), ("deepcluster_epochs", "ten"), ("source", 5),
])
def test_every_metadata_key_is_checked_too(key, value):
    # issue 26: a key dcbench writes is schema-checked as well, never silently ignored
    with pytest.raises(UserError, match=f"{key} must be"):
        check_model_config({"arch": "alexnet_small", key: value})


def test_hub_folder_with_taps_of_another_network_is_refused(tmp_path):
    folder = tmp_path / "hub"
    save_hub_dir(create_backbone({"arch": "alexnet_small"}, seed=0), folder, card=None)
    config = json.loads((folder / "config.json").read_text())
    config["taps"] = ["nope"]
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(UserError, match=r"taps \['nope'\] are not the taps of alexnet_small"):
        load_hub_dir(folder)
