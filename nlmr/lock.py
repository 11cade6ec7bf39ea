"""The one-writer lock of a mirror: ``nlmr sync`` holds it while it writes.

Mirror roots live on Lustre or NFS, where ``flock`` cannot be trusted: Lustre
mounted without ``-o flock`` answers ENOSYS, and with ``-o localflock`` the call
succeeds for every caller on every node, so it locks nothing
(huggingface/huggingface_hub#2399, #4228). The lock is therefore a directory:

* **Acquire** by ``os.mkdir(path)``, which is atomic on local file systems, NFS
  and Lustre alike, then write an owner record (``owner.json``: host, pid, user,
  purpose, a random token and a heartbeat) into it, atomically.
* **Heartbeat**: a daemon thread rewrites the record every ``heartbeat`` seconds
  and checks, each time, that the directory at ``path`` is still ours (same
  inode, same token). When it is not, the lock was broken or taken over; the
  holder learns it from ``LockOwner.lost`` and from ``on_event``.
* **Release** removes the record and the directory, but only while both are
  still ours, so a holder whose lock was taken over never removes the new
  owner's lock.

Every write to our own lock goes through a file descriptor of the directory we
created, never through ``path``: if someone renames our directory away and
creates theirs, our writes still land in ours.

Stale locks (the holder crashed, was SIGKILLed, or its node went down):

* **Same host** (same host name and pid namespace): the record's pid is checked.
  Not running, a zombie, or running but started at another time than recorded
  (the pid was reused), or the host has rebooted since (another boot id): the
  owner is dead for sure, and the lock is taken over automatically.
* **Another host** (or another pid namespace on this host): nlmr cannot look at
  the process. A heartbeat younger than ``stale_after`` means held; an older one
  means probably dead, but a stalled node or a network partition looks the same,
  so nlmr raises :class:`~nlmr.errors.StaleLockError` and leaves the decision to
  the operator (``break_stale=True``, the CLI's ``--break-lock``).
* **No readable record** (a crash between ``mkdir`` and the first record write,
  or a corrupt record): the owner is unknown, so the directory's mtime stands in
  for a heartbeat. Younger than ``stale_after``: held (its creator is most
  likely writing the record right now). Older: taken over automatically. A live
  holder writes its record milliseconds after ``mkdir`` and refreshes it (which
  also touches the directory) every ``heartbeat`` seconds, so a record-less
  directory untouched for ``stale_after`` has no live owner; demanding
  ``--break-lock`` would only make every cron run fail until someone looks.

Takeover must stay correct when several processes find the same stale lock at
once. Each one first writes a marker file into the stale directory (through a
descriptor of the directory it judged, so never into a live one), then renames
the directory to a name derived from the stale owner, ``<path>.stale.<token>``
(``<path>.stale.dir<inode>`` without a record). Exactly one rename succeeds:
the others find the name taken by a non-empty directory (``rename`` never
replaces one) or ``path`` gone. Everyone then goes back to ``mkdir``, which again
admits one. The renamed directories ("tombstones") are what makes a late rename
fail, so they are not removed at once: the next holder removes those older
than ``stale_after``. A racer that stalls for longer than that between judging
and renaming could move a live lock; it checks the inode it moved and moves a
wrong one straight back, and the holder's heartbeat reports any loss.

Clocks: a foreign heartbeat is compared with the local clock, and a record-less
directory's mtime (set by the file server) likewise, so ``stale_after`` must
exceed ``heartbeat`` plus any clock skew between the machines; the default ten
minutes against a 30 s heartbeat leaves room for both.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import errno
import getpass
import json
import os
import secrets
import shutil
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from nlmr.errors import LockHeldError, StaleLockError

#: The owner record inside the lock directory.
RECORD = "owner.json"
#: Lock directories moved aside by a takeover are named ``<lock name><TOMBSTONE><id>``.
TOMBSTONE = ".stale."

_HELD_HINT = (
    "another nlmr process is working on this mirror; "
    "rerun with --wait SECONDS to wait for it to finish"
)


@dataclass(frozen=True)
class LockOwner:
    """Who holds a lock: the owner record kept inside the lock directory.

    Attributes:
        host: host name of the holder.
        pid: process id of the holder on ``host``.
        user: login name (or uid) of the holder.
        started: when the lock was acquired (seconds since the epoch).
        heartbeat: the holder's last sign of life (seconds since the epoch).
        purpose: what the holder is doing, e.g. ``sync /mirror``.
        token: random, unique per acquisition; tells one holder from the next.
        boot_id: the host's boot id (``/proc/sys/kernel/random/boot_id``): a
            different one on the same host means the host rebooted since.
        pid_ns: the holder's pid namespace; pids are comparable only within one.
        proc_start: the holder's start time in clock ticks after boot
            (``/proc/<pid>/stat``), to tell it from a later process reusing the pid.
    """

    host: str
    pid: int
    user: str
    started: float
    heartbeat: float
    purpose: str
    token: str
    boot_id: str = ""
    pid_ns: str = ""
    proc_start: int | None = None
    # Set when the heartbeat or the release finds that the lock is no longer
    # ours. An Event because the heartbeat thread sets it and the holder reads it.
    _lost: threading.Event = field(
        default_factory=threading.Event, init=False, repr=False, compare=False
    )

    @property
    def lost(self) -> bool:
        """True once the lock was found broken, taken over or removed while held."""
        return self._lost.is_set()

    @classmethod
    def current(cls, purpose: str, *, token: str | None = None) -> LockOwner:
        """A record describing this process, as it would hold a lock now.

        Args:
            purpose: what the lock is held for.
            token: the acquisition token; a fresh random one when omitted.

        Returns:
            The record, with ``started`` and ``heartbeat`` set to now.
        """
        now = time.time()
        pid = os.getpid()
        return cls(
            host=socket.gethostname(),
            pid=pid,
            user=_user(),
            started=now,
            heartbeat=now,
            purpose=purpose,
            token=token or secrets.token_hex(16),
            boot_id=_boot_id(),
            pid_ns=_pid_ns(),
            proc_start=_proc_stat(pid)[1],
        )

    def to_dict(self) -> dict[str, Any]:
        """The record as stored in ``owner.json``."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.init}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LockOwner:
        """Read a record; unknown keys are ignored (a newer nlmr may add some).

        Args:
            data: the parsed ``owner.json``.

        Returns:
            The record.

        Raises:
            ValueError: a required field is missing or has the wrong type.
        """
        if not isinstance(data, Mapping):
            raise ValueError("owner record is not a JSON object")

        def get(name: str, kind: type | tuple[type, ...], default: Any = ...) -> Any:
            if name not in data:
                if default is ...:
                    raise ValueError(f"owner record has no {name!r}")
                return default
            value = data[name]
            if isinstance(value, bool) or not isinstance(value, kind):
                raise ValueError(f"owner record field {name!r} has the wrong type")
            return value

        heartbeat = float(get("heartbeat", (int, float)))
        token = get("token", str)
        if not token:
            raise ValueError("owner record has an empty token")
        proc_start = data.get("proc_start")
        return cls(
            host=get("host", str),
            pid=get("pid", int),
            user=get("user", str, ""),
            started=float(get("started", (int, float), heartbeat)),
            heartbeat=heartbeat,
            purpose=get("purpose", str, ""),
            token=token,
            boot_id=get("boot_id", str, ""),
            pid_ns=get("pid_ns", str, ""),
            proc_start=proc_start if type(proc_start) is int else None,
        )

    def describe(self, *, now: float | None = None) -> str:
        """One line for error messages and logs.

        Args:
            now: the time to measure the heartbeat's age against (default: now).

        Returns:
            E.g. ``pid 123 on host login-1 (user ops, sync /mirror), started
            2026-05-01T03:00:00+02:00, last heartbeat 12 s ago``.
        """
        now = time.time() if now is None else now
        who = f"user {self.user}" if self.user else "unknown user"
        if self.purpose:
            who += f", {self.purpose}"
        started = datetime.datetime.fromtimestamp(self.started).astimezone()
        return (
            f"pid {self.pid} on host {self.host} ({who}), "
            f"started {started.isoformat(timespec='seconds')}, "
            f"last heartbeat {_age(now - self.heartbeat)} ago"
        )


