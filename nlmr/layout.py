"""Where files go in the two trees nlmr writes, shared by ``sync`` and ``pull``.

Plain tree (``from_pretrained("ROOT/models/org/name")``)::

    ROOT/models/<org>/<name>@<revision>/<files>   one directory per revision
    ROOT/models/<org>/<name> -> <name>@<default>  relative link to the default revision

Hub-cache tree (``HF_HUB_CACHE=ROOT/hub``, as huggingface_hub lays it out)::

    ROOT/hub/models--<org>--<name>/blobs/<blob id>          sha256 (LFS files) or git sha1
    ROOT/hub/models--<org>--<name>/snapshots/<commit>/<file> -> ../../blobs/<blob id>
    ROOT/hub/models--<org>--<name>/refs/<branch or tag>      40 hex, no newline
    ROOT/hub/models--<org>--<name>/trees/<commit>.json       the files of the snapshot

Datasets likewise under ``datasets/`` and ``datasets--``. There is never a
top-level ``ROOT/hub/blobs/``: huggingface_hub 2.x reserves it for its shared
Xet store.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
from collections.abc import Iterable
from pathlib import Path

from nlmr.manifest import ManifestFile

KIND_DIRS = {"model": "models", "dataset": "datasets"}
HUB_DIR = "hub"
#: nlmr's own files in a plain revision directory (manifest paths may not start with .nlmr).
PROVENANCE_FILE = ".nlmr-provenance.json"
CARD_FILE = "README.md"
CARD_FALLBACK = ".nlmr-card.md"  # when the revision ships its own README.md
DEFAULT_BRANCH = "main"


def plain_name(entry_id: str, revision: str) -> str:
    """``name@revision``: the directory of one revision beside the default link."""
    return f"{entry_id.split('/', 1)[1]}@{revision}"


def plain_dir(root: Path, kind: str, entry_id: str, revision: str) -> Path:
    org = entry_id.split("/", 1)[0]
    return root / KIND_DIRS[kind] / org / plain_name(entry_id, revision)


def plain_link(root: Path, kind: str, entry_id: str) -> Path:
    """The path users load: a link to the default revision's directory."""
    return root / KIND_DIRS[kind] / entry_id


def hub_repo_name(kind: str, entry_id: str) -> str:
    """``models--org--name`` (huggingface_hub's ``repo_folder_name``)."""
    return f"{KIND_DIRS[kind]}--{entry_id.replace('/', '--')}"


def hub_repo_dir(root: Path, kind: str, entry_id: str) -> Path:
    return root / HUB_DIR / hub_repo_name(kind, entry_id)


def blob_link(path: str, blob_id: str) -> str:
    """The relative link from ``snapshots/<commit>/<path>`` to ``blobs/<blob_id>``."""
    depth = path.count("/")
    return "../" * (depth + 2) + f"blobs/{blob_id}"


def relative_link(link: Path, target: Path) -> str:
    """``target`` as seen from the directory holding ``link`` (both absolute)."""
    return posixpath.relpath(target.as_posix(), link.parent.as_posix())


def lfs_pointer_sha1(sha256: str, size: int) -> str:
    """Git blob sha1 of the Git LFS pointer file of a content (what the Hub lists as its oid)."""
    pointer = f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n"
    data = pointer.encode()
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def tree_json(files: Iterable[ManifestFile]) -> bytes:
    """``trees/<commit>.json`` as huggingface_hub >= 1.22 writes it: it must list exactly the
    files of the snapshot, or ``snapshot_download`` raises ``IncompleteSnapshotError``."""
    out = {}
    for f in files:
        item: dict[str, object] = {"size": f.size, "blob_id": f.git_sha1}
        if f.lfs:
            # on the Hub the git blob of an LFS file is its pointer, not the content
            item["blob_id"] = lfs_pointer_sha1(f.sha256, f.size)
            item["lfs_sha256"] = f.sha256
            item["lfs_size"] = f.size
        out[f.path] = item
    return json.dumps({"format_version": 1, "files": out}, sort_keys=True).encode()
