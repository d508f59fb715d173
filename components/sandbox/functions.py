"""In-process function host speaking the Lambda Invoke API (``POST
/2015-03-31/functions/<name>/invocations``), with per-function fault injection.

Follows the documented service behaviour the probes rely on: HTTP 200 with the handler's
JSON result; a handler exception is HTTP 200 with header ``X-Amz-Function-Error: Unhandled``
and an error document; an unknown function is HTTP 404 ``ResourceNotFoundException``.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Handler = Callable[[Any, Any], Any]
FAULTS = ("none", "error", "5xx", "slow", "down")


@dataclass
class Fault:
    kind: str = "none"
    delay_s: float = 0.0


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a connection dropped on purpose ("down") is not an error worth printing


class FunctionHost:
    """Register handlers by function name (or ARN); ``fault(name, kind)`` injects a fault."""

    def __init__(self, fallback: str | None = None) -> None:
        """``fallback``: where every other Lambda API call (and invokes of functions not
        hosted here) is forwarded, e.g. a moto server holding the functions' configuration."""
        self.fallback = fallback
        self.handlers: dict[str, Handler] = {}
        self.faults: dict[str, Fault] = {}
        self.calls: dict[str, int] = {}
        self._lock = threading.Lock()
        host = self

        class Req(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                host._invoke(self)

            def do_GET(self) -> None:
                host._forward(self, b"")

            def do_PUT(self) -> None:
                host._forward(self, self.rfile.read(int(self.headers.get("Content-Length") or 0)))

            def do_DELETE(self) -> None:
                host._forward(self, b"")

        self.server = _QuietServer(("127.0.0.1", 0), Req)
        self.server.daemon_threads = True
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    @staticmethod
    def _name(name_or_arn: str) -> str:
        name = urllib.parse.unquote(name_or_arn)
        return name.split(":function:")[1].split(":")[0] if ":function:" in name else name

    def register(self, name: str, handler: Handler) -> None:
        with self._lock:
            self.handlers[self._name(name)] = handler
            self.faults.setdefault(self._name(name), Fault())

    def fault(self, name: str, kind: str, delay_s: float = 0.0) -> None:
        if kind not in FAULTS:
            raise ValueError(f"fault {kind!r}; allowed: {', '.join(FAULTS)}")
        with self._lock:
            self.faults[self._name(name)] = Fault(kind, delay_s)

    def _invoke(self, req: BaseHTTPRequestHandler) -> None:
        parts = req.path.split("/")
        name = self._name(parts[3]) if len(parts) > 4 and parts[4].startswith("invocations") else ""
        length = int(req.headers.get("Content-Length") or 0)
        body = req.rfile.read(length) if length else b"{}"
        with self._lock:
            handler = self.handlers.get(name)
            fault = self.faults.get(name, Fault())
            self.calls[name] = self.calls.get(name, 0) + 1
        if handler is None and self.fallback:
            return self._forward(req, body)
        if handler is None:
            return self._send(req, 404, {"Type": "User", "message": f"Function not found: {name}"},
                              {"x-amzn-ErrorType": "ResourceNotFoundException"})
        if fault.kind == "down":
            req.close_connection = True
            with contextlib.suppress(OSError):
                req.connection.shutdown(2)
            return None
        if fault.kind == "slow":
            time.sleep(fault.delay_s or 5.0)
        if fault.kind == "5xx":
            return self._send(req, 502, {"message": "injected: service unavailable"},
                              {"x-amzn-ErrorType": "ServiceException"})
        try:
            if fault.kind == "error":
                raise RuntimeError("injected function error")
            result = handler(json.loads(body or b"{}"), None)
        except Exception as exc:
            return self._send(req, 200, {"errorMessage": str(exc),
                                         "errorType": type(exc).__name__},
                              {"X-Amz-Function-Error": "Unhandled"})
        return self._send(req, 200, result, {})

    def _forward(self, req: BaseHTTPRequestHandler, body: bytes) -> None:
        if not self.fallback:
            return self._send(req, 404, {"message": "no such API on the function host"}, {})
        # The Host header is kept: it is part of the SigV4 signature, and a server that
        # checks signatures (moto with IAM on) refuses the request if it changes.
        fwd = urllib.request.Request(self.fallback + req.path, data=body or None,
                                     method=req.command,
                                     headers={k: v for k, v in req.headers.items()
                                              if k.lower() != "content-length"})
        try:
            with urllib.request.urlopen(fwd, timeout=30) as resp:
                status, data, headers = resp.status, resp.read(), resp.headers
        except urllib.error.HTTPError as exc:
            status, data, headers = exc.code, exc.read(), exc.headers
        req.send_response(status)
        for k, v in headers.items():
            if k.lower() not in ("content-length", "transfer-encoding", "connection", "server",
                                 "date"):
                req.send_header(k, v)
        req.send_header("Content-Length", str(len(data)))
        req.end_headers()
        req.wfile.write(data)
        return None

    @staticmethod
    def _send(req: BaseHTTPRequestHandler, status: int, doc: Any, headers: dict[str, str]) -> None:
        data = json.dumps(doc).encode()
        req.send_response(status)
        req.send_header("Content-Type", "application/json")
        req.send_header("Content-Length", str(len(data)))
        req.send_header("X-Amz-Executed-Version", "$LATEST")
        for k, v in headers.items():
            req.send_header(k, v)
        req.end_headers()
        req.wfile.write(data)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
