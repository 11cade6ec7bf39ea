"""The sync engine: registry → plan → transfer → publish → catalogue.

``sync()`` takes the target's lock, reads the registry (cached per entry), compares it
with the catalogue the target published last time, and carries out the plan:
missing objects are fetched and verified against the manifest's sha256 as they
stream, each revision appears at once in both layouts, default links and refs
switch atomically, removed revisions go after the grace period and orphan blobs
with them. A file that fails verification stops its revision only.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nlmr import __version__
from nlmr.catalogue import (
    CATALOGUE_FILE,
    Catalogue,
    CatalogueEntry,
    PublishedRevision,
    load_catalogue,
)
from nlmr.errors import NlmrError
from nlmr.layout import (
    CARD_FALLBACK,
    CARD_FILE,
    DEFAULT_BRANCH,
    PROVENANCE_FILE,
    blob_link,
    hub_repo_dir,
    hub_repo_name,
    plain_dir,
    plain_link,
    plain_name,
    tree_json,
)
from nlmr.manifest import Manifest, ManifestFile
from nlmr.registry import Registry
from nlmr.sync.plan import Addition, Plan, Removal, iso, make_plan, now_utc
from nlmr.sync.publisher import Publisher
from nlmr.sync.view import WantedEntry, WantedRevision, read_registry
from nlmr.target import Target

Events = Callable[[str], None]
#: revisions are fetched and published in batches of about this many bytes, so a long
#: first sync publishes as it goes (and the catalogue records it)
BATCH_BYTES = 16 * 1024**3
REGISTRY_CACHE = "registry-cache.json"


@dataclass
class Failure:
    ref: str
    file: str | None
    error: str

    def to_dict(self) -> dict[str, Any]:
        return {"ref": self.ref, "file": self.file, "error": self.error}


@dataclass
class SyncReport:
    """What a sync did (or, with ``dry_run``, would do)."""

    target: dict[str, Any]
    dry_run: bool
    plan: Plan
    published: list[str] = field(default_factory=list)
    switched: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    failed: list[Failure] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    transferred_bytes: int = 0
    reused_files: int = 0
    link_mode: str | None = None
    env_files: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failed and not self.plan.conflicts

    @property
    def exit_code(self) -> int:
        """0: everything synced; 3: partial failure (some revisions failed, the rest synced)."""
        return 0 if self.ok else 3

    def to_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "dry_run": self.dry_run,
            "ok": self.ok,
            "plan": self.plan.to_dict(),
            "published": self.published,
            "switched": self.switched,
            "removed": self.removed,
            "pending_removal": [r.ref for r in self.plan.removals if not r.due],
            "failed": [f.to_dict() for f in self.failed],
            "warnings": self.warnings,
            "transferred_bytes": self.transferred_bytes,
            "reused_files": self.reused_files,
            "link_mode": self.link_mode,
            "env_files": self.env_files,
            "seconds": round(self.seconds, 3),
        }


def make_publisher(target: Target, warn: Events | None = None) -> Publisher:
    """The publisher for ``target.backend``."""
    if target.backend == "lustre":
        from nlmr.sync.lustre import LustrePublisher

        return LustrePublisher(target, warn)
    if target.backend == "cvmfs":
        from nlmr.sync.cvmfs import CvmfsPublisher

        return CvmfsPublisher(target, warn)
    return Publisher(target, warn)


def _registry_commit(root: Path) -> str | None:
    if not any((p / ".git").exists() for p in (root, *root.resolve().parents)):
        return None
    try:
        out = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except OSError:
        return None
    return out.stdout.strip() or None


def _load_files(target: Target) -> Callable[[WantedEntry, WantedRevision], list[ManifestFile]]:
    def load(entry: WantedEntry, rev: WantedRevision) -> list[ManifestFile]:
        assert rev.manifest is not None
        manifest = Manifest.from_dict(json.loads(Path(rev.manifest).read_bytes()))
        return [f for f in manifest.files if target.files.keeps(f.path)]

    return load


def sync(
    target: Target,
    *,
    registry: str | os.PathLike[str] | None = None,
    remote: str | None = None,
    endpoint_url: str | None = None,
    dry_run: bool = False,
    jobs: int | None = None,
    lock_wait: float = 0.0,
    break_lock: bool = False,
    progress: bool | None = None,
    warn: Events | None = None,
    now: Any = None,
) -> SyncReport:
    """Bring ``target`` in line with the registry.

    Args:
        registry: the registry checkout (default: the target's ``source.registry``, then
            NLMR_REGISTRY, then ./registry).
        remote, endpoint_url: the store (default: the target's ``source``, then the
            registry's DVC remote).
        dry_run: plan only; nothing on the target changes (no lock is taken).
        lock_wait: seconds to wait for another sync holding the target's lock.
        break_lock: take over a lock whose owner, on another host, stopped its heartbeat.
        progress: a progress bar (None: when standard error is a terminal).

    Returns:
        The report; ``report.exit_code`` is 3 when some revisions failed.

    Raises:
        LockHeldError, StaleLockError: another sync holds the target.
        RegistryNotFoundError, RemoteConfigError, StoreError: nothing could be synced.
    """
    from nlmr import config

    started = time.monotonic()
    notes: list[str] = []

    def say(message: str) -> None:
        notes.append(message)
        if warn:
            warn(message)

    reg = Registry(registry or target.registry or config.registry_path())
    pub = make_publisher(target, say)
    now = now or now_utc()
    load_files = _load_files(target)
    if dry_run:
        cache = pub.state_dir / REGISTRY_CACHE
        view = read_registry(reg, target, cache if cache.is_file() else None, write_cache=False)
        catalogue = load_catalogue(target.root / CATALOGUE_FILE)
        plan = make_plan(view, catalogue, target, now=now, load_files=load_files)
        report = SyncReport(target.to_dict(), True, plan, warnings=[*view.problems, *plan.warnings])
        report.seconds = time.monotonic() - started
        return report

    from nlmr.lock import hold

    pub.prepare_root()
    with hold(
        pub.lock_path,
        purpose=f"nlmr sync {target.name}",
        wait=lock_wait,
        break_stale=break_lock,
        on_event=say,
    ):
        view = read_registry(reg, target, pub.state_dir / REGISTRY_CACHE)
        catalogue = load_catalogue(target.root / CATALOGUE_FILE)
        plan = make_plan(view, catalogue, target, now=now, load_files=load_files)
        report = SyncReport(target.to_dict(), False, plan)
        report.warnings.extend(view.problems)
        report.warnings.extend(plan.warnings)
        env_changes = _env_files(target)
        if plan.empty and not _stale_env(target, env_changes):
            report.warnings.extend(notes)
            report.seconds = time.monotonic() - started
            return report
        pub.prepare()
        run = _Run(target, pub, reg, plan, report, catalogue, now, load_files, say)
        run.execute(remote, endpoint_url, jobs, progress)
        report.env_files = run.write_env(env_changes)
        pub.finish()
    report.link_mode = pub.link_mode
    for n in notes:
        if n not in report.warnings:
            report.warnings.append(n)
    report.seconds = time.monotonic() - started
    return report


def _env_files(target: Target) -> dict[str, bytes]:
    """The users' environment files, by path relative to the root."""
    from nlmr.envfiles import env_files_for

    return env_files_for(target)


def _stale_env(target: Target, files: dict[str, bytes]) -> bool:
    for rel, data in files.items():
        try:
            if (target.root / rel).read_bytes() != data:
                return True
        except OSError:
            return True
    return False


class _Run:
    """One execution of a plan (holds the lock)."""

    def __init__(
        self,
        target: Target,
        pub: Publisher,
        registry: Registry,
        plan: Plan,
        report: SyncReport,
        catalogue: Catalogue,
        now: Any,
        load_files: Callable[[WantedEntry, WantedRevision], list[ManifestFile]],
        warn: Events,
    ) -> None:
        self.target = target
        self.root = target.root
        self.pub = pub
        self.registry = registry
        self.plan = plan
        self.report = report
        self.entries: dict[str, CatalogueEntry] = dict(catalogue.entries)
        self.now = now
        self.load_files = load_files
        self.warn = warn
        self._commit: str | bool | None = False
        self._cards: dict[str, Any] = {}

    # -- helpers ----------------------------------------------------------------------

    @property
    def registry_commit(self) -> str | None:
        if self._commit is False:
            self._commit = _registry_commit(self.registry.root)
        return self._commit  # type: ignore[return-value]

    def blob_dir(self, kind: str, entry_id: str) -> Path:
        if "hub" in self.target.layouts:
            return hub_repo_dir(self.root, kind, entry_id) / "blobs"
        # no hub tree: the bytes still need one home per entry, private to nlmr
        return self.pub.state_dir / "blobs" / hub_repo_name(kind, entry_id)

    def save_catalogue(self) -> None:
        cat = Catalogue(
            target=self.target.to_dict(),
            updated=iso(now_utc()),
            generator=f"nlmr {__version__}",
            entries=self.entries,
        )
        self.pub.write_file(self.root / CATALOGUE_FILE, cat.to_json())

    def _card(self, entry: WantedEntry) -> Any:
        if entry.card not in self._cards:
            from nlmr.validate import load_card

            self._cards[entry.card] = load_card(entry.card)
        return self._cards[entry.card]

    # -- the plan ---------------------------------------------------------------------

    def execute(
        self, remote: str | None, endpoint_url: str | None, jobs: int | None, progress: bool | None
    ) -> None:
        from nlmr.progress import Progress

        plan = self.plan
        touched: set[str] = set()
        # metadata and cancelled removals first: they only touch the catalogue
        for key in plan.metadata:
            if key in self.entries:
                self.entries[key] = _refresh(self.entries[key], plan.wanted[key])
        for ref in plan.restored:
            entry_id, _, name = ref.partition("@")
            for key, e in self.entries.items():
                rev = e.revision(name) if e.id == entry_id else None
                if rev is not None:
                    self.entries[key] = e.with_revision(_with_removal(rev, None))
        for r in plan.removals:
            if r.since == "now" and not r.due:
                e = self.entries[f"{r.kind}:{r.id}"]
                rev = e.revision(r.name)
                assert rev is not None
                self.entries[e.key] = e.with_revision(_with_removal(rev, iso(self.now)))
        if plan.additions:
            total = sum(a.new_bytes for a in plan.additions)
            store = self._open_store(remote, endpoint_url, jobs)
            with Progress(total, f"sync {self.target.name}", enabled=progress) as bar:
                for batch in _batches(plan.additions):
                    touched |= self._add_batch(store, batch, jobs, bar.update)
                    self.save_catalogue()
        for s in plan.switches:
            touched.add(f"{s.kind}:{s.id}")
        with self.pub.transaction():
            for key in sorted(touched):
                self._finish_entry(key)
            self._remove(plan.due_removals)
            self.save_catalogue()

    def _open_store(self, remote: str | None, endpoint_url: str | None, jobs: int | None) -> Any:
        from nlmr import config
        from nlmr.remote import resolve_remote

        resolved = resolve_remote(
            self.registry.root,
            url=remote or self.target.remote,
            endpoint_url=endpoint_url or self.target.endpoint_url,
        )
        return resolved.open(jobs=config.jobs(jobs))

    def _add_batch(
        self, store: Any, batch: list[Addition], jobs: int | None, on_bytes: Callable[[int], None]
    ) -> set[str]:
        from nlmr import config
        from nlmr.store.base import file_key
        from nlmr.transfer import Fetch, fetch

        pub = self.pub
        files_of: dict[int, list[ManifestFile]] = {}
        blob_of: dict[tuple[int, str], Path] = {}
        fetches: dict[Path, Fetch] = {}
        first_by_sha: dict[str, Path] = {}
        copies: list[tuple[Path, Path]] = []  # (fetched blob, same bytes needed elsewhere)
        for i, a in enumerate(batch):
            entry = self.plan.wanted[f"{a.kind}:{a.id}"]
            files = self.load_files(entry, a.revision)
            files_of[i] = files
            blobs = self.blob_dir(a.kind, a.id)
            for f in files:
                final = blobs / f.blob_id
                blob_of[(i, f.path)] = final
                if final in fetches or os.path.lexists(final):
                    self.report.reused_files += 1
                    continue
                if f.sha256 in first_by_sha:  # same bytes in another entry of this batch
                    copies.append((first_by_sha[f.sha256], final))
                    continue
                first_by_sha[f.sha256] = final
                fetches[final] = Fetch(
                    key=file_key(f.md5),
                    size=f.size,
                    sha256=f.sha256,
                    dest=pub.blob_fetch_path(final),
                    label=f"{a.ref}: {f.path}",
                    tmp_dir=pub.partial_dir(f.size),
                )
        result = fetch(
            store,
            list(fetches.values()),
            jobs=config.jobs(jobs),
            mode=self.target.file_mode,
            on_bytes=on_bytes,
        )
        self.report.transferred_bytes += result.bytes
        bad: dict[Path, str] = {}  # final blob path -> why it is missing
        final_of = {item.dest: final for final, item in fetches.items()}
        for item, exc in result.failed:
            bad[final_of[item.dest]] = str(exc)
        for src, dest in copies:
            if src in bad:
                bad[dest] = bad[src]
            else:
                pub.copy_blob(fetches[src].dest, pub.blob_fetch_path(dest))
        touched: set[str] = set()
        with pub.transaction():
            for i, a in enumerate(batch):
                failures = [
                    (f.path, bad[blob_of[(i, f.path)]])
                    for f in files_of[i]
                    if blob_of[(i, f.path)] in bad
                ]
                if failures:
                    for path, message in failures:
                        self.report.failed.append(Failure(a.ref, path, message))
                    self.warn(f"{a.ref}: not published ({len(failures)} file(s) failed)")
                    continue
                for f in files_of[i]:
                    final = blob_of[(i, f.path)]
                    if final in fetches:
                        pub.place_blob(fetches[final].dest, final)
                try:
                    rev = self._publish_revision(a, files_of[i], blob_of, i)
                except NlmrError as exc:
                    self.report.failed.append(Failure(a.ref, None, str(exc)))
                    continue
                key = f"{a.kind}:{a.id}"
                held = self.entries.get(key) or _new_entry(self.plan.wanted[key])
                self.entries[key] = held.with_revision(rev)
                self.report.published.append(a.ref)
                touched.add(key)
        return touched

    def _publish_revision(
        self, a: Addition, files: list[ManifestFile], blob_of: dict[tuple[int, str], Path], i: int
    ) -> PublishedRevision:
        from nlmr.errors import CardError

        pub = self.pub
        rev = a.revision
        wanted = self.plan.wanted[f"{a.kind}:{a.id}"]
        published = iso(now_utc())
        if "hub" in self.target.layouts:
            repo = hub_repo_dir(self.root, a.kind, a.id)
            trees = repo / "trees" / f"{rev.id}.json"
            if not trees.exists():
                pub.write_file(trees, tree_json(files))

            def build_snapshot(d: Path) -> None:
                for f in files:
                    dest = d / f.path
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    os.symlink(blob_link(f.path, f.blob_id), dest)

            pub.publish_dir(repo / "snapshots" / rev.id, build_snapshot)
        if "plain" in self.target.layouts:
            final = plain_dir(self.root, a.kind, a.id, rev.name)
            paths = {f.path for f in files}
            card_name = CARD_FALLBACK if CARD_FILE in paths else CARD_FILE
            provenance = {
                "format_version": 1,
                "kind": a.kind,
                "id": a.id,
                "revision": rev.name,
                "revision_id": rev.id,
                "manifest_sha256": rev.manifest_sha256,
                "files": len(files),
                "bytes": sum(f.size for f in files),
                "card": card_name,
                "file_filter": {
                    "include": list(self.target.files.include),
                    "exclude": list(self.target.files.exclude),
                },
                "registry_commit": self.registry_commit,
                "target": self.target.name,
                "synced_at": published,
                "nlmr_version": __version__,
            }
            from nlmr.hfreadme import render_readme

            readme = render_readme(self._card(wanted)).encode()

            def build_plain(d: Path) -> None:
                pub.building = (d, final)
                try:
                    for f in files:
                        dest = d / f.path
                        dest.parent.mkdir(parents=True, exist_ok=True)
                        pub.link_file(blob_of[(i, f.path)], dest)
                    (d / card_name).write_bytes(readme)
                    (d / PROVENANCE_FILE).write_text(json.dumps(provenance, indent=1) + "\n")
                finally:
                    pub.building = None

            if not pub.publish_dir(final, build_plain):
                found = _read_provenance(final)
                if found.get("revision_id") != rev.id:
                    raise CardError(
                        str(final),
                        f"already holds revision id {found.get('revision_id')!r}, the registry "
                        f"says {rev.id!r}; a published revision never changes",
                        hint="give the new files a new revision name",
                    )
                published = found.get("synced_at", published)
        return PublishedRevision(
            name=rev.name,
            id=rev.id,
            date=rev.date,
            published=published,
            manifest_sha256=rev.manifest_sha256 or "",
            files=tuple(files),
            registry_commit=self.registry_commit,
        )

    def _finish_entry(self, key: str) -> None:
        """Refs and the default link of an entry, from the catalogue's view of it."""
        entry = self.entries.get(key)
        if entry is None or not entry.revisions:
            return
        wanted = self.plan.wanted.get(key)
        default = wanted.default.name if wanted and wanted.default else entry.default_revision
        if default is None or entry.revision(default) is None:
            default = entry.default_revision
        if default is None or entry.revision(default) is None:
            return
        old = entry.default_revision
        self.entries[key] = entry = _with_default(entry, default)
        if "hub" in self.target.layouts:
            refs = hub_repo_dir(self.root, entry.kind, entry.id) / "refs"
            wanted_refs = {r.name: r.id for r in entry.revisions}
            default_rev = entry.revision(default)
            assert default_rev is not None
            if DEFAULT_BRANCH in wanted_refs and default != DEFAULT_BRANCH:
                self.warn(
                    f"{entry.id}: revision {DEFAULT_BRANCH!r} is not the default; "
                    f"refs/{DEFAULT_BRANCH} points to the default {default!r}"
                )
            wanted_refs[DEFAULT_BRANCH] = default_rev.id
            for name, rev_id in sorted(wanted_refs.items()):
                path = refs / name
                try:
                    if path.read_bytes() == rev_id.encode():
                        continue
                except OSError:
                    pass
                # exactly 40 hex characters, no newline: hf_hub_download reads refs unstripped
                self.pub.write_file(path, rev_id.encode())
        if "plain" in self.target.layouts:
            link = plain_link(self.root, entry.kind, entry.id)
            if self.pub.replace_link(link, plain_name(entry.id, default)) or old != default:
                self.report.switched.append(f"{entry.id}@{default}")

    def _remove(self, removals: list[Removal]) -> None:
        by_entry: dict[str, list[Removal]] = {}
        for r in removals:
            by_entry.setdefault(f"{r.kind}:{r.id}", []).append(r)
        for key, items in sorted(by_entry.items()):
            entry = self.entries[key]
            remaining = [r for r in entry.revisions if r.name not in {x.name for x in items}]
            repo = hub_repo_dir(self.root, entry.kind, entry.id)
            if not remaining:
                self.pub.remove(plain_link(self.root, entry.kind, entry.id))
            for r in items:
                ref = repo / "refs" / r.name
                if "hub" in self.target.layouts:
                    try:
                        if ref.read_bytes() == r.rev_id.encode():
                            self.pub.remove(ref)
                    except OSError:
                        pass
                    if not any(x.id == r.rev_id for x in remaining):
                        self.pub.remove(repo / "snapshots" / r.rev_id)
                        self.pub.remove(repo / "trees" / f"{r.rev_id}.json")
                self.pub.remove(plain_dir(self.root, entry.kind, entry.id, r.name))
                entry = entry.without_revision(r.name)
                self.report.removed.append(r.ref)
            if not remaining:
                if "hub" in self.target.layouts:
                    self.pub.remove(repo)
                else:
                    self.pub.remove(self.blob_dir(entry.kind, entry.id))
                del self.entries[key]
                continue
            self.entries[key] = entry
            if "hub" in self.target.layouts:
                main = repo / "refs" / DEFAULT_BRANCH
                try:
                    if main.read_bytes().decode() in {r.rev_id for r in items}:
                        self._finish_entry(key)
                except OSError:
                    pass
            self._collect_blobs(entry)

    def _collect_blobs(self, entry: CatalogueEntry) -> None:
        """Delete the entry's blobs that no remaining revision uses."""
        keep = {f.blob_id for r in entry.revisions for f in r.files}
        blobs = self.blob_dir(entry.kind, entry.id)
        try:
            names = os.listdir(blobs)
        except FileNotFoundError:
            return
        for name in names:
            if name not in keep:
                self.pub.remove(blobs / name)

    def write_env(self, files: dict[str, bytes]) -> list[str]:
        changed = []
        with self.pub.transaction():
            for rel, data in sorted(files.items()):
                path = self.root / rel
                try:
                    if path.read_bytes() == data:
                        continue
                except OSError:
                    pass
                self.pub.write_file(path, data)
                changed.append(rel)
        return changed


def _batches(additions: list[Addition]) -> Iterator[list[Addition]]:
    batch: list[Addition] = []
    size = 0
    for a in additions:
        if batch and size + a.new_bytes > BATCH_BYTES:
            yield batch
            batch, size = [], 0
        batch.append(a)
        size += a.new_bytes
    if batch:
        yield batch


def _read_provenance(path: Path) -> dict[str, Any]:
    try:
        data = json.loads((path / PROVENANCE_FILE).read_bytes())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _new_entry(w: WantedEntry) -> CatalogueEntry:
    return w.catalogue_entry()


def _refresh(e: CatalogueEntry, w: WantedEntry) -> CatalogueEntry:
    from dataclasses import replace

    return replace(
        e,
        title=w.title,
        summary=w.summary,
        license=w.license,
        languages=w.languages,
        tags=w.tags,
        framework=w.framework,
    )


def _with_default(e: CatalogueEntry, name: str) -> CatalogueEntry:
    from dataclasses import replace

    return replace(e, default_revision=name)


def _with_removal(r: PublishedRevision, since: str | None) -> PublishedRevision:
    from dataclasses import replace

    return replace(r, removal_since=since)
