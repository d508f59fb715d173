"""The COS part of the contract stub: COS's XML API signs with its own scheme, not TC3, so
it has its own server, sharing the stub's keys, CAM policies and counters.

Checked per request (doc "Request Signature", cloud.tencent.com/document/product/436/7778,
and "Error Codes", .../436/7730): the ``Authorization`` of the form
``q-sign-algorithm=sha1&q-ak=<id>&q-sign-time=<start>;<end>&q-key-time=...&
q-header-list=...&q-url-param-list=...&q-signature=<hex>``, recomputed exactly
(HttpString ``<method>\\n<path>\\n<params>\\n<headers>\\n``, SignKey = HMAC-SHA1(key,
KeyTime), Signature = HMAC-SHA1(SignKey, ``sha1\\n<time>\\n<sha1(HttpString)>\\n``))
and covering ``host``; the sign time window (``RequestTimeTooSkewed``/``AccessDenied``);
the secret id (``InvalidAccessKeyId``); a temporary key's ``x-cos-security-token``; then CAM
(``name/cos:HeadBucket|PutObject|GetObject`` on ``qcs::cos:<region>:uid/<appid>:<bucket>/
<key>``; ``AccessDenied``). Errors are XML ``<Error><Code>..</Code><Message>..</Message>
</Error>`` with the documented HTTP status.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import threading
import urllib.parse
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from xml.sax.saxutils import escape

from components.sandbox.tencent_stub import allowed

if TYPE_CHECKING:
    from components.sandbox.tencent_stub import TencentStub

_HOST = re.compile(r"^(?P<bucket>[a-z0-9-]+-(?P<appid>\d+))\.cos\.(?P<region>[a-z0-9-]+)"
                   r"\.myqcloud\.com(:\d+)?$")


class CosError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.status, self.code, self.message = status, code, message


def _q(v: str) -> str:
    return urllib.parse.quote(v, safe="-_.~")


@dataclass
class CosStub:
    stub: TencentStub
    buckets: dict[tuple[str, str], dict[str, bytes]] = field(default_factory=dict)
    """(region, bucket) -> objects."""
    headers: dict[tuple[str, str, str], dict[str, str]] = field(default_factory=dict)
    """(region, bucket, key) -> what PutObject stored with the object and GET/HEAD return:
    ``Content-Type`` and the ``x-cos-meta-*`` user metadata (doc "PUT Object", 436/7749)."""

    def __post_init__(self) -> None:
        self._server: ThreadingHTTPServer | None = None
        self._lock = threading.Lock()
        self.endpoint = ""

    def add_bucket(self, region: str, bucket: str) -> None:
        self.buckets[(region, bucket)] = {}

    def start(self) -> str:
        cos = self

        class Handler(BaseHTTPRequestHandler):
            def do_HEAD(self) -> None:
                cos._serve(self)

            def do_GET(self) -> None:
                cos._serve(self)

            def do_PUT(self) -> None:
                cos._serve(self)

            def log_message(self, *args: Any) -> None:
                return None

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        self.endpoint = f"127.0.0.1:{self._server.server_address[1]}"
        return self.endpoint

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def _serve(self, h: BaseHTTPRequestHandler) -> None:
        length = int(h.headers.get("Content-Length") or 0)
        body = h.rfile.read(min(length, 8 << 20))
        status, out, ctype = 200, b"", "application/octet-stream"
        extra: dict[str, str] = {}
        try:
            out, extra = self.handle(h.command, h.path, dict(h.headers.items()), body)
            ctype = extra.pop("Content-Type", ctype)
        except CosError as exc:
            with self._lock:
                self.stub.refused[f"cos:{exc.code}"] += 1
            status, ctype = exc.status, "application/xml"
            # The documented error body: Code, Message, Resource, RequestId, TraceId.
            rid = uuid.uuid4().hex
            out = (f"<?xml version='1.0' encoding='utf-8' ?><Error><Code>{exc.code}</Code>"
                   f"<Message>{escape(exc.message)}</Message>"
                   f"<Resource>{escape(str(h.headers.get('Host')) + h.path)}</Resource>"
                   f"<RequestId>{rid}</RequestId><TraceId>{rid}</TraceId></Error>").encode()
        with self._lock:
            self.stub.checked += 1
        h.send_response(status)
        h.send_header("Content-Type", ctype)
        for name, value in extra.items():
            h.send_header(name, value)
        h.send_header("Content-Length", str(len(out)))
        h.end_headers()
        if h.command != "HEAD":
            h.wfile.write(out)

    def handle(self, method: str, raw_path: str, headers: Mapping[str, str],
               body: bytes) -> tuple[bytes, dict[str, str]]:
        """The answer's body and headers, or ``CosError``."""
        hd = {k.lower(): v for k, v in headers.items()}
        m = _HOST.match(hd.get("host", ""))
        if not m:
            raise CosError(400, "InvalidURI", f"host {hd.get('host')!r} is not "
                           "<bucket>-<appid>.cos.<region>.myqcloud.com")
        url = urllib.parse.urlsplit(raw_path)
        path = urllib.parse.unquote(url.path) or "/"
        query = dict(urllib.parse.parse_qsl(url.query, keep_blank_values=True))
        auth = dict(p.split("=", 1) for p in hd.get("authorization", "").split("&") if "=" in p)
        for k in ("q-sign-algorithm", "q-ak", "q-sign-time", "q-key-time", "q-header-list",
                  "q-url-param-list", "q-signature"):
            if k not in auth:
                raise CosError(403, "AccessDenied", f"Authorization lacks {k}")
        if auth["q-sign-algorithm"] != "sha1":
            raise CosError(403, "AccessDenied", "q-sign-algorithm must be sha1")
        key = self.stub.keys.get(auth["q-ak"])
        if key is None:
            raise CosError(403, "InvalidAccessKeyId", f"secret id {auth['q-ak']} not found")
        try:
            start, end = (int(x) for x in auth["q-sign-time"].split(";"))
        except ValueError:
            raise CosError(403, "AccessDenied", "q-sign-time is not <start>;<end>") from None
        now = self.stub.clock()
        if not start <= now <= end:
            raise CosError(403, "RequestTimeTooSkewed",
                           f"the request time {now:.0f} is outside q-sign-time {start};{end}")
        listed = [h for h in auth["q-header-list"].split(";") if h]
        if "host" not in listed:
            raise CosError(403, "AccessDenied", "the signature must cover the host header")
        missing = [h for h in listed if h not in hd]
        if missing:
            raise CosError(403, "SignatureDoesNotMatch", f"signed headers not sent: {missing}")
        params = [p for p in auth["q-url-param-list"].split(";") if p]
        lq = {k.lower(): v for k, v in query.items()}
        http_string = "\n".join([
            method.lower(), path,
            "&".join(f"{p}={_q(lq.get(p, ''))}" for p in sorted(params)),
            "&".join(f"{h}={_q(hd[h])}" for h in sorted(listed)), ""])
        to_sign = (f"sha1\n{auth['q-sign-time']}\n"
                   f"{hashlib.sha1(http_string.encode()).hexdigest()}\n")
        sign_key = hmac.new(key.secret_key.encode(), auth["q-key-time"].encode(),
                            hashlib.sha1).hexdigest()
        expected = hmac.new(sign_key.encode(), to_sign.encode(), hashlib.sha1).hexdigest()
        if not hmac.compare_digest(expected, auth["q-signature"]):
            raise CosError(403, "SignatureDoesNotMatch",
                           "the signature we calculated does not match the one sent")
        if key.token is not None and hd.get("x-cos-security-token") != key.token:
            raise CosError(403, "InvalidAccessKeyId", "the temporary key's token is missing "
                           "or wrong")
        bucket, region, appid = m["bucket"], m["region"], m["appid"]
        obj = path.lstrip("/")
        action = {"HEAD": "HeadBucket" if not obj else "HeadObject", "PUT": "PutObject",
                  "GET": "GetObject" if obj else "GetBucket"}[method]
        resource = f"qcs::cos:{region}:uid/{appid}:{bucket}/{obj}"
        if not allowed(key.policy, f"name/cos:{action}", resource):
            raise CosError(403, "AccessDenied", f"{auth['q-ak']} may not name/cos:{action} "
                           f"on {resource}")
        with self._lock:
            self.stub.calls.append((auth["q-ak"], "cos", action))
            objects = self.buckets.get((region, bucket))
            if objects is None:
                raise CosError(404, "NoSuchBucket", f"bucket {bucket} not in {region}")
            if method == "PUT":
                objects[obj] = body
                stored = {k: v for k, v in hd.items() if k.startswith("x-cos-meta-")}
                stored["Content-Type"] = hd.get("content-type", "application/octet-stream")
                self.headers[(region, bucket, obj)] = stored
                return b"", {"ETag": _etag(body)}
            if not obj:
                if method == "GET":
                    return self._list(bucket, objects, query), {"Content-Type":
                                                                "application/xml"}
                return b"", {}
            if obj not in objects:
                raise CosError(404, "NoSuchKey", f"{obj} not in {bucket}")
            return objects[obj], {**self.headers.get((region, bucket, obj), {}),
                                  "ETag": _etag(objects[obj])}

    @staticmethod
    def _list(bucket: str, objects: Mapping[str, bytes], query: Mapping[str, str]) -> bytes:
        """GET Bucket (doc "GET Bucket (List Objects)", 436/7734): ``prefix`` and
        ``max-keys`` (1..1000), keys in UTF-8 binary order."""
        try:
            limit = int(query.get("max-keys", "1000"))
        except ValueError:
            raise CosError(400, "InvalidArgument", "max-keys must be an integer") from None
        if not 1 <= limit <= 1000:
            raise CosError(400, "InvalidArgument", f"max-keys {limit}: allowed 1..1000")
        prefix = query.get("prefix", "")
        keys = sorted(k for k in objects if k.startswith(prefix))
        items = "".join(f"<Contents><Key>{escape(k)}</Key><Size>{len(objects[k])}</Size>"
                        f"<ETag>{_etag(objects[k])}</ETag>"
                        "<LastModified>2026-01-01T00:00:00.000Z</LastModified></Contents>"
                        for k in keys[:limit])
        return (f"<?xml version='1.0' encoding='utf-8' ?><ListBucketResult>"
                f"<Name>{bucket}</Name><Prefix>{escape(prefix)}</Prefix><Marker></Marker>"
                f"<MaxKeys>{limit}</MaxKeys>"
                f"<IsTruncated>{'true' if len(keys) > limit else 'false'}</IsTruncated>"
                f"{items}</ListBucketResult>").encode()


def _etag(body: bytes) -> str:
    return f'"{hashlib.md5(body).hexdigest()}"'
