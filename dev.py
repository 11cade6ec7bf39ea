#!/usr/bin/env python3
"""Set up and run nlmr from a fresh clone with nothing but Python >= 3.10.

    python3 dev.py demo     # the main job on the embedded default registry
    python3 dev.py test     # the whole test suite
    python3 dev.py check    # ruff + mypy + the test suite (what CI should stay green on)
    python3 dev.py docs     # regenerate the generated pages in docs/

Each command creates (or reuses) ./.venv and installs what it needs into it.
Only the standard library is used here, on purpose.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = Path(os.environ.get("NLMR_VENV", ROOT / ".venv"))
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PY = BIN / "python"


def _run(*cmd: str | os.PathLike[str], env: dict[str, str] | None = None) -> None:
    print("+", " ".join(str(c) for c in cmd), flush=True)
    result = subprocess.run([str(c) for c in cmd], cwd=ROOT, env=env)
    if result.returncode != 0:
        sys.exit(result.returncode)


def ensure_venv(extras: str) -> None:
    """Create .venv if needed and install nlmr[extras] unless already done for these inputs."""
    if not PY.exists():
        print(f"creating virtualenv {VENV}", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    stamp_inputs = (
        b"".join((ROOT / name).read_bytes() for name in ("pyproject.toml", "constraints.txt"))
        + extras.encode()
    )
    digest = hashlib.sha256(stamp_inputs).hexdigest()
    stamp = VENV / f".nlmr-installed-{extras or 'core'}"
    if stamp.exists() and stamp.read_text() == digest:
        return
    target = f".[{extras}]" if extras else "."
    _run(
        PY,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        "-c",
        "constraints.txt",
        "-e",
        target,
    )
    stamp.write_text(digest)


def demo(args: list[str]) -> None:
    ensure_venv("hf")  # the demo builds and loads a tiny real model
    _run(BIN / "nlmr", "demo", *args)


def test(args: list[str]) -> None:
    ensure_venv("dev")
    cmd = [str(PY), "-m", "pytest", "-n", "auto", *args]
    print("+", " ".join(cmd), flush=True)
    code = subprocess.run(cmd, cwd=ROOT).returncode
    sys.exit(code)


def check(args: list[str]) -> None:
    ensure_venv("dev")
    _run(PY, "-m", "ruff", "check", "nlmr", "tests", "bench", "dev.py")
    _run(PY, "-m", "mypy")
    test(args)


def docs(args: list[str]) -> None:
    ensure_venv("dev")
    _run(PY, "-m", "nlmr._docgen", "--write", *args)


COMMANDS = {"demo": demo, "test": test, "check": check, "docs": docs}

if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in COMMANDS:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    COMMANDS[sys.argv[1]](sys.argv[2:])
