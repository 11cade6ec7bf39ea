#!/usr/bin/env python3
"""Benchmark: ``nlmr sync`` vs ``s5cmd`` and ``dvc pull`` from the same local S3 server.

What it measures
----------------
One local SeaweedFS S3 server (``tests/seaweedfs.py``) is started, two data sets are
generated once (fixed seed, incompressible bytes; the generators of ``add_vs_dvc.py``)
and added, untimed, with ``nlmr add`` into one registry (git + ``.dvc/config`` naming the
bucket and its ``endpointurl``, committed, so ``dvc pull`` works in a clone):

1. ``bench/model``:   config.json, model.safetensors.index.json and 4 safetensors shards,
                      1 GiB in all (``--quick``: 128 MiB);
2. ``bench/dataset``: 2,000 (``--quick``: 200) jsonl files of 50-200 KiB, about 257 MB.

Then, for each data set, alternating the order every run, ``--runs`` times (default 3),
each cold (fresh destination; ``sync; echo 3 > /proc/sys/vm/drop_caches`` before the run):

* ``nlmr``: ``nlmr sync TARGET.yaml --root FRESH --registry REG -q``, the target
  selecting only that entry (``select: {ids: [org/name]}``, both layouts, POSIX): every
  byte's sha256 checked as it streams, files fsynced, published read-only. CLI wall time.
  Afterwards (untimed) ``nlmr check-mirror --root FRESH`` must pass.
* ``s5cmd``: ``s5cmd run FILE``, FILE holding one ``cp s3://bucket/store/files/md5/ab/cd…
  FRESH/…`` line per object of the revision (from its manifest): transfer only, nothing
  verified, nothing fsynced, s5cmd's default 256 workers.
* ``s5cmd-jN``: the same with ``--numworkers N``, N = nlmr's concurrency (``-j``, 8).
* ``dvc``: in a fresh ``git clone`` of the registry (untimed; fresh DVC cache),
  ``dvc pull models/bench/model/revisions/main.dvc`` (DVC's default jobs) followed by
  ``cp -a`` of the pulled directory to a fresh mirror directory ("dvc pull + copy").

Before the timed runs each tool runs once untimed (first-run effects: bytecode caches, the
server's metadata caches). Every timed run is followed (untimed) by ``sync``, reported as
``+sync``: s5cmd and DVC never fsync, so their writes are still in the page cache when their
time stops, while nlmr fsyncs every file before publishing it; ``nlmr/(s5cmd+sync)``
compares nlmr with a durable s5cmd.

nlmr runs as an installed package would, with its bytecode cached (in a private
``PYTHONPYCACHEPREFIX``, written by the untimed runs) even when the environment sets
``PYTHONDONTWRITEBYTECODE`` (as this project's containers do); the no-op figure without a
bytecode cache is reported too.

Last, the no-op resync: a registry of 250 entries x 4 revisions (v0..v3, 2 tiny files
each, v3 the default; added in-process to a local directory store) is synced once,
cold, into a target with ``select: {revisions: all}`` (1,000 revisions), then
``nlmr sync TARGET.yaml -q`` is timed 5 times (CLI wall time, Python start-up included;
page cache warm) and once more after dropping the page cache.

Goals: nlmr <= 1.1 x s5cmd (median); dvc pull + copy >= 3 x nlmr; no-op resync < 1 s.

How to run (from the repository root, as root for drop_caches)
----------------------------------------------------------------
    .venv/bin/python bench/sync_vs_peers.py            # 1 GiB model, 2,000 files, 3 runs
    .venv/bin/python bench/sync_vs_peers.py --quick    # 128 MiB model, 200 files
    .venv/bin/python bench/sync_vs_peers.py --json     # machine-readable results
    .venv/bin/python bench/sync_vs_peers.py --no-noop  # skip the no-op resync
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any, Literal

BENCH = Path(__file__).resolve().parent
for path in (BENCH, BENCH.parent / "tests", BENCH.parent):
    sys.path.insert(0, str(path))
import seaweedfs  # noqa: E402
from add_vs_dvc import (  # noqa: E402
    CARD,
    DVC,
    NLMR,
    S5CMD,
    MiB,
    drop_caches,
    git,
    make_dataset,
    make_model,
    run,
    tree_bytes,
)

#: s5cmd's default ``--numworkers``
S5CMD_WORKERS = 256
WARMUP = 1
NOOP_ENTRIES, NOOP_REVISIONS, NOOP_RUNS = 250, 4, 5
GOAL_S5CMD, GOAL_DVC, GOAL_NOOP = 1.1, 3.0, 1.0


def nlmr_env(env: dict[str, str], work: Path) -> dict[str, str]:
    """``env`` with Python's bytecode cached under ``work`` (as installed packages have it)."""
    out = {k: v for k, v in env.items() if k != "PYTHONDONTWRITEBYTECODE"}
    return {**out, "PYTHONPYCACHEPREFIX": str(work / "pycache")}