@contextlib.contextmanager
def hold(
    path: str | os.PathLike[str],
    *,
    purpose: str,
    wait: float = 0.0,
    heartbeat: float = 30.0,
    stale_after: float = 600.0,
    break_stale: bool = False,
    on_event: Callable[[str], None] | None = None,
    poll: float = 1.0,
) -> Iterator[LockOwner]:
    """Hold the lock directory ``path`` for the duration of the ``with`` block.

    Args:
        path: the lock directory; its parents are created when missing.
        purpose: what the lock is held for; shown to whoever finds it held.
        wait: how long to wait for a held lock, in seconds (0: fail at once;
            ``math.inf``: wait indefinitely).
        heartbeat: seconds between refreshes of the owner record.
        stale_after: seconds without a heartbeat after which a lock held from
            another host (or a record-less lock directory) counts as stale.
        break_stale: take over a stale lock of another host (``--break-lock``);
            a lock with a fresh heartbeat or a live local owner is never broken.
        on_event: receives one-line reports: waiting, takeovers, a lost lock, a
            failed heartbeat. Called from the heartbeat thread too.
        poll: seconds between attempts while waiting.

    Yields:
        This process's owner record; check its ``lost`` before irreversible
        steps (publishing) to stop when the lock has been taken over.

    Raises:
        LockHeldError: the lock is held, and still held after ``wait`` seconds.
        StaleLockError: the lock is held from another host that has stopped
            heartbeating, and ``break_stale`` is false. Raised without waiting:
            waiting does not revive a dead owner.
        ValueError: ``heartbeat``, ``stale_after`` or ``poll`` is out of range.
        OSError: the lock directory cannot be created or read.
    """
    if heartbeat <= 0 or poll <= 0:
        raise ValueError("heartbeat and poll must be positive")
    if stale_after <= heartbeat:
        # otherwise a live holder would look stale between two heartbeats
        raise ValueError("stale_after must be longer than heartbeat")
    lock = Path(path)
    emit = on_event or _ignore
    me, dir_fd, ident = _acquire(lock, purpose, wait, stale_after, break_stale, emit, poll)
    beat = _Heartbeat(lock, me, dir_fd, ident, heartbeat, emit)
    beat.start()
    try:
        yield me
    finally:
        beat.stop()
        try:
            _release(lock, me, dir_fd, ident, emit)
        finally:
            os.close(dir_fd)


