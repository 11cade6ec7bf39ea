"""nlmr.transfer: verified fetches from a local directory store and a real S3 server."""

from __future__ import annotations

import hashlib
import os
import random
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from nlmr import fsutil, transfer
from nlmr.errors import IntegrityError, ObjectNotFoundError, StoreError, StoreUnavailableError
from nlmr.store import ObjectStore, file_key, open_store
from nlmr.store.base import ObjectReader
from nlmr.store.local import LocalStore
from nlmr.transfer import Fetch, TransferReport, fetch, partial_path

KiB, MiB = 1 << 10, 1 << 20


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ObjectStore:
    if request.param == "local":
        return open_store(str(tmp_path / "store"))
    server, bucket = request.getfixturevalue("s3")
    return open_store(f"s3://{bucket}/prefix", endpoint_url=server.endpoint)


@pytest.fixture
def small_parts(monkeypatch: pytest.MonkeyPatch) -> None:
    """Files from 1 MiB go in 256 KiB parts, so tests exercise the parted path cheaply."""
    monkeypatch.setattr(transfer, "LARGE", 1 * MiB)
    monkeypatch.setattr(transfer, "PART", 256 * KiB)
    monkeypatch.setattr(transfer, "CHUNK", 64 * KiB)


@pytest.fixture
def quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(transfer, "BACKOFF", 0.01)


