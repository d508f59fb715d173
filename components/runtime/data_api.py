"""The wrapper's request format, checked before anything touches a database or bucket.

In the spirit of the RDS Data API: SQL arrives as one statement with named parameters
(``:name``) and a separate ``params`` object; values are never spliced into the text.
Key-value requests address the data table by its key (``pk``/``sk``); object requests
address the active region's bucket by key.

========================  =====================================================================
``op``                    fields (``*`` required)
========================  =====================================================================
``sql``                   ``sql``\\*, ``params`` (object), ``idempotency_key``, ``max_rows``
``kv.get``                ``key``\\* (object of the table's key attributes)
``kv.put``                ``item``\\* (object, includes the key), ``idempotency_key``
``kv.delete``             ``key``\\*, ``idempotency_key``
``object.get``            ``key``\\* (string)
``object.put``            ``key``\\*, ``body`` (text) or ``body_b64``, ``content_type``,
                          ``idempotency_key``
``object.list``           ``prefix``, ``limit`` (1..1000)
========================  =====================================================================

``{"standby_probe": true}`` is the monitors' health probe.

SQL statements pass the gate in ``components.runtime.sql_gate`` (an allow-list over a parse
tree: one SELECT/INSERT/UPDATE/DELETE or read-only WITH ... SELECT, only ``:name`` parameters,
only side-effect-free functions). Key-value items are checked against DynamoDB's limits (the
strictest store served) before any SDK call: numbers finite with at most 38 significant
digits and a magnitude of 1e-130 .. <1e126, at most 32 levels of nesting, text valid Unicode,
and attribute names starting with ``_standby`` reserved for the wrapper.

Every failure is a ``DataError`` with a stable ``code`` (see ``CODES``) and a message that
names the field and what is allowed.
"""

from __future__ import annotations

import base64
import binascii
import decimal
import json
import math
import re
from dataclasses import dataclass, field
from typing import Any

from components.runtime.data_errors import CODES, DataError
from components.runtime.sql_gate import (
    MAX_PARAM_CHARS,
    MAX_PARAMS,
    MAX_SQL_CHARS,
    Statement,
    check_sql,
)

__all__ = ["CODES", "KV_KEY", "MAX_PARAMS", "MAX_PARAM_CHARS", "MAX_SQL_CHARS", "RESERVED_PREFIX",
           "DataError", "Request", "Statement", "check_sql", "kv_value", "parse"]

OPS = ("sql", "kv.get", "kv.put", "kv.delete", "object.get", "object.put", "object.list")
WRITE_OPS = ("kv.put", "kv.delete", "object.put")

MAX_REQUEST_BYTES = 256 * 1024
MAX_OBJECT_BYTES = 128 * 1024
MAX_OBJECT_KEY_BYTES = 1024
MAX_ROWS = 1000
MAX_IDEMPOTENCY_KEY = 128
SQL_VERBS = {"select": False, "insert": True, "update": True, "delete": True, "with": False}
"""Allowed first keywords, and whether the statement writes (``WITH`` must end in a SELECT)."""
MAX_KV_DEPTH = 32
MAX_KV_DIGITS = 38
RESERVED_PREFIX = "_standby"
KV_KEY = ("pk", "sk")
"""The data table's key: partition key ``pk`` and sort key ``sk``, both strings."""
_KV_CONTEXT = decimal.Context(prec=200, Emin=-999999, Emax=999999)

_IDEM = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")
_FIELDS: dict[str, tuple[set[str], set[str]]] = {
    # op: (required, optional)
    "sql": ({"sql"}, {"params", "idempotency_key", "max_rows"}),
    "kv.get": ({"key"}, set()),
    "kv.put": ({"item"}, {"idempotency_key"}),
    "kv.delete": ({"key"}, {"idempotency_key"}),
    "object.get": ({"key"}, set()),
    "object.put": ({"key"}, {"body", "body_b64", "content_type", "idempotency_key"}),
    "object.list": (set(), {"prefix", "limit"}),
}


