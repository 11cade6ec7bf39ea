"""The verified byte mover: store objects → local files, every byte checked on the way.

Shared by ``nlmr sync`` (a cluster mirror) and ``nlmr pull``; it knows nothing of cards or
tree layouts. Each :class:`Fetch` names an object, its expected size and sha256, and the
path where it should appear. :func:`fetch` guarantees that a file appears at ``dest`` only
verified, with its final mode, by an atomic rename; anything else is reported per file.

How the bytes move (the point of this module is to be as fast as a plain copy):

* Each file is fetched whole, one GET, by one of ``jobs`` workers on keep-alive
  connections, read into a reused per-thread buffer, hashed as it arrives and written.
* Files from :data:`LARGE` that are more than one stream's share of all the large bytes
  (say, one big file among few) are fetched in :data:`PART`-sized ranged GETs instead,
  concurrently, round-robin over a few files, each written with ``pwrite`` at its offset.
  sha256 is sequential, so a part's bytes stay in a pooled buffer until the hash reaches
  them; at most ``jobs + PART_SLACK`` part buffers exist, which bounds memory.
* The partial file has a deterministic name (:func:`partial_path`), so a rerun after a
  crash resumes: the bytes already there are hashed and only the rest is fetched. For
  parted files a small ``….prefix`` file beside it records how many leading bytes are
  complete (parts land out of order).
* With ``durable``, verified files are made durable in batches (one ``syncfs``) before
  their renames; writeback of large files starts while they download.
* Transient store errors are retried with exponential backoff, resuming from the bytes
  already received; other errors fail that file only.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nlmr.errors import (
    IntegrityError,
    NlmrError,
    ObjectNotFoundError,
    StoreError,
    StoreUnavailableError,
)
from nlmr.fsutil import (
    one_dir_per_filesystem,
    pwrite_all,
    start_writeback,
    syncfs,
    syncfs_available,
)
from nlmr.store.base import DEFAULT_JOBS, ObjectStore

if TYPE_CHECKING:
    from concurrent.futures import ThreadPoolExecutor

KiB, MiB = 1 << 10, 1 << 20
#: Files from this size are fetched in concurrent ranged parts.
LARGE = 64 * MiB
#: Size of one ranged GET of a large file; each in-flight part holds a buffer this big.
#: Bigger parts cost the server less per byte (32 MiB: about 20 % less CPU in SeaweedFS)
#: but memory grows with them; files that are streamed whole cost it least.
PART = 8 * MiB
#: Part buffers beyond one per worker, so a worker that finished a part ahead of the hash
#: can start another; memory is (jobs + PART_SLACK) x PART.
PART_SLACK = 2
#: Bytes per read from the network: big enough that per-call overhead vanishes, small
#: enough to stay in the CPU cache while it is hashed and written (1 MiB chunks cost
#: twice the system time here: the second copy, into the page cache, missed the cache).
CHUNK = 256 * KiB
#: With ``durable``, verified files are published in batches: one ``syncfs`` when this many
#: bytes or files wait (and at the end). Large files are written back as their parts land,
#: so by then most of the bytes are on disk already.
FLUSH_BYTES = 256 * MiB
FLUSH_FILES = 1000
#: Transient failures in a row (without a byte received in between) before a file fails.
RETRIES = 8
#: First backoff delay in seconds; it doubles per retry, up to :data:`BACKOFF_MAX`.
BACKOFF = 0.25
BACKOFF_MAX = 10.0
#: Keep partial names within NAME_MAX (255 bytes) with room for the prefixes and suffixes.
_NAME_BYTES = 180
_PREFIX_SUFFIX = ".prefix"


@dataclass(frozen=True)
class Fetch:
    """One object to fetch to one path.

    Attributes:
        key: store key of the object (``files/md5/…``).
        size: expected bytes.
        sha256: expected sha256, hex.
        dest: final path; it appears only once verified (atomic rename), with the mode given
            to :func:`fetch`.
        label: names the file in messages, e.g. ``ltg/norbert3-base@main: model.safetensors``.
        tmp_dir: where the partial file lives (must be on ``dest``'s filesystem); default
            ``dest.parent``.
        replace: fetch even though ``dest`` exists, and rename the verified file over it
            (the old one stays until then); otherwise an existing ``dest`` is ``present``.
    """

    key: str
    size: int
    sha256: str
    dest: Path
    label: str
    tmp_dir: Path | None = None
    replace: bool = False


@dataclass
class TransferReport:
    """What :func:`fetch` did.

    Attributes:
        done: fetched and verified now (in completion order).
        present: ``dest`` already existed, so not fetched (callers trust published files).
        failed: each failed file with its error: :class:`IntegrityError`,
            :class:`ObjectNotFoundError` or another :class:`StoreError` (after retries,
            :class:`StoreUnavailableError`).
        bytes: bytes received from the store by this call.
    """

    done: list[Fetch] = field(default_factory=list)
    present: list[Fetch] = field(default_factory=list)
    failed: list[tuple[Fetch, NlmrError]] = field(default_factory=list)
    bytes: int = 0


def partial_path(item: Fetch) -> Path:
    """Where ``item``'s bytes collect before they are verified: the same name on every run,
    so an interrupted fetch resumes.

    With the default ``tmp_dir`` (the destination's directory) the sha256 prefix and the
    name suffice; a shared ``tmp_dir`` also gets a tag of the destination's directory, so
    equal files bound for two directories do not share a partial file.
    """
    name = item.dest.name.encode()[:_NAME_BYTES].decode(errors="ignore")
    if item.tmp_dir is None:
        return item.dest.parent / f".{item.sha256[:16]}.{name}.partial"
    tag = hashlib.sha256(os.fsencode(item.dest.parent)).hexdigest()[:8]
    return item.tmp_dir / f".{item.sha256[:16]}.{tag}.{name}.partial"


def sync_dirs(items: Iterable[Fetch]) -> None:
    """fsync the directories of ``items``' destinations, making their renames durable.

    Needed only where :func:`fetch` cannot ``syncfs`` (it then fsyncs each file but not
    the directories): call it once afterwards, e.g. on ``report.done``.
    """
    from nlmr.fsutil import fsync_dir

    for directory in sorted({item.dest.parent for item in items}):
        fsync_dir(directory)


def fetch(
    store: ObjectStore,
    items: Sequence[Fetch],
    *,
    jobs: int = DEFAULT_JOBS,
    mode: int = 0o444,
    on_bytes: Callable[[int], None] | None = None,
    durable: bool = True,
    retries: int = RETRIES,
) -> TransferReport:
    """Fetch objects to files, verifying size and sha256 of every byte.

    A file whose ``dest`` exists is not fetched (``present``). Every other file is received
    into its partial file (:func:`partial_path`), resuming one left by an earlier run,
    hashed as it arrives, checked, given ``mode``, synced to disk (``durable``) and renamed
    to ``dest``. A partial file whose bytes turn out wrong is discarded and fetched afresh; a
    mismatch after a fresh fetch is an :class:`IntegrityError` and leaves nothing behind.
    One failing file never stops the others.

    Args:
        store: where the objects are.
        items: the files to fetch; their ``dest`` paths must be distinct. Missing
            directories of ``dest`` and ``tmp_dir`` are created.
        jobs: concurrent requests.
        mode: permissions of the published files.
        on_bytes: progress callback with the bytes of each received chunk; called from
            worker threads.
        durable: make the bytes durable before the rename, and the renames too. Done in
            batches (one ``syncfs`` per :data:`FLUSH_BYTES`, and at the end); where
            ``syncfs`` is missing, an fsync per file (then call :func:`sync_dirs` for the
            renames). Without it a crash can leave a published file empty.
        retries: transient failures in a row before a file fails.

    Returns:
        What was done, already present, and failed (with the error).

    Raises:
        ValueError: two items with the same ``dest`` and different contents.
        OSError: the local filesystem failed (full, read-only, permissions); the other
            transfers are stopped, partial files are kept for a rerun.
    """
    return _Run(
        store, jobs=jobs, mode=mode, on_bytes=on_bytes, durable=durable, retries=retries
    ).run(items)


class _Aborted(Exception):
    """Internal: the run is stopping (a fatal error elsewhere, or Ctrl-C)."""


@dataclass(eq=False)
class _Part:
    start: int
    stop: int
    buf: memoryview | None = None  # pooled buffer; released once hashed (or abandoned)
    filled: int = 0


@dataclass(eq=False)
class _Large:
    """One file being fetched in parts: the partial file, the parts and the in-order hash."""

    item: Fetch
    partial: Path
    fd: int
    side: int  # the ``.prefix`` file: how many leading bytes are complete
    hasher: Any
    resumed: bool
    parts: list[_Part]
    lock: threading.Lock = field(default_factory=threading.Lock)
    head: int = 0  # index of the first part not fully hashed
    hashed: int = 0  # bytes of parts[head] hashed so far
    hashing: bool = False  # a thread is hashing: others just record their progress
    running: int = -1  # part tasks not yet finished
    error: NlmrError | None = None

    def __post_init__(self) -> None:
        self.running = len(self.parts)


class _Run:
    """The state of one :func:`fetch` call, shared by its worker threads."""

    def __init__(
        self,
        store: ObjectStore,
        *,
        jobs: int,
        mode: int,
        on_bytes: Callable[[int], None] | None,
        durable: bool,
        retries: int,
    ) -> None:
        self.store, self.mode, self.on_bytes = store, mode, on_bytes
        self.durable, self.retries = durable, max(1, retries)
        self.jobs = max(1, jobs)
        self.report = TransferReport()
        self.lock = threading.Lock()
        self.changed = threading.Condition(self.lock)
        self.outstanding = 0  # items dispatched and not yet settled
        self.again: deque[Fetch] = deque()  # resumed large files whose bytes were wrong
        # verified files waiting to be made durable and renamed together (``durable``)
        self.open_large: set[_Large] = set()  # to close their files if the run is stopped
        self.pending: list[tuple[Fetch, Path]] = []
        self.pending_bytes = 0
        self.flush_queued = False
        self.flusher: ThreadPoolExecutor | None = None
        self.fatal: BaseException | None = None
        self.local = threading.local()
        # part buffers: taken in dispatch order (so the head part of a file always holds
        # one, and hashing can always advance), and reused from a free list
        self.slots = self.jobs + PART_SLACK
        self.free: list[memoryview] = []
        self.made_dirs: set[Path] = set()

    # --- the dispatcher (the calling thread) ------------------------------------------------

    def run(self, items: Sequence[Fetch]) -> TransferReport:
        todo = []
        for item in self._dedupe(items):
            if not item.replace and os.path.lexists(item.dest):
                self.report.present.append(item)
            else:
                todo.append(item)
        large: deque[tuple[Fetch, bool]] = deque()
        # large files in progress, with the index of the next part to dispatch: parts are
        # dispatched round-robin over a few files, so several hashes advance at once and no
        # worker has to catch up on a long backlog of buffered parts
        active: deque[tuple[_Large, int]] = deque()
        window = max(1, self.jobs // 2)
        from concurrent.futures import ThreadPoolExecutor  # here: it imports logging, 20 ms

        pool = ThreadPoolExecutor(self.jobs, thread_name_prefix="nlmr-fetch")
        try:
            # a large file no bigger than one stream's fair share of all the large bytes is
            # streamed whole, like a small file: hashed as it arrives, one request, no
            # buffering; the others are fetched in parts, so a few big files still use
            # every worker (and no lone file makes a long tail)
            share = sum(i.size for i in todo if i.size >= LARGE) // ((self.jobs + 1) // 2)
            for item in todo:  # whole files never wait for a part buffer: queue them now
                if item.size >= LARGE and item.size > share:
                    large.append((item, False))
                else:
                    self._start(item)
                    pool.submit(self._guard, self._whole, item)
            while True:
                with self.lock:
                    while self.again:
                        large.append((self.again.popleft(), True))
                while len(active) < window and large:
                    item, fresh = large.popleft()
                    self._start(item)
                    opened = self._open_large_or_settle(item, fresh)
                    if opened:
                        active.append((opened, 0))
                if active:
                    file, n = active.popleft()
                    if self._dispatch_part(pool, file, n) and n + 1 < len(file.parts):
                        active.append((file, n + 1))
                    continue
                flush = False
                with self.lock:
                    while not self.again and self.outstanding and not self.fatal:
                        if self.outstanding == len(self.pending) and not self.flush_queued:
                            flush = True  # all that is left waits to be published
                            break
                        self.changed.wait()
                    if self.fatal:
                        raise self.fatal
                    if not self.again and not self.outstanding:
                        break  # everything settled
                if flush:
                    self._request_flush()
        except BaseException:
            with self.lock:
                if self.fatal is None:
                    self.fatal = _Aborted()  # Ctrl-C: workers stop at their next chunk
            pool.shutdown(wait=True, cancel_futures=True)
            if self.flusher is not None:
                self.flusher.shutdown(wait=True)
            for file in list(self.open_large):  # parts never dispatched, or cancelled
                for fd in (file.fd, file.side):
                    with contextlib.suppress(OSError):
                        os.close(fd)
            raise
        pool.shutdown(wait=True)
        if self.flusher is not None:
            self.flusher.shutdown(wait=True)
        return self.report

    @staticmethod
    def _dedupe(items: Sequence[Fetch]) -> list[Fetch]:
        seen: dict[Path, Fetch] = {}
        for item in items:
            other = seen.setdefault(item.dest, item)
            if other is not item and (other.key, other.sha256) != (item.key, item.sha256):
                raise ValueError(f"{item.dest}: two different files for one destination")
        return list(seen.values())

    def _start(self, item: Fetch) -> None:
        """Make the item's directories and count it in (until :meth:`_settle`)."""
        self._mkdirs(item)
        with self.lock:
            self.outstanding += 1

    def _open_large_or_settle(self, item: Fetch, fresh: bool) -> _Large | None:
        """:meth:`_open_large`; None when it failed or there is nothing to fetch."""
        try:
            large = self._open_large(item, fresh)
        except NlmrError as exc:
            self._settle(item, exc)
            return None
        except BaseException:
            self._settle(item, None)
            raise
        if not large.parts:  # a resumed partial turned out complete
            self._finish_large(large)
            return None
        with self.lock:
            self.open_large.add(large)
        return large

    def _dispatch_part(self, pool: ThreadPoolExecutor, large: _Large, n: int) -> bool:
        """Submit part ``n`` of ``large`` once a buffer is free; False (and the remaining
        parts counted as done) when the file has failed meanwhile."""
        # buffers are taken here, in order, never in a worker: a worker waiting for one
        # could keep the part that the hash waits for from running
        buf = self._buffer(large)
        if buf is None:
            for skipped in large.parts[n:]:
                self._part_done(large, skipped)
            return False
        large.parts[n].buf = buf
        pool.submit(self._guard, self._part, large, large.parts[n])
        return True

    def _mkdirs(self, item: Fetch) -> None:
        for directory in (item.dest.parent, item.tmp_dir):
            if directory is not None and directory not in self.made_dirs:
                directory.mkdir(parents=True, exist_ok=True)
                self.made_dirs.add(directory)

    def _buffer(self, large: _Large) -> memoryview | None:
        """A part buffer, once one is free; None if ``large`` has failed meanwhile.

        Raises:
            BaseException: the run's fatal error, if one happened while waiting.
        """
        with self.lock:
            while self.slots == 0 and large.error is None and self.fatal is None:
                self.changed.wait()
            if self.fatal is not None:
                raise self.fatal
            if large.error is not None:
                return None
            self.slots -= 1
            if self.free:
                return self.free.pop()
        return memoryview(bytearray(PART))

    def _settle(
        self, item: Fetch, error: NlmrError | None, *, done: bool = False, again: bool = False
    ) -> None:
        """Record an item's outcome (``again``: dispatch it afresh) and wake the dispatcher."""
        with self.lock:
            if done:
                self.report.done.append(item)
            elif again:
                self.again.append(item)
            elif error is not None:
                self.report.failed.append((item, error))
            self.outstanding -= 1
            self.changed.notify_all()

    def _guard(self, fn: Callable[..., None], *args: Any) -> None:
        """Run a worker task; a local-filesystem error or a bug stops the whole run."""
        try:
            fn(*args)
        except _Aborted:
            pass
        except BaseException as exc:
            with self.lock:
                if self.fatal is None:
                    self.fatal = exc
                self.changed.notify_all()

    # --- shared by both paths ---------------------------------------------------------------

    def _received(self, n: int) -> None:
        with self.lock:
            self.report.bytes += n
        if self.on_bytes:
            self.on_bytes(n)

    def _backoff(self, failures: int, exc: StoreUnavailableError, item: Fetch) -> None:
        """Sleep before retry number ``failures``, or give up with the item's label."""
        if failures >= self.retries:
            raise StoreUnavailableError(
                f"{item.label}: {exc.message} (gave up after {failures} attempts)",
                url=exc.url,
                key=item.key,
                hint=exc.hint or "rerun to resume: the bytes received so far are kept",
            ) from exc
        deadline = time.monotonic() + min(BACKOFF * 2 ** (failures - 1), BACKOFF_MAX)
        while time.monotonic() < deadline:
            if self.fatal:
                raise _Aborted
            time.sleep(min(0.2, max(0.0, deadline - time.monotonic())))

    def _relabel(self, item: Fetch, exc: NlmrError) -> NlmrError:
        """The store's error, naming the file as the caller knows it."""
        if isinstance(exc, ObjectNotFoundError):
            err: NlmrError = ObjectNotFoundError(
                f"{item.label}: {exc.message}", url=exc.url, key=exc.key, hint=exc.hint
            )
        elif isinstance(exc, StoreUnavailableError) or not isinstance(exc, StoreError):
            return exc
        else:
            err = type(exc)(f"{item.label}: {exc.message}", url=exc.url, key=exc.key, hint=exc.hint)
        err.__cause__ = exc
        return err

    def _size_error(self, item: Fetch, actual: int) -> IntegrityError:
        return IntegrityError(item.label, str(item.size), str(actual), what="size")

    def _publish(self, item: Fetch, fd: int, partial: Path) -> None:
        """The verified partial file becomes ``dest``: final mode, durable bytes, rename.

        Takes ``fd`` (closes it). Without ``durable`` the rename follows at once. With it,
        verified files wait for the next :meth:`_flush`, which makes them all durable with
        one ``syncfs`` and then renames them: an fsync per file costs a journal commit and
        a disk cache flush each (2,000 small files: 0.5-1 s more here, even with the
        fsyncs in 32 threads of their own), and a worker waiting for the disk leaves the
        network idle.
        """
        try:
            os.fchmod(fd, self.mode)
            if self.durable and not syncfs_available():
                os.fsync(fd)
        except BaseException:
            os.close(fd)
            self._settle(item, None)
            raise
        os.close(fd)
        if not self.durable:
            os.rename(partial, item.dest)
            self._settle(item, None, done=True)
            return
        with self.lock:
            self.pending.append((item, partial))
            self.pending_bytes += item.size
            due = self.pending_bytes >= FLUSH_BYTES or len(self.pending) >= FLUSH_FILES
            self.changed.notify_all()  # the dispatcher flushes when nothing else is left
        if due:
            self._request_flush()

    def _request_flush(self) -> None:
        """Have the flusher thread publish the pending files (once, if several ask)."""
        with self.lock:
            if self.flush_queued or not self.pending:
                return
            self.flush_queued = True
            if self.flusher is None:
                from concurrent.futures import ThreadPoolExecutor

                self.flusher = ThreadPoolExecutor(1, thread_name_prefix="nlmr-flush")
            flusher = self.flusher
        flusher.submit(self._guard, self._flush)

    def _flush(self) -> None:
        """Make the pending files durable (``syncfs`` of each filesystem), rename them, and
        make the renames durable too (a second, quick ``syncfs``)."""
        with self.lock:
            batch, self.pending = self.pending, []
            self.pending_bytes = 0
            self.flush_queued = False
        try:
            roots = one_dir_per_filesystem({partial.parent for _, partial in batch})
            syncfs(roots)
            for item, partial in batch:
                os.rename(partial, item.dest)
            syncfs(roots)
        except BaseException:
            for item, _ in batch:
                self._settle(item, None)
            raise
        for item, _ in batch:
            self._settle(item, None, done=True)

    @staticmethod
    def _read_prefix(partial: Path, length: int) -> int:
        """How many leading bytes of a partial file to trust: the side file's count for a
        parted fetch, else its length (a sequential fetch writes in order)."""
        try:
            text = Path(str(partial) + _PREFIX_SUFFIX).read_bytes()
        except FileNotFoundError:
            return length
        try:
            return min(int(text.strip() or b"0"), length)
        except ValueError:
            return 0

    def _hash_existing(self, fd: int, have: int, hasher: Any) -> None:
        """Hash the first ``have`` bytes of a resumed partial file (only on resume)."""
        buf = self._chunk_buffer()
        pos = 0
        while pos < have:
            n = os.preadv(fd, [buf[: min(len(buf), have - pos)]], pos)
            if not n:
                raise OSError(f"partial file shorter than {have} bytes")
            hasher.update(buf[:n])
            pos += n

    def _chunk_buffer(self) -> memoryview:
        buf: memoryview | None = getattr(self.local, "buf", None)
        if buf is None:
            buf = self.local.buf = memoryview(bytearray(CHUNK))
        return buf

    # --- whole files: one GET each ------------------------------------------------------------

    def _whole(self, item: Fetch) -> None:
        partial = partial_path(item)
        side = Path(str(partial) + _PREFIX_SUFFIX)
        try:
            fd = _open_partial(partial)
        except OSError:
            self._settle(item, None)
            raise
        keep = True  # keep the partial file for a rerun, unless its bytes are known bad
        try:
            have = 0
            length = os.fstat(fd).st_size
            if length:  # left by an interrupted run: resume after the bytes to trust
                have = self._read_prefix(partial, length)
                if have > item.size:
                    have = 0
                os.ftruncate(fd, have)
                with contextlib.suppress(FileNotFoundError):
                    side.unlink()
            while True:
                hasher = hashlib.sha256()
                if have:
                    self._hash_existing(fd, have, hasher)
                resumed = have > 0
                self._receive(item, fd, have, hasher)
                digest = hasher.hexdigest()
                if digest == item.sha256:
                    break
                if not resumed:
                    raise IntegrityError(item.label, item.sha256, digest)
                os.ftruncate(fd, 0)  # the old bytes were wrong: once more, from scratch
                have = 0
            fd, owned = -1, fd
            self._publish(item, owned, partial)
        except NlmrError as exc:
            keep = not isinstance(exc, (IntegrityError, ObjectNotFoundError))
            self._settle(item, self._relabel(item, exc))
        except BaseException:
            if fd >= 0:  # not handed to _publish, which settles what it was given
                self._settle(item, None)
            raise
        finally:
            if fd >= 0:
                os.close(fd)
            if not keep:
                with contextlib.suppress(FileNotFoundError):
                    partial.unlink()

    def _receive(self, item: Fetch, fd: int, have: int, hasher: Any) -> None:
        """Receive bytes ``have`` to the end into ``fd``, hashing them; retries transient
        failures from where they stopped."""
        buf = self._chunk_buffer()
        failures = 0
        flushed = have  # written back from here on (durable, large files)
        while True:
            try:
                if have == item.size and have:
                    return  # a resumed partial already complete
                with self.store.open_read(item.key, have) as reader:
                    if reader.size != item.size:
                        raise self._size_error(item, reader.size)
                    while True:
                        if self.fatal:
                            raise _Aborted
                        n = reader.readinto(buf)
                        if not n:
                            break
                        view = buf[:n]
                        hasher.update(view)
                        pwrite_all(fd, view, have)
                        have += n
                        failures = 0
                        self._received(n)
                        if self.durable and have - flushed >= PART:
                            start_writeback(fd, flushed, have - flushed)  # as parts do
                            flushed = have
                return
            except StoreUnavailableError as exc:
                failures += 1
                self._backoff(failures, exc, item)

    # --- large files: ranged parts --------------------------------------------------------------

    def _open_large(self, item: Fetch, fresh: bool) -> _Large:
        """Open (or resume) a large file's partial and plan its parts (none when a resumed
        partial is complete and right); hashes the resumed bytes."""
        partial = partial_path(item)
        side_path = Path(str(partial) + _PREFIX_SUFFIX)
        fd = _open_partial(partial)
        side = -1
        try:
            have = 0 if fresh else self._read_prefix(partial, os.fstat(fd).st_size)
            if have > item.size:
                have = 0
            hasher = hashlib.sha256()
            if have:
                self._hash_existing(fd, have, hasher)
            if have == item.size and hasher.hexdigest() != item.sha256:
                have, hasher = 0, hashlib.sha256()  # complete but wrong: start afresh
            # record the trusted prefix before the file grows past it: after a crash, the
            # side file, not the length, says how much is good
            side = os.open(side_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            os.pwrite(side, b"%20d\n" % have, 0)
            os.ftruncate(fd, item.size)
        except BaseException:
            os.close(fd)
            if side >= 0:
                os.close(side)
            raise
        bounds = [have, *range((have // PART + 1) * PART, item.size, PART), item.size]
        parts = [_Part(a, b) for a, b in itertools.pairwise(bounds) if b > a]
        return _Large(item, partial, fd, side, hasher, have > 0, parts)

    def _part(self, large: _Large, part: _Part) -> None:
        item = large.item
        try:
            self._fetch_part(large, part)
        except NlmrError as exc:
            with large.lock:
                large.error = large.error or self._relabel(item, exc)
            with self.lock:
                self.changed.notify_all()  # the dispatcher may wait for a buffer for this file
        except BaseException as exc:
            # a local error (disk full), a bug or Ctrl-C: stop this file, keep its bytes
            with large.lock:
                large.error = large.error or StoreUnavailableError(
                    f"{item.label}: stopped ({exc!r})", key=item.key
                )
            raise
        finally:
            self._part_done(large, part)

    def _fetch_part(self, large: _Large, part: _Part) -> None:
        item, fd = large.item, large.fd
        buf = part.buf
        assert buf is not None
        length = part.stop - part.start
        failures = 0
        while part.filled < length:
            try:
                start = part.start + part.filled
                with self.store.open_read(item.key, start, part.stop) as reader:
                    if reader.size != item.size:
                        raise self._size_error(item, reader.size)
                    while part.filled < length:
                        if self.fatal:
                            raise _Aborted
                        if large.error is not None:
                            return  # another part failed: this file is lost anyway
                        at = part.filled
                        n = reader.readinto(buf[at : min(length, at + CHUNK)])
                        if not n:
                            raise StoreUnavailableError(
                                f"{item.label}: response ended at byte {part.start + at}",
                                key=item.key,
                            )
                        pwrite_all(fd, buf[at : at + n], part.start + at)
                        failures = 0
                        self._received(n)
                        self._advance(large, part, at + n)
            except StoreUnavailableError as exc:
                failures += 1
                self._backoff(failures, exc, item)
        if self.durable:
            # the part goes to disk while the rest downloads, so the final fsync is short
            start_writeback(fd, part.start, length)

    def _advance(self, large: _Large, part: _Part, filled: int) -> None:
        """Record a part's progress and hash whatever is now contiguous with the hash.

        One thread hashes at a time, outside the lock (hashlib releases the GIL, so the
        other workers keep receiving); threads arriving meanwhile only record progress.
        """
        with large.lock:
            part.filled = filled
            if large.hashing:
                return
            large.hashing = True
        while True:
            with large.lock:
                view = None
                while large.head < len(large.parts):
                    head = large.parts[large.head]
                    if large.hashed < head.filled and head.buf is not None:
                        view = head.buf[large.hashed : head.filled]
                        upto = head.filled
                        break
                    if head.filled < head.stop - head.start or large.error is not None:
                        break
                    # the head part is hashed whole: its buffer is free, the prefix grows
                    self._release(head)
                    large.head += 1
                    large.hashed = 0
                    os.pwrite(large.side, b"%20d\n" % head.stop, 0)
                if view is None:
                    large.hashing = False
                    break
            large.hasher.update(view)
            with large.lock:
                large.hashed = upto

    def _release(self, part: _Part) -> None:
        """Return a part's buffer to the pool (caller holds the file's lock)."""
        if part.buf is not None:
            buf, part.buf = part.buf, None
            with self.lock:
                self.free.append(buf)
                self.slots += 1
                self.changed.notify_all()

    def _part_done(self, large: _Large, part: _Part) -> None:
        """A part task ended; the last one to end publishes the file or cleans up.

        No thread is hashing then: only workers whose part is still running hash, and the
        one that hashed last consumed all progress recorded before it stopped.
        """
        with large.lock:
            large.running -= 1
            last = large.running == 0
            if last:
                # buffers of parts never hashed (an error stopped the hash) go back
                for p in large.parts:
                    self._release(p)
        if last:
            self._finish_large(large)

    def _finish_large(self, large: _Large) -> None:
        item, error = large.item, large.error
        side_path = Path(str(large.partial) + _PREFIX_SUFFIX)
        keep = True
        again = False
        with self.lock:
            self.open_large.discard(large)
        try:
            if error is None and large.head < len(large.parts):  # cannot happen; never publish
                error = StoreError(f"{item.label}: internal error: parts left unhashed")
            if error is None:
                digest = large.hasher.hexdigest()
                if digest == item.sha256:
                    os.close(large.side)
                    large.side = -1
                    side_path.unlink()
                    fd, large.fd = large.fd, -1
                    self._publish(item, fd, large.partial)
                    return
                elif large.resumed:
                    keep, again = False, True  # the resumed bytes were wrong: start afresh
                else:
                    keep = False
                    error = IntegrityError(item.label, item.sha256, digest)
            elif isinstance(error, (IntegrityError, ObjectNotFoundError)):
                keep = False
        finally:
            if large.fd >= 0:
                os.close(large.fd)
            if large.side >= 0:
                os.close(large.side)
            if not keep:
                for path in (large.partial, side_path):
                    with contextlib.suppress(FileNotFoundError):
                        path.unlink()
        if again:
            self._settle(item, None, again=True)
        else:
            self._settle(item, error, done=error is None)


def _open_partial(path: Path) -> int:
    """Open (or create) a partial file for reading and writing.

    A verified partial already has its final (read-only) mode while it waits for the
    flush; after a crash there, the rerun makes it writable again.
    """
    flags = os.O_RDWR | os.O_CREAT | os.O_CLOEXEC
    try:
        return os.open(path, flags, 0o600)
    except PermissionError:
        os.chmod(path, 0o600)
        return os.open(path, flags, 0o600)
