"""``nlmr check-remote``: are a revision's objects really in the store?

DVC assumes that when a directory object exists, every file it lists does too
(dvc-data ``hashfile/status.py``), so ``dvc status -c`` and ``dvc push`` miss a
file object deleted under an existing directory object. This check does not:
for every stored revision it fetches the directory object, verifies its md5
against the pointer and its entries against the manifest, and checks every file
object for existence and size. ``deep`` streams each object and verifies md5
and sha256 as well. Nothing is downloaded to disk.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from nlmr import config
from nlmr.dvcfile import DvcPointer
from nlmr.errors import CardError, ObjectNotFoundError, StoreError
from nlmr.manifest import Manifest
from nlmr.registry import EntryPaths, entry_for_card
from nlmr.remote import resolve_remote
from nlmr.store import ObjectStore, dir_key, file_key
from nlmr.validate import find_cards, load_card
from nlmr.yamlio import load_path


@dataclass(frozen=True)
class RemoteProblem:
    """One thing wrong on the store.

    Attributes:
        entry: ``org/name@revision``.
        path: the file inside the revision (``<directory object>`` for the .dir).
        key: the object key.
        problem: ``missing``, ``size``, ``md5``, ``sha256``, ``dir-md5``, ``dir-mismatch``,
            ``unreadable``.
        message: for humans.
    """

    entry: str
    path: str
    key: str
    problem: str
    message: str

    def format(self) -> str:
        return f"{self.entry}: {self.path}: {self.message}"


@dataclass(frozen=True)
class RemoteReport:
    remote: str
    revisions: int
    objects: int
    deep: bool
    problems: tuple[RemoteProblem, ...]

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "remote": self.remote,
            "revisions": self.revisions,
            "objects": self.objects,
            "deep": self.deep,
            "problems": [asdict(p) for p in self.problems],
        }


def _stored_revisions(card_path: Path) -> list[tuple[str, EntryPaths, str, Manifest, DvcPointer]]:
    entry = entry_for_card(card_path)
    if entry is None:
        raise CardError(str(card_path), "not a card in a registry")
    card = load_card(card_path)
    out = []
    for rev in card.revisions:
        man, ptr = entry.manifest(rev.name), entry.pointer(rev.name)
        if man.is_file() and ptr.is_file():
            out.append(
                (
                    f"{card.id}@{rev.name}",
                    entry,
                    rev.name,
                    Manifest.from_dict(load_path(man).data),
                    DvcPointer.from_dict(load_path(ptr).data),
                )
            )
    return out


def _stream_digests(store: ObjectStore, key: str) -> tuple[int, str, str]:
    md5, sha256, size = hashlib.md5(), hashlib.sha256(), 0
    for block in store.iter_chunks(key):
        size += len(block)
        md5.update(block)
        sha256.update(block)
    return size, md5.hexdigest(), sha256.hexdigest()


def check_remote(
    paths: Sequence[str | os.PathLike[str]],
    *,
    remote: str | None = None,
    endpoint_url: str | None = None,
    deep: bool = False,
    jobs: int | None = None,
) -> RemoteReport:
    """Check every stored revision of the cards under ``paths`` against the store.

    Raises:
        CardError: a card is invalid (run ``nlmr validate``).
        RemoteConfigError: no store configured.
    """
    jobs = config.jobs(jobs)
    cards, layout = find_cards(paths)
    if layout:
        raise CardError(layout[0].path, layout[0].message)
    revisions = [r for c in cards for r in _stored_revisions(c)]
    problems: list[RemoteProblem] = []
    objects = 0
    if not revisions:
        return RemoteReport("", 0, 0, deep, ())
    remote_obj = resolve_remote(revisions[0][1].root, url=remote, endpoint_url=endpoint_url)
    store = remote_obj.open(jobs=jobs)
    for label, _entry, _name, manifest, pointer in revisions:
        dkey = dir_key(pointer.md5)
        objects += 1
        try:
            dir_bytes = store.get_bytes(dkey)
        except ObjectNotFoundError:
            problems.append(
                RemoteProblem(
                    label,
                    "<directory object>",
                    dkey,
                    "missing",
                    f"directory object {dkey} is missing",
                )
            )
            dir_bytes = None
        if dir_bytes is not None:
            actual = hashlib.md5(dir_bytes).hexdigest() + ".dir"
            if actual != pointer.md5:
                problems.append(
                    RemoteProblem(
                        label,
                        "<directory object>",
                        dkey,
                        "dir-md5",
                        f"directory object has md5 {actual}, pointer says {pointer.md5}",
                    )
                )
            else:
                problems += _compare_dir(label, dir_bytes, manifest, dkey)
        keys = {file_key(f.md5): f for f in manifest.files}
        objects += len(keys)
        sizes = store.sizes(list(keys), jobs=jobs)  # one listing when cheaper than HEADs
        present = []
        for key, f in keys.items():
            if sizes[key] is None:
                problems.append(
                    RemoteProblem(
                        label, f.path, key, "missing", f"object {key} is missing from {store.url}"
                    )
                )
            elif sizes[key] != f.size:
                problems.append(
                    RemoteProblem(
                        label,
                        f.path,
                        key,
                        "size",
                        f"object {key} has {sizes[key]} bytes, manifest says {f.size}",
                    )
                )
            else:
                present.append((key, f))
        if deep:
            problems += _deep(label, store, present, jobs)
    return RemoteReport(remote_obj.describe(), len(revisions), objects, deep, tuple(problems))


def _compare_dir(label: str, dir_bytes: bytes, manifest: Manifest, key: str) -> list[RemoteProblem]:
    try:
        entries = {e["relpath"]: e["md5"] for e in json.loads(dir_bytes)}
    except (ValueError, KeyError, TypeError):
        return [
            RemoteProblem(
                label,
                "<directory object>",
                key,
                "dir-mismatch",
                "directory object is not a DVC directory listing",
            )
        ]
    listed = {f.path: f.md5 for f in manifest.files}
    out = []
    for path in sorted(set(entries) | set(listed)):
        if entries.get(path) != listed.get(path):
            what = (
                "not in the manifest"
                if path not in listed
                else "not in the directory object"
                if path not in entries
                else f"md5 {entries[path]} in the directory object, {listed[path]} in the manifest"
            )
            out.append(RemoteProblem(label, path, key, "dir-mismatch", what))
    return out


def _deep(
    label: str, store: ObjectStore, items: list[tuple[str, Any]], jobs: int
) -> list[RemoteProblem]:
    def one(item: tuple[str, Any]) -> RemoteProblem | None:
        key, f = item
        try:
            size, md5, sha256 = _stream_digests(store, key)
        except StoreError as exc:
            return RemoteProblem(label, f.path, key, "unreadable", str(exc))
        if md5 != f.md5:
            return RemoteProblem(
                label, f.path, key, "md5", f"content md5 {md5}, expected {f.md5} (object corrupt)"
            )
        if sha256 != f.sha256:
            return RemoteProblem(
                label, f.path, key, "sha256", f"content sha256 {sha256}, expected {f.sha256}"
            )
        if size != f.size:
            return RemoteProblem(label, f.path, key, "size", f"{size} bytes, expected {f.size}")
        return None

    with concurrent.futures.ThreadPoolExecutor(max(1, min(jobs, 4))) as pool:
        return [p for p in pool.map(one, items) if p is not None]
