"""nlmr pull against a real S3 server (SeaweedFS): with credentials, from a public bucket
over plain HTTP with none, through a server killed and restarted mid-pull, after the
client itself was killed; and real transformers loading what it pulled, offline."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import seaweedfs
from conftest import CARD, REPO, write_dvc_config

from nlmr import puller, transfer
from nlmr.add import add
from nlmr.config import settings
from nlmr.remote import resolve_remote
from nlmr.storecatalogue import build_catalogue, upload_catalogue

pytestmark = pytest.mark.slow
MiB = 1 << 20


def _content(size: int, seed: int) -> bytes:
    block = (seed.to_bytes(4, "big") + uuid.uuid4().bytes) * (MiB // 20 + 1)
    return (block * (size // len(block) + 1))[:size]


def _registry(tmp: Path, url: str, endpoint: str) -> Path:
    reg = tmp / "registry"
    (reg / "models").mkdir(parents=True)
    (reg / "datasets").mkdir()
    write_dvc_config(reg, url, endpoint)
    return reg


def _publish(reg: Path) -> None:
    remote = resolve_remote(reg)
    cat, problems = build_catalogue(reg, remote_url=remote.url)
    assert not problems
    upload_catalogue(remote.open(), cat)


def _add(reg: Path, tmp: Path, entry_id: str, files: dict[str, bytes]) -> Any:
    src = tmp / f"src-{entry_id.replace('/', '-')}"
    for rel, data in files.items():
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_bytes(data)
    return add(str(src), entry_id, registry=reg, card_fields=CARD, progress=False)


def _clean_env(**extra: str) -> dict[str, str]:
    """A login node's environment: no AWS credentials, no configuration."""
    keep = ("PATH", "HOME", "LANG", "TMPDIR")
    env = {k: v for k, v in os.environ.items() if k in keep}
    return {**env, "NLMR_CONFIG": "/nonexistent/config.yaml", **extra}


def _nlmr(args: list[str], env: dict[str, str], **kw: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "nlmr", *args],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
        cwd=kw.pop("cwd", REPO),
        **kw,
    )


def test_public_bucket_over_plain_http_needs_no_credentials(
    s3: tuple[Any, str], tmp_path: Path
) -> None:
    server, _ = s3
    prefix = f"store-{uuid.uuid4().hex[:8]}"
    reg = _registry(tmp_path, f"s3://{seaweedfs.PUBLIC_BUCKET}/{prefix}", server.endpoint)
    files = {"config.json": b'{"a": 1}', "weights.dat": _content(3 * MiB, 1)}
    added = _add(reg, tmp_path, "acme/open", files)
    _publish(reg)

    url = f"{server.endpoint}/{seaweedfs.PUBLIC_BUCKET}/{prefix}"
    env = _clean_env(NLMR_REMOTE=url)
    dest = tmp_path / "out"
    done = _nlmr(["pull", "acme/open", "--to", str(dest), "--json"], env)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["ok"] and report["source"] == f"store {url}"
    assert report["revision_id"] == added.revision_id
    assert {p: (dest / p).read_bytes() for p in files} == files

    # the same bucket through s3:// and its endpoint, unsigned, still without credentials
    cache = tmp_path / "cache"
    s3_env = _clean_env(
        NLMR_REMOTE=f"s3://{seaweedfs.PUBLIC_BUCKET}/{prefix}", NLMR_ENDPOINT_URL=server.endpoint
    )
    done = _nlmr(["pull", "acme/open", "--hf-cache", str(cache), "-q"], s3_env)
    assert done.returncode == 0, done.stderr
    snap = Path(done.stdout.strip())
    assert (snap / "weights.dat").read_bytes() == files["weights.dat"]
    # info and ls work from the store's catalogue alone
    info = _nlmr(["info", "acme/open", "--json"], env)
    assert info.returncode == 0, info.stderr
    assert json.loads(info.stdout)["entry"]["id"] == "acme/open"
    # a private bucket refuses anonymous readers, with a clear message
    private = _nlmr(["pull", "acme/open"], _clean_env(NLMR_REMOTE=f"{server.endpoint}/{s3[1]}"))
    assert private.returncode == 1 and "Traceback" not in private.stderr
    assert "access denied" in private.stderr or "no such" in private.stderr


