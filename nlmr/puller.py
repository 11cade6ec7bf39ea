"""``nlmr pull``: one entry's revision onto a login node or laptop, verified.

Resolution (:mod:`nlmr.resolver`) finds the nearest source: a local mirror (files are
cloned, hard-linked or copied from it, every byte hashed) or the store (objects fetched
by :func:`nlmr.transfer.fetch`: many at once, large files in concurrent ranged parts,
sha256 computed as bytes arrive). Destinations:

* a plain directory (``--to DIR``): the files as ``save_pretrained`` lays them out, plus
  ``.nlmr-provenance.json`` recording what was pulled (so a rerun knows which files are
  intact without reading them);
* the user's own Hugging Face cache (the default): ``blobs/``, ``snapshots/<commit>/``,
  ``refs/`` and ``trees/<commit>.json`` as huggingface_hub writes them, so
  ``from_pretrained("org/name")`` works afterwards offline, with no nlmr involved.

A file reaches its final path only verified, by an atomic rename; partial files stay
beside it (``.<sha256 prefix>.<name>.partial``) and a rerun resumes them. Files already
complete are not touched. Pulled files are not fsynced (as with huggingface_hub, s5cmd and
DVC): a power cut can leave one truncated, which the next pull detects and repairs.
"""

from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from nlmr.catalogue import PublishedRevision
from nlmr.config import Settings
from nlmr.errors import NlmrError, NotFoundError, UsageError
from nlmr.layout import (
    PROVENANCE_FILE,
    blob_link,
    hub_repo_dir,
    hub_repo_name,
    plain_dir,
    tree_json,
)
from nlmr.manifest import ManifestFile
from nlmr.resolver import Located, Resolver
from nlmr.target import FileFilter
from nlmr.transfer import Fetch, TransferReport, partial_path

LinkMode = Literal["auto", "reflink", "hardlink", "copy"]
Events = Callable[[str], None]
DEFAULT_BRANCH = "main"


@dataclass
class PullReport:
    """What a pull did (or, with ``dry_run``, would do).

    Attributes:
        ref: ``org/name@revision``.
        source: where the bytes came from (``mirror /path`` or ``store s3://…``).
        layout: ``plain`` (a directory), ``hub`` (an HF cache) or ``link`` (nothing copied:
            ``path`` is inside the mirror).
        path: what to load: the directory, the snapshot directory, or the mirror path.
        files, bytes: the files selected and their size.
        fetched, fetched_bytes: files moved now (and their bytes).
        present: files that were already complete.
        received: bytes read from the source now (less than ``fetched_bytes`` when a
            pull resumed partial files).
        how: files moved per method (``download``, ``reflink``, ``hardlink``, ``copy``).
        updated: snapshot links, refs, tree file or provenance record were (re)written
            although no file had to move.
        failed: (file, message) for each file that failed.
    """

    ref: str
    kind: str
    id: str
    revision: str
    revision_id: str
    source: str
    layout: str
    path: str
    files: int = 0
    bytes: int = 0
    fetched: int = 0
    fetched_bytes: int = 0
    present: int = 0
    received: int = 0
    how: dict[str, int] = field(default_factory=dict)
    updated: bool = False
    failed: list[tuple[str, str]] = field(default_factory=list)
    dry_run: bool = False
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failed

    @property
    def complete(self) -> bool:
        """Everything was already there: nothing was (or would be) moved or written."""
        return self.ok and self.fetched == 0 and not self.updated

    def to_dict(self) -> dict[str, Any]:
        from dataclasses import asdict

        out = asdict(self)
        out["failed"] = [{"file": f, "error": e} for f, e in self.failed]
        out["ok"] = self.ok
        return out


@dataclass(frozen=True)
class _Item:
    """One file of the revision bound for one destination path."""

    file: ManifestFile
    dest: Path
    replace: bool = False  # an outdated file of nlmr's is there: fetch, then rename over it


