"""A lean S3 client for the hot path: HEAD, single-part PUT and streaming GET over keep-alive
connections.

botocore spends about 3.5 ms of CPU on every request (signing, event hooks, parsing);
uploading 2,000 small files that is seven seconds of a login node's CPU before the
store has done anything. This module signs requests with AWS Signature Version 4
itself and sends them with ``http.client`` on one persistent connection per
thread. It is used only where it is simple and safe: S3-compatible endpoints
(path-style addressing) for HEAD, whole-object PUT, listing and (ranged) GET streamed into
the caller's buffers. Everything else (multipart uploads, AWS itself) stays with boto3.
Credentials are resolved by botocore, once.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import hmac
import socket
import threading
import time
import urllib.parse
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NoReturn
from xml.etree import ElementTree

from nlmr.errors import ObjectNotFoundError, StoreAccessError, StoreError, StoreUnavailableError
from nlmr.store.base import ObjectReader

if TYPE_CHECKING:
    import http.client

_RETRY_STATUS = {500, 502, 503, 504}
_ATTEMPTS = 4


@dataclass(frozen=True)
class Credentials:
    """Resolved once; ``secret_key`` is excluded from repr."""

    access_key: str
    secret_key: str
    token: str | None = None

    def __repr__(self) -> str:
        return f"Credentials(access_key={self.access_key[:4]}…)"


def _sign(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


class S3Http:
    """HEAD and PUT against ``endpoint/bucket/key`` with SigV4 (UNSIGNED-PAYLOAD)."""

    def __init__(
        self,
        endpoint_url: str,
        bucket: str,
        region: str,
        credentials: Credentials | Any | None,
        *,
        url: str,
    ) -> None:
        parsed = urllib.parse.urlsplit(endpoint_url)
        self.scheme = parsed.scheme or "https"
        self.host = parsed.netloc
        self.base_path = parsed.path.rstrip("/")
        self.bucket = bucket
        self.region = region
        self.credentials = credentials
        self.url = url  # for messages
        self._local = threading.local()
        self._keys: dict[tuple[str, str], bytes] = {}

    def where(self, key: str) -> str:
        """``s3://bucket/key`` for messages (keys here already carry the store's prefix)."""
        return f"s3://{self.bucket}/{key}"

    def _connection(self) -> http.client.HTTPConnection:
        import http.client  # not at import time: fetches never need it, and it costs 30 ms

        conn = getattr(self._local, "conn", None)
        if conn is None:
            hostname = urllib.parse.urlsplit(f"//{self.host}").hostname or self.host
            proxy = _proxy_for(self.scheme, hostname)
            # through a proxy: a CONNECT tunnel for https, the absolute URL for http
            where = f"{proxy[0]}:{proxy[1]}" if proxy else self.host
            if self.scheme == "https":
                import ssl

                conn = http.client.HTTPSConnection(
                    where, timeout=60, context=ssl.create_default_context()
                )
                if proxy:
                    conn.set_tunnel(self.host)
            else:
                conn = http.client.HTTPConnection(where, timeout=60)
            self._local.conn = conn
            self._local.prefix = f"http://{self.host}" if proxy and self.scheme == "http" else ""
        return conn

    def _drop_connection(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    def _current(self) -> Credentials | None:
        """The credentials to sign with now: temporary ones (SSO, assumed roles) are
        refreshed by botocore when they near expiry, so they are fetched per request."""
        source = self.credentials
        if source is None or isinstance(source, Credentials):
            return source
        frozen = source.get_frozen_credentials()
        return Credentials(frozen.access_key, frozen.secret_key, frozen.token)

    def _signing_key(self, creds: Credentials, date: str) -> bytes:
        cache = (date, creds.secret_key)
        if cache not in self._keys:
            k = _sign(("AWS4" + creds.secret_key).encode(), date)
            for part in (self.region, "s3", "aws4_request"):
                k = _sign(k, part)
            self._keys = {cache: k}  # one entry: the current day and key
        return self._keys[cache]

    def _headers(
        self, method: str, path: str, extra: dict[str, str], query: str = ""
    ) -> dict[str, str]:
        now = datetime.datetime.now(datetime.timezone.utc)
        amz_date = now.strftime("%Y%m%dT%H%M%SZ")
        headers = {
            "host": self.host,
            "x-amz-date": amz_date,
            "x-amz-content-sha256": "UNSIGNED-PAYLOAD",
            **{k.lower(): v for k, v in extra.items()},
        }
        creds = self._current()
        if creds is None:
            return headers  # anonymous: a public bucket
        if creds.token:
            headers["x-amz-security-token"] = creds.token
        names = sorted(headers)
        canonical = "\n".join(
            [
                method,
                path,
                query,
                "".join(f"{n}:{headers[n].strip()}\n" for n in names),
                ";".join(names),
                "UNSIGNED-PAYLOAD",
            ]
        )
        scope = f"{amz_date[:8]}/{self.region}/s3/aws4_request"
        to_sign = "\n".join(
            ["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()]
        )
        signature = hmac.new(
            self._signing_key(creds, amz_date[:8]), to_sign.encode(), hashlib.sha256
        ).hexdigest()
        headers["authorization"] = (
            f"AWS4-HMAC-SHA256 Credential={creds.access_key}/{scope}, "
            f"SignedHeaders={';'.join(names)}, Signature={signature}"
        )
        return headers

    def _path(self, key: str) -> str:
        if not key:
            return urllib.parse.quote(f"{self.base_path}/{self.bucket}", safe="/-_.~")
        return urllib.parse.quote(f"{self.base_path}/{self.bucket}/{key}", safe="/-_.~")

    def request(
        self,
        method: str,
        key: str,
        body: bytes = b"",
        headers: dict[str, str] | None = None,
        query: str = "",
    ) -> tuple[int, dict[str, str], bytes]:
        """Send one request, retrying transient failures; returns (status, headers, body).

        ``query`` must already be canonical (sorted, URI-encoded): it is signed as given.
        """
        from http.client import HTTPException

        path = self._path(key)
        extra = dict(headers or {})
        if method == "PUT":
            extra["content-length"] = str(len(body))
        last: BaseException | None = None
        for attempt in range(_ATTEMPTS):
            if attempt:
                time.sleep(0.2 * 2 ** (attempt - 1))
            try:
                conn = self._connection()
                conn.request(
                    method,
                    self._local.prefix + (f"{path}?{query}" if query else path),
                    body=body if method == "PUT" else None,
                    headers=self._headers(method, path, extra, query),
                )
                response = conn.getresponse()
                data = response.read()
            except (OSError, HTTPException) as exc:
                self._drop_connection()
                last = exc
                continue
            if response.status in _RETRY_STATUS:
                last = StoreUnavailableError(
                    f"{self.where(key)}: store error {response.status}", url=self.url, key=key
                )
                continue
            return response.status, {k.lower(): v for k, v in response.getheaders()}, data
        if isinstance(last, StoreError):
            raise last
        raise StoreUnavailableError(
            f"{self.where(key)}: cannot reach the store ({last})",
            url=self.url,
            key=key,
            hint=_hint_for(last),
        ) from last

    def head(self, key: str) -> int | None:
        status, headers, _ = self.request("HEAD", key)
        if status == 404:
            return None
        self._raise_for(status, key, b"")
        return int(headers.get("content-length", "0"))

    def put(self, key: str, data: bytes, md5_b64: str) -> str:
        """PUT a whole object with Content-MD5 (the server verifies it); returns the ETag."""
        status, headers, body = self.request("PUT", key, data, {"content-md5": md5_b64})
        self._raise_for(status, key, body)
        return headers.get("etag", "").strip('"')

    def get(self, key: str, start: int = 0, stop: int | None = None) -> HttpReader:
        """Open a GET of bytes ``[start, stop)`` (a Range request unless the whole object).

        GETs use their own keep-alive connection per thread, spoken to directly (see
        :class:`_GetConnection`). Unlike :meth:`request` this does not retry (beyond
        replacing a keep-alive connection the server had closed): the caller decides, as it
        knows which bytes it already has.

        Raises:
            ObjectNotFoundError: no such object (or bucket).
            StoreUnavailableError: no connection, or a 5xx answer.
        """
        path = self._path(key)
        extra = {}
        if start or stop is not None:
            extra["range"] = f"bytes={start}-{'' if stop is None else max(start, stop) - 1}"
        headers_out = self._headers("GET", path, extra)
        for attempt in range(2):
            conn: _GetConnection | None = getattr(self._local, "get_conn", None)
            reused = conn is not None
            try:
                if conn is None:
                    conn = self._local.get_conn = _GetConnection(self.scheme, self.host)
                # through a plain-HTTP proxy the request names the whole URL (absolute form)
                status, headers = conn.send(_request_bytes("GET", conn.prefix + path, headers_out))
                break
            except (OSError, ValueError) as exc:
                self._drop_get_connection()
                if reused and attempt == 0:
                    continue  # the server closed the idle connection: normal, try a new one
                raise StoreUnavailableError(
                    f"{self.where(key)}: cannot reach the store ({exc})",
                    url=self.url,
                    key=key,
                    hint=_hint_for(exc),
                ) from exc
        assert conn is not None  # the loop either broke out with a response or raised
        if status in (200, 206):
            return HttpReader(self, key, conn, status, headers, start, stop)
        try:
            body = conn.read_body(headers)  # error bodies are small; reading them keeps the
            if not conn.keep_alive:  # connection, unless the server closes it
                self._drop_get_connection()
        except (OSError, ValueError):
            self._drop_get_connection()
            body = b""
        if status == 416:  # start at or past the end: the object is shorter than that
            total = _total_size(headers.get("content-range"))
            if total is None:
                total = self.head(key)
            if total is not None:
                return HttpReader(self, key, None, status, {}, start, stop, size=total)
        if status == 404:
            code = _error_code(body)
            if code == "NoSuchBucket":
                self._raise_for(status, key, body)
            raise ObjectNotFoundError(f"{self.where(key)}: no such object", url=self.url, key=key)
        if status in _RETRY_STATUS:
            raise StoreUnavailableError(
                f"{self.where(key)}: store error {status}", url=self.url, key=key
            )
        self._raise_for(status, key, body)
        raise StoreError(f"{self.where(key)}: unexpected HTTP {status}", url=self.url, key=key)

    def _drop_get_connection(self) -> None:
        conn = getattr(self._local, "get_conn", None)
        if conn is not None:
            conn.close()
            self._local.get_conn = None

    def list(self, prefix: str, max_pages: int | None = None) -> dict[str, int] | None:
        """Every key under ``prefix`` with its size (ListObjectsV2, 1,000 per page); None when
        ``max_pages`` pages do not reach the end."""
        out: dict[str, int] = {}
        token: str | None = None
        pages = 0
        while True:
            params = {"list-type": "2", "prefix": prefix}
            if token:
                params["continuation-token"] = token
            query = "&".join(
                f"{urllib.parse.quote(k, safe='-_.~')}={urllib.parse.quote(v, safe='-_.~')}"
                for k, v in sorted(params.items())
            )
            status, _, body = self.request("GET", "", query=query)  # the bucket is the resource
            self._raise_for(status, prefix, body)
            root = ElementTree.fromstring(body)
            ns = root.tag.split("}", 1)[0] + "}" if root.tag.startswith("{") else ""
            for item in root.iter(f"{ns}Contents"):
                out[item.findtext(f"{ns}Key") or ""] = int(item.findtext(f"{ns}Size") or 0)
            token = root.findtext(f"{ns}NextContinuationToken")
            if (root.findtext(f"{ns}IsTruncated") or "").lower() != "true" or not token:
                return out
            pages += 1
            if max_pages is not None and pages >= max_pages:
                return None

    def _raise_for(self, status: int, key: str, body: bytes) -> None:
        if 200 <= status < 300:
            return
        code = _error_code(body)
        where = f"{self.where(key)}"
        if status == 403:
            raise StoreAccessError(
                f"{where}: access denied ({code or status})",
                url=self.url,
                key=key,
                hint="check the store credentials",
            )
        if code == "NoSuchBucket":
            raise ObjectNotFoundError(
                f"{self.url}: bucket does not exist",
                url=self.url,
                key=key,
                hint="create it, or fix the remote URL",
            )
        raise StoreError(f"{where}: {code or 'HTTP'} {status}", url=self.url, key=key)


def _hint_for(exc: BaseException | None) -> str:
    """What to check when a connection failed."""
    if type(exc).__name__ == "SSLCertVerificationError":  # no ssl import for plain http
        return (
            "the server's TLS certificate is not trusted: point SSL_CERT_FILE at the CA "
            "bundle that signed it"
        )
    return "check the endpoint URL and network"


def _error_code(body: bytes) -> str:
    """The ``<Code>`` of an S3 error document ("" when there is none)."""
    if b"<Code>" not in body:
        return ""
    return body.split(b"<Code>", 1)[1].split(b"</Code>", 1)[0].decode(errors="replace")


def _total_size(content_range: str | None) -> int | None:
    """N from ``bytes a-b/N`` or ``bytes */N``; None when absent or ``*``."""
    if not content_range or "/" not in content_range:
        return None
    total = content_range.rsplit("/", 1)[1].strip()
    return int(total) if total.isdigit() else None


def _proxy_for(scheme: str, host: str) -> tuple[str, int] | None:
    """The HTTP proxy to reach ``host`` through, from ``http_proxy``/``https_proxy`` and
    ``no_proxy`` as curl, pip and urllib read them (login nodes often allow nothing else);
    None for a direct connection."""
    import urllib.request

    url = urllib.request.getproxies().get(scheme)
    if not url or urllib.request.proxy_bypass(host):
        return None
    parsed = urllib.parse.urlsplit(url if "://" in url else f"http://{url}")
    if parsed.scheme != "http" or not parsed.hostname:
        from nlmr.errors import RemoteConfigError

        raise RemoteConfigError(
            f"unsupported proxy {url!r} ({scheme}_proxy)",
            hint="nlmr speaks to http:// proxies (CONNECT tunnels for https)",
        )
    return parsed.hostname, parsed.port or 80


def _connect_tunnel(sock: socket.socket, target: str) -> None:
    """Ask the proxy on ``sock`` for a tunnel to ``target`` (``CONNECT host:port``).

    Raises:
        OSError: the proxy refused or hung up.
    """
    sock.sendall(f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n".encode("latin-1"))
    data = b""
    while b"\r\n\r\n" not in data:
        got = sock.recv(4096)
        if not got or len(data) > 1 << 16:
            raise ConnectionError(f"the proxy closed the connection to {target}")
        data += got
    status = data.split(b"\r\n", 1)[0].decode("latin-1")
    if status.split(None, 2)[1:2] != ["200"]:
        raise ConnectionRefusedError(f"the proxy refused a tunnel to {target}: {status}")


def _request_bytes(method: str, path: str, headers: dict[str, str]) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", *(f"{k}: {v}" for k, v in headers.items()), "", ""]
    return "\r\n".join(lines).encode("latin-1")


class _GetConnection:
    """One keep-alive HTTP/1.1 connection for GETs, spoken to directly.

    ``http.client`` parses every response's headers with the ``email`` package and wraps
    the socket in a buffered file per response: about 0.4 ms of CPU per request, more than
    everything else nlmr does for a small file. This reads the status line and headers
    itself and receives bodies straight into the caller's buffers with ``recv_into``.
    Bodies are expected with a Content-Length (as S3 sends object bodies); a chunked body
    is decoded whole, into memory.
    """

    def __init__(self, scheme: str, netloc: str, timeout: float = 60.0) -> None:
        parsed = urllib.parse.urlsplit(f"//{netloc}")
        hostname = parsed.hostname or netloc
        port = parsed.port or (443 if scheme == "https" else 80)
        proxy = _proxy_for(scheme, hostname)
        self.prefix = ""  # what the request line puts before the path
        if proxy is None:
            sock = socket.create_connection((hostname, port), timeout=timeout)
        else:
            sock = socket.create_connection(proxy, timeout=timeout)
            if scheme == "https":  # a tunnel: TLS end to end, the proxy sees no bytes
                _connect_tunnel(sock, f"{hostname}:{port}")
            else:
                self.prefix = f"http://{netloc}"
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if scheme == "https":
            import ssl  # only for https: 10 ms of start-up

            sock = ssl.create_default_context().wrap_socket(sock, server_hostname=hostname)
        self.sock = sock
        self.pending = memoryview(b"")  # body bytes received together with the headers
        self.keep_alive = True

    def send(self, request: bytes) -> tuple[int, dict[str, str]]:
        """Send a request; returns the response's status and headers (names lower-case).

        Raises:
            OSError: the connection failed or closed.
            ValueError: not an HTTP response.
        """
        self.sock.sendall(request)
        data = b""
        while (end := data.find(b"\r\n\r\n")) < 0:
            if len(data) > 1 << 16:
                raise ValueError("response headers too long")
            got = self.sock.recv(1 << 16)
            if not got:
                raise ConnectionResetError("connection closed before a response")
            data += got
        lines = data[:end].decode("latin-1").split("\r\n")
        self.pending = memoryview(data)[end + 4 :]
        status = int(lines[0].split(None, 2)[1])
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        self.keep_alive = headers.get("connection", "").lower() != "close"
        if headers.get("transfer-encoding", "").lower() == "chunked":
            self.pending = memoryview(self._dechunk())
            headers["content-length"] = str(len(self.pending))
        return status, headers

    def _dechunk(self) -> bytes:
        out = bytearray()
        data = bytes(self.pending)
        while True:
            while b"\r\n" not in data:
                data += self._recv_some()
            size_line, _, data = data.partition(b"\r\n")
            size = int(size_line.split(b";")[0], 16)
            if size == 0:  # the last chunk; trailers (none expected) end with an empty line
                while not data.startswith(b"\r\n") and b"\r\n\r\n" not in data:
                    data += self._recv_some()
                return bytes(out)
            while len(data) < size + 2:
                data += self._recv_some()
            out += data[:size]
            data = data[size + 2 :]

    def _recv_some(self) -> bytes:
        got = self.sock.recv(1 << 16)
        if not got:
            raise ConnectionResetError("connection closed inside a chunked body")
        return got

    def readinto(self, buf: memoryview) -> int:
        """Fill ``buf`` from the body (the caller bounds it by the Content-Length)."""
        if self.pending:
            n = min(len(buf), len(self.pending))
            buf[:n] = self.pending[:n]
            self.pending = self.pending[n:]
            return n
        filled = 0
        while filled < len(buf):  # a few recv calls per buffer; each releases the GIL
            got = self.sock.recv_into(buf[filled:])
            if not got:
                break
            filled += got
        return filled

    def read_body(self, headers: dict[str, str]) -> bytes:
        """The whole (small) body of an error response. Without a Content-Length the body
        ends when the server closes the connection (then not kept alive)."""
        if "content-length" not in headers:
            self.keep_alive = False
            out = bytearray(self.pending)
            while len(out) < 1 << 20 and (got := self.sock.recv(1 << 16)):
                out += got
            return bytes(out)
        left = int(headers["content-length"])
        out = bytearray(left)
        view = memoryview(out)
        while left:
            n = self.readinto(view[len(out) - left :])
            if not n:
                raise ConnectionResetError("connection closed inside a response")
            left -= n
        return bytes(out)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()


class HttpReader(ObjectReader):
    """The body of one GET, read straight into the caller's buffers (``readinto``)."""

    def __init__(
        self,
        client: S3Http,
        key: str,
        conn: _GetConnection | None,
        status: int,
        headers: dict[str, str],
        start: int,
        stop: int | None,
        *,
        size: int | None = None,
    ) -> None:
        self.key = key
        self._client = client
        self._conn = conn
        if conn is None:  # 416: nothing to read
            self.size = size or 0
            self.start = self.stop = self._pos = self._end = start
            return
        if "content-length" not in headers:  # S3 always sends it for object bodies
            self._client._drop_get_connection()
            raise StoreError(
                f"{client.where(key)}: a response without Content-Length", url=client.url, key=key
            )
        length = int(headers["content-length"])
        if status == 206:
            content_range = headers.get("content-range", "bytes 0-")
            first = int(content_range.split()[-1].split("-")[0])
            total = _total_size(content_range)
            self.size = total if total is not None else first + length
            self._end = first + length  # where the response body ends, in object offsets
            if first != start:
                self._fail(f"asked for bytes from {start}, got from {first}")
        else:  # 200: the whole object (no range asked, or the server ignored it)
            self.size = length
            self._end = length
            self._pos = 0
            self._discard(min(start, length))
        self.start = start
        self.stop = max(start, self.size if stop is None else min(stop, self.size))
        self._pos = start

    def _fail(self, why: str, cause: BaseException | None = None) -> NoReturn:
        self._client._drop_get_connection()
        self._conn = None
        err = StoreUnavailableError(
            f"{self._client.where(self.key)}: {why}", url=self._client.url, key=self.key
        )
        raise err from cause

    def _discard(self, n: int) -> None:
        """Skip ``n`` bytes of a body the server sent whole although a range was asked."""
        assert self._conn is not None
        scratch = memoryview(bytearray(min(n, 1 << 20) or 1))
        while n > 0:
            got = self._conn.readinto(scratch[: min(n, len(scratch))])
            if not got:
                self._fail("connection closed while skipping to the range's start")
            n -= got

    def readinto(self, buf: memoryview) -> int:
        want = min(len(buf), self.stop - self._pos)
        if want <= 0 or self._conn is None:
            return 0
        try:
            n = self._conn.readinto(buf[:want])
        except OSError as exc:
            self._fail(f"connection broke at byte {self._pos} of {self.size} ({exc})", exc)
        if not n:
            self._fail(f"connection closed at byte {self._pos} of {self.size}")
        self._pos += n
        return n

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        if self._pos < self._end or not conn.keep_alive:
            # a body left unread would be taken for the next response: drop the connection
            self._client._drop_get_connection()
