"""Progress bars: on a terminal, a bar with bytes/s and ETA; in cron and pipes, nothing."""

from __future__ import annotations

import sys
import threading
from types import TracebackType
from typing import Any


class Progress:
    """A thread-safe byte counter that draws a tqdm bar when ``enabled``.

    Args:
        total: bytes expected.
        desc: label.
        enabled: None means "when standard error is a terminal".
    """

    def __init__(
        self, total: int, desc: str, *, enabled: bool | None = None, position: int = 0
    ) -> None:
        self.total = total
        self.done = 0
        self._lock = threading.Lock()
        show = sys.stderr.isatty() if enabled is None else enabled
        self._bar: Any = None
        if show:
            from tqdm import tqdm

            self._bar = tqdm(
                total=total,
                desc=desc,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                file=sys.stderr,
                leave=False,
                dynamic_ncols=True,
            )

    def update(self, n: int) -> None:
        with self._lock:
            self.done += n
            if self._bar is not None:
                self._bar.update(n)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()

    def __enter__(self) -> Progress:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
