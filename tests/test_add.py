"""nlmr add and check-remote, end to end on a real S3 server (SeaweedFS) with real DVC."""

from __future__ import annotations

import filecmp
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import CARD, REPO, write_dvc_config

from nlmr.add import add
from nlmr.checkremote import check_remote
from nlmr.errors import UsageError
from nlmr.validate import validate

pytestmark = pytest.mark.slow

DVC = str(Path(sys.executable).parent / "dvc")


def _git(cwd: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.email=t@example.org", "-c", "user.name=t", *args],
        cwd=cwd,
        check=True,
        capture_output=True,
    )


def _registry(tmp_path: Path, s3: tuple[Any, str], *, real_dvc: bool = False) -> Path:
    server, bucket = s3
    reg = tmp_path / "registry"
    (reg / "models").mkdir(parents=True)
    (reg / "datasets").mkdir()
    _git(reg, "init", "-q")
    if real_dvc:  # the remote configured by DVC itself, read back by nlmr
        for cmd in (
            ["init", "-q"],
            ["remote", "add", "-d", "storage", f"s3://{bucket}/store"],
            ["remote", "modify", "storage", "endpointurl", server.endpoint],
        ):
            subprocess.run([DVC, *cmd], cwd=reg, check=True, capture_output=True)
    else:
        write_dvc_config(reg, f"s3://{bucket}/store", server.endpoint)
    return reg


def _bucket_keys(s3: tuple[Any, str]) -> set[str]:
    server, bucket = s3
    client = server.client()
    keys: set[str] = set()
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        keys |= {o["Key"] for o in page.get("Contents", [])}
    return keys


