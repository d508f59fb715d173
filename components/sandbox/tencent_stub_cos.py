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
<key>``, ``name/cos:PutBucketReplication|GetBucketReplication`` on the bucket, ``<bucket>/``;
``AccessDenied``). Errors are XML ``<Error><Code>..</Code><Message>..</Message>
</Error>`` with the documented HTTP status.

Bucket replication (``?replication``) follows "PUT Bucket replication" (436/19223) and
"GET Bucket replication" (436/19222): the body is ``<ReplicationConfiguration>`` with a
``Role`` ``qcs::cam::uin/<OwnerUin>:uin/<SubUin>`` and 1..1000 ``Rule`` (``Status``
Enabled|Disabled, optional ``ID`` and ``Prefix``, ``Destination/Bucket``
``qcs::cos:<Region>::<BucketName-APPID>``, optional ``StorageClass``,
``DeleteMarkerReplication/Status``), sent with a ``Content-MD5``; every rule names the same
destination, an existing bucket in another region; both buckets need versioning
(``BucketVersionNotOpen``). A PUT replaces the whole configuration.

Error codes checked against "Error Codes" (436/7730): ``BadRequest`` (no Content-MD5),
``InvalidDigest`` (not an MD5), ``BadDigest`` (MD5 mismatch), ``BucketVersionNotOpen``,
``InvalidArgument`` (destination in the same region), ``NoSuchBucket``. Not found on the
pages searched, so assumed from the S3-compatible set: ``MalformedXML`` (a body against the
PUT doc's schema), ``MethodNotAllowed``, and ``ReplicationConfigurationnotFoundError`` (GET
of a bucket with no configuration; the run time only relies on its 404 status).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import threading
import urllib.parse
import uuid
import xml.etree.ElementTree as ET
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
    replication: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    """(region, bucket) -> its replication configuration (``Role``, ``Rules``)."""
    unversioned: set[tuple[str, str]] = field(default_factory=set)
    headers: dict[tuple[str, str, str], dict[str, str]] = field(default_factory=dict)
    """(region, bucket, key) -> what PutObject stored with the object and GET/HEAD return:
    ``Content-Type`` and the ``x-cos-meta-*`` user metadata (doc "PUT Object", 436/7749)."""

    def __post_init__(self) -> None:
        self._server: ThreadingHTTPServer | None = None
        self._lock = threading.Lock()
        self.endpoint = ""

    def add_bucket(self, region: str, bucket: str, versioned: bool = True) -> None:
        self.buckets[(region, bucket)] = {}
        if not versioned:
            self.unversioned.add((region, bucket))

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
        host = _HOST.match(str(h.headers.get("Host") or ""))
        if host is not None and host["region"] in self.stub.down_regions:
            h.close_connection = True  # a region down: no answer at all, as for the TC3 APIs
            return
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
        replication = not obj and "replication" in query
        if replication:
            if method not in ("GET", "PUT"):
                raise CosError(405, "MethodNotAllowed", f"{method} /?replication")
            action = "GetBucketReplication" if method == "GET" else "PutBucketReplication"
        resource = f"qcs::cos:{region}:uid/{appid}:{bucket}/{obj}"
        if not allowed(key.policy, f"name/cos:{action}", resource):
            raise CosError(403, "AccessDenied", f"{auth['q-ak']} may not name/cos:{action} "
                           f"on {resource}")
        with self._lock:
            self.stub.calls.append((auth["q-ak"], "cos", action))
            objects = self.buckets.get((region, bucket))
            if objects is None:
                raise CosError(404, "NoSuchBucket", f"bucket {bucket} not in {region}")
            if replication:
                return self._replication(method, region, bucket, hd, body)
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

    def _replication(self, method: str, region: str, bucket: str, hd: Mapping[str, str],
                     body: bytes) -> tuple[bytes, dict[str, str]]:
        if method == "GET":
            conf = self.replication.get((region, bucket))
            if conf is None:
                raise CosError(404, "ReplicationConfigurationnotFoundError",
                               f"bucket {bucket} has no replication configuration")
            return _replication_xml(conf), {"Content-Type": "application/xml"}
        md5 = hd.get("content-md5")
        if not md5:
            raise CosError(400, "BadRequest", "PUT Bucket replication needs Content-MD5")
        try:
            digest = base64.b64decode(md5, validate=True)
        except ValueError:
            digest = b""
        if len(digest) != 16:
            raise CosError(400, "InvalidDigest", "Content-MD5 is not a base64 MD5 digest")
        if digest != hashlib.md5(body).digest():
            raise CosError(400, "BadDigest", "Content-MD5 does not match the body")
        conf = _parse_replication(body)
        if (region, bucket) in self.unversioned:
            raise CosError(400, "BucketVersionNotOpen", f"bucket {bucket}: versioning is off")
        [dest] = {r["Bucket"] for r in conf["Rules"]}
        dm = re.fullmatch(r"qcs::cos:([a-z0-9-]+)::([a-z0-9-]+-\d+)", dest)
        if dm is None:
            raise CosError(400, "MalformedXML", f"Destination/Bucket {dest!r}: allowed "
                           "qcs::cos:<Region>::<BucketName-APPID>")
        if (dm[1], dm[2]) not in self.buckets:
            raise CosError(404, "NoSuchBucket", f"destination bucket {dm[2]} not in {dm[1]}")
        if dm[1] == region:
            raise CosError(400, "InvalidArgument", "the destination must be in another region")
        if (dm[1], dm[2]) in self.unversioned:
            raise CosError(400, "BucketVersionNotOpen", f"destination {dm[2]}: versioning is off")
        self.replication[(region, bucket)] = conf
        return b"", {}

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


