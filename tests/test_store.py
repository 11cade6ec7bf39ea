"""nlmr.store: the same behaviour from a local directory and a real S3 server."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest

from nlmr.errors import (
    IntegrityError,
    ObjectNotFoundError,
    RemoteConfigError,
    StoreAccessError,
    StoreError,
    StoreUnavailableError,
)
from nlmr.store import Upload, dir_key, file_key, open_store
from nlmr.store.s3 import MAX_PARTS, MIN_PART, S3Store, part_size


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    if request.param == "local":
        return open_store(str(tmp_path / "store"))
    server, bucket = request.getfixturevalue("s3")
    return open_store(f"s3://{bucket}/prefix", endpoint_url=server.endpoint)


def test_round_trip(store: Any, tmp_path: Path) -> None:
    files = []
    for i, size in enumerate([0, 10, 3 * 1024 * 1024 + 1]):
        p = tmp_path / f"f{i}"
        p.write_bytes(bytes([i]) * size)
        files.append(Upload(f"files/md5/0{i}/x", p, size, hashlib.md5(p.read_bytes()).hexdigest()))
    seen: list[int] = []
    result = store.upload(iter(files), jobs=3, on_bytes=seen.append)
    assert sum(seen) == sum(f.size for f in files) and len(result.uploaded) == 3
    again = store.upload(files, jobs=3)
    assert again.uploaded == [] and len(again.present) == 3
    assert store.heads([f.key for f in files]) == {f.key: f.size for f in files}
    assert store.get_bytes("files/md5/01/x") == b"\x01" * 10
    assert b"".join(store.iter_chunks("files/md5/02/x", 1 << 20)) == b"\x02" * (3 * 1024 * 1024 + 1)
    store.put_bytes("files/md5/aa/b.dir", b"[]")
    assert store.head("files/md5/aa/b.dir") == 2
    store.delete("files/md5/aa/b.dir")
    store.delete("files/md5/aa/b.dir")  # deleting twice is fine
    assert store.head("files/md5/aa/b.dir") is None
    with pytest.raises(ObjectNotFoundError) as info:
        store.get_bytes("files/md5/ff/missing")
    assert info.value.key == "files/md5/ff/missing"
    with pytest.raises(ObjectNotFoundError):
        list(store.iter_chunks("files/md5/ff/missing"))


def test_what_arrives_is_verified(store: Any, tmp_path: Path) -> None:
    p = tmp_path / "f"
    p.write_bytes(b"12345")
    md5 = hashlib.md5(b"12345").hexdigest()
    with pytest.raises(IntegrityError, match="size mismatch"):
        store.upload([Upload("files/md5/00/y", p, 6, md5)])
    if isinstance(store, S3Store):  # the server checks Content-MD5 and refuses the bytes
        with pytest.raises(StoreError):
            store.upload([Upload("files/md5/00/z", p, 5, "0" * 32)])
        assert store.head("files/md5/00/z") is None


def test_multipart_upload_and_listing(
    s3: tuple[Any, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import nlmr.store.s3 as s3mod

    monkeypatch.setattr(s3mod, "MIN_PART", 5 * 1024 * 1024)  # S3's smallest part size
    monkeypatch.setattr(s3mod, "LIST_MIN_LOOKUPS", 2)
    server, bucket = s3
    store = open_store(f"s3://{bucket}/p", endpoint_url=server.endpoint)
    big = tmp_path / "big"
    big.write_bytes(bytes(range(256)) * (70 * 1024))  # 17.5 MiB: 4 parts
    item = Upload("files/md5/ab/big", big, big.stat().st_size, "0" * 32)
    small = tmp_path / "small"
    small.write_bytes(b"x")
    items = [item, Upload("files/md5/cd/small", small, 1, hashlib.md5(b"x").hexdigest())]
    seen: list[int] = []
    result = store.upload(items, jobs=3, on_bytes=seen.append)
    assert len(result.uploaded) == 2 and sum(seen) == item.size + 1
    assert store.get_bytes("files/md5/ab/big") == big.read_bytes()
    assert store.listing(10) == {"files/md5/ab/big": item.size, "files/md5/cd/small": 1}
    assert store.sizes(["files/md5/ab/big", "files/md5/00/none"]) == {
        "files/md5/ab/big": item.size,
        "files/md5/00/none": None,
    }


def test_keys_follow_dvc() -> None:
    md5 = "0123456789abcdef0123456789abcdef"
    assert file_key(md5) == "files/md5/01/23456789abcdef0123456789abcdef"
    assert dir_key(md5 + ".dir") == "files/md5/01/23456789abcdef0123456789abcdef.dir"
    with pytest.raises(ValueError):
        file_key("../../etc/passwd")


def test_part_size_stays_within_s3_limits() -> None:
    assert part_size(1) == MIN_PART
    for size in (10**9, 800 * 10**9, 5 * 10**12):
        assert size / part_size(size) <= MAX_PARTS


def test_errors_are_translated(s3: tuple[Any, str]) -> None:
    server, _ = s3
    missing = open_store("s3://no-such-bucket-here/x", endpoint_url=server.endpoint)
    assert missing.head("files/md5/00/x") is None
    with pytest.raises(ObjectNotFoundError, match="bucket does not exist") as info:
        missing.get_bytes("files/md5/00/x")
    assert info.value.hint and "create it" in info.value.hint
    dead = open_store("s3://b/x", endpoint_url="http://127.0.0.1:9")  # nothing listens on 9
    with pytest.raises(StoreUnavailableError, match="cannot reach the store") as info:
        dead.get_bytes("k")
    assert info.value.__cause__ is not None and "test" not in str(info.value)
    with pytest.raises(RemoteConfigError, match="unsupported remote scheme"):
        open_store("gs://bucket")


def test_requests_are_signed_and_bad_credentials_refused(
    s3: tuple[Any, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server, bucket = s3
    p = tmp_path / "f"
    p.write_bytes(b"signed")
    item = Upload("files/md5/00/s", p, 6, hashlib.md5(b"signed").hexdigest())
    good = open_store(f"s3://{bucket}/p", endpoint_url=server.endpoint)
    good.upload([item])  # the lean client's SigV4 signature is accepted...
    assert good.head(item.key) == 6
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong")
    bad = open_store(f"s3://{bucket}/p", endpoint_url=server.endpoint)
    with pytest.raises(StoreAccessError, match="access denied") as info:  # ...a forged one is not
        bad.upload([Upload("files/md5/00/t", p, 6, item.md5)])
    assert "wrong" not in str(info.value) and info.value.hint
    with pytest.raises(StoreAccessError):
        bad.get_bytes(item.key)  # boto3's path translates the same way


def test_listing_pages_and_prefix(
    s3: tuple[Any, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import nlmr.store.s3 as s3mod

    server, bucket = s3
    client = server.client()
    for i in range(1005):  # more than one page of 1,000
        client.put_object(Bucket=bucket, Key=f"pre/files/md5/{i % 256:02x}/{i:030d}", Body=b"x")
    client.put_object(Bucket=bucket, Key="outside/files/md5/00/zz", Body=b"y")
    store = open_store(f"s3://{bucket}/pre", endpoint_url=server.endpoint)
    listed = store.listing(100_000)
    assert listed is not None and len(listed) == 1005 and set(listed.values()) == {1}
    assert all(k.startswith("files/md5/") for k in listed)
    monkeypatch.setattr(s3mod, "SEQUENTIAL_LIST_MAX", 0)  # the concurrent per-prefix path
    assert store.listing(100_000) == listed
    assert store.listing(10) is None  # too few lookups: HEADs are cheaper


def test_endpoint_needs_a_scheme() -> None:
    with pytest.raises(RemoteConfigError, match="needs its scheme"):
        open_store("s3://b/p", endpoint_url="minio:9000")