def _ignore(message: str) -> None:
    pass


class _Seen(NamedTuple):
    """A lock directory as found: its identity, its mtime and its record (if readable)."""

    ident: tuple[int, int]
    mtime: float
    owner: LockOwner | None


class _Verdict(NamedTuple):
    kind: str  # "held", "dead" (take over), "stale" (take over only when told), "abandoned"
    reason: str


def _acquire(
    lock: Path,
    purpose: str,
    wait: float,
    stale_after: float,
    break_stale: bool,
    emit: Callable[[str], None],
    poll: float,
) -> tuple[LockOwner, int, tuple[int, int]]:
    lock.parent.mkdir(parents=True, exist_ok=True)
    here = LockOwner.current(purpose)
    deadline = time.monotonic() + max(wait, 0.0)
    announced = False
    while True:
        try:
            os.mkdir(lock)
        except FileExistsError:
            pass
        else:
            got = _claim(lock, here)
            if got is not None:
                _sweep_tombstones(lock, stale_after)
                return got
            continue  # our fresh directory was moved away before we owned it: start over

        seen = _inspect(lock)
        if seen is None:
            continue  # released between our mkdir and our look: try again at once
        now = time.time()
        verdict = _judge(seen, here, now, stale_after)
        held_by = _describe_seen(seen, now)
        if verdict.kind == "dead" or verdict.kind == "abandoned":
            if _take_over(lock, seen, here):
                emit(f"took over a stale lock at {lock} left by {held_by} ({verdict.reason})")
            continue
        if verdict.kind == "stale":
            assert seen.owner is not None
            if break_stale:
                if _take_over(lock, seen, here):
                    emit(f"broke the lock at {lock} held by {held_by} ({verdict.reason})")
                continue
            host = seen.owner.host
            unseen = (
                "its pid namespace (a container?) is not this process's"
                if host == here.host
                else f"nlmr cannot check a process on {host} from {here.host}"
            )
            raise StaleLockError(
                str(lock),
                f"{lock} is locked by {held_by}, which looks stale ({verdict.reason}); {unseen}",
                owner=seen.owner,
                hint=(
                    f"make sure no nlmr process is running on {host} (ps -p {seen.owner.pid} "
                    "there), then rerun with --break-lock"
                ),
            )
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            waited = f" after waiting {wait:g} s" if wait > 0 else ""
            raise LockHeldError(
                str(lock),
                f"{lock} is locked by {held_by}{waited}",
                owner=seen.owner,
                hint=_HELD_HINT,
            )
        if not announced:
            emit(f"waiting for the lock at {lock}, held by {held_by}")
            announced = True
        time.sleep(min(poll, remaining))


