"""A local contract stub for Tencent Cloud's TC3 APIs: it checks every request the way the
API gateway does, so code that passes here signs, shapes and authorises its calls right.

What it checks, in the gateway's order (doc: "Signature v3", cloud.tencent.com/document/api/
213/30654, and "Common Error Codes", .../api/213/30650):

1. The envelope: ``POST``, ``Content-Type: application/json``, ``X-TC-Action``,
   ``X-TC-Version``, ``X-TC-Timestamp`` and an ``Authorization`` header of the form
   ``TC3-HMAC-SHA256 Credential=<id>/<date>/<service>/tc3_request,
   SignedHeaders=content-type;host, Signature=<hex>``.
2. The timestamp within 300 s of this clock (``AuthFailure.SignatureExpire``), the secret id
   known (``AuthFailure.SecretIdNotFound``), a temporary key's ``X-TC-Token``
   (``AuthFailure.TokenFailure``), the credential scope naming the service the action
   belongs to and the timestamp's UTC date, and the signature recomputed exactly:
   canonical request ``POST\\n/\\n\\ncontent-type:<ct>\\nhost:<host>\\n\\ncontent-type;host\\n
   <sha256(body)>``, key chain ``TC3``+key -> date -> service -> ``tc3_request``
   (``AuthFailure.SignatureFailure``).
3. The action and version (``InvalidAction``, ``NoSuchVersion``), the region where the
   service needs one, and the parameters against the action's schema: required, type, enum,
   and no unknown names (``MissingParameter``, ``InvalidParameter``,
   ``InvalidParameterValue``, ``UnknownParameter``).
4. CAM: the secret id's policy (``{"version": "2.0", "statement": [{"effect", "action",
   "resource"}]}``; an explicit deny wins, no matching allow is a deny) must allow
   ``name/<service>:<Action>`` (or the action's documented CAM name, ``Action.cam``) on the
   resource the handler names (``AuthFailure.UnauthorizedOperation``).

It answers HTTP 200 with ``Content-Type: application/json`` exactly (the SDK parses error
bodies only for that type) and ``{"Response": {..., "RequestId"}}``. It counts every request
checked and every request refused, by error code. The services' state and handlers live in
``components.sandbox.tencent_stub_api``.
"""

from __future__ import annotations

import datetime
import fnmatch
import hashlib
import hmac
import json
import re
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MAX_SKEW_S = 300
JSON = "application/json"
_AUTH = re.compile(r"^TC3-HMAC-SHA256 Credential=([^/\s]+)/(\d{4}-\d{2}-\d{2})/([a-z0-9]+)/"
                   r"tc3_request, SignedHeaders=([a-z0-9;-]+), Signature=([0-9a-f]{64})$")


