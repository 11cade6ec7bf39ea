#!/usr/bin/env python3
"""Benchmark: where the CPU goes when one big object is fetched, by nlmr and by s5cmd.

What it measures
----------------
One local SeaweedFS S3 server (``tests/seaweedfs.py``) holds one object of ``--mib`` MiB
(default 1024, random bytes). Then, ``--runs`` times (default 3), alternating the order,
page cache dropped before each run, fresh destination:

* ``s5cmd``: ``s5cmd cp s3://… FILE`` (multipart download, nothing verified);
* ``nlmr``: a child process calling :func:`nlmr.transfer.fetch` on the object (ranged
  parts, sha256 of every byte, no fsync: what ``nlmr pull`` does);
* ``nlmr-nohash``: the same with sha256 replaced by a no-op: an experiment only, to see
  what the verification itself costs (nlmr never runs without it).

For each run: the wall time, the client's user and system CPU (``getrusage`` of the
child) and the server's CPU (``/proc/<pid>/stat`` before and after). On a machine whose
cores the server and the client share, a client that needs more CPU takes longer even
when the network is idle: this shows how much of nlmr's time over s5cmd's is the hash.

How to run (from the repository root, as root for drop_caches)
----------------------------------------------------------------
    .venv/bin/python bench/cpu_cost.py              # 1 GiB, 3 runs
    .venv/bin/python bench/cpu_cost.py --mib 256 --runs 1
"""

from __future__ import annotations

import argparse
import hashlib
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
for path in (BENCH, BENCH.parent / "tests", BENCH.parent):
    sys.path.insert(0, str(path))
import seaweedfs  # noqa: E402
from add_vs_dvc import S5CMD, MiB  # noqa: E402
from sync_vs_peers import cold, remove  # noqa: E402

BUCKET = "cpubench"
CHILD = r"""
import os, sys
from pathlib import Path
from nlmr import transfer
from nlmr.store.base import open_store
key, size, sha, dest, nohash = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
if nohash == "1":  # the experiment: what the sha256 itself costs
    class Nothing:
        def update(self, data): pass
        def hexdigest(self): return sha
    transfer.hashlib = type("hashlib", (), {"sha256": staticmethod(Nothing)})
store = open_store(f"s3://{os.environ['BENCH_BUCKET']}", endpoint_url=os.environ["BENCH_EP"])
item = transfer.Fetch(key, size, sha, Path(dest), "bench")
report = transfer.fetch(store, [item], durable=False, mode=0o644)
assert not report.failed, report.failed
"""


def server_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mib", type=int, default=1024, help="object size in MiB (default 1024)")
    ap.add_argument("--runs", type=int, default=3, help="runs per variant (default 3)")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="nlmr-bench-cpu-"))
    server = seaweedfs.start(work / "weed")
    env = {**seaweedfs.s3_env(server), "BENCH_EP": server.endpoint, "BENCH_BUCKET": BUCKET}
    variants = ["s5cmd", "nlmr", "nlmr-nohash"]
    rows: dict[str, list[tuple[float, float, float, float]]] = {v: [] for v in variants}
    try:
        server.client().create_bucket(Bucket=BUCKET)  # type: ignore[attr-defined]
        src = work / "object"
        size = args.mib * MiB
        digest = hashlib.sha256()
        with open(src, "wb") as fh:
            for _ in range(args.mib // 64 or 1):
                block = os.urandom(min(size, 64 * MiB))
                digest.update(block)
                fh.write(block)
        size = src.stat().st_size
        sha = digest.hexdigest()
        upload = [S5CMD, "--endpoint-url", server.endpoint, "cp", str(src), f"s3://{BUCKET}/object"]
        subprocess.run(upload, env=env, check=True, capture_output=True)
        src.unlink()
        for run in range(args.runs):
            for variant in variants if run % 2 == 0 else variants[::-1]:
                dest = work / f"out-{variant}-{run}"
                if variant == "s5cmd":
                    cmd = [S5CMD, "--endpoint-url", server.endpoint, "cp",
                           f"s3://{BUCKET}/object", str(dest)]  # fmt: skip
                else:
                    nohash = "1" if variant == "nlmr-nohash" else "0"
                    cmd = [sys.executable, "-c", CHILD, "object", str(size), sha, str(dest), nohash]
                cold(work)
                before = resource.getrusage(resource.RUSAGE_CHILDREN)
                cpu0 = server_cpu(server.process.pid)
                t0 = time.perf_counter()
                subprocess.run(cmd, env=env, check=True, capture_output=True)
                wall = time.perf_counter() - t0
                after = resource.getrusage(resource.RUSAGE_CHILDREN)
                row = (wall, after.ru_utime - before.ru_utime, after.ru_stime - before.ru_stime,
                       server_cpu(server.process.pid) - cpu0)  # fmt: skip
                rows[variant].append(row)
                wall_s, user, system, served = row
                print(f"  run {run + 1} {variant:12} wall {wall_s:5.2f}s  client user {user:5.2f}s"
                      f" sys {system:5.2f}s  server {served:5.2f}s", flush=True)  # fmt: skip
                dest.unlink()
    finally:
        server.stop()
        remove(work)
    print(f"\n{args.mib} MiB object, {os.cpu_count()} CPUs, median of {args.runs} runs, seconds")
    print(f"{'variant':12} {'wall':>6} {'user':>6} {'sys':>6} {'server':>7}")
    for variant in variants:
        med = [statistics.median(r[i] for r in rows[variant]) for i in range(4)]
        print(f"{variant:12} {med[0]:6.2f} {med[1]:6.2f} {med[2]:6.2f} {med[3]:7.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
