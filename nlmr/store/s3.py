"""S3-compatible stores (AWS, Ceph RGW, MinIO, SeaweedFS) through boto3.

boto3's transfer manager does the heavy lifting: concurrent multipart uploads
across many files under one concurrency limit. Errors are translated here, at
the storage edge, into :class:`nlmr.errors.StoreError` subclasses (keeping
``__cause__``). Credentials come from the usual AWS environment and files, or
the DVC remote's config; they never appear in messages.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import math
import os
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from nlmr.errors import (
    IntegrityError,
    ObjectNotFoundError,
    StoreAccessError,
    StoreError,
    StoreUnavailableError,
)
from nlmr.store.base import (
    DEFAULT_JOBS,
    ObjectReader,
    ObjectStore,
    Upload,
    UploadResult,
    check_size,
    check_unchanged,
    read_all,
)
from nlmr.store.s3http import Credentials, S3Http

if TYPE_CHECKING:
    import concurrent.futures

#: S3 allows at most 10,000 parts per multipart upload.
MAX_PARTS = 10_000
#: Files from this size go up in parts, and parts are at least this big. Each worker holds one
#: part in memory, so peak memory is about jobs x part size (256 MiB at the default 8 jobs);
#: the part size grows with the file so no upload needs more than 10,000 parts
#: (iterative/dvc-s3#99).
MIN_PART = 32 * 1024 * 1024
#: Below this many lookups, HEAD requests beat listing the store.
LIST_MIN_LOOKUPS = 64
#: Up to this many (estimated) objects, list the store in one paginated listing; above it,
#: list the 256 md5 prefixes concurrently.
SEQUENTIAL_LIST_MAX = 20_000

_NOT_FOUND = {"404", "NoSuchKey", "NotFound", "NoSuchBucket"}
_DENIED = {
    "403",
    "AccessDenied",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "InvalidToken",
    "ExpiredToken",
    "AllAccessDisabled",
}


def _env_credentials(credentials: dict[str, str]) -> tuple[Credentials, str] | None:
    """Credentials and region from the standard AWS variables, when botocore would take them
    from there too; None when it might look elsewhere (a profile, a config file).

    Importing botocore costs a third of a second, which a short ``nlmr pull`` on a login
    node should not pay when the keys are in the environment (its first credential source).
    These are AWS's variables, read exactly as botocore reads them, not nlmr's own.
    """
    from nlmr import config

    env = config.aws_env()
    if credentials.get("profile") or env.get("AWS_PROFILE") or env.get("AWS_DEFAULT_PROFILE"):
        return None
    key, secret = env.get("AWS_ACCESS_KEY_ID"), env.get("AWS_SECRET_ACCESS_KEY")
    if not key or not secret:
        return None
    region = env.get("AWS_DEFAULT_REGION")
    if not region:
        aws_config = env.get("AWS_CONFIG_FILE") or os.path.expanduser("~/.aws/config")
        if os.path.exists(aws_config):
            return None  # the region may be there: let botocore read it
        region = "us-east-1"
    return Credentials(key, secret, env.get("AWS_SESSION_TOKEN") or None), region


def part_size(size: int) -> int:
    """Multipart chunk size for a file: at least 64 MiB, and few enough parts for S3's limit."""
    return max(MIN_PART, math.ceil(size / (MAX_PARTS - 1) / (1 << 20)) * (1 << 20))