class ApiError(Exception):
    """An error answer: a documented code and a message naming what is wrong."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code, self.message = code, message


# -- parameter schemas ------------------------------------------------------------------------


@dataclass(frozen=True)
class P:
    """One request parameter: its API type (``String``, ``Integer``, ``Float``, ``Boolean``,
    ``Array``, ``Object``), whether it is required, and its allowed values if an enum."""

    type: str
    required: bool = False
    enum: tuple[Any, ...] | None = None
    items: Mapping[str, P] | None = None
    """For an ``Array`` of objects: the schema of each element."""


_PY = {"String": (str,), "Integer": (int,), "Float": (int, float), "Boolean": (bool,),
       "Array": (list,), "Object": (dict,)}


def check_params(params: Mapping[str, Any], schema: Mapping[str, P], where: str = "") -> None:
    for name in params:
        if name not in schema:
            raise ApiError("UnknownParameter",
                           f"The parameter `{where}{name}` is not recognized; allowed: "
                           f"{', '.join(sorted(schema))}")
    for name, p in schema.items():
        if name not in params:
            if p.required:
                raise ApiError("MissingParameter",
                               f"The request is missing a required parameter `{where}{name}`.")
            continue
        value = params[name]
        ok = isinstance(value, _PY[p.type]) and not (
            p.type in ("Integer", "Float") and isinstance(value, bool))
        if not ok:
            raise ApiError("InvalidParameter",
                           f"The parameter `{where}{name}` must be of type {p.type}; got "
                           f"{type(value).__name__}.")
        if p.enum is not None and value not in p.enum:
            raise ApiError("InvalidParameterValue",
                           f"The value `{value}` of parameter `{where}{name}` is not allowed; "
                           f"allowed: {', '.join(map(str, p.enum))}.")
        if p.items is not None:
            for i, item in enumerate(value):
                if not isinstance(item, dict):
                    raise ApiError("InvalidParameter",
                                   f"`{where}{name}.{i}` must be an object.")
                check_params(item, p.items, f"{where}{name}.{i}.")


# -- CAM ----------------------------------------------------------------------------------------


def _matches(patterns: Any, value: str) -> bool:
    pats = [patterns] if isinstance(patterns, str) else list(patterns or [])
    return any(fnmatch.fnmatchcase(value, p) for p in pats)


def _action(pattern: str) -> str:
    """CAM accepts ``cos:PutObject`` as well as ``name/cos:PutObject``."""
    return pattern if pattern == "*" or pattern.startswith("name/") else f"name/{pattern}"


def check_policy(policy: Mapping[str, Any]) -> None:
    """Refuse a policy that is not CAM syntax, naming the fault."""
    if policy.get("version") != "2.0" or not isinstance(policy.get("statement"), list):
        raise ValueError('a CAM policy is {"version": "2.0", "statement": [...]}')
    for i, st in enumerate(policy["statement"]):
        if st.get("effect") not in ("allow", "deny") or "action" not in st \
                or "resource" not in st:
            raise ValueError(f"statement {i}: needs effect allow|deny, action and resource")


def allowed(policy: Mapping[str, Any], action: str, resource: str) -> bool:
    """CAM evaluation: an explicit deny wins; otherwise a matching allow is needed."""
    verdict = False
    for st in policy["statement"]:
        acts = [st["action"]] if isinstance(st["action"], str) else st["action"]
        if _matches([_action(a) for a in acts], action) and _matches(st["resource"], resource):
            if st["effect"] == "deny":
                return False
            verdict = True
    return verdict


# -- the server -------------------------------------------------------------------------------


@dataclass
class Key:
    secret_key: str
    policy: dict[str, Any]
    token: str | None = None
    uin: str = "100000000001"


@dataclass(frozen=True)
class Action:
    service: str
    version: str
    name: str
    schema: Mapping[str, P]
    run: Callable[[Request], dict[str, Any]]
    resource: Callable[[Request], str]
    regional: bool = True
    cam: str | None = None
    """The CAM action name when it is not the API action's own (SCF ``Invoke`` is authorised
    as ``scf:InvokeFunction``: "Permission Management Overview", cloud.tencent.com/document/
    product/583/18014, lists ``InvokeFunction`` for sync and async triggering)."""


@dataclass
class Request:
    action: str
    service: str
    region: str
    params: dict[str, Any]
    uin: str
    secret_id: str


def signature(secret_key: str, date: str, service: str, string_to_sign: str) -> str:
    def h(key: bytes, msg: str) -> bytes:
        return hmac.new(key, msg.encode(), hashlib.sha256).digest()

    k = h(h(h(("TC3" + secret_key).encode(), date), service), "tc3_request")
    return hmac.new(k, string_to_sign.encode(), hashlib.sha256).hexdigest()


@dataclass
class TencentStub:
    keys: dict[str, Key] = field(default_factory=dict)
    clock: Callable[[], float] = time.time
    checked: int = 0
    refused: Counter[str] = field(default_factory=Counter)
    calls: list[tuple[str, str, str]] = field(default_factory=list)
    """(secret id, service, action) of every request that passed every check."""
    down_regions: set[str] = field(default_factory=set)
    """Regions whose API endpoint is unreachable: their requests get no answer at all (the
    connection is closed), as when a whole region is lost."""

    def __post_init__(self) -> None:
        self._actions: dict[tuple[str, str], Action] = {}
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self.endpoint = ""
        """``127.0.0.1:PORT`` once started."""
        from components.sandbox.tencent_stub_api import Services
        from components.sandbox.tencent_stub_cos import CosStub

        self.services = Services(self)
        self.cos = CosStub(self)
        """COS on its own port (its own signature scheme): ``cos.endpoint`` once started."""

    # -- set-up ----------------------------------------------------------------------------

    def add_key(self, secret_id: str, secret_key: str, policy: dict[str, Any],
                token: str | None = None) -> None:
        check_policy(policy)
        self.keys[secret_id] = Key(secret_key, policy, token)

    def register(self, action: Action) -> None:
        self._actions[(action.version, action.name)] = action

    def start(self) -> str:
        """Serve on 127.0.0.1 on a free port; returns ``127.0.0.1:PORT`` (the TC3 APIs;
        COS gets a port of its own, ``cos.endpoint``)."""
        self.cos.start()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                stub._serve(self)

            def do_GET(self) -> None:
                stub._serve(self)

            def log_message(self, *args: Any) -> None:
                return None

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        self.endpoint = f"127.0.0.1:{self._server.server_address[1]}"
        return self.endpoint

    def close(self) -> None:
        self.cos.close()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> TencentStub:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- checking --------------------------------------------------------------------------

    def _serve(self, h: BaseHTTPRequestHandler) -> None:
        length = int(h.headers.get("Content-Length") or 0)
        body = h.rfile.read(min(length, 8 << 20))
        if h.headers.get("X-TC-Region") in self.down_regions:
            h.close_connection = True
            return
        try:
            out = self.handle(h.command, dict(h.headers.items()), body)
            answer: dict[str, Any] = {**out}
        except ApiError as exc:
            with self._lock:
                self.refused[exc.code] += 1
            answer = {"Error": {"Code": exc.code, "Message": exc.message}}
        with self._lock:
            self.checked += 1
        answer["RequestId"] = str(uuid.uuid4())
        data = json.dumps({"Response": answer}).encode()
        h.send_response(200)
        h.send_header("Content-Type", JSON)
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        h.wfile.write(data)

    def handle(self, method: str, headers: Mapping[str, str], body: bytes) -> dict[str, Any]:
        hd = {k.lower(): v for k, v in headers.items()}
        if method != "POST" or hd.get("content-type") != JSON:
            raise ApiError("InvalidParameter", "this endpoint takes POST with Content-Type "
                           f"{JSON}; got {method} {hd.get('content-type')!r}")
        for name in ("x-tc-action", "x-tc-version", "x-tc-timestamp", "authorization", "host"):
            if not hd.get(name):
                raise ApiError("MissingParameter", f"the request has no {name} header")
        m = _AUTH.match(hd["authorization"])
        if not m:
            raise ApiError("AuthFailure.InvalidAuthorization",
                           "Authorization is not 'TC3-HMAC-SHA256 Credential=<id>/<date>/"
                           "<service>/tc3_request, SignedHeaders=..., Signature=<hex>'")
        secret_id, date, service, signed, sig = m.groups()
        try:
            ts = int(hd["x-tc-timestamp"])
        except ValueError:
            raise ApiError("InvalidParameter", "X-TC-Timestamp must be unix seconds") from None
        if abs(self.clock() - ts) > MAX_SKEW_S:
            raise ApiError("AuthFailure.SignatureExpire",
                           f"the timestamp {ts} is more than {MAX_SKEW_S} s from server time")
        key = self.keys.get(secret_id)
        if key is None:
            raise ApiError("AuthFailure.SecretIdNotFound", f"secret id {secret_id} not found")
        if key.token is not None and hd.get("x-tc-token") != key.token:
            raise ApiError("AuthFailure.TokenFailure", "the temporary key's token is missing "
                           "or wrong")
        action = self._actions.get((hd["x-tc-version"], hd["x-tc-action"]))
        if action is None:
            versions = sorted({v for v, a in self._actions if a == hd["x-tc-action"]})
            if versions:
                raise ApiError("NoSuchVersion", f"{hd['x-tc-action']} has no version "
                               f"{hd['x-tc-version']}; versions: {', '.join(versions)}")
            raise ApiError("InvalidAction", f"action {hd['x-tc-action']} does not exist")
        day = datetime.datetime.fromtimestamp(ts, datetime.UTC).strftime("%Y-%m-%d")
        if service != action.service or date != day:
            raise ApiError("AuthFailure.SignatureFailure",
                           f"credential scope {date}/{service} does not match "
                           f"{day}/{action.service} (the action's service and the "
                           "timestamp's UTC date)")
        if signed != "content-type;host":
            raise ApiError("AuthFailure.SignatureFailure",
                           f"SignedHeaders {signed!r}; this stub checks content-type;host")
        canonical = (f"POST\n/\n\ncontent-type:{hd['content-type']}\nhost:{hd['host']}\n\n"
                     f"content-type;host\n{hashlib.sha256(body).hexdigest()}")
        to_sign = (f"TC3-HMAC-SHA256\n{ts}\n{date}/{service}/tc3_request\n"
                   f"{hashlib.sha256(canonical.encode()).hexdigest()}")
        if not hmac.compare_digest(signature(key.secret_key, date, service, to_sign), sig):
            raise ApiError("AuthFailure.SignatureFailure",
                           "the request signature we calculated does not match the one sent")
        region = hd.get("x-tc-region", "")
        if action.regional and not region:
            raise ApiError("MissingParameter", f"{action.name} needs the X-TC-Region header")
        try:
            params = json.loads(body or b"{}")
        except ValueError:
            raise ApiError("InvalidParameter", "the body is not JSON") from None
        if not isinstance(params, dict):
            raise ApiError("InvalidParameter", "the body must be a JSON object")
        check_params(params, action.schema)
        req = Request(action.name, service, region, params, key.uin, secret_id)
        resource = action.resource(req)
        cam = f"name/{service}:{action.cam or action.name}"
        if not allowed(key.policy, cam, resource):
            raise ApiError("AuthFailure.UnauthorizedOperation",
                           f"{secret_id} is not authorized to perform {cam} on {resource}")
        with self._lock:
            self.calls.append((secret_id, service, action.name))
        return action.run(req)
