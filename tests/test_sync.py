"""nlmr sync on POSIX with a local store: layouts, incremental runs, verification, GC,
the lock, the CLI. (Real S3, transformers and SIGKILL runs: tests/test_sync_e2e.py.)"""

from __future__ import annotations

import datetime
import json
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO, World

from nlmr.catalogue import load_catalogue
from nlmr.layout import lfs_pointer_sha1
from nlmr.schemas import check
from nlmr.sync.check import check_mirror

ST = b"\x08\x00\x00\x00\x00\x00\x00\x00{}      "  # an empty safetensors header
FILES = {
    "config.json": b'{"model_type": "bert"}',
    "model.safetensors": ST + b"w" * 5000,
    "tokenizer.json": b'{"version": "1.0"}',
    "sub/extra.txt": b"nested file",
}


def _mode(p: Path) -> int:
    return stat.S_IMODE(os.lstat(p).st_mode)


def test_sync_publishes_both_layouts_read_only(world: World) -> None:
    added = world.add("acme/tiny", FILES)
    report = world.sync()
    assert report.ok and report.published == ["acme/tiny@main"]
    root = world.root
    plain = root / "models/acme/tiny@main"
    link = root / "models/acme/tiny"
    assert os.readlink(link) == "tiny@main"
    for rel, data in FILES.items():
        assert (plain / rel).read_bytes() == data
        assert (link / rel).read_bytes() == data
        assert _mode(plain / rel) == 0o444
    assert _mode(plain) == 0o555 and _mode(plain / "sub") == 0o555
    readme = (plain / "README.md").read_text()
    assert readme.startswith("---\n") and "# Tiny BERT" in readme
    prov = json.loads((plain / ".nlmr-provenance.json").read_text())
    assert prov["revision_id"] == added.revision_id and prov["files"] == len(FILES)

    repo = root / "hub/models--acme--tiny"
    rev_id = added.revision_id
    assert (repo / "refs/main").read_bytes() == rev_id.encode()  # 40 hex, no newline
    snap = repo / "snapshots" / rev_id
    assert os.readlink(snap / "config.json") == "../../blobs/" + _git_sha1(FILES["config.json"])
    assert os.readlink(snap / "sub/extra.txt").startswith("../../../blobs/")
    weights = snap / "model.safetensors"
    assert Path(os.readlink(weights)).name == _sha256(FILES["model.safetensors"])  # LFS: sha256
    assert weights.read_bytes() == FILES["model.safetensors"]
    assert not (root / "hub/blobs").exists()
    # the two layouts share bytes: hard links on one filesystem
    assert os.stat(plain / "model.safetensors").st_ino == os.stat(weights).st_ino
    assert report.link_mode == "hardlink"
    tree = json.loads((repo / "trees" / f"{rev_id}.json").read_text())
    assert set(tree["files"]) == set(FILES)
    st = FILES["model.safetensors"]
    assert tree["files"]["model.safetensors"]["blob_id"] == lfs_pointer_sha1(_sha256(st), len(st))

    cat = json.loads((root / "catalogue.json").read_text())
    assert check("catalogue", cat) == []
    (entry,) = cat["entries"]
    assert entry["default_revision"] == "main" and entry["revisions"][0]["id"] == rev_id
    assert check_mirror(root, deep=True).ok
    assert not list((root / ".nlmr/staging").glob("build-*"))


