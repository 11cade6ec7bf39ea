"""One streaming pass per file: size, sha256, md5 and git blob sha1 together.

Memory stays constant whatever the file size. On a multi-core machine md5 (the
slowest of the three, and single-threaded in OpenSSL) runs in a helper thread
while the caller's thread does sha256 and sha1 on the same chunks; hashlib
releases the GIL on large updates, so the two overlap.
"""

from __future__ import annotations

import hashlib
import os
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass

CHUNK = 4 * 1024 * 1024


@dataclass(frozen=True)
class Digests:
    """The digests of one file's content."""

    size: int
    sha256: str
    md5: str
    git_sha1: str


def _git_sha1(size: int) -> hashlib._Hash:
    h = hashlib.sha1()
    h.update(b"blob %d\0" % size)
    return h


def hash_bytes(data: bytes) -> Digests:
    """Digests of an in-memory value (small files, tests)."""
    sha1 = _git_sha1(len(data))
    sha1.update(data)
    return Digests(
        len(data), hashlib.sha256(data).hexdigest(), hashlib.md5(data).hexdigest(), sha1.hexdigest()
    )


def hash_file(path: str | os.PathLike[str], *, chunk: int = CHUNK) -> Digests:
    """Digests of a file, read once.

    Raises:
        OSError: the file cannot be read, or changed size while being read.
    """
    with open(path, "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        sha256, md5, sha1 = hashlib.sha256(), hashlib.md5(), _git_sha1(size)
        if size < 4 * chunk or (os.cpu_count() or 1) < 2:
            total = 0
            while block := fh.read(chunk):
                total += len(block)
                sha256.update(block)
                md5.update(block)
                sha1.update(block)
        else:
            total = _hash_overlapped(fh, chunk, sha256, sha1, md5)
    if total != size:
        raise OSError(f"{path}: file changed size while it was being read ({size} -> {total})")
    return Digests(size, sha256.hexdigest(), md5.hexdigest(), sha1.hexdigest())


def _hash_overlapped(
    fh: object, chunk: int, a: hashlib._Hash, b: hashlib._Hash, helper_hash: hashlib._Hash
) -> int:
    blocks: queue.Queue[bytes | None] = queue.Queue(maxsize=4)
    failure: list[BaseException] = []

    def helper() -> None:
        try:
            while (block := blocks.get()) is not None:
                helper_hash.update(block)
        except BaseException as exc:  # pragma: no cover - hashlib does not fail on bytes
            failure.append(exc)

    worker = threading.Thread(target=helper, name="nlmr-md5", daemon=True)
    worker.start()
    total = 0
    try:
        while block := fh.read(chunk):  # type: ignore[attr-defined]
            total += len(block)
            blocks.put(block)
            a.update(block)
            b.update(block)
    finally:
        blocks.put(None)
        worker.join()
    if failure:
        raise failure[0]
    return total


def sha256_file(
    path: str | os.PathLike[str],
    *,
    on_bytes: Callable[[int], None] | None = None,
    chunk: int = CHUNK,
) -> tuple[int, str]:
    """(size, sha256) of a file, read once; ``on_bytes`` is told of each block (progress)."""
    h = hashlib.sha256()
    total = 0
    buf = bytearray(chunk)
    view = memoryview(buf)
    with open(path, "rb", buffering=0) as fh:
        while n := fh.readinto(buf):
            h.update(view[:n])
            total += n
            if on_bytes is not None:
                on_bytes(n)
    return total, h.hexdigest()
