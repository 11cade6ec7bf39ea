"""The one-writer lock, exercised by real processes on a real directory.

Holders run as child processes (``python -c WORKER``) and talk over pipes: a
line ``ACQUIRED <token>`` once they hold the lock, ``EVENT <message>`` for each
report, ``RELEASED`` on the way out; closing their stdin makes them let go.
Nothing waits on the clock except bounded waits for something to happen.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from nlmr.errors import LockHeldError, NlmrError, StaleLockError
from nlmr.lock import RECORD, TOMBSTONE, LockOwner, hold

REPO = Path(__file__).resolve().parent.parent

WORKER = r"""
import json, os, sys, time
from pathlib import Path
from nlmr.errors import LockHeldError
from nlmr.lock import hold

mode, lock, opts = sys.argv[1], Path(sys.argv[2]), json.loads(sys.argv[3])

def say(*parts):
    print(*parts, flush=True)

def event(message):
    say("EVENT", message)

if mode == "hold":  # hold until stdin is closed
    try:
        with hold(lock, purpose="test holder", on_event=event, **opts) as me:
            say("ACQUIRED", me.token)
            sys.stdin.read()
    except LockHeldError as exc:
        say("REFUSED", type(exc).__name__, exc)
    say("RELEASED")
elif mode == "race":  # start when the go file appears; log entry and exit while holding
    log, go = Path(opts.pop("log")), Path(opts.pop("go"))
    while not go.exists():
        time.sleep(0.002)
    with hold(lock, purpose="racer", on_event=event, **opts):
        with log.open("a") as fh:
            fh.write(f"+{os.getpid()}\n")
        time.sleep(0.01)  # widen the window an overlapping holder would show in
        with log.open("a") as fh:
            fh.write(f"-{os.getpid()}\n")
    say("RELEASED")
"""


class Worker:
    """A child process running WORKER, read line by line."""

    def __init__(self, mode: str, lock: Path, **opts: Any) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", WORKER, mode, str(lock), json.dumps(opts)],
            cwd=REPO,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[str] = []

    @property
    def pid(self) -> int:
        return self.proc.pid

    def expect(self, word: str) -> str:
        """Read until a line starting with ``word``; return the rest of it."""
        assert self.proc.stdout is not None
        while line := self.proc.stdout.readline():
            self.lines.append(line.rstrip("\n"))
            if line.startswith(word):
                return line[len(word) :].strip()
        assert self.proc.stderr is not None
        raise AssertionError(
            f"worker ended without {word}: {self.lines}\n{self.proc.stderr.read()}"
        )

    def events(self) -> list[str]:
        return [line[len("EVENT ") :] for line in self.lines if line.startswith("EVENT ")]

    def finish(self) -> None:
        """Close stdin (the holder lets go) and read everything up to its exit."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.close()
        self.lines += self.proc.stdout.read().splitlines()
        assert self.proc.wait(timeout=60) == 0, self.proc.stderr and self.proc.stderr.read()


@pytest.fixture
def spawn() -> Iterator[Callable[..., Worker]]:
    workers: list[Worker] = []

    def start(mode: str, lock: Path, **opts: Any) -> Worker:
        workers.append(Worker(mode, lock, **opts))
        return workers[-1]

    yield start
    for worker in workers:
        if worker.proc.poll() is None:
            worker.proc.kill()
        worker.proc.wait()
        for stream in (worker.proc.stdin, worker.proc.stdout, worker.proc.stderr):
            if stream is not None:
                stream.close()


@pytest.fixture
def lock(tmp_path: Path) -> Path:
    return tmp_path / "mirror" / ".nlmr" / "sync.lock"