def _git_sha1(data: bytes) -> str:
    import hashlib

    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _sha256(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


def test_second_sync_moves_nothing_and_writes_nothing(world: World) -> None:
    world.add("acme/tiny", FILES)
    world.sync()
    before = {p: p.stat().st_mtime_ns for p in world.root.rglob("*") if not p.is_symlink()}
    again = world.sync()
    assert again.ok and again.published == [] and again.transferred_bytes == 0
    assert again.plan.unchanged == 1 and again.plan.empty
    after = {p: p.stat().st_mtime_ns for p in world.root.rglob("*") if not p.is_symlink()}
    changed = [p for p in after if before.get(p) != after[p] and ".nlmr" not in p.parts]
    assert changed == []


def test_new_revision_transfers_only_new_objects_and_switches_default(world: World) -> None:
    world.add("acme/tiny", FILES)
    target = world.target(select=_all_revisions())
    world.sync(target)
    v2 = dict(FILES, **{"config.json": b'{"model_type": "bert", "v": 2}'})
    added = world.add("acme/tiny", v2, revision="v2", make_default=True)
    plan = world.sync(target, dry_run=True).plan
    (addition,) = plan.additions
    assert addition.new_bytes == len(v2["config.json"])
    assert [(s.old, s.new) for s in plan.switches] == [("main", "v2")]
    report = world.sync(target)
    assert report.published == ["acme/tiny@v2"]
    assert report.transferred_bytes == len(v2["config.json"])
    assert os.readlink(world.root / "models/acme/tiny") == "tiny@v2"
    repo = world.root / "hub/models--acme--tiny"
    assert (repo / "refs/main").read_bytes() == added.revision_id.encode()
    assert (repo / "refs/v2").read_bytes() == added.revision_id.encode()
    assert (world.root / "models/acme/tiny@main/config.json").read_bytes() == FILES["config.json"]
    assert check_mirror(world.root).ok


def _all_revisions() -> Any:
    from nlmr.target import Selection

    return Selection(revisions="all")


def test_dry_run_changes_nothing(world: World) -> None:
    world.add("acme/tiny", FILES)
    report = world.sync(dry_run=True)
    assert report.dry_run and [a.ref for a in report.plan.additions] == ["acme/tiny@main"]
    assert report.plan.additions[0].bytes == sum(len(v) for v in FILES.values())
    assert not world.root.exists()


def test_corrupt_object_is_never_published_and_does_not_stop_others(world: World) -> None:
    world.add("acme/tiny", FILES)
    world.add("acme/other", {"config.json": b'{"other": true}', "w.safetensors": ST + b"x" * 300})
    # flip the bytes of one object in the store (same size)
    import hashlib

    md5 = hashlib.md5(FILES["model.safetensors"]).hexdigest()
    obj = world.store / "files/md5" / md5[:2] / md5[2:]
    os.chmod(obj, 0o644)
    obj.write_bytes(b"X" * len(FILES["model.safetensors"]))
    report = world.sync()
    assert report.exit_code == 3 and report.published == ["acme/other@main"]
    (failure,) = report.failed
    assert failure.ref == "acme/tiny@main" and failure.file == "model.safetensors"
    assert "sha256" in failure.error
    assert not (world.root / "models/acme/tiny@main").exists()
    assert not (world.root / "models/acme/tiny").exists()
    assert not list((world.root / "hub/models--acme--tiny").rglob("snapshots/*"))
    assert check_mirror(world.root).ok
    # repaired store: the next run publishes it, fetching only what is missing
    obj.write_bytes(FILES["model.safetensors"])
    again = world.sync()
    assert again.ok and again.published == ["acme/tiny@main"]
    assert again.transferred_bytes == len(FILES["model.safetensors"])
    assert check_mirror(world.root, deep=True).ok


def test_removed_revision_waits_for_grace_then_goes_with_its_blobs(world: World) -> None:
    world.add("acme/tiny", FILES)
    v2 = dict(FILES, **{"config.json": b'{"v": 2}'})
    second = world.add("acme/tiny", v2, revision="v2", make_default=True)
    target = world.target(select=_all_revisions(), grace=3600)
    world.sync(target)
    old_blob = world.root / "hub/models--acme--tiny/blobs" / _git_sha1(FILES["config.json"])
    assert old_blob.exists()
    # yank main in the card
    card = world.reg / "models/acme/tiny/card.yaml"
    text = card.read_text()
    assert "name: main" in text
    text = text.replace("name: main\n", "name: main\n  yanked:\n    reason: broken tokenizer\n", 1)
    card.write_text(text)
    first = world.sync(target)
    assert [r.ref for r in first.plan.removals] == ["acme/tiny@main"]
    assert not first.plan.removals[0].due and first.removed == []
    assert (world.root / "models/acme/tiny@main").exists()
    cat = load_catalogue(world.root / "catalogue.json")
    entry = cat.find("acme/tiny")
    assert entry is not None
    main = entry.revision("main")
    assert main is not None and main.removal_since
    dry = world.sync(target, dry_run=True, now=_later(hours=2))
    assert [r.due for r in dry.plan.removals] == [True]
    assert (world.root / "models/acme/tiny@main").exists()
    later = world.sync(target, now=_later(hours=2))
    assert later.removed == ["acme/tiny@main"]
    assert not (world.root / "models/acme/tiny@main").exists()
    refs = world.root / "hub/models--acme--tiny/refs"
    assert sorted(os.listdir(refs)) == ["main", "v2"]  # main: the default, v2
    assert (refs / "main").read_bytes() == second.revision_id.encode()
    assert not old_blob.exists()  # orphan collected
    shared = world.root / "hub/models--acme--tiny/blobs" / _sha256(FILES["model.safetensors"])
    assert shared.exists()  # still used by v2
    assert check_mirror(world.root, deep=True).ok


def _later(**delta: float) -> datetime.datetime:
    now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    return now + datetime.timedelta(**delta)


def test_entry_gone_from_registry_is_removed_entirely_with_zero_grace(world: World) -> None:
    world.add("acme/tiny", FILES)
    world.add("acme/keep", {"config.json": b"{}", "w.safetensors": ST + b"k" * 100})
    world.sync()
    import shutil

    shutil.rmtree(world.reg / "models/acme/tiny")
    report = world.sync(world.target(grace=0))
    assert report.removed == ["acme/tiny@main"]
    assert not (world.root / "models/acme/tiny").is_symlink()
    assert not (world.root / "hub/models--acme--tiny").exists()
    cat = load_catalogue(world.root / "catalogue.json")
    assert sorted(e.id for e in cat.entries.values()) == ["acme/keep"]
    assert check_mirror(world.root).ok


def test_file_filter_and_plain_only_layout(world: World) -> None:
    files = dict(FILES, **{"pytorch_model.bin": b"pickle"})
    world.add("acme/tiny", {k: v for k, v in FILES.items()})
    from nlmr.target import FileFilter

    target = world.target(files=FileFilter(exclude=("*.txt",)), layouts=("plain",))
    report = world.sync(target)
    assert report.ok
    plain = world.root / "models/acme/tiny@main"
    assert not (plain / "sub/extra.txt").exists() and (plain / "config.json").exists()
    assert not (world.root / "hub").exists()
    assert files  # the pickle variant is not part of this revision
    assert check_mirror(world.root, deep=True).ok


def test_dataset_mirrors_with_readme_configs(world: World) -> None:
    files = {
        "nb/train.jsonl": b'{"text": "hei"}\n',
        "README.md": b"---\nlicense: cc-by-4.0\nlanguage: [nb]\nconfigs:\n- config_name: nb\n"
        b"  data_files: nb/*.jsonl\n---\n# Corpus\n\nText.\n",
    }
    world.add("acme/corpus", files)
    report = world.sync()
    assert report.ok
    plain = world.root / "datasets/acme/corpus@main"
    assert (plain / "README.md").read_bytes() == files["README.md"]  # the revision's own
    assert (plain / ".nlmr-card.md").is_file()  # the card, beside it
    assert (world.root / "hub/datasets--acme--corpus/refs/main").is_file()
    assert check_mirror(world.root, deep=True).ok


def _cli(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> Any:
    return subprocess.run(
        [sys.executable, "-m", "nlmr", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, **(env or {})},
        check=False,
    )


def test_cli_sync_check_mirror_and_errors(world: World) -> None:
    world.add("acme/tiny", FILES)
    out = _cli("sync", "--root", str(world.root), "--registry", str(world.reg), "--dry-run")
    assert out.returncode == 0, out.stderr
    assert "add     acme/tiny@main" in out.stdout and "1 to add" in out.stderr
    out = _cli("sync", "--root", str(world.root), "--registry", str(world.reg), "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["published"] == ["acme/tiny@main"] and data["ok"]
    out = _cli("check-mirror", "--root", str(world.root), "--deep")
    assert out.returncode == 0 and "ok" in out.stderr
    out = _cli("sync", "--registry", str(world.reg))
    assert out.returncode == 2 and "--root" in out.stderr
    bad = world.tmp / "t.yaml"
    bad.write_text("schema_version: 1\nname: t\nroot: /x\nlayouts: [plain, hubb]\n")
    out = _cli("sync", str(bad), "--registry", str(world.reg))
    assert out.returncode == 1 and "t.yaml:4:" in out.stderr and "Traceback" not in out.stderr
    # damage: a file removed from the mirror is named by check-mirror
    victim = world.root / "models/acme/tiny@main/tokenizer.json"
    os.chmod(victim.parent, 0o755)
    victim.unlink()
    out = _cli("check-mirror", "--root", str(world.root))
    assert out.returncode == 1 and "tokenizer.json" in out.stdout


def test_concurrent_sync_exits_clearly(world: World) -> None:
    world.add("acme/tiny", FILES)
    world.root.mkdir()
    from nlmr.lock import hold

    (world.root / ".nlmr").mkdir()
    with hold(world.root / ".nlmr/lock", purpose="test holder"):
        out = _cli("sync", "--root", str(world.root), "--registry", str(world.reg))
        assert out.returncode == 1, out.stderr
        assert "test holder" in out.stderr or "pid" in out.stderr
        assert "Traceback" not in out.stderr
    out = _cli("sync", "--root", str(world.root), "--registry", str(world.reg), "--wait", "5")
    assert out.returncode == 0, out.stderr


def test_shipped_sync_targets_are_valid() -> None:
    from nlmr.target import load_target

    for path in sorted((REPO / "sync").glob("*.yaml")):
        target = load_target(path)
        assert target.name == path.stem


def test_add_refuses_a_file_that_is_not_safetensors(world: World) -> None:
    from nlmr.sources import SourceError

    with pytest.raises(SourceError, match=r"w\.safetensors"):
        world.add("acme/bad", {"config.json": b"{}", "w.safetensors": b"x" * 300})


def test_target_env_values_are_checked_with_their_line(tmp_path: Path) -> None:
    from nlmr.errors import CardError
    from nlmr.target import load_target

    path = tmp_path / "t.yaml"
    path.write_text("schema_version: 1\nname: t\nroot: /x\nenv:\n  user_dir: $(whoami)/hf\n")
    with pytest.raises(CardError) as info:
        load_target(path)
    assert info.value.line == 5 and "$(" in str(info.value)


@pytest.mark.parametrize("works", ["hardlink", "symlink", "copy"])
def test_layouts_share_bytes_by_the_best_link_the_filesystem_allows(
    world: World, monkeypatch: pytest.MonkeyPatch, works: str
) -> None:
    import errno

    world.add("acme/tiny", FILES)
    real_link, real_symlink = os.link, os.symlink

    def refuse(real: Any, code: int) -> Any:
        # only links into the plain tree's staging fail, as on a filesystem without them
        def call(src: Any, dst: Any, *a: Any, **kw: Any) -> Any:
            if "/build-" in str(dst) and "@" in str(dst):
                raise OSError(code, os.strerror(code), str(dst))
            return real(src, dst, *a, **kw)

        return call

    if works in ("symlink", "copy"):
        monkeypatch.setattr(os, "link", refuse(real_link, errno.EXDEV))
    if works == "copy":
        monkeypatch.setattr(os, "symlink", refuse(real_symlink, errno.EPERM))
    report = world.sync()
    assert report.ok and report.link_mode == works
    plain = world.root / "models/acme/tiny@main"
    for rel, data in FILES.items():
        assert (plain / rel).read_bytes() == data
        assert (plain / rel).is_symlink() == (works == "symlink")
    if works == "symlink":  # relative, so the tree can be moved or mounted elsewhere
        assert not os.readlink(plain / "sub/extra.txt").startswith("/")
        assert os.readlink(plain / "sub/extra.txt").startswith("../../../../hub/")
    assert check_mirror(world.root, deep=True).ok


def test_old_partial_downloads_are_swept_and_recent_ones_kept(world: World) -> None:
    world.add("acme/tiny", FILES)
    world.sync()
    partial = world.root / ".nlmr/staging/partial"
    old, recent = (
        partial / ".0123456789abcdef.gone.partial",
        partial / ".fedcba9876543210.x.partial",
    )
    old.write_bytes(b"stale")
    recent.write_bytes(b"resumable")
    two_months = 60 * 24 * 3600
    os.utime(old, (os.stat(old).st_atime - two_months, os.stat(old).st_mtime - two_months))
    world.add("acme/other", {"config.json": b'{"o": 1}'})
    world.sync()  # a run with work to do prepares the staging area
    assert not old.exists() and recent.exists()
