"""Every `dcbench ...` command in README.md's ```bash blocks is run by this suite.

The commands are read from the README itself (continuation lines joined, comments dropped,
`&&` chains split), so an example that breaks, or a new one nobody runs, fails here. They run
in README order in one workspace (later examples use what earlier ones made: `runs/tiny`,
the store's rows), in-process through `dcbench.cli.entry.main`, on built-in data:

- `PATHS` / `MODELS` swap the README's placeholders (`/datasets/imagenet`, a catalog model
  whose weights need the network) for built-in fixtures, token by token;
- `COMMANDS` says, for every README command, how it runs: `Run(extra)` appends arguments that
  keep it short (`--dry-run` for a published schedule, a shrunken training recipe), and
  `Skip(why)` names a command that cannot run here and the test that covers it instead.

To add a README command: add its text (as `readme_commands()` prints it) to `COMMANDS`.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shlex
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
import torchvision

from dcbench.cli.entry import main
from dcbench.data.synthetic import make_classification_set, make_voc_set
from dcbench.data.synthetic_retrieval import write_retrieval_set
from tests.models.test_converters import swav_layout
from tests.models.test_official_layout import official_alexnet_state_dict, save_official

README = Path(__file__).resolve().parents[1] / "README.md"

# README placeholder (a whole argument, a path prefix or the ROOT of NAME=ROOT) -> built-in
PATHS = {
    "/datasets/imagenet": "imagenet", "/datasets/places205": "imagenet",
    "/datasets/VOCdevkit": "voc", "/datasets/retrieval": "retrieval",
    "dcbench-demo/data/cls/val": "imagenet/val",
    "path/to/my_hub_folder": "models/dc-alexnet",  # made by `hub convert` before it
    "path/to/my_model": "runs/tiny/final",
    "runs/digits": "runs/tiny",  # the README trains runs/digits and uses it as runs/tiny
}
# catalog weights need the network; a random init of the built-in data's network stands in
MODELS = {
    "deepcluster-alexnet": "random-alexnet_small-sobel",
    "deepcluster-vgg16": "random-alexnet_small-sobel",
    "deepclusterv2-r50-800ep": "random-alexnet_small-sobel",
    "torchvision:resnet50": "torchvision:resnet18@random",
    "timm:resnet50": "timm:resnet18@random",
    # compare: two models with rows in the store by then
    "random-alexnet-sobel": "random-alexnet_small-sobel?seed=1",
    "tiny-sobel": "tiny", "random-sobel": "random-alexnet_small-sobel",
}

DRY = ("--dry-run",)
# a thesis training recipe shrunk to the built-in data: one epoch of the 64-px network
SHRUNK_TRAIN = ("--epochs", "1", "--set", "arch=alexnet_small", "--set", "input_size=64",
                "--set", "resize=64", "--set", "k=4", "--set", "pca_dim=16",
                "--set", "batch_size=8", "--set", "workers=0", "--set", "device=cpu")
SHORT_LINEAR = ("--set", "epochs=2", "--set", "milestones=[1]")


@dataclasses.dataclass(frozen=True)
class Run:
    """Run the command (after PATHS/MODELS) with `extra` arguments; `setup(workspace)` first."""

    extra: tuple[str, ...] = ()
    setup: Callable[[Path], None] | None = None


@dataclasses.dataclass(frozen=True)
class Skip:
    """Not runnable here: `why`, and where it is covered instead."""

    why: str


def _voc_every_class(ws: Path) -> None:
    """A VOCdevkit whose trainval has every class (the low-shot SVM refuses, before its plan,
    a set where no k can be drawn; the shared 16-image trainval lacks some classes)."""
    make_voc_set(ws / "voc-every-class", n_train=20, n_val=20, n_test=8, size=64, seed=5)


def _official_checkpoint(ws: Path) -> None:
    path = ws / "home-user" / "deepcluster_models" / "alexnet" / "checkpoint.pth.tar"
    path.parent.mkdir(parents=True, exist_ok=True)
    save_official(path, official_alexnet_state_dict(k=10))


def _swav_checkpoint(ws: Path) -> None:
    torch.manual_seed(0)
    state = {k: v for k, v in torchvision.models.resnet50().state_dict().items()
             if not k.startswith("fc.")}
    torch.save(swav_layout(state), ws / "deepclusterv2_800ep_pretrain.pth.tar")


def _second_model_rows(ws: Path) -> None:
    assert main(["eval", "--protocol", "linear-conv", "--model", MODELS["random-alexnet-sobel"],
                 "--data", "imagenet", "--schedule", "smoke", "--fast", *SHORT_LINEAR]) == 0


def _tiny_rows(ws: Path) -> None:
    assert main(["eval", "--protocol", "linear-conv", "--model", "runs/tiny/final", "--data",
                 "imagenet", "--schedule", "smoke", "--fast", *SHORT_LINEAR]) == 0


def _results_json(ws: Path) -> None:
    found = sorted((ws / "home" / "runs").rglob("results.json"))
    shutil.copy(found[0], ws / "results.json")


NETWORK = "needs the network (Hugging Face Hub)"
COMMANDS: dict[str, Run | Skip] = {
    "dcbench demo": Skip("4 min; tests/cli/test_demo.py runs a shrunken demo end to end and "
                         "the slow tests the real `demo --quick`"),
    "dcbench hub list": Run(),
    "dcbench hub pull deepcluster-alexnet": Skip(
        "downloads from the network; tests/models/sources/test_pull.py pulls from a local "
        "server"),
    "dcbench eval --protocol linear-conv --model deepcluster-alexnet --data /datasets/imagenet "
    "--dry-run": Run(),
    "dcbench eval --protocol linear-conv --model deepcluster-alexnet --data /datasets/imagenet "
    "--schedule smoke --fast": Run(SHORT_LINEAR),
    "dcbench eval --protocol linear-conv --model deepcluster-alexnet --data /datasets/imagenet":
        Run(DRY),
    "dcbench eval --protocol linear-conv --model deepcluster-alexnet --data /datasets/places205 "
    "--dialect goyal2019-places205 --layers conv3,conv4,conv5": Run(DRY),
    "dcbench eval --protocol voc07-cls --model deepcluster-alexnet --data /datasets/VOCdevkit "
    "--train-layers fc6-8": Run(DRY),
    "dcbench eval --protocol linear-conv --model deepcluster-alexnet --data /datasets/imagenet "
    "--dialect faithful-2018": Run(DRY),
    "dcbench eval --protocol retrieval --model deepcluster-vgg16 --data /datasets/retrieval":
        Run(DRY),
    "dcbench eval --protocol voc07-svm --model deepclusterv2-r50-800ep --data "
    "/datasets/VOCdevkit": Run(DRY),
    "dcbench eval --protocol voc07-lowshot-svm --model deepclusterv2-r50-800ep --data "
    "/datasets/VOCdevkit": Run(DRY + ("--data", "voc-every-class"), setup=_voc_every_class),
    "dcbench eval --list": Run(),
    "dcbench hub convert ~/deepcluster_models/alexnet/checkpoint.pth.tar models/dc-alexnet":
        Run(setup=_official_checkpoint),
    "dcbench hub convert deepclusterv2_800ep_pretrain.pth.tar models/dcv2 --layout swav":
        Run(setup=_swav_checkpoint),
    "dcbench eval --protocol linear-conv --model torchvision:resnet50 --data /datasets/imagenet":
        Run(DRY),
    "dcbench eval --protocol knn --model timm:resnet50 --data /datasets/imagenet --layers pool":
        Run(),
    "dcbench data digits --out digits": Run(("--per-class", "5")),
    "dcbench eval --protocol linear-conv --model torchvision:resnet18@random --data digits "
    "--dry-run": Run(),
    "dcbench eval --protocol linear-conv --model torchvision:resnet18@random --data digits "
    "--schedule smoke --fast": Run(SHORT_LINEAR),
    "dcbench eval --protocol knn --model torchvision:resnet18@random --data digits": Run(),
    "dcbench train --list-recipes": Run(),
    "dcbench train --recipe tiny --data digits/train --out runs/digits": Run(SHRUNK_TRAIN),
    "dcbench eval --protocol knn-graph --model path/to/my_hub_folder --data /datasets/imagenet "
    "--batch-size 256": Run(),
    "dcbench train --recipe km-imnet-sob --data /datasets/imagenet/train --out "
    "runs/km-imnet-sob": Run(SHRUNK_TRAIN),
    "dcbench train --recipe deepcluster-alexnet+faithful-2018 --data /datasets/imagenet/train "
    "--out runs/dc-alexnet-2018": Run(SHRUNK_TRAIN),
    # run as one process: tests/training/test_ddp.py runs the 2-process gloo form
    "torchrun --nproc_per_node 8 -m dcbench train --recipe deepcluster-alexnet --data "
    "/datasets/imagenet/train --out runs/dc-alexnet --set clustering_backend=torch":
        Run(SHRUNK_TRAIN),
    "dcbench train --recipe deepcluster-alexnet --data /datasets/imagenet/train --out "
    "runs/dc-alexnet --resume": Run(SHRUNK_TRAIN + ("--set", "clustering_backend=torch")),
    "dcbench viz curves runs/dc-alexnet --out curves.png": Run(),
    "dcbench hub card runs/tiny": Run(),
    "dcbench hub push runs/tiny --repo my-org/deepcluster-tiny": Skip(
        NETWORK + "; tests/models/sources/test_hf.py pushes to a fake Hub API"),
    "dcbench eval --protocol knn --model hf-hub:my-org/deepcluster-tiny@<commit-sha> --data DIR":
        Skip(NETWORK + "; tests/models/sources/test_hf.py loads hf-hub: specs offline"),
    "dcbench reproduce thesis-5.5 --model path/to/my_model --data voc=/datasets/VOCdevkit "
    "--dry-run": Run(),
    # the published schedule is days; the smoke run of this table is the slow
    # tests/cli/test_reproduce.py::test_voc_table_end_to_end_on_the_built_in_voc_set
    "dcbench reproduce thesis-5.5 --model path/to/my_model --data voc=/datasets/VOCdevkit":
        Run(DRY),
    "dcbench leaderboard list": Run(),
    # torchrun forms run as one process: tests/cli/test_eval_dist.py runs the 2-process gloo
    "torchrun --nproc_per_node 8 -m dcbench eval --protocol linear-conv --model "
    "deepcluster-alexnet --data /datasets/imagenet --out runs/lin-in": Run(DRY),
    "torchrun --nproc_per_node 8 -m dcbench reproduce eccv-table1-imagenet --model "
    "deepcluster-alexnet --data imagenet=/datasets/imagenet --dry-run": Run(),
    "torchrun --nproc_per_node 8 -m dcbench reproduce thesis-5.3 --model path/to/my_model "
    "--data imagenet=/datasets/imagenet": Run(DRY),
    "dcbench train --recipe tiny --data digits/train --out runs/dali --set "
    "input_pipeline=dali": Skip("DALI decodes on a GPU; tests/training/test_dali_training.py "
                                "runs DALI's CPU backend"),
    "dcbench eval --protocol knn --model deepcluster-alexnet --data /datasets/imagenet --set "
    "input_pipeline=dali": Skip("DALI decodes on a GPU; tests/protocols/test_dali_eval.py "
                                "runs DALI's CPU backend"),
    "dcbench train --recipe tiny --data synth/cls/train --out runs/tiny --wandb my-project":
        Skip("logs to Weights & Biases (network); tests/core/test_tracking.py checks the "
             "records offline"),
    "dcbench status runs/tiny": Run(),
    "dcbench leaderboard show eccv-table1-imagenet --results": Run(),
    "dcbench leaderboard show eccv-table5 --results": Run(),
    "dcbench leaderboard show thesis-5.5 --results --format latex --output table.tex": Run(),
    "dcbench leaderboard compare deepcluster-alexnet random-alexnet-sobel --protocol "
    "linear-conv": Run(setup=_second_model_rows),
    "dcbench leaderboard compare tiny-sobel random-sobel": Run(setup=_tiny_rows),
    "dcbench leaderboard add results.json": Run(setup=_results_json),
    # "Is the difference real?" (tests/cli/test_paired_compare.py checks its printed table)
    "dcbench data synth --out data --kind cls --classes 4 --per-class 8 --val-per-class 25":
        Run(),
    "dcbench eval --protocol knn --model random-alexnet_small-sobel --data data/cls --layers "
    "conv3,conv5 --schedule smoke --out runs/a": Run(),
    "dcbench eval --protocol knn --model \"arch:alexnet_small?sobel=0&seed=1\" --name random-rgb "
    "--data data/cls --layers conv3,conv5 --schedule smoke --out runs/b": Run(),
    "dcbench leaderboard compare random-alexnet_small-sobel random-rgb --holm": Run(),
    "dcbench leaderboard report --run runs/tiny --output report.html": Run(),
    "dcbench viz filters --model runs/tiny/final --out filters.png": Run(),
    "dcbench viz neighbours --model runs/tiny/final --compare random-alexnet_small-sobel "
    "--data dcbench-demo/data/cls/val --out neighbours.png": Run(),
    "dcbench viz activations --model runs/tiny/final --data dcbench-demo/data/cls/val --layer "
    "conv3 --out top9.png": Run(),
    "dcbench viz gradient-ascent --model runs/tiny/final --layer conv3 --channels 0-5 --out "
    "ascent.png": Run(("--iters", "3")),
}


def readme_commands(text: str) -> list[str]:
    """The `dcbench` commands of every ```bash block, one line each, in order, deduplicated."""
    commands: list[str] = []
    for block in re.findall(r"^```bash\n(.*?)^```", text, flags=re.M | re.S):
        joined = re.sub(r"\\\n\s*", "", block)
        for line in joined.splitlines():
            line = re.sub(r"\s+#.*$", "", line).strip()
            for part in (p.strip() for p in line.split("&&")):
                words = part.split()
                if words and (words[0] == "dcbench" or "dcbench" in words[:5]
                              and words[0] == "torchrun"):
                    part = " ".join(words)
                    if part not in commands:
                        commands.append(part)
    return commands


def _swap(word: str, model: bool = False) -> str:
    """`word` with a PATHS placeholder swapped, and a MODELS name when it names a model."""
    name, eq, value = word.rpartition("=")
    if eq and name and not name.startswith("-"):  # NAME=ROOT
        return f"{name}={_swap(value)}"
    if model and word in MODELS:
        return MODELS[word]
    for placeholder, builtin in PATHS.items():
        if word == placeholder or word.startswith(placeholder + "/"):
            return builtin + word[len(placeholder):]
    return word


def argv_of(command: str, how: Run) -> list[str]:
    """The in-process argv of a README command: placeholders swapped, `torchrun -m` dropped,
    `~` expanded as a shell would."""
    words = shlex.split(command)
    words = words[words.index("dcbench") + 1:]
    compare = words[:2] == ["leaderboard", "compare"]
    out = []
    for i, word in enumerate(words):
        model = i > 0 and words[i - 1] in ("--model", "--compare") or (
            compare and i > 1 and not word.startswith("-") and words[i - 1] != "--protocol")
        out.append(os.path.expanduser(_swap(word, model)))
    return out + list(how.extra)


def test_every_readme_command_is_run_or_listed():
    commands = readme_commands(README.read_text(encoding="utf-8"))
    assert len(commands) > 40
    new = [c for c in commands if c not in COMMANDS]
    stale = [c for c in COMMANDS if c not in commands]
    assert not new, f"README commands neither run nor skipped (add them to COMMANDS): {new}"
    assert not stale, f"COMMANDS entries no longer in the README: {stale}"


def test_readme_commands_run_on_built_in_data(tmp_path, monkeypatch, capsys):
    ws = tmp_path
    monkeypatch.chdir(ws)
    monkeypatch.setenv("DCBENCH_HOME", str(ws / "home"))
    monkeypatch.setenv("HOME", str(ws / "home-user"))  # `~/deepcluster_models/...`
    make_classification_set(ws / "imagenet", n_classes=4, train_per_class=6, val_per_class=4,
                            size=32, seed=3)
    make_voc_set(ws / "voc", n_train=8, n_val=8, n_test=8, size=64, seed=5)
    write_retrieval_set(ws / "retrieval", landmarks=2, per_landmark=2, queries_per_landmark=1,
                        distractors=1, size=48)
    torch.set_num_threads(1)
    for command in readme_commands(README.read_text(encoding="utf-8")):
        how = COMMANDS[command]
        if isinstance(how, Skip):
            continue
        if how.setup is not None:
            how.setup(ws)
        argv = argv_of(command, how)
        code = main(argv)
        captured = capsys.readouterr()
        assert code == 0, (f"README command failed ({code}): {command}\n  ran: dcbench "
                           f"{shlex.join(argv)}\n{captured.err[-3000:]}")


@pytest.mark.parametrize("word, swapped", [
    ("/datasets/imagenet/train", "imagenet/train"), ("voc=/datasets/VOCdevkit", "voc=voc"),
    ("--protocol", "--protocol"), ("deepcluster-alexnet", "deepcluster-alexnet"),
    ("runs/digits", "runs/tiny"), ("clustering_backend=torch", "clustering_backend=torch"),
])
def test_placeholders_are_swapped_whole(word, swapped):
    assert _swap(word) == swapped


def test_models_are_swapped_only_where_a_model_is_named():
    argv = argv_of("dcbench train --recipe deepcluster-alexnet --out runs/digits", Run())
    assert argv == ["train", "--recipe", "deepcluster-alexnet", "--out", "runs/tiny"]
    argv = argv_of("dcbench leaderboard compare tiny-sobel deepcluster-alexnet --protocol knn",
                   Run())
    assert argv == ["leaderboard", "compare", "tiny", "random-alexnet_small-sobel",
                    "--protocol", "knn"]
