"""Filesystem helpers shared by every command that writes: nothing half-written is ever visible."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


def atomic_write(path: str | os.PathLike[str], data: bytes | str, *, mode: int = 0o644) -> None:
    """Write ``data`` to ``path`` so readers see the old file or the new one, never a mix.

    The bytes go to a unique temporary file beside the target, are fsynced and
    given their final mode, then renamed over the target; the directory is
    fsynced so the rename survives a crash.
    """
    target = Path(path)
    payload = data.encode("utf-8") if isinstance(data, str) else data
    target.parent.mkdir(parents=True, exist_ok=True)
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
