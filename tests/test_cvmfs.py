"""The CernVM-FS publisher against the recording stand-in for `cvmfs_server`
(tests/standins/cvmfs_server: /cvmfs/<repo> is $CVMFS_STANDIN_ROOT/<repo>; transactions,
publish, abort, ingest and gateway leases are emulated, every call is logged).

Nothing here ran against a real CernVM-FS server: see docs/cvmfs.md.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import subprocess
import sys
import tarfile
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO, write_dvc_config

from nlmr.errors import NlmrError, UsageError
from nlmr.sync.cvmfs import CATALOG_MARKER, TRANSACTION_RECORD, CvmfsPublisher
from nlmr.sync.cvmfs_commands import CvmfsError, _tar_feed, run_command
from nlmr.target import CvmfsSettings, Target

STANDINS = REPO / "tests" / "standins"
REPOSITORY = "models.nlmr.test.org"
ST = b"\x08\x00\x00\x00\x00\x00\x00\x00{}      "  # an empty safetensors header


class Cvmfs:
    """The stand-in's repository and what it recorded."""

    def __init__(self, base: Path, log: Path) -> None:
        self.base = base
        self.repo = base / REPOSITORY
        self.published = base / ".spool" / REPOSITORY / "published"
        self.log_path = log

    def calls(self) -> list[dict[str, Any]]:
        if not self.log_path.exists():
            return []
        return [json.loads(line) for line in self.log_path.read_text().splitlines()]

    def commands(self, *, skip_list: bool = True) -> list[list[str]]:
        out = [c["argv"] for c in self.calls()]
        return [a for a in out if not (skip_list and a[:1] == ["list"])]

    def clear(self) -> None:
        self.log_path.unlink(missing_ok=True)

    def violations(self) -> list[dict[str, Any]]:
        path = self.base / ".spool" / REPOSITORY / "violations.jsonl"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines()]

    def in_transaction(self) -> bool:
        return (self.base / ".spool" / REPOSITORY / "in_transaction").exists()

    def tree(self, top: Path | None = None) -> dict[str, tuple[str, int, str]]:
        """Everything under ``top`` (default: the repository) by path: type, mode, content."""
        return _tree(top or self.repo)


def _tree(top: Path) -> dict[str, tuple[str, int, str]]:
    out: dict[str, tuple[str, int, str]] = {}
    for dirpath, dirnames, filenames in os.walk(top):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            st = os.lstat(p)
            rel = p.relative_to(top).as_posix()
            if stat.S_ISLNK(st.st_mode):
                out[rel] = ("link", 0, os.readlink(p))
            elif stat.S_ISDIR(st.st_mode):
                out[rel] = ("dir", stat.S_IMODE(st.st_mode), "")
            else:
                out[rel] = ("file", stat.S_IMODE(st.st_mode), p.read_bytes().hex())
    return out


