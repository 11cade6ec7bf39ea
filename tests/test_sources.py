"""nlmr.sources: directories, Hugging Face cache snapshots, Hub ids (offline, from a cache)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from nlmr.errors import NotFoundError
from nlmr.sources import SourceError, open_source

COMMIT = "c9bdb84" + "0" * 33


def make_hf_cache(model: Path, cache: Path, repo: str = "acme/tiny", commit: str = COMMIT) -> Path:
    """A hub cache laid out as huggingface_hub writes it: blobs named by sha256 (LFS files)
    or git sha1, snapshot files as relative links into blobs, refs/main = commit."""
    org, name = repo.split("/")
    root = cache / f"models--{org}--{name}"
    snap = root / "snapshots" / commit
    (root / "blobs").mkdir(parents=True)
    snap.mkdir(parents=True)
    for f in sorted(model.iterdir()):
        data = f.read_bytes()
        lfs = f.name.endswith(".safetensors")
        blob = (
            hashlib.sha256(data).hexdigest()
            if lfs
            else hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
        )
        (root / "blobs" / blob).write_bytes(data)
        os.symlink(f"../../blobs/{blob}", snap / f.name)
    (root / "refs").mkdir()
    (root / "refs" / "main").write_text(commit)
    return snap


def test_plain_directory(tiny_model: tuple[Path, Path]) -> None:
    model, _ = tiny_model
    tree = open_source(str(model))
    assert [f.relpath for f in tree.files] == sorted(p.name for p in model.iterdir())
    assert tree.upstream_commit is None
    lfs = {f.relpath: f.lfs for f in tree.files}
    assert lfs["model.safetensors"] and not lfs["config.json"]


def test_skips_vcs_and_hf_local_dir_state(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "HEAD").write_text("x")
    (tmp_path / ".cache" / "huggingface").mkdir(parents=True)
    (tmp_path / ".cache" / "huggingface" / "x.metadata").write_text("x")
    (tmp_path / "data.jsonl").write_text("{}\n")
    (tmp_path / ".gitattributes").write_text("*.jsonl filter=lfs diff=lfs merge=lfs -text\n")
    tree = open_source(str(tmp_path))
    assert {f.relpath: f.lfs for f in tree.files} == {".gitattributes": False, "data.jsonl": True}


def test_cache_snapshot_and_repo_dir(tmp_path: Path, tiny_model: tuple[Path, Path]) -> None:
    snap = make_hf_cache(tiny_model[0], tmp_path / "hub")
    for source, revision in (
        (snap, None),
        (snap.parent.parent, "main"),
        (snap.parent.parent, COMMIT),
    ):
        tree = open_source(str(source), revision=revision)
        assert (tree.upstream_repo, tree.upstream_commit, tree.refs) == (
            "acme/tiny",
            COMMIT,
            ("main",),
        )
        assert tree.kind == "model"
        assert {f.relpath: f.lfs for f in tree.files}["model.safetensors"] is True
        assert all(f.path.parent.name == "blobs" for f in tree.files)  # links resolved
    with pytest.raises(NotFoundError, match="no snapshot for revision 'v9'"):
        open_source(str(snap.parent.parent), revision="v9")


HUB_SCRIPT = """
import json
from nlmr.errors import NotFoundError
from nlmr.sources import open_source
tree = open_source("acme/tiny")
try:
    open_source("acme/absent")
    absent = "found?!"
except NotFoundError as exc:
    absent = exc.message
print(json.dumps([tree.upstream_repo, tree.upstream_commit, absent]))
"""


def test_hub_id_resolves_through_huggingface_hub_offline(
    tmp_path: Path, tiny_model: tuple[Path, Path]
) -> None:
    # huggingface_hub reads HF_HUB_CACHE/HF_HUB_OFFLINE when imported: use a fresh process
    make_hf_cache(tiny_model[0], tmp_path / "hub")
    env = {**os.environ, "HF_HUB_CACHE": str(tmp_path / "hub"), "HF_HUB_OFFLINE": "1"}
    out = subprocess.run(
        [sys.executable, "-c", HUB_SCRIPT], env=env, capture_output=True, text=True, check=True
    ).stdout
    repo, commit, absent = json.loads(out)
    assert (repo, commit) == ("acme/tiny", COMMIT)
    assert "not in the local Hugging Face cache" in absent


def test_bad_sources(tmp_path: Path) -> None:
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(SourceError, match="not a directory"):
        open_source(str(tmp_path / "file.txt"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(SourceError, match="no files to add"):
        open_source(str(tmp_path / "empty"))
    with pytest.raises(SourceError, match="no such directory"):
        open_source(str(tmp_path / "missing" / "x"))


def test_links(tmp_path: Path) -> None:
    outside = tmp_path / "secret.txt"
    outside.write_text("s")
    src = tmp_path / "src"
    (src / "real").mkdir(parents=True)
    (src / "real" / "a.txt").write_text("a")
    os.symlink(outside, src / "linked.txt")
    tree = open_source(str(src))
    assert [f.relpath for f in tree.files] == ["linked.txt", "real/a.txt"]
    assert tree.warnings and "linked.txt links outside the source" in tree.warnings[0]
    os.symlink(src / "real", src / "again")
    with pytest.raises(SourceError, match="again is a link to a directory"):
        open_source(str(src))
    (src / "again").unlink()
    os.symlink(tmp_path / "gone", src / "broken.txt")
    with pytest.raises(SourceError, match=r"broken\.txt is a broken link"):
        open_source(str(src))