def test_end_to_end_with_dvc_pull_and_check_remote(
    tmp_path: Path, s3: tuple[Any, str], tiny_model: tuple[Path, Path]
) -> None:
    model, pickled = tiny_model
    reg = _registry(tmp_path, s3, real_dvc=True)
    first = add(str(model), "acme/tiny-bert", registry=reg, card_fields=CARD, progress=False)
    conv = add(
        str(pickled),
        "acme/tiny-bert-pickle",
        registry=reg,
        progress=False,
        card_fields={**CARD, "title": "Tiny BERT (pickle)"},
    )
    assert first.problems == () and conv.problems == ()
    assert conv.converted and conv.converted["pickles"] == ["pytorch_model.bin"]
    assert validate([reg]).problems == ()

    # the pointer is byte for byte what `dvc add` writes for the same directory
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    _git(scratch, "init", "-q")
    subprocess.run([DVC, "init", "-q"], cwd=scratch, check=True, capture_output=True)
    shutil.copytree(model, scratch / "main")
    subprocess.run([DVC, "add", "-q", "main"], cwd=scratch, check=True, capture_output=True)
    ours = reg / "models/acme/tiny-bert/revisions/main.dvc"
    assert (scratch / "main.dvc").read_text() == ours.read_text()

    # `dvc pull` in a fresh clone of the registry reproduces the exact bytes
    _git(reg, "add", "-A")
    _git(reg, "commit", "-qm", "add tiny models")
    clone = tmp_path / "clone"
    _git(tmp_path, "clone", "-q", str(reg), str(clone))
    pulled = subprocess.run(
        [DVC, "pull", "-q"],
        cwd=clone,
        capture_output=True,
        text=True,
        env=os.environ | {"DVC_NO_ANALYTICS": "1"},
    )
    assert pulled.returncode == 0, pulled.stderr
    cmp = filecmp.dircmp(model, clone / "models/acme/tiny-bert/revisions/main")
    assert not (cmp.left_only or cmp.right_only or cmp.diff_files)
    for name in cmp.common_files:
        assert (model / name).read_bytes() == (
            clone / "models/acme/tiny-bert/revisions/main" / name
        ).read_bytes()
    converted = clone / "models/acme/tiny-bert-pickle/revisions/main"
    assert (converted / "model.safetensors").is_file()
    assert not (converted / "pytorch_model.bin").exists()

    # check-remote passes, then fails naming the file whose object was deleted
    assert check_remote([reg]).ok and check_remote([reg], deep=True).ok
    server, bucket = s3
    client = server.client()
    manifest = json.loads((reg / "models/acme/tiny-bert/revisions/main.manifest.json").read_text())
    victim = next(f for f in manifest["files"] if f["path"] == "tokenizer.json")
    victim_key = f"store/files/md5/{victim['md5'][:2]}/{victim['md5'][2:]}"
    body = client.get_object(Bucket=bucket, Key=victim_key)["Body"].read()
    client.delete_object(Bucket=bucket, Key=victim_key)
    report = check_remote([reg / "models/acme/tiny-bert"])
    assert [(p.path, p.problem) for p in report.problems] == [("tokenizer.json", "missing")]
    # ...which `dvc status -c` does not notice (the directory object is still there)
    status = subprocess.run(
        [DVC, "status", "-c", "--json"], cwd=clone, capture_output=True, text=True
    )
    assert "tokenizer.json" not in status.stdout or "missing" not in status.stdout

    # a flipped byte passes the HEAD check (same size) but fails --deep, naming the file
    client.put_object(Bucket=bucket, Key=victim_key, Body=body)
    weights = next(f for f in manifest["files"] if f["path"] == "model.safetensors")
    wkey = f"store/files/md5/{weights['md5'][:2]}/{weights['md5'][2:]}"
    data = bytearray(client.get_object(Bucket=bucket, Key=wkey)["Body"].read())
    data[len(data) // 2] ^= 0x01
    client.put_object(Bucket=bucket, Key=wkey, Body=bytes(data))
    assert check_remote([reg]).ok
    deep = check_remote([reg], deep=True)
    sharing = {  # revisions whose manifest names that same object
        f"acme/{name}@main"
        for name in ("tiny-bert", "tiny-bert-pickle")
        for f in json.loads((reg / f"models/acme/{name}/revisions/main.manifest.json").read_text())[
            "files"
        ]
        if f["md5"] == weights["md5"]
    }
    assert "acme/tiny-bert@main" in sharing
    assert {(p.entry, p.path, p.problem) for p in deep.problems} == {
        (e, "model.safetensors", "md5") for e in sharing
    }


def test_cli_add_and_check_remote_exit_codes(
    tmp_path: Path, s3: tuple[Any, str], tiny_model: tuple[Path, Path], run_cli
) -> None:
    model, _ = tiny_model
    reg = _registry(tmp_path, s3)
    args = [
        "--title",
        "T",
        "--summary",
        "S.",
        "--license",
        "MIT",
        "--language",
        "sv",
        "--creator",
        "C",
        "--maintainer",
        "m",
    ]
    code, out, err = run_cli("add", str(model), "--id", "acme/x", "--registry", str(reg), *args)
    assert code == 0, err
    assert "uploaded 6 object(s)" in out and "wrote models/acme/x/card.yaml" in out
    code, out, _ = run_cli("add", str(model), "--id", "acme/x", "--registry", str(reg), "--json")
    report = json.loads(out)
    assert code == 0 and report["uploaded"] == [] and report["present"] == 6
    assert report["unchanged"] is True
    code, out, err = run_cli("check-remote", str(reg), "--json")
    assert code == 0 and json.loads(out)["ok"]
    server, bucket = s3
    server.client().delete_object(Bucket=bucket, Key=f"store/{report_key(reg, 'config.json')}")
    code, out, err = run_cli("check-remote", str(reg))
    assert code == 1 and "acme/x@main: config.json: object" in out and "missing" in out


def report_key(reg: Path, path: str) -> str:
    manifest = json.loads((reg / "models/acme/x/revisions/main.manifest.json").read_text())
    md5 = next(f["md5"] for f in manifest["files"] if f["path"] == path)
    return f"files/md5/{md5[:2]}/{md5[2:]}"


def test_new_revision_uploads_only_new_objects(
    tmp_path: Path, s3: tuple[Any, str], tiny_model: tuple[Path, Path]
) -> None:
    model, _ = tiny_model
    reg = _registry(tmp_path, s3)
    add(str(model), "acme/tiny", registry=reg, card_fields=CARD, progress=False)
    v2 = tmp_path / "v2"
    shutil.copytree(model, v2)
    cfg = json.loads((v2 / "config.json").read_text())
    cfg["note"] = "v2"
    (v2 / "config.json").write_text(json.dumps(cfg))
    report = add(
        str(v2), "acme/tiny", registry=reg, revision="v2", make_default=True, progress=False
    )
    # one changed file and the new directory object; the weights are already there
    assert len(report.uploaded) == 2 and report.present == 4
    card = (reg / "models/acme/tiny/card.yaml").read_text()
    assert "name: v2" in card and validate([reg]).problems == ()
    from nlmr.validate import load_card

    loaded = load_card(reg / "models/acme/tiny/card.yaml")
    assert loaded.default_revision and loaded.default_revision.name == "v2"
    with pytest.raises(UsageError, match="already exists with other files"):
        add(str(model), "acme/tiny", registry=reg, revision="v2", progress=False)


def test_dry_run_writes_and_uploads_nothing(
    tmp_path: Path, s3: tuple[Any, str], tiny_model: tuple[Path, Path]
) -> None:
    model, _ = tiny_model
    reg = _registry(tmp_path, s3)
    report = add(
        str(model), "acme/tiny", registry=reg, card_fields=CARD, dry_run=True, progress=False
    )
    assert report.dry_run and report.files == 5 and report.uploaded == ()
    assert not (reg / "models/acme").exists() and _bucket_keys(s3) == set()


def test_dataset_with_many_files_and_local_store(tmp_path: Path) -> None:
    src = tmp_path / "corpus"
    for lang in ("nb", "nn", "se"):
        for i in range(700):
            shard = src / lang / f"train-{i:05d}.jsonl"
            shard.parent.mkdir(parents=True, exist_ok=True)
            shard.write_text(json.dumps({"text": f"{lang} document {i}"}) + "\n")
    (src / "README.md").write_text(
        "---\nlanguage: [nb, nn, se]\nlicense: cc-by-4.0\nconfigs:\n- config_name: nb\n"
        "  data_files: nb/*.jsonl\n---\n# Tiny corpus\n\nThree languages.\n"
    )
    reg = tmp_path / "registry"
    (reg / "models").mkdir(parents=True)
    store = tmp_path / "store"
    report = add(
        str(src),
        "acme/corpus",
        registry=reg,
        remote=str(store),
        progress=False,
        card_fields={"creators": [{"name": "C"}], "maintainers": ["m"]},
    )
    assert report.kind == "dataset" and report.files == 2101
    assert report.problems == ()  # README front matter filled languages, license, configs
    assert len(report.uploaded) == 2101 + 1 - 0  # identical shards share nothing here
    objects = [p for p in store.rglob("*") if p.is_file()]
    assert len(objects) == 2102 and all(os.stat(p).st_mode & 0o777 == 0o444 for p in objects)
    card = (reg / "datasets/acme/corpus/card.yaml").read_text()
    assert "config_name: nb" in card and "title: Tiny corpus" in card


def test_shard_hint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import nlmr.add

    monkeypatch.setattr(nlmr.add, "SHARD_HINT_FILES", 3)
    src = tmp_path / "d"
    src.mkdir()
    for i in range(5):
        (src / f"{i}.txt").write_text(str(i))
    reg = tmp_path / "registry"
    (reg / "datasets").mkdir(parents=True)
    report = add(
        str(src),
        "a/b",
        registry=reg,
        remote=str(tmp_path / "store"),
        kind="dataset",
        dry_run=True,
        progress=False,
    )
    assert any("sharding" in w for w in report.warnings)


ADD_SCRIPT = """
import json, sys
from nlmr.add import add
report = add(sys.argv[1], "acme/big", registry=sys.argv[2], jobs=1, progress=False,
             card_fields={"title": "T", "summary": "S.", "license": "MIT", "languages": ["nb"],
                          "creators": [{"name": "C"}], "maintainers": ["m"]})
print(json.dumps(report.to_dict()))
"""


def test_interrupted_add_resumes_and_uploads_each_object_once(
    tmp_path: Path, s3: tuple[Any, str]
) -> None:
    src = tmp_path / "big"
    src.mkdir()
    rng = __import__("random").Random(7)
    for i in range(300):
        (src / f"part-{i:04d}.dat").write_bytes(rng.randbytes(256 * 1024))
    reg = _registry(tmp_path, s3)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-c", ADD_SCRIPT, str(src), str(reg)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(_bucket_keys(s3)) < 30:
        assert proc.poll() is None, "add finished before it could be interrupted"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = {k.removeprefix("store/") for k in _bucket_keys(s3)}
    assert 30 <= len(before) < 301
    assert not any(k.endswith(".dir") for k in before)  # the directory object comes last
    assert not (reg / "datasets/acme/big").exists()  # nothing half-written in the registry
    done = subprocess.run(
        [sys.executable, "-c", ADD_SCRIPT, str(src), str(reg)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    report = json.loads(done.stdout.strip().splitlines()[-1])
    again = set(report["uploaded"])
    assert not (again & before), "an object was uploaded twice"
    after = {k.removeprefix("store/") for k in _bucket_keys(s3)}
    assert after == before | again and len(after) == 301
    assert report["present"] == len(before) and validate([reg]).problems == ()
    assert check_remote([reg], deep=True).ok


def test_add_from_hf_cache_snapshot_prefills_the_card(
    tmp_path: Path, tiny_model: tuple[Path, Path]
) -> None:
    from test_sources import COMMIT, make_hf_cache

    from nlmr.prefill import safetensors_parameters
    from nlmr.validate import load_card

    model, _ = tiny_model
    snap = make_hf_cache(model, tmp_path / "hub", repo="upstream/tiny")
    reg = tmp_path / "registry"
    (reg / "models").mkdir(parents=True)
    report = add(
        str(snap),
        "acme/tiny",
        registry=reg,
        remote=str(tmp_path / "store"),
        progress=False,
        card_fields=CARD,
    )
    assert report.revision == "main" and report.revision_id == COMMIT
    card = load_card(reg / "models/acme/tiny/card.yaml")
    rev = card.revisions[0]
    assert rev.source and (rev.source.type, rev.source.repo, rev.source.commit) == (
        "huggingface",
        "upstream/tiny",
        COMMIT,
    )
    assert card.architecture == "BertForMaskedLM" and card.task == "fill-mask"
    assert card.framework == "transformers" and card.tokenizer is True
    assert card.parameters == safetensors_parameters(model / "model.safetensors")
    manifest = json.loads((reg / "models/acme/tiny/revisions/main.manifest.json").read_text())
    lfs = {f["path"]: f["lfs"] for f in manifest["files"]}
    assert lfs["model.safetensors"] and not lfs["config.json"]
