"""The per-file manifest of a revision, and what can be derived from it.

A manifest lists every file of a revision with its size and four digests:
sha256 (the Hub's LFS id; what nlmr verifies), md5 (DVC's object address),
git blob sha1 (the Hub's id for small files) and whether the file is LFS-style.
From it alone nlmr derives the DVC directory object (so the DVC pointer can be
checked without touching the store) and, for direct uploads, the revision id.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

#: File suffixes of pickle-based weight formats; loading them can execute code.
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")

#: Path components the Hugging Face layouts (and nlmr's own trees) reserve.
RESERVED_COMPONENTS = frozenset({".git", ".no_exist", ".locks", ".huggingface"})
#: Suffixes huggingface_hub uses for its temporary and lock files.
RESERVED_SUFFIXES = (".incomplete", ".lock")


@dataclass(frozen=True)
class ManifestFile:
    """One file of a revision.

    Attributes:
        path: POSIX path relative to the revision root.
        size: bytes.
        sha256, md5, git_sha1: lowercase hex digests of the content.
        lfs: whether the Hub stores it in LFS (its hub-cache blob is named by sha256).
    """

    path: str
    size: int
    sha256: str
    md5: str
    git_sha1: str
    lfs: bool

    @property
    def blob_id(self) -> str:
        """The blob name in a Hugging Face cache: sha256 for LFS files, else git sha1."""
        return self.sha256 if self.lfs else self.git_sha1

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ManifestFile:
        return cls(
            path=data["path"],
            size=int(data["size"]),
            sha256=data["sha256"],
            md5=data["md5"],
            git_sha1=data["git_sha1"],
            lfs=bool(data["lfs"]),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "size": self.size,
            "sha256": self.sha256,
            "md5": self.md5,
            "git_sha1": self.git_sha1,
            "lfs": self.lfs,
        }


@dataclass(frozen=True)
class Manifest:
    """All files of one revision, sorted by path.

    Attributes:
        files: the files.
        auto_map: config.json's ``auto_map`` when the revision needs custom code.
    """

    files: tuple[ManifestFile, ...]
    auto_map: Mapping[str, Any] | None = field(default=None)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Manifest:
        return cls(
            files=tuple(sorted((ManifestFile.from_dict(f) for f in data["files"]), key=_path_key)),
            auto_map=data.get("auto_map"),
        )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"schema_version": 1, "files": [f.to_dict() for f in self.files]}
        if self.auto_map is not None:
            out["auto_map"] = dict(self.auto_map)
        return out

    def to_json(self) -> str:
        """The canonical file form (stable key order, one file per line block)."""
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False) + "\n"

    @property
    def total_size(self) -> int:
        return sum(f.size for f in self.files)

    @property
    def needs_remote_code(self) -> bool:
        """True when loading runs code shipped with the model (``auto_map`` or ``.py`` files)."""
        return bool(self.auto_map) or any(f.path.endswith(".py") for f in self.files)

    def dvc_dir_object(self) -> bytes:
        """The bytes of DVC's ``.dir`` object for this file set.

        DVC 3 writes ``json.dumps(sorted entries, sort_keys=True)`` with entries
        ``{"md5": …, "relpath": …}`` sorted by relpath (dvc-data ``Tree.as_bytes``).
        """
        entries = sorted(
            ({"md5": f.md5, "relpath": f.path} for f in self.files), key=lambda e: e["relpath"]
        )
        return json.dumps(entries, sort_keys=True).encode("utf-8")

    def dvc_dir_md5(self) -> str:
        """md5 of :meth:`dvc_dir_object` with DVC's ``.dir`` suffix, as in the pointer."""
        return hashlib.md5(self.dvc_dir_object()).hexdigest() + ".dir"

    def derived_revision_id(self) -> str:
        """The 40-hex id of a revision that mirrors no upstream commit.

        It depends only on the file set (paths, sizes, sha256), so re-adding the
        same files gives the same id and any change gives a new one.
        """
        h = hashlib.sha1(b"nlmr-revision-v1\n")
        for f in self.files:
            h.update(f"{f.sha256} {f.size} {f.path}\n".encode())
        return h.hexdigest()


def _path_key(f: ManifestFile) -> str:
    return f.path


def path_problems(paths: Iterable[str]) -> list[tuple[int, str]]:
    """Check manifest paths; return ``(index, message)`` for each bad one.

    Paths must be relative, normalised POSIX paths without ``..``, backslashes,
    control characters or names the Hugging Face cache layout reserves, and be
    unique even when case is folded (the mirror may live on a case-insensitive
    filesystem, and the Hub itself is case-sensitive).
    """
    problems: list[tuple[int, str]] = []
    seen: dict[str, int] = {}
    originals: dict[str, str] = {}
    for i, path in enumerate(paths):
        message = _path_problem(path)
        if message:
            problems.append((i, message))
            continue
        folded = unicodedata.normalize("NFC", path).casefold()
        if folded in seen:
            j = seen[folded]
            how = "" if originals[folded] == path else " when case is folded"
            problems.append((i, f"duplicate path {path!r} (same as files[{j}]{how})"))
        else:
            seen[folded] = i
            originals[folded] = path
    return problems


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _path_problem(path: str) -> str | None:
    if not path:
        return "empty path"
    if "\\" in path:
        return f"{path!r} contains a backslash; use '/' between directories"
    if _CONTROL.search(path):
        return f"{path!r} contains a control character"
    if path.startswith("/") or (len(path) > 1 and path[1] == ":"):
        return f"{path!r} is absolute; paths are relative to the revision root"
    parts = path.split("/")
    if ".." in parts:
        return f"{path!r} contains '..'"
    if posixpath.normpath(path) != path or "" in parts or "." in parts:
        return f"{path!r} is not normalised (write {posixpath.normpath(path)!r})"
    if unicodedata.normalize("NFC", path) != path:
        return f"{path!r} is not in Unicode NFC form"
    for part in parts:
        if part in RESERVED_COMPONENTS:
            return f"{path!r} uses the reserved name {part!r}"
    if parts[0].startswith(".nlmr"):
        return f"{path!r}: names starting with '.nlmr' are reserved for nlmr's own files"
    if parts[:2] == [".cache", "huggingface"]:
        return f"{path!r} is under '.cache/huggingface', which huggingface_hub reserves"
    for suffix in RESERVED_SUFFIXES:
        if path.endswith(suffix):
            return f"{path!r} ends in {suffix!r}, which huggingface_hub uses for temporary files"
    return None


def is_pickle(path: str) -> bool:
    """True for file names of pickle-based formats."""
    return path.lower().endswith(PICKLE_SUFFIXES)