def content(n: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(n)


def put(store: ObjectStore, data: bytes, *, stored: bytes | None = None) -> tuple[str, str]:
    """Store ``stored`` (default ``data``) under ``data``'s key; returns (key, sha256)."""
    key = file_key(hashlib.md5(data).hexdigest())
    store.put_bytes(key, data if stored is None else stored)
    return key, hashlib.sha256(data).hexdigest()


def item(store: ObjectStore, out: Path, name: str, data: bytes, **kw: Any) -> Fetch:
    key, sha = put(store, data, **kw)
    return Fetch(key, len(data), sha, out / name, f"acme/tiny@main: {name}")


def leftovers(out: Path) -> list[str]:
    return sorted(p.name for p in out.rglob(".*"))


def check_done(report: TransferReport, items: list[Fetch], datas: list[bytes]) -> None:
    assert not report.failed
    assert {i.dest for i in report.done} == {i.dest for i in items}
    for i, data in zip(items, datas, strict=True):
        assert i.dest.read_bytes() == data
        assert i.dest.stat().st_mode & 0o777 == 0o444


def test_fetch_verifies_and_publishes(store: ObjectStore, tmp_path: Path) -> None:
    out = tmp_path / "out"
    datas = [b"", b"{}", content(300 * KiB, 1), content(2 * MiB + 7, 2)]
    items = [item(store, out / "sub", f"f{n}", d) for n, d in enumerate(datas)]
    seen: list[int] = []
    report = fetch(store, items, jobs=3, on_bytes=seen.append)
    check_done(report, items, datas)
    assert report.bytes == sum(seen) == sum(map(len, datas))
    assert leftovers(out) == []
    again = fetch(store, items)
    assert again.present == items and again.done == [] and again.bytes == 0


def test_corrupt_object_fails_alone(store: ObjectStore, tmp_path: Path) -> None:
    out = tmp_path / "out"
    good = content(50 * KiB, 1)
    bad = content(50 * KiB, 2)
    items = [
        item(store, out, "good.bin", good),
        item(store, out, "bad.bin", bad, stored=content(50 * KiB, 3)),  # same size, other bytes
    ]
    report = fetch(store, items)
    assert report.done == [items[0]] and items[0].dest.read_bytes() == good
    [(failed, error)] = report.failed
    assert failed == items[1] and isinstance(error, IntegrityError)
    assert "acme/tiny@main: bad.bin" in str(error) and "sha256 mismatch" in str(error)
    assert error.expected == items[1].sha256
    assert error.actual == hashlib.sha256(content(50 * KiB, 3)).hexdigest()
    assert not items[1].dest.exists() and leftovers(out) == []


@pytest.mark.parametrize("size", [100 * KiB, 3 * MiB])
def test_truncated_object_is_a_size_error(
    store: ObjectStore, tmp_path: Path, small_parts: None, size: int
) -> None:
    data = content(size)
    one = item(store, tmp_path / "out", "model.safetensors", data, stored=data[: size - 1000])
    report = fetch(store, [one])
    [(_, error)] = report.failed
    assert isinstance(error, IntegrityError)
    assert f"size mismatch: expected {size}, got {size - 1000}" in str(error)
    assert "model.safetensors" in str(error)
    assert not one.dest.exists() and leftovers(tmp_path / "out") == []


def test_missing_object_names_the_file(store: ObjectStore, tmp_path: Path) -> None:
    data = b"never uploaded"
    missing = Fetch(
        file_key(hashlib.md5(data).hexdigest()),
        len(data),
        hashlib.sha256(data).hexdigest(),
        tmp_path / "out" / "tokenizer.json",
        "acme/tiny@main: tokenizer.json",
    )
    present = item(store, tmp_path / "out", "config.json", b"{}")
    report = fetch(store, [missing, present])
    assert report.done == [present]
    [(failed, error)] = report.failed
    assert failed == missing and isinstance(error, ObjectNotFoundError)
    assert "acme/tiny@main: tokenizer.json" in str(error) and error.key is not None
    assert not missing.dest.exists()


def test_resume_from_a_partial_file(store: ObjectStore, tmp_path: Path) -> None:
    data = content(700 * KiB)
    one = item(store, tmp_path / "out", "weights.bin", data)
    partial = partial_path(one)
    partial.parent.mkdir(parents=True)
    partial.write_bytes(data[:300_000])  # what an interrupted run left
    report = fetch(store, [one])
    check_done(report, [one], [data])
    assert report.bytes == len(data) - 300_000  # only the rest was received
    assert not partial.exists()


def test_wrong_partial_is_discarded(store: ObjectStore, tmp_path: Path) -> None:
    data = content(200 * KiB)
    one = item(store, tmp_path / "out", "weights.bin", data)
    partial = partial_path(one)
    partial.parent.mkdir(parents=True)
    partial.write_bytes(b"x" * 1000 + data[1000:150_000])  # wrong bytes from an older run
    report = fetch(store, [one])
    check_done(report, [one], [data])
    assert report.bytes == (len(data) - 150_000) + len(data)  # the rest, then all afresh
    too_long = partial_path(one)
    too_long.write_bytes(data + b"more")  # longer than the file: ignored
    one.dest.chmod(0o644)
    one.dest.unlink()
    check_done(fetch(store, [one]), [one], [data])


def test_partial_names_fit_and_differ(tmp_path: Path) -> None:
    long = Fetch("k", 1, "ab" * 32, tmp_path / ("é" * 200), "x")
    assert len(os.fsencode(partial_path(long).name)) <= 255
    shared = tmp_path / "tmp"
    a = Fetch("k", 1, "ab" * 32, tmp_path / "a" / "config.json", "a", tmp_dir=shared)
    b = Fetch("k", 1, "ab" * 32, tmp_path / "b" / "config.json", "b", tmp_dir=shared)
    assert partial_path(a) != partial_path(b) and partial_path(a).parent == shared
    with pytest.raises(ValueError, match="two different files"):
        fetch(LocalStore(tmp_path), [a, Fetch("k2", 1, "cd" * 32, a.dest, "c")])


class Counting(ObjectStore):
    """A store wrapper that records each ranged read and can break streams on demand."""

    def __init__(self, inner: ObjectStore, breaks: list[int] | None = None) -> None:
        self.inner, self.url = inner, inner.url
        self.reads: list[tuple[int, int | None]] = []
        self.breaks = list(breaks or [])  # per reader: bytes it passes before it breaks
        self.lock = threading.Lock()

    def open_read(self, key: str, start: int = 0, stop: int | None = None) -> ObjectReader:
        with self.lock:
            self.reads.append((start, stop))
            after = self.breaks.pop(0) if self.breaks else None
        reader = self.inner.open_read(key, start, stop)
        return reader if after is None else Breaking(reader, after)

    def head(self, key: str) -> int | None:
        return self.inner.head(key)

    def put_file(self, item: Any) -> None:
        self.inner.put_file(item)

    def put_bytes(self, key: str, data: bytes) -> None:
        self.inner.put_bytes(key, data)

    def get_bytes(self, key: str) -> bytes:
        return self.inner.get_bytes(key)

    def iter_chunks(self, key: str, chunk: int = 4 * MiB) -> Any:
        return self.inner.iter_chunks(key, chunk)

    def delete(self, key: str) -> None:
        self.inner.delete(key)


class Breaking(ObjectReader):
    """Passes ``after`` bytes through, then fails as a reset connection does."""

    def __init__(self, inner: ObjectReader, after: int) -> None:
        self.inner, self.left = inner, after
        self.key, self.size, self.start, self.stop = inner.key, inner.size, inner.start, inner.stop

    def readinto(self, buf: memoryview) -> int:
        if self.left <= 0:
            raise StoreUnavailableError("connection reset by peer (injected)", key=self.key)
        n = self.inner.readinto(buf[: self.left])
        self.left -= n
        return n

    def close(self) -> None:
        self.inner.close()


def test_large_file_in_ranged_parts(store: ObjectStore, tmp_path: Path, small_parts: None) -> None:
    data = content(3 * MiB + 12345)
    one = item(store, tmp_path / "out", "model.safetensors", data)
    counting = Counting(store)
    report = fetch(counting, [one], jobs=4)
    check_done(report, [one], [data])
    # 13 parts of 256 KiB (the last one short), each one ranged GET
    assert len(counting.reads) == 13
    assert sorted(counting.reads)[:2] == [(0, 256 * KiB), (256 * KiB, 512 * KiB)]
    assert report.bytes == len(data) and leftovers(tmp_path / "out") == []


def test_many_large_files_stream_whole(tmp_path: Path, small_parts: None) -> None:
    store = LocalStore(tmp_path / "store")
    datas = [content(2 * MiB, n) for n in range(4)] + [content(9 * MiB, 9)]
    items = [item(store, tmp_path / "out", f"shard{n}", d) for n, d in enumerate(datas)]
    counting = Counting(store)
    report = fetch(counting, items, jobs=8)
    check_done(report, items, datas)
    # 17 MiB over 4 streams: the 2 MiB shards go whole (one read each), the 9 MiB one in parts
    assert counting.reads.count((0, None)) == 4
    assert len(counting.reads) == 4 + 36


def test_large_corrupt_object(store: ObjectStore, tmp_path: Path, small_parts: None) -> None:
    data = content(2 * MiB)
    bad = item(store, tmp_path / "out", "bad.safetensors", data, stored=content(2 * MiB, 9))
    good = item(store, tmp_path / "out", "good.safetensors", content(2 * MiB, 4))
    report = fetch(store, [bad, good], jobs=8)  # each more than a stream's share: in parts
    assert report.done == [good]
    [(failed, error)] = report.failed
    assert failed == bad and isinstance(error, IntegrityError) and "bad.safetensors" in str(error)
    assert not bad.dest.exists() and leftovers(tmp_path / "out") == []


def test_large_file_resumes_from_recorded_prefix(
    store: ObjectStore, tmp_path: Path, small_parts: None
) -> None:
    data = content(2 * MiB + 5)
    one = item(store, tmp_path / "out", "model.safetensors", data)
    partial = partial_path(one)
    partial.parent.mkdir(parents=True)
    # a killed parted fetch: the file at full length, parts past the prefix half-written
    partial.write_bytes(data[: 600 * KiB] + b"\0" * (len(data) - 600 * KiB))
    Path(f"{partial}.prefix").write_text(f"{512 * KiB:20d}\n")
    counting = Counting(store)
    report = fetch(counting, [one], jobs=4)
    check_done(report, [one], [data])
    assert report.bytes == len(data) - 512 * KiB
    assert min(counting.reads) == (512 * KiB, 768 * KiB)
    assert leftovers(tmp_path / "out") == []


def test_large_file_with_wrong_resumed_bytes_starts_afresh(
    store: ObjectStore, tmp_path: Path, small_parts: None
) -> None:
    data = content(2 * MiB)
    one = item(store, tmp_path / "out", "model.safetensors", data)
    partial = partial_path(one)
    partial.parent.mkdir(parents=True)
    partial.write_bytes(b"y" * MiB)  # sequential leftovers, wrong
    report = fetch(store, [one], jobs=4)
    check_done(report, [one], [data])
    assert report.bytes == MiB + len(data)


@pytest.mark.parametrize("size", [900 * KiB, 3 * MiB])
def test_broken_connections_resume_where_they_stopped(
    store: ObjectStore, tmp_path: Path, small_parts: None, quick_retries: None, size: int
) -> None:
    data = content(size)
    one = item(store, tmp_path / "out", "data.bin", data)
    flaky = Counting(store, breaks=[100 * KiB] * 3)
    report = fetch(flaky, [one], jobs=4)
    check_done(report, [one], [data])
    assert report.bytes == size  # no byte received twice
    assert len(flaky.reads) > (1 if size < MiB else 12)


def test_unreachable_store_fails_after_retries_and_keeps_bytes(
    tmp_path: Path, quick_retries: None
) -> None:
    store = LocalStore(tmp_path / "store")
    data = content(500 * KiB)
    one = item(store, tmp_path / "out", "data.bin", data)
    # one connection breaks after 50 KiB, the next three at once: three failures in a row
    flaky = Counting(store, breaks=[50 * KiB, 0, 0, 0])
    report = fetch(flaky, [one], retries=3)
    [(_, error)] = report.failed
    assert isinstance(error, StoreUnavailableError) and "data.bin" in str(error)
    assert "gave up after 3 attempts" in str(error)
    assert report.bytes == 50 * KiB == partial_path(one).stat().st_size  # kept for a rerun
    assert not one.dest.exists()
    report2 = fetch(flaky, [one])
    check_done(report2, [one], [data])
    assert report.bytes + report2.bytes == len(data)


def test_store_readers_agree(store: ObjectStore, tmp_path: Path) -> None:
    data = content(3 * MiB + 1)
    key, _ = put(store, data)

    def read(
        open_read: Callable[..., ObjectReader], *args: Any, key: str = key
    ) -> tuple[int, bytes]:
        with open_read(key, *args) as reader:
            buf = memoryview(bytearray(1 * MiB))
            parts = []
            while n := reader.readinto(buf):
                parts.append(bytes(buf[:n]))
            return reader.size, b"".join(parts)

    generic = lambda *a: ObjectStore.open_read(store, *a)  # noqa: E731 - iter_chunks-based
    readers = [store.open_read, generic]
    if getattr(store, "_fast", None) is not None:
        boto = open_store(store.url, endpoint_url=store.endpoint_url)  # type: ignore[attr-defined]
        boto._fast = None  # type: ignore[attr-defined]
        readers.append(boto.open_read)
    for open_read in readers:
        assert read(open_read) == (len(data), data)
        assert read(open_read, 10, 20) == (len(data), data[10:20])
        assert read(open_read, MiB + 3) == (len(data), data[MiB + 3 :])
        assert read(open_read, len(data) - 5, len(data) + 100) == (len(data), data[-5:])
        assert read(open_read, len(data) + 10) == (len(data), b"")  # past the end: empty
        with pytest.raises(ObjectNotFoundError):
            read(open_read, key="files/md5/ff/none")
    store.put_bytes("files/md5/00/empty", b"")
    assert read(store.open_read, key="files/md5/00/empty") == (0, b"")


def test_small_files_share_keep_alive_connections(
    s3: tuple[Any, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server, bucket = s3
    store = open_store(f"s3://{bucket}", endpoint_url=server.endpoint)
    out = tmp_path / "out"
    datas = [content(n * 997, n) for n in range(60)]  # the first one empty
    items = [item(store, out, f"f{n}", d) for n, d in enumerate(datas)]
    from nlmr.store import s3http

    connects = []
    original = s3http._GetConnection.__init__

    def counting_init(self: Any, *args: Any) -> None:
        connects.append(self)
        original(self, *args)

    monkeypatch.setattr(s3http._GetConnection, "__init__", counting_init)
    report = fetch(store, items, jobs=2)
    check_done(report, items, datas)
    assert len(connects) <= 2  # one per worker thread, kept alive across 60 GETs


@pytest.mark.slow
def test_server_killed_and_restarted_mid_transfer(
    s3: tuple[Any, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server, bucket = s3
    monkeypatch.setattr(transfer, "LARGE", 4 * MiB)
    monkeypatch.setattr(transfer, "PART", 1 * MiB)
    monkeypatch.setattr(transfer, "CHUNK", 64 * KiB)
    monkeypatch.setattr(transfer, "BACKOFF_MAX", 1.0)  # back soon after the server is
    store = open_store(f"s3://{bucket}/p", endpoint_url=server.endpoint)
    out = tmp_path / "out"
    datas = [content(12 * MiB, 1), content(9 * MiB, 2)] + [content(300 * KiB, n) for n in range(8)]
    items = [item(store, out, f"f{n}", d) for n, d in enumerate(datas)]
    total = sum(map(len, datas))
    received, fired = [0], [False]
    killed = threading.Event()
    lock = threading.Lock()

    def on_bytes(n: int) -> None:
        with lock:
            received[0] += n
            trigger = received[0] > total // 3 and not fired[0]
            fired[0] = fired[0] or trigger
        if trigger:  # the server dies with transfers in flight
            server.kill()
            killed.set()

    outcome: list[Any] = []
    fetcher = threading.Thread(
        target=lambda: outcome.append(fetch(store, items, jobs=4, on_bytes=on_bytes, retries=300))
    )
    fetcher.start()
    assert killed.wait(120)
    # restarted from the test's own thread: tests/seaweedfs.py ties a server's life to the
    # thread that starts it (PR_SET_PDEATHSIG), and later tests use this one
    server.restart()
    fetcher.join(300)
    [report] = outcome
    check_done(report, items, datas)
    assert report.bytes >= total and leftovers(out) == []


def test_local_filesystem_errors_stop_the_run(store: ObjectStore, tmp_path: Path) -> None:
    (tmp_path / "out").write_text("a file where a directory should be")
    one = item(store, tmp_path / "out", "a.bin", b"abc")
    with pytest.raises(OSError):
        fetch(store, [one])


def test_store_errors_are_per_file(tmp_path: Path) -> None:
    class Refusing(Counting):
        def open_read(self, key: str, start: int = 0, stop: int | None = None) -> ObjectReader:
            raise StoreError("access denied (test)", key=key)

    store = LocalStore(tmp_path / "store")
    one = item(store, tmp_path / "out", "a.bin", b"abc")
    report = fetch(Refusing(store), [one])
    [(_, error)] = report.failed
    assert type(error) is StoreError and str(error).startswith("acme/tiny@main: a.bin: ")


@pytest.mark.parametrize("durability", ["syncfs", "fsync-per-file", "none"])
def test_durability_modes_publish_everything(
    tmp_path: Path, small_parts: None, monkeypatch: pytest.MonkeyPatch, durability: str
) -> None:
    store = LocalStore(tmp_path / "store")
    monkeypatch.setattr(transfer, "FLUSH_FILES", 3)  # several flushes, one at the end
    if durability == "fsync-per-file":  # a system without syncfs
        monkeypatch.setitem(fsutil._libc_cache, "syncfs", None)
    out = tmp_path / "out"
    datas = [content(n * 1000 + 1, n) for n in range(7)] + [content(2 * MiB, 7)]
    items = [item(store, out / f"d{n % 2}", f"f{n}", d) for n, d in enumerate(datas)]
    synced: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd)))
    report = fetch(store, items, jobs=3, durable=durability != "none")
    check_done(report, items, datas)
    assert leftovers(out) == []
    assert len(synced) == (len(items) if durability == "fsync-per-file" else 0)
    transfer.sync_dirs(report.done)  # harmless whatever the mode


def test_complete_large_partial_is_published_without_fetching(
    tmp_path: Path, small_parts: None
) -> None:
    store = LocalStore(tmp_path / "store")
    data = content(2 * MiB)
    one = item(store, tmp_path / "out", "model.safetensors", data)
    partial = partial_path(one)
    partial.parent.mkdir(parents=True)
    partial.write_bytes(data)  # killed after the last byte, before the rename
    Path(f"{partial}.prefix").write_text(f"{len(data):20d}\n")
    counting = Counting(store)
    report = fetch(counting, [one])
    check_done(report, [one], [data])
    assert report.bytes == 0 and counting.reads == []
    assert leftovers(tmp_path / "out") == []


class CannedHttp:
    """A loopback HTTP server answering each request with the next canned response, to
    check the lean GET client against what real servers may send (not an S3 stand-in)."""

    def __init__(self, responses: list[bytes]) -> None:
        import socket

        self.responses = list(responses)
        self.requests: list[bytes] = []
        self.connections = 0
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.endpoint = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while self.responses:
            conn, _ = self.sock.accept()
            self.connections += 1
            with conn:
                data = b""
                while self.responses:
                    while b"\r\n\r\n" not in data:
                        got = conn.recv(65536)
                        if not got:
                            break
                        data += got
                    if b"\r\n\r\n" not in data:
                        break  # the client closed this connection
                    head, _, data = data.partition(b"\r\n\r\n")
                    self.requests.append(head)
                    response = self.responses.pop(0)
                    conn.sendall(response.replace(b"<close>", b""))
                    if b"<close>" in response:
                        break  # the server ends the connection after this response


def canned_client(server: CannedHttp) -> Any:
    from nlmr.store.s3http import S3Http

    return S3Http(server.endpoint, "b", "us-east-1", None, url="s3://b")


def response(status: str, body: bytes = b"", *headers: str, length: bool = True) -> bytes:
    lines = [f"HTTP/1.1 {status}", *headers]
    if length:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def read_all(reader: ObjectReader) -> bytes:
    buf = memoryview(bytearray(4))  # small: several reads per body
    out = b""
    with reader:
        while n := reader.readinto(buf):
            out += bytes(buf[:n])
    return out


def test_lean_get_client_speaks_plain_http() -> None:
    chunked_404 = (
        b"HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"6\r\n<Code>\r\n10\r\nNoSuchKey</Code>\r\n0\r\n\r\n"
    )
    server = CannedHttp(
        [
            response("200 OK", b"0123456789"),
            response("200 OK", b"0123456789"),  # a server that ignores Range
            response("206 Partial Content", b"345", "Content-Range: bytes 3-5/10"),
            chunked_404,
            response("503 Slow Down", b"<Code>SlowDown</Code>"),
            response("416 Range Not Satisfiable", b"", "Content-Range: bytes */10"),
            response("200 OK", b"abc") + b"<close>",  # then the server closes the connection
            response("200 OK", b"xyz"),
            response("200 OK", b"short", "Content-Length: 9", length=False) + b"<close>",
        ]
    )
    client = canned_client(server)
    assert read_all(client.get("k")) == b"0123456789"
    reader = client.get("k", 4)
    assert (reader.size, read_all(reader)) == (10, b"456789")
    reader = client.get("k", 3, 6)
    assert (reader.size, read_all(reader)) == (10, b"345")
    assert b"range: bytes=3-5" in server.requests[-1].lower()
    with pytest.raises(ObjectNotFoundError):
        client.get("k")
    with pytest.raises(StoreUnavailableError, match="503"):
        client.get("k")
    reader = client.get("k", 12)
    assert (reader.size, read_all(reader)) == (10, b"")
    assert read_all(client.get("k")) == b"abc"
    assert read_all(client.get("k")) == b"xyz"  # on a new connection, transparently
    with pytest.raises(StoreUnavailableError, match="closed at byte 5 of 9"):
        read_all(client.get("k"))
    assert server.connections == 2  # kept alive, except after the server closed one


def test_read_only_partial_left_before_the_flush_is_reused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = LocalStore(tmp_path / "store")
    data = content(1000)
    one = item(store, tmp_path / "out", "config.json", data)
    partial = partial_path(one)
    partial.parent.mkdir(parents=True)
    partial.write_bytes(data)  # verified, given its mode, then the process died
    partial.chmod(0o444)
    real_open = os.open

    def strict_open(path: Any, flags: int, *args: Any) -> int:  # root ignores modes; we don't
        if flags & os.O_RDWR and not os.stat(path).st_mode & 0o200:
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, flags, *args)

    monkeypatch.setattr(os, "open", strict_open)
    report = fetch(store, [one])
    check_done(report, [one], [data])
    assert report.bytes == 0
