"""``nlmr add``: a directory → manifest, DVC pointer, card, and objects in the store.

The order of effects makes an interrupted run harmless and resumable:

1. read the source; convert pickle weights to safetensors in a staging directory;
2. hash every file once (size, sha256, md5, git sha1) and build the manifest;
3. upload the file objects the store lacks (each checked by size), then the
   directory object last — a directory object on the store promises its files;
4. only then write the registry files (manifest, pointer, .gitignore, card), each atomically.

Rerunning after an interruption re-hashes, finds the objects already uploaded,
and uploads only the rest.
"""

from __future__ import annotations

import concurrent.futures
import datetime
import os
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from nlmr import config
from nlmr.cardedit import add_revision
from nlmr.cards import Kind, card_to_yaml
from nlmr.dvcfile import DvcPointer
from nlmr.errors import IntegrityError, UsageError
from nlmr.fsutil import atomic_write
from nlmr.hashing import hash_file
from nlmr.manifest import Manifest, ManifestFile, path_problems
from nlmr.progress import Progress
from nlmr.registry import EntryPaths, Registry, check_id
from nlmr.remote import resolve_remote
from nlmr.schemas import load_schema
from nlmr.sources import SourceError, SourceFile, SourceTree, open_source
from nlmr.store import ObjectStore, Upload, UploadResult, dir_key, file_key
from nlmr.store.base import file_stamp
from nlmr.yamlio import load_path

#: Above this many files, suggest sharding (DVC and S3 both slow down per object).
SHARD_HINT_FILES = 10_000


@dataclass(frozen=True)
class AddReport:
    """What ``nlmr add`` did (or, with ``dry_run``, would do).

    Attributes:
        uploaded: object keys uploaded by this run (file objects, then the directory object).
        present: objects the store already had.
        written: registry files written (relative to the registry).
        problems: validation problems left in the card (fields to fill in), formatted.
    """

    entry_id: str
    kind: Kind
    revision: str
    revision_id: str
    remote: str
    files: int
    bytes: int
    uploaded: tuple[str, ...]
    uploaded_bytes: int
    present: int
    card_created: bool
    written: tuple[str, ...]
    converted: Mapping[str, Any] | None
    warnings: tuple[str, ...]
    problems: tuple[str, ...]
    dry_run: bool = False
    unchanged: bool = field(default=False)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["converted"] = dict(self.converted) if self.converted else None
        return data


def _today() -> str:
    return datetime.datetime.now(datetime.timezone.utc).date().isoformat()


def _hash_and_queue(
    tree: SourceTree, jobs: int, progress: Progress, hashed: list[ManifestFile]
) -> Iterator[Upload]:
    """Hash every file (a few at a time), collect the manifest entries in ``hashed``, and
    yield each distinct object to upload as soon as its digest is known."""

    def one(item: SourceFile) -> tuple[ManifestFile, Path, tuple[int, int, int]]:
        stamp = file_stamp(item.path)
        digests = hash_file(item.path)
        if file_stamp(item.path) != stamp:
            raise SourceError(
                f"{item.relpath}: changed while it was being read",
                hint="add files that are no longer being written",
            )
        progress.update(digests.size)
        entry = ManifestFile(
            item.relpath, digests.size, digests.sha256, digests.md5, digests.git_sha1, item.lfs
        )
        return entry, item.path, stamp

    queued: set[str] = set()
    workers = max(1, min(jobs, os.cpu_count() or 1))
    # largest first, so the longest uploads start earliest
    order = sorted(tree.files, key=lambda f: -f.path.stat().st_size)
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        for entry, path, stamp in pool.map(one, order):
            hashed.append(entry)
            key = file_key(entry.md5)
            if key not in queued:
                queued.add(key)
                yield Upload(key, path, entry.size, entry.md5, stamp)


def _transfer(
    tree: SourceTree, store: ObjectStore | None, jobs: int, progress: bool | None
) -> tuple[Manifest, UploadResult]:
    """Hash every file and upload the objects the store lacks, overlapping the two: a file is
    sent as soon as its md5 (its key) is known, while the next one is being read."""
    total = sum(f.path.stat().st_size for f in tree.files)
    present = store.listing(len(tree.files), jobs=jobs) if store is not None else None
    hashed: list[ManifestFile] = []
    with (
        Progress(total, "hashing", enabled=progress) as hbar,
        Progress(total, "uploading", enabled=progress, position=1) as ubar,
    ):
        items = _hash_and_queue(tree, jobs, hbar, hashed)
        if store is not None:
            result = store.upload(items, jobs=jobs, present=present, on_bytes=ubar.update)
        else:
            result = UploadResult()
            for _ in items:
                pass
    return Manifest(tuple(sorted(hashed, key=lambda f: f.path))), result


def _put_dir_object(store: ObjectStore, key: str, data: bytes) -> bool:
    """Upload the directory object unless present; True when it was uploaded."""
    if store.head(key) == len(data):
        return False
    store.put_bytes(key, data)
    arrived = store.head(key)
    if arrived != len(data):
        raise IntegrityError(key, str(len(data)), str(arrived), what="size")
    return True


