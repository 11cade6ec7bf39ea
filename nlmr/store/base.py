"""The object-store interface and DVC's key layout."""

from __future__ import annotations

import os
import re
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from nlmr.errors import IntegrityError, ObjectNotFoundError, RemoteConfigError

_MD5 = re.compile(r"^[0-9a-f]{32}$")

#: Default number of concurrent transfers: sized for a 2-core login node talking to a shared
#: store, not DVC's 4 x CPUs (which overwhelms S3-compatible servers, treeverse/dvc#10374).
DEFAULT_JOBS = 8


def file_key(md5: str) -> str:
    """DVC 3's key of a file object: ``files/md5/ab/cdef…``."""
    if not _MD5.fullmatch(md5):
        raise ValueError(f"not an md5: {md5!r}")
    return f"files/md5/{md5[:2]}/{md5[2:]}"


def dir_key(md5_dir: str) -> str:
    """DVC 3's key of a directory object, from the pointer's ``<md5>.dir``."""
    md5 = md5_dir.removesuffix(".dir")
    return file_key(md5) + ".dir"


@dataclass(frozen=True)
class Upload:
    """One file to put at one key. ``md5`` is the content's (the key is derived from it);
    stores use it to have the server verify what it received."""

    key: str
    path: Path
    size: int
    md5: str
    #: (size, mtime_ns, inode) when the file was hashed: a file rewritten since then must not
    #: be stored under the old md5 (multipart uploads carry no Content-MD5 to catch it).
    stamp: tuple[int, int, int] | None = None


@dataclass
class UploadResult:
    """Which uploads were sent, and which the store already had (same key and size)."""

    uploaded: list[Upload] = field(default_factory=list)
    present: list[Upload] = field(default_factory=list)


class ObjectReader(ABC):
    """One open read of bytes ``[start, stop)`` of an object of ``size`` bytes.

    ``size`` is the whole object's size as the store reports it, known before any byte is
    read, so a caller expecting another size can stop at once; ``stop`` is clipped to it.
    A reader is used by the thread that opened it (S3 readers hold that thread's
    keep-alive connection), and closing it before the end is allowed.
    """

    key: str
    size: int
    start: int
    stop: int

    @abstractmethod
    def readinto(self, buf: memoryview) -> int:
        """Read the next bytes into ``buf`` (as many as fit, or fewer).

        Returns:
            The number of bytes read: at least 1 before ``stop``, 0 once it is reached.

        Raises:
            StoreUnavailableError: the connection broke or ended before ``stop``; bytes already
                returned are good, so the caller can resume from where it is.
        """

    def close(self) -> None:  # noqa: B027 - readers holding nothing need not close
        """Release the connection or file (dropping a connection left mid-body)."""

    def __enter__(self) -> ObjectReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_all(reader: ObjectReader) -> bytes:
    """Everything an open reader has left (small objects: catalogues, ``.dir`` listings).

    Raises:
        StoreUnavailableError: the connection broke before the end.
    """
    buf = bytearray(reader.stop - reader.start)
    view, filled = memoryview(buf), 0
    with reader:
        while filled < len(buf):
            n = reader.readinto(view[filled:])
            if not n:
                break
            filled += n
    return bytes(buf[:filled])


class _ChunkReader(ObjectReader):
    """An :class:`ObjectReader` over :meth:`ObjectStore.iter_chunks` (the generic fallback)."""

    def __init__(self, key: str, size: int, start: int, stop: int, chunks: Iterator[bytes]):
        self.key, self.size, self.start, self.stop = key, size, start, stop
        self._chunks = chunks
        self._pending = memoryview(b"")
        self._pos = 0  # offset in the object of _pending's first byte
        self._skip = start

    def readinto(self, buf: memoryview) -> int:
        filled = 0
        while filled < len(buf) and self._pos < self.stop:
            if not self._pending:
                block = next(self._chunks, None)
                if block is None:
                    break
                self._pending = memoryview(block)
                if self._skip:  # a generic store cannot seek: read up to the start and drop it
                    cut = min(self._skip, len(block))
                    self._pending, self._skip = self._pending[cut:], self._skip - cut
                    self._pos += cut
                    continue
            n = min(len(buf) - filled, len(self._pending), self.stop - self._pos)
            buf[filled : filled + n] = self._pending[:n]
            self._pending = self._pending[n:]
            filled += n
            self._pos += n
        return filled

    def close(self) -> None:
        close = getattr(self._chunks, "close", None)
        if close is not None:
            close()