def _claim(lock: Path, here: LockOwner) -> tuple[LockOwner, int, tuple[int, int]] | None:
    """Make the directory we just created ours: open it, write our record.

    Returns None when the directory disappeared or was replaced before we could;
    the caller then tries again.
    """
    try:
        dir_fd = _open_dir(lock)
    except FileNotFoundError:
        return None
    st = os.fstat(dir_fd)
    ident = (st.st_dev, st.st_ino)
    try:
        now = time.time()
        me = dataclasses.replace(here, started=now, heartbeat=now)
        _write_json(dir_fd, RECORD, me.to_dict())
        if _ident(lock) != ident:
            # Someone moved it while it had no record (only possible with a clock
            # skew beyond stale_after); it is theirs to clean up, not ours.
            os.close(dir_fd)
            return None
    except FileNotFoundError:
        os.close(dir_fd)  # removed under us (a record-less directory can be taken over)
        return None
    except BaseException:
        # A disk-full or interrupted first write: do not leave a record-less
        # directory that blocks everyone for stale_after.
        with contextlib.suppress(OSError):
            _empty(dir_fd)
            if _ident(lock) == ident:
                os.rmdir(lock)
        os.close(dir_fd)
        raise
    return me, dir_fd, ident


def _judge(seen: _Seen, here: LockOwner, now: float, stale_after: float) -> _Verdict:
    owner = seen.owner
    if owner is None:
        age = now - seen.mtime
        if age > stale_after:
            return _Verdict("abandoned", f"no owner record, untouched for {_age(age)}")
        return _Verdict("held", "")
    heartbeat_age = now - owner.heartbeat
    if owner.host == here.host:
        if owner.boot_id and here.boot_id and owner.boot_id != here.boot_id:
            return _Verdict("dead", "the host has rebooted since")
        # In another pid namespace (a container sharing the host name) the pid
        # means nothing here: fall through to the heartbeat, as for another host.
        if not (owner.pid_ns and here.pid_ns and owner.pid_ns != here.pid_ns):
            dead = _dead_reason(owner)
            return _Verdict("dead", dead) if dead else _Verdict("held", "")
    if heartbeat_age > stale_after:
        return _Verdict("stale", f"no heartbeat for {_age(heartbeat_age)}")
    return _Verdict("held", "")


def _dead_reason(owner: LockOwner) -> str:
    """Why the local process of ``owner`` is certainly gone; empty when it may be alive."""
    try:
        os.kill(owner.pid, 0)
    except ProcessLookupError:
        return "not running"
    except PermissionError:
        pass  # it exists, under another user
    state, start = _proc_stat(owner.pid)
    if state == "Z":
        return "not running (a zombie)"
    if owner.proc_start is not None and start is not None and start != owner.proc_start:
        return f"not running; pid {owner.pid} now belongs to another process"
    return ""


