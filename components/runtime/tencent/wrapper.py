"""The wrapper function's Tencent entry point: the cloud-neutral ``Wrapper`` (and its
``data_api`` request format) over the Tencent backends (``data.py``): CDB MySQL through
PyMySQL, COS objects, the data pointer from the SQL state store.

Events:

* a direct invocation (the logic function's ``Invoke``, a monitor's
  ``{"standby_probe": true}``): the event is the data request; the answer is the wrapper's
  ``{"ok", "result" | "error", "served"}``;
* an HTTP event (SCF Function URL or API gateway trigger: ``httpMethod``, ``path``,
  ``headers``, ``queryString``, ``body``, ``isBase64Encoded``): ``POST`` with the data request
  as the JSON body; the answer is an integrated response ``{"isBase64Encoded": false,
  "statusCode", "headers", "body"}`` whose body is the wrapper's answer. A bad event (another
  method, no body, a body that is not JSON or not valid base64, a content type other than
  JSON) is a 4xx naming what is wrong, before anything touches a database or bucket;
  refused requests map their code to a status (``HTTP_STATUS``).

Environment (``components/tencent/functions.py``, ``WrapperLayer``): the core variables
(``STANDBY_TOPOLOGY``, ``STANDBY_SIDE``, ``STANDBY_REGION``, ``STANDBY_DB_ENGINE=mysql``,
``STANDBY_DATA_REGIONS``, ``STANDBY_BUCKETS``, ``STANDBY_POINTER_CACHE_S`` ...), the state
store that holds the pointer (``STANDBY_STATE_STORE``, ``STANDBY_STATE_DSN_SECRET``,
``STANDBY_STATE_REGION``) and ``STANDBY_DB_SECRET``: the SSM secret in this region with the
database's DSN (``primary_region``; with a DR instance also ``standby_region`` and
``standby_instance_id``).
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from collections.abc import Mapping
from typing import Any

from components.runtime.config import StateRef
from components.runtime.data_api import MAX_REQUEST_BYTES, DataError
from components.runtime.errors import ConfigError
from components.runtime.observe import Log
from components.runtime.tencent.client import TencentApi
from components.runtime.tencent.data import CdbEndpoints, TencentBackends
from components.runtime.tencent.state import read_dsn, state_ref, state_store
from components.runtime.wrapper import Wrapper, WrapperConfig, load_common

HTTP_STATUS = {
    "BadRequest": 400, "UnknownOperation": 400, "ForbiddenStatement": 400,
    "PermissionDenied": 403, "NotFound": 404, "MethodNotAllowed": 405, "Conflict": 409,
    "PayloadTooLarge": 413, "UnsupportedMediaType": 415, "Internal": 500, "Aborted": 503,
    "NotPrimary": 503, "Unavailable": 503, "Timeout": 504,
}
JSON_TYPE = "application/json"


def load(env: Mapping[str, str]) -> tuple[dict[str, Any], StateRef, str]:
    """The core settings, the state store reference and the DB DSN secret's name;
    ``ConfigError`` names every problem."""
    problems: list[str] = []
    common = load_common(env, problems)
    if common["engine"] and common["engine"] != "mysql":
        problems.append(f"STANDBY_DB_ENGINE: {common['engine']!r}; allowed on Tencent: mysql "
                        "(CDB)")
    if not env.get("STANDBY_DB_SECRET"):
        problems.append("STANDBY_DB_SECRET: missing (the SSM secret with the database DSN)")
    try:
        ref = state_ref(env)
    except ConfigError as exc:
        problems += exc.problems
    if problems:
        raise ConfigError(problems)
    return common, ref, env["STANDBY_DB_SECRET"]


def make_handler(env: Mapping[str, str], api: TencentApi | None = None,
                 log: Log | None = None) -> TencentWrapperHandler:
    common, ref, secret = load(env)
    api = api or TencentApi.from_env(env)
    dsn = read_dsn(api, common["region"], secret, what="STANDBY_DB_SECRET")
    problems = []
    if not dsn.get("primary_region"):
        problems.append(f"STANDBY_DB_SECRET {secret!r}: no primary_region")
    regions = [dsn.get("primary_region"), dsn.get("standby_region")]
    outside = [r for r in regions if r and r not in common["data_regions"]]
    if outside:
        problems.append(f"STANDBY_DATA_REGIONS: {common['data_regions']} lacks "
                        f"{', '.join(map(str, outside))}, where the DSN secret puts the data")
    if problems:
        raise ConfigError(problems)
    cfg = WrapperConfig(**common, pointer_table="", db_endpoints=CdbEndpoints(api, dsn))
    backends = TencentBackends(api, state_store(api, ref), dsn, cfg.idempotency_ttl_s)
    return TencentWrapperHandler(Wrapper(cfg, backends, log))


def _response(status: int, answer: Mapping[str, Any],
              headers: Mapping[str, str] | None = None) -> dict[str, Any]:
    return {"isBase64Encoded": False, "statusCode": status,
            "headers": {"Content-Type": JSON_TYPE, **(headers or {})},
            "body": json.dumps(answer, separators=(",", ":"), ensure_ascii=False)}


def _refuse(status: int, code: str, message: str,
            headers: Mapping[str, str] | None = None) -> dict[str, Any]:
    # Codes the data API does not have (405, 415) still answer in its error shape.
    return _response(status, {"ok": False, "error": {"code": code, "message": message,
                                                     "retryable": False}}, headers)


class TencentWrapperHandler:
    """An SCF handler bound to one wrapper (``.wrapper``)."""

    def __init__(self, wrapper: Wrapper) -> None:
        self.wrapper = wrapper

    def __call__(self, event: Any, context: Any = None) -> dict[str, Any]:
        ctx = context if isinstance(context, Mapping) else {}
        # SCF passes the function's time limit, not what is left: the statement timeout is
        # cut to it all the same (the answer margin covers the time already spent).
        limit = ctx.get("time_limit_in_ms")
        remaining = float(limit) / 1000 if isinstance(limit, (int, float)) and limit else None
        if isinstance(event, Mapping) and "httpMethod" in event:
            return self._http(event, remaining)
        return self.wrapper.handle(event, remaining)

    def _http(self, event: Mapping[str, Any], remaining: float | None) -> dict[str, Any]:
        method = event.get("httpMethod")
        if method != "POST":
            return _refuse(405, "MethodNotAllowed", f"httpMethod {method!r}; allowed: POST "
                           "with the data request as the JSON body", {"Allow": "POST"})
        headers = event.get("headers")
        if headers is not None and not isinstance(headers, Mapping):
            return _refuse(400, "BadRequest", "headers: must be an object")
        ctype = {str(k).lower(): v for k, v in (headers or {}).items()}.get("content-type")
        if ctype is not None and str(ctype).split(";")[0].strip().lower() != JSON_TYPE:
            return _refuse(415, "UnsupportedMediaType",
                           f"content-type {ctype!r}; allowed: {JSON_TYPE}")
        body = event.get("body")
        if body is None or body == "":
            return _refuse(400, "BadRequest", "body: empty; expected the data request as "
                           "JSON, e.g. {\"op\": \"sql\", \"sql\": \"SELECT 1\"}")
        if not isinstance(body, str):
            return _refuse(400, "BadRequest", f"body: a {type(body).__name__}; expected a "
                           "JSON text")
        raw: bytes = body.encode()
        if event.get("isBase64Encoded") is True:
            try:
                raw = base64.b64decode(body, validate=True)
            except (binascii.Error, ValueError):
                return _refuse(400, "BadRequest", "body: isBase64Encoded is true but the body "
                               "is not valid base64")
        if len(raw) > MAX_REQUEST_BYTES:
            return _refuse(413, "PayloadTooLarge", f"body: {len(raw)} bytes; at most "
                           f"{MAX_REQUEST_BYTES}")
        try:
            request = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            where = (f" at line {exc.lineno} column {exc.colno}"
                     if isinstance(exc, json.JSONDecodeError) else "")
            return _refuse(400, "BadRequest", f"body: not valid JSON{where}")
        answer = self.wrapper.handle(request, remaining)
        if answer.get("ok") is True or "error" not in answer:
            return _response(200, answer)
        code = str(answer["error"].get("code"))
        return _response(HTTP_STATUS.get(code, 500), answer)


_handler: TencentWrapperHandler | None = None


def handler(event: Any, context: Any = None) -> dict[str, Any]:
    """SCF entry point: built once per instance from the environment, then reused (a warm
    instance keeps it; a cold one builds it again, which is always correct)."""
    global _handler
    if _handler is None:
        try:
            _handler = make_handler(os.environ)
        except ConfigError as exc:
            Log(component="wrapper").error("refused: bad configuration", error=str(exc))
            raise
    return _handler(event, context)


__all__ = ["HTTP_STATUS", "DataError", "TencentWrapperHandler", "handler", "load",
           "make_handler"]
