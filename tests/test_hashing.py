"""nlmr.hashing: one pass, four answers, constant memory."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import pytest

from nlmr.hashing import CHUNK, hash_bytes, hash_file


@pytest.mark.parametrize("size", [0, 1, 2047, CHUNK + 3, 4 * CHUNK + 17])
def test_digests_match_reference_tools(tmp_path: Path, size: int) -> None:
    data = (b"nordic" * (size // 6 + 1))[:size]
    path = tmp_path / "f"
    path.write_bytes(data)
    d = hash_file(path)
    assert d.size == size
    assert d.sha256 == hashlib.sha256(data).hexdigest()
    assert d.md5 == hashlib.md5(data).hexdigest()
    git = subprocess.run(
        ["git", "hash-object", str(path)], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert d.git_sha1 == git
    assert hash_bytes(data) == d
