#!/usr/bin/env python3
"""Benchmark: ``nlmr pull`` vs ``s5cmd``, ``rclone`` and ``dvc pull`` from one local S3 server.

What it measures
----------------
One local SeaweedFS S3 server (``tests/seaweedfs.py``) is started, three data sets are
generated once (fixed seed, incompressible bytes; the generators of ``add_vs_dvc.py``) and
added, untimed, with ``nlmr add`` into one registry (git + ``.dvc/config`` naming the bucket
and its ``endpointurl``, committed, so ``dvc pull`` works in a clone); then, untimed,
``nlmr catalogue --upload`` puts the store's catalogue beside the objects:

1. ``bench/file``:    one 1 GiB safetensors file (``--quick``: 128 MiB);
2. ``bench/model``:   config.json, an index and 4 safetensors shards, 2 GiB in all
                      (``--quick``: 256 MiB);
3. ``bench/dataset``: 2,000 (``--quick``: 200) jsonl files of 50-200 KiB, about 257 MB.

Then, for each data set, alternating the order every run, ``--runs`` times (default 3),
each cold (fresh destination; ``sync; echo 3 > /proc/sys/vm/drop_caches`` before the run):

* ``nlmr``: ``nlmr pull ENTRY --to FRESH --remote s3://… --endpoint-url … --json`` as a
  login node runs it with no registry: it fetches the store's catalogue, then every object,
  checking each byte's sha256 as it arrives, renaming only verified files into place.
  CLI wall time, Python start-up included. The JSON report must say ok with every file.
* ``s5cmd``: ``s5cmd run FILE`` (one ``cp`` line per object of the revision): transfer only,
  nothing verified; s5cmd's default 256 workers (and its own multipart downloads).
* ``rclone``: ``rclone copy --files-from LIST s3:bucket/store FRESH`` with its defaults
  (4 transfers, multi-thread downloads of big files); rclone compares sizes and, for
  objects uploaded in one part, the MD5 ETag, after each download.
* ``dvc``: in a fresh ``git clone`` of the registry (untimed; fresh DVC cache),
  ``dvc pull <entry>/revisions/main.dvc`` with DVC's default jobs: the files end in the
  workspace (DVC's cache, then a link or copy), md5 checked.

None of them fsyncs (the numbers after ``+sync`` are the ``sync`` each run leaves to do).
Before the timed runs each tool runs once untimed (first-run effects).

Goals (issue 5): nlmr <= s5cmd in every case (median), and dvc pull >= 3 x nlmr.

How to run (from the repository root, as root for drop_caches; rclone from Debian)
-----------------------------------------------------------------------------------
    .venv/bin/python bench/pull_vs_peers.py            # 1 GiB, 2 GiB, 2,000 files; 3 runs
    .venv/bin/python bench/pull_vs_peers.py --quick    # small sizes, for a smoke test
    .venv/bin/python bench/pull_vs_peers.py --json     # machine-readable results
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
for path in (BENCH, BENCH.parent / "tests", BENCH.parent):
    sys.path.insert(0, str(path))
import seaweedfs  # noqa: E402
from add_vs_dvc import (  # noqa: E402
    DVC,
    NLMR,
    S5CMD,
    MiB,
    make_dataset,
    make_model,
    run,
    tree_bytes,
    write_random,
)
from sync_vs_peers import (  # noqa: E402
    cold,
    count_files,
    make_registry,
    nlmr_env,
    remove,
    s5cmd_file,
    timed,
    tool_stats,
)

RCLONE = shutil.which("rclone") or "rclone"
WARMUP = 1
GOAL_S5CMD, GOAL_DVC = 1.0, 3.0


def make_file(root: Path, total: int, rng: random.Random) -> None:
    """One safetensors file of ``total`` bytes (a valid header, random weights)."""
    root.mkdir(parents=True)
    n = total - 8 - 128
    header = json.dumps({"w": {"dtype": "U8", "shape": [n], "data_offsets": [0, n]}})
    padded = header.encode().ljust(128)
    write_random(root / "model.safetensors", rng, n, struct.pack("<Q", len(padded)) + padded)


def rclone_env(server: Any, env: dict[str, str]) -> dict[str, str]:
    """A remote named ``s3`` for the server (rclone fails here while AWS_CA_BUNDLE is set)."""
    out = {k: v for k, v in env.items() if k != "AWS_CA_BUNDLE"}
    return {
        **out,
        "RCLONE_CONFIG_S3_TYPE": "s3",
        "RCLONE_CONFIG_S3_PROVIDER": "Other",
        "RCLONE_CONFIG_S3_ENDPOINT": server.endpoint,
        "RCLONE_CONFIG_S3_ACCESS_KEY_ID": "test",
        "RCLONE_CONFIG_S3_SECRET_ACCESS_KEY": "test",
        "RCLONE_CONFIG_S3_REGION": "us-east-1",
    }


def time_nlmr(server: Any, env: dict[str, str], work: Path, bucket: str, entry: str,
              tag: str, files: int) -> tuple[float, float]:  # fmt: skip
    dest = work / f"pull-{tag}"
    cmd = [NLMR, "pull", entry, "--to", str(dest), "--remote", f"s3://{bucket}/store",
           "--endpoint-url", server.endpoint, "--json"]  # fmt: skip
    cold(work)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - t0
    if proc.returncode:
        raise RuntimeError(f"nlmr pull failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    t0 = time.perf_counter()
    os.sync()
    synced = time.perf_counter() - t0
    report = json.loads(proc.stdout)
    if not report["ok"] or report["fetched"] != files:
        raise RuntimeError(f"nlmr pull: {report}")
    remove(dest)
    return elapsed, synced


def time_s5cmd(server: Any, env: dict[str, str], work: Path, spec: Path, tag: str,
               n: int) -> tuple[float, float]:  # fmt: skip
    dest = work / f"s5-{tag}"
    dest.mkdir()
    runfile = work / f"run-{tag}.txt"
    runfile.write_text(spec.read_text().replace("{DEST}", str(dest)))
    cold(work)
    t = timed([S5CMD, "--endpoint-url", server.endpoint, "run", str(runfile)], work, env)
    if count_files(dest) != n:
        raise RuntimeError(f"s5cmd fetched {count_files(dest)} files, expected {n}")
    remove(dest)
    runfile.unlink()
    return t


def rclone_list(work: Path, spec: Path, kind: str) -> Path:
    """The object keys of an s5cmd run file, one per line, for ``--files-from``."""
    keys = [line.split()[1].split("/store/", 1)[1] for line in spec.read_text().splitlines()]
    path = work / f"rclone-{kind}.txt"
    path.write_text("".join(k + "\n" for k in keys))
    return path


def time_rclone(env: dict[str, str], work: Path, bucket: str, listing: Path, tag: str,
                n: int) -> tuple[float, float]:  # fmt: skip
    dest = work / f"rc-{tag}"
    cold(work)
    cmd = [RCLONE, "copy", "--files-from", str(listing), f"s3:{bucket}/store", str(dest)]
    t = timed(cmd, work, env)
    if count_files(dest) != n:
        raise RuntimeError(f"rclone fetched {count_files(dest)} files, expected {n}")
    remove(dest)
    return t


def time_dvc(env: dict[str, str], work: Path, reg: Path, entry: str, kind: str, tag: str,
             files: int) -> tuple[float, float]:  # fmt: skip
    clone = work / f"clone-{tag}"
    subprocess.run(["git", "clone", "-q", str(reg), str(clone)], check=True, capture_output=True)
    revs = f"{kind}s/{entry}/revisions"
    cold(work)
    t = timed([DVC, "pull", "-q", f"{revs}/main.dvc"], clone, env)
    if count_files(clone / revs / "main") != files:
        raise RuntimeError(f"dvc pull gave {count_files(clone / revs / 'main')} files")
    remove(clone)
    return t


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="128 MiB, 256 MiB, 200 files")
    ap.add_argument("--json", action="store_true", help="print results as JSON")
    ap.add_argument("--runs", type=int, default=3, help="runs per tool and data set (default 3)")
    ap.add_argument("--only", choices=["file", "model", "dataset"], help="one data set only")
    args = ap.parse_args()
    say = (lambda *a: print(*a, file=sys.stderr, flush=True)) if args.json else (
        lambda *a: print(*a, flush=True))  # fmt: skip
    tools = ["nlmr", "s5cmd", "rclone", "dvc"]

    work = Path(tempfile.mkdtemp(prefix="nlmr-bench-pull-"))
    server = seaweedfs.start(work / "weed")
    bare_env = {**seaweedfs.s3_env(server), "DVC_NO_ANALYTICS": "1"}
    env = nlmr_env(bare_env, work)
    rc_env = rclone_env(server, bare_env)
    results: list[dict[str, Any]] = []
    loads: list[float] = []
    dropped = cold(work)
    try:
        rng = random.Random(20240601)
        sets = [("bench/file", "model", work / "src-file"),
                ("bench/model", "model", work / "src-model"),
                ("bench/dataset", "dataset", work / "src-dataset")]  # fmt: skip
        if args.only:
            sets = [s for s in sets if s[0].endswith(args.only)]
        t0 = time.perf_counter()
        for entry, _, data in sets:
            if entry == "bench/file":
                make_file(data, (128 if args.quick else 1024) * MiB, rng)
            elif entry == "bench/model":
                make_model(data, (256 if args.quick else 2048) * MiB, rng)
            else:
                make_dataset(data, 200 if args.quick else 2000, rng)
        sizes = {entry: tree_bytes(data) for entry, _, data in sets}
        reg, bucket = make_registry(server, env, work, sets)
        for _, _, data in sets:
            shutil.rmtree(data)  # only the server's copy is read from now on
        run([NLMR, "catalogue", "--registry", str(reg), "--upload"], work, env)
        say(f"generated, added and catalogued in {time.perf_counter() - t0:.1f}s under {work}")
        for entry, kind, _ in sets:
            files, nbytes = sizes[entry]
            spec, n_objects = s5cmd_file(work, reg, bucket, entry, kind)
            listing = rclone_list(work, spec, kind)
            times: dict[str, list[float]] = {t: [] for t in tools}
            syncs: dict[str, list[float]] = {t: [] for t in tools}
            name = entry.split("/")[1]
            for i in range(-WARMUP, args.runs):
                for tool in tools if i % 2 == 0 else tools[::-1]:
                    tag = f"{i}-{uuid.uuid4().hex[:8]}"
                    if tool == "nlmr":
                        t, s = time_nlmr(server, env, work, bucket, entry, tag, files)
                    elif tool == "s5cmd":
                        t, s = time_s5cmd(server, bare_env, work, spec, tag, n_objects)
                    elif tool == "rclone":
                        t, s = time_rclone(rc_env, work, bucket, listing, tag, n_objects)
                    else:
                        t, s = time_dvc(bare_env, work, reg, entry, kind, tag, files)
                    if i < 0:
                        say(f"  {name:8} warm-up {tool:7} {t:7.2f}s")
                        continue
                    times[tool].append(t)
                    syncs[tool].append(s)
                    loads.append(os.getloadavg()[0])
                    say(f"  {name:8} run {i + 1} {tool:7} {t:7.2f}s  (+sync {s:5.2f}s)"
                        f"  load {os.getloadavg()[0]:.2f}")  # fmt: skip
            row: dict[str, Any] = {"dataset": name, "id": entry, "files": files, "bytes": nbytes}
            for tool in tools:
                row[tool] = tool_stats(times[tool], syncs[tool], nbytes)
            med = {tool: row[tool]["median"] for tool in tools}
            best = {tool: row[tool]["best"] for tool in tools}
            row["nlmr/s5cmd"] = med["nlmr"] / med["s5cmd"]
            row["nlmr/rclone"] = med["nlmr"] / med["rclone"]
            row["dvc/nlmr"] = med["dvc"] / med["nlmr"]
            row["best nlmr/s5cmd"] = best["nlmr"] / best["s5cmd"]
            row["best dvc/nlmr"] = best["dvc"] / best["nlmr"]
            row["goal_s5cmd_met"] = row["nlmr/s5cmd"] <= GOAL_S5CMD
            row["goal_dvc_met"] = row["dvc/nlmr"] >= GOAL_DVC
            results.append(row)
    finally:
        server.stop()
        remove(work)

    cache = "page cache dropped before each run" if dropped else "drop_caches NOT permitted (warm)"
    goals = f"nlmr <= {GOAL_S5CMD} x s5cmd; dvc pull >= {GOAL_DVC} x nlmr"
    if args.json:
        out = {"cpus": os.cpu_count(), "cache": cache, "goals": goals, "runs": args.runs,
               "load": loads, "results": results}  # fmt: skip
        print(json.dumps(out, indent=2))
        return 0
    print(f"\n{cache}; {os.cpu_count()} CPUs; {args.runs} runs each; 1-min load "
          f"{min(loads):.1f}-{max(loads):.1f}; seconds, median (best); goals: {goals}")  # fmt: skip
    head = " | ".join(f"{t:>15}" for t in tools)
    print(f"{'data':8} {'files':>6} {'MB':>6} | {head} | {'nlmr/s5cmd':>14} | {'dvc/nlmr':>12}"
          f" | nlmr/rclone")  # fmt: skip
    for r in results:
        cells = " | ".join(f"{r[t]['median']:7.2f} ({r[t]['best']:5.2f})" for t in tools)
        print(f"{r['dataset']:8} {r['files']:>6} {r['bytes'] / 1e6:>6.0f} | {cells} | "
              f"{r['nlmr/s5cmd']:>4.2f} ({r['best nlmr/s5cmd']:4.2f}) "
              f"{'ok' if r['goal_s5cmd_met'] else 'NO':>2} | "
              f"{r['dvc/nlmr']:>3.1f} ({r['best dvc/nlmr']:3.1f}) "
              f"{'ok' if r['goal_dvc_met'] else 'NO':>2} | {r['nlmr/rclone']:.2f}")  # fmt: skip
        after = ", ".join(f"{t} {r[t]['sync_median']:.2f}" for t in tools)
        print(f"{'':8} +sync median s: {after}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