def remove(path: Path) -> None:
    """Delete a tree, read-only mirror directories (0555) included."""
    if not path.exists():
        return
    for d, dirs, _ in os.walk(path):
        for name in dirs:
            p = Path(d) / name
            if not p.is_symlink():
                p.chmod(0o755)
    path.chmod(0o755)
    shutil.rmtree(path)


def cold(work: Path) -> bool:
    """Drop the page cache; False when not permitted (then nothing is pre-read: the data
    lives on the server, and every tool sees the same warm cache)."""
    return drop_caches(work / "nothing-to-pre-read")


def count_files(root: Path) -> int:
    return sum(len(files) for _, _, files in os.walk(root))


def timed(cmd: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, float]:
    """Run ``cmd``: (its wall seconds, seconds of the ``sync`` after it)."""
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - t0
    if proc.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    t0 = time.perf_counter()
    os.sync()
    return elapsed, time.perf_counter() - t0


def tool_stats(times: list[float], syncs: list[float], nbytes: int) -> dict[str, Any]:
    """One tool's figures for one data set: its runs, best, median, the median ``sync``
    after a run, and MB/s at the median."""
    median = statistics.median(times)
    return {"runs": times, "best": min(times), "median": median,
            "sync_median": statistics.median(syncs), "mb_s": nbytes / 1e6 / median}  # fmt: skip


def write_target(path: Path, select: dict[str, Any], source: dict[str, str]) -> Path:
    """A target file named after its stem (JSON is YAML); ``--root`` overrides ``root``."""
    name = path.stem
    doc: dict[str, Any] = {"schema_version": 1, "name": name, "root": str(path.parent / name),
                           "select": select}  # fmt: skip
    if source:
        doc["source"] = source
    path.write_text(json.dumps(doc, indent=1) + "\n")
    return path


def make_registry(server: Any, env: dict[str, str], work: Path,
                  sets: list[tuple[str, str, Path]]) -> tuple[Path, str]:  # fmt: skip
    """A committed registry on a fresh bucket holding every data set; (its path, bucket)."""
    reg = work / "registry"
    (reg / "models").mkdir(parents=True)
    (reg / "datasets").mkdir()
    git(reg, "init", "-q")
    bucket = server.new_bucket("nlmr")
    (reg / ".dvc").mkdir()
    (reg / ".dvc" / "config").write_text(
        f"[core]\n    remote = storage\n    analytics = false\n['remote \"storage\"']\n"
        f"    url = s3://{bucket}/store\n    endpointurl = {server.endpoint}\n")  # fmt: skip
    (reg / ".dvc" / ".gitignore").write_text("/config.local\n/tmp\n/cache\n")
    for entry, kind, data in sets:
        run([NLMR, "add", str(data), "--id", entry, "--type", kind, "--registry", str(reg),
             "-q", *CARD], reg, env)  # fmt: skip
    git(reg, "add", "-A")
    git(reg, "commit", "-q", "-m", "bench data")
    return reg, bucket


def s5cmd_file(work: Path, reg: Path, bucket: str, entry: str, kind: str) -> tuple[Path, int]:
    """An ``s5cmd run`` file copying exactly the revision's objects into ``{DEST}``."""
    from nlmr.store import file_key

    manifest = reg / f"{kind}s" / entry / "revisions" / "main.manifest.json"
    keys = sorted({file_key(f["md5"]) for f in json.loads(manifest.read_text())["files"]})
    path = work / f"s5cmd-{kind}.txt"
    path.write_text("".join(f"cp s3://{bucket}/store/{k} {{DEST}}/{k}\n" for k in keys))
    return path, len(keys)


def time_nlmr(env: dict[str, str], work: Path, reg: Path, target: Path, tag: str,
              files: int) -> tuple[float, float]:  # fmt: skip
    mirror = work / f"mirror-{tag}"
    cold(work)
    t = timed([NLMR, "sync", str(target), "--root", str(mirror), "--registry", str(reg), "-q"],
              work, env)  # fmt: skip
    run([NLMR, "check-mirror", "--root", str(mirror)], work, env)
    catalogue = json.loads((mirror / "catalogue.json").read_text())
    got = sum(len(r["files"]) for e in catalogue["entries"] for r in e["revisions"])
    if got != files:
        raise RuntimeError(f"nlmr sync published {got} files, expected {files}")
    remove(mirror)
    return t