def _revision_entry(
    name: str, rev_id: str, tree: SourceTree, converted: Any, default: bool
) -> dict[str, Any]:
    """The card's ``revisions[]`` entry for this add."""
    entry: dict[str, Any] = {"name": name, "id": rev_id, "date": _today()}
    if default:
        entry["default"] = True
    entry["source"] = (
        {"type": "huggingface", "repo": tree.upstream_repo, "commit": tree.upstream_commit}
        if tree.upstream_commit
        else {"type": "upload"}
    )
    if converted:
        entry["converted"] = {
            "pickles": list(converted.pickles),
            "safetensors": list(converted.safetensors),
            "tool": converted.tool,
        }
    return entry


def _check_revision_clash(
    entry_id: str, name: str, rev_id: str, existing: list[Mapping[str, Any]]
) -> None:
    same = next((r for r in existing if r.get("name") == name), None)
    if same and same.get("id") != rev_id:
        raise UsageError(
            f"{entry_id}@{name} already exists with other files (id {same.get('id')}); "
            "published revisions never change",
            hint="pass --revision NEWNAME",
        )
    clash = next((r for r in existing if r.get("id") == rev_id and r.get("name") != name), None)
    if clash:
        raise UsageError(f"these files are already {entry_id}@{clash.get('name')}")


def _revision_name(tree: SourceTree, requested: str | None) -> str:
    if requested and not (tree.upstream_commit and requested == tree.upstream_commit):
        return requested
    if "main" in tree.refs or not tree.refs:
        return "main"
    return tree.refs[0].replace("/", "-")


def _order_fields(data: Mapping[str, Any], kind: Kind) -> dict[str, Any]:
    order = list(
        load_schema("model-card.schema.json" if kind == "model" else "dataset-card.schema.json")[
            "properties"
        ]
    )
    return {k: data[k] for k in sorted(data, key=lambda k: order.index(k) if k in order else 999)}


