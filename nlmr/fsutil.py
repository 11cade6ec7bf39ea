"""Filesystem helpers shared by every command that writes: nothing half-written is ever visible."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any


def atomic_write(path: str | os.PathLike[str], data: bytes | str, *, mode: int = 0o644) -> None:
    """Write ``data`` to ``path`` so readers see the old file or the new one, never a mix.

    The bytes go to a unique temporary file beside the target, are fsynced and
    given their final mode, then renamed over the target; the directory is
    fsynced so the rename survives a crash.
    """
    target = Path(path)
    payload = data.encode("utf-8") if isinstance(data, str) else data
    target.parent.mkdir(parents=True, exist_ok=True)
    import tempfile  # here: 15 ms at start-up, and most commands never write a file

    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(payload)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    fsync_dir(target.parent)


def fsync_dir(path: str | os.PathLike[str]) -> None:
    """fsync a directory (makes renames in it durable); a no-op where unsupported."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


#: ioctl FICLONE (linux/fs.h): share the source's extents (btrfs, XFS with reflink, bcachefs)
_FICLONE = 0x40049409


def clone_file(src: str | os.PathLike[str], dest: str | os.PathLike[str]) -> None:
    """Make ``dest`` a copy-on-write clone of ``src`` (a reflink): instant, no extra space.

    Raises:
        OSError: the filesystem cannot clone (``EOPNOTSUPP``, ``EXDEV``, ``EINVAL``…);
            ``dest`` is then not left behind.
    """
    import fcntl

    with open(src, "rb") as s:
        fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            fcntl.ioctl(fd, _FICLONE, s.fileno())
        except OSError:
            os.close(fd)
            os.unlink(dest)
            raise
        os.close(fd)


# -- Linux calls the byte mover uses (no-ops or fallbacks where missing) ---------------

_SYNC_FILE_RANGE_WRITE = 2
_libc_cache: dict[str, Any] = {}


def libc(name: str, *argtypes: Any) -> Any:
    """A Linux libc call through ctypes (which releases the GIL), or None where missing."""
    if name not in _libc_cache:  # threads may race here: each stores the same answer
        fn = None
        with contextlib.suppress(OSError, AttributeError):
            import ctypes

            fn = getattr(ctypes.CDLL(None, use_errno=True), name)
            fn.argtypes = [getattr(ctypes, t) for t in argtypes]
        _libc_cache[name] = fn
    return _libc_cache[name]


def start_writeback(fd: int, offset: int, length: int) -> None:
    """Start writing a file range to disk without waiting (``sync_file_range``).

    Dirty pages otherwise sit in memory until the kernel's 30-second expiry, and the sync
    before the rename would write the whole file at once; started early, the disk works
    while the network does. A no-op where the call does not exist.
    """
    fn = libc("sync_file_range", "c_int", "c_int64", "c_int64", "c_uint")
    if fn is not None:
        fn(fd, offset, length, _SYNC_FILE_RANGE_WRITE)  # errors only mean no head start


def syncfs_available() -> bool:
    """Whether ``syncfs`` exists (else each file is fsynced on its own)."""
    return libc("syncfs", "c_int") is not None


def syncfs(dirs: Iterable[Path]) -> None:
    """``syncfs`` the filesystem of each directory (nothing where unavailable: then each
    file was fsynced before it was queued)."""
    fn = libc("syncfs", "c_int")
    if fn is None:
        return
    for directory in dirs:
        fd = os.open(directory, os.O_RDONLY | os.O_CLOEXEC)
        try:
            if fn(fd) != 0:
                import ctypes

                err = ctypes.get_errno()
                raise OSError(err, os.strerror(err), str(directory))
        finally:
            os.close(fd)


def one_dir_per_filesystem(dirs: Iterable[Path]) -> list[Path]:
    by_device: dict[int, Path] = {}
    for directory in dirs:
        by_device.setdefault(os.stat(directory).st_dev, directory)
    return list(by_device.values())


def pwrite_all(fd: int, view: memoryview, offset: int) -> None:
    """``pwrite`` until every byte is written (regular files rarely write short, but may)."""
    while view:
        n = os.pwrite(fd, view, offset)
        view, offset = view[n:], offset + n