def time_s5cmd(server: Any, env: dict[str, str], work: Path, spec: Path, tag: str,
               n: int, workers: int | None) -> tuple[float, float]:  # fmt: skip
    dest = work / f"s5-{tag}"
    dest.mkdir()
    runfile = work / f"run-{tag}.txt"
    runfile.write_text(spec.read_text().replace("{DEST}", str(dest)))
    cmd = [S5CMD, "--endpoint-url", server.endpoint]
    cmd += ["--numworkers", str(workers)] if workers else []
    cold(work)
    t = timed([*cmd, "run", str(runfile)], work, env)
    if count_files(dest) != n:
        raise RuntimeError(f"s5cmd fetched {count_files(dest)} files, expected {n}")
    remove(dest)
    runfile.unlink()
    return t


def time_dvc(env: dict[str, str], work: Path, reg: Path, entry: str, kind: str, tag: str,
             files: int) -> tuple[float, float]:  # fmt: skip
    clone, mirror = work / f"clone-{tag}", work / f"dvcmirror-{tag}"
    subprocess.run(["git", "clone", "-q", str(reg), str(clone)], check=True, capture_output=True)
    mirror.mkdir()
    revs = f"{kind}s/{entry}/revisions"
    cold(work)
    t0 = time.perf_counter()
    run([DVC, "pull", "-q", f"{revs}/main.dvc"], clone, env)
    run(["cp", "-a", str(clone / revs / "main"), str(mirror / "main")], work, env)
    elapsed = time.perf_counter() - t0
    t0 = time.perf_counter()
    os.sync()
    synced = time.perf_counter() - t0
    if count_files(mirror) != files:
        raise RuntimeError(f"dvc pull + copy gave {count_files(mirror)} files, expected {files}")
    remove(clone)
    remove(mirror)
    return elapsed, synced


def noop_registry(work: Path) -> tuple[Path, Path]:
    """250 entries x 4 revisions of 2 tiny files, in-process into a local store."""
    from nlmr.add import add

    reg, store, src = work / "noop-registry", work / "noop-store", work / "noop-src"
    (reg / "models").mkdir(parents=True)
    (reg / "datasets").mkdir()
    store.mkdir()
    fields = {"title": "T", "summary": "S.", "license": "MIT", "languages": ["nb"],
              "creators": [{"name": "C"}], "maintainers": ["m"]}  # fmt: skip
    for i in range(NOOP_ENTRIES):
        kind: Literal["model", "dataset"] = "model" if i % 2 == 0 else "dataset"
        entry = f"org{i % 10}/{kind}-{i:03d}"
        for r in range(NOOP_REVISIONS):
            d = src / f"{i}-{r}"
            d.mkdir(parents=True)
            (d / "config.json").write_text(json.dumps({"entry": entry, "revision": r}))
            (d / "data.txt").write_text(f"{entry} v{r}\n" * 8)
            last = r == NOOP_REVISIONS - 1
            add(str(d), entry, registry=reg, revision=f"v{r}", kind=kind, remote=str(store),
                card_fields=fields, make_default=last, progress=False)  # fmt: skip
    shutil.rmtree(src)
    git(reg, "init", "-q")
    git(reg, "add", "-A")
    git(reg, "commit", "-q", "-m", "no-op bench registry")
    return reg, store


