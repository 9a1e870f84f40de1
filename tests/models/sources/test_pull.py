"""`hub pull` against local fixtures: a direct-URL release (file://) and a Hugging Face cache."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest

import dcbench
from dcbench.cli.entry import main
from dcbench.core.errors import UserError
from dcbench.models import create_backbone
from dcbench.models.checkpoints import save_hub_dir
from dcbench.models.sources import catalog
from dcbench.models.sources.pull import cached_dir, pull
from tests.models.test_official_layout import official_alexnet_state_dict, save_official


@pytest.fixture
def release(tmp_path, monkeypatch):
    """A fake official release served from a file:// URL, registered as a catalog entry."""
    src = tmp_path / "server" / "alexnet" / "checkpoint.pth.tar"
    src.parent.mkdir(parents=True)
    save_official(src, official_alexnet_state_dict(k=10))
    sha = hashlib.sha256(src.read_bytes()).hexdigest()
    entry = catalog.CatalogEntry(name="fixture-alexnet", arch="alexnet", sobel=True,
                                 source="url", description="fixture", url=src.as_uri(),
                                 sha256=sha)
    monkeypatch.setitem(catalog.CATALOG._items, entry.name, entry)
    return entry


def test_pull_downloads_verifies_converts_and_caches(release, monkeypatch, capsys):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    assert main(["hub", "pull", release.name]) == 0
    folder = cached_dir(release.name)
    assert (folder / "model.safetensors").is_file() and (folder / "README.md").is_file()
    model = dcbench.load_model(release.name)
    assert model.config["num_classes"] == 10
    # second pull is served from the cache, even offline
    monkeypatch.setenv("DCBENCH_OFFLINE", "1")
    assert pull(release.name) == folder


def test_hash_mismatch_is_refused_and_the_file_removed(release, monkeypatch, capsys):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    bad = catalog.CatalogEntry(**{**release.as_dict(), "sha256": "0" * 64})
    monkeypatch.setitem(catalog.CATALOG._items, release.name, bad)
    assert main(["hub", "pull", release.name]) == 2
    assert "sha256 mismatch" in capsys.readouterr().err
    downloads = cached_dir(release.name).parent / "downloads" / release.name
    assert not any(downloads.glob("*.pth.tar")) if downloads.exists() else True
    assert not cached_dir(release.name).exists()


def test_offline_without_cache_says_so(release, monkeypatch):
    monkeypatch.setenv("DCBENCH_OFFLINE", "1")
    with pytest.raises(UserError, match="not cached.*offline"):
        pull(release.name)


def test_unreachable_url_is_a_clear_error(release, monkeypatch, tmp_path):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    gone = catalog.CatalogEntry(**{**release.as_dict(),
                                   "url": (tmp_path / "nope.pth.tar").as_uri()})
    monkeypatch.setitem(catalog.CATALOG._items, release.name, gone)
    with pytest.raises(UserError, match="cannot download"):
        pull(release.name)


def test_unpublished_thesis_models_say_so(capsys):
    assert main(["hub", "pull", "km-fl1m-sob"]) == 2
    assert "no weights published" in capsys.readouterr().err
    assert main(["hub", "list"]) == 0
    listing = capsys.readouterr().out
    for name in ("deepcluster-alexnet", "deepcluster-vgg16", "pic-imnet-sob", "km-imnet-sob",
                 "km-imnet-rgb", "km-fl1m-sob", "km-fl2m-sob", "random-alexnet-sobel"):
        assert name in listing
    assert "official download" in listing and "none published; recipe km-fl1m-sob" in listing
    assert max(len(line) for line in listing.splitlines()) <= 120
    assert main(["hub", "list", "--wide"]) == 0  # the full source, URL included
    assert "https://dl.fbaipublicfiles.com/deepcluster/alexnet/checkpoint.pth.tar" in \
        capsys.readouterr().out


def make_hf_cache(cache, repo: str, folder, commit: str, ref: str = "main") -> None:
    """The Hugging Face cache layout: blobs/, refs/<ref>, snapshots/<commit>/<file>."""
    base = cache / f"models--{repo.replace('/', '--')}"
    snap = base / "snapshots" / commit
    snap.mkdir(parents=True)
    (base / "blobs").mkdir(parents=True, exist_ok=True)
    for path in folder.iterdir():
        blob = base / "blobs" / hashlib.sha256(path.read_bytes()).hexdigest()
        shutil.copyfile(path, blob)
        (snap / path.name).symlink_to(blob)
    (base / "refs").mkdir(exist_ok=True)
    (base / "refs" / ref).write_text(commit)


@pytest.fixture
def hf_cache(tmp_path, monkeypatch):
    from huggingface_hub import constants

    cache = tmp_path / "hf"
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    return cache


def test_hf_hub_spec_loads_from_the_cache_offline_with_pinned_revisions(hf_cache, tmp_path):
    old = create_backbone({"arch": "alexnet_small", "sobel": True}, seed=1)
    new = create_backbone({"arch": "alexnet_small", "sobel": True}, seed=2)
    for i, model in enumerate((old, new)):
        save_hub_dir(model, tmp_path / f"v{i}", card="---\nlibrary_name: dcbench\n---\n")
    sha_old, sha_new = "a" * 40, "b" * 40
    make_hf_cache(hf_cache, "org/dc-tiny", tmp_path / "v0", sha_old, ref="v1.0")
    make_hf_cache(hf_cache, "org/dc-tiny", tmp_path / "v1", sha_new, ref="main")
    assert dcbench.load_model("hf-hub:org/dc-tiny").weights_sha256() == new.weights_sha256()
    pinned = dcbench.load_model(f"hf-hub:org/dc-tiny@{sha_old}")
    assert pinned.weights_sha256() == old.weights_sha256()
    tagged = dcbench.load_model("hf-hub:org/dc-tiny@v1.0")
    assert tagged.weights_sha256() == old.weights_sha256()


