"""nlmr sync end to end: objects in a real S3 server (SeaweedFS) → a read-only mirror →
real transformers and datasets, as an unprivileged user, offline; and sync killed with
SIGKILL at random moments."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import CARD, write_dvc_config

from nlmr.add import add
from nlmr.sync.check import check_mirror
from nlmr.sync.engine import sync
from nlmr.target import Selection, default_target

pytestmark = pytest.mark.slow


# Runs as `nobody` with HF_HUB_OFFLINE=1: loads every way a user would and prints a digest
# of the outputs. An audit hook records any attempt to write under the mirror.
LOADER = r"""
import hashlib, json, os, sys
root, mode = sys.argv[1], sys.argv[2]
writes = []
def hook(event, args):
    if event == "open" and args[0] is not None and str(args[0]).startswith(root):
        m = args[1] or "r"
        if isinstance(m, str) and any(c in m for c in "wax+"):
            writes.append(str(args[0]))
        if isinstance(args[2], int) and args[2] & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
            writes.append(str(args[0]))
    elif event in ("os.mkdir", "os.rename", "os.replace", "os.remove", "os.symlink", "os.chmod"):
        if str(args[0]).startswith(root):
            writes.append(f"{event} {args[0]}")
sys.addaudithook(hook)
import torch
from transformers import AutoModelForMaskedLM, AutoTokenizer

def digest(model_ref, **kw):
    tok = AutoTokenizer.from_pretrained(model_ref, **kw)
    model = AutoModelForMaskedLM.from_pretrained(model_ref, **kw)
    ids = tok("w1 w2 w3", return_tensors="pt")
    with torch.no_grad():
        logits = model(**ids).logits
    return [ids["input_ids"].tolist(), hashlib.sha256(logits.numpy().tobytes()).hexdigest()]

out = {}
if mode == "source":
    out["source"] = digest(sys.argv[3])
else:
    sha = sys.argv[3]
    out["plain default"] = digest(f"{root}/models/acme/tiny-bert")
    out["plain pinned"] = digest(f"{root}/models/acme/tiny-bert@v1.0")
    out["hub default"] = digest("acme/tiny-bert")
    out["hub branch"] = digest("acme/tiny-bert", revision="main")
    out["hub tag"] = digest("acme/tiny-bert", revision="v1.0")
    out["hub commit"] = digest("acme/tiny-bert", revision=sha)
    from huggingface_hub import hf_hub_download, snapshot_download
    for rev in (None, "main", "v1.0", sha):
        p = hf_hub_download("acme/tiny-bert", "config.json", revision=rev)
        assert os.path.isfile(p), p
        d = snapshot_download("acme/tiny-bert", revision=rev)
        assert os.path.isfile(os.path.join(d, "model.safetensors")), d
    from datasets import load_dataset
    ds = load_dataset(f"{root}/datasets/acme/corpus", "nb", split="train")
    out["dataset"] = sorted(ds["text"])
