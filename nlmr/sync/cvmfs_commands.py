"""Running ``cvmfs_server``, and streaming a tar into ``cvmfs_server ingest``.

Kept apart from :mod:`nlmr.sync.cvmfs` (which decides what to run) so tests can
drive the runner and the tar stream directly, and so a recording stand-in can be
injected in place of :func:`run_command`.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import tarfile
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from nlmr.errors import NlmrError

_CHUNK = 1 << 20

Feed = Callable[[IO[bytes]], None]


@dataclass(frozen=True)
class CommandResult:
    """What one ``cvmfs_server`` call did.

    Attributes:
        args: the command line.
        returncode: its exit status (127: it could not be started).
        output: standard output and standard error, interleaved.
    """

    args: tuple[str, ...]
    returncode: int
    output: str


#: runs a command; the second argument, when given, writes the command's standard input
Runner = Callable[[Sequence[str], Feed | None], CommandResult]


class CvmfsError(NlmrError):
    """A ``cvmfs_server`` command failed, or the repository is not in a usable state.

    Attributes:
        result: the failed command, when one ran.
    """

    def __init__(
        self, message: str, *, result: CommandResult | None = None, hint: str | None = None
    ) -> None:
        self.result = result
        if result is not None and result.output.strip():
            tail = result.output.strip().splitlines()[-5:]
            message = f"{message}\n  " + "\n  ".join(tail)
        super().__init__(message, hint=hint)


def run_command(args: Sequence[str], feed: Feed | None = None) -> CommandResult:
    """Run a command, capturing its output; ``feed`` writes its standard input.

    A command with ``feed`` runs in its own process group. If ``feed`` raises, or this
    process is interrupted while the command runs, the group is terminated before the
    command has read the end of its input, so a streaming ``ingest`` never publishes a
    prefix. The caller then aborts the transaction the command left open. Then the
    exception propagates.

    Args:
        args: the command line.
        feed: writes the command's standard input (which is closed afterwards).

    Returns:
        The exit status and the output. A command that cannot be started gets exit
        status 127.
    """
    try:
        proc = subprocess.Popen(
            list(args),
            stdin=subprocess.PIPE if feed else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=feed is not None,
        )
    except OSError as exc:
        return CommandResult(tuple(args), 127, f"{args[0]}: {exc.strerror}")
    out = proc.stdout
    assert out is not None
    chunks: list[bytes] = []
    reader = threading.Thread(target=lambda: chunks.append(out.read()), daemon=True)
    reader.start()
    try:
        if feed is not None:
            stdin = proc.stdin
            assert stdin is not None
            try:
                feed(stdin)
            except BrokenPipeError:
                pass  # the command stopped reading: its exit status says why
            finally:
                with contextlib.suppress(OSError):
                    stdin.close()
        returncode = proc.wait()
    except BaseException:
        if feed is not None:
            _stop_group(proc)
        else:  # it got the same interrupt (one process group): let it finish its way
            proc.wait()
        reader.join()
        raise
    reader.join()
    return CommandResult(tuple(args), returncode, b"".join(chunks).decode(errors="replace"))


def _stop_group(proc: subprocess.Popen[bytes]) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=10)
            return
        except subprocess.TimeoutExpired:
            continue


def _truncated_member() -> bytes:
    """A tar header that promises bytes that never come. When a tar stream breaks, it
    is written last so that ingest fails on a truncated archive ("Truncated tar
    archive" is fatal in libarchive). Without it, ingest could take the members so far
    as the whole archive: libarchive sees an end of input between members as the end,
    and swissknife retries a damaged header."""
    info = tarfile.TarInfo(".nlmr-incomplete")
    info.size = 1 << 30
    return info.tobuf(format=tarfile.PAX_FORMAT)


def _tar_feed(entries: list[tuple[tarfile.TarInfo, Path | bytes | None]]) -> Feed:
    """Write ``entries`` as a tar stream (headers from tarfile, data copied here, so a
    failure mid-stream knows how far the member got)."""

    def feed(stream: IO[bytes]) -> None:
        current: tarfile.TarInfo | None = None
        written = 0
        try:
            for ti, src in entries:
                current, written = ti, 0
                stream.write(ti.tobuf(format=tarfile.PAX_FORMAT))
                if isinstance(src, bytes):
                    stream.write(src)
                    written = len(src)
                elif src is not None:
                    with open(src, "rb") as fh:
                        while written < ti.size:
                            chunk = fh.read(min(_CHUNK, ti.size - written))
                            if not chunk:
                                raise OSError(f"{src}: shorter than its {ti.size} bytes")
                            stream.write(chunk)
                            written += len(chunk)
                        if fh.read(1):
                            raise OSError(f"{src}: longer than its {ti.size} bytes")
                stream.write(tarfile.NUL * (-ti.size % tarfile.BLOCKSIZE))
                current = None
            stream.write(tarfile.NUL * 2 * tarfile.BLOCKSIZE)
        except BaseException:
            # complete the broken member with zeros so the next header is where a reader
            # looks for it, then promise bytes that never come: the ingest fails
            with contextlib.suppress(OSError, ValueError):
                if current is not None:
                    stream.write(tarfile.NUL * (current.size - written + -current.size % 512))
                stream.write(_truncated_member())
                stream.flush()
            raise

    return feed