def pull(
    ref: str,
    revision: str | None = None,
    *,
    to: str | os.PathLike[str] | None = None,
    hf_cache: str | os.PathLike[str] | None = None,
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
    link: bool = False,
    mode: LinkMode = "auto",
    kind: str | None = None,
    jobs: int | None = None,
    force: bool = False,
    verify: bool = False,
    fsync: bool = False,
    dry_run: bool = False,
    break_lock: bool = False,
    settings: Settings | None = None,
    registry: str | os.PathLike[str] | None = None,
    resolver: Resolver | None = None,
    progress: bool | None = None,
    on_event: Events | None = None,
) -> PullReport:
    """Pull ``ref`` (``org/name[@revision]``) from the nearest source.

    Args:
        ref: the entry, optionally with ``@revision`` (a name, tag or full commit).
        revision: the revision, instead of ``@…``.
        to: a plain directory to fill (``save_pretrained`` layout).
        hf_cache: the HF cache to fill (default when ``to`` is not given:
            ``HF_HUB_CACHE``, else ``$HF_HOME/hub``, else ``~/.cache/huggingface/hub``).
        include, exclude: glob patterns on file paths (``*`` crosses ``/``; a pattern
            without ``/`` also matches the file name alone).
        link: copy nothing: return the path inside the nearest mirror holding it.
        mode: from a mirror: ``reflink``, ``hardlink`` or ``copy``; ``auto`` clones
            when the filesystem can and copies otherwise (hard links share the
            mirror's read-only inode and its owner's quota, so only on request).
        kind: ``model`` or ``dataset`` when an id names both.
        jobs: concurrent transfers (default ``NLMR_JOBS`` or 8).
        force: replace local files that differ from the catalogue (otherwise they are
            kept and reported as failures).
        verify: re-hash files already present instead of trusting sizes and records.
        fsync: make the files durable before they are renamed into place.
        dry_run: only report what would be moved.
        break_lock: take over the lock of a pull into the same place that another host
            left behind (it stopped heartbeating).
        settings: where to look (default: :func:`nlmr.config.settings`).
        registry: a registry checkout to resolve from instead of a catalogue.
        resolver: the sources to use (instead of ``settings`` and ``registry``).
        progress: a bar on standard error (None: when it is a terminal).
        on_event: receives one-line notes (waiting for a lock, replaced files).

    Returns:
        The report; ``report.failed`` lists files that did not make it (the others are in
        place, partial files are kept for a rerun).

    Raises:
        UsageError: contradictory options, or nothing matches the filters.
        NotFoundError: no source has the entry or revision.
        StoreError: the store cannot be used at all (per-file errors are in the report).
    """
    from nlmr import config

    started = time.monotonic()
    say = on_event or (lambda _m: None)
    if to is not None and hf_cache is not None:
        raise UsageError("give --to DIR or --hf-cache, not both")
    if mode not in ("auto", "reflink", "hardlink", "copy"):
        raise UsageError(f"unknown mode {mode!r}: auto, reflink, hardlink or copy")
    if resolver is None:
        resolver = Resolver(settings or config.settings(jobs=jobs), registry=registry)
    s = resolver.settings
    if jobs is not None:
        from dataclasses import replace

        s = replace(s, jobs=jobs)
    found = resolver.locate(ref, revision, kind=kind)
    entry, rev, source = found.entry, found.revision, found.source
    where = (
        f"mirror {source.root}"
        if source.kind == "mirror"
        else f"store {source.remote or '(no store configured)'}"
    )
    report = PullReport(
        ref=found.ref,
        kind=entry.kind,
        id=entry.id,
        revision=rev.name,
        revision_id=rev.id,
        source=where,
        layout="link",
        path="",
        dry_run=dry_run,
    )
    if link:
        if to is not None or hf_cache is not None or include or exclude:
            raise UsageError("--link copies nothing: it takes no --to, --hf-cache or filters")
        pinned = revision is not None or "@" in ref
        return _link_report(found, report, pinned=pinned)
    chosen = _select(rev, FileFilter(tuple(include), tuple(exclude)), found.ref)
    report.files, report.bytes = len(chosen), sum(f.size for f in chosen)
    repo: Path | None = None
    plain_root: Path | None = None
    if to is not None:
        plain_root = Path(to).expanduser().absolute()
        report.layout, report.path = "plain", str(plain_root)
        items = [_Item(f, plain_root / f.path) for f in chosen]
        lock = plain_root / ".nlmr-pull.lock"
    else:
        cache = Path(hf_cache).expanduser() if hf_cache is not None else config.hf_hub_cache()
        cache = cache.absolute()
        repo = cache / hub_repo_name(entry.kind, entry.id)
        report.layout, report.path = "hub", str(repo / "snapshots" / rev.id)
        blobs: dict[str, _Item] = {}
        for f in chosen:  # one blob per content, whatever the number of paths showing it
            blobs.setdefault(f.blob_id, _Item(f, repo / "blobs" / f.blob_id))
        items = list(blobs.values())
        lock = cache / ".locks" / hub_repo_name(entry.kind, entry.id) / "nlmr-pull.lock"

    # First look without the lock: a complete pull writes nothing (and so also works in a
    # cache or directory this user cannot write to), nor does one where only the user's own
    # edits stand in the way. Hashes taken now are reused under the lock for unchanged files.
    hashed: dict[Path, tuple[list[int], str]] = {}
    todo, present = _triage(items, report, plain_root, force=force, verify=verify, hashed=hashed)
    failed = {path for path, _ in report.failed}
    kept = [i for i in items if i.file.path not in failed]
    wanted = [f for f in chosen if f.path not in failed]
    stale = _stale_metadata(found, repo, plain_root, wanted, kept, verify=verify)
    if dry_run or (not todo and not stale):
        report.present = len(present)
        report.fetched = len(todo)
        report.fetched_bytes = sum(i.file.size for i in todo)
        report.updated = bool(dry_run and stale and not todo)
        report.seconds = time.monotonic() - started
        return report

    from nlmr.lock import hold

    purpose = f"nlmr pull {found.ref}"
    with hold(lock, purpose=purpose, wait=math.inf, break_stale=break_lock, on_event=say):
        report.failed.clear()
        todo, present = _triage(
            items, report, plain_root, force=force, verify=verify, hashed=hashed
        )
        report.present = len(present)
        moved = _move(found, todo, s, mode, fsync, progress, report, say)
        ok_paths = {i.file.path for i in present} | {i.file.path for i in moved}
        if plain_root is not None:
            done = [i for i in items if i.file.path in ok_paths]
            report.updated = _write_record(plain_root, found, done)
        else:
            assert repo is not None
            ok_blobs = {i.file.blob_id for i in present} | {i.file.blob_id for i in moved}
            shown = [f for f in chosen if f.blob_id in ok_blobs]
            report.updated = _publish_snapshot(repo, found, shown, say, verify=verify)
    report.seconds = time.monotonic() - started
    return report


