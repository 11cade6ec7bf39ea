"""nlmr pull, info, ls and the Python API against a local store and a synced mirror.
(Real S3, public buckets over HTTP, a server killed mid-pull, transformers: test_pull_e2e.py.)"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import World

import nlmr
from nlmr.config import settings
from nlmr.errors import ConfigError, NotFoundError, PullError, UsageError
from nlmr.layout import lfs_pointer_sha1
from nlmr.puller import pull
from nlmr.resolver import Resolver
from nlmr.store.local import LocalStore
from nlmr.storecatalogue import CATALOGUE_KEY, build_catalogue, upload_catalogue

ST = b"\x08\x00\x00\x00\x00\x00\x00\x00{}      "  # an empty safetensors header
V1 = {
    "config.json": b'{"model_type": "bert"}',
    "model.safetensors": ST + b"w" * 300_000,
    "tokenizer.json": b'{"version": "1.0"}',
    "sub/extra.txt": b"nested file",
}
V2 = {**V1, "model.safetensors": ST + b"v" * 300_000}


class Store:
    """A world whose store serves its catalogue: what a login node sees."""

    def __init__(self, tmp: Path) -> None:
        self.w = World(tmp)
        self.v1 = self.w.add("acme/tiny", V1, revision="v1")
        self.v2 = self.w.add("acme/tiny", V2, revision="v2", make_default=True)
        self.corpus = self.w.add(
            "acme/corpus", {"nb/train.jsonl": b'{"text": "hei"}\n'}, kind="dataset"
        )
        self.publish()
        self.cache = tmp / "hf-cache"

    def publish(self) -> None:
        cat, problems = build_catalogue(self.w.reg, remote_url=str(self.w.store))
        assert not problems
        upload_catalogue(LocalStore(self.w.store), cat)

    def settings(self, **kw: Any) -> Any:
        return settings(remote=str(self.w.store), **kw)

    def pull(self, ref: str, **kw: Any) -> Any:
        kw.setdefault("settings", self.settings())
        kw.setdefault("progress", False)
        return pull(ref, **kw)

    def object_path(self, data: bytes) -> Path:
        import hashlib

        md5 = hashlib.md5(data).hexdigest()
        return self.w.store / "files/md5" / md5[:2] / md5[2:]


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path)


def _tree(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.name.startswith(".nlmr")
    }


def test_pull_to_a_plain_directory_then_again_does_nothing(store: Store, tmp_path: Path) -> None:
    dest = tmp_path / "out"
    report = store.pull("acme/tiny", to=dest)
    assert report.ok and report.revision == "v2" and report.layout == "plain"
    assert report.fetched == 4 and report.how == {"download": 4}
    assert report.source == f"store {store.w.store}"
    assert _tree(dest) == V2
    assert not [p for p in dest.rglob("*.partial")]
    record = json.loads((dest / ".nlmr-provenance.json").read_text())
    assert record["revision_id"] == store.v2.revision_id and len(record["stat"]) == 4

    again = store.pull("acme/tiny", to=dest)
    assert again.complete and again.present == 4 and again.fetched == 0

    # a file the user changed is neither trusted nor overwritten, unless --force
    (dest / "config.json").write_bytes(b'{"model_type": "gpt2"}')
    changed = store.pull("acme/tiny", to=dest)
    assert [f for f, _ in changed.failed] == ["config.json"]
    assert "--force" in changed.failed[0][1]
    assert (dest / "config.json").read_bytes() == b'{"model_type": "gpt2"}'
    forced = store.pull("acme/tiny", to=dest, force=True)
    assert forced.ok and forced.fetched == 1 and _tree(dest) == V2


def test_revision_by_name_or_commit_and_helpful_not_found(store: Store, tmp_path: Path) -> None:
    by_name = store.pull("acme/tiny@v1", to=tmp_path / "a")
    by_commit = store.pull("acme/tiny", revision=store.v1.revision_id, to=tmp_path / "b")
    assert by_name.revision == by_commit.revision == "v1"
    assert _tree(tmp_path / "a") == _tree(tmp_path / "b") == V1
    with pytest.raises(NotFoundError, match="no revision 'v9'") as info:
        store.pull("acme/tiny@v9", to=tmp_path / "c")
    assert info.value.hint == "revisions: v1, v2"
    with pytest.raises(NotFoundError, match="acme/tiney: not found") as info:
        store.pull("acme/tiney", to=tmp_path / "c")
    assert "did you mean acme/tiny" in (info.value.hint or "")
    with pytest.raises(UsageError, match="not an entry reference"):
        store.pull("tiny", to=tmp_path / "c")
    assert not (tmp_path / "c").exists()


def test_pull_into_the_hf_cache_is_what_huggingface_hub_reads_offline(
    store: Store, tmp_path: Path
) -> None:
    report = store.pull("acme/tiny", hf_cache=store.cache)
    repo = store.cache / "models--acme--tiny"
    rev = store.v2.revision_id
    assert report.layout == "hub" and report.path == str(repo / "snapshots" / rev)
    assert (repo / "refs/main").read_bytes() == rev.encode()
    assert (repo / "refs/v2").read_bytes() == rev.encode()
    snap = repo / "snapshots" / rev
    assert os.readlink(snap / "sub/extra.txt") == "../../../blobs/" + os.path.basename(
        os.readlink(snap / "sub/extra.txt")
    )
    assert _tree(snap) == V2
    tree = json.loads((repo / "trees" / f"{rev}.json").read_text())
    assert sorted(tree["files"]) == sorted(V2)
    st = tree["files"]["model.safetensors"]
    assert st["blob_id"] == lfs_pointer_sha1(st["lfs_sha256"], st["lfs_size"])

    # huggingface_hub itself, offline, finds every revision spelling
    script = (
        "import sys; from huggingface_hub import hf_hub_download, snapshot_download\n"
        "for rev in (None, 'main', 'v2', sys.argv[1]):\n"
        "    d = snapshot_download('acme/tiny', revision=rev)\n"
        "    assert open(hf_hub_download('acme/tiny', 'sub/extra.txt', revision=rev),'rb')"
        ".read() == b'nested file'\n"
        "print(d)\n"
    )
    env = {**os.environ, "HF_HUB_CACHE": str(store.cache), "HF_HUB_OFFLINE": "1"}
    out = subprocess.run(
        [sys.executable, "-c", script, rev], env=env, capture_output=True, text=True, check=False
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == str(snap)

    # a second revision shares nothing it need not; the first stays intact
    v1 = store.pull("acme/tiny@v1", hf_cache=store.cache)
    assert v1.fetched == 1  # only the weights differ: the other blobs are already there
    assert v1.present == 3
    assert (repo / "refs/main").read_bytes() == rev.encode()  # v1 is not the default
    assert _tree(repo / "snapshots" / store.v1.revision_id) == V1


def test_include_exclude_and_a_growing_snapshot(store: Store) -> None:
    only = store.pull("acme/tiny", hf_cache=store.cache, include=["*.json"])
    assert only.files == 2
    rev = store.v2.revision_id
    repo = store.cache / "models--acme--tiny"
    # the tree file lists the whole revision, as huggingface_hub writes it for a download
    # with allow_patterns: offline, snapshot_download then says the snapshot is incomplete
    # (rather than returning part of it); online it would fetch the rest
    tree = repo / "trees" / f"{rev}.json"
    assert sorted(json.loads(tree.read_text())["files"]) == sorted(V2)
    assert sorted(_tree(repo / "snapshots" / rev)) == ["config.json", "tokenizer.json"]
    script = (
        "from huggingface_hub import hf_hub_download, snapshot_download\n"
        "print(open(hf_hub_download('acme/tiny', 'config.json'), 'rb').read().decode())\n"
        "try:\n    snapshot_download('acme/tiny')\nexcept Exception as e:\n"
        "    print(type(e).__name__)\n"
    )
    env = {**os.environ, "HF_HUB_CACHE": str(store.cache), "HF_HUB_OFFLINE": "1"}
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == [V2["config.json"].decode(), "IncompleteSnapshotError"]
    more = store.pull("acme/tiny", hf_cache=store.cache, exclude=["sub/*"])
    assert more.fetched == 1 and more.present == 2
    assert sorted(_tree(repo / "snapshots" / rev)) == sorted(set(V2) - {"sub/extra.txt"})
    with pytest.raises(UsageError, match="no file matches") as info:
        store.pull("acme/tiny", hf_cache=store.cache, include=["*.bin"])
    assert "config.json" in (info.value.hint or "")


def test_corrupt_and_missing_objects_name_the_file_and_keep_the_rest(
    store: Store, tmp_path: Path
) -> None:
    weights = store.object_path(V2["model.safetensors"])
    good = weights.read_bytes()
    os.chmod(weights, 0o644)
    weights.write_bytes(good[:-1] + b"X")
    store.object_path(V2["tokenizer.json"]).unlink()
    dest = tmp_path / "out"
    report = store.pull("acme/tiny", to=dest)
    failed = dict(report.failed)
    assert sorted(failed) == ["model.safetensors", "tokenizer.json"]
    assert "sha256 mismatch" in failed["model.safetensors"]
    assert "no such object" in failed["tokenizer.json"]
    assert sorted(_tree(dest)) == ["config.json", "sub/extra.txt"]  # the rest is in place
    assert not (dest / "model.safetensors").exists()  # nothing unverified appears

    weights.write_bytes(good)  # the store is repaired
    LocalStore(store.w.store).put_bytes(
        str(store.object_path(V2["tokenizer.json"]).relative_to(store.w.store)),
        V2["tokenizer.json"],
    )
    again = store.pull("acme/tiny", to=dest)
    assert again.ok and again.fetched == 2 and again.present == 2 and _tree(dest) == V2


def test_an_interrupted_pull_resumes_from_its_partial_file(store: Store, tmp_path: Path) -> None:
    from nlmr.transfer import Fetch, partial_path

    dest = tmp_path / "out"
    data = V2["model.safetensors"]
    cat = Resolver(store.settings()).locate("acme/tiny").revision
    f = next(f for f in cat.files if f.path == "model.safetensors")
    part = partial_path(Fetch("", f.size, f.sha256, dest / f.path, ""))
    part.parent.mkdir(parents=True)
    part.write_bytes(data[:200_000])  # what a killed pull leaves
    report = store.pull("acme/tiny", to=dest, include=["model.safetensors"])
    assert report.ok and (dest / "model.safetensors").read_bytes() == data
    assert not part.exists()
    # the kill-and-rerun version against a real S3 server: test_pull_e2e.py


def test_dry_run_and_json(store: Store, tmp_path: Path, run_cli: Any) -> None:
    dest = tmp_path / "out"
    dry = store.pull("acme/tiny", to=dest, dry_run=True)
    assert dry.fetched == 4 and dry.fetched_bytes == sum(len(v) for v in V2.values())
    assert not dest.exists()
    env = {"NLMR_REMOTE": str(store.w.store)}
    code, out, err = run_cli("pull", "acme/tiny@v1", "--to", str(dest), "--json", env=env)
    assert code == 0, err
    data = json.loads(out)
    assert data["ok"] and data["revision"] == "v1" and data["fetched"] == 4
    code, out, err = run_cli("pull", "acme/tiny@v1", "--to", str(dest), env=env)
    assert code == 0 and "already complete" in err and out.strip() == str(dest)
    code, out, err = run_cli("pull", "acme/tiny@v1", "--to", str(dest), "-q", env=env)
    assert code == 0 and err == ""
    code, out, err = run_cli("pull", "acme/nothing", "--to", str(dest), env=env)
    assert code == 1 and "acme/nothing: not found" in err and "Traceback" not in err
    code, out, err = run_cli(
        "pull", "acme/tiny", "--to", str(tmp_path / "x"), "--hf-cache", env=env
    )
    assert code == 2 and "not both" in err


def test_failed_files_exit_1_naming_each(store: Store, tmp_path: Path, run_cli: Any) -> None:
    store.object_path(V2["tokenizer.json"]).unlink()
    env = {"NLMR_REMOTE": str(store.w.store)}
    code, _, err = run_cli("pull", "acme/tiny", "--to", str(tmp_path / "o"), env=env)
    assert code == 1
    assert "acme/tiny@v2: tokenizer.json:" in err and "no such object" in err
    assert err.count("tokenizer.json") == 1  # named once, not once per layer
    assert "rerun the same command to resume" in err and "Traceback" not in err


@pytest.fixture
def mirrored(store: Store) -> Store:
    report = store.w.sync(store.w.target())
    assert report.ok
    return store


@pytest.mark.parametrize("mode", ["auto", "copy", "hardlink"])
def test_pull_from_a_mirror_verifies_every_file(mirrored: Store, tmp_path: Path, mode: str) -> None:
    s = settings(mirrors=[mirrored.w.root])  # no store at all: the mirror suffices
    dest = tmp_path / "out"
    report = pull("acme/tiny", to=dest, settings=s, mode=mode, progress=False)  # type: ignore[arg-type]
    assert report.ok and report.source == f"mirror {mirrored.w.root}"
    assert _tree(dest) == V2
    src = mirrored.w.root / "models/acme/tiny@v2/model.safetensors"
    same_inode = os.stat(dest / "model.safetensors").st_ino == os.stat(src).st_ino
    assert same_inode == (mode == "hardlink")
    assert sum(report.how.values()) == 4
    if mode == "hardlink":
        assert report.how == {"hardlink": 4}


def test_a_corrupt_mirror_file_is_refused(mirrored: Store, tmp_path: Path) -> None:
    blob = mirrored.w.root / "models/acme/tiny@v2/sub/extra.txt"
    os.chmod(blob.parent, 0o755)
    os.chmod(blob, 0o644)
    blob.write_bytes(b"nested fil!")
    s = settings(mirrors=[mirrored.w.root])
    report = pull("acme/tiny", to=tmp_path / "o", settings=s, mode="copy", progress=False)
    assert [f for f, _ in report.failed] == ["sub/extra.txt"]
    assert "sha256" in report.failed[0][1]
    assert not (tmp_path / "o/sub/extra.txt").exists()


def test_link_resolve_and_the_mirror_before_the_store(mirrored: Store, tmp_path: Path) -> None:
    root = mirrored.w.root
    s = mirrored.settings(mirrors=[root])
    linked = pull("acme/tiny", link=True, settings=s)
    assert linked.layout == "link" and linked.path == str(root / "models/acme/tiny")
    pinned = pull("acme/tiny@v2", link=True, settings=s)
    assert pinned.path == str(root / "models/acme/tiny@v2")
    # v1 is not on the mirror (it holds default revisions): the store has it
    assert pull("acme/tiny@v1", to=tmp_path / "v1", settings=s).source.startswith("store")
    with pytest.raises(NotFoundError, match="on no configured mirror"):
        pull("acme/tiny@v1", link=True, settings=s)

    assert nlmr.resolve("acme/tiny", mirrors=[root]) == root / "models/acme/tiny"
    # a pinned revision stays pinned when the mirror's default moves on
    assert nlmr.resolve("acme/tiny@v2", mirrors=[root]) == root / "models/acme/tiny@v2"
    assert nlmr.resolve("acme/tiny", "v2", mirrors=[root]) == root / "models/acme/tiny@v2"
    assert nlmr.resolve("acme/corpus", mirrors=[root]) == root / "datasets/acme/corpus"
    with pytest.raises(NotFoundError) as info:
        nlmr.resolve("acme/tiny@v1", mirrors=[root])
    assert "nlmr pull acme/tiny" in (info.value.hint or "")


def test_python_api_reads_the_environment(
    mirrored: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NLMR_MIRROR_ROOT", str(mirrored.w.root))  # what the mirror module sets
    assert nlmr.resolve("acme/tiny") == mirrored.w.root / "models/acme/tiny"
    monkeypatch.delenv("NLMR_MIRROR_ROOT")
    monkeypatch.setenv("NLMR_REMOTE", str(mirrored.w.store))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "cache"))
    path = nlmr.pull("acme/tiny@v1")
    assert path == tmp_path / "cache/models--acme--tiny/snapshots" / mirrored.v1.revision_id
    assert (path / "config.json").read_bytes() == V1["config.json"]
    mirrored.object_path(V2["model.safetensors"]).unlink()
    with pytest.raises(PullError, match=r"model\.safetensors") as info:
        nlmr.pull("acme/tiny")  # v2: only its weights are not in the cache already
    assert [f for f, _ in info.value.failures] == ["model.safetensors"]


def test_config_file(store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "config.yaml"
    monkeypatch.setenv("NLMR_CONFIG", str(cfg))
    cfg.write_text(f"remote: {store.w.store}\njobs: 3\n")
    s = settings()
    assert s.remote == str(store.w.store) and s.jobs == 3 and s.origin == cfg
    assert pull("acme/tiny", to=tmp_path / "o", progress=False).ok
    monkeypatch.setenv("NLMR_JOBS", "5")
    assert settings().jobs == 5  # the environment wins over the file
    cfg.write_text(f"remote: {store.w.store}\nmirror: /x\n")
    with pytest.raises(ConfigError, match=r"config.yaml:2: unknown setting 'mirror'") as info:
        settings()
    assert "mirrors" in (info.value.hint or "")
    cfg.write_text("jobs: many\n")
    with pytest.raises(ConfigError, match=r"config\.yaml:1: jobs must be a positive integer"):
        settings()


def test_catalogue_from_a_url_implies_the_store(store: Store, tmp_path: Path) -> None:
    url = f"{store.w.store}/{CATALOGUE_KEY}"
    report = pull("acme/tiny", to=tmp_path / "o", settings=settings(catalogue=url), progress=False)
    assert report.ok and report.source == f"store {store.w.store}"
    # a catalogue file elsewhere, with the store named separately
    copy = tmp_path / "cat.json"
    copy.write_bytes(Path(url).read_bytes())
    s = settings(catalogue=str(copy), remote=str(store.w.store))
    assert pull("acme/tiny@v1", to=tmp_path / "p", settings=s, progress=False).ok
    with pytest.raises(NotFoundError, match="no mirror or catalogue is configured"):
        pull("acme/tiny", to=tmp_path / "q", settings=settings(), progress=False)


def test_ls_and_info(mirrored: Store, tmp_path: Path, run_cli: Any) -> None:
    targets = tmp_path / "sync"
    targets.mkdir()
    (targets / "saga.yaml").write_text(
        "schema_version: 1\nname: saga\nroot: /cluster/shared/nlmr\ndescription: Saga\n"
        "select:\n  ids: ['acme/*']\n"
    )
    cat, problems = build_catalogue(
        mirrored.w.reg, remote_url=str(mirrored.w.store), targets_dir=targets
    )
    assert not problems and cat.mirrors[0]["name"] == "saga"
    upload_catalogue(LocalStore(mirrored.w.store), cat)
    env = {"NLMR_REMOTE": str(mirrored.w.store), "NLMR_MIRRORS": str(mirrored.w.root)}

    code, out, err = run_cli("ls", env=env)
    assert code == 0, err
    assert "acme/tiny" in out and "acme/corpus" in out and f"mirror {mirrored.w.root}" in out
    code, out, err = run_cli("ls", "*corp*", "--json", env=env)
    rows = json.loads(out)["entries"]
    assert [r["id"] for r in rows] == ["acme/corpus"] and rows[0]["type"] == "dataset"

    code, out, err = run_cli("info", "acme/tiny", env=env)
    assert code == 0, err
    assert "license: Apache-2.0" in out and "v1" in out and "v2" in out and "(default)" in out
    assert "model.safetensors" in out
    root = mirrored.w.root
    assert f'transformers.AutoModel.from_pretrained("{root}/models/acme/tiny")' in out
    assert f"export HF_HUB_CACHE={root}/hub HF_HUB_OFFLINE=1\n" in out
    assert 'from_pretrained("/cluster/shared/nlmr/models/acme/tiny")' in out  # saga, remote
    assert "nlmr pull acme/tiny" in out
    code, out, err = run_cli("info", "acme/tiny@v1", "--json", env=env)
    data = json.loads(out)
    assert data["revision"]["name"] == "v1"
    lines = [x["line"] for x in data["load"]]
    assert "nlmr pull acme/tiny@v1" in lines  # v1 is on no mirror: only pull lines
    assert not any("/cluster/shared" in line for line in lines)
    code, out, err = run_cli("info", "acme/corpus", env=env)
    assert f'datasets.load_dataset("{root}/datasets/acme/corpus")' in out


def test_catalogue_command(store: Store, tmp_path: Path, run_cli: Any) -> None:
    out_file = tmp_path / "cat.json"
    code, _, err = run_cli("catalogue", "--registry", str(store.w.reg), "-o", str(out_file))
    assert code == 0 and "2 entries, 3 revisions" in err
    from nlmr.schemas import check

    assert check("catalogue", json.loads(out_file.read_text())) == []
    code, _, err = run_cli("catalogue", "--registry", str(store.w.reg), "--upload")
    assert code == 0 and CATALOGUE_KEY in err


def test_two_pulls_into_one_place_take_turns(store: Store, tmp_path: Path) -> None:
    import threading

    events: list[str] = []
    results: list[Any] = []

    def one() -> None:
        results.append(store.pull("acme/tiny", hf_cache=store.cache, on_event=events.append))

    threads = [threading.Thread(target=one) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(results) == 3 and all(r.ok for r in results)
    assert sum(r.fetched for r in results) == 4  # each blob fetched once, by whoever was first
    snap = Path(results[0].path)
    assert _tree(snap) == V2
    assert not list(store.cache.rglob("*.partial"))


def test_another_revision_into_the_same_directory_replaces_only_nlmr_files(
    store: Store, tmp_path: Path
) -> None:
    dest = tmp_path / "out"
    assert store.pull("acme/tiny@v1", to=dest).ok
    assert store.pull("acme/tiny@v2", to=dest, dry_run=True).fetched == 1
    moved = store.pull("acme/tiny@v2", to=dest)  # only the weights differ, and nlmr wrote them
    assert moved.ok and moved.fetched == 1 and moved.present == 3 and _tree(dest) == V2
    record = json.loads((dest / ".nlmr-provenance.json").read_text())
    assert record["revision"] == "v2"
    (dest / "model.safetensors").write_bytes(b"my own fine-tuned weights")
    back = store.pull("acme/tiny@v1", to=dest)
    assert [f for f, _ in back.failed] == ["model.safetensors"]  # an edit: kept
    assert (dest / "model.safetensors").read_bytes() == b"my own fine-tuned weights"


def test_a_damaged_blob_in_the_hf_cache_is_fetched_again(store: Store) -> None:
    report = store.pull("acme/tiny", hf_cache=store.cache)
    blob = Path(report.path) / "model.safetensors"
    real = blob.resolve()
    real.write_bytes(real.read_bytes()[:1000])  # a power cut's truncated file
    again = store.pull("acme/tiny", hf_cache=store.cache)
    assert again.ok and again.fetched == 1 and blob.read_bytes() == V2["model.safetensors"]
    real.write_bytes(b"x" * len(V2["model.safetensors"]))  # same size, wrong bytes
    assert store.pull("acme/tiny", hf_cache=store.cache).complete  # trusted by size...
    verified = store.pull("acme/tiny", hf_cache=store.cache, verify=True)  # ...unless --verify
    assert verified.ok and verified.fetched == 1 and blob.read_bytes() == V2["model.safetensors"]


def test_progress_bar_on_a_terminal_only(
    store: Store, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store.pull("acme/tiny", to=tmp_path / "a", progress=True)  # as on a terminal
    err = capsys.readouterr().err
    assert "acme/tiny@v2" in err and "B/s" in err  # one bar: bytes/s (and ETA while running)
    store.pull("acme/tiny", to=tmp_path / "b", progress=None)  # stderr is no terminal here
    assert capsys.readouterr().err == ""


def test_pull_from_a_mirror_clones_on_a_reflink_filesystem(
    store: Store, btrfs: Path, tmp_path: Path
) -> None:
    from dataclasses import replace

    from nlmr.target import default_target

    target = replace(default_target(btrfs / "mirror"))
    assert store.w.sync(target).ok
    s = settings(mirrors=[btrfs / "mirror"])
    report = pull("acme/tiny", to=btrfs / "mine", settings=s, progress=False)
    assert report.ok and report.how == {"reflink": 4}
    assert _tree(btrfs / "mine") == V2
    src = btrfs / "mirror/models/acme/tiny@v2/model.safetensors"
    mine = btrfs / "mine/model.safetensors"
    assert os.stat(mine).st_ino != os.stat(src).st_ino  # a clone, not a hard link
    os.chmod(mine, 0o644)
    mine.write_bytes(b"changed")  # the clone is the user's own: the mirror is untouched
    assert src.read_bytes() == V2["model.safetensors"]
    # across filesystems a clone is impossible: auto copies instead, still verified
    across = pull("acme/tiny", to=tmp_path / "other", settings=s, progress=False)
    assert across.ok and across.how == {"copy": 4}


def test_a_failed_switch_of_revision_keeps_the_old_file(store: Store, tmp_path: Path) -> None:
    dest = tmp_path / "out"
    assert store.pull("acme/tiny@v1", to=dest).ok
    store.object_path(V2["model.safetensors"]).unlink()  # v2's weights are not in the store
    switch = store.pull("acme/tiny@v2", to=dest)
    assert [f for f, _ in switch.failed] == ["model.safetensors"]
    # the old weights stay until new ones are verified: never a directory without weights
    assert (dest / "model.safetensors").read_bytes() == V1["model.safetensors"]


def test_settings_take_the_store_and_catalogue_as_a_pair(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = tmp_path / "config.yaml"
    cfg.write_text("catalogue: https://old.example.invalid/nlmr/catalogue.json\nmirrors: [m]\n")
    monkeypatch.setenv("NLMR_CONFIG", str(cfg))
    s = settings(remote=str(store.w.store))  # --remote beats the file's catalogue
    assert s.remote == str(store.w.store) and s.catalogue is None
    assert s.mirrors == (tmp_path / "m",)  # relative to the configuration file
    assert pull("acme/tiny", to=tmp_path / "o", settings=s, progress=False).ok
    elsewhere = tmp_path / "cat.json"
    elsewhere.write_bytes((store.w.store / CATALOGUE_KEY).read_bytes())
    monkeypatch.setenv("NLMR_REMOTE", str(store.w.store))
    s = settings(catalogue=str(elsewhere))  # a catalogue that names no store: the env's
    assert s.catalogue == str(elsewhere) and s.remote == str(store.w.store)
    # an endpoint belongs to its store: the file's does not follow NLMR_REMOTE elsewhere
    cfg.write_text("remote: s3://lumi/store\nendpoint_url: https://lumidata.example\n")
    monkeypatch.setenv("NLMR_REMOTE", "s3://aws-bucket/x")
    assert settings().endpoint_url is None
    monkeypatch.setenv("NLMR_ENDPOINT_URL", "https://s3.example")
    assert settings().endpoint_url == "https://s3.example"
    monkeypatch.delenv("NLMR_REMOTE")
    monkeypatch.delenv("NLMR_ENDPOINT_URL")
    assert settings().endpoint_url == "https://lumidata.example"
    u = "https://h.example/b/nlmr/catalogue.json?X-Amz-Signature=1"
    from nlmr.resolver import _catalogue_and_remote

    assert _catalogue_and_remote(settings(catalogue=u)) == (u, "https://h.example/b")


def test_hf_cache_is_where_huggingface_hub_looks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from nlmr import config

    script = "from huggingface_hub import constants; print(constants.HF_HUB_CACHE)"
    cases: list[dict[str, str]] = [
        {"XDG_CACHE_HOME": str(tmp_path / "xdg")},
        {"HF_HOME": str(tmp_path / "hfhome"), "XDG_CACHE_HOME": str(tmp_path / "xdg")},
        {"HUGGINGFACE_HUB_CACHE": str(tmp_path / "legacy")},
        {"HF_HUB_CACHE": "~/hubcache", "HUGGINGFACE_HUB_CACHE": str(tmp_path / "legacy")},
        {},
    ]
    names = ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_HOME", "XDG_CACHE_HOME")
    for case in cases:
        for name in names:
            monkeypatch.delenv(name, raising=False)
        for name, value in case.items():
            monkeypatch.setenv(name, value)
        theirs = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, check=True
        ).stdout.strip()
        assert str(config.hf_hub_cache()) == theirs, case


def test_explicit_link_modes_fail_rather_than_copy(mirrored: Store) -> None:
    import tempfile

    shm = Path("/dev/shm")
    if not shm.is_dir() or os.stat(shm).st_dev == os.stat(mirrored.w.root).st_dev:
        pytest.skip("needs a second filesystem (/dev/shm)")
    s = settings(mirrors=[mirrored.w.root])
    with tempfile.TemporaryDirectory(dir=shm) as other:
        report = pull("acme/tiny", to=other, settings=s, mode="hardlink", progress=False)
        assert len(report.failed) == 4
        assert "--mode hardlink is not possible here" in report.failed[0][1]
        assert "use --mode auto" in report.failed[0][1]
        auto = pull("acme/tiny", to=other, settings=s, mode="auto", progress=False)
        assert auto.ok and auto.how == {"copy": 4}


def test_hub_only_mirror_paths(store: Store, tmp_path: Path) -> None:
    target = store.w.target(layouts=("hub",))
    assert store.w.sync(target).ok
    s = settings(mirrors=[store.w.root])
    snap = store.w.root / "hub/models--acme--tiny/snapshots" / store.v2.revision_id
    assert pull("acme/tiny", link=True, settings=s).path == str(snap)
    assert nlmr.resolve("acme/tiny", mirrors=[store.w.root]) == snap
    got = pull("acme/tiny", to=tmp_path / "o", settings=s, progress=False)
    assert got.ok and got.source.startswith("mirror") and _tree(tmp_path / "o") == V2
    with pytest.raises(UsageError, match="--link copies nothing"):
        pull("acme/tiny", link=True, to=tmp_path / "x", settings=s)


def test_ls_lists_the_mirrors_when_the_store_is_unreachable(mirrored: Store, run_cli: Any) -> None:
    env = {"NLMR_MIRRORS": str(mirrored.w.root), "NLMR_REMOTE": "http://127.0.0.1:9/nowhere"}
    code, out, err = run_cli("ls", env=env)
    assert code == 0 and "acme/tiny" in out
    assert "warning:" in err and "cannot reach" in err
    code, out, err = run_cli("info", "acme/tiny", env=env)
    assert code == 0 and "nlmr pull acme/tiny" in out and "not read:" in err


def test_catalogue_over_http_follows_redirects(store: Store, tmp_path: Path) -> None:
    import http.server
    import threading

    served = store.w.store

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a: Any, **kw: Any) -> None:
            super().__init__(*a, directory=str(served), **kw)

        def do_GET(self) -> None:
            if self.path.startswith("/latest/catalogue.json?"):  # a release download
                self.send_response(302)
                self.send_header("Location", "/" + CATALOGUE_KEY)
                self.end_headers()
                return
            super().do_GET()

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/latest/catalogue.json?raw=1"
        s = settings(catalogue=url, remote=str(store.w.store))
        assert pull("acme/tiny", to=tmp_path / "o", settings=s, progress=False).ok
        base = f"http://127.0.0.1:{server.server_port}"
        # the whole store over plain HTTP from any web server: objects and catalogue
        web = pull("acme/tiny@v1", to=tmp_path / "w", settings=settings(remote=base),
                   progress=False)  # fmt: skip
        assert web.ok and _tree(tmp_path / "w") == V1
        with pytest.raises(NotFoundError, match="no catalogue there"):
            pull("acme/tiny", settings=settings(catalogue=f"{base}/nope.json", remote=base))
    finally:
        server.shutdown()
    from nlmr.errors import RemoteConfigError, StoreUnavailableError

    with pytest.raises(RemoteConfigError, match="not a valid URL"):
        pull("acme/tiny", settings=settings(catalogue="http://[::1/x.json"))

    class Short(http.server.BaseHTTPRequestHandler):  # promises 100 bytes, sends 50
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", "100")
            self.end_headers()
            self.wfile.write(b"{" * 50)
            self.close_connection = True

        def log_message(self, *args: Any) -> None:
            pass

    short = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Short)
    threading.Thread(target=short.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{short.server_port}/nlmr/catalogue.json"
        with pytest.raises(StoreUnavailableError, match="cannot reach it"):
            pull("acme/tiny", settings=settings(catalogue=url))
    finally:
        short.shutdown()


def test_a_complete_pull_needs_no_write_access(store: Store) -> None:
    """Checking a complete pull writes nothing, so it works in a cache the user cannot
    write to (a shared one, or one on a read-only mount)."""
    import shutil
    import tempfile

    if shutil.which("runuser") is None or os.geteuid() != 0:
        pytest.skip("needs root and runuser to run as an unprivileged user")
    shared = Path(tempfile.mkdtemp(prefix="nlmr-ro-", dir="/tmp"))
    try:
        os.chmod(shared, 0o755)
        cache, plain = shared / "cache", shared / "plain"
        assert store.pull("acme/tiny", hf_cache=cache).ok
        assert store.pull("acme/tiny", to=plain).ok
        public = shared / "store"
        shutil.copytree(store.w.store, public)
        env = ["env", "-i", "PATH=/usr/bin:/bin", f"HOME={shared}", "NLMR_CONFIG=/nonexistent"]
        (plain / "config.json").write_bytes(b"{}")  # an edit, and root's directory
        os.utime(plain / "config.json", (1, 1))
        edited = subprocess.run(
            ["runuser", "-u", "nobody", "--", *env, sys.executable, "-m", "nlmr", "pull",
             "acme/tiny", "--remote", str(public), "--to", str(plain)],
            capture_output=True, text=True, check=False, cwd="/",
        )  # fmt: skip
        assert edited.returncode == 1 and "config.json" in edited.stderr
        assert "--force" in edited.stderr and "Permission denied" not in edited.stderr
        assert store.pull("acme/tiny", to=plain, force=True).ok
        for dest in (["--hf-cache", str(cache)], ["--to", str(plain)]):
            done = subprocess.run(
                ["runuser", "-u", "nobody", "--", *env, sys.executable, "-m", "nlmr", "pull",
                 "acme/tiny", "--remote", str(public), *dest],
                capture_output=True, text=True, check=False, cwd="/",
            )  # fmt: skip
            assert done.returncode == 0, done.stderr
            assert "already complete" in done.stderr
    finally:
        shutil.rmtree(shared)


def test_dangling_links_are_repaired_not_trusted(store: Store, tmp_path: Path) -> None:
    dest = tmp_path / "out"
    assert store.pull("acme/tiny", to=dest).ok
    (dest / "config.json").unlink()
    (dest / "config.json").symlink_to("/gone")
    again = store.pull("acme/tiny", to=dest)
    assert again.ok and again.fetched == 1 and _tree(dest) == V2
    assert not (dest / "config.json").is_symlink()
    cached = store.pull("acme/tiny", hf_cache=store.cache)
    blob = Path(cached.path, "tokenizer.json").resolve()
    blob.unlink()
    blob.symlink_to("/gone")
    fixed = store.pull("acme/tiny", hf_cache=store.cache)
    assert fixed.ok and fixed.fetched == 1
    assert Path(cached.path, "tokenizer.json").read_bytes() == V2["tokenizer.json"]


def test_present_files_are_hashed_once(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from nlmr import hashing

    dest = tmp_path / "out"
    for rel, data in V2.items():  # filled by another tool: no record to vouch for them
        if rel != "config.json":
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            (dest / rel).write_bytes(data)
    calls: list[str] = []
    real = hashing.sha256_file

    def counting(path: Any, **kw: Any) -> Any:
        calls.append(str(path))
        return real(path, **kw)

    monkeypatch.setattr(hashing, "sha256_file", counting)
    report = store.pull("acme/tiny", to=dest)
    assert report.ok and report.fetched == 1 and report.present == 3
    assert len(calls) == 3  # once each, although they were looked at with and without the lock


def test_snapshot_copies_are_checked(store: Store) -> None:
    report = store.pull("acme/tiny", hf_cache=store.cache)
    snap = Path(report.path)
    copy = snap / "model.safetensors"  # as huggingface_hub writes with symlinks disabled
    copy.unlink()
    copy.write_bytes(V2["model.safetensors"])
    assert store.pull("acme/tiny", hf_cache=store.cache).complete  # a good copy is kept
    copy.write_bytes(b"truncated")
    fixed = store.pull("acme/tiny", hf_cache=store.cache)
    assert fixed.ok and fixed.updated and copy.is_symlink()
    assert copy.read_bytes() == V2["model.safetensors"]
    copy.unlink()
    copy.write_bytes(b"w" * len(V2["model.safetensors"]))  # right size, wrong bytes
    assert store.pull("acme/tiny", hf_cache=store.cache).complete
    assert store.pull("acme/tiny", hf_cache=store.cache, verify=True).updated
    assert copy.read_bytes() == V2["model.safetensors"]


def test_a_catalogue_cannot_name_paths_outside_the_destination(
    store: Store, tmp_path: Path
) -> None:
    from nlmr.errors import CardError

    cat = json.loads((store.w.store / CATALOGUE_KEY).read_text())
    cat["entries"][1]["revisions"][0]["files"][0]["path"] = "../escaped.txt"
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(cat))
    s = settings(catalogue=str(bad), remote=str(store.w.store))
    with pytest.raises(CardError, match=r"'\.\./escaped\.txt' contains '\.\.'"):
        pull("acme/tiny@v1", to=tmp_path / "out", settings=s, progress=False)
    assert not (tmp_path / "escaped.txt").exists()