def add(
    source: str,
    entry_id: str,
    *,
    registry: str | os.PathLike[str],
    revision: str | None = None,
    kind: Kind | None = None,
    remote: str | None = None,
    endpoint_url: str | None = None,
    card_fields: Mapping[str, Any] | None = None,
    make_default: bool | None = None,
    jobs: int | None = None,
    dry_run: bool = False,
    progress: bool | None = None,
) -> AddReport:
    """Add one revision of a model or dataset to the registry and its store.

    Args:
        source: a directory, a Hugging Face cache snapshot, or a Hub repo id.
        entry_id: ``org/name`` in the registry.
        registry: the registry checkout.
        revision: the revision name (default ``main``, or the snapshot's ref).
        kind: ``model`` or ``dataset`` (default: the existing card's, else detected).
        remote, endpoint_url: the store (default: the registry's DVC remote).
        card_fields: fields for a new card (title, license…), over what the source says.
        make_default: make this revision the default (new entries: always).
        jobs: concurrent transfers.
        dry_run: compute everything, upload and write nothing.
        progress: show progress bars (default: when stderr is a terminal).

    Returns:
        The report; ``problems`` lists what the card still needs before it validates.

    Raises:
        UsageError: a bad id or revision name, or a revision name already used for other files.
        SourceError / NotFoundError: the source cannot be read.
        ConversionError: pickle weights cannot be converted safely.
        RemoteConfigError / StoreError: no store, or the store failed.
    """
    problem = check_id(entry_id)
    if problem:
        raise UsageError(problem)
    reg = Registry(registry)
    reg.check_exists()
    jobs = config.jobs(jobs)
    existing_kind = next(
        (
            k
            for k in ("model", "dataset")
            if EntryPaths(reg.root, k, *entry_id.split("/")).card.is_file()
        ),
        None,
    )
    if existing_kind and kind and kind != existing_kind:
        raise UsageError(f"{entry_id} is a {existing_kind} in the registry, not a {kind}")
    tree = open_source(source, revision=revision, kind=kind or existing_kind)  # type: ignore[arg-type]

    from nlmr.prefill import auto_map, detect_kind, prefill

    resolved_kind: Kind = existing_kind or kind or detect_kind(tree)  # type: ignore[assignment]
    paths = EntryPaths(reg.root, resolved_kind, *entry_id.split("/"))
    name = _revision_name(tree, revision)
    if check := _bad_revision_name(name):
        raise UsageError(check)
    warnings: list[str] = list(tree.warnings)

    with tempfile.TemporaryDirectory(prefix="nlmr-add-") as staging:
        from nlmr.convert import convert_pickles

        converted = convert_pickles(tree, Path(staging)) if resolved_kind == "model" else None
        if converted:
            tree = converted.tree
        if len(tree.files) > SHARD_HINT_FILES:
            warnings.append(
                f"{len(tree.files):,} files: stores and DVC slow down per object; consider "
                "sharding into fewer, larger files (parquet, jsonl.zst, tar)"
            )
        bad = path_problems([f.relpath for f in tree.files])
        if bad:
            i, message = bad[0]
            raise UsageError(
                f"{tree.root}: cannot add {tree.files[i].relpath!r}: {message}",
                hint="rename or remove the file in the source",
            )
        existing_revs = _existing_revisions(paths)
        if tree.upstream_commit:  # the id is known before hashing: refuse early
            _check_revision_clash(entry_id, name, tree.upstream_commit, existing_revs)

        remote_obj = resolve_remote(reg.root, url=remote, endpoint_url=endpoint_url)
        store = None if dry_run else remote_obj.open(jobs=jobs)
        manifest, result = _transfer(tree, store, jobs, progress)
        manifest = Manifest(manifest.files, auto_map(tree))
        rev_id = tree.upstream_commit or manifest.derived_revision_id()
        _check_revision_clash(entry_id, name, rev_id, existing_revs)
        same = next((r for r in existing_revs if r.get("name") == name), None)
        card_text = None
        if paths.card.is_file():  # as is: a BOM and CRLF line endings are kept
            with open(paths.card, encoding="utf-8", newline="") as fh:
                card_text = fh.read()
        pointer = DvcPointer.for_manifest(manifest, name)
        uploaded = [u.key for u in result.uploaded]
        uploaded_bytes = sum(u.size for u in result.uploaded)
        n_present = len(result.present)
        if store is not None:  # the directory object goes last: it vouches for every file
            dir_bytes = manifest.dvc_dir_object()
            if _put_dir_object(store, dir_key(pointer.md5), dir_bytes):
                uploaded.append(dir_key(pointer.md5))
                uploaded_bytes += len(dir_bytes)
            else:
                n_present += 1

        default = True if not existing_revs else bool(make_default)  # a first revision always is
        revision_entry = _revision_entry(name, rev_id, tree, converted, default)
        written: list[str] = []
        new_card: str | None = None
        if same is None and card_text is None:
            data: dict[str, Any] = {"schema_version": 1, "id": entry_id, "type": resolved_kind}
            data.update(prefill(tree, resolved_kind))
            data.update({k: v for k, v in (card_fields or {}).items() if v not in (None, ())})
            data["revisions"] = [revision_entry]
            new_card = card_to_yaml(_order_fields(data, resolved_kind))
        elif same is None and card_text is not None:
            new_card = add_revision(
                card_text,
                revision_entry,
                path=str(paths.card),
                make_default=bool(default and existing_revs),
            )
        unchanged = same is not None and paths.manifest(name).is_file()
        if not dry_run:
            written += _write_generated(paths, name, manifest, pointer)
            if new_card is not None:
                atomic_write(paths.card, new_card)
                written.append(str(paths.card.relative_to(reg.root)))

    from nlmr.validate import validate

    problems: tuple[str, ...] = ()
    if not dry_run:
        report = validate([paths.card])
        problems = tuple(p.format() for p in report.errors)
    return AddReport(
        entry_id=entry_id,
        kind=resolved_kind,
        revision=name,
        revision_id=rev_id,
        remote=remote_obj.describe(),
        files=len(manifest.files),
        bytes=manifest.total_size,
        uploaded=tuple(uploaded),
        uploaded_bytes=uploaded_bytes,
        present=n_present,
        card_created=card_text is None,
        written=tuple(written),
        converted=revision_entry.get("converted"),
        warnings=tuple(warnings),
        problems=problems,
        dry_run=dry_run,
        unchanged=unchanged,
    )


def _bad_revision_name(name: str) -> str | None:
    import re

    pattern = load_schema("common.schema.json")["$defs"]["revision"]["properties"]["name"][
        "pattern"
    ]
    if not re.fullmatch(pattern, name):
        return f"{name!r} is not a valid revision name (letters, digits, . _ -; at most 64)"
    return None


def _existing_revisions(paths: EntryPaths) -> list[Mapping[str, Any]]:
    if not paths.card.is_file():
        return []
    data = load_path(paths.card).data
    revs = data.get("revisions") if isinstance(data, dict) else None
    return [r for r in revs if isinstance(r, Mapping)] if isinstance(revs, list) else []


def _write_generated(
    paths: EntryPaths, name: str, manifest: Manifest, pointer: DvcPointer
) -> list[str]:
    """Manifest, pointer and the .gitignore line DVC would add; returns what changed."""
    written = []
    root = paths.root
    for target, text in (
        (paths.manifest(name), manifest.to_json()),
        (paths.pointer(name), pointer.to_yaml()),
    ):
        if not target.is_file() or target.read_text(encoding="utf-8") != text:
            atomic_write(target, text)
            written.append(str(target.relative_to(root)))
    ignore = paths.revisions_dir / ".gitignore"
    lines = ignore.read_text(encoding="utf-8").splitlines() if ignore.is_file() else []
    if f"/{name}" not in lines:
        atomic_write(ignore, "".join(f"{line}\n" for line in [*lines, f"/{name}"]))
        written.append(str(ignore.relative_to(root)))
    return written


__all__ = ["AddReport", "add"]