def _link_report(found: Located, report: PullReport, *, pinned: bool) -> PullReport:
    if found.source.kind != "mirror":
        raise NotFoundError(
            found.ref,
            f"{found.ref}: on no configured mirror, so there is no path to use in place",
            hint=f"pull a copy: `nlmr pull {found.ref}`",
        )
    report.path = str(found.load_path(pinned=pinned))
    report.files = len(found.revision.files)
    report.bytes = found.revision.size
    report.present = report.files
    return report


def _select(rev: PublishedRevision, flt: FileFilter, ref: str) -> list[ManifestFile]:
    chosen = [f for f in rev.files if flt.keeps(f.path)]
    if not chosen:
        raise UsageError(
            f"{ref}: no file matches the --include/--exclude patterns",
            hint=f"its files: {', '.join(f.path for f in rev.files[:8])}"
            + (" …" if len(rev.files) > 8 else ""),
        )
    return chosen


def _read_record(dest_root: Path) -> dict[str, list[Any]]:
    try:
        data = json.loads((dest_root / PROVENANCE_FILE).read_bytes())
        return {p: list(v) for p, v in data.get("stat", {}).items()}
    except (OSError, ValueError, AttributeError):
        return {}


def _stat_key(path: Path) -> list[int]:
    st = os.stat(path)
    return [st.st_size, st.st_mtime_ns, st.st_ino]


def _triage(
    items: list[_Item],
    report: PullReport,
    dest_root: Path | None,
    *,
    force: bool,
    verify: bool,
    hashed: dict[Path, tuple[list[int], str]] | None = None,
) -> tuple[list[_Item], list[_Item]]:
    """Split ``items`` into (to fetch, already complete); reads, never writes.

    A local file that differs from the catalogue is replaced when nlmr put it there and it
    is unchanged since (another revision pulled into the same directory), or with
    ``force``; otherwise it is someone's edit: kept, and reported as a failure. A replaced
    file stays until its successor is verified and renamed over it.
    """
    from dataclasses import replace

    record = _read_record(dest_root) if dest_root is not None else {}
    todo: list[_Item] = []
    present: list[_Item] = []
    for item in items:
        f = item.file
        try:
            st = os.stat(item.dest)
        except FileNotFoundError:  # absent, or a link to nothing (replaced like damage)
            todo.append(replace(item, replace=os.path.lexists(item.dest)))
            continue
        # a blob of the HF cache is named by its content: a wrong one is damage, never an
        # edit; in a plain directory only files the record vouches for are nlmr's
        ours = dest_root is None or _recorded(record, item)
        intact = st.st_size == f.size
        if dest_root is None:
            check = verify
        else:
            check = verify or not ours or _recorded_sha(record, item) != f.sha256
        if intact and check:
            intact = _sha256(item.dest, hashed) == f.sha256
        if intact:
            present.append(item)
        elif force or ours:
            todo.append(replace(item, replace=True))
        else:
            report.failed.append(
                (
                    f.path,
                    f"{item.dest} differs from the catalogue (expected {f.size} bytes, sha256 "
                    f"{f.sha256[:12]}…) and nlmr did not write it as it is; kept it: rerun "
                    "with --force to replace it",
                )
            )
    return todo, present


