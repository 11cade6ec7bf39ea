#!/usr/bin/env python3
"""Benchmark: ``nlmr.transfer.fetch`` (verified) vs ``s5cmd cp`` (unverified) from one local S3.

What it measures
----------------
One local SeaweedFS S3 server (``tests/seaweedfs.py``) is started and two data sets are
generated once (fixed seed, incompressible bytes) and uploaded once, under DVC keys
(``files/md5/ab/cdef…``), to ``s3://bench/model/`` and ``s3://bench/dataset/``:

1. model:   config.json, model.safetensors.index.json, generation_config.json and 4 shards
            of 256 MiB (1 GiB; ``--quick``: 4 x 32 MiB);
2. dataset: 2,000 files (``--quick``: 200) of 2 KiB-512 KiB, skewed towards small ones,
            about 257 MB in all.

Then, for each data set, alternating the order every run, cold (fresh destination
directory; ``sync; echo 3 > /proc/sys/vm/drop_caches`` before each run):

* ``nlmr``: a subprocess calling :func:`nlmr.transfer.fetch` on every object (sha256 and
  size of every byte checked, files fsynced before their atomic rename, mode 0444);
* ``nlmr-nosync``: the same with ``durable=False`` (no fsync);
* ``s5cmd``: ``s5cmd --endpoint-url … cp 's3://bench/<set>/*' DIR/`` with s5cmd's defaults
  (256 workers, 5 concurrent 50 MiB parts per file): transfer only, nothing verified;
* ``s5cmd-matched``: the same with nlmr's concurrency: ``--numworkers`` = nlmr's jobs (8),
  ``cp --concurrency 2`` (4 shards x 2 parts = 8 streams) and ``--part-size`` = nlmr's
  part size (8 MiB).

Every timed run is followed (untimed) by ``sync``, which is timed separately and reported
as ``+sync``: s5cmd never fsyncs, so ``s5cmd +sync`` is the durable floor to compare
``nlmr`` with. Reported: median seconds per variant, the ratios to s5cmd, and the load
average (the machine may be shared). The goal is nlmr (verifying) <= 1.1 x s5cmd
(transfer only): ``nlmr-nosync/s5cmd`` compares like with like (neither syncs), and
``nlmr/s5cmd+sync`` does so for durable copies.

How to run (from the repository root, as root for drop_caches)
----------------------------------------------------------------
    .venv/bin/python bench/fetch_vs_s5cmd.py             # 1 GiB model, 2,000 files, 3 runs
    .venv/bin/python bench/fetch_vs_s5cmd.py --quick     # 128 MiB model, 200 files
    .venv/bin/python bench/fetch_vs_s5cmd.py --json      # machine-readable results
"""

from __future__ import annotations

# The timed child process imports only what it needs (see child()): everything else is
# imported inside the functions of the parent, so the child starts as fast as nlmr would.
import json
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import argparse
    import random

REPO = Path(__file__).resolve().parent.parent

S5CMD = str(Path(sys.executable).parent / "s5cmd")
MiB = 1 << 20
BUCKET = "bench"
VARIANTS = ("nlmr", "nlmr-nosync", "s5cmd", "s5cmd-matched")


def seaweedfs() -> Any:
    sys.path.insert(0, str(REPO / "tests"))
    import seaweedfs as module

    return module


def write_random(path: Path, rng: random.Random, n: int, prefix: bytes = b"") -> None:
    with open(path, "wb") as fh:
        fh.write(prefix)
        while n > 0:
            fh.write(rng.randbytes(min(n, 64 * MiB)))
            n -= min(n, 64 * MiB)


def make_model(root: Path, shard: int, rng: random.Random) -> None:
    import struct

    root.mkdir(parents=True)
    (root / "config.json").write_text(json.dumps({"architectures": ["LlamaForCausalLM"]}))
    (root / "generation_config.json").write_text(json.dumps({"max_new_tokens": 64}))
    weight_map = {}
    for i in range(1, 5):
        name, tensor = f"model-{i:05d}-of-00004.safetensors", f"w{i}"
        n = shard - 8 - 128  # header padded with spaces to 128 bytes (allowed by the format)
        header = json.dumps({tensor: {"dtype": "U8", "shape": [n], "data_offsets": [0, n]}})
        header_bytes = header.encode().ljust(128)
        write_random(root / name, rng, n, struct.pack("<Q", len(header_bytes)) + header_bytes)
        weight_map[tensor] = name
    (root / "model.safetensors.index.json").write_text(
        json.dumps({"metadata": {"total_size": 4 * (shard - 136)}, "weight_map": weight_map})
    )