@pytest.fixture
def cvmfs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Cvmfs:
    """A fresh stand-in repository, with the stand-ins first on PATH."""
    base = tmp_path / "cvmfs"
    log = tmp_path / "standin.jsonl"
    monkeypatch.setenv("PATH", f"{STANDINS}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("CVMFS_STANDIN_ROOT", str(base))
    monkeypatch.setenv("NLMR_STANDIN_LOG", str(log))
    monkeypatch.delenv("CVMFS_STANDIN_FAIL", raising=False)
    monkeypatch.delenv("CVMFS_STANDIN_FOREIGN_LEASE", raising=False)
    subprocess.run(["cvmfs_server", "mkfs", REPOSITORY], check=True, capture_output=True)
    c = Cvmfs(base, log)
    c.clear()
    return c


def make_target(cv: Cvmfs, tmp: Path, **settings: Any) -> Target:
    return Target(
        name="cvmfs-test",
        root=cv.repo / "mirror",
        backend="cvmfs",
        cvmfs=CvmfsSettings(repository=REPOSITORY, staging=str(tmp / "staging"), **settings),
    )


class Pub:
    """A publisher and the warnings it gave."""

    def __init__(self, target: Target) -> None:
        self.warnings: list[str] = []
        self.p = CvmfsPublisher(target, self.warnings.append)
        self.root = target.root

    def stage(self, final: Path, data: bytes) -> Path:
        """A verified blob in staging, as the transfer leaves it."""
        staged = self.p.blob_fetch_path(final)
        staged.write_bytes(data)
        os.chmod(staged, 0o444)
        return staged


@pytest.fixture
def pub(cvmfs: Cvmfs, tmp_path: Path) -> Pub:
    p = Pub(make_target(cvmfs, tmp_path))
    p.p.prepare_root()
    p.p.prepare()
    return p


def _revision(pub: Pub, files: dict[str, bytes], entry: str = "acme/tiny") -> None:
    """What the engine does for one new revision ``main`` with the hub layout (blobs,
    trees, snapshot, plain directory) and then the default link, refs and catalogue."""
    p = pub.p
    org, model = entry.split("/")
    repo = pub.root / f"hub/models--{org}--{model}"
    for data in files.values():
        final = repo / "blobs" / hashlib.sha256(data).hexdigest()
        if not os.path.lexists(final):
            p.place_blob(pub.stage(final, data), final)
    p.write_file(repo / "trees/rev1.json", b"{}")

    def snapshot(d: Path) -> None:
        for rel, data in files.items():
            (d / rel).parent.mkdir(parents=True, exist_ok=True)
            depth = rel.count("/")
            os.symlink("../" * (depth + 2) + f"blobs/{hashlib.sha256(data).hexdigest()}", d / rel)

    p.publish_dir(repo / "snapshots/rev1", snapshot)
    final = pub.root / "models" / org / f"{model}@main"

    def plain(d: Path) -> None:
        p.building = (d, final)
        try:
            for rel, data in files.items():
                (d / rel).parent.mkdir(parents=True, exist_ok=True)
                p.link_file(repo / "blobs" / hashlib.sha256(data).hexdigest(), d / rel)
            (d / "README.md").write_text("# tiny\n")
        finally:
            p.building = None

    p.publish_dir(final, plain)
    p.replace_link(pub.root / "models" / entry, final.name)
    p.write_file(repo / "refs/main", b"a" * 40)
    p.write_file(pub.root / "catalogue.json", b"{}")


FILES = {"config.json": b'{"model_type": "bert"}', "sub/w.safetensors": ST + b"w" * 3000}


# -- transaction mode ------------------------------------------------------------------------


def test_transaction_then_writes_then_publish(cvmfs: Cvmfs, pub: Pub) -> None:
    with pub.p.transaction():
        _revision(pub, FILES)
    assert cvmfs.commands() == [
        ["transaction", REPOSITORY],
        ["publish", REPOSITORY],
    ]
    assert cvmfs.violations() == [] and not cvmfs.in_transaction()
    assert not (pub.p.state_dir / TRANSACTION_RECORD).exists()
    root = pub.root
    plain = root / "models/acme/tiny@main"
    for rel, data in FILES.items():
        assert (plain / rel).read_bytes() == data
        assert (root / "models/acme/tiny" / rel).read_bytes() == data
        # symbolic links into the hub blobs, never hard links
        assert os.readlink(plain / rel).startswith(
            "../../../" if "/" not in rel else "../../../../"
        )
        blob = root / "hub/models--acme--tiny/blobs" / hashlib.sha256(data).hexdigest()
        assert os.lstat(blob).st_nlink == 1
    # modes as published (outside a transaction the stand-in has the tree chmod a-w)
    tree = cvmfs.tree(cvmfs.published / "mirror")
    assert tree["models/acme/tiny@main"][:2] == ("dir", 0o555)
    assert tree["models/acme/tiny@main/sub"][:2] == ("dir", 0o555)
    assert tree["models/acme/tiny@main/README.md"][:2] == ("file", 0o444)
    assert tree["hub/models--acme--tiny/snapshots/rev1"][:2] == ("dir", 0o555)
    assert tree["hub/models--acme--tiny/refs/main"][:2] == ("file", 0o444)
    assert tree["hub/models--acme--tiny/blobs"][:2] == ("dir", 0o755)
    # one nested catalog per unit: the mirror root, each hub repository, each plain org
    markers = sorted(k for k in tree if k.endswith(CATALOG_MARKER))
    assert markers == [
        ".cvmfscatalog",
        "hub/models--acme--tiny/.cvmfscatalog",
        "models/acme/.cvmfscatalog",
    ]
    # staged blobs are gone once published
    assert not any(p.is_file() for p in (pub.p.staging_root / "blobs").rglob("*"))
    # the published tree is what the overlay showed
    assert cvmfs.tree(cvmfs.repo / "mirror").keys() == tree.keys()


def test_nothing_written_opens_no_transaction(cvmfs: Cvmfs, pub: Pub) -> None:
    with pub.p.transaction(), pub.p.transaction():
        pass
    assert pub.p.replace_link(pub.root / "x", "y") is True  # a write on its own publishes
    with pub.p.transaction():
        assert pub.p.replace_link(pub.root / "x", "y") is False
        assert pub.p.remove(pub.root / "absent") is False
    assert cvmfs.commands() == [["transaction", REPOSITORY], ["publish", REPOSITORY]]


def test_failure_inside_transaction_aborts_and_the_tree_is_as_before(
    cvmfs: Cvmfs, pub: Pub
) -> None:
    with pub.p.transaction():
        _revision(pub, FILES)
    before = cvmfs.tree()
    cvmfs.clear()
    with pytest.raises(RuntimeError, match="killed"), pub.p.transaction():
        pub.p.write_file(pub.root / "catalogue.json", b'{"half": true}')
        pub.p.remove(pub.root / "models/acme/tiny@main")
        raise RuntimeError("killed half-way")
    assert cvmfs.commands() == [["transaction", REPOSITORY], ["abort", "-f", REPOSITORY]]
    assert cvmfs.tree() == before and not cvmfs.in_transaction()
    assert not (pub.p.state_dir / TRANSACTION_RECORD).exists()


def test_failed_publish_is_aborted(cvmfs: Cvmfs, pub: Pub, monkeypatch: pytest.MonkeyPatch) -> None:
    before = cvmfs.tree()
    monkeypatch.setenv("CVMFS_STANDIN_FAIL", "publish")
    with (
        pytest.raises(CvmfsError, match="aborted, nothing of it is published"),
        pub.p.transaction(),
    ):
        _revision(pub, FILES)
    assert cvmfs.commands() == [
        ["transaction", REPOSITORY],
        ["publish", REPOSITORY],
        ["abort", "-f", REPOSITORY],
    ]
    assert [c["rc"] for c in cvmfs.calls() if c["argv"][0] != "list"] == [0, 1, 0]
    assert cvmfs.tree() == before and not cvmfs.in_transaction()
    # the verified bytes stay staged: the next run does not download them again
    staged = pub.p.blob_fetch_path(
        pub.root / "hub/models--acme--tiny/blobs" / hashlib.sha256(FILES["config.json"]).hexdigest()
    )
    assert staged.read_bytes() == FILES["config.json"]


def test_failed_build_leaves_nothing_in_a_transaction_that_goes_on(cvmfs: Cvmfs, pub: Pub) -> None:
    final = pub.root / "models/acme/broken@main"

    def build(d: Path) -> None:
        (d / "config.json").write_bytes(b"{}")
        raise NlmrError("bad revision")

    with pub.p.transaction():
        with pytest.raises(NlmrError):  # the engine catches this and goes on
            pub.p.publish_dir(final, build)
        pub.p.write_file(pub.root / "catalogue.json", b"{}")
    assert not os.path.lexists(final)
    assert (pub.root / "catalogue.json").read_bytes() == b"{}"
    assert "mirror/models/acme/broken@main" not in cvmfs.tree(cvmfs.published)


KILLED_RUN = """
import os, sys
from pathlib import Path
from nlmr.sync.cvmfs import CvmfsPublisher
from nlmr.target import CvmfsSettings, Target
root, staging, repo = sys.argv[1:4]
t = Target(name="cvmfs-test", root=Path(root), backend="cvmfs",
           cvmfs=CvmfsSettings(repository=repo, staging=staging))
p = CvmfsPublisher(t)
p.prepare_root()
p.prepare()
with p.transaction():
    p.write_file(Path(root) / "catalogue.json", b"half-written")
    os._exit(9)  # SIGKILL-like: no cleanup, no abort
"""


def test_stale_transaction_of_a_killed_run_is_aborted_and_said(
    cvmfs: Cvmfs, tmp_path: Path
) -> None:
    target = make_target(cvmfs, tmp_path)
    killed = subprocess.run(
        [sys.executable, "-c", KILLED_RUN, str(target.root), str(tmp_path / "staging"), REPOSITORY],
        capture_output=True,
        text=True,
    )
    assert killed.returncode == 9, killed.stderr
    assert cvmfs.in_transaction() and (tmp_path / "staging" / TRANSACTION_RECORD).exists()
    assert (target.root / "catalogue.json").read_bytes() == b"half-written"  # in the overlay
    cvmfs.clear()
    pub = Pub(target)
    pub.p.prepare_root()
    pub.p.prepare()
    assert cvmfs.commands() == [["abort", "-f", REPOSITORY]]
    assert len(pub.warnings) == 1 and "did not finish" in pub.warnings[0]
    assert "abort -f" in pub.warnings[0]
    assert not cvmfs.in_transaction() and not os.path.lexists(target.root / "catalogue.json")
    assert not (tmp_path / "staging" / TRANSACTION_RECORD).exists()
    with pub.p.transaction():
        _revision(pub, FILES)
    assert (target.root / "catalogue.json").read_bytes() == b"{}"
    assert cvmfs.violations() == []


def test_a_transaction_nlmr_did_not_open_is_left_alone(cvmfs: Cvmfs, tmp_path: Path) -> None:
    subprocess.run(["cvmfs_server", "transaction", REPOSITORY], check=True, capture_output=True)
    cvmfs.clear()
    pub = Pub(make_target(cvmfs, tmp_path))
    pub.p.prepare_root()
    with pytest.raises(CvmfsError, match="did not open") as info:
        pub.p.prepare()
    assert "abort -f" in (info.value.hint or "")
    assert cvmfs.commands(skip_list=False) == [["list"]]
    assert cvmfs.in_transaction()


def test_root_and_staging_are_checked(cvmfs: Cvmfs, tmp_path: Path) -> None:
    target = make_target(cvmfs, tmp_path)
    with pytest.raises(UsageError, match="not a directory inside repository"):
        CvmfsPublisher(replace(target, root=tmp_path / "elsewhere"))
    with pytest.raises(UsageError, match="not a directory inside repository"):
        CvmfsPublisher(replace(target, root=cvmfs.repo))  # the repository root itself
    inside = CvmfsSettings(repository=REPOSITORY, staging=str(cvmfs.repo / "staging"))
    with pytest.raises(UsageError, match="outside /cvmfs"):
        CvmfsPublisher(replace(target, cvmfs=inside))
    default = CvmfsPublisher(replace(target, cvmfs=CvmfsSettings(repository=REPOSITORY)))
    assert default.state_dir == Path.home() / ".cache/nlmr/cvmfs-staging/cvmfs-test"
    assert default.lock_path.parent == default.state_dir  # writable outside transactions


def test_size_warning(cvmfs: Cvmfs, tmp_path: Path) -> None:
    pub = Pub(make_target(cvmfs, tmp_path, file_size_limit_mb=1))
    pub.p.prepare_root()
    pub.p.prepare()
    big, small = b"x" * (1024 * 1024 + 1), b"y" * (1024 * 1024)
    blobs = pub.root / "hub/models--acme--big/blobs"
    with pub.p.transaction():
        pub.p.place_blob(pub.stage(blobs / "big", big), blobs / "big")
        pub.p.place_blob(pub.stage(blobs / "small", small), blobs / "small")
    assert len(pub.warnings) == 1
    assert (
        "hub/models--acme--big/blobs/big is 1 MiB, above the repository's file size "
        in (pub.warnings[0])
    )
    assert "limit of 1 MB (CVMFS_FILE_MBYTE_LIMIT)" in pub.warnings[0]


def test_a_blob_copied_for_another_entry_goes_in_with_that_entry(cvmfs: Cvmfs, pub: Pub) -> None:
    data = b"same bytes in two entries"
    blob_id = hashlib.sha256(data).hexdigest()
    first = pub.root / "hub/models--acme--one/blobs" / blob_id
    second = pub.root / "hub/models--acme--two/blobs" / blob_id
    fetched = pub.stage(first, data)
    pub.p.copy_blob(fetched, pub.p.blob_fetch_path(second))  # as the engine does, outside
    with pub.p.transaction():
        pub.p.place_blob(fetched, first)
        pub.p.write_file(pub.root / "hub/models--acme--two/trees/x.json", b"{}")
    assert second.read_bytes() == data and first.read_bytes() == data


def test_remove_inside_a_transaction(cvmfs: Cvmfs, pub: Pub) -> None:
    with pub.p.transaction():
        _revision(pub, FILES)
    cvmfs.clear()
    with pub.p.transaction():
        assert pub.p.remove(pub.root / "models/acme/tiny")
        assert pub.p.remove(pub.root / "models/acme/tiny@main")
        assert pub.p.remove(pub.root / "hub/models--acme--tiny")
    assert cvmfs.commands() == [["transaction", REPOSITORY], ["publish", REPOSITORY]]
    published = cvmfs.tree(cvmfs.published / "mirror")
    assert not any(k.startswith(("hub/models--acme--tiny", "models/acme/tiny")) for k in published)


# -- gateway leases --------------------------------------------------------------------------


def test_gateway_leases_follow_the_units_written(cvmfs: Cvmfs, tmp_path: Path) -> None:
    pub = Pub(make_target(cvmfs, tmp_path, gateway=True))
    pub.p.prepare_root()
    pub.p.prepare()
    with pub.p.transaction():
        _revision(pub, FILES)
    # the parent of a leased path must exist: on an empty repository the first unit
    # (hub/models--acme--tiny) is leased at its topmost missing ancestor, which covers
    # everything that follows in the transaction
    assert cvmfs.commands() == [
        ["transaction", f"{REPOSITORY}/mirror"],
        ["publish", REPOSITORY],
    ]
    cvmfs.clear()
    with pub.p.transaction():
        _revision(pub, FILES, "beta/two")
    hub = f"{REPOSITORY}/mirror/hub/models--beta--two"
    assert cvmfs.commands() == [
        ["transaction", hub],  # blobs, trees, snapshot
        ["publish", REPOSITORY],
        ["transaction", f"{REPOSITORY}/mirror/models/beta"],  # beta/two@main, the beta/two link
        ["publish", REPOSITORY],
        ["transaction", hub],  # refs/main
        ["publish", REPOSITORY],
        ["transaction", f"{REPOSITORY}/mirror"],  # catalogue.json
        ["publish", REPOSITORY],
    ]
    assert cvmfs.violations() == []  # the emulated gateway dropped nothing outside a lease
    assert (pub.root / "models/beta/two/config.json").read_bytes() == FILES["config.json"]
    published = cvmfs.tree(cvmfs.published / "mirror")
    assert sorted(k for k in published if k.endswith(CATALOG_MARKER)) == [
        ".cvmfscatalog",
        "hub/models--acme--tiny/.cvmfscatalog",
        "hub/models--beta--two/.cvmfscatalog",
        "models/acme/.cvmfscatalog",
        "models/beta/.cvmfscatalog",
    ]
    root = pub.root
    assert pub.p.unit(root / "hub/models--acme--tiny/blobs/x") == "mirror/hub/models--acme--tiny"
    assert pub.p.unit(root / "models/acme/tiny@main/a/b") == "mirror/models/acme"
    assert pub.p.unit(root / "models/acme") == "mirror/models/acme"
    assert pub.p.unit(root / "models/acme-labs/x") == "mirror/models/acme-labs"
    assert pub.p.unit(root / "modulefiles/nlmr-mirror/t.lua") == "mirror"


def test_a_write_outside_the_lease_would_be_dropped(cvmfs: Cvmfs) -> None:
    """The stand-in drops changes outside the lease as the gateway does; nlmr never makes
    one, but the check must be able to see it."""
    run = subprocess.run
    missing = run(["cvmfs_server", "transaction", f"{REPOSITORY}/mirror/hub"], capture_output=True)
    assert missing.returncode == 1 and b"non-existing path /mirror" in missing.stderr
    run(["cvmfs_server", "transaction", f"{REPOSITORY}/mirror"], check=True, capture_output=True)
    (cvmfs.repo / "mirror/hub/x").mkdir(parents=True)
    (cvmfs.repo / "other").write_bytes(b"outside")
    run(["cvmfs_server", "publish", REPOSITORY], check=True, capture_output=True)
    assert (cvmfs.repo / "mirror/hub/x").is_dir() and not (cvmfs.repo / "other").exists()
    assert cvmfs.violations()[0]["paths"] == ["other"]


def test_gateway_lease_conflicts_by_string_prefix(
    cvmfs: Cvmfs, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pub = Pub(make_target(cvmfs, tmp_path, gateway=True))
    pub.p.prepare_root()
    pub.p.prepare()
    with pub.p.transaction():
        _revision(pub, FILES)
    # another publisher holds `mirror-test`: `mirror` is a string prefix of it
    monkeypatch.setenv("CVMFS_STANDIN_FOREIGN_LEASE", f"{REPOSITORY}/mirror-test")
    blob = pub.root / "hub/models--acme--tiny/blobs/b"
    pub.p.place_blob(pub.stage(blob, b"b"), blob)  # its own lease: no conflict
    with pytest.raises(CvmfsError, match="transaction") as info:
        pub.p.write_file(pub.root / "catalogue.json", b"[]")
    assert "string prefix" in (info.value.hint or "")
    assert blob.read_bytes() == b"b" and not cvmfs.in_transaction()
    assert not (pub.p.state_dir / TRANSACTION_RECORD).exists()


# -- ingest mode -----------------------------------------------------------------------------


def _ingests(cvmfs: Cvmfs) -> list[dict[str, Any]]:
    return [c for c in cvmfs.calls() if c["argv"][0] == "ingest"]


def test_ingest_streams_one_tar_per_unit(cvmfs: Cvmfs, tmp_path: Path) -> None:
    pub = Pub(make_target(cvmfs, tmp_path, mode="ingest"))
    pub.p.prepare_root()
    pub.p.prepare()
    with pub.p.transaction():
        _revision(pub, FILES)
        assert cvmfs.commands() == []  # nothing until the outermost transaction ends
    hub = "mirror/hub/models--acme--tiny"
    assert cvmfs.commands() == [
        ["ingest", "-t", "-", "-b", hub, "-c", REPOSITORY],
        ["ingest", "-t", "-", "-b", "mirror/models/acme", "-c", REPOSITORY],
        ["ingest", "-t", "-", "-b", "mirror", "-c", REPOSITORY],
    ]
    tars = [{m["name"]: m for m in c["members"]} for c in _ingests(cvmfs)]
    cfg = hashlib.sha256(FILES["config.json"]).hexdigest()
    w = hashlib.sha256(FILES["sub/w.safetensors"]).hexdigest()
    assert sorted(tars[0]) == sorted(
        [
            "blobs",
            f"blobs/{cfg}",
            f"blobs/{w}",
            "refs",
            "refs/main",
            "snapshots",
            "snapshots/rev1",
            "snapshots/rev1/config.json",
            "snapshots/rev1/sub",
            "snapshots/rev1/sub/w.safetensors",
            "trees",
            "trees/rev1.json",
        ]
    )
    m = tars[0]
    assert (m["blobs"]["type"], m["blobs"]["mode"]) == ("dir", "0o755")
    assert (m[f"blobs/{w}"]["type"], m[f"blobs/{w}"]["mode"]) == ("file", "0o444")
    assert m[f"blobs/{w}"]["size"] == len(FILES["sub/w.safetensors"])
    assert (m["snapshots/rev1"]["type"], m["snapshots/rev1"]["mode"]) == ("dir", "0o555")
    assert m["snapshots/rev1/sub/w.safetensors"]["type"] == "link"
    assert m["snapshots/rev1/sub/w.safetensors"]["linkname"] == f"../../../blobs/{w}"
    p = tars[1]
    assert sorted(p) == [
        "tiny",
        "tiny@main",
        "tiny@main/README.md",
        "tiny@main/config.json",
        "tiny@main/sub",
        "tiny@main/sub/w.safetensors",
    ]
    assert (p["tiny"]["type"], p["tiny"]["linkname"]) == ("link", "tiny@main")
    assert (p["tiny@main"]["mode"], p["tiny@main/sub"]["mode"]) == ("0o555", "0o555")
    assert (p["tiny@main/README.md"]["type"], p["tiny@main/README.md"]["mode"]) == ("file", "0o444")
    link = p["tiny@main/sub/w.safetensors"]
    assert (link["type"], link["linkname"]) == (
        "link",
        f"../../../../hub/models--acme--tiny/blobs/{w}",
    )
    assert sorted(tars[2]) == ["catalogue.json"]
    # the repository after ingest: symlinks resolve, nested catalogs where asked
    root = pub.root
    for rel, data in FILES.items():
        assert (root / "models/acme/tiny" / rel).read_bytes() == data
        assert (root / "hub/models--acme--tiny/snapshots/rev1" / rel).read_bytes() == data
    for unit in ("", "hub/models--acme--tiny", "models/acme"):
        assert (root / unit / CATALOG_MARKER).exists()
    assert cvmfs.violations() == [] and not cvmfs.in_transaction()
    assert not any(p.is_file() for p in (pub.p.staging_root / "blobs").rglob("*"))
    assert not list(pub.p.staging_root.glob("build-*"))
    # a second ingest into an existing unit does not ask for its catalog again
    cvmfs.clear()
    pub.p.write_file(root / "hub/models--acme--tiny/refs/v2", b"b" * 40)
    assert cvmfs.commands() == [["ingest", "-t", "-", "-b", hub, REPOSITORY]]


def test_ingest_removals_follow_additions(cvmfs: Cvmfs, tmp_path: Path) -> None:
    pub = Pub(make_target(cvmfs, tmp_path, mode="ingest"))
    pub.p.prepare_root()
    pub.p.prepare()
    with pub.p.transaction():
        _revision(pub, FILES)
    cvmfs.clear()
    with pub.p.transaction():
        pub.p.write_file(pub.root / "catalogue.json", b"[]")
        pub.p.remove(pub.root / "hub/models--acme--tiny")
        pub.p.remove(pub.root / "models/acme/tiny@main")
        pub.p.remove(pub.root / "models/acme/tiny")
    assert cvmfs.commands() == [
        ["ingest", "-t", "-", "-b", "mirror", REPOSITORY],
        # links and plain directories before the blobs they point to
        [
            "ingest",
            *("-d", "mirror/models/acme/tiny@main"),
            *("-d", "mirror/models/acme/tiny"),
            *("-d", "mirror/hub/models--acme--tiny"),
            REPOSITORY,
        ],
    ]
    assert not os.path.lexists(pub.root / "models/acme/tiny")
    assert not (pub.root / "hub/models--acme--tiny").exists()


def test_ingest_through_a_gateway(
    cvmfs: Cvmfs, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ingest leases its base, whose parent must exist: missing parents are made first,
    by an ingest under the topmost missing one. Removals go one path per call."""
    monkeypatch.setenv("CVMFS_STANDIN_GATEWAY", "1")
    pub = Pub(make_target(cvmfs, tmp_path, mode="ingest", gateway=True))
    pub.p.prepare_root()
    pub.p.prepare()
    with pub.p.transaction():
        _revision(pub, FILES)
    assert cvmfs.commands() == [
        # the hub unit's tar goes in at mirror: it leases its base, whose parent must exist
        ["ingest", "-t", "-", "-b", "mirror", "-c", REPOSITORY],
        ["ingest", "-t", "-", "-b", "mirror/models", REPOSITORY],  # below missing mirror/models
        ["ingest", "-t", "-", "-b", "mirror", REPOSITORY],
    ]
    first = [m["name"] for m in _ingests(cvmfs)[0]["members"]]
    assert first[:3] == ["hub", "hub/models--acme--tiny", "hub/models--acme--tiny/.cvmfscatalog"]
    second = [m["name"] for m in _ingests(cvmfs)[1]["members"]]
    assert second[:2] == ["acme", "acme/.cvmfscatalog"]
    published = cvmfs.tree(cvmfs.published / "mirror")
    assert sorted(k for k in published if k.endswith(CATALOG_MARKER)) == [
        ".cvmfscatalog",
        "hub/models--acme--tiny/.cvmfscatalog",
        "models/acme/.cvmfscatalog",
    ]
    assert (pub.root / "models/acme/tiny/config.json").read_bytes() == FILES["config.json"]
    cvmfs.clear()
    with pub.p.transaction():
        pub.p.remove(pub.root / "models/acme/tiny@main")
        pub.p.remove(pub.root / "models/acme/tiny")
    assert cvmfs.commands() == [
        ["ingest", "-d", "mirror/models/acme/tiny@main", REPOSITORY],
        ["ingest", "-d", "mirror/models/acme/tiny", REPOSITORY],
    ]


def test_failed_ingest_publishes_nothing(
    cvmfs: Cvmfs, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pub = Pub(make_target(cvmfs, tmp_path, mode="ingest"))
    pub.p.prepare_root()
    pub.p.prepare()
    before = cvmfs.tree()
    monkeypatch.setenv("CVMFS_STANDIN_FAIL", "ingest")
    with pytest.raises(CvmfsError, match="nothing of it is published"), pub.p.transaction():
        _revision(pub, FILES)
    assert cvmfs.tree() == before and not cvmfs.in_transaction()
    assert len(cvmfs.commands()) == 1  # the first unit failed; the others were not tried
    assert not list(pub.p.staging_root.glob("build-*"))
    staged = list((pub.p.staging_root / "blobs").rglob("*"))
    assert sum(p.is_file() for p in staged) == len(FILES)  # kept for the next run


def test_ingest_is_refused_while_a_transaction_is_open(cvmfs: Cvmfs, tmp_path: Path) -> None:
    """ingest opens its own transaction: the stand-in refuses, as cvmfs_server does."""
    subprocess.run(["cvmfs_server", "transaction", REPOSITORY], check=True, capture_output=True)
    done = run_command(["cvmfs_server", "ingest", "-t", "-", "-b", "x", REPOSITORY], _tar_feed([]))
    assert done.returncode == 1 and "already in a transaction" in done.output


def test_a_tar_stream_that_breaks_fails_the_ingest(cvmfs: Cvmfs, tmp_path: Path) -> None:
    """A source file that shrinks mid-stream: the feed ends the tar with a member that
    promises bytes that never come, so even a reader that would take a clean end between
    members as the end of the archive fails. The default runner also stops the command."""
    src = tmp_path / "shrinks"
    src.write_bytes(b"0123456789")
    ti = tarfile.TarInfo("a")
    ti.size = 10
    ok = tarfile.TarInfo("first")
    ok.size = 2
    src2 = tmp_path / "ok"
    src2.write_bytes(b"ok")
    feed = _tar_feed([(ok, src2), (ti, src)])
    src.write_bytes(b"01234")
    args = ["cvmfs_server", "ingest", "-t", "-", "-b", "mirror", REPOSITORY]

    def no_kill(a: list[str], f: Callable[..., None] | None) -> Any:
        proc = subprocess.Popen(
            a, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        assert proc.stdin is not None and f is not None
        with pytest.raises(OSError, match="shorter than"):
            f(proc.stdin)
        proc.stdin.close()
        return proc.wait()

    assert no_kill(args, feed) == 1
    assert not (cvmfs.repo / "mirror").exists()
    with pytest.raises(OSError, match="shorter than"):
        run_command(args, feed)
    assert not (cvmfs.repo / "mirror").exists() and not cvmfs.in_transaction()


# -- end to end: the sync engine, a local store, the stand-in ------------------------------

CARD = {
    "title": "Tiny model",
    "summary": "A tiny test model.",
    "license": "Apache-2.0",
    "languages": ["nb"],
    "creators": [{"name": "Test"}],
    "maintainers": ["tester"],
}
TOKENIZER = b'{"version": "1.0", "shared": true}'  # in both entries: copied, then placed
E2E = {
    "acme/tiny": {
        "config.json": b'{"model_type": "bert"}',
        "model.safetensors": ST + b"w" * 5000,
        "tokenizer.json": TOKENIZER,
        "sub/extra.txt": b"nested file",
    },
    "acme/other": {"config.json": b'{"other": 1}', "tokenizer.json": TOKENIZER},
}


@pytest.fixture
def registry_with_store(tmp_path: Path) -> Path:
    from nlmr.add import add

    reg = tmp_path / "registry"
    (reg / "models").mkdir(parents=True)
    (reg / "datasets").mkdir()
    write_dvc_config(reg, str(tmp_path / "store"))
    for i, (entry_id, files) in enumerate(E2E.items()):
        src = tmp_path / f"src{i}"
        for rel, data in files.items():
            (src / rel).parent.mkdir(parents=True, exist_ok=True)
            (src / rel).write_bytes(data)
        add(str(src), entry_id, registry=reg, card_fields=CARD, progress=False)
    return reg


MODES = [
    pytest.param({}, id="transaction"),
    pytest.param({"gateway": True}, id="gateway"),
    pytest.param({"mode": "ingest"}, id="ingest"),
    pytest.param({"mode": "ingest", "gateway": True}, id="ingest-gateway"),
]


@pytest.mark.parametrize("settings", MODES)
def test_sync_end_to_end(
    cvmfs: Cvmfs,
    tmp_path: Path,
    registry_with_store: Path,
    settings: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from nlmr.sync.check import check_mirror
    from nlmr.sync.engine import make_publisher, sync

    if settings.get("gateway"):
        monkeypatch.setenv("CVMFS_STANDIN_GATEWAY", "1")

    target = make_target(cvmfs, tmp_path, **settings)
    assert isinstance(make_publisher(target), CvmfsPublisher)
    warnings: list[str] = []
    report = sync(target, registry=registry_with_store, progress=False, warn=warnings.append)
    assert report.ok, report.to_dict()
    assert sorted(report.published) == ["acme/other@main", "acme/tiny@main"]
    assert report.link_mode == "symlink" and warnings == []
    assert cvmfs.violations() == [] and not cvmfs.in_transaction()
    root = target.root
    for entry_id, files in E2E.items():
        name = entry_id.split("/")[1]
        for rel, data in files.items():
            plain = root / "models/acme" / f"{name}@main" / rel
            assert (root / "models/acme" / name / rel).read_bytes() == data
            assert plain.is_symlink()
            assert os.path.realpath(plain).startswith(str(root / f"hub/models--acme--{name}/blobs"))
            snap = next((root / f"hub/models--acme--{name}/snapshots").iterdir())
            assert (snap / rel).read_bytes() == data
    assert (root / "hub/models--acme--other/refs/main").read_bytes().isalnum()
    assert (root / "nlmr-env.sh").exists() and (root / "catalogue.json").exists()
    assert check_mirror(root, deep=True).ok
    published = cvmfs.tree(cvmfs.published / "mirror")
    overlay = cvmfs.tree(root)  # chmod a-w by the stand-in outside transactions
    assert {k: (t, m & ~0o222, c) for k, (t, m, c) in published.items()} == overlay
    # published files are read-only (ingest -c writes its own catalog marker)
    modes = {k: m for k, (t, m, _) in published.items() if t == "file"}
    assert {k: m for k, m in modes.items() if m != 0o444 and CATALOG_MARKER not in k} == {}
    markers = sorted(k for k in published if k.endswith(CATALOG_MARKER))
    assert markers == [
        ".cvmfscatalog",
        "hub/models--acme--other/.cvmfscatalog",
        "hub/models--acme--tiny/.cvmfscatalog",
        "models/acme/.cvmfscatalog",
    ]
    commands = cvmfs.commands()
    if settings.get("mode") == "ingest":
        assert {c[0] for c in commands} == {"ingest"}
    else:
        assert {c[0] for c in commands} == {"transaction", "publish"}
        leases = {c[1] for c in commands if c[0] == "transaction"}
        if settings.get("gateway"):
            assert leases == {
                f"{REPOSITORY}/mirror",
                f"{REPOSITORY}/mirror/hub/models--acme--other",
                f"{REPOSITORY}/mirror/hub/models--acme--tiny",
                f"{REPOSITORY}/mirror/models/acme",
            }
        else:
            assert leases == {REPOSITORY}
    # a second run changes nothing and runs no cvmfs_server command
    cvmfs.clear()
    again = sync(target, registry=registry_with_store, progress=False)
    assert again.ok and again.published == [] and cvmfs.commands(skip_list=False) == []
    # an entry gone from the registry goes away (grace 0), through the backend
    shutil.rmtree(registry_with_store / "models/acme/other")
    gone = sync(replace(target, grace=0), registry=registry_with_store, progress=False)
    assert gone.removed == ["acme/other@main"]
    assert not (root / "hub/models--acme--other").exists()
    assert not os.path.lexists(root / "models/acme/other")
    assert (root / "models/acme/tiny/tokenizer.json").read_bytes() == TOKENIZER
    assert check_mirror(root, deep=True).ok
    assert cvmfs.violations() == [] and not cvmfs.in_transaction()


def test_sync_plain_only_copies_bytes_into_the_repository(
    cvmfs: Cvmfs, tmp_path: Path, registry_with_store: Path
) -> None:
    """Without the hub layout the blobs stay private in staging, so the plain tree gets
    copies (CVMFS stores equal content once)."""
    from nlmr.sync.check import check_mirror
    from nlmr.sync.engine import sync

    target = replace(make_target(cvmfs, tmp_path, mode="ingest"), layouts=("plain",))
    report = sync(target, registry=registry_with_store, progress=False)
    assert report.ok and report.link_mode == "copy"
    plain = target.root / "models/acme/tiny@main/config.json"
    assert not plain.is_symlink() and plain.read_bytes() == E2E["acme/tiny"]["config.json"]
    assert not (target.root / "hub").exists()
    assert check_mirror(target.root, deep=True).ok
    assert cvmfs.violations() == []
