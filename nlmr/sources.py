"""What ``nlmr add`` reads from: a local directory, a Hugging Face cache snapshot, or a Hub repo.

* a directory as ``save_pretrained`` writes it (or any dataset directory);
* a snapshot in a Hugging Face cache, ``…/models--org--name/snapshots/<commit>`` (or the
  ``models--org--name`` directory itself, with ``--revision`` naming a ref or commit): the
  upstream repo and commit are recorded, and LFS-ness is read off the blob names;
* a Hub repo id, fetched with ``huggingface_hub.snapshot_download`` (online, or from the
  local cache with ``HF_HUB_OFFLINE=1``), then read as a snapshot.
"""

from __future__ import annotations

import fnmatch
import os
import re
from dataclasses import dataclass
from pathlib import Path

from nlmr.cards import Kind
from nlmr.errors import NlmrError, NotFoundError

_HEX40 = re.compile(r"^[0-9a-f]{40}$")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_CACHE_REPO = re.compile(r"^(models|datasets|spaces)--([^/]+?)--([^/]+)$")

#: Hugging Face's default .gitattributes LFS patterns (a new repo's), plus the Hub's rule that
#: files over 10 MiB go to LFS.
LFS_PATTERNS = (
    "*.7z",
    "*.arrow",
    "*.bin",
    "*.bz2",
    "*.ckpt",
    "*.ftz",
    "*.gz",
    "*.h5",
    "*.joblib",
    "*.lfs.*",
    "*.mlmodel",
    "*.model",
    "*.msgpack",
    "*.npy",
    "*.npz",
    "*.onnx",
    "*.ot",
    "*.parquet",
    "*.pb",
    "*.pickle",
    "*.pkl",
    "*.pt",
    "*.pth",
    "*.rar",
    "*.safetensors",
    "saved_model/**/*",
    "*.tar.*",
    "*.tar",
    "*.tflite",
    "*.tgz",
    "*.wasm",
    "*.xz",
    "*.zip",
    "*.zst",
    "*tfevents*",
    "*.gguf",
)
LFS_SIZE = 10 * 1024 * 1024

#: Directories never taken from a source: VCS data and huggingface_hub's local-dir state.
SKIP_DIRS = frozenset({".git", ".cache", ".huggingface", "__pycache__"})


class SourceError(NlmrError):
    """The source cannot be read as a model or dataset."""


@dataclass(frozen=True)
class SourceFile:
    """One file of a source: its path in the revision and where its bytes are."""

    relpath: str
    path: Path
    lfs: bool


@dataclass(frozen=True)
class SourceTree:
    """A source, resolved.

    Attributes:
        root: the directory read.
        files: sorted by relpath.
        upstream_repo, upstream_commit: set when the source is a Hugging Face snapshot.
        refs: upstream branch/tag names pointing at that commit.
        kind: ``dataset`` for a ``datasets--`` cache entry, ``model`` for ``models--``, else None.
    """

    root: Path
    files: tuple[SourceFile, ...]
    upstream_repo: str | None = None
    upstream_commit: str | None = None
    refs: tuple[str, ...] = ()
    kind: Kind | None = None
    warnings: tuple[str, ...] = ()

    def get(self, relpath: str) -> SourceFile | None:
        return next((f for f in self.files if f.relpath == relpath), None)


def open_source(
    source: str, *, revision: str | None = None, kind: Kind | None = None
) -> SourceTree:
    """Resolve what the user named.

    Raises:
        SourceError: not a directory, an empty one, or an unusable cache entry.
        NotFoundError: a Hub repo or revision that cannot be found.
    """
    path = Path(source).expanduser()
    if path.is_dir():
        snapshot = _as_snapshot(path.resolve(), revision)
        if snapshot is not None:
            return snapshot
        return _plain_tree(path.resolve())
    if path.exists():
        raise SourceError(f"{source}: not a directory", hint="point nlmr add at the model's folder")
    if re.fullmatch(r"[\w.-]+/[\w.-]+", source) and not source.startswith((".", "/")):
        return _from_hub(source, revision, kind)
    raise SourceError(f"{source}: no such directory")


def _walk(root: Path) -> list[tuple[str, Path]]:
    """Files below ``root``, sorted. Linked directories are refused (they could loop, or pull
    in a whole other tree), and so are broken links."""
    found: list[tuple[str, Path]] = []
    for dirpath, dirnames, filenames in os.walk(root):
        for d in dirnames:
            if d not in SKIP_DIRS and os.path.islink(os.path.join(dirpath, d)):
                rel = Path(dirpath, d).relative_to(root).as_posix()
                raise SourceError(
                    f"{root}: {rel} is a link to a directory; nlmr does not follow those",
                    hint="copy the directory in, or add it alone",
                )
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS)
        for name in filenames:
            full = Path(dirpath, name)
            rel = full.relative_to(root).as_posix()
            if not full.exists():
                raise SourceError(f"{root}: {rel} is a broken link")
            found.append((rel, full))
    return sorted(found)