def translate(exc: BaseException, url: str, key: str | None = None) -> StoreError:
    """A botocore/boto3 exception as an nlmr :class:`StoreError` (the caller chains it)."""
    from botocore import exceptions as bexc

    where = f"{url}/{key}" if key else url
    if isinstance(exc, bexc.ClientError):
        err = exc.response.get("Error", {})
        code = str(err.get("Code", ""))
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if code == "NoSuchBucket":
            return ObjectNotFoundError(
                f"{url}: bucket does not exist",
                url=url,
                key=key,
                hint="create it, or fix the remote URL",
            )
        if code in _NOT_FOUND or status == 404:
            return ObjectNotFoundError(f"{where}: no such object", url=url, key=key)
        if code in _DENIED or status == 403:
            return StoreAccessError(
                f"{where}: access denied ({code or status})",
                url=url,
                key=key,
                hint="check AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE or the remote's "
                "credentials in .dvc/config.local",
            )
        if (status and int(status) >= 500) or code in {"SlowDown", "ServiceUnavailable"}:
            return StoreUnavailableError(f"{where}: store error {code or status}", url=url, key=key)
        return StoreError(
            f"{where}: {code or status}: {err.get('Message', '')}".rstrip(": "), url=url, key=key
        )
    if isinstance(exc, bexc.NoCredentialsError):
        return StoreAccessError(
            f"{url}: no credentials",
            url=url,
            key=key,
            hint="set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE",
        )
    if isinstance(
        exc,
        (
            bexc.EndpointConnectionError,
            bexc.ConnectionClosedError,
            bexc.ReadTimeoutError,
            bexc.ConnectTimeoutError,
            bexc.ResponseStreamingError,
        ),
    ):
        return StoreUnavailableError(
            f"{where}: cannot reach the store ({type(exc).__name__})",
            url=url,
            key=key,
            hint="check the endpoint URL and network",
        )
    if isinstance(exc, bexc.BotoCoreError):
        return StoreError(f"{where}: {exc}", url=url, key=key)
    return StoreError(f"{where}: {type(exc).__name__}: {exc}", url=url, key=key)