out["writes"] = writes
print(json.dumps(out))
"""


@pytest.fixture
def shared_tmp() -> Iterator[Path]:
    """A directory an unprivileged user can traverse (pytest's tmp_path is root-only)."""
    d = Path(tempfile.mkdtemp(prefix="nlmr-e2e-", dir="/tmp"))
    os.chmod(d, 0o755)
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


def _as_nobody(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            "runuser",
            "-u",
            "nobody",
            "--",
            "env",
            "-i",
            *[f"{k}={v}" for k, v in env.items()],
            *args,
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )


def test_synced_mirror_loads_read_only_offline_as_unprivileged_user(
    tmp_path: Path, shared_tmp: Path, s3: tuple[Any, str], tiny_model: tuple[Path, Path]
) -> None:
    if shutil.which("runuser") is None:
        pytest.skip("runuser is needed to load as an unprivileged user")
    server, bucket = s3
    reg = tmp_path / "registry"
    (reg / "models").mkdir(parents=True)
    (reg / "datasets").mkdir()
    write_dvc_config(reg, f"s3://{bucket}/store", server.endpoint)
    model, _ = tiny_model
    main = add(str(model), "acme/tiny-bert", registry=reg, card_fields=CARD, progress=False)
    pinned_src = tmp_path / "pinned"
    shutil.copytree(model, pinned_src)
    (pinned_src / "NOTES.md").write_text("the v1.0 release\n")  # other files: another revision
    pinned = add(str(pinned_src), "acme/tiny-bert", registry=reg, revision="v1.0", progress=False)
    corpus = tmp_path / "corpus"
    (corpus / "nb").mkdir(parents=True)
    (corpus / "nb/train.jsonl").write_text('{"text": "hei"}\n{"text": "verda"}\n')
    (corpus / "README.md").write_text(
        "---\nlicense: cc-by-4.0\nlanguage: [nb]\nconfigs:\n- config_name: nb\n"
        "  data_files: nb/*.jsonl\n---\n# Corpus\n\nTiny.\n"
    )
    add(
        str(corpus),
        "acme/corpus",
        registry=reg,
        progress=False,
        card_fields={"creators": [{"name": "C"}], "maintainers": ["m"]},
    )

    root = shared_tmp / "mirror"
    from dataclasses import replace

    target = replace(default_target(root), select=Selection(revisions="all"))
    report = sync(target, registry=reg, progress=False)
    assert report.ok, report.to_dict()
    assert sorted(report.published) == [
        "acme/corpus@main",
        "acme/tiny-bert@main",
        "acme/tiny-bert@v1.0",
    ]
    assert check_mirror(root, deep=True).ok
    # safetensors writes 0600; the mirror must not
    assert os.stat(root / "models/acme/tiny-bert/model.safetensors").st_mode & 0o777 == 0o444

    home = shared_tmp / "home"
    home.mkdir()
    shutil.chown(home, "nobody")
    env = {
        "HOME": str(home),
        "PATH": "/usr/bin:/bin",
        "HF_HUB_OFFLINE": "1",
        "HF_HUB_CACHE": str(root / "hub"),
        "HF_HOME": str(home / "hf"),
        "HF_DATASETS_CACHE": str(home / "datasets"),
        "TRANSFORMERS_VERBOSITY": "error",
    }
    script = shared_tmp / "loader.py"
    script.write_text(LOADER)
    done = _as_nobody([sys.executable, str(script), str(root), "mirror", main.revision_id], env)
    assert done.returncode == 0, done.stderr[-3000:]
    got = json.loads(done.stdout.strip().splitlines()[-1])
    assert got["writes"] == []
    readable = shared_tmp / "source"  # the test's own tmp_path is root-only
    shutil.copytree(model, readable)
    for p in [readable, *readable.iterdir()]:
        os.chmod(p, 0o755 if p.is_dir() else 0o644)
    source = _as_nobody([sys.executable, str(script), str(root), "source", str(readable)], env)
    assert source.returncode == 0, source.stderr[-3000:]
    expected = json.loads(source.stdout.strip().splitlines()[-1])["source"]
    for way in (
        "plain default",
        "plain pinned",
        "hub default",
        "hub branch",
        "hub tag",
        "hub commit",
    ):
        assert got[way] == expected, way  # same token ids, bit-identical logits
    assert got["dataset"] == ["hei", "verda"]
    assert pinned.revision_id != main.revision_id
    # nothing in the mirror is writable by that user
    probe = _as_nobody(
        ["/bin/sh", "-c", f"touch {root}/models/acme/tiny-bert/x || exit 0; exit 1"], env
    )
    assert probe.returncode == 0


SYNC_SCRIPT = """
import sys
from nlmr.sync.engine import sync
from nlmr.target import default_target
report = sync(default_target(sys.argv[1]), registry=sys.argv[2], progress=False, jobs=2)
sys.exit(report.exit_code)
"""


def _big_registry(tmp_path: Path) -> Path:
    """Six models of 3 MB and 40 small files each in a local store: a sync takes seconds."""
    reg = tmp_path / "registry"
    (reg / "models").mkdir(parents=True)
    (reg / "datasets").mkdir()
    store = tmp_path / "store"
    write_dvc_config(reg, str(store))
    st = b"\x08\x00\x00\x00\x00\x00\x00\x00{}      "
    rng = random.Random(4)
    for m in range(6):
        src = tmp_path / f"m{m}"
        src.mkdir()
        (src / "config.json").write_text(json.dumps({"m": m}))
        (src / "model.safetensors").write_bytes(st + rng.randbytes(3_000_000))
        for i in range(40):
            (src / f"extra/f{i}.txt").parent.mkdir(exist_ok=True)
            (src / f"extra/f{i}.txt").write_bytes(rng.randbytes(2000))
        add(str(src), f"acme/m{m}", registry=reg, card_fields=CARD, progress=False)
    return reg


def test_sync_killed_at_random_moments_leaves_a_valid_tree(tmp_path: Path) -> None:
    reg = _big_registry(tmp_path)
    rng = random.Random(7)
    root = tmp_path / "mirror"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    # how long a whole sync takes here (a scratch root), so the kills land inside one
    t0 = time.monotonic()
    subprocess.run(
        [sys.executable, "-c", SYNC_SCRIPT, str(tmp_path / "scratch"), str(reg)],
        env=env,
        check=True,
        capture_output=True,
    )
    whole = time.monotonic() - t0
    kills = 0
    for attempt in range(12):
        proc = subprocess.Popen(
            [sys.executable, "-c", SYNC_SCRIPT, str(root), str(reg)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        time.sleep(rng.uniform(0.1, 0.6) * whole)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait()
        if root.exists():
            result = check_mirror(root)
            assert result.ok, (attempt, result.problems)
        if proc.returncode == 0:
            break
    assert kills >= 1  # the loop really interrupted syncs
    final = subprocess.run(
        [sys.executable, "-c", SYNC_SCRIPT, str(root), str(reg)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert final.returncode == 0, final.stderr
    full = check_mirror(root, deep=True)
    assert full.ok and full.revisions == 6, full.problems
    assert not list((root / ".nlmr/staging").glob("build-*"))


def test_concurrent_syncs_one_writer_at_a_time(tmp_path: Path) -> None:
    reg = _big_registry(tmp_path)
    root = tmp_path / "mirror"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}

    def start(*extra: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "nlmr",
                "sync",
                "--root",
                str(root),
                "--registry",
                str(reg),
                "--json",
                *extra,
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    # without --wait: the second exits 1 naming the holder, the first completes
    first = start()
    while not (root / ".nlmr/lock").exists() and first.poll() is None:
        time.sleep(0.01)
    second = start()
    _, err2 = second.communicate(timeout=120)
    out1, err1 = first.communicate(timeout=120)
    assert first.returncode == 0, err1
    assert second.returncode == 1 and "pid" in err2 and "--wait" in err2, err2
    assert "Traceback" not in err2
    assert len(json.loads(out1)["published"]) == 6
    # with --wait: both succeed, one after the other; the second finds nothing to do
    shutil.rmtree(root)
    a, b = start("--wait", "120"), start("--wait", "120")
    outs = [json.loads(p.communicate(timeout=300)[0]) for p in (a, b)]
    assert a.returncode == 0 and b.returncode == 0
    assert sorted(len(o["published"]) for o in outs) == [0, 6]
    assert check_mirror(root, deep=True).ok
