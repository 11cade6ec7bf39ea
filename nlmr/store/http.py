"""A store read over plain HTTP(S): ``https://host/path`` serving DVC's object layout.

A public bucket needs no credentials and no S3 client: ``https://s3.example.org/nlmr``
(path-style) or any web server that serves the same files (``dvc remote add`` with an
``https://`` URL reads the same layout). Read-only: ``nlmr add`` writes through ``s3://``.
GETs go through the lean client of :mod:`nlmr.store.s3http`, unsigned, on keep-alive
connections, with Range requests for parts and resumes.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Iterator

from nlmr.errors import StoreAccessError
from nlmr.store.base import ObjectReader, ObjectStore, Upload, read_all
from nlmr.store.s3http import S3Http


class _PlainHttp(S3Http):
    """S3Http without signing, addressing ``base/key`` and naming objects by their URL."""

    def __init__(self, url: str) -> None:
        parts = urllib.parse.urlsplit(url)
        super().__init__(f"{parts.scheme}://{parts.netloc}", "", "", None, url=url)
        self.prefix = parts.path.strip("/")

    def where(self, key: str) -> str:
        return f"{self.url}/{key}"

    def _path(self, key: str) -> str:
        path = "/".join(p for p in (self.prefix, key) if p)
        return urllib.parse.quote(f"/{path}", safe="/-_.~")


class HttpStore(ObjectStore):
    """``http(s)://host/prefix``: objects at ``<url>/files/md5/ab/cdef…``, read anonymously."""

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")
        self._http = _PlainHttp(self.url)

    def head(self, key: str) -> int | None:
        return self._http.head(key)

    def open_read(self, key: str, start: int = 0, stop: int | None = None) -> ObjectReader:
        return self._http.get(key, start, stop)

    def get_bytes(self, key: str) -> bytes:
        return read_all(self.open_read(key))

    def iter_chunks(self, key: str, chunk: int = 4 * 1024 * 1024) -> Iterator[bytes]:
        with self.open_read(key) as reader:
            buf = bytearray(chunk)
            while n := reader.readinto(memoryview(buf)):
                yield bytes(buf[:n])

    def _read_only(self, key: str) -> StoreAccessError:
        return StoreAccessError(
            f"{self.url}: an http(s) store is read-only (cannot write {key})",
            url=self.url,
            key=key,
            hint="write through the bucket's s3:// URL with credentials",
        )

    def put_file(self, item: Upload) -> None:
        raise self._read_only(item.key)

    def put_bytes(self, key: str, data: bytes) -> None:
        raise self._read_only(key)

    def delete(self, key: str) -> None:
        raise self._read_only(key)