def _gitattributes_lfs(root: Path) -> list[str] | None:
    attrs = root / ".gitattributes"
    if not attrs.is_file():
        return None
    patterns = []
    for line in attrs.read_text(encoding="utf-8", errors="replace").splitlines():
        parts = line.split()
        if len(parts) >= 2 and "filter=lfs" in parts[1:]:
            patterns.append(parts[0])
    return patterns


def is_lfs(relpath: str, size: int, patterns: list[str] | tuple[str, ...]) -> bool:
    """Whether the Hub would keep this file in LFS."""
    name = relpath.rsplit("/", 1)[-1]
    return size > LFS_SIZE or any(
        fnmatch.fnmatchcase(relpath, p) or ("/" not in p and fnmatch.fnmatchcase(name, p))
        for p in patterns
    )


def _plain_tree(root: Path) -> SourceTree:
    patterns = _gitattributes_lfs(root) or list(LFS_PATTERNS)
    walked = _walk(root)
    files = tuple(
        SourceFile(rel, full, is_lfs(rel, full.stat().st_size, patterns)) for rel, full in walked
    )
    if not files:
        raise SourceError(f"{root}: no files to add")
    outside = [
        rel for rel, full in walked if full.is_symlink() and not full.resolve().is_relative_to(root)
    ]
    warnings = tuple(
        f"{rel} links outside the source ({Path(root, rel).resolve()}); its content is added"
        for rel in outside
    )
    return SourceTree(root, files, warnings=warnings)


def _as_snapshot(path: Path, revision: str | None) -> SourceTree | None:
    """A Hugging Face cache snapshot (or repo directory), else None."""
    if path.parent.name == "snapshots" and _HEX40.match(path.name):
        repo_dir, commit = path.parent.parent, path.name
    elif _CACHE_REPO.match(path.name) and (path / "snapshots").is_dir():
        repo_dir, commit = path, _commit_for(path, revision or "main")
    else:
        return None
    m = _CACHE_REPO.match(repo_dir.name)
    if m is None:
        return None
    kind: Kind | None = {"models": "model", "datasets": "dataset"}.get(m.group(1))  # type: ignore[assignment]
    snapshot = repo_dir / "snapshots" / commit
    files = []
    for rel, full in _walk(snapshot):
        target = full.resolve()
        if not target.is_file():
            raise SourceError(
                f"{full}: broken link in the cache (blob missing)", hint="re-download the snapshot"
            )
        blob = target.name
        lfs = (
            bool(_HEX64.match(blob))
            if (_HEX64.match(blob) or _HEX40.match(blob))
            else (is_lfs(rel, target.stat().st_size, LFS_PATTERNS))
        )
        files.append(SourceFile(rel, target, lfs))
    if not files:
        raise SourceError(f"{snapshot}: empty snapshot")
    refs = (
        tuple(
            sorted(
                r.relative_to(repo_dir / "refs").as_posix()
                for r in (repo_dir / "refs").rglob("*")
                if r.is_file() and r.read_text(encoding="utf-8", errors="replace").strip() == commit
            )
        )
        if (repo_dir / "refs").is_dir()
        else ()
    )
    return SourceTree(snapshot, tuple(files), f"{m.group(2)}/{m.group(3)}", commit, refs, kind)


def _commit_for(repo_dir: Path, revision: str) -> str:
    if _HEX40.match(revision) and (repo_dir / "snapshots" / revision).is_dir():
        return revision
    ref = repo_dir / "refs" / revision
    if ref.is_file():
        commit = ref.read_text(encoding="utf-8", errors="replace").strip()
        if (repo_dir / "snapshots" / commit).is_dir():
            return commit
    raise NotFoundError(
        revision,
        f"{repo_dir}: no snapshot for revision {revision!r}",
        hint="pass --revision with a ref or full commit present in the cache",
    )


def _from_hub(repo_id: str, revision: str | None, kind: Kind | None) -> SourceTree:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import (
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    try:
        path = snapshot_download(
            repo_id,
            revision=revision or "main",
            repo_type="dataset" if kind == "dataset" else "model",
        )
    except (RepositoryNotFoundError, RevisionNotFoundError) as exc:
        raise NotFoundError(
            repo_id, f"{repo_id}@{revision or 'main'}: not found on the Hub"
        ) from exc
    except LocalEntryNotFoundError as exc:
        raise NotFoundError(
            repo_id,
            f"{repo_id}@{revision or 'main'}: not in the local Hugging Face cache and "
            "the Hub cannot be reached",
            hint="download it on a machine with internet, or pass a local directory",
        ) from exc
    tree = _as_snapshot(Path(path).resolve(), revision)
    if tree is None:  # pragma: no cover - snapshot_download always returns a snapshot dir
        raise SourceError(f"{path}: unexpected download location")
    return tree