@dataclass(frozen=True)
class Request:
    op: str
    body: dict[str, Any]
    idempotency_key: str | None = None
    statement: Statement | None = None
    data: bytes | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def writes(self) -> bool:
        if self.statement is not None:
            return self.statement.writes
        return self.op in WRITE_OPS


def _bad(msg: str) -> DataError:
    return DataError("BadRequest", msg)


def _number(value: int | float, where: str) -> decimal.Decimal:
    if isinstance(value, float) and not math.isfinite(value):
        raise _bad(f"{where}: {value!r} is not allowed; numbers must be finite")
    # repr() is the shortest text that reads back as the same float: 0.1 stays 0.1.
    d = decimal.Decimal(repr(value) if isinstance(value, float) else value).normalize(
        _KV_CONTEXT)
    if d.is_zero():
        return decimal.Decimal(0)
    digits = len(d.as_tuple().digits)
    if digits > MAX_KV_DIGITS:
        raise _bad(f"{where}: {digits} significant digits; at most {MAX_KV_DIGITS}")
    if not decimal.Decimal("1e-130") <= abs(d) < decimal.Decimal("1e126"):
        raise _bad(f"{where}: magnitude out of range; allowed: 1e-130 up to "
                   "9.9999999999999999999999999999999999999e+125, or 0")
    return d


def _text(value: str, where: str) -> str:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise _bad(f"{where}: not valid Unicode text (a lone surrogate)") from None
    return value


def kv_value(value: Any, where: str, depth: int = 0) -> Any:
    """A key-value attribute value checked and converted for the store (numbers become
    ``Decimal``); raises ``BadRequest`` naming the first bad value."""
    if depth > MAX_KV_DEPTH:
        raise _bad(f"{where}: nested more than {MAX_KV_DEPTH} levels")
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return _number(value, where)
    if isinstance(value, str):
        return _text(value, where)
    if isinstance(value, list):
        return [kv_value(v, f"{where}[{i}]", depth + 1) for i, v in enumerate(value)]
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            if not isinstance(k, str) or not k:
                raise _bad(f"{where}: map keys must be non-empty strings")
            out[_text(k, f"{where} key")] = kv_value(v, f"{where}.{k}", depth + 1)
        return out
    raise _bad(f"{where}: {type(value).__name__} values are not allowed; allowed: string, "
               "number, boolean, null, list, object")


def _key(raw: Any, what: str) -> dict[str, Any]:
    if not isinstance(raw, dict) or not raw:
        raise _bad(f"{what}: must be a non-empty object of attribute -> value")
    out: dict[str, Any] = {}
    for name, value in raw.items():
        if not isinstance(name, str) or not name or len(name) > 255:
            raise _bad(f"{what}: attribute names must be strings of 1..255 characters")
        _text(name, f"{what} attribute name")
        if name.startswith(RESERVED_PREFIX):
            raise _bad(f"{what}.{name}: attribute names starting with {RESERVED_PREFIX!r} are "
                       "reserved for the wrapper")
        out[name] = kv_value(value, f"{what}.{name}")
    for name in KV_KEY:
        if not isinstance(out.get(name), str) or not out[name]:
            raise _bad(f"{what}.{name}: missing or not a non-empty string; the data table's key "
                       f"is {' and '.join(KV_KEY)} (strings)")
    if what == "key" and set(out) != set(KV_KEY):
        extra = ", ".join(sorted(set(out) - set(KV_KEY)))
        raise _bad(f"key: {extra} not part of the key; allowed: {', '.join(KV_KEY)}")
    return out