_RULE_CHILDREN = {"ID", "Status", "Prefix", "Destination", "DeleteMarkerReplication"}


def _parse_replication(body: bytes) -> dict[str, Any]:
    """The PUT body checked against 436/19223: required nodes, enums, no unknown nodes, one
    destination for every rule (GET Bucket replication: "所有策略只能指向一个目标存储桶")."""
    def bad(msg: str) -> CosError:
        return CosError(400, "MalformedXML", msg)

    try:
        root = ET.fromstring(body)
    except ET.ParseError as exc:
        raise bad(f"the body is not XML: {exc}") from None
    if root.tag != "ReplicationConfiguration":
        raise bad(f"root <{root.tag}>: allowed <ReplicationConfiguration>")
    unknown = sorted({c.tag for c in root} - {"Role", "Rule"})
    if unknown:
        raise bad(f"unknown node(s) {unknown} in ReplicationConfiguration")
    role = root.findtext("Role") or ""
    if not re.fullmatch(r"qcs::cam::uin/\d+:uin/\d+", role):
        raise bad(f"Role {role!r}: allowed qcs::cam::uin/<OwnerUin>:uin/<SubUin>")
    rules = []
    for r in root.findall("Rule"):
        unknown = sorted({c.tag for c in r} - _RULE_CHILDREN)
        if unknown:
            raise bad(f"unknown node(s) {unknown} in Rule")
        status = r.findtext("Status")
        if status not in ("Enabled", "Disabled"):
            raise bad(f"Rule/Status {status!r}: allowed Enabled, Disabled")
        dest = r.find("Destination")
        if dest is None or not dest.findtext("Bucket"):
            raise bad("Rule/Destination/Bucket is required")
        dm = r.findtext("DeleteMarkerReplication/Status")
        if dm not in (None, "Enabled", "Disabled"):
            raise bad(f"DeleteMarkerReplication/Status {dm!r}: allowed Enabled, Disabled")
        rules.append({"ID": r.findtext("ID") or "", "Status": status,
                      "Prefix": r.findtext("Prefix") or "",
                      "Bucket": dest.findtext("Bucket") or "",
                      "StorageClass": dest.findtext("StorageClass") or ""})
    if not 1 <= len(rules) <= 1000:
        raise bad(f"{len(rules)} Rule nodes: allowed 1..1000")
    if len({r["Bucket"] for r in rules}) != 1:
        raise bad("every Rule must name the same destination bucket")
    if len({r["Prefix"] for r in rules}) != len(rules):
        raise bad("Rule prefixes overlap")
    return {"Role": role, "Rules": rules}


def _replication_xml(conf: Mapping[str, Any]) -> bytes:
    out = []
    for r in conf["Rules"]:
        storage = (f"<StorageClass>{r['StorageClass']}</StorageClass>" if r["StorageClass"]
                   else "")
        out.append(f"<Rule><Status>{r['Status']}</Status><ID>{escape(r['ID'])}</ID>"
                   f"<Prefix>{escape(r['Prefix'])}</Prefix><Destination><Bucket>"
                   f"{escape(r['Bucket'])}</Bucket>{storage}</Destination></Rule>")
    return (f"<?xml version='1.0' encoding='utf-8' ?><ReplicationConfiguration>"
            f"<Role>{escape(conf['Role'])}</Role>{''.join(out)}"
            "</ReplicationConfiguration>").encode()
