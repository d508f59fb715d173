"""``RegionOutageProxy``: an HTTP forwarder in front of the moto server that makes one
region (or one service in one region) unreachable for the functions that call through it.

The region and service come from each request's SigV4 credential scope
(``Credential=AKID/DATE/REGION/SERVICE/aws4_request``, in the ``Authorization`` header or,
for a presigned URL, the ``X-Amz-Credential`` query parameter); the service is the signing
name (DynamoDB Streams signs as ``dynamodb``, CloudWatch as ``monitoring``). A request with
no credential scope is forwarded. Forwarded requests are sent unchanged, Host header
included: the signature covers it, and moto with IAM on checks signatures.

What a faulted request gets (``mode``):

- ``"reset"`` (default): the connection is dropped with a TCP reset after the request was
  read, with no answer. boto3 retries, then raises ``botocore.exceptions.ConnectionClosedError``
  ("Connection was closed before we received a valid response from endpoint URL"). This is a
  regional endpoint that accepts connections with nothing healthy behind it. It is not
  ``EndpointConnectionError`` (DNS gone or TCP refused, as in the October 2025 us-east-1
  DynamoDB outage): the proxy is one endpoint for every region, so the connection is
  already open when the region becomes known. Code that must know a request never arrived
  (fencing) cannot assume that from this error, and must not.
- ``"unavailable"``: HTTP 503 with error code ``ServiceUnavailable``, as DynamoDB and S3
  document for a service that is reachable but cannot serve (boto3 retries, then raises a
  ``ClientError``).
"""

from __future__ import annotations

import contextlib
import http.client
import re
import socket
import struct
import threading
import urllib.parse
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MODES = ("reset", "unavailable")
_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d+$")
_SERVICE = re.compile(r"^[a-z0-9-]+$")
_SCOPE = re.compile(r"Credential=([^,\s]+)")
#: Hop-by-hop headers (RFC 9110 7.6.1), those this server writes itself, and Expect (this
#: server reads the whole body before forwarding; SigV4 never signs Expect).
_NOT_FORWARDED = {"connection", "keep-alive", "transfer-encoding", "te", "upgrade",
                  "proxy-connection", "content-length", "server", "date", "expect"}
FORWARD_TIMEOUT_S = 60.0
MAX_BODY = 64 * 1024 * 1024
MAX_CHUNKS = 100_000


def credential_scope(headers: Any, path: str) -> tuple[str, str] | None:
    """(region, service) a request is signed for, or None when it is not signed (SigV4)."""
    auth = headers.get("Authorization") or ""
    m = _SCOPE.search(auth) if auth.startswith("AWS4-") else None
    cred = m.group(1) if m else ""
    if not cred:
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(path).query)
        cred = (query.get("X-Amz-Credential") or [""])[0]
    parts = cred.split("/") if cred else []
    if len(parts) < 5 or parts[-1] != "aws4_request":
        return None
    return parts[-3], parts[-2]


def _check(region: str, service: str | None) -> None:
    if not _REGION.match(region):
        raise ValueError(f"region {region!r}: not a region name; allowed: names like "
                         "us-east-1 or eu-north-1")
    if service is not None and not _SERVICE.match(service):
        raise ValueError(f"service {service!r}: not a SigV4 signing name; allowed: lower-case "
                         "names like dynamodb, s3, lambda, monitoring, or None for every service")


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a connection reset on purpose, or a client that went away