def _take_over(lock: Path, seen: _Seen, here: LockOwner) -> bool:
    """Move the stale lock directory ``seen`` aside; True when this process did it."""
    try:
        fd = _open_dir(lock)
    except FileNotFoundError:
        return False
    try:
        st = os.fstat(fd)
        if (st.st_dev, st.st_ino) != seen.ident:
            return False  # replaced since we judged it: judge again
        # The marker makes the directory non-empty before it is renamed, so its
        # tombstone name can never be replaced by a later rename (rename replaces
        # only empty directories). Written through fd: into the judged directory.
        marker = {"by": here.to_dict(), "at": time.time()}
        _write_json(fd, f"taken-over.{here.token}.json", marker)
    except FileNotFoundError:
        return False
    finally:
        os.close(fd)
    name = seen.owner.token if seen.owner is not None else f"dir{seen.ident[1]}"
    tomb = lock.with_name(f"{lock.name}{TOMBSTONE}{name}")
    try:
        os.rename(lock, tomb)
    except FileNotFoundError:
        return False  # someone else moved it first
    except OSError as exc:
        if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST):
            raise
        if _ident(lock) != seen.ident:
            return False  # the tombstone is theirs: someone else moved it first
        # The stale directory is still here, so the name is taken by something
        # that is not its tombstone; looping would never end.
        raise StaleLockError(
            str(lock),
            f"cannot move the stale lock {lock} aside: {tomb} is in the way",
            owner=seen.owner,
            hint=f"remove {tomb} and rerun",
        ) from exc
    if _ident(tomb) != seen.ident:
        # Only after a stall longer than stale_after (the tombstone was swept):
        # we moved a live lock. Put it back.
        with contextlib.suppress(OSError):
            os.rename(tomb, lock)
        return False
    return True


def _sweep_tombstones(lock: Path, older_than: float) -> None:
    """Remove the directories earlier takeovers moved aside, once no racer can need them."""
    prefix = f"{lock.name}{TOMBSTONE}"
    now = time.time()
    with contextlib.suppress(OSError):
        for entry in os.scandir(lock.parent):
            if entry.name.startswith(prefix):
                with contextlib.suppress(OSError):
                    if now - entry.stat(follow_symlinks=False).st_mtime > older_than:
                        shutil.rmtree(entry.path, ignore_errors=True)


class _Heartbeat:
    """Refreshes our record; stops and reports when the lock is no longer ours."""

    def __init__(
        self,
        lock: Path,
        me: LockOwner,
        dir_fd: int,
        ident: tuple[int, int],
        interval: float,
        emit: Callable[[str], None],
    ) -> None:
        self._lock = lock
        self._me = me
        self._fd = dir_fd
        self._ident = ident
        self._interval = interval
        self._emit = emit
        self._stopping = threading.Event()
        # a daemon: a holder that dies (or is killed) must not be kept alive by it
        self._thread = threading.Thread(
            target=self._run, name=f"nlmr-lock-heartbeat {lock}", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join()  # never release while a refresh is being written

    def _run(self) -> None:
        while not self._stopping.wait(self._interval):
            try:
                seen = _inspect(self._lock)
                if not _is_ours(seen, self._ident, self._me):
                    self._me._lost.set()
                    self._emit(f"lost the lock at {self._lock}: {_successor(seen)}")
                    return
                record = dataclasses.replace(self._me, heartbeat=time.time()).to_dict()
                _write_json(self._fd, RECORD, record)
            except OSError as exc:
                # A file server hiccup: keep the lock and try again next time;
                # if it lasts beyond stale_after others may call the lock stale.
                self._emit(f"could not refresh the lock heartbeat at {self._lock}: {exc}")


def _release(
    lock: Path, me: LockOwner, dir_fd: int, ident: tuple[int, int], emit: Callable[[str], None]
) -> None:
    seen = _inspect(lock)
    if not _is_ours(seen, ident, me):
        me._lost.set()
        emit(f"not releasing the lock at {lock}: {_successor(seen)}")
        return
    # Empty our own directory through its descriptor (never someone else's),
    # then remove it by name if the name still points at it.
    _empty(dir_fd)
    if _ident(lock) == ident:
        try:
            os.rmdir(lock)
        except OSError as exc:
            emit(f"could not remove the lock directory {lock}: {exc}")


def _is_ours(seen: _Seen | None, ident: tuple[int, int], me: LockOwner) -> bool:
    return (
        seen is not None
        and seen.ident == ident
        and seen.owner is not None
        and seen.owner.token == me.token
    )


def _successor(seen: _Seen | None) -> str:
    if seen is None:
        return "the lock directory was removed"
    return f"it is now held by {_describe_seen(seen, time.time())}"


def _describe_seen(seen: _Seen, now: float) -> str:
    if seen.owner is not None:
        return seen.owner.describe(now=now)
    return (
        "an unknown process (the lock directory has no owner record; "
        f"last changed {_age(now - seen.mtime)} ago)"
    )


# -- file system helpers: everything below touches the disk ------------------


def _open_dir(path: Path) -> int:
    # O_NOFOLLOW: a symlink (or a file) where the lock should be is an error to
    # report, not a lock to judge; a dangling one would otherwise loop forever.
    return os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)