def make_dataset(root: Path, files: int, rng: random.Random) -> None:
    # sizes 2 KiB-512 KiB, cubed uniform (many small, some large), scaled to ~128 KiB mean
    raw = [rng.random() ** 3 for _ in range(files)]
    scale = (128.5 * 1024 * files - 2048 * files) / sum(raw)
    for i, r in enumerate(raw):
        size = min(512 * 1024, 2048 + int(r * scale))
        path = root / f"part-{i % 8}" / f"shard-{i:05d}.bin"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(rng.randbytes(size))


def upload(server: Any, src: Path, prefix: str) -> list[dict[str, Any]]:
    """Upload every file of ``src`` under its DVC key; returns what to fetch."""
    import hashlib

    from nlmr.store import Upload, file_key, open_store

    store = open_store(f"s3://{BUCKET}/{prefix}", endpoint_url=server.endpoint)
    items, uploads = [], []
    for path in sorted(p for p in src.rglob("*") if p.is_file()):
        data = path.read_bytes()
        md5 = hashlib.md5(data).hexdigest()
        key = file_key(md5)
        uploads.append(Upload(key, path, len(data), md5))
        items.append(
            {
                "key": key,
                "size": len(data),
                "sha256": hashlib.sha256(data).hexdigest(),
                "label": f"bench/{prefix}: {path.relative_to(src)}",
            }
        )
    store.upload(uploads, jobs=8)
    return items


def drop_caches() -> bool:
    os.sync()
    try:
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
        return True
    except OSError:
        return False


def child(argv: list[str]) -> int:
    """The timed nlmr process: fetch every item into ``--dest`` (same layout as s5cmd's).

    Arguments: ``SPEC --dest DIR [--jobs N] [--part-mib N] [--nosync]`` (parsed by hand:
    argparse alone costs 25 ms of start-up).
    """
    sys.path.insert(0, str(REPO))
    from nlmr import transfer
    from nlmr.store import open_store

    opts = dict(zip(argv[1::2], argv[2::2], strict=False))
    if "--part-mib" in opts:
        transfer.PART = int(opts["--part-mib"]) * MiB
    spec = json.loads(Path(argv[0]).read_text())
    store = open_store(spec["url"], endpoint_url=spec["endpoint"])
    dest = Path(opts["--dest"])
    items = [
        transfer.Fetch(i["key"], i["size"], i["sha256"], dest / i["key"], i["label"])
        for i in spec["items"]
    ]
    kwargs = {"jobs": int(opts["--jobs"])} if "--jobs" in opts else {}
    report = transfer.fetch(store, items, durable="--nosync" not in argv, **kwargs)
    if report.failed or len(report.done) != len(items):
        print(report.failed[:3], file=sys.stderr)
        return 1
    return 0


def transfer_part_mib() -> int:
    from nlmr import transfer

    return transfer.PART // MiB


def timed(cmd: list[str], env: dict[str, str]) -> float:
    import subprocess

    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - t0
    if proc.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return elapsed


def count_files(root: Path) -> int:
    return sum(len(files) for _, _, files in os.walk(root))


