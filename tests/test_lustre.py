"""The Lustre publisher's `lfs setstripe` calls, against the recording stand-in for `lfs`
(tests/standins/lfs). Lustre itself cannot be installed here: only the command lines and
the directories are checked, never a layout."""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path

import pytest
from conftest import REPO

from nlmr.sync.lustre import LustrePublisher
from nlmr.target import StripeRule, Target, default_target

STANDINS = REPO / "tests" / "standins"
MiB = 1024 * 1024


def _calls(log: Path) -> list[list[str]]:
    if not log.exists():
        return []
    return [json.loads(line)["argv"] for line in log.read_text().splitlines()]


@pytest.mark.parametrize("lfs", ["present", "failing", "absent"])
def test_setstripe_once_per_rule_on_its_staging_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, lfs: str
) -> None:
    log = tmp_path / "standin.jsonl"
    monkeypatch.setenv("NLMR_STANDIN_LOG", str(log))
    if lfs == "absent":
        monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    else:
        monkeypatch.setenv("PATH", f"{STANDINS}{os.pathsep}{os.environ['PATH']}")
    if lfs == "failing":
        monkeypatch.setenv("LFS_STANDIN_FAIL", "1")
    rules = (
        StripeRule(count=1, max_size=MiB),
        StripeRule(count=4, max_size=1024 * MiB, size=4 * MiB),
        StripeRule(count=-1, size=64 * MiB),
    )
    target: Target = replace(default_target(tmp_path / "mirror"), backend="lustre", stripes=rules)
    warnings: list[str] = []
    pub = LustrePublisher(target, warnings.append)
    pub.prepare_root()
    pub.prepare()
    staging = pub.staging_root
    expected = [
        ["lfs", "setstripe", "-c", "1", str(staging / "partial-stripe0")],
        ["lfs", "setstripe", "-c", "4", "-S", str(4 * MiB), str(staging / "partial-stripe1")],
        ["lfs", "setstripe", "-c", "-1", "-S", str(64 * MiB), str(staging / "partial-stripe2")],
    ]
    assert _calls(log) == ([] if lfs == "absent" else expected)
    for i in range(3):
        assert (staging / f"partial-stripe{i}").is_dir()
    # a file goes to the directory of the first rule its size fits
    assert pub.partial_dir(MiB) == staging / "partial-stripe0"
    assert pub.partial_dir(MiB + 1) == staging / "partial-stripe1"
    assert pub.partial_dir(10 * 1024 * MiB) == staging / "partial-stripe2"
    if lfs == "present":
        assert warnings == []
    elif lfs == "failing":
        assert len(warnings) == 3 and all("filesystem's default layout" in w for w in warnings)
    else:
        assert warnings == [
            "lustre striping is configured but `lfs` is not on PATH; "
            "files get the filesystem's default layout"
        ]
    # without rules the site's default layout applies and lfs is never called
    log.unlink(missing_ok=True)
    plain = LustrePublisher(replace(target, stripes=()), warnings.append)
    plain.prepare()
    assert _calls(log) == [] and plain.partial_dir(MiB) == staging / "partial"