def _ident(path: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return st.st_dev, st.st_ino


def _inspect(lock: Path) -> _Seen | None:
    """The lock directory and its record, read through one descriptor so they agree.

    Returns None when there is no lock directory.
    """
    try:
        fd = _open_dir(lock)
    except FileNotFoundError:
        return None
    try:
        st = os.fstat(fd)
        return _Seen((st.st_dev, st.st_ino), st.st_mtime, _read_record(fd))
    finally:
        os.close(fd)


def _read_record(dir_fd: int) -> LockOwner | None:
    try:
        fd = os.open(RECORD, os.O_RDONLY | os.O_CLOEXEC, dir_fd=dir_fd)
    except FileNotFoundError:
        return None
    with os.fdopen(fd, "rb") as fh:
        raw = fh.read()
    try:
        return LockOwner.from_dict(json.loads(raw))
    except ValueError:  # also JSONDecodeError and UnicodeDecodeError
        return None  # written by something else: judged like a missing record


def _write_json(dir_fd: int, name: str, data: Mapping[str, Any]) -> None:
    """Write ``name`` inside the directory ``dir_fd`` so readers never see half of it."""
    payload = (json.dumps(data, indent=2) + "\n").encode("utf-8")
    tmp = f".{name}.{secrets.token_hex(6)}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644, dir_fd=dir_fd)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(payload)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp, dir_fd=dir_fd)
        raise
    with contextlib.suppress(OSError):
        os.fsync(dir_fd)


def _empty(dir_fd: int) -> None:
    """Remove the files in the (flat) directory ``dir_fd``."""
    # List through a fresh descriptor of the same directory: btrfs fixes a directory's
    # entries for readdir when a descriptor first reads it, so listing through the old one
    # (or a dup of it, even rewound) misses the owner record written since.
    fresh = os.open(".", os.O_RDONLY | os.O_DIRECTORY, dir_fd=dir_fd)
    try:
        names = os.listdir(fresh)
    finally:
        os.close(fresh)
    for name in names:
        # what cannot go (a stray subdirectory) makes the rmdir fail, which is reported
        with contextlib.suppress(OSError):
            os.unlink(name, dir_fd=dir_fd)


# -- who and where we are ----------------------------------------------------


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry, e.g. in a container
        return str(os.getuid())


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def _pid_ns() -> str:
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return ""


def _proc_stat(pid: int) -> tuple[str | None, int | None]:
    """State letter and start time (clock ticks after boot) of ``pid``, when /proc tells."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return None, None
    # The command name (field 2) is in parentheses and may contain anything,
    # so split after the last ')': field 3 (state) comes first, field 22 (starttime) 20th.
    fields = raw[raw.rfind(b")") + 2 :].split()
    try:
        return fields[0].decode("ascii", "replace"), int(fields[19])
    except (IndexError, ValueError):
        return None, None


def _age(seconds: float) -> str:
    seconds = max(seconds, 0.0)
    if seconds < 120:
        return f"{int(seconds)} s"
    if seconds < 2 * 3600:
        return f"{int(seconds // 60)} min"
    if seconds < 2 * 86400:
        return f"{int(seconds // 3600)} h"
    return f"{int(seconds // 86400)} d"