def test_hf_hub_missing_offline_is_a_clear_error(hf_cache):
    with pytest.raises(UserError, match="not in the Hugging Face cache"):
        dcbench.load_model("hf-hub:org/absent")


def test_push_then_pull_round_trip(hf_cache, tmp_path, monkeypatch, capsys):
    """push uploads a complete hub folder (fake HfApi writes the cache), pull loads it back."""
    from huggingface_hub import HfApi

    calls = {}

    def fake_create_repo(self, repo_id, **kwargs):
        calls["create"] = repo_id

    def fake_upload_folder(self, *, repo_id, folder_path, **kwargs):
        from pathlib import Path

        calls["files"] = sorted(p.name for p in Path(folder_path).iterdir())
        make_hf_cache(hf_cache, repo_id, Path(folder_path), "c" * 40)
        return None

    monkeypatch.setattr(HfApi, "create_repo", fake_create_repo)
    monkeypatch.setattr(HfApi, "upload_folder", fake_upload_folder)
    monkeypatch.setattr("dcbench.models.sources.hf.network_ok", lambda *a, **k: True)
    model = create_backbone({"arch": "alexnet_small", "sobel": True, "num_classes": 4}, seed=5)
    save_hub_dir(model, tmp_path / "run" / "final")
    assert main(["hub", "push", str(tmp_path / "run"), "--repo", "org/pushed",
                 "--store", str(tmp_path / "results.sqlite")]) == 0
    assert calls["create"] == "org/pushed"
    assert calls["files"] == ["README.md", "config.json", "model.safetensors"]
    pulled = dcbench.load_model("hf-hub:org/pushed")
    assert pulled.weights_sha256() == model.weights_sha256()


def test_a_hand_copied_release_file_is_used(release, monkeypatch, tmp_path):
    """The offline/unreachable message says where to copy the file; the copy is then used."""
    gone = catalog.CatalogEntry(**{**release.as_dict(),
                                   "url": "https://unreachable.invalid/alexnet/checkpoint.pth.tar"})
    monkeypatch.setitem(catalog.CATALOG._items, release.name, gone)
    monkeypatch.setenv("DCBENCH_OFFLINE", "1")
    with pytest.raises(UserError, match="copy the release file to") as err:
        pull(release.name)
    target = str(err.value).rsplit("copy the release file to ", 1)[1].split(" to convert")[0]
    Path(target).parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(release.url.removeprefix("file://"), target)
    folder = pull(release.name)
    assert dcbench.load_model(str(folder)).config["num_classes"] == 10


def test_a_wrong_hand_copied_file_is_refused_and_kept(release, monkeypatch):
    from dcbench.models.sources.pull import raw_path

    raw = raw_path(release)
    raw.parent.mkdir(parents=True)
    raw.write_bytes(b"not the release")
    monkeypatch.setenv("DCBENCH_OFFLINE", "1")
    with pytest.raises(UserError, match="expected"):
        pull(release.name)
    assert raw.read_bytes() == b"not the release"


@pytest.mark.parametrize("text", ["{", "[1]", '{"sha256": 5}', '{"sha256": "../x"}'])
def test_a_corrupt_download_record_is_one_line(monkeypatch, tmp_path, text):
    from dcbench.models.sources.pull import raw_path

    no_pin = catalog.CatalogEntry(name="fixture-nopin", arch="alexnet", sobel=True,
                                  source="url", description="fixture",
                                  url=(tmp_path / "checkpoint.pth.tar").as_uri())
    monkeypatch.setitem(catalog.CATALOG._items, no_pin.name, no_pin)
    record = raw_path(no_pin).parent / "download.json"
    record.parent.mkdir(parents=True)
    record.write_text(text)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    with pytest.raises(UserError, match="download.json is corrupt"):
        pull(no_pin.name)


@pytest.mark.parametrize("revision", ["../../../../tmp/x", "..", "a/../b", "/abs", "main/",
                                      ".hidden", "x.lock", "a b", "-rf", "a//b", "ü"])
def test_hf_revisions_that_are_not_refs_are_refused(hf_cache, tmp_path, revision):
    from dcbench.models.sources.hf import pull_hf

    outside = tmp_path / "x"
    outside.mkdir()
    save_hub_dir(create_backbone({"arch": "alexnet_small"}, seed=0), outside)
    with pytest.raises(UserError, match="invalid Hugging Face revision"):
        pull_hf("org/good", revision)
    with pytest.raises(UserError, match="invalid Hugging Face revision"):
        dcbench.load_model(f"hf-hub:org/good@{revision}")


@pytest.mark.parametrize("revision", ["main", "v1.0", "refs/pr/1", "release_2", "a" * 40])
def test_hf_branch_tag_and_commit_revisions_are_accepted(revision):
    from dcbench.models.sources.hf import check_revision, parse_hf_spec

    assert check_revision(revision) == revision
    assert parse_hf_spec(f"org/name@{revision}") == ("org/name", revision)


def test_hf_folder_outside_the_cache_is_refused(hf_cache, tmp_path, monkeypatch):
    import huggingface_hub

    from dcbench.models.sources.hf import pull_hf

    outside = tmp_path / "elsewhere"
    save_hub_dir(create_backbone({"arch": "alexnet_small"}, seed=0), outside)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", lambda *a, **k: str(outside))
    with pytest.raises(UserError, match="outside the Hugging Face cache"):
        pull_hf("org/good", "main")