def parse(event: Any, engine: str = "postgres") -> Request:
    """Check a wrapper request; raises ``DataError`` naming the first problem. ``engine``
    (``postgres`` or ``mysql``) is the SQL dialect statements are parsed in."""
    if not isinstance(event, dict):
        raise _bad(f"request: expected a JSON object, got {type(event).__name__}")
    try:
        size = len(json.dumps(event, default=str).encode("utf-8", "surrogatepass"))
    except (ValueError, RecursionError):
        raise _bad("request: not representable as JSON (nested too deep or a "
                   "non-finite number)") from None
    if size > MAX_REQUEST_BYTES:
        raise DataError("PayloadTooLarge", f"request: {size} bytes; at most {MAX_REQUEST_BYTES}")
    op = event.get("op")
    if op not in OPS:
        raise DataError("UnknownOperation", f"op: {op!r}; allowed: {', '.join(OPS)}")
    required, optional = _FIELDS[op]
    unknown = sorted(set(event) - required - optional - {"op"})
    if unknown:
        allowed = ", ".join(sorted(required | optional)) or "none"
        raise _bad(f"{op}: unknown field(s) {', '.join(unknown)}; allowed: {allowed}")
    missing = sorted(required - set(event))
    if missing:
        raise _bad(f"{op}: missing {', '.join(missing)}")
    idem = event.get("idempotency_key")
    if idem is not None and (not isinstance(idem, str) or not _IDEM.match(idem)):
        raise _bad(f"idempotency_key: must be 1..{MAX_IDEMPOTENCY_KEY} characters of "
                   "A-Z a-z 0-9 . _ : -")
    if op == "sql":
        max_rows = event.get("max_rows", MAX_ROWS)
        if isinstance(max_rows, bool) or not isinstance(max_rows, int) or not 1 <= max_rows <= MAX_ROWS:  # noqa: E501
            raise _bad(f"max_rows: {max_rows!r} is not an integer in 1..{MAX_ROWS}")
        stmt = check_sql(event["sql"], event.get("params"), engine)
        if idem is not None and not stmt.writes:
            raise _bad("idempotency_key: only for writing statements (INSERT, UPDATE, DELETE)")
        return Request(op, event, idem, statement=stmt, extra={"max_rows": max_rows})
    if op in ("kv.get", "kv.delete"):
        return Request(op, event, idem, extra={"key": _key(event["key"], "key")})
    if op == "kv.put":
        return Request(op, event, idem, extra={"item": _key(event["item"], "item")})
    if op == "object.list":
        prefix = event.get("prefix", "")
        limit = event.get("limit", 100)
        if not isinstance(prefix, str) or len(prefix.encode()) > MAX_OBJECT_KEY_BYTES:
            raise _bad(f"prefix: must be a string of at most {MAX_OBJECT_KEY_BYTES} bytes")
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 1000:
            raise _bad(f"limit: {limit!r} is not an integer in 1..1000")
        return Request(op, event, idem, extra={"prefix": prefix, "limit": limit})
    key = event["key"]
    if not isinstance(key, str) or not key or len(key.encode()) > MAX_OBJECT_KEY_BYTES:
        raise _bad(f"key: must be a non-empty string of at most {MAX_OBJECT_KEY_BYTES} bytes")
    if key.startswith("_standby-probe/"):
        raise _bad("key: the _standby-probe/ prefix is reserved for the monitors")
    if op == "object.get":
        return Request(op, event, idem)
    has_body, has_b64 = "body" in event, "body_b64" in event
    if has_body == has_b64:
        raise _bad("object.put: give exactly one of body (text) or body_b64")
    if has_body:
        if not isinstance(event["body"], str):
            raise _bad("body: must be a string (use body_b64 for binary data)")
        data = _text(event["body"], "body").encode()
    else:
        if not isinstance(event["body_b64"], str):
            raise _bad(f"body_b64: must be a base64 string, got {type(event['body_b64']).__name__}")
        try:
            data = base64.b64decode(event["body_b64"], validate=True)
        except (ValueError, binascii.Error):
            raise _bad("body_b64: not valid base64") from None
    if len(data) > MAX_OBJECT_BYTES:
        raise DataError("PayloadTooLarge", f"object body: {len(data)} bytes; at most {MAX_OBJECT_BYTES}")  # noqa: E501
    ctype = event.get("content_type", "application/octet-stream")
    if not isinstance(ctype, str) or len(ctype) > 255:
        raise _bad("content_type: must be a string of at most 255 characters")
    return Request(op, event, idem, data=data, extra={"content_type": ctype})
