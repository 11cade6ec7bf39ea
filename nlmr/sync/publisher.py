"""How a target's tree is written: the POSIX publisher, which the Lustre and CVMFS
backends build on.

The engine decides *what* to write; a publisher decides *how* so that readers never
see a half-written revision: on POSIX a revision is built in a private staging
directory on the same filesystem, fsynced, given its modes and renamed into place;
links are swapped with a temporary link and ``rename``; small files are written to a
temporary name and renamed. Byte sharing between the two layouts uses hard links
when the filesystem allows them, relative symbolic links otherwise, copies only
where neither works (detected once per target, never configured).
"""

from __future__ import annotations

import contextlib
import errno
import grp
import os
import shutil
import stat
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Literal

from nlmr.fsutil import atomic_write, fsync_dir
from nlmr.target import Target

LinkMode = Literal["hardlink", "symlink", "copy"]
STATE_DIR = ".nlmr"
CONTAINER_MODE = 0o755
#: partial downloads younger than this are always kept, whatever the grace period
PARTIAL_MIN_AGE = 24 * 3600  # directories that receive new revisions stay writable by the operator

Events = Callable[[str], None]


class Publisher:
    """Writes a target's tree on a POSIX filesystem (local disk, NFS, GPFS, Lustre).

    Args:
        target: the target (root, modes, group).
        warn: where warnings go.
    """

    #: whether files of the plain tree may be hard links to the hub blobs
    hardlinks = True

    def __init__(self, target: Target, warn: Events | None = None) -> None:
        self.target = target
        self.root = target.root
        self.warn: Events = warn or (lambda _m: None)
        self.file_mode = target.file_mode
        self.dir_mode = target.dir_mode
        self.gid = _gid(target.group)
        self._link_mode: LinkMode | None = None

    # -- private areas -------------------------------------------------------------------

    @property
    def state_dir(self) -> Path:
        """nlmr's private directory on the target (lock, caches, staging)."""
        return self.root / STATE_DIR

    @property
    def staging_root(self) -> Path:
        """Where revisions are built and bytes land before publication: on the target's
        filesystem, so that publication is a rename."""
        return self.state_dir / "staging"

    def partial_dir(self, size: int) -> Path:
        """Where a file of ``size`` bytes is downloaded (Lustre picks a striped directory)."""
        return self.staging_root / "partial"

    @property
    def lock_path(self) -> Path:
        """The one-writer lock (a directory, see :mod:`nlmr.lock`)."""
        return self.state_dir / "lock"

    @property
    def link_mode(self) -> LinkMode | None:
        """How plain-tree files share the blobs' bytes, once detected."""
        return self._link_mode

    def prepare_root(self) -> None:
        """Create the root and nlmr's private directory (before the lock is taken)."""
        self.root.mkdir(parents=True, exist_ok=True)
        self.state_dir.mkdir(exist_ok=True)

    def prepare(self) -> None:
        """Create the root and private directories; clear staging left by a killed run
        (partial downloads are kept: they resume)."""
        self.root.mkdir(parents=True, exist_ok=True)
        self.staging_root.mkdir(parents=True, exist_ok=True)
        self.partial_dir(0).mkdir(parents=True, exist_ok=True)
        for leftover in self.staging_root.glob("build-*"):
            _force_rmtree(leftover)
        # partial downloads resume on the next run; one untouched for the grace period
        # belongs to an object no revision wants any more
        cutoff = time.time() - max(self.target.grace, PARTIAL_MIN_AGE)
        for partial in self.staging_root.glob("partial*/.*.partial*"):
            with contextlib.suppress(OSError):
                if partial.stat().st_mtime < cutoff:
                    partial.unlink()
        trash = self.state_dir / "trash"
        if trash.exists():
            _force_rmtree(trash)

    @contextlib.contextmanager
    def transaction(self, scope: str | None = None) -> Iterator[None]:
        """Group changes (CVMFS opens a transaction; on POSIX each step is atomic already)."""
        yield

    def finish(self) -> None:
        """Called once at the end of a run, after the last transaction."""

    # -- directories -----------------------------------------------------------------

    def container(self, path: Path) -> None:
        """Make sure a directory that holds published revisions exists."""
        if not path.is_dir():
            path.mkdir(parents=True, exist_ok=True)
            self._own(path, CONTAINER_MODE)

    def blob_fetch_path(self, final: Path) -> Path:
        """Where the transfer should put a verified blob whose published path is ``final``."""
        self.container(final.parent)
        return final

    def place_blob(self, fetched: Path, final: Path) -> None:
        """Publish a fetched blob (on POSIX the transfer already renamed it into place)."""

    def copy_blob(self, src: Path, dest: Path) -> None:
        """Give ``dest`` the verified bytes of ``src`` (same content in another entry):
        a hard link where possible, else a copy made visible by rename."""
        if os.path.lexists(dest):
            return
        try:
            os.link(src, dest)
            return
        except OSError as exc:
            if exc.errno not in (errno.EXDEV, errno.EPERM, errno.ENOTSUP, errno.EMLINK):
                raise
        tmp = dest.parent / f".{dest.name}.{uuid.uuid4().hex[:8]}.tmp"
        shutil.copyfile(src, tmp)
        self._own(tmp, self.file_mode)
        _fsync_file(tmp)
        os.replace(tmp, dest)

    def publish_dir(self, final: Path, build: Callable[[Path], None]) -> bool:
        """Build a directory privately and make it appear at ``final`` all at once.

        Returns:
            False when ``final`` already exists (nothing is changed: published revisions
            never change).
        """
        if final.exists() or final.is_symlink():
            return False
        self.container(final.parent)
        work = self.staging_root / f"build-{uuid.uuid4().hex[:12]}"
        work.mkdir()
        staged = work / final.name
        staged.mkdir()
        try:
            build(staged)
            self._seal(staged)
            try:
                # the directory itself keeps write permission until it has moved: a rename
                # to another parent updates its '..' entry (EACCES for a non-root owner)
                os.rename(staged, final)
            except OSError as exc:
                if exc.errno in (errno.EEXIST, errno.ENOTEMPTY):
                    return False  # another writer won; ours is discarded below
                raise
            os.chmod(final, self.dir_mode)
            fsync_dir(final.parent)
            return True
        finally:
            _force_rmtree(work)

    def _seal(self, top: Path) -> None:
        """Modes, group and fsync for everything under a staged directory (bottom up)."""
        for dirpath, dirnames, filenames in os.walk(top, topdown=False):
            d = Path(dirpath)
            for name in filenames:
                p = d / name
                st = os.lstat(p)
                if stat.S_ISLNK(st.st_mode):
                    continue
                if st.st_nlink == 1:  # hard links share the blob's inode: already sealed
                    self._own(p, self.file_mode)
                    _fsync_file(p)
            for name in dirnames:
                p = d / name
                if not p.is_symlink():
                    self._own(p, self.dir_mode)
            fsync_dir(d)
        if self.gid is not None:
            os.chown(top, -1, self.gid)

    def _own(self, path: Path, mode: int) -> None:
        if self.gid is not None:
            os.chown(path, -1, self.gid, follow_symlinks=False)
        os.chmod(path, mode)

    # -- files and links -----------------------------------------------------------------

    def write_file(self, final: Path, data: bytes) -> None:
        """Replace a small published file atomically (refs, trees json, catalogue)."""
        self.container(final.parent)
        atomic_write(final, data, mode=self.file_mode)
        if self.gid is not None:
            os.chown(final, -1, self.gid)

    def write_private(self, final: Path, data: bytes) -> None:
        """Replace one of nlmr's own files under the state directory."""
        atomic_write(final, data, mode=0o644)

    def replace_link(self, final: Path, target: str) -> bool:
        """Point the symbolic link ``final`` at ``target`` atomically (never ``ln -sfn``,
        which unlinks first). Returns False when it already pointed there."""
        with contextlib.suppress(OSError):
            if os.readlink(final) == target:
                return False
        self.container(final.parent)
        tmp = final.parent / f".{final.name}.{uuid.uuid4().hex[:8]}.tmp"
        os.symlink(target, tmp)
        try:
            os.replace(tmp, final)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        fsync_dir(final.parent)
        return True

    def link_file(self, blob: Path, dest: Path) -> LinkMode:
        """Make ``dest`` (in a staged directory) show the bytes of the published ``blob``."""
        mode = self._link_mode or ("hardlink" if self.hardlinks else "symlink")
        while True:
            try:
                if mode == "hardlink":
                    os.link(blob, dest)
                elif mode == "symlink":
                    # relative to where dest will be published, which mirrors the staged path
                    os.symlink(self._published_relative(blob, dest), dest)
                else:
                    shutil.copyfile(blob, dest)
                self._link_mode = mode
                return mode
            except OSError as exc:
                if exc.errno not in (errno.EXDEV, errno.EPERM, errno.ENOTSUP, errno.EMLINK):
                    raise
                if mode == "copy":
                    raise
                fallback: LinkMode = "symlink" if mode == "hardlink" else "copy"
                self.warn(f"{mode}s fail here ({exc.strerror}); using {fallback}s")
                mode = fallback

    #: set by the engine while building: the final path of the staged directory
    building: tuple[Path, Path] | None = None

    def _published_relative(self, blob: Path, dest: Path) -> str:
        import posixpath

        if self.building is None:
            raise RuntimeError("link_file with symlinks needs the directory being built")
        staged_top, final_top = self.building
        final_dest = final_top / dest.relative_to(staged_top)
        return posixpath.relpath(blob.as_posix(), final_dest.parent.as_posix())

    # -- removal ---------------------------------------------------------------------

    def remove(self, final: Path) -> bool:
        """Take a published file, link or directory away (directories vanish at once:
        renamed into the private trash, then deleted). Returns False when absent."""
        if final.is_symlink() or final.is_file():
            os.unlink(final)
            fsync_dir(final.parent)
            return True
        if not final.is_dir():
            return False
        trash = self.state_dir / "trash"
        trash.mkdir(parents=True, exist_ok=True)
        os.chmod(final, 0o755)  # moving a directory rewrites its '..'
        moved = trash / f"{final.name}.{uuid.uuid4().hex[:8]}"
        os.rename(final, moved)
        fsync_dir(final.parent)
        _force_rmtree(moved)
        return True


def _gid(group: str | int | None) -> int | None:
    if group is None:
        return None
    if isinstance(group, int) or group.isdigit():
        return int(group)
    try:
        return grp.getgrnam(group).gr_gid
    except KeyError:
        from nlmr.errors import UsageError

        raise UsageError(f"permissions.group: no group named {group!r} on this host") from None


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _force_rmtree(path: Path) -> None:
    """Delete a tree whose directories may be read-only (0555): make them writable first."""
    if not os.path.lexists(path):
        return
    if os.path.isdir(path) and not os.path.islink(path):
        with contextlib.suppress(OSError):
            os.chmod(path, 0o755)
        for dirpath, dirnames, _ in os.walk(path):
            for name in dirnames:
                p = os.path.join(dirpath, name)
                if not os.path.islink(p):
                    with contextlib.suppress(OSError):
                        os.chmod(p, 0o755)
        shutil.rmtree(path)
    else:
        os.unlink(path)