def run_variant(
    variant: str,
    server: Any,
    env: dict[str, str],
    spec: Path,
    dest: Path,
    prefix: str,
    n: int,
    args: argparse.Namespace,
) -> tuple[float, float]:
    """One cold run: (seconds, seconds of the ``sync`` after it)."""
    import shutil

    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    jobs = args.jobs or 8
    if variant.startswith("nlmr"):
        cmd = [sys.executable, __file__, "--child", str(spec), "--dest", str(dest)]
        cmd += ["--jobs", str(jobs)] if args.jobs else []
        cmd += ["--part-mib", str(args.part_mib)] if args.part_mib else []
        cmd += ["--nosync", "1"] if variant == "nlmr-nosync" else []
    else:
        cmd = [S5CMD, "--endpoint-url", server.endpoint]
        if variant == "s5cmd-matched":
            cmd += ["--numworkers", str(jobs)]
        cmd += ["cp"]
        if variant == "s5cmd-matched":
            part = args.part_mib or transfer_part_mib()
            cmd += ["--concurrency", str(max(1, jobs // 4)), "--part-size", str(part)]
        cmd += [f"s3://{BUCKET}/{prefix}/*", f"{dest}/"]
    drop_caches()
    elapsed = timed(cmd, env)
    t0 = time.perf_counter()
    os.sync()
    synced = time.perf_counter() - t0
    if count_files(dest) != n:
        raise RuntimeError(f"{variant}: {count_files(dest)} files, expected {n}")
    return elapsed, synced


def main() -> int:
    if sys.argv[1:2] == ["--child"]:
        return child(sys.argv[2:])
    import argparse
    import random
    import shutil
    import statistics
    import tempfile

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="128 MiB model, 200 files")
    ap.add_argument("--json", action="store_true", help="print results as JSON")
    ap.add_argument("--runs", type=int, default=3, help="runs per variant and data set")
    ap.add_argument("--jobs", type=int, default=0, help="nlmr jobs (default: fetch's default)")
    ap.add_argument("--part-mib", type=int, default=0, help="nlmr part size (default: PART)")
    ap.add_argument("--only", choices=["model", "dataset"], help="one data set only")
    ap.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated subset")
    args = ap.parse_args()
    say = (lambda *a: print(*a, file=sys.stderr, flush=True)) if args.json else print
    variants = [v for v in args.variants.split(",") if v]

    work = Path(tempfile.mkdtemp(prefix="nlmr-bench-fetch-"))
    weed = seaweedfs()
    server = weed.start(work / "weed")
    env = weed.s3_env(server)
    os.environ.update({k: v for k, v in env.items() if k.startswith("AWS_")})
    results, dropped = [], drop_caches()
    try:
        server.client().create_bucket(Bucket=BUCKET)  # type: ignore[attr-defined]
        rng = random.Random(20240601)
        sets = [("model", work / "src-model"), ("dataset", work / "src-dataset")]
        sets = [s for s in sets if args.only in (None, s[0])]
        t0 = time.perf_counter()
        specs = {}
        for name, src in sets:
            if name == "model":
                make_model(src, (32 if args.quick else 256) * MiB, rng)
            else:
                make_dataset(src, 200 if args.quick else 2000, rng)
            items = upload(server, src, name)
            spec = work / f"{name}.json"
            url = f"s3://{BUCKET}/{name}"
            spec.write_text(json.dumps({"url": url, "endpoint": server.endpoint, "items": items}))
            specs[name] = (spec, items)
            shutil.rmtree(src)  # only the server's copy is read from now on
        say(f"generated and uploaded in {time.perf_counter() - t0:.1f}s under {work}")
        for name, (spec, items) in specs.items():
            nbytes = sum(i["size"] for i in items)
            times: dict[str, list[float]] = {v: [] for v in variants}
            syncs: dict[str, list[float]] = {v: [] for v in variants}
            loads: list[float] = []
            for run in range(args.runs):
                order = variants if run % 2 == 0 else variants[::-1]
                for variant in order:
                    t, s = run_variant(
                        variant, server, env, spec, work / "dest", name, len(items), args
                    )
                    times[variant].append(t)
                    syncs[variant].append(s)
                    loads.append(os.getloadavg()[0])
                    say(
                        f"  {name:8} run {run + 1} {variant:14} {t:7.2f}s  (+sync {s:5.2f}s)"
                        f"  load {os.getloadavg()[0]:.2f}"
                    )
            row: dict[str, Any] = {
                "dataset": name,
                "files": len(items),
                "bytes": nbytes,
                "load_median": statistics.median(loads),
            }
            for v in variants:
                row[v] = {
                    "runs": times[v],
                    "median": statistics.median(times[v]),
                    "sync_median": statistics.median(syncs[v]),
                    "mb_s": nbytes / 1e6 / statistics.median(times[v]),
                }
            for v in variants:
                for base in ("s5cmd", "s5cmd-matched"):
                    if v.startswith("nlmr") and base in row:
                        row[f"{v}/{base}"] = row[v]["median"] / row[base]["median"]
            for base in ("s5cmd", "s5cmd-matched"):
                if "nlmr" in row and base in row:
                    with_sync = [t + s for t, s in zip(times[base], syncs[base], strict=True)]
                    row[f"nlmr/{base}+sync"] = row["nlmr"]["median"] / statistics.median(with_sync)
            results.append(row)
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)

    cache = "page cache dropped before each run" if dropped else "drop_caches NOT permitted (warm)"
    if args.json:
        print(
            json.dumps(
                {
                    "cpus": os.cpu_count(),
                    "cache": cache,
                    "goal": "nlmr <= 1.1 x s5cmd",
                    "jobs": args.jobs or "default",
                    "results": results,
                },
                indent=2,
            )
        )
        return 0
    print(
        f"\n{cache}; {os.cpu_count()} CPUs; {args.runs} runs each; medians in seconds "
        "(+sync: the `sync` after the run); goal: nlmr <= 1.1 x s5cmd"
    )
    for r in results:
        print(
            f"{r['dataset']}: {r['files']} files, {r['bytes'] / 1e6:.0f} MB, "
            f"median load {r['load_median']:.1f}"
        )
        for v in variants:
            print(
                f"  {v:14} {r[v]['median']:7.2f} s  {r[v]['mb_s']:6.0f} MB/s"
                f"  +sync {r[v]['sync_median']:5.2f} s"
            )
        for k, val in r.items():
            if "/" in k:
                print(f"  {k:28} {val:5.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
