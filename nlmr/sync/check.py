"""Checking a published mirror: everything readers can see is complete and consistent.

Two kinds of checks. Structural ones need nothing but the tree, so they hold at every
instant, even right after a sync was killed: each visible revision directory is whole
(its provenance record matches what is there), each snapshot's links resolve, each ref
names an existing snapshot in exactly 40 hex characters, each default link resolves,
and no temporary file is visible. Catalogue checks compare the tree with
``catalogue.json``: every revision it lists is present with the right sizes, and with
``deep`` the right sha256.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nlmr.catalogue import CATALOGUE_FILE, load_catalogue
from nlmr.layout import (
    HUB_DIR,
    KIND_DIRS,
    PROVENANCE_FILE,
    hub_repo_dir,
    plain_dir,
    plain_link,
    plain_name,
)
from nlmr.sync.publisher import STATE_DIR

_HEX40 = re.compile(rb"^[0-9a-f]{40}$")
_TEMP_SUFFIXES = (".tmp", ".partial", ".incomplete")


@dataclass
class MirrorCheck:
    root: str
    revisions: int = 0
    files: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {
            "root": self.root,
            "ok": self.ok,
            "revisions": self.revisions,
            "files": self.files,
            "problems": self.problems,
        }


def check_mirror(root: str | os.PathLike[str], *, deep: bool = False) -> MirrorCheck:
    """Check the tree at ``root`` (structure, then against its catalogue).

    Args:
        deep: also hash every file of every catalogued revision (reads all bytes).
    """
    top = Path(root)
    report = MirrorCheck(str(top))
    _structure(top, report)
    _against_catalogue(top, report, deep)
    return report


def _structure(top: Path, report: MirrorCheck) -> None:
    for dirpath, dirnames, filenames in os.walk(top):
        d = Path(dirpath)
        if d == top and STATE_DIR in dirnames:
            dirnames.remove(STATE_DIR)
        for name in filenames + dirnames:
            if name.endswith(_TEMP_SUFFIXES):
                report.problems.append(f"{d / name}: a temporary file is visible")
    for kind_dir in KIND_DIRS.values():
        base = top / kind_dir
        if not base.is_dir():
            continue
        for org in sorted(os.listdir(base)):
            for name in sorted(os.listdir(base / org)):
                path = base / org / name
                if path.is_symlink():
                    if not path.is_dir():
                        report.problems.append(f"{path}: the default link does not resolve")
                    continue
                if "@" in name and path.is_dir():
                    _plain_revision(path, report)
    hub = top / HUB_DIR
    if hub.is_dir():
        if (hub / "blobs").exists():
            report.problems.append(f"{hub / 'blobs'}: reserved by huggingface_hub 2.x")
        for repo in sorted(hub.iterdir()):
            if repo.is_dir():
                _hub_repo(repo, report)


def _plain_revision(path: Path, report: MirrorCheck) -> None:
    try:
        prov = json.loads((path / PROVENANCE_FILE).read_bytes())
    except (OSError, ValueError):
        report.problems.append(f"{path}: no readable {PROVENANCE_FILE}")
        return
    count = 0
    size = 0
    for dirpath, _, filenames in os.walk(path):
        for name in filenames:
            p = Path(dirpath) / name
            rel = p.relative_to(path).as_posix()
            if rel in (PROVENANCE_FILE, prov.get("card")):
                continue
            try:
                size += p.stat().st_size
            except OSError:
                report.problems.append(f"{p}: does not resolve")
                continue
            count += 1
    expected = (prov.get("files"), prov.get("bytes"))
    if (count, size) != expected:
        report.problems.append(
            f"{path}: holds {count} file(s), {size} bytes; its provenance says "
            f"{expected[0]}, {expected[1]}"
        )


def _hub_repo(repo: Path, report: MirrorCheck) -> None:
    snapshots = repo / "snapshots"
    for snap in sorted(snapshots.iterdir()) if snapshots.is_dir() else []:
        for dirpath, _, filenames in os.walk(snap):
            for name in filenames:
                p = Path(dirpath) / name
                if not p.exists():
                    report.problems.append(f"{p}: does not resolve")
    refs = repo / "refs"
    for ref in sorted(refs.iterdir()) if refs.is_dir() else []:
        data = ref.read_bytes()
        if not _HEX40.match(data):
            report.problems.append(f"{ref}: not exactly 40 hex characters")
        elif not (snapshots / data.decode()).is_dir():
            report.problems.append(f"{ref}: names a missing snapshot {data.decode()}")


def _against_catalogue(top: Path, report: MirrorCheck, deep: bool) -> None:
    if not (top / CATALOGUE_FILE).is_file():
        return
    cat = load_catalogue(top / CATALOGUE_FILE)
    layouts = cat.target.get("layouts", ["plain", "hub"])
    for entry in cat.entries.values():
        repo = hub_repo_dir(top, entry.kind, entry.id)
        for rev in entry.revisions:
            report.revisions += 1
            places: list[Path] = []
            if "plain" in layouts:
                places.append(plain_dir(top, entry.kind, entry.id, rev.name))
            if "hub" in layouts:
                places.append(repo / "snapshots" / rev.id)
                if rev.name != "main":
                    ref = repo / "refs" / rev.name
                    try:
                        named = ref.read_bytes() == rev.id.encode()
                    except OSError:
                        named = False
                    if not named:
                        report.problems.append(f"{ref}: does not name {rev.id}")
            for place in places:
                for f in rev.files:
                    p = place / f.path
                    report.files += 1
                    try:
                        st = p.stat()
                    except OSError:
                        report.problems.append(f"{p}: missing ({entry.id}@{rev.name})")
                        continue
                    if st.st_size != f.size:
                        report.problems.append(f"{p}: {st.st_size} bytes, expected {f.size}")
                    elif deep and place == places[0] and _sha256(p) != f.sha256:
                        report.problems.append(f"{p}: sha256 differs from the manifest")
        default = entry.default_revision
        if default is None:
            continue
        if "plain" in layouts:
            link = plain_link(top, entry.kind, entry.id)
            try:
                target = os.readlink(link)
            except OSError:
                report.problems.append(f"{link}: no default link")
            else:
                if target != plain_name(entry.id, default):
                    report.problems.append(f"{link}: points to {target}, default is {default}")
        if "hub" in layouts:
            chosen = entry.revision(default)
            main = repo / "refs" / "main"
            if chosen is not None and (
                not main.exists() or main.read_bytes() != chosen.id.encode()
            ):
                report.problems.append(f"{main}: does not name the default {chosen.id}")


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(4 * 1024 * 1024):
            h.update(chunk)
    return h.hexdigest()