class ObjectStore(ABC):
    """A flat key → bytes store. Implementations translate their own errors into
    :class:`nlmr.errors.StoreError` subclasses at this edge."""

    url: str

    @abstractmethod
    def head(self, key: str) -> int | None:
        """The object's size, or None when it does not exist."""

    def heads(self, keys: Sequence[str], *, jobs: int = DEFAULT_JOBS) -> dict[str, int | None]:
        """:meth:`head` for many keys, concurrently."""
        import concurrent.futures  # not at import time: it pulls in logging (20 ms)

        with concurrent.futures.ThreadPoolExecutor(max(1, jobs)) as pool:
            return dict(zip(keys, pool.map(self.head, keys), strict=True))

    def listing(self, lookups: int, *, jobs: int = DEFAULT_JOBS) -> dict[str, int] | None:
        """Sizes of every object under ``files/md5/``, when listing them all costs fewer
        requests than ``lookups`` HEADs; None when it would not (callers then HEAD)."""
        return None

    def sizes(self, keys: Sequence[str], *, jobs: int = DEFAULT_JOBS) -> dict[str, int | None]:
        """Sizes of ``keys`` (None: missing), by listing or HEADs, whichever is cheaper."""
        known = self.listing(len(keys), jobs=jobs)
        if known is None:
            return self.heads(keys, jobs=jobs)
        return {k: known.get(k) for k in keys}

    @abstractmethod
    def put_file(self, item: Upload) -> None:
        """Upload one file atomically (the key shows the whole file or nothing) and check
        what arrived.

        Raises:
            IntegrityError: the stored object's size (or md5) differs.
        """

    def upload(
        self,
        uploads: Iterable[Upload],
        *,
        jobs: int = DEFAULT_JOBS,
        present: Mapping[str, int] | None = None,
        on_bytes: Callable[[int], None] | None = None,
    ) -> UploadResult:
        """Upload files concurrently, skipping objects the store already has.

        Args:
            uploads: consumed lazily, so a producer (hashing) can overlap with the transfers.
            present: sizes of the objects known to exist (from :meth:`listing`); when None,
                each object is HEADed before it is sent.
            on_bytes: progress callback.
        """
        import concurrent.futures

        result = UploadResult()
        lock = threading.Lock()

        def one(item: Upload) -> None:
            size = present.get(item.key) if present is not None else self.head(item.key)
            if size == item.size:
                with lock:
                    result.present.append(item)
                return
            self.put_file(item)
            with lock:
                result.uploaded.append(item)
            if on_bytes:
                on_bytes(item.size)

        with concurrent.futures.ThreadPoolExecutor(max(1, jobs)) as pool:
            futures = [pool.submit(one, item) for item in uploads]
            for future in concurrent.futures.as_completed(futures):
                future.result()
        return result

    @abstractmethod
    def put_bytes(self, key: str, data: bytes) -> None:
        """Store a small object."""

    @abstractmethod
    def get_bytes(self, key: str) -> bytes:
        """Fetch a small object whole.

        Raises:
            ObjectNotFoundError: no such object.
        """

    @abstractmethod
    def iter_chunks(self, key: str, chunk: int = 4 * 1024 * 1024) -> Iterator[bytes]:
        """Stream an object's bytes."""

    def open_read(self, key: str, start: int = 0, stop: int | None = None) -> ObjectReader:
        """Open bytes ``[start, stop)`` of an object for streaming into the caller's buffers.

        The generic version HEADs the object and skips ``start`` bytes of
        :meth:`iter_chunks`; stores override it with real ranged reads.

        Args:
            key: the object.
            start: first byte wanted.
            stop: one past the last byte wanted; None: to the end of the object.

        Returns:
            An open reader (a context manager); its ``size`` is the whole object's.

        Raises:
            ObjectNotFoundError: no such object.
            StoreUnavailableError: the store cannot be reached now (retrying may help).
        """
        size = self.head(key)
        if size is None:
            raise ObjectNotFoundError(f"{key}: no such object in {self.url}", url=self.url, key=key)
        end = size if stop is None else min(stop, size)
        chunks = self.iter_chunks(key) if start < end else iter(())
        return _ChunkReader(key, size, start, max(start, end), chunks)

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove an object (missing objects are not an error)."""


def file_stamp(path: Path) -> tuple[int, int, int]:
    """(size, mtime_ns, inode): changes whenever the file is rewritten."""
    st = os.stat(path)
    return st.st_size, st.st_mtime_ns, st.st_ino


def check_unchanged(item: Upload) -> None:
    """Raise :class:`IntegrityError` when the file changed after it was hashed."""
    if item.stamp is not None and file_stamp(item.path) != item.stamp:
        raise IntegrityError(
            str(item.path), "the file as hashed", "a file rewritten since", what="content"
        )


def check_size(item: Upload, actual: int | None) -> None:
    """Raise :class:`IntegrityError` unless the stored object has the file's size."""
    if actual != item.size:
        raise IntegrityError(item.key, str(item.size), str(actual), what="size")


def open_store(
    url: str,
    *,
    endpoint_url: str | None = None,
    credentials: dict[str, str] | None = None,
    jobs: int = DEFAULT_JOBS,
) -> ObjectStore:
    """The store at ``url``: ``s3://bucket/prefix``, ``https://host/prefix`` (read-only, no
    credentials: a public bucket or any web server with the same layout) or a local
    directory (path or ``file://``).

    Args:
        url: where the objects live.
        endpoint_url: S3 endpoint of a non-AWS store (Ceph RGW, MinIO, SeaweedFS).
        credentials: explicit ``access_key_id``/``secret_access_key``/``profile`` (else the usual
            AWS environment and config files).
        jobs: concurrent transfers.

    Raises:
        RemoteConfigError: an unsupported URL scheme.
    """
    if url.startswith("s3://"):
        from nlmr.store.s3 import S3Store

        if endpoint_url and not endpoint_url.startswith(("http://", "https://")):
            raise RemoteConfigError(
                f"endpoint URL {endpoint_url!r} needs its scheme: https://… or http://…"
            )
        return S3Store(url, endpoint_url=endpoint_url, credentials=credentials, jobs=jobs)
    if url.startswith(("http://", "https://")):
        from nlmr.store.http import HttpStore

        return HttpStore(url)
    if url.startswith("file://"):
        url = url[len("file://") :]
    if "://" in url:
        scheme = url.split("://", 1)[0]
        raise RemoteConfigError(
            f"unsupported remote scheme {scheme!r}: nlmr stores use s3://, https:// "
            "(read-only) or a local path"
        )
    from nlmr.store.local import LocalStore

    return LocalStore(url)