def test_server_killed_and_restarted_mid_pull(
    s3: tuple[Any, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server, bucket = s3
    monkeypatch.setattr(transfer, "LARGE", 4 * MiB)  # parted, concurrent ranged GETs
    monkeypatch.setattr(transfer, "PART", 1 * MiB)
    reg = _registry(tmp_path, f"s3://{bucket}/store", server.endpoint)
    files = {f"shard-0000{n}.dat": _content(10 * MiB, n) for n in range(3)}
    files |= {f"small/{n}.txt": _content(50_000, 10 + n) for n in range(20)}
    _add(reg, tmp_path, "acme/big", files)
    _publish(reg)
    total = sum(map(len, files.values()))

    killed = threading.Event()
    received = [0]
    lock = threading.Lock()
    real_fetch = puller._fetch

    def watched(store: Any, fetches: Any, jobs: int, fsync: bool, on_bytes: Any) -> Any:
        def counting(n: int) -> None:
            on_bytes(n)
            with lock:
                received[0] += n
                fire = received[0] > total // 3 and not killed.is_set()
                if fire:
                    killed.set()
            if fire:  # the server dies with requests in flight
                server.kill()

        return real_fetch(store, fetches, jobs, fsync, counting)

    monkeypatch.setattr(puller, "_fetch", watched)
    s = settings(remote=f"s3://{bucket}/store", endpoint_url=server.endpoint, jobs=4)
    dest = tmp_path / "out"
    outcome: list[Any] = []
    worker = threading.Thread(
        target=lambda: outcome.append(puller.pull("acme/big", to=dest, settings=s, progress=False))
    )
    worker.start()
    assert killed.wait(120)
    time.sleep(0.5)
    # from this thread: tests/seaweedfs.py ties a server's life to the thread starting it
    server.restart()
    worker.join(300)
    [report] = outcome
    assert report.ok, report.failed
    assert report.fetched == len(files) and report.received >= total
    assert {p: (dest / p).read_bytes() for p in files} == files
    assert not list(dest.rglob("*.partial")) and not list(dest.rglob("*.prefix"))


def test_a_killed_pull_resumes_where_it_stopped(s3: tuple[Any, str], tmp_path: Path) -> None:
    server, bucket = s3
    reg = _registry(tmp_path, f"s3://{bucket}/store", server.endpoint)
    files = {"weights.dat": _content(400 * MiB, 7), "config.json": b"{}"}
    _add(reg, tmp_path, "acme/huge", files)
    _publish(reg)
    env = {
        **seaweedfs.s3_env(server),
        "NLMR_CONFIG": "/nonexistent/config.yaml",
        "NLMR_REMOTE": f"s3://{bucket}/store",
        "NLMR_ENDPOINT_URL": server.endpoint,
    }
    dest = tmp_path / "out"
    args = [sys.executable, "-m", "nlmr", "pull", "acme/huge", "--to", str(dest), "-j", "8"]
    proc = subprocess.Popen(
        args, env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    size = len(files["weights.dat"])
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # until a fifth of the big file (in parts) is verified
        with contextlib.suppress(OSError, ValueError):
            [side] = dest.glob(".*.prefix")
            if int(side.read_bytes() or b"0") > size // 5:
                break
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (dest / "weights.dat").exists()  # nothing unverified is visible
    assert list(dest.glob(".*.partial"))  # the partial work is kept

    done = _nlmr(["pull", "acme/huge", "--to", str(dest), "--json"], env)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["ok"] and report["received"] <= size - size // 5  # the rest was kept
    assert (dest / "weights.dat").read_bytes() == files["weights.dat"]
    again = _nlmr(["pull", "acme/huge", "--to", str(dest)], env)
    assert again.returncode == 0 and "already complete" in again.stderr


LOAD = r"""
import hashlib, json, sys, torch
from transformers import AutoModelForMaskedLM, AutoTokenizer
ref = sys.argv[1]
tok = AutoTokenizer.from_pretrained(ref)
model = AutoModelForMaskedLM.from_pretrained(ref)
ids = tok("w1 w2 w3", return_tensors="pt")
with torch.no_grad():
    logits = model(**ids).logits
print(json.dumps([ids["input_ids"].tolist(), hashlib.sha256(logits.numpy().tobytes()).hexdigest()]))
"""


def test_pulled_model_loads_offline_by_hub_id_and_by_path(
    s3: tuple[Any, str], tmp_path: Path, tiny_model: tuple[Path, Path]
) -> None:
    server, bucket = s3
    reg = _registry(tmp_path, f"s3://{bucket}/store", server.endpoint)
    model, _ = tiny_model
    add(str(model), "acme/tiny-bert", registry=reg, card_fields=CARD, progress=False)
    _publish(reg)
    env = {
        **seaweedfs.s3_env(server),
        "NLMR_CONFIG": "/nonexistent/config.yaml",
        "NLMR_REMOTE": f"s3://{bucket}/store",
        "NLMR_ENDPOINT_URL": server.endpoint,
        "HF_HUB_CACHE": str(tmp_path / "hf"),
    }
    done = _nlmr(["pull", "acme/tiny-bert"], env)
    assert done.returncode == 0, done.stderr
    plain = _nlmr(["pull", "acme/tiny-bert", "--to", str(tmp_path / "plain"), "-q"], env)
    assert plain.returncode == 0, plain.stderr

    offline = {
        **_clean_env(),
        "HF_HUB_CACHE": str(tmp_path / "hf"),
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_VERBOSITY": "error",
    }

    def load(ref: str) -> Any:
        out = subprocess.run(
            [sys.executable, "-c", LOAD, ref],
            env=offline,
            capture_output=True,
            text=True,
            check=False,
            timeout=300,
        )
        assert out.returncode == 0, out.stderr[-3000:]
        return json.loads(out.stdout.strip().splitlines()[-1])

    expected = load(str(model))
    assert load("acme/tiny-bert") == expected  # no nlmr involved: huggingface_hub's cache
    assert load(str(tmp_path / "plain")) == expected


def test_public_bucket_over_real_https(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """TLS as a public store serves it: a certificate the client is told to trust via
    SSL_CERT_FILE; without it, a clear refusal."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    with seaweedfs.running(tmp_path / "weed", tls=(cert, key)) as server:
        assert server.https_endpoint
        for k, v in seaweedfs.s3_env(server).items():  # the publisher's credentials
            if k.startswith("AWS_"):
                monkeypatch.setenv(k, v)
        monkeypatch.delenv("AWS_CA_BUNDLE", raising=False)
        prefix = f"store-{uuid.uuid4().hex[:8]}"
        reg = _registry(tmp_path, f"s3://{seaweedfs.PUBLIC_BUCKET}/{prefix}", server.endpoint)
        files = {"config.json": b'{"tls": true}', "weights.dat": _content(2 * MiB, 3)}
        _add(reg, tmp_path, "acme/tls", files)
        _publish(reg)
        url = f"{server.https_endpoint}/{seaweedfs.PUBLIC_BUCKET}/{prefix}"
        dest = tmp_path / "out"
        trusted = _clean_env(NLMR_REMOTE=url, SSL_CERT_FILE=str(cert))
        done = _nlmr(["pull", "acme/tls", "--to", str(dest), "-q"], trusted)
        assert done.returncode == 0, done.stderr
        assert {p: (dest / p).read_bytes() for p in files} == files
        # and through a proxy: a CONNECT tunnel, TLS end to end
        proxy = _RelayProxy()
        try:
            via = {**trusted, "https_proxy": f"http://127.0.0.1:{proxy.port}", "no_proxy": ""}
            tunnelled = _nlmr(["pull", "acme/tls", "--to", str(tmp_path / "t"), "-q"], via)
            assert tunnelled.returncode == 0, tunnelled.stderr
            assert (tmp_path / "t/weights.dat").read_bytes() == files["weights.dat"]
            host = server.https_endpoint.split("//", 1)[1]
            assert len(proxy.lines) >= 2  # the catalogue's tunnel, and the objects'
            assert all(line.startswith(f"CONNECT {host} HTTP/1.") for line in proxy.lines)
        finally:
            proxy.close()
        refused = _nlmr(["pull", "acme/tls", "--to", str(tmp_path / "x")], _clean_env(
            NLMR_REMOTE=url, SSL_CERT_FILE=str(tmp_path / "key.pem")))  # fmt: skip
        assert refused.returncode == 1 and "Traceback" not in refused.stderr
        assert "SSL_CERT_FILE" in refused.stderr


def test_missing_and_corrupt_objects_in_s3(s3: tuple[Any, str], tmp_path: Path) -> None:
    server, bucket = s3
    reg = _registry(tmp_path, f"s3://{bucket}/store", server.endpoint)
    files = {"a.txt": b"alpha" * 1000, "b.txt": b"beta" * 1000, "c.txt": b"gamma" * 1000}
    _add(reg, tmp_path, "acme/faulty", files)
    _publish(reg)
    client = server.client()

    def key(data: bytes) -> str:
        import hashlib

        md5 = hashlib.md5(data).hexdigest()
        return f"store/files/md5/{md5[:2]}/{md5[2:]}"

    client.delete_object(Bucket=bucket, Key=key(files["a.txt"]))  # type: ignore[attr-defined]
    client.put_object(Bucket=bucket, Key=key(files["b.txt"]), Body=b"beta" * 999 + b"XXXX")  # type: ignore[attr-defined]
    env = {
        **seaweedfs.s3_env(server),
        "NLMR_CONFIG": "/nonexistent/config.yaml",
        "NLMR_REMOTE": f"s3://{bucket}/store",
        "NLMR_ENDPOINT_URL": server.endpoint,
    }
    dest = tmp_path / "out"
    done = _nlmr(["pull", "acme/faulty", "--to", str(dest)], env)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert f"a.txt: s3://{bucket}/{key(files['a.txt'])}: no such object" in done.stderr
    assert "b.txt:" in done.stderr and "sha256 mismatch" in done.stderr
    assert (dest / "c.txt").read_bytes() == files["c.txt"]  # the rest is in place
    assert not (dest / "a.txt").exists() and not (dest / "b.txt").exists()
    client.put_object(Bucket=bucket, Key=key(files["a.txt"]), Body=files["a.txt"])  # type: ignore[attr-defined]
    client.put_object(Bucket=bucket, Key=key(files["b.txt"]), Body=files["b.txt"])  # type: ignore[attr-defined]
    again = _nlmr(["pull", "acme/faulty", "--to", str(dest), "--json"], env)
    report = json.loads(again.stdout)
    assert again.returncode == 0 and report["fetched"] == 2 and report["present"] == 1


class _RelayProxy:
    """A minimal HTTP proxy for tests: CONNECT tunnels, and absolute-form requests relayed
    as they are (servers accept them); records each connection's first request line."""

    def __init__(self) -> None:
        import socket

        self.lines: list[str] = []
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: Any) -> None:
        import socket
        import urllib.parse

        data = b""
        while b"\r\n\r\n" not in data:
            got = client.recv(65536)
            if not got:
                client.close()
                return
            data += got
        line = data.split(b"\r\n", 1)[0].decode()
        self.lines.append(line)
        method, target, _ = line.split(" ", 2)
        if method == "CONNECT":
            host, port = target.rsplit(":", 1)
            upstream = socket.create_connection((host, int(port)))
            client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            data = data.split(b"\r\n\r\n", 1)[1]
        else:
            u = urllib.parse.urlsplit(target)
            upstream = socket.create_connection((u.hostname, u.port or 80))
        if data:
            upstream.sendall(data)

        def pipe(a: Any, b: Any) -> None:
            try:
                while chunk := a.recv(65536):
                    b.sendall(chunk)
            except OSError:
                pass
            for s in (a, b):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

        threading.Thread(target=pipe, args=(upstream, client), daemon=True).start()
        pipe(client, upstream)

    def close(self) -> None:
        self.server.close()


def test_pull_through_an_http_proxy(s3: tuple[Any, str], tmp_path: Path) -> None:
    """Login nodes that reach the world only through a proxy: catalogue and objects go
    through it (absolute-form requests for http://; CONNECT tunnels are in the TLS test)."""
    server, _ = s3
    prefix = f"store-{uuid.uuid4().hex[:8]}"
    reg = _registry(tmp_path, f"s3://{seaweedfs.PUBLIC_BUCKET}/{prefix}", server.endpoint)
    files = {"config.json": b'{"proxied": true}', "weights.dat": _content(2 * MiB, 9)}
    _add(reg, tmp_path, "acme/proxied", files)
    _publish(reg)
    proxy = _RelayProxy()
    try:
        url = f"{server.endpoint}/{seaweedfs.PUBLIC_BUCKET}/{prefix}"
        env = _clean_env(NLMR_REMOTE=url, http_proxy=f"http://127.0.0.1:{proxy.port}", no_proxy="")
        dest = tmp_path / "out"
        done = _nlmr(["pull", "acme/proxied", "--to", str(dest), "-q"], env)
        assert done.returncode == 0, done.stderr
        assert {p: (dest / p).read_bytes() for p in files} == files
        assert any("/nlmr/catalogue.json" in line for line in proxy.lines)
        assert any("/files/md5/" in line and line.startswith("GET http://") for line in proxy.lines)
    finally:
        proxy.close()
