"""S3-compatible stores (AWS, Ceph RGW, MinIO, SeaweedFS) through boto3.

boto3's transfer manager does the heavy lifting: concurrent multipart uploads
across many files under one concurrency limit. Errors are translated here, at
the storage edge, into :class:`nlmr.errors.StoreError` subclasses (keeping
``__cause__``). Credentials come from the usual AWS environment and files, or
the DVC remote's config; they never appear in messages.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from nlmr.errors import (
    ObjectNotFoundError,
    StoreAccessError,
    StoreError,
    StoreUnavailableError,
)
from nlmr.store.base import DEFAULT_JOBS, ObjectStore, Upload

#: S3 allows at most 10,000 parts per multipart upload.
MAX_PARTS = 10_000
#: Parts are at least this big (fewer requests; DVC users hit the part limit with small parts,
#: iterative/dvc-s3#99).
MIN_PART = 64 * 1024 * 1024

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

#: Errors worth retrying at a higher level (botocore already retries requests itself).
RETRYABLE: tuple[type[StoreError], ...] = (StoreUnavailableError,)


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
        self._client = self._make_client(credentials or {})

    def _make_client(self, credentials: dict[str, str]) -> Any:
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

    def put_file(self, key: str, path: Path) -> None:
        self.put_files([Upload(key, path, path.stat().st_size)], jobs=self.jobs)

    def put_files(
        self,
        uploads: Sequence[Upload],
        *,
        jobs: int = DEFAULT_JOBS,
        on_bytes: Callable[[int], None] | None = None,
    ) -> None:
        from boto3.s3.transfer import TransferConfig
        from s3transfer.manager import TransferManager
        from s3transfer.subscribers import BaseSubscriber

        class _Progress(BaseSubscriber):  # type: ignore[misc]
            def on_progress(self, bytes_transferred: int, **kwargs: Any) -> None:
                if on_bytes:
                    on_bytes(bytes_transferred)

        biggest = max((u.size for u in uploads), default=0)
        config = TransferConfig(
            multipart_threshold=MIN_PART,
            multipart_chunksize=part_size(biggest),
            max_concurrency=max(1, jobs),
            use_threads=True,
        )
        subscribers = [_Progress()] if on_bytes else []
        with TransferManager(self._client, config) as manager:
            futures = [
                (
                    u,
                    manager.upload(
                        str(u.path), self.bucket, self._key(u.key), subscribers=subscribers
                    ),
                )
                for u in uploads
            ]
            for item, future in futures:
                try:
                    future.result()
                except Exception as exc:
                    raise translate(exc, self.url, item.key) from exc
        self.verify_sizes(uploads, jobs=jobs)

    def put_bytes(self, key: str, data: bytes) -> None:
        try:
            self._client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data)
        except Exception as exc:
            raise translate(exc, self.url, key) from exc

    def get_bytes(self, key: str) -> bytes:
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

    def delete(self, key: str) -> None:
        try:
            self._client.delete_object(Bucket=self.bucket, Key=self._key(key))
        except Exception as exc:
            raise translate(exc, self.url, key) from exc