class RegionOutageProxy:
    """Forwards to ``upstream`` (the moto server's URL) unless a fault covers the request's
    (region, service). ``url`` is where functions' ``AWS_ENDPOINT_URL`` should point."""

    def __init__(self, upstream: str) -> None:
        parsed = urllib.parse.urlsplit(upstream)
        if parsed.scheme != "http" or not parsed.hostname or not parsed.port:
            raise ValueError(f"upstream {upstream!r}: allowed: http://HOST:PORT")
        self._upstream = (parsed.hostname, parsed.port)
        self._faults: dict[tuple[str, str | None], str] = {}
        self.refused: Counter[tuple[str, str]] = Counter()
        """(region, service) -> requests refused."""
        self.forwarded: Counter[tuple[str, str]] = Counter()
        """(region, service) -> requests forwarded ("-", "-" when unsigned)."""
        self._lock = threading.Lock()
        proxy = self

        class Req(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                proxy._handle(self)

            do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = do_GET

        self.server = _Server(("127.0.0.1", 0), Req)
        self._thread = threading.Thread(target=self.server.serve_forever,
                                        name="region-outage-proxy", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    check = staticmethod(_check)

    def fault(self, region: str, service: str | None = None, mode: str = "reset") -> None:
        """Refuse every request signed for ``region`` (and ``service``, when given)."""
        _check(region, service)
        if mode not in MODES:
            raise ValueError(f"mode {mode!r}; allowed: {', '.join(MODES)}")
        with self._lock:
            self._faults[(region, service)] = mode

    def heal(self, region: str, service: str | None = None) -> None:
        """Undo ``fault(region, service)``; ``service=None`` heals every fault of the region."""
        _check(region, service)
        with self._lock:
            for key in [k for k in self._faults
                        if k[0] == region and (service is None or k[1] == service)]:
                del self._faults[key]

    @property
    def faults(self) -> dict[tuple[str, str | None], str]:
        with self._lock:
            return dict(self._faults)

    def _mode(self, scope: tuple[str, str] | None) -> str | None:
        if scope is None:
            return None
        with self._lock:
            return self._faults.get(scope) or self._faults.get((scope[0], None))

    def _handle(self, req: BaseHTTPRequestHandler) -> None:
        body = self._body(req)
        scope = credential_scope(req.headers, req.path)
        mode = self._mode(scope)
        if scope is not None and mode is not None:
            with self._lock:
                self.refused[scope] += 1
            return self._refuse(req, mode, scope)
        with self._lock:
            self.forwarded[scope or ("-", "-")] += 1
        return self._forward(req, body)

    @staticmethod
    def _body(req: BaseHTTPRequestHandler) -> bytes:
        if (req.headers.get("Transfer-Encoding") or "").lower() == "chunked":
            chunks = []
            for _ in range(MAX_CHUNKS):  # a 0-size chunk ends the body
                size = int(req.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    req.rfile.readline()
                    break
                chunks.append(req.rfile.read(size))
                req.rfile.readline()
            return b"".join(chunks)
        length = int(req.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            raise ValueError(f"request body of {length} bytes; allowed: <= {MAX_BODY}")
        return req.rfile.read(length) if length else b""

    @staticmethod
    def _refuse(req: BaseHTTPRequestHandler, mode: str, scope: tuple[str, str]) -> None:
        if mode == "reset":
            req.close_connection = True
            with contextlib.suppress(OSError):
                # SO_LINGER 0: close() sends RST, not FIN, as a dropped endpoint does.
                req.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                          struct.pack("ii", 1, 0))
                req.connection.close()
            return
        message = f"{scope[1]} in {scope[0]} is unavailable (sandbox regional outage)"
        if "json" in (req.headers.get("Content-Type") or ""):
            data = (f'{{"__type": "com.amazonaws.{scope[1]}#ServiceUnavailable", '
                    f'"message": "{message}"}}').encode()
            ctype = "application/x-amz-json-1.0"
        else:
            data = (f"<Error><Code>ServiceUnavailable</Code><Message>{message}</Message>"
                    "</Error>").encode()
            ctype = "text/xml"
        req.send_response(503)
        req.send_header("Content-Type", ctype)
        req.send_header("x-amzn-ErrorType", "ServiceUnavailable")
        req.send_header("Content-Length", str(len(data)))
        req.end_headers()
        if req.command != "HEAD":
            req.wfile.write(data)

    def _forward(self, req: BaseHTTPRequestHandler, body: bytes) -> None:
        headers = {k: v for k, v in req.headers.items() if k.lower() not in _NOT_FORWARDED}
        if body or req.command in ("POST", "PUT", "PATCH"):
            headers["Content-Length"] = str(len(body))
        conn = http.client.HTTPConnection(*self._upstream, timeout=FORWARD_TIMEOUT_S)
        try:
            # Host (and every signed header) is passed as the client sent it.
            conn.request(req.command, req.path, body=body or None, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
            status, out_headers = resp.status, resp.getheaders()
        except OSError as exc:
            return self._refuse(req, "reset", ("-", f"upstream: {exc}"))
        finally:
            conn.close()
        req.send_response(status)
        length = None
        for k, v in out_headers:
            if k.lower() == "content-length":
                length = v
            elif k.lower() not in _NOT_FORWARDED:
                req.send_header(k, v)
        # A HEAD answer carries the length of what a GET would return, and no body.
        req.send_header("Content-Length", length if req.command == "HEAD" and length
                        else str(len(data)))
        req.end_headers()
        if req.command != "HEAD":
            req.wfile.write(data)
        return None

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> RegionOutageProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
