#!/usr/bin/env python3
"""Benchmark: ``nlmr add`` vs ``dvc add <dir> && dvc push`` on the same data and S3 server.

What it measures
----------------
One local SeaweedFS S3 server (``tests/seaweedfs.py``) is started, and two datasets
are generated once in a temporary directory (fixed seed, incompressible bytes):

1. model:   config.json, model.safetensors.index.json and 4 shards
            ``model-0000N-of-00004.safetensors`` (valid minimal safetensors header, then
            random bytes) totalling 1 GiB (``--quick``: 128 MiB);
2. dataset: 2,000 (``--quick``: 200) jsonl files of 50-200 KiB (random base64 text)
            in 8 subdirectories, plus README.md.

For each dataset, wall time of (alternating order, ``--runs`` times, default 2):

(a) ``nlmr add SRC --id org/name -q`` (CLI subprocess) into a fresh registry
    (git init + .dvc/config) whose remote is a fresh bucket on the server;
(c) ``s5cmd cp`` of the same files to a fresh bucket: upload only, nothing hashed or
    verified, in Go -- the floor this server and machine allow any client;
(b) ``dvc add <dir> && dvc push`` (two subprocesses, DVC's default jobs) in a fresh
    git+DVC repo whose default remote is another fresh bucket with ``endpointurl`` set.
    The data directory is renamed into the repo (same filesystem, untimed) and back.

Both are cold: fresh registry/repo, DVC cache and bucket every run, and the page cache
is dropped before each run (``echo 3 > /proc/sys/vm/drop_caches``; when that is not
permitted, the files are read once before each run so both tools see a warm cache).
After each nlmr run, ``nlmr check-remote --deep`` on the entry must pass (untimed).
Reported: best and median seconds, throughput (MB/s, 1 MB = 10^6 bytes) and the ratio
nlmr/dvc; the goal is nlmr <= 0.5 x dvc.

How to run (from the repository root)
-------------------------------------
    .venv/bin/python bench/add_vs_dvc.py            # 1 GiB model, 2,000 files
    .venv/bin/python bench/add_vs_dvc.py --quick    # 128 MiB model, 200 files
    .venv/bin/python bench/add_vs_dvc.py --json     # machine-readable results
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import random
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))
import seaweedfs  # noqa: E402

BIN = Path(sys.executable).parent
NLMR, DVC, S5CMD = str(BIN / "nlmr"), str(BIN / "dvc"), str(BIN / "s5cmd")
CARD = ["--title", "T", "--summary", "S.", "--license", "MIT", "--language", "nb",
        "--creator", "C", "--maintainer", "m"]  # fmt: skip
MiB = 1 << 20


def write_random(path: Path, rng: random.Random, n: int, prefix: bytes = b"") -> None:
    with open(path, "wb") as fh:
        fh.write(prefix)
        while n > 0:
            fh.write(rng.randbytes(min(n, 64 * MiB)))
            n -= min(n, 64 * MiB)


def make_model(root: Path, total: int, rng: random.Random) -> None:
    root.mkdir(parents=True)
    (root / "config.json").write_text(
        json.dumps(
            {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "torch_dtype": "uint8"}
        )
    )
    shard, weight_map = total // 4, {}
    for i in range(1, 5):
        name, tensor = f"model-{i:05d}-of-00004.safetensors", f"w{i}"
        n = shard - 8 - 128  # header padded with spaces to 128 bytes (allowed by the format)
        header = json.dumps({tensor: {"dtype": "U8", "shape": [n], "data_offsets": [0, n]}})
        header = header.encode().ljust(128)
        write_random(root / name, rng, n, struct.pack("<Q", len(header)) + header)
        weight_map[tensor] = name
    (root / "model.safetensors.index.json").write_text(
        json.dumps({"metadata": {"total_size": 4 * (shard - 136)}, "weight_map": weight_map})
    )


def make_dataset(root: Path, files: int, rng: random.Random) -> None:
    for i in range(files):
        path = root / f"part-{i % 8}" / f"shard-{i:05d}.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        size, lines = rng.randint(50 * 1024, 200 * 1024), []
        while size > 0:
            text = base64.b64encode(rng.randbytes(768)).decode()
            lines.append(json.dumps({"id": len(lines), "text": text}) + "\n")
            size -= len(lines[-1])
        path.write_text("".join(lines))
    (root / "README.md").write_text("# Bench dataset\n\nRandom jsonl shards.\n")


def tree_bytes(root: Path) -> tuple[int, int]:
    sizes = [p.stat().st_size for p in root.rglob("*") if p.is_file()]
    return len(sizes), sum(sizes)


def git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.email=b@example.org", "-c", "user.name=b", *args],
                   cwd=cwd, check=True, capture_output=True)  # fmt: skip


def run(cmd: list[str], cwd: Path, env: dict[str, str]) -> None:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    if proc.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")


def drop_caches(data: Path) -> bool:
    """Drop the page cache; when not permitted, read ``data`` once (warm) and return False."""
    os.sync()
    try:
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
        return True
    except OSError:
        for p in data.rglob("*"):
            if p.is_file():
                with open(p, "rb") as fh:
                    while fh.read(8 * MiB):
                        pass
        return False


def time_nlmr(server, env, work: Path, data: Path, kind: str, tag: str) -> tuple[float, bool]:
    reg = work / f"reg-{tag}"
    (reg / "models").mkdir(parents=True)
    (reg / "datasets").mkdir()
    git(reg, "init", "-q")
    bucket = server.new_bucket("nlmr")
    (reg / ".dvc").mkdir()
    (reg / ".dvc" / "config").write_text(
        f"[core]\n    remote = storage\n['remote \"storage\"']\n"
        f"    url = s3://{bucket}/store\n    endpointurl = {server.endpoint}\n"
    )
    entry = f"bench/{kind}-{tag}"
    dropped = drop_caches(data)
    t0 = time.perf_counter()
    run([NLMR, "add", str(data), "--id", entry, "--type", kind, "--registry", str(reg), "-q",
         *CARD], reg, env)  # fmt: skip
    elapsed = time.perf_counter() - t0
    card = reg / ("models" if kind == "model" else "datasets") / entry / "card.yaml"
    run([NLMR, "check-remote", "--deep", str(card)], reg, env)
    shutil.rmtree(reg)
    return elapsed, dropped


def time_dvc(server, env, work: Path, data: Path, tag: str) -> tuple[float, bool]:
    repo = work / f"dvc-{tag}"
    repo.mkdir()
    git(repo, "init", "-q")
    bucket = server.new_bucket("dvc")
    for cmd in (["init", "-q"], ["config", "core.analytics", "false"],
                ["remote", "add", "-d", "storage", f"s3://{bucket}/store"],
                ["remote", "modify", "storage", "endpointurl", server.endpoint]):  # fmt: skip
        run([DVC, *cmd], repo, env)
    inside = repo / data.name
    data.rename(inside)
    try:
        dropped = drop_caches(inside)
        t0 = time.perf_counter()
        run([DVC, "add", "-q", data.name], repo, env)
        run([DVC, "push", "-q"], repo, env)
        elapsed = time.perf_counter() - t0
    finally:
        inside.rename(data)
    shutil.rmtree(repo)
    return elapsed, dropped


def time_s5cmd(server, env, work: Path, data: Path, tag: str) -> tuple[float, bool]:
    """The server's floor: s5cmd uploading the same files (no hashing, nothing verified)."""
    bucket = server.new_bucket("s5")
    dropped = drop_caches(data)
    t0 = time.perf_counter()
    run([S5CMD, "--endpoint-url", server.endpoint, "cp", f"{data}/*", f"s3://{bucket}/x/"],
        work, env)  # fmt: skip
    elapsed = time.perf_counter() - t0
    client = server.client()
    count = sum(len(page.get("Contents", [])) for page in
                client.get_paginator("list_objects_v2").paginate(Bucket=bucket))  # fmt: skip
    if count != tree_bytes(data)[0]:
        raise RuntimeError(f"s5cmd uploaded {count} objects, expected {tree_bytes(data)[0]}")
    return elapsed, dropped


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="128 MiB model, 200 files")
    ap.add_argument("--json", action="store_true", help="print results as JSON")
    ap.add_argument("--runs", type=int, default=2, help="runs per tool and dataset (default 2)")
    args = ap.parse_args()
    say = (lambda *a: print(*a, file=sys.stderr)) if args.json else print

    work = Path(tempfile.mkdtemp(prefix="nlmr-bench-add-"))
    server = seaweedfs.start(work / "weed")
    env = {**seaweedfs.s3_env(server), "DVC_NO_ANALYTICS": "1"}
    env.pop("AWS_CA_BUNDLE", None)
    results, all_dropped = [], True
    try:
        rng = random.Random(20240601)
        sets = [("model", "model", work / "src-model"), ("dataset", "dataset", work / "src-ds")]
        t0 = time.perf_counter()
        make_model(sets[0][2], (128 if args.quick else 1024) * MiB, rng)
        make_dataset(sets[1][2], 200 if args.quick else 2000, rng)
        say(f"generated data in {time.perf_counter() - t0:.1f}s under {work}")
        for label, kind, data in sets:
            files, nbytes = tree_bytes(data)
            times: dict[str, list[float]] = {"nlmr": [], "dvc": [], "s5cmd": []}
            for i in range(args.runs):
                order = ["nlmr", "dvc", "s5cmd"] if i % 2 == 0 else ["s5cmd", "dvc", "nlmr"]
                for tool in order:
                    tag = f"{i}-{uuid.uuid4().hex[:8]}"
                    if tool == "nlmr":
                        t, dropped = time_nlmr(server, env, work, data, kind, tag)
                    elif tool == "dvc":
                        t, dropped = time_dvc(server, env, work, data, tag)
                    else:
                        t, dropped = time_s5cmd(server, env, work, data, tag)
                    all_dropped &= dropped
                    times[tool].append(t)
                    say(f"  {label:8} run {i + 1} {tool:5} {t:8.2f}s")
            row = {"dataset": label, "files": files, "bytes": nbytes}
            for tool, ts in times.items():
                row[tool] = {"runs": ts, "best": min(ts), "median": statistics.median(ts),
                             "mb_s_best": nbytes / 1e6 / min(ts)}  # fmt: skip
            row["ratio_best"] = row["nlmr"]["best"] / row["dvc"]["best"]
            row["ratio_median"] = row["nlmr"]["median"] / row["dvc"]["median"]
            row["goal_met"] = row["ratio_median"] <= 0.5
            row["vs_s5cmd_median"] = row["nlmr"]["median"] / row["s5cmd"]["median"]
            row["floor_vs_dvc"] = row["s5cmd"]["median"] / row["dvc"]["median"]
            results.append(row)
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)

    cache = (
        "page cache dropped before each run"
        if all_dropped
        else ("drop_caches NOT permitted: files read once before each run (warm cache for both)")
    )
    if args.json:
        print(json.dumps({"cpus": os.cpu_count(), "cache": cache, "goal": "nlmr <= 0.5 x dvc",
                          "results": results}, indent=2))  # fmt: skip
        return 0
    print(f"\n{cache}; {os.cpu_count()} CPUs; {args.runs} runs each; goal: nlmr <= 0.5 x dvc")
    print(f"{'dataset':8} {'files':>6} {'MB':>7} | {'nlmr best/med s':>16} {'MB/s':>6} | "
          f"{'dvc best/med s':>16} {'MB/s':>6} | {'ratio best/med':>14}  goal | "
          f"{'s5cmd med s':>11} {'nlmr/s5cmd':>10} {'s5cmd/dvc':>9}")  # fmt: skip
    for r in results:
        n, d = r["nlmr"], r["dvc"]
        print(f"{r['dataset']:8} {r['files']:>6} {r['bytes'] / 1e6:>7.0f} | "
              f"{n['best']:>7.2f} /{n['median']:>7.2f} {n['mb_s_best']:>6.0f} | "
              f"{d['best']:>7.2f} /{d['median']:>7.2f} {d['mb_s_best']:>6.0f} | "
              f"{r['ratio_best']:>6.2f} /{r['ratio_median']:>6.2f}  "
              f"{'met' if r['goal_met'] else 'NOT met':>7} | {r['s5cmd']['median']:>11.2f} "
              f"{r['vs_s5cmd_median']:>10.2f} {r['floor_vs_dvc']:>9.2f}")  # fmt: skip
    print(
        "s5cmd only uploads (no hashing, no verification): its time is this server's floor; "
        "s5cmd/dvc above 0.5 means the 0.5 x dvc goal cannot be met on this machine"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