def _sha256(path: Path, hashed: dict[Path, tuple[list[int], str]] | None) -> str:
    """sha256 of a local file, remembered in ``hashed`` by its stat (a second look at an
    unchanged file does not read it again)."""
    from nlmr.hashing import sha256_file

    key = _stat_key(path)
    if hashed is not None and path in hashed and hashed[path][0] == key:
        return hashed[path][1]
    digest = sha256_file(path)[1]
    if hashed is not None:
        hashed[path] = (key, digest)
    return digest


def _recorded_sha(record: dict[str, list[Any]], item: _Item) -> str | None:
    seen = record.get(item.file.path)
    return str(seen[3]) if seen and len(seen) == 4 else None


def _recorded(record: dict[str, list[Any]], item: _Item) -> bool:
    """Whether the record says nlmr wrote this file, verified, and it is unchanged since."""
    seen = record.get(item.file.path)
    if not seen or len(seen) != 4:
        return False
    try:
        return seen[:3] == _stat_key(item.dest)
    except OSError:
        return False


def _move(
    found: Located,
    todo: list[_Item],
    s: Settings,
    mode: LinkMode,
    fsync: bool,
    progress: bool | None,
    report: PullReport,
    say: Events,
) -> list[_Item]:
    """Fetch or copy ``todo``; returns the items now in place. Failures go to the report."""
    from nlmr.progress import Progress

    if not todo:
        return []
    total = sum(i.file.size for i in todo)
    moved: list[_Item] = []
    with Progress(total, found.ref, enabled=progress) as bar:
        if found.source.kind == "mirror":
            rest = _link_from_mirror(found, todo, mode, bar.update, report, moved)
            how = "copy"
        else:
            rest, how = todo, "download"
        if rest:
            store, fetches = _fetches(found, rest, s.jobs)
            by_dest = {i.dest: i for i in rest}
            result: TransferReport = _fetch(store, fetches, s.jobs, fsync, bar.update)
            report.received += result.bytes
            for fx in result.done + result.present:
                moved.append(by_dest[fx.dest])
            if result.done:
                report.how[how] = report.how.get(how, 0) + len(result.done)
            for fx, err in result.failed:
                report.failed.append((by_dest[fx.dest].file.path, _message(err, fx.label)))
    report.fetched = len(moved)
    report.fetched_bytes = sum(i.file.size for i in moved)
    return moved


def _fetch(store: Any, fetches: list[Fetch], jobs: int, fsync: bool, on_bytes: Any) -> Any:
    from nlmr.transfer import fetch

    return fetch(store, fetches, jobs=jobs, mode=0o644, on_bytes=on_bytes, durable=fsync)


def _message(err: NlmrError, label: str) -> str:
    """The error without the file's label (the report names the file already)."""
    text = err.message.removeprefix(f"{label}: ")
    return text + (f" ({err.hint})" if err.hint else "")


