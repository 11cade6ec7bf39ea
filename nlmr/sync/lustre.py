"""The Lustre backend: POSIX publication plus a striping policy.

``lfs setstripe`` on a directory sets the layout of files created in it later
(existing files would need ``lfs migrate``). So each striping rule of the target
gets its own staging directory, striped once per run; a file is downloaded into
the directory of the first rule its size matches and renamed into place, keeping
its layout. Without rules the filesystem's default (often a PFL layout the site
tuned) applies and ``lfs`` is never called. Without ``lfs`` on PATH (a client
without Lustre tools, or not Lustre at all) nlmr warns and carries on.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from nlmr.sync.publisher import Publisher
from nlmr.target import StripeRule


def setstripe_args(rule: StripeRule, directory: Path) -> list[str]:
    """The ``lfs setstripe`` command line for one rule."""
    args = ["lfs", "setstripe", "-c", str(rule.count)]
    if rule.size is not None:
        args += ["-S", str(rule.size)]
    return [*args, str(directory)]


class LustrePublisher(Publisher):
    """POSIX publication with per-size striping of new files."""

    def _rule_index(self, size: int) -> int | None:
        for i, rule in enumerate(self.target.stripes):
            if rule.max_size is None or size <= rule.max_size:
                return i
        return None

    def partial_dir(self, size: int) -> Path:
        i = self._rule_index(size)
        if i is None or not self.target.stripes:
            return super().partial_dir(size)
        return self.staging_root / f"partial-stripe{i}"

    def prepare(self) -> None:
        super().prepare()
        if not self.target.stripes:
            return
        lfs = shutil.which("lfs")
        for i, rule in enumerate(self.target.stripes):
            d = self.staging_root / f"partial-stripe{i}"
            d.mkdir(parents=True, exist_ok=True)
            if lfs is None:
                continue
            args = setstripe_args(rule, d)
            done = subprocess.run(args, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                self.warn(
                    f"`{' '.join(args)}` failed ({done.stderr.strip() or done.returncode}); "
                    "files there get the filesystem's default layout"
                )
        if lfs is None:
            self.warn(
                "lustre striping is configured but `lfs` is not on PATH; "
                "files get the filesystem's default layout"
            )
