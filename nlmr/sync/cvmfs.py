"""The CernVM-FS backend: the mirror is published through ``cvmfs_server``.

The root is ``/cvmfs/<repository>/<subdir>``. It can be written only inside a
transaction: an overlay on the stratum 0 (or on a publisher that reaches the repository
through a gateway), whose changes become visible at ``publish`` and vanish at
``abort -f``. So the atomicity the POSIX publisher builds from renames is the
transaction's here. Revision directories are built in place, and nothing half-written
is ever published. Any failure aborts the open transaction, and a failed build inside
a transaction that goes on is removed from the overlay first.

**Where bytes wait.** Bytes are downloaded and verified in a local staging directory
outside /cvmfs (``cvmfs.staging``). nlmr's private state lives there too: the
one-writer lock, the registry cache, partial downloads and the record of an open
transaction. ``place_blob`` copies a verified blob into the repository inside the
transaction. The staged copy is deleted once that transaction has published, and kept
after an abort, so the next run does not download it again.

**Units.** Every write falls in one *unit*, a directory that is at once:

- a nested catalog (a ``.cvmfscatalog`` file);
- the subpath of a gateway lease (``cvmfs.gateway``);
- the base directory of an ingested tar (``cvmfs.mode: ingest``).

There are three kinds of unit:

- ``hub/<kind>s--<org>--<name>``: one per entry. It holds all revisions of a model
  (blobs, snapshots, refs, trees): the "one catalog per model" of the CVMFS guidance.
- ``<kind>s/<org>``: one per organisation in the plain tree. It holds the
  ``name@revision`` directories and the ``name`` default links, which are siblings, so
  no smaller directory holds one entry's plain revisions and its link. Per organisation
  the catalog stays within the recommended 1k to 200k entries. It also keeps the
  marker out of the directories users load (``from_pretrained`` and ``check-mirror``
  see only the model's files).
- the mirror root: ``catalogue.json``, the environment files and the top directories.
  So the catalogue, which changes on every run, does not make clients download a large
  catalog again.

**Transaction mode** runs ``cvmfs_server transaction <repo>``, then the writes, then
``publish <repo>``. A transaction opens on the first write, so a run that changes
nothing publishes nothing. Through a gateway, each unit gets its own lease
(``transaction <repo>/<unit>``). The gateway silently drops changes outside the lease
(``IsIgnoredPath`` in cvmfs/receiver/catalog_merge_tool_impl.h), so a write to another
unit first publishes the open lease and then takes the next one. Published states then
come in write order, which the engine already keeps consistent (blobs, snapshot, plain
directory, refs and links, catalogue), as on POSIX. The parent of a leased path must
exist already: below a missing parent, the topmost missing ancestor is leased instead (a
lease covers what is below it), or, in ingest mode, the unit's tar goes in at it.

**Ingest mode** collects each unit's writes into a tar (revision directories are built
in staging). At the end of the outermost
transaction it streams the tar into ``cvmfs_server ingest -t - -b <unit> [-c] <repo>``.
Ingest opens its own transaction. ``-c`` asks for the nested catalog where there is none
yet. Units go in dependency order: hub units, then plain units, then the root.
Removals follow as ``ingest -d``, one call each through a gateway, because it refuses
to delete and add in one call.

**Stale transactions.** Before a transaction (or an ingest) opens, nlmr writes a record
into the staging directory, and removes it after ``publish`` or ``abort``. If a run
finds the repository in a transaction (``cvmfs_server list``) and the record is there,
the transaction was left by a killed nlmr run. nlmr holds the target's lock, so that run
is not alive. nlmr says so and aborts it. Without the record the transaction belongs to
someone else and nlmr stops.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import shutil
import socket
import tarfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from nlmr.errors import UsageError
from nlmr.fsutil import atomic_write
from nlmr.layout import HUB_DIR, KIND_DIRS
from nlmr.sync.cvmfs_commands import (
    CommandResult,
    CvmfsError,
    Feed,
    Runner,
    _tar_feed,
    run_command,
)
from nlmr.sync.publisher import (
    CONTAINER_MODE,
    Events,
    LinkMode,
    Publisher,
    _force_rmtree,
    _fsync_file,
)
from nlmr.target import CvmfsSettings, Target

#: the file that makes its directory a nested catalog
CATALOG_MARKER = ".cvmfscatalog"
#: written before a transaction opens, removed after publish/abort (in the staging dir)
TRANSACTION_RECORD = "cvmfs-transaction.json"
MB = 1024 * 1024  # CVMFS_FILE_MBYTE_LIMIT counts MiB (catalog_mgr_rw.cc: limit * 1024 * 1024)


def default_staging(target: Target) -> Path:
    """Where a cvmfs target stages bytes when ``cvmfs.staging`` is unset:
    ``~/.cache/nlmr/cvmfs-staging/<target name>``."""
    return Path.home() / ".cache" / "nlmr" / "cvmfs-staging" / target.name


@dataclass
class _Member:
    """One entry of a pending tar (ingest mode), by path relative to its unit."""

    kind: Literal["file", "data", "link", "tree"]
    source: Path | None = None  # file: its bytes; tree: a staged directory to include
    data: bytes = b""
    target: str = ""
    mode: int = 0


class CvmfsPublisher(Publisher):
    """Publishes a target's tree into a CernVM-FS repository through ``cvmfs_server``.

    Args:
        target: the target; ``target.cvmfs`` names the repository and the mode.
        warn: where warnings go.
        runner: runs ``cvmfs_server`` (default :func:`run_command`); tests record here.

    Raises:
        UsageError: the target has no ``cvmfs`` section, its root is not inside
            ``/…/<repository>/``, or its staging directory is inside the repository.
    """

    #: the plain tree links to the hub blobs: overlayfs breaks hard links and the
    #: catalog keeps them only within one directory; symbolic links live in the catalog
    hardlinks = False

    def __init__(
        self, target: Target, warn: Events | None = None, runner: Runner | None = None
    ) -> None:
        super().__init__(target, warn)
        if target.cvmfs is None:
            raise UsageError(f"target {target.name}: backend cvmfs needs a `cvmfs:` section")
        self.settings: CvmfsSettings = target.cvmfs
        self.repository = self.settings.repository
        self.mount, self.subdir = _locate(target.root, self.repository)
        staging = Path(self.settings.staging) if self.settings.staging else default_staging(target)
        self._state = staging.absolute()
        if _within(self._state, self.mount):
            raise UsageError(
                f"cvmfs.staging {self._state} is inside the repository {self.mount}: "
                "it must be a local directory outside /cvmfs"
            )
        self.command = shlex.split(self.settings.server_command)
        self.runner: Runner = runner or run_command
        self.ingest = self.settings.mode == "ingest"
        self.gateway = self.settings.gateway
        self._depth = 0  # nesting of transaction()
        self._open: str | None = None  # the argument of the open `transaction`
        self._marked: set[str] = set()  # units whose catalog marker is checked
        self._placed: list[Path] = []  # staged blobs copied in: deleted after publish
        self._copies: dict[Path, Path] = {}  # repository blob -> staged copy, not yet placed
        self._building = False
        self._warned: set[Path] = set()
        # ingest mode: what the outermost transaction will stream, per unit
        self._adds: dict[str, dict[str, _Member]] = {}
        self._deletes: dict[str, None] = {}
        self._builds: list[Path] = []

    # -- private areas -----------------------------------------------------------------

    @property
    def state_dir(self) -> Path:
        """The staging directory (``cvmfs.staging``): lock, caches, downloads. It is
        outside the repository, so it is writable outside transactions."""
        return self._state

    def prepare_root(self) -> None:
        """Create the staging directory; the repository is written only in transactions."""
        self.state_dir.mkdir(parents=True, exist_ok=True)

    def prepare(self) -> None:
        """Check the repository and recover a transaction left by a killed run.

        Also clears builds left in staging and deletes staged blobs that a finished
        transaction already published.

        Raises:
            CvmfsError: ``cvmfs_server list`` fails or does not know the repository, the
                repository is in a transaction nlmr did not open, or it is not mounted.
        """
        self.staging_root.mkdir(parents=True, exist_ok=True)
        self.partial_dir(0).mkdir(parents=True, exist_ok=True)
        for leftover in self.staging_root.glob("build-*"):
            _force_rmtree(leftover)
        trash = self.state_dir / "trash"
        if trash.exists():
            _force_rmtree(trash)
        self._recover()
        if not self.mount.is_dir():
            raise CvmfsError(
                f"{self.mount} does not exist: repository {self.repository} is not mounted here",
                hint="run nlmr sync on the repository's stratum 0 or publisher",
            )
        staged = self.staging_root / "blobs"
        for dirpath, _, filenames in os.walk(staged):
            for name in filenames:
                path = Path(dirpath) / name
                final = self.root / path.relative_to(staged)
                if os.path.lexists(final):
                    path.unlink()

    def finish(self) -> None:
        """Check that nothing is left open or pending (the engine closed every transaction)."""
        if self._open is not None or self._adds or self._deletes:
            raise RuntimeError("cvmfs: a transaction is still open at the end of the run")

    # -- transactions ------------------------------------------------------------------

    @contextlib.contextmanager
    def transaction(self, scope: str | None = None) -> Iterator[None]:
        """Group changes into one publication. Calls nest; the outermost decides.

        Nothing is opened until the first write. When the outermost block ends, the
        open transaction is published, or the collected tars are ingested. If the
        block raises, the transaction is aborted (``abort -f``) or the tars are
        dropped, and the exception propagates. Gateway leases follow the paths that
        are written (see the module's *units*), so ``scope`` is not needed.

        Args:
            scope: accepted for the publisher interface; unused.

        Raises:
            CvmfsError: a ``cvmfs_server`` command failed (after ``abort -f``).
        """
        self._depth += 1
        try:
            yield
        except BaseException:
            self._depth -= 1
            if self._depth == 0:
                self._rollback()
            raise
        self._depth -= 1
        if self._depth == 0:
            self._commit()

    def _commit(self) -> None:
        if self.ingest:
            self._flush()
        elif self._open is not None:
            self._publish()

    def _rollback(self) -> None:
        if self.ingest:
            self._discard()
            return
        if self._open is not None:
            try:
                self._abort()
            except CvmfsError as exc:
                self.warn(str(exc))

    @contextlib.contextmanager
    def _writing(self, path: Path, *, create: bool = True) -> Iterator[None]:
        """Wrap one write under the root. Outside a transaction the write becomes its
        own transaction. Inside one, this makes sure the unit's transaction or lease is
        open, its catalog marker exists, and the blobs copied for it are in place."""
        with self.transaction():
            unit = self.unit(path)
            if not self.ingest:
                self._lease(unit)
                if create:
                    self._mark(unit)
            for final in [f for f in self._copies if self.unit(f) == unit]:
                self.place_blob(self._copies.pop(final), final)
            yield

    def _lease(self, unit: str) -> None:
        if not self.gateway:
            if self._open is None:
                self._begin(self.repository)
            return
        path = f"{self.repository}/{unit}"
        if self._open is not None and (path == self._open or path.startswith(f"{self._open}/")):
            return  # the open lease covers the unit
        if self._open is not None:
            if self._building:
                raise RuntimeError(f"cvmfs: lease switch to {path} while building a directory")
            self._publish()
        self._begin(f"{self.repository}/{self._base(unit)}")

    def _base(self, unit: str) -> str:
        """The path to lease (or ingest at) for a unit: the unit itself, or, through a
        gateway when the unit's parent is not published yet, its topmost missing
        ancestor. The parent of a leased path must exist (cvmfs
        publish/repository_transaction.cc: "cannot open transaction on non-existing
        path"), and the gateway's merge adds nothing above the lease, so missing
        parents cannot be left to it."""
        parent = (self.mount / unit).parent
        if not self.gateway or parent.is_dir():
            return unit
        top = parent
        while not top.parent.is_dir():
            top = top.parent
        return top.relative_to(self.mount).as_posix()

    def _begin(self, want: str) -> None:
        self._write_record(want)
        done = self._run("transaction", want)
        if done.returncode != 0:
            self._drop_record()
            raise CvmfsError(
                f"`{_show(done.args)}` failed (exit {done.returncode})",
                result=done,
                hint=_transaction_hint(self.repository, self.gateway),
            )
        self._open = want
        self._marked = set()

    def _publish(self) -> None:
        done = self._run("publish", self.repository)
        if done.returncode != 0:
            try:
                self._abort()
            except CvmfsError as exc:
                self.warn(str(exc))
            raise CvmfsError(
                f"`{_show(done.args)}` failed (exit {done.returncode}); the transaction was "
                "aborted, nothing of it is published",
                result=done,
                hint="see the repository's publish log; rerun nlmr sync to try again",
            )
        self._open = None
        self._drop_record()
        for staged in self._placed:
            with contextlib.suppress(FileNotFoundError):
                staged.unlink()
        self._placed = []

    def _abort(self) -> None:
        self._open = None
        self._placed = []
        done = self._run("abort", "-f", self.repository)
        if done.returncode != 0:
            raise CvmfsError(
                f"`{_show(done.args)}` failed (exit {done.returncode}); the repository may "
                "still be in a transaction",
                result=done,
                hint=f"check `cvmfs_server list`, then `cvmfs_server abort -f {self.repository}`",
            )
        self._drop_record()

    def _mark(self, unit: str) -> None:
        """Create the unit's directory and its ``.cvmfscatalog`` (once per transaction)."""
        if unit in self._marked:
            return
        top = self.mount / unit
        self._mkdirs(top)
        marker = top / CATALOG_MARKER
        if not marker.exists():
            atomic_write(marker, b"", mode=self.file_mode)
        self._marked.add(unit)

    def _run(self, *args: str, feed: Feed | None = None) -> CommandResult:
        return self.runner([*self.command, *args], feed)

    # -- stale transactions --------------------------------------------------------------

    def _in_transaction(self) -> bool:
        done = self._run("list")
        if done.returncode != 0:
            raise CvmfsError(f"`{_show(done.args)}` failed (exit {done.returncode})", result=done)
        for line in done.output.splitlines():
            words = line.split(maxsplit=1)
            if words and words[0] == self.repository:
                return "in transaction" in line
        raise CvmfsError(
            f"`{_show(done.args)}` does not list repository {self.repository}",
            result=done,
            hint="run nlmr sync on the repository's stratum 0 or publisher, as its owner",
        )

    def _recover(self) -> None:
        record = self._read_record()
        if self._in_transaction():
            if record is None:
                raise CvmfsError(
                    f"repository {self.repository} is in a transaction that nlmr did not open",
                    hint=f"publish it or abort it (`cvmfs_server abort -f {self.repository}`), "
                    "then rerun",
                )
            self.warn(
                f"cvmfs: {self.repository} was left in a transaction by an nlmr sync that did "
                f"not finish ({_describe(record)}); aborting it with `abort -f`, so none of "
                "its changes are published"
            )
            self._abort()
        elif record is not None:
            self._drop_record()  # the run died before its transaction opened, or after

    def _write_record(self, argument: str) -> None:
        record = {
            "transaction": argument,
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started": time.time(),
        }
        atomic_write(self.state_dir / TRANSACTION_RECORD, json.dumps(record) + "\n")

    def _read_record(self) -> dict[str, object] | None:
        try:
            data = json.loads((self.state_dir / TRANSACTION_RECORD).read_bytes())
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def _drop_record(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            (self.state_dir / TRANSACTION_RECORD).unlink()

    # -- paths -------------------------------------------------------------------------

    def in_repository(self, path: Path) -> bool:
        """Whether ``path`` is under the mirror root (written through transactions)."""
        return _within(path, self.root)

    def unit(self, path: Path) -> str:
        """The unit of a path under the root, as a path relative to the repository:
        ``<subdir>/hub/<repo folder>``, ``<subdir>/<kind>s/<org>`` or ``<subdir>``."""
        rel = path.relative_to(self.root).parts
        if len(rel) >= 2 and (rel[0] == HUB_DIR or rel[0] in KIND_DIRS.values()):
            return f"{self.subdir}/{rel[0]}/{rel[1]}"
        return self.subdir

    def _is_unit(self, repo_path: str) -> bool:
        path = self.mount / repo_path
        return self.in_repository(path) and self.unit(path) == repo_path

    def _staged(self, final: Path) -> Path:
        return self.staging_root / "blobs" / final.relative_to(self.root)

    def _final_of(self, staged: Path) -> Path | None:
        base = self.staging_root / "blobs"
        return self.root / staged.relative_to(base) if _within(staged, base) else None

    def _pending(self, final: Path) -> _Member | None:
        unit = self.unit(final)
        rel = final.relative_to(self.mount / unit).as_posix()
        return self._adds.get(unit, {}).get(rel)

    def _exists(self, final: Path) -> bool:
        if self.ingest and self._pending(final) is not None:
            return True
        return os.path.lexists(final)

    # -- directories -------------------------------------------------------------------

    def container(self, path: Path) -> None:
        """Make sure a directory that holds published entries exists (in ingest mode the
        tar creates it)."""
        if not self.in_repository(path):
            super().container(path)
        elif not self.ingest and not path.is_dir():
            with self._writing(path):
                self._mkdirs(path)

    def _mkdirs(self, path: Path) -> None:
        missing = []
        p = path
        while not p.is_dir():
            missing.append(p)
            p = p.parent
        for d in reversed(missing):
            d.mkdir(exist_ok=True)
            self._own(d, CONTAINER_MODE)

    def blob_fetch_path(self, final: Path) -> Path:
        """The verified blob lands in staging, outside /cvmfs, until ``place_blob``
        (private blobs of a target without the hub layout stay in staging for good)."""
        if not self.in_repository(final):
            return super().blob_fetch_path(final)
        staged = self._staged(final)
        staged.parent.mkdir(parents=True, exist_ok=True)
        return staged

    def place_blob(self, fetched: Path, final: Path) -> None:
        """Copy a verified blob from staging into the repository (in the open
        transaction, or into the unit's tar); warn when it is above the repository's
        file size limit.

        Raises:
            CvmfsError: a ``cvmfs_server`` command failed (outside a transaction the write
                is its own transaction).
        """
        if fetched == final or os.path.lexists(final):
            return
        with self._writing(final):
            self._check_size(final, os.stat(fetched).st_size)
            if self.ingest:
                self._add(final, _Member("file", source=fetched, mode=self.file_mode))
            else:
                self._mkdirs(final.parent)
                tmp = final.parent / f".{final.name}.{uuid.uuid4().hex[:8]}.tmp"
                try:
                    shutil.copyfile(fetched, tmp)
                    self._own(tmp, self.file_mode)
                    _fsync_file(tmp)
                    os.replace(tmp, final)
                except BaseException:
                    with contextlib.suppress(OSError):
                        os.unlink(tmp)
                    raise
            self._placed.append(fetched)

    def copy_blob(self, src: Path, dest: Path) -> None:
        """Give ``dest`` (a staging path) the bytes of ``src``. The copy goes into the
        repository with the next write to its unit: the engine places only the blobs
        it fetched."""
        super().copy_blob(src, dest)
        final = self._final_of(dest)
        if final is not None and not os.path.lexists(final):
            self._copies[final] = dest

    def publish_dir(self, final: Path, build: Callable[[Path], None]) -> bool:
        """Build a revision directory. In transaction mode it is built in place, in the
        open transaction. In ingest mode it is built in staging and goes into the
        unit's tar.

        A build that fails is removed from the overlay before the exception
        propagates, so a transaction that goes on (the engine goes on to the next
        revision) never publishes it.

        Returns:
            False when ``final`` already exists (published revisions never change).

        Raises:
            CvmfsError: a ``cvmfs_server`` command failed.
        """
        if self._exists(final):
            return False
        with self._writing(final):
            if self.ingest:
                work = self.staging_root / f"build-{uuid.uuid4().hex[:12]}"
                staged = work / final.name
                staged.mkdir(parents=True)
                self._builds.append(work)
                build(staged)
                self._seal(staged)
                self._add(final, _Member("tree", source=staged, mode=self.dir_mode))
                return True
            self._mkdirs(final.parent)
            final.mkdir()
            self._building = True
            try:
                build(final)
                self._seal(final)
                os.chmod(final, self.dir_mode)
            except BaseException:
                _force_rmtree(final)
                raise
            finally:
                self._building = False
        return True

    # -- files and links ---------------------------------------------------------------

    def write_file(self, final: Path, data: bytes) -> None:
        """Replace a small published file (refs, trees json, catalogue), in the open
        transaction or the unit's tar.

        Raises:
            CvmfsError: a ``cvmfs_server`` command failed (outside a transaction the write
                is its own transaction).
        """
        if not self.in_repository(final):
            super().write_file(final, data)
            return
        with self._writing(final):
            if self.ingest:
                self._add(final, _Member("data", data=data, mode=self.file_mode))
            else:
                super().write_file(final, data)

    def replace_link(self, final: Path, target: str) -> bool:
        """Point the symbolic link ``final`` at ``target``.

        Returns:
            False when it already pointed there (and then no transaction is opened).

        Raises:
            CvmfsError: a ``cvmfs_server`` command failed.
        """
        pending = self._pending(final) if self.ingest else None
        if pending is not None:
            if pending.kind == "link" and pending.target == target:
                return False
        else:
            with contextlib.suppress(OSError):
                if os.readlink(final) == target:
                    return False
        with self._writing(final):
            if self.ingest:
                self._add(final, _Member("link", target=target))
                return True
            return super().replace_link(final, target)

    def link_file(self, blob: Path, dest: Path) -> LinkMode:
        """Make ``dest`` in a revision being built show the bytes of ``blob``: a relative
        symbolic link to a blob in the repository. A private blob in staging (no hub
        layout) is copied instead. The copy costs no space in the repository, whose
        storage is content-addressed."""
        if self.in_repository(blob):
            if blob in self._copies:
                self.place_blob(self._copies.pop(blob), blob)
            return super().link_file(blob, dest)
        shown = dest
        if self.building is not None:  # in ingest mode dest is in staging: name it as published
            shown = self.building[1] / dest.relative_to(self.building[0])
        self._check_size(shown, os.stat(blob).st_size)
        if self.ingest:  # the build is in staging, beside the blob: share its inode
            try:
                os.link(blob, dest)
            except OSError:
                shutil.copyfile(blob, dest)
        else:
            shutil.copyfile(blob, dest)
        self._link_mode = "copy"
        return "copy"

    def remove(self, final: Path) -> bool:
        """Take a published file, link or directory away, in the open transaction (or
        as ``ingest -d``).

        Returns:
            False when it is absent.

        Raises:
            CvmfsError: a ``cvmfs_server`` command failed.
        """
        if not self.in_repository(final):
            return super().remove(final)
        if self.ingest:
            unit = self.unit(final)
            rel = final.relative_to(self.mount / unit).as_posix()
            members = self._adds.get(unit, {})
            dropped = [k for k in members if k == rel or k.startswith(f"{rel}/") or rel == "."]
            for k in dropped:
                del members[k]
            if not os.path.lexists(final):
                return bool(dropped)
            self._deletes[final.relative_to(self.mount).as_posix()] = None
            if self._depth == 0:
                self._flush()
            return True
        if not os.path.lexists(final):
            return False
        with self._writing(final, create=False):
            if final.is_dir() and not final.is_symlink():
                _force_rmtree(final)
            else:
                os.unlink(final)
        return True

    def _check_size(self, final: Path, size: int) -> None:
        limit = self.settings.file_size_limit_mb
        if size <= limit * MB or final in self._warned:
            return
        self._warned.add(final)
        self.warn(
            f"cvmfs: {final.relative_to(self.root) if self.in_repository(final) else final} "
            f"is {size / MB:.0f} MiB, above the repository's file size limit of {limit} MB "
            "(CVMFS_FILE_MBYTE_LIMIT): with CVMFS_ENFORCE_LIMITS its publication fails; "
            "raise the limit on the repository and cvmfs.file_size_limit_mb (docs/cvmfs.md)"
        )

    # -- ingest mode -------------------------------------------------------------------

    def _add(self, final: Path, member: _Member) -> None:
        unit = self.unit(final)
        rel = final.relative_to(self.mount / unit).as_posix()
        rel_repo = final.relative_to(self.mount).as_posix()
        for gone in self._deletes:
            if rel_repo.startswith(f"{gone}/"):
                raise RuntimeError(f"cvmfs: {rel_repo} added inside {gone}, removed before")
        self._deletes.pop(rel_repo, None)
        self._adds.setdefault(unit, {})[rel] = member

    def _discard(self) -> None:
        self._adds.clear()
        self._deletes.clear()
        for work in self._builds:
            _force_rmtree(work)
        self._builds = []
        self._placed = []

    def _flush(self) -> None:
        """Ingest what the transaction collected: one tar per unit, then removals."""
        try:
            # dependencies point from the plain tree and the root into the hub units
            order = {HUB_DIR: 0, **dict.fromkeys(KIND_DIRS.values(), 1)}
            units = sorted(self._adds, key=lambda u: order.get(self._top(u), 2))
            for unit in units:
                base = self._base(unit)
                members = self._adds[unit]
                if base != unit:  # through a gateway, below a missing parent: one tar at base
                    prefix = (self.mount / unit).relative_to(self.mount / base).as_posix()
                    members = {f"{prefix}/{k}": m for k, m in members.items()}
                    if not (self.mount / unit / CATALOG_MARKER).exists():
                        # a .cvmfscatalog member makes a nested catalog (sync_union_tarball.cc)
                        members[f"{prefix}/{CATALOG_MARKER}"] = _Member("data", mode=self.file_mode)
                entries = self._tar_entries(base, members)
                if not entries:
                    continue
                args = ["ingest", "-t", "-", "-b", base]
                if self._is_unit(base) and not (self.mount / base / CATALOG_MARKER).exists():
                    args.append("-c")
                self._ingest([*args, self.repository], _tar_feed(entries))
                del self._adds[unit]
            # removals in the opposite order: links and plain directories before blobs
            deletes = sorted(self._deletes, key=lambda p: -order.get(self._top(p), 2))
            if deletes:
                if self.gateway:
                    for path in deletes:
                        self._ingest(["ingest", "-d", path, self.repository], None)
                else:
                    flags = [x for p in deletes for x in ("-d", p)]
                    self._ingest(["ingest", *flags, self.repository], None)
            for staged in self._placed:
                with contextlib.suppress(FileNotFoundError):
                    staged.unlink()
        finally:
            self._discard()

    def _top(self, repo_path: str) -> str:
        rest = repo_path[len(self.subdir) :].strip("/")
        return rest.split("/", 1)[0] if rest else ""

    def _ingest(self, args: list[str], feed: Feed | None) -> None:
        self._write_record(self.repository)
        try:
            done = self._run(*args, feed=feed)
        except BaseException as exc:
            self._after_failed_ingest()
            if isinstance(exc, OSError):
                raise CvmfsError(f"cvmfs: streaming the tar failed: {exc}") from exc
            raise
        if done.returncode != 0:
            self._after_failed_ingest()
            raise CvmfsError(
                f"`{_show(done.args)}` failed (exit {done.returncode}); nothing of it is published",
                result=done,
                hint=_transaction_hint(self.repository, self.gateway),
            )
        self._drop_record()

    def _after_failed_ingest(self) -> None:
        """Ingest aborts its own transaction when it fails. Make sure it did (a stopped
        ingest leaves it open)."""
        try:
            if self._in_transaction():
                self._abort()
            else:
                self._drop_record()
        except CvmfsError as exc:
            self.warn(str(exc))

    def _tar_entries(
        self, unit: str, members: dict[str, _Member]
    ) -> list[tuple[tarfile.TarInfo, Path | bytes | None]]:
        """The tar of one unit, every source stat'ed before the stream starts. Missing
        parent directories are included, and every mode is set explicitly."""
        base = self.mount / unit
        now = time.time()
        out: dict[str, tuple[tarfile.TarInfo, Path | bytes | None]] = {}

        def info(name: str, kind: bytes, mode: int, size: int = 0) -> tarfile.TarInfo:
            ti = tarfile.TarInfo(name)
            ti.type, ti.mode, ti.size, ti.mtime = kind, mode, size, int(now)
            return ti

        for rel, m in members.items():
            for parent in _parents(rel):
                if parent not in out and not (base / parent).is_dir():
                    out[parent] = (info(parent, tarfile.DIRTYPE, CONTAINER_MODE), None)
            if m.kind == "data":
                out[rel] = (info(rel, tarfile.REGTYPE, m.mode, len(m.data)), m.data)
            elif m.kind == "link":
                ti = info(rel, tarfile.SYMTYPE, 0o777)
                ti.linkname = m.target
                out[rel] = (ti, None)
            elif m.kind == "file":
                assert m.source is not None
                out[rel] = (info(rel, tarfile.REGTYPE, m.mode, os.stat(m.source).st_size), m.source)
            else:
                assert m.source is not None
                out[rel] = (info(rel, tarfile.DIRTYPE, m.mode), None)
                for dirpath, dirnames, filenames in os.walk(m.source):
                    dirnames.sort()
                    d = Path(dirpath)
                    for name in sorted(dirnames + filenames):
                        p = d / name
                        arc = f"{rel}/{p.relative_to(m.source).as_posix()}"
                        st = os.lstat(p)
                        if p.is_symlink():
                            ti = info(arc, tarfile.SYMTYPE, 0o777)
                            ti.linkname = os.readlink(p)
                            out[arc] = (ti, None)
                        elif name in dirnames:
                            out[arc] = (info(arc, tarfile.DIRTYPE, self.dir_mode), None)
                        else:
                            out[arc] = (info(arc, tarfile.REGTYPE, self.file_mode, st.st_size), p)
        return [out[k] for k in sorted(out)]


def _parents(rel: str) -> list[str]:
    parts = rel.split("/")[:-1]
    return ["/".join(parts[: i + 1]) for i in range(len(parts))]


def _within(path: Path, top: Path) -> bool:
    return path == top or top in path.parents


def _locate(root: Path, repository: str) -> tuple[Path, str]:
    """The repository's mount point (``/cvmfs/<repository>``) and the root's path in it."""
    parts = root.parts
    for i in range(len(parts) - 2, 0, -1):
        if parts[i] == repository:
            return Path(*parts[: i + 1]), "/".join(parts[i + 1 :])
    raise UsageError(
        f"root {root} is not a directory inside repository {repository}: a cvmfs target's "
        f"root is /cvmfs/{repository}/<subdirectory>"
    )


def _show(args: Sequence[str]) -> str:
    return " ".join(shlex.quote(a) for a in args)


def _describe(record: dict[str, object]) -> str:
    if not record:
        return "its record is unreadable"
    started = record.get("started")
    when = (
        time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(started))
        if isinstance(started, (int, float))
        else "?"
    )
    what = record.get("transaction")
    return f"`transaction {what}`, pid {record.get('pid')} on {record.get('host')}, {when}"


def _transaction_hint(repository: str, gateway: bool) -> str:
    if gateway:
        return (
            "another publisher may hold an overlapping lease: leases conflict when one path "
            "is a string prefix of the other (`mirror` blocks `mirror-test`); rerun later, "
            f"or check `cvmfs_server list` and `cvmfs_server abort -f {repository}`"
        )
    return (
        f"check `cvmfs_server list`; if {repository} is in a transaction nobody is using, "
        f"`cvmfs_server abort -f {repository}`"
    )