class S3Store(ObjectStore):
    """``s3://bucket/prefix`` on AWS or any S3-compatible endpoint."""

    def __init__(
        self,
        url: str,
        *,
        endpoint_url: str | None = None,
        credentials: dict[str, str] | None = None,
        jobs: int = DEFAULT_JOBS,
    ) -> None:
        rest = url[len("s3://") :]
        self.bucket, _, prefix = rest.partition("/")
        self.prefix = prefix.strip("/")
        self.url = f"s3://{self.bucket}" + (f"/{self.prefix}" if self.prefix else "")
        self.endpoint_url = endpoint_url
        self.jobs = max(1, jobs)
        self._boto: Any = None
        self._boto_lock = threading.Lock()
        self._make_client = functools.partial(self._build_client, credentials or {})
        self._fast = self._build_fast(credentials or {})

    @property
    def _client(self) -> Any:
        # Built on first use: loading botocore's service model costs a few hundred ms, and
        # adding small files to an S3-compatible store never needs it.
        with self._boto_lock:
            if self._boto is None:
                self._boto = self._make_client()
        return self._boto

    def _build_fast(self, credentials: dict[str, str]) -> S3Http | None:
        """The lean client, for S3-compatible endpoints (path-style requests we sign ourselves)."""
        if not self.endpoint_url:
            return None
        region = credentials.get("region")
        creds: Any
        if credentials.get("access_key_id"):
            creds = Credentials(
                credentials["access_key_id"],
                credentials.get("secret_access_key", ""),
                credentials.get("session_token"),
            )
        elif (env := _env_credentials(credentials)) is not None:
            creds, region = env[0], region or env[1]
        else:
            import botocore.session

            session = botocore.session.Session(profile=credentials.get("profile"))
            creds = session.get_credentials()  # refreshable; S3Http fetches them per request
            region = region or session.get_config_variable("region")
        return S3Http(self.endpoint_url, self.bucket, region or "us-east-1", creds, url=self.url)

    def _build_client(self, credentials: dict[str, str]) -> Any:
        import boto3
        from botocore import UNSIGNED
        from botocore.config import Config

        session = boto3.session.Session(profile_name=credentials.get("profile"))
        kwargs: dict[str, Any] = {}
        if credentials.get("access_key_id"):
            kwargs["aws_access_key_id"] = credentials["access_key_id"]
            kwargs["aws_secret_access_key"] = credentials.get("secret_access_key")
            if credentials.get("session_token"):
                kwargs["aws_session_token"] = credentials["session_token"]
        options: dict[str, Any] = {
            "max_pool_connections": self.jobs * 2,
            # botocore >= 1.36 checksums every upload by default; we send Content-MD5 ourselves
            # (already computed) and check sizes, so skip the extra pass over the bytes
            "request_checksum_calculation": "when_required",
            # no SHA-256 of every payload for the signature (botocore's default over plain
            # http): single-part PUTs carry Content-MD5, which the server verifies; over
            # https TLS protects the parts; sizes are checked either way
            "s3": {"payload_signing_enabled": False},
            "retries": {"max_attempts": 4, "mode": "standard"},
            "connect_timeout": 10,
            "read_timeout": 60,
        }
        if not kwargs and session.get_credentials() is None:
            options["signature_version"] = UNSIGNED  # public bucket: anonymous requests
        config = Config(**options)
        return session.client(
            "s3",
            endpoint_url=self.endpoint_url,
            config=config,
            region_name=credentials.get("region") or session.region_name or "us-east-1",
            **kwargs,
        )

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def head(self, key: str) -> int | None:
        if self._fast is not None:
            return self._fast.head(self._key(key))
        try:
            meta = self._client.head_object(Bucket=self.bucket, Key=self._key(key))
        except Exception as exc:
            err = translate(exc, self.url, key)
            if isinstance(err, ObjectNotFoundError):
                # a HEAD response has no body: a missing key and a missing bucket look the
                # same here; writes report a missing bucket explicitly
                return None
            raise err from exc
        return int(meta["ContentLength"])

    def listing(self, lookups: int, *, jobs: int = DEFAULT_JOBS) -> dict[str, int] | None:
        # DVC's trick: estimate the store's size from one of the 256 md5 prefixes, and list
        # everything only when that takes fewer requests than HEADing each object.
        if lookups < LIST_MIN_LOOKUPS:
            return None
        first = self._list_prefix("files/md5/00/", max_pages=1)
        if first is None:
            return None  # over ~256,000 objects: listing is the expensive way
        estimated = (len(first) + 1) * 256
        if estimated / 1000 > lookups / 4:
            return None
        if estimated <= SEQUENTIAL_LIST_MAX:  # a few pages: one listing beats 256 requests
            return self._list_prefix("files/md5/")
        import concurrent.futures

        prefixes = [f"files/md5/{i:02x}/" for i in range(256)]
        with concurrent.futures.ThreadPoolExecutor(max(1, jobs)) as pool:
            parts = list(pool.map(self._list_prefix, prefixes))
        return {k: v for part in parts if part for k, v in part.items()}

    def _list_prefix(self, prefix: str, max_pages: int | None = None) -> dict[str, int] | None:
        """Sizes under ``prefix``; None when ``max_pages`` pages do not cover it."""
        cut = len(self._key(""))
        if self._fast is not None:
            listed = self._fast.list(self._key(prefix), max_pages=max_pages)
            return None if listed is None else {k[cut:]: v for k, v in listed.items()}
        out: dict[str, int] = {}
        try:
            pages = self._client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=self._key(prefix)
            )
            for number, page in enumerate(pages, 1):
                for obj in page.get("Contents", []):
                    out[obj["Key"][cut:]] = int(obj["Size"])
                if max_pages is not None and number >= max_pages and page.get("IsTruncated"):
                    return None
        except Exception as exc:
            raise translate(exc, self.url, prefix) from exc
        return out

    def put_file(self, item: Upload) -> None:
        self.upload([item], jobs=self.jobs, present={})

    def upload(
        self,
        uploads: Iterable[Upload],
        *,
        jobs: int = DEFAULT_JOBS,
        present: Mapping[str, int] | None = None,
        on_bytes: Callable[[int], None] | None = None,
    ) -> UploadResult:
        """Concurrent uploads under one limit: small files whole, large ones in parts.

        Small files go up in one PUT with ``Content-MD5``, so the server itself checks the
        bytes, and the returned ETag (the md5) is compared too. Large files are sent as
        multipart uploads whose parts share the same worker pool; the last part to finish
        completes the upload and checks the object's size.
        """
        import concurrent.futures  # not at import time: it pulls in logging (20 ms)

        result = UploadResult()
        lock = threading.Lock()
        errors: list[BaseException] = []
        pending: list[concurrent.futures.Future[None]] = []

        def report(n: int) -> None:
            if on_bytes:
                on_bytes(n)

        def exists(item: Upload) -> bool:
            size = present.get(item.key) if present is not None else self.head(item.key)
            return size == item.size

        def single(item: Upload) -> None:
            if exists(item):
                with lock:
                    result.present.append(item)
                return
            data = item.path.read_bytes()
            check_size(item, len(data))
            md5 = base64.b64encode(bytes.fromhex(item.md5)).decode()
            if self._fast is not None:
                etag = self._fast.put(self._key(item.key), data, md5)
            else:
                try:
                    response = self._client.put_object(
                        Bucket=self.bucket, Key=self._key(item.key), Body=data, ContentMD5=md5
                    )
                except Exception as exc:
                    raise translate(exc, self.url, item.key) from exc
                etag = str(response.get("ETag", "")).strip('"')
            if etag != item.md5:  # e.g. encrypted buckets: ETag is not the md5; check the size
                check_size(item, self.head(item.key))
            with lock:
                result.uploaded.append(item)
            report(item.size)

        with concurrent.futures.ThreadPoolExecutor(max(1, jobs)) as pool:
            try:
                for item in uploads:
                    if errors:
                        break
                    if item.size < MIN_PART:
                        pending.append(pool.submit(single, item))
                        continue
                    if exists(item):
                        result.present.append(item)
                        continue
                    pending += self._multipart(item, pool, lock, result, errors, report)
                for future in concurrent.futures.as_completed(pending):
                    exc = future.exception()
                    if exc is not None:
                        errors.append(exc)
            except BaseException as exc:  # Ctrl-C, or the producer (hashing) failed
                errors.append(exc)  # queued parts see it, skip their work and abort
                pool.shutdown(wait=True, cancel_futures=True)
                raise
        if errors:
            raise errors[0]
        return result

    def _multipart(
        self,
        item: Upload,
        pool: concurrent.futures.ThreadPoolExecutor,
        lock: threading.Lock,
        result: UploadResult,
        errors: list[BaseException],
        report: Callable[[int], None],
    ) -> list[concurrent.futures.Future[None]]:
        key = self._key(item.key)
        try:
            upload_id = self._client.create_multipart_upload(Bucket=self.bucket, Key=key)[
                "UploadId"
            ]
        except Exception as exc:
            raise translate(exc, self.url, item.key) from exc
        size = part_size(item.size)
        count = max(1, math.ceil(item.size / size))
        etags: dict[int, str] = {}
        remaining = [count]

        def part(number: int) -> None:
            offset = (number - 1) * size
            try:
                if errors:
                    raise RuntimeError("another upload failed")
                with open(item.path, "rb") as fh:
                    fh.seek(offset)
                    data = fh.read(min(size, item.size - offset))
                response = self._client.upload_part(
                    Bucket=self.bucket, Key=key, PartNumber=number, UploadId=upload_id, Body=data
                )
                report(len(data))
                with lock:
                    etags[number] = response["ETag"]
                    remaining[0] -= 1
                    last = remaining[0] == 0
                if last:
                    check_unchanged(item)  # parts carry no md5: refuse a file rewritten since
                    self._client.complete_multipart_upload(
                        Bucket=self.bucket,
                        Key=key,
                        UploadId=upload_id,
                        MultipartUpload={
                            "Parts": [{"PartNumber": n, "ETag": etags[n]} for n in sorted(etags)]
                        },
                    )
                    check_size(item, self.head(item.key))
                    with lock:
                        result.uploaded.append(item)
            except BaseException as exc:
                with contextlib.suppress(Exception):  # leave no orphaned parts behind
                    self._client.abort_multipart_upload(
                        Bucket=self.bucket, Key=key, UploadId=upload_id
                    )
                if isinstance(exc, (StoreError, IntegrityError)):
                    raise
                raise translate(exc, self.url, item.key) from exc

        return [pool.submit(part, n) for n in range(1, count + 1)]

    def put_bytes(self, key: str, data: bytes) -> None:
        if self._fast is not None:
            import base64
            import hashlib

            md5 = base64.b64encode(hashlib.md5(data).digest()).decode()
            self._fast.put(self._key(key), data, md5)
            return
        try:
            self._client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data)
        except Exception as exc:
            raise translate(exc, self.url, key) from exc

    def get_bytes(self, key: str) -> bytes:
        if self._fast is not None:  # no botocore import for a catalogue
            try:
                return read_all(self._fast.get(self._key(key)))
            except StoreError as exc:
                exc.key = key  # the caller's key, as boto3's errors are translated
                raise
        try:
            response = self._client.get_object(Bucket=self.bucket, Key=self._key(key))
            data: bytes = response["Body"].read()
        except Exception as exc:
            raise translate(exc, self.url, key) from exc
        return data

    def iter_chunks(self, key: str, chunk: int = 4 * 1024 * 1024) -> Iterator[bytes]:
        try:
            body = self._client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"]
            yield from body.iter_chunks(chunk)
        except Exception as exc:
            raise translate(exc, self.url, key) from exc

    def open_read(self, key: str, start: int = 0, stop: int | None = None) -> ObjectReader:
        """A ranged GET: the lean client on S3-compatible endpoints (about 0.1 ms of CPU per
        request instead of botocore's 3.5), boto3 elsewhere (AWS itself, anonymous buckets)."""
        if self._fast is not None:
            return self._fast.get(self._key(key), start, stop)
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Key": self._key(key)}
        if start or stop is not None:
            kwargs["Range"] = f"bytes={start}-{'' if stop is None else max(start, stop) - 1}"
        try:
            response = self._client.get_object(**kwargs)
        except Exception as exc:
            err = translate(exc, self.url, key)
            total = _total_size_of(exc)
            if total is not None:  # 416: the range starts at or past the end
                return _BotoReader(key, None, total, start, start, self.url)
            raise err from exc
        content_range = response.get("ContentRange")
        length = int(response.get("ContentLength", 0))
        if content_range:
            size = int(content_range.rsplit("/", 1)[1])
            first = int(content_range.split()[-1].split("-")[0])
        else:
            size, first = length, 0
        reader = _BotoReader(key, response["Body"], size, start, stop, self.url)
        if first != start:  # the server ignored the range: skip to it
            reader.skip(start - first)
        return reader

    def delete(self, key: str) -> None:
        try:
            self._client.delete_object(Bucket=self.bucket, Key=self._key(key))
        except Exception as exc:
            raise translate(exc, self.url, key) from exc