class Events:
    """A thread-safe on_event collector (the heartbeat thread reports too)."""

    def __init__(self) -> None:
        self.messages: list[str] = []
        self._changed = threading.Condition()

    def __call__(self, message: str) -> None:
        with self._changed:
            self.messages.append(message)
            self._changed.notify_all()

    def wait_for(self, needle: str, timeout: float = 10.0) -> str:
        with self._changed:
            found = self._changed.wait_for(
                lambda: any(needle in m for m in self.messages), timeout=timeout
            )
        assert found, f"no event with {needle!r} in {self.messages}"
        return next(m for m in self.messages if needle in m)


def record(lock: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((lock / RECORD).read_text())
    return data


def plant(lock: Path, owner: LockOwner) -> None:
    """Leave a lock directory with ``owner``'s record, as a (dead or remote) holder would."""
    lock.mkdir(parents=True, exist_ok=True)
    tmp = lock / f".{RECORD}.planted"
    tmp.write_text(json.dumps(owner.to_dict()))
    os.replace(tmp, lock / RECORD)


def foreign(heartbeat_age: float, **changes: Any) -> LockOwner:
    now = time.time()
    owner = LockOwner(
        host="node-elsewhere",
        pid=4242,
        user="ops",
        started=now - heartbeat_age - 60,
        heartbeat=now - heartbeat_age,
        purpose="sync /mirror",
        token="f" * 32,
    )
    return dataclasses.replace(owner, **changes)


def dead_pid() -> int:
    """The pid of a process that has exited and been reaped."""
    done = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    return int(done.stdout)


def local_dead_owner() -> LockOwner:
    # proc_start=1 also makes the record stale should the pid be reused meanwhile
    return dataclasses.replace(
        LockOwner.current("sync /mirror"), pid=dead_pid(), proc_start=1, token="d" * 32
    )


def tombstones(lock: Path) -> list[Path]:
    return sorted(lock.parent.glob(f"{lock.name}{TOMBSTONE}*"))


# -- contention between live processes ---------------------------------------


def test_second_process_is_refused_naming_the_holder(
    lock: Path, spawn: Callable[..., Worker]
) -> None:
    holder = spawn("hold", lock)
    token = holder.expect("ACQUIRED")

    with pytest.raises(LockHeldError) as info, hold(lock, purpose="second"):
        pytest.fail("acquired a held lock")

    exc = info.value
    assert not isinstance(exc, StaleLockError)
    assert isinstance(exc, NlmrError)
    assert exc.path == str(lock)
    assert exc.owner is not None and exc.owner.token == token
    assert str(lock) in str(exc)
    assert f"pid {holder.pid} on host " in str(exc)
    assert "test holder" in str(exc)
    assert exc.hint is not None and "--wait" in exc.hint
    assert record(lock)["token"] == token  # the refused attempt left the lock alone

    holder.finish()
    assert not lock.exists()


def test_waiting_process_gets_the_lock_after_release(
    lock: Path, spawn: Callable[..., Worker]
) -> None:
    holder = spawn("hold", lock)
    first = holder.expect("ACQUIRED")
    waiter = spawn("hold", lock, wait=60, poll=0.02)
    assert f"held by pid {holder.pid}" in waiter.expect("EVENT waiting for the lock")

    holder.finish()
    second = waiter.expect("ACQUIRED")

    assert second != first
    assert record(lock)["pid"] == waiter.pid
    waiter.finish()
    assert not lock.exists()


def test_waiting_in_vain_names_the_wait(lock: Path, spawn: Callable[..., Worker]) -> None:
    holder = spawn("hold", lock)
    holder.expect("ACQUIRED")
    with (
        pytest.raises(LockHeldError, match=r"after waiting 0\.1 s"),
        hold(lock, purpose="impatient", wait=0.1, poll=0.02),
    ):
        pytest.fail("acquired a held lock")
    holder.finish()


def test_live_local_owner_is_never_taken_over(lock: Path) -> None:
    # this very process, under another token: alive, so held even with break_stale
    plant(lock, dataclasses.replace(LockOwner.current("other thread"), heartbeat=0.0))
    with pytest.raises(LockHeldError) as info, hold(lock, purpose="x", break_stale=True):
        pytest.fail("acquired a held lock")
    assert not isinstance(info.value, StaleLockError)


# -- dead holders on this host -----------------------------------------------


@pytest.mark.parametrize("reaped", [True, False], ids=["reaped", "zombie"])
def test_sigkilled_holder_is_taken_over(
    lock: Path, spawn: Callable[..., Worker], reaped: bool
) -> None:
    holder = spawn("hold", lock)
    old = holder.expect("ACQUIRED")
    holder.proc.send_signal(signal.SIGKILL)
    if reaped:
        holder.proc.wait()
    else:  # wait for it to die but leave it unreaped: a zombie still answers kill(pid, 0)
        os.waitid(os.P_PID, holder.pid, os.WEXITED | os.WNOWAIT)
    assert record(lock)["token"] == old  # it died holding the lock

    events = Events()
    with hold(lock, purpose="next run", on_event=events) as me:
        assert record(lock)["token"] == me.token

    (message,) = events.messages
    assert message.startswith(f"took over a stale lock at {lock} left by pid {holder.pid} ")
    assert "(not running" in message
    assert not lock.exists()
    assert tombstones(lock) == [lock.with_name(f"{lock.name}{TOMBSTONE}{old}")]


def test_reused_pid_counts_as_dead(lock: Path) -> None:
    # our own pid, alive, but recorded with another start time: someone else's pid
    plant(lock, dataclasses.replace(LockOwner.current("old"), proc_start=1, token="e" * 32))
    events = Events()
    with hold(lock, purpose="next", on_event=events):
        pass
    assert "now belongs to another process" in events.messages[0]


def test_reboot_counts_as_dead(lock: Path) -> None:
    plant(lock, dataclasses.replace(LockOwner.current("old"), boot_id="another-boot"))
    events = Events()
    with hold(lock, purpose="next", on_event=events):
        pass
    assert "rebooted" in events.messages[0]


def test_other_pid_namespace_is_judged_by_heartbeat(lock: Path) -> None:
    # same host name, but a container's pid namespace: its pid cannot be checked here
    alien = dataclasses.replace(local_dead_owner(), pid_ns="pid:[1]")
    plant(lock, alien)
    with pytest.raises(LockHeldError) as info, hold(lock, purpose="x"):
        pytest.fail("took over a fresh lock")
    assert not isinstance(info.value, StaleLockError)

    plant(lock, dataclasses.replace(alien, heartbeat=time.time() - 3600))
    with pytest.raises(StaleLockError, match="pid namespace"), hold(lock, purpose="x"):
        pytest.fail("took over without --break-lock")


# -- holders on other hosts ---------------------------------------------------


def test_stale_foreign_lock_needs_break_stale(lock: Path) -> None:
    owner = foreign(heartbeat_age=3 * 3600)
    plant(lock, owner)

    with pytest.raises(StaleLockError) as info, hold(lock, purpose="sync", wait=30):
        pytest.fail("took over without break_stale")
    exc = info.value
    assert isinstance(exc, LockHeldError)
    assert exc.owner == owner
    assert "pid 4242 on host node-elsewhere (user ops, sync /mirror)" in str(exc)
    assert "last heartbeat 3 h ago" in str(exc)
    assert exc.hint is not None and "--break-lock" in exc.hint and "node-elsewhere" in exc.hint
    assert record(lock)["token"] == owner.token

    events = Events()
    with hold(lock, purpose="sync", break_stale=True, on_event=events) as me:
        assert record(lock)["token"] == me.token
    assert events.messages[0].startswith(f"broke the lock at {lock} held by pid 4242 on host ")
    assert not lock.exists()
    (tomb,) = tombstones(lock)
    assert json.loads((tomb / RECORD).read_text())["token"] == owner.token
    assert json.loads((tomb / f"taken-over.{me.token}.json").read_text())["by"]["pid"] == (
        os.getpid()
    )


def test_fresh_foreign_lock_is_held_even_with_break_stale(lock: Path) -> None:
    plant(lock, foreign(heartbeat_age=5))
    with pytest.raises(LockHeldError) as info, hold(lock, purpose="x", break_stale=True):
        pytest.fail("broke a live lock")
    assert not isinstance(info.value, StaleLockError)
    assert "node-elsewhere" in str(info.value)
    assert record(lock)["token"] == "f" * 32


# -- lock directories without a usable record ---------------------------------


@pytest.mark.parametrize("content", [None, "{not json", '{"host": "x"}'])
def test_recordless_lock_directory_is_judged_by_its_mtime(lock: Path, content: str | None) -> None:
    lock.mkdir(parents=True)
    if content is not None:
        (lock / RECORD).write_text(content)

    with pytest.raises(LockHeldError, match="unknown process") as info, hold(lock, purpose="x"):
        pytest.fail("took over a directory just created")
    assert info.value.owner is None

    old = time.time() - 3600
    os.utime(lock, (old, old))
    events = Events()
    with hold(lock, purpose="x", on_event=events) as me:
        assert record(lock)["token"] == me.token
    assert "no owner record" in events.messages[0]
    assert events.messages[0].startswith("took over a stale lock")


# -- release and heartbeat ----------------------------------------------------


def test_release_removes_the_lock_and_parents_are_created(lock: Path) -> None:
    assert not lock.parent.exists()
    with hold(lock, purpose="sync /mirror") as me:
        data = record(lock)
        assert LockOwner.from_dict(data) == me
        assert data["pid"] == os.getpid() and data["purpose"] == "sync /mirror"
        assert not me.lost
    assert not lock.exists()
    assert os.listdir(lock.parent) == []
    with hold(lock, purpose="again"):  # and it can be taken again
        pass


def test_release_after_takeover_keeps_the_new_owners_lock(
    lock: Path, spawn: Callable[..., Worker]
) -> None:
    events = Events()
    with hold(lock, purpose="slow", heartbeat=3600, stale_after=7200, on_event=events) as me:
        # make our own lock look like a stale one from another host (same token)
        plant(lock, dataclasses.replace(me, host="node-elsewhere", heartbeat=0.0))
        successor = spawn("hold", lock, break_stale=True)
        theirs = successor.expect("ACQUIRED")
        assert "broke the lock" in successor.events()[0]
    assert me.lost
    assert f"now held by pid {successor.pid} " in events.wait_for("not releasing the lock")
    assert record(lock)["token"] == theirs  # untouched by our release

    successor.finish()
    assert not lock.exists()
    assert tombstones(lock) == [lock.with_name(f"{lock.name}{TOMBSTONE}{me.token}")]


def test_heartbeat_refreshes_the_record(lock: Path) -> None:
    with hold(lock, purpose="sync", heartbeat=0.02, stale_after=60) as me:
        first = record(lock)
        deadline = time.monotonic() + 10
        while (now := record(lock))["heartbeat"] <= first["heartbeat"]:
            assert time.monotonic() < deadline, "the heartbeat never came"
            time.sleep(0.01)
        assert now["token"] == me.token and now["started"] == me.started
        assert not me.lost


def test_heartbeat_reports_a_lost_lock(lock: Path) -> None:
    events = Events()
    with hold(lock, purpose="sync", heartbeat=0.02, stale_after=60, on_event=events) as me:
        # an operator moves the lock aside and another holder's lock appears
        lock.rename(lock.with_name("moved-away"))
        plant(lock, foreign(heartbeat_age=0))
        message = events.wait_for("lost the lock")
        assert "now held by pid 4242 on host node-elsewhere" in message
        assert me.lost
    assert record(lock)["token"] == "f" * 32
    assert any("not releasing" in m for m in events.messages)


def test_heartbeat_reports_a_removed_lock(lock: Path) -> None:
    events = Events()
    with hold(lock, purpose="sync", heartbeat=0.02, stale_after=60, on_event=events) as me:
        lock.rename(lock.with_name("moved-away"))
        assert "lock directory was removed" in events.wait_for("lost the lock")
        assert me.lost
    assert not lock.exists()


# -- racing for one stale lock -------------------------------------------------


def test_racers_for_one_stale_lock_hold_it_one_at_a_time(
    lock: Path, tmp_path: Path, spawn: Callable[..., Worker]
) -> None:
    plant(lock, local_dead_owner())
    log, go = tmp_path / "log", tmp_path / "go"
    racers = [spawn("race", lock, log=str(log), go=str(go), wait=120, poll=0.005) for _ in range(6)]
    go.touch()
    for racer in racers:
        racer.finish()

    entries = log.read_text().split()
    assert len(entries) == 2 * len(racers)
    for enter, leave in zip(entries[::2], entries[1::2], strict=True):
        assert enter[0] == "+" and leave == "-" + enter[1:], entries  # no overlap
    assert sorted(int(e[1:]) for e in entries[::2]) == sorted(r.pid for r in racers)
    takeovers = [m for r in racers for m in r.events() if m.startswith("took over")]
    assert len(takeovers) == 1, takeovers
    assert not lock.exists()
    assert tombstones(lock) == [lock.with_name(f"{lock.name}{TOMBSTONE}{'d' * 32}")]


# -- housekeeping and values ---------------------------------------------------


def test_old_tombstones_are_swept_by_the_next_holder(lock: Path) -> None:
    old_tomb = lock.with_name(f"{lock.name}{TOMBSTONE}old")
    new_tomb = lock.with_name(f"{lock.name}{TOMBSTONE}new")
    for tomb in (old_tomb, new_tomb):
        tomb.mkdir(parents=True)
        (tomb / RECORD).write_text("{}")
    past = time.time() - 3600
    os.utime(old_tomb, (past, past))
    with hold(lock, purpose="x", heartbeat=1, stale_after=60):
        pass
    assert tombstones(lock) == [new_tomb]


def test_owner_record_round_trip_and_description() -> None:
    owner = LockOwner.current("sync /mirror")
    assert LockOwner.from_dict(json.loads(json.dumps(owner.to_dict()))) == owner
    assert owner.pid == os.getpid() and owner.proc_start is not None
    text = foreign(heartbeat_age=12).describe()
    assert text.startswith("pid 4242 on host node-elsewhere (user ops, sync /mirror), started ")
    assert text.endswith(", last heartbeat 12 s ago")
    with pytest.raises(ValueError, match="token"):
        LockOwner.from_dict({"host": "h", "pid": 1, "heartbeat": 0})
    with pytest.raises(ValueError, match="pid"):
        LockOwner.from_dict({"host": "h", "pid": True, "heartbeat": 0, "token": "t"})


def test_something_else_in_the_way_is_an_error(lock: Path) -> None:
    lock.parent.mkdir(parents=True)
    lock.symlink_to(lock.parent / "nowhere")
    with pytest.raises(NotADirectoryError), hold(lock, purpose="x"):
        pytest.fail("locked through a symlink")


def test_bad_timings_are_refused(lock: Path) -> None:
    with (
        pytest.raises(ValueError, match="stale_after"),
        hold(lock, purpose="x", heartbeat=30, stale_after=30),
    ):
        pass
    assert not lock.exists()


def test_released_on_btrfs(btrfs: Path) -> None:
    """btrfs fixes a directory's readdir view when a descriptor first reads it: the release
    must still find the owner record written after the lock directory was opened."""
    lock = btrfs / "sync.lock"
    events: list[str] = []
    with hold(lock, purpose="test", heartbeat=0.05, on_event=events.append):
        time.sleep(0.2)  # a few heartbeats rewrite the owner record
    assert not lock.exists() and events == []