def _fetches(found: Located, items: list[_Item], jobs: int) -> tuple[Any, list[Fetch]]:
    """The store and the :class:`Fetch` list for ``items`` (a mirror's files are read as a
    local store whose keys are paths under its root)."""
    from nlmr.store.base import file_key, open_store

    source = found.source
    fetches = []
    if source.kind == "mirror":
        from nlmr.store.local import LocalStore

        assert source.root is not None
        store: Any = LocalStore(source.root)
        for i in items:
            src = _mirror_file(found, i.file)
            fetches.append(
                Fetch(
                    str(src.relative_to(source.root)),
                    i.file.size,
                    i.file.sha256,
                    i.dest,
                    f"{found.ref}: {i.file.path}",
                    replace=i.replace,
                )
            )
        return store, fetches
    if not source.remote:
        from nlmr.errors import RemoteConfigError

        raise RemoteConfigError(
            f"{found.ref}: found in {source.describe()} but no store is configured to fetch from",
            hint="set NLMR_REMOTE (s3://bucket/prefix or https://host/bucket/prefix)",
        )
    store = open_store(
        source.remote,
        endpoint_url=source.endpoint_url,
        credentials=source.credentials or None,
        jobs=jobs,
    )
    for i in items:
        fetches.append(
            Fetch(
                file_key(i.file.md5),
                i.file.size,
                i.file.sha256,
                i.dest,
                f"{found.ref}: {i.file.path}",
                replace=i.replace,
            )
        )
    return store, fetches


def _mirror_file(found: Located, f: ManifestFile) -> Path:
    """Where a file's bytes are on the mirror: its plain tree, else its hub-cache blob."""
    root = found.source.root
    assert root is not None
    if "plain" in found.layouts():
        return plain_dir(root, found.entry.kind, found.entry.id, found.revision.name) / f.path
    return hub_repo_dir(root, found.entry.kind, found.entry.id) / "blobs" / f.blob_id


def _link_from_mirror(
    found: Located,
    todo: list[_Item],
    mode: LinkMode,
    on_bytes: Callable[[int], None],
    report: PullReport,
    moved: list[_Item],
) -> list[_Item]:
    """Clone or hard-link what can be, verifying each; returns the items left to copy."""
    from nlmr.fsutil import clone_file
    from nlmr.hashing import sha256_file

    if mode == "copy":
        return todo
    how = "hardlink" if mode == "hardlink" else "reflink"
    for n, item in enumerate(todo):
        src = _mirror_file(found, item.file)
        tmp = partial_path(Fetch("", item.file.size, item.file.sha256, item.dest, ""))
        item.dest.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        try:
            if how == "hardlink":
                os.link(src, tmp)
            else:
                clone_file(src, tmp)
        except OSError as exc:
            if exc.errno == errno.ENOENT:
                report.failed.append((item.file.path, f"{src}: missing on the mirror"))
                continue
            if mode == "auto":
                return todo[n:]  # no clones here: copy the rest
            hint = (
                "hard links need the same filesystem, and with fs.protected_hardlinks a file "
                "you own or may write"
                if how == "hardlink"
                else "clones need one filesystem that supports them (btrfs, XFS)"
            )
            why = f"--mode {how} is not possible here ({exc.strerror}); {hint}; use --mode auto"
            report.failed += [(i.file.path, why) for i in todo[n:]]
            return []
        size, digest = sha256_file(tmp, on_bytes=on_bytes)
        if size != item.file.size or digest != item.file.sha256:
            tmp.unlink()
            report.failed.append(
                (
                    item.file.path,
                    f"{src}: sha256 mismatch on the mirror (expected "
                    f"{item.file.sha256}, got {digest}); tell the mirror's operators",
                )
            )
            continue
        os.replace(tmp, item.dest)
        moved.append(item)
        report.how[how] = report.how.get(how, 0) + 1
    return []


def _stale_metadata(
    found: Located,
    repo: Path | None,
    plain_root: Path | None,
    chosen: list[ManifestFile],
    items: list[_Item],
    *,
    verify: bool = False,
) -> bool:
    """Whether the record (plain) or the snapshot links, refs and tree file (HF cache) need
    writing for a pull whose files are all present."""
    if plain_root is not None:
        try:
            data = json.loads((plain_root / PROVENANCE_FILE).read_bytes())
        except (OSError, ValueError):
            return True
        record = _read_record(plain_root)
        return data.get("revision_id") != found.revision.id or not all(
            _recorded(record, i) for i in items
        )
    assert repo is not None
    return bool(_snapshot_changes(repo, found, chosen, verify=verify))