def noop_bench(env: dict[str, str], bare_env: dict[str, str], work: Path,
               say: Any) -> dict[str, Any]:  # fmt: skip
    t0 = time.perf_counter()
    reg, store = noop_registry(work)
    say(f"no-op registry: {NOOP_ENTRIES * NOOP_REVISIONS} revisions added in "
        f"{time.perf_counter() - t0:.1f}s")  # fmt: skip
    mirror = work / "noop-mirror"
    target = write_target(work / "noop.yaml", {"revisions": "all"},
                          {"registry": str(reg), "remote": str(store)})  # fmt: skip
    cmd = [NLMR, "sync", str(target), "--root", str(mirror), "-q"]
    cold(work)
    first, _ = timed(cmd, work, env)
    run([NLMR, "check-mirror", "--root", str(mirror)], work, env)
    catalogue = json.loads((mirror / "catalogue.json").read_text())
    revisions = sum(len(e["revisions"]) for e in catalogue["entries"])
    if revisions != NOOP_ENTRIES * NOOP_REVISIONS:
        raise RuntimeError(f"first sync published {revisions} revisions")
    say(f"  no-op    first sync of {revisions} revisions {first:7.2f}s")
    runs = []
    for i in range(NOOP_RUNS):
        t, _ = timed(cmd, work, env)
        runs.append(t)
        say(f"  no-op    run {i + 1} {t:7.3f}s")
    cold(work)
    cold_cache, _ = timed(cmd, work, env)
    say(f"  no-op    page cache dropped {cold_cache:7.3f}s")
    bare: list[float] = []
    if bare_env.get("PYTHONDONTWRITEBYTECODE"):
        for i in range(NOOP_RUNS):
            bare.append(timed(cmd, work, bare_env)[0])
            say(f"  no-op    run {i + 1} without bytecode cache {bare[-1]:7.3f}s")
    startup, _ = timed([NLMR, "--help"], work, env)
    remove(mirror)
    return {"revisions": revisions, "first_sync": first, "runs": runs,
            "median": statistics.median(runs), "max": max(runs), "cold_cache": cold_cache,
            "nlmr_help": startup, "goal_met": max(runs) < GOAL_NOOP,
            "no_bytecode_cache": {"runs": bare, "median": statistics.median(bare),
                                  "max": max(bare)} if bare else None}  # fmt: skip


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="128 MiB model, 200 files")
    ap.add_argument("--json", action="store_true", help="print results as JSON")
    ap.add_argument("--runs", type=int, default=3, help="runs per tool and data set (default 3)")
    ap.add_argument("--no-noop", action="store_true", help="skip the no-op resync benchmark")
    args = ap.parse_args()
    say = (lambda *a: print(*a, file=sys.stderr, flush=True)) if args.json else (
        lambda *a: print(*a, flush=True))  # fmt: skip
    from nlmr import config

    jobs = config.jobs()
    tools = ["nlmr", "s5cmd", *([f"s5cmd-j{jobs}"] if jobs != S5CMD_WORKERS else []), "dvc"]

    work = Path(tempfile.mkdtemp(prefix="nlmr-bench-sync-"))
    server = seaweedfs.start(work / "weed")
    bare_env = {**seaweedfs.s3_env(server), "DVC_NO_ANALYTICS": "1"}
    env = nlmr_env(bare_env, work)
    results: list[dict[str, Any]] = []
    noop: dict[str, Any] | None = None
    loads: list[float] = []  # 1-min load after each timed run (this benchmark included)
    dropped = cold(work)
    try:
        rng = random.Random(20240601)
        sets = [("bench/model", "model", work / "src-model"),
                ("bench/dataset", "dataset", work / "src-dataset")]  # fmt: skip
        t0 = time.perf_counter()
        make_model(sets[0][2], (128 if args.quick else 1024) * MiB, rng)
        make_dataset(sets[1][2], 200 if args.quick else 2000, rng)
        sizes = {entry: tree_bytes(data) for entry, _, data in sets}
        reg, bucket = make_registry(server, env, work, sets)
        for _, _, data in sets:
            shutil.rmtree(data)  # only the server's copy is read from now on
        say(f"generated and added in {time.perf_counter() - t0:.1f}s under {work}")
        for entry, kind, _ in sets:
            files, nbytes = sizes[entry]
            target = write_target(work / f"bench-{kind}.yaml", {"ids": [entry]}, {})
            spec, n_objects = s5cmd_file(work, reg, bucket, entry, kind)
            times: dict[str, list[float]] = {t: [] for t in tools}
            syncs: dict[str, list[float]] = {t: [] for t in tools}
            for i in range(-WARMUP, args.runs):
                for tool in tools if i % 2 == 0 else tools[::-1]:
                    tag = f"{i}-{uuid.uuid4().hex[:8]}"
                    if tool == "nlmr":
                        t, s = time_nlmr(env, work, reg, target, tag, files)
                    elif tool == "dvc":
                        t, s = time_dvc(bare_env, work, reg, entry, kind, tag, files)
                    else:
                        workers = None if tool == "s5cmd" else jobs
                        t, s = time_s5cmd(server, bare_env, work, spec, tag, n_objects, workers)
                    if i < 0:
                        say(f"  {kind:8} warm-up {tool:9} {t:7.2f}s")
                        continue
                    times[tool].append(t)
                    syncs[tool].append(s)
                    loads.append(os.getloadavg()[0])
                    say(f"  {kind:8} run {i + 1} {tool:9} {t:7.2f}s  (+sync {s:5.2f}s)"
                        f"  load {os.getloadavg()[0]:.2f}")  # fmt: skip
            row: dict[str, Any] = {"dataset": kind, "id": entry, "files": files, "bytes": nbytes}
            for tool in tools:
                row[tool] = tool_stats(times[tool], syncs[tool], nbytes)
            med = {tool: row[tool]["median"] for tool in tools}
            row["nlmr/s5cmd"] = med["nlmr"] / med["s5cmd"]
            durable = statistics.median(
                t + s for t, s in zip(times["s5cmd"], syncs["s5cmd"], strict=True)
            )
            row["nlmr/(s5cmd+sync)"] = med["nlmr"] / durable
            if f"s5cmd-j{jobs}" in med:
                row[f"nlmr/s5cmd-j{jobs}"] = med["nlmr"] / med[f"s5cmd-j{jobs}"]
            row["dvc/nlmr"] = med["dvc"] / med["nlmr"]
            # what dvc/nlmr would be if nlmr were as fast as s5cmd: the goal's ceiling here
            row["dvc/s5cmd"] = med["dvc"] / med["s5cmd"]
            # others on a shared machine only ever add time: there the ratio of the best runs
            # is the steadier figure
            best = {tool: row[tool]["best"] for tool in tools}
            row["best nlmr/s5cmd"] = best["nlmr"] / best["s5cmd"]
            row["best dvc/nlmr"] = best["dvc"] / best["nlmr"]
            row["goal_s5cmd_met"] = row["nlmr/s5cmd"] <= GOAL_S5CMD
            row["goal_dvc_met"] = row["dvc/nlmr"] >= GOAL_DVC
            results.append(row)
        if not args.no_noop:
            noop = noop_bench(env, bare_env, work, say)
    finally:
        server.stop()
        remove(work)

    cache = "page cache dropped before each run" if dropped else "drop_caches NOT permitted (warm)"
    goals = (f"nlmr <= {GOAL_S5CMD} x s5cmd; dvc pull + copy >= {GOAL_DVC} x nlmr; "
             f"no-op resync < {GOAL_NOOP} s")  # fmt: skip
    if args.json:
        out = {"cpus": os.cpu_count(), "cache": cache, "goals": goals, "jobs": jobs,
               "runs": args.runs, "load": loads, "results": results, "noop": noop}  # fmt: skip
        print(json.dumps(out, indent=2))
        return 0
    print(f"\n{cache}; {os.cpu_count()} CPUs; {args.runs} runs each; nlmr -j {jobs}; "
          f"1-min load {min(loads):.1f}-{max(loads):.1f}; seconds, median (best); "
          f"goals: {goals}")  # fmt: skip
    head = " | ".join(f"{t:>15}" for t in tools)
    print(f"{'data':8} {'files':>6} {'MB':>6} | {head} | {'nlmr/s5cmd':>14} | {'dvc/nlmr':>12}")
    for r in results:
        cells = " | ".join(f"{r[t]['median']:7.2f} ({r[t]['best']:5.2f})" for t in tools)
        print(f"{r['dataset']:8} {r['files']:>6} {r['bytes'] / 1e6:>6.0f} | {cells} | "
              f"{r['nlmr/s5cmd']:>4.2f} ({r['best nlmr/s5cmd']:4.2f}) "
              f"{'ok' if r['goal_s5cmd_met'] else 'NO':>2} | "
              f"{r['dvc/nlmr']:>3.1f} ({r['best dvc/nlmr']:3.1f}) "
              f"{'ok' if r['goal_dvc_met'] else 'NO':>2}")  # fmt: skip
        extra = [f"{k} {v:.2f}" for k, v in r.items()
                 if k.startswith(("nlmr/s5cmd-", "nlmr/(", "dvc/s5cmd"))]  # fmt: skip
        after = ", ".join(f"{t} {r[t]['sync_median']:.2f}" for t in tools)
        print(f"{'':8} {'; '.join(extra)}{'; ' if extra else ''}+sync median s: {after}")
    if noop:
        print(f"no-op resync of {noop['revisions']} revisions: median {noop['median']:.3f} s, "
              f"max {noop['max']:.3f} s ({'ok' if noop['goal_met'] else 'NOT met'}); page cache "
              f"dropped {noop['cold_cache']:.3f} s; first sync {noop['first_sync']:.1f} s; "
              f"`nlmr --help` {noop['nlmr_help']:.3f} s")  # fmt: skip
        if noop["no_bytecode_cache"]:
            bare = noop["no_bytecode_cache"]
            print(
                f"  without a bytecode cache (PYTHONDONTWRITEBYTECODE=1, nlmr compiled from "
                f"source each run): median {bare['median']:.3f} s, max {bare['max']:.3f} s"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
