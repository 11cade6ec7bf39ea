"""A store in a local (or network-mounted) directory: the embedded default."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from nlmr.errors import ObjectNotFoundError, StoreError
from nlmr.fsutil import atomic_write
from nlmr.store.base import ObjectReader, ObjectStore, Upload, check_size, check_unchanged


class _FileReader(ObjectReader):
    """A byte range of one object file, read with ``pread`` (no shared file offset)."""

    def __init__(self, key: str, fd: int, start: int, stop: int | None) -> None:
        self.key, self._fd = key, fd
        self.size = os.fstat(fd).st_size
        self.start = start
        self.stop = max(start, self.size if stop is None else min(stop, self.size))
        self._pos = start

    def readinto(self, buf: memoryview) -> int:
        want = min(len(buf), self.stop - self._pos)
        if want <= 0:
            return 0
        filled = 0
        while filled < want:
            n = os.preadv(self._fd, [buf[filled:want]], self._pos)
            if n == 0:  # objects are immutable: a shrinking file is a broken store
                raise StoreError(
                    f"{self.key}: object file ended at byte {self._pos} of {self.size}",
                    key=self.key,
                )
            self._pos += n
            filled += n
        return filled

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


class LocalStore(ObjectStore):
    """Objects as read-only files under a root directory (DVC's local-remote layout)."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self.url = str(self.root)

    def _path(self, key: str) -> Path:
        return self.root / key

    def head(self, key: str) -> int | None:
        try:
            return self._path(key).stat().st_size
        except FileNotFoundError:
            return None

    def put_file(self, item: Upload) -> None:
        target = self._path(item.key)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        os.close(fd)
        try:
            shutil.copyfile(item.path, tmp)
            with open(tmp, "rb+") as fh:
                os.fsync(fh.fileno())
                check_size(item, os.fstat(fh.fileno()).st_size)
            check_unchanged(item)
            os.chmod(tmp, 0o444)
            os.replace(tmp, target)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise

    def put_bytes(self, key: str, data: bytes) -> None:
        atomic_write(self._path(key), data, mode=0o444)

    def get_bytes(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            raise ObjectNotFoundError(
                f"{key}: no such object in {self.url}", url=self.url, key=key
            ) from None

    def iter_chunks(self, key: str, chunk: int = 4 * 1024 * 1024) -> Iterator[bytes]:
        try:
            fh = open(self._path(key), "rb")  # noqa: SIM115 - closed by the generator
        except FileNotFoundError:
            raise ObjectNotFoundError(
                f"{key}: no such object in {self.url}", url=self.url, key=key
            ) from None
        with fh:
            while block := fh.read(chunk):
                yield block

    def open_read(self, key: str, start: int = 0, stop: int | None = None) -> ObjectReader:
        try:
            fd = os.open(self._path(key), os.O_RDONLY)
        except FileNotFoundError:
            raise ObjectNotFoundError(
                f"{key}: no such object in {self.url}", url=self.url, key=key
            ) from None
        try:
            return _FileReader(key, fd, start, stop)
        except BaseException:
            os.close(fd)
            raise

    def delete(self, key: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self._path(key).unlink()