def _write_record(dest_root: Path, found: Located, done: list[_Item]) -> bool:
    """``.nlmr-provenance.json``: what is in the directory, and each file's stat when it was
    verified, so the next pull trusts unchanged files without reading them. Returns whether
    it changed (beyond its time stamp)."""
    from nlmr import __version__
    from nlmr.fsutil import atomic_write
    from nlmr.sync.plan import iso, now_utc

    stat = _read_record(dest_root)
    for item in done:
        with contextlib.suppress(OSError):
            stat[item.file.path] = [*_stat_key(item.dest), item.file.sha256]
    record = {
        "format_version": 1,
        "kind": found.entry.kind,
        "id": found.entry.id,
        "revision": found.revision.name,
        "revision_id": found.revision.id,
        "manifest_sha256": found.revision.manifest_sha256,
        "source": found.source.describe(),
        "pulled_at": iso(now_utc()),
        "nlmr_version": __version__,
        "stat": dict(sorted(stat.items())),
    }
    path = dest_root / PROVENANCE_FILE
    try:
        old = json.loads(path.read_bytes())
        old["pulled_at"] = record["pulled_at"]
        if old == record:
            return False
    except (OSError, ValueError):
        pass
    dest_root.mkdir(parents=True, exist_ok=True)
    atomic_write(path, json.dumps(record, indent=1) + "\n")
    return True


def _snapshot_changes(
    repo: Path, found: Located, files: list[ManifestFile], *, verify: bool = False
) -> list[str]:
    """What :func:`_publish_snapshot` would write: ``link:<path>``, ``tree``, ``ref:<name>``.

    A snapshot file that is a copy rather than a link (huggingface_hub's
    ``HF_HUB_DISABLE_SYMLINKS``) is kept while its size is right (and, with ``verify``, its
    sha256), and replaced by the link otherwise.
    """
    rev = found.revision
    snap = repo / "snapshots" / rev.id
    out = []
    for f in files:
        path = snap / f.path
        try:
            if os.readlink(path) == blob_link(f.path, f.blob_id):
                continue
        except FileNotFoundError:
            pass
        except OSError:  # not a link: a copy
            try:
                good = os.stat(path).st_size == f.size
                if good and verify:
                    good = _sha256(path, None) == f.sha256
            except OSError:
                good = False
            if good:
                continue
        out.append(f"link:{f.path}")
    try:
        if (repo / "trees" / f"{rev.id}.json").read_bytes() != tree_json(rev.files):
            out.append("tree")
    except OSError:
        out.append("tree")
    for name in _ref_names(found):
        try:
            if (repo / "refs" / name).read_bytes() == rev.id.encode():
                continue
        except OSError:
            pass
        out.append(f"ref:{name}")
    return out


def _ref_names(found: Located) -> list[str]:
    """The refs a pull writes: the revision's name (unless it is ``main`` while another
    revision is the default) and ``main`` for the default revision, as ``nlmr sync`` writes
    them. A revision asked for by its commit is known by its name all the same."""
    rev = found.revision
    names = [rev.name]
    if found.is_default:
        names.append(DEFAULT_BRANCH)
    elif rev.name == DEFAULT_BRANCH:
        names.remove(DEFAULT_BRANCH)  # refs/main is always the default revision
    return list(dict.fromkeys(names))


def _publish_snapshot(
    repo: Path, found: Located, files: list[ManifestFile], say: Events, *, verify: bool = False
) -> bool:
    """Snapshot links, refs and ``trees/<commit>.json`` for the blobs now in the cache;
    returns whether anything was written.

    The tree file lists every file of the revision, whatever was pulled, as
    huggingface_hub writes it for a download with ``allow_patterns``: online,
    ``snapshot_download`` then fetches what is missing; offline it says the snapshot is
    incomplete rather than returning part of it.
    """
    from nlmr.fsutil import atomic_write

    rev = found.revision
    snap = repo / "snapshots" / rev.id
    changes = _snapshot_changes(repo, found, files, verify=verify)
    by_path = {f.path: f for f in files}
    for change in changes:
        what, _, name = change.partition(":")
        if what == "link":
            f = by_path[name]
            dest = snap / f.path
            dest.parent.mkdir(parents=True, exist_ok=True)
            tmp = dest.with_name(f".{dest.name}.nlmr-link")
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            os.symlink(blob_link(f.path, f.blob_id), tmp)
            os.replace(tmp, dest)
        elif what == "tree":
            atomic_write(repo / "trees" / f"{rev.id}.json", tree_json(rev.files))
        else:
            path = repo / "refs" / name
            with contextlib.suppress(OSError):
                old = path.read_text()
                if name == DEFAULT_BRANCH and old and old != rev.id:
                    say(f"{found.entry.id}: refs/main moves from {old[:12]} to {rev.id[:12]}")
            # exactly 40 hex characters, no newline: hf_hub_download reads refs unstripped
            atomic_write(path, rev.id)
    return bool(changes)