def _total_size_of(exc: BaseException) -> int | None:
    """The object's size from a 416 (InvalidRange) error's ``Content-Range: bytes */N``."""
    from botocore import exceptions as bexc

    if not isinstance(exc, bexc.ClientError):
        return None
    meta = exc.response.get("ResponseMetadata", {})
    if meta.get("HTTPStatusCode") != 416:
        return None
    total = str(meta.get("HTTPHeaders", {}).get("content-range", "")).rsplit("/", 1)[-1]
    return int(total) if total.isdigit() else None


class _BotoReader(ObjectReader):
    """A GET's body through botocore (the slow path: AWS proper, anonymous buckets)."""

    def __init__(
        self, key: str, body: Any, size: int, start: int, stop: int | None, url: str
    ) -> None:
        self.key, self.size, self.start, self._url = key, size, start, url
        self.stop = max(start, size if stop is None else min(stop, size))
        self._body = body
        self._pos = start

    def skip(self, n: int) -> None:
        """Drop ``n`` bytes (a server that answered a ranged GET with the whole object)."""
        while n > 0:
            block = self._read(min(n, 1 << 20))
            if not block:
                raise StoreUnavailableError(
                    f"{self._url}/{self.key}: body ended before the range", url=self._url
                )
            n -= len(block)

    def _read(self, n: int) -> bytes:
        try:
            data: bytes = self._body.read(n)
        except Exception as exc:
            err = translate(exc, self._url, self.key)
            if not isinstance(err, StoreUnavailableError):
                err = StoreUnavailableError(err.message, url=self._url, key=self.key)
            raise err from exc
        return data

    def readinto(self, buf: memoryview) -> int:
        want = min(len(buf), self.stop - self._pos)
        if want <= 0 or self._body is None:
            return 0
        data = self._read(want)
        if not data:
            raise StoreUnavailableError(
                f"{self._url}/{self.key}: body ended at byte {self._pos} of {self.size}",
                url=self._url,
                key=self.key,
            )
        buf[: len(data)] = data
        self._pos += len(data)
        return len(data)

    def close(self) -> None:
        body, self._body = self._body, None
        if body is not None:
            body.close()
