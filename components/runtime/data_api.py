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

A statement is accepted only if it is one ``SELECT``/``INSERT``/``UPDATE``/``DELETE``/``WITH``
statement with no string literals, no quoted identifiers, no comments and no ``;`` (a
trailing one is allowed): every value must be a parameter, so text built from user input
has nowhere to hide. Every ``:name`` must have a parameter and every parameter must be used.

Every failure is a ``DataError`` with a stable ``code`` (see ``CODES``) and a message that
names the field and what is allowed.
"""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass, field
from typing import Any

#: Error codes of the wrapper's answers, with whether a caller may retry the same request.
CODES: dict[str, bool] = {
    "BadRequest": False,          # malformed request or a field out of its allowed range
    "UnknownOperation": False,    # ``op`` is not one of OPS
    "PayloadTooLarge": False,     # request or a field over its size limit
    "ForbiddenStatement": False,  # SQL outside the allowed subset (see module doc)
    "NotFound": False,            # kv.get / object.get of a missing key
    "Conflict": False,            # a constraint violation (duplicate key, ...)
    "NotPrimary": True,           # a write reached a side that is not (or no longer) primary
    "Unavailable": True,          # the active database or bucket cannot be reached
    "Internal": False,            # a bug or an unexpected answer: see the wrapper's log
}

OPS = ("sql", "kv.get", "kv.put", "kv.delete", "object.get", "object.put", "object.list")
WRITE_OPS = ("kv.put", "kv.delete", "object.put")

MAX_REQUEST_BYTES = 256 * 1024
MAX_SQL_CHARS = 16 * 1024
MAX_PARAMS = 100
MAX_PARAM_CHARS = 64 * 1024
MAX_OBJECT_BYTES = 128 * 1024
MAX_OBJECT_KEY_BYTES = 1024
MAX_ROWS = 1000
MAX_IDEMPOTENCY_KEY = 128
SQL_VERBS = {"select": False, "insert": True, "update": True, "delete": True, "with": True}
"""Allowed first keywords, and whether the statement writes (``WITH`` may modify: a write)."""

_PARAM = re.compile(r"(?<![:\w]):([A-Za-z_][A-Za-z0-9_]{0,62})")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
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


class DataError(Exception):
    def __init__(self, code: str, message: str) -> None:
        assert code in CODES, code
        super().__init__(message)
        self.code = code
        self.message = message

    @property
    def retryable(self) -> bool:
        return CODES[self.code]

    def answer(self) -> dict[str, Any]:
        return {"ok": False, "error": {"code": self.code, "message": self.message,
                                       "retryable": self.retryable}}


@dataclass(frozen=True)
class Statement:
    """A checked SQL statement in the drivers' ``pyformat`` style (psycopg and PyMySQL)."""

    text: str
    params: dict[str, Any]
    writes: bool


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


def check_sql(sql: Any, params: Any) -> Statement:
    """Check one statement against the allowed subset and bind its named parameters."""
    if not isinstance(sql, str) or not sql.strip():
        raise _bad("sql: must be a non-empty string")
    if len(sql) > MAX_SQL_CHARS:
        raise DataError("PayloadTooLarge", f"sql: {len(sql)} characters; at most {MAX_SQL_CHARS}")
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise _bad("params: must be an object of name -> value")
    if len(params) > MAX_PARAMS:
        raise DataError("PayloadTooLarge", f"params: {len(params)} parameters; at most {MAX_PARAMS}")  # noqa: E501
    text = sql.strip()
    if text.endswith(";"):
        text = text[:-1].rstrip()
    for token, what in (("'", "string literals"), ('"', "quoted identifiers"), ("`", "quoted identifiers"),  # noqa: E501
                        ("--", "comments"), ("/*", "comments"), ("#", "comments"),
                        (";", "more than one statement"), ("$", "dollar quoting"),
                        ("\\", "backslashes")):
        if token in text:
            raise DataError("ForbiddenStatement",
                            f"sql: {what} are not allowed (found {token!r}); pass every value "
                            "as a named parameter (:name) in params")
    verb = text.split(None, 1)[0].lower()
    if verb not in SQL_VERBS:
        raise DataError("ForbiddenStatement",
                        f"sql: statement starts with {verb.upper()!r}; allowed: "
                        f"{', '.join(v.upper() for v in SQL_VERBS)}")
    used = set(_PARAM.findall(text))
    for name, value in params.items():
        if not _NAME.match(str(name)):
            raise _bad(f"params: {name!r} is not a valid parameter name ([A-Za-z_][A-Za-z0-9_]*)")
        if isinstance(value, str) and len(value) > MAX_PARAM_CHARS:
            raise DataError("PayloadTooLarge",
                            f"params.{name}: {len(value)} characters; at most {MAX_PARAM_CHARS}")
        if value is not None and not isinstance(value, (str, int, float, bool)):
            raise _bad(f"params.{name}: {type(value).__name__} values are not allowed; "
                       "allowed: string, number, boolean, null")
    missing = sorted(used - set(params))
    if missing:
        raise _bad(f"params: no value for {', '.join(':' + m for m in missing)}")
    unused = sorted(set(params) - used)
    if unused:
        raise _bad(f"params: {', '.join(unused)} not used by the statement")
    # pyformat: a literal % must be doubled; named parameters become %(name)s.
    bound = _PARAM.sub(lambda m: f"%({m.group(1)})s", text.replace("%", "%%"))
    return Statement(bound, dict(params), SQL_VERBS[verb])


def _key(raw: Any, what: str) -> dict[str, Any]:
    if not isinstance(raw, dict) or not raw:
        raise _bad(f"{what}: must be a non-empty object of attribute -> value")
    for name, value in raw.items():
        if not isinstance(name, str) or not name or len(name) > 255:
            raise _bad(f"{what}: attribute names must be strings of 1..255 characters")
        if isinstance(value, float) and value != value:
            raise _bad(f"{what}.{name}: NaN is not allowed")
    return raw


def parse(event: Any) -> Request:
    """Check a wrapper request; raises ``DataError`` naming the first problem."""
    if not isinstance(event, dict):
        raise _bad(f"request: expected a JSON object, got {type(event).__name__}")
    size = len(json.dumps(event, default=str))
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
        stmt = check_sql(event["sql"], event.get("params"))
        if idem is not None and not stmt.writes:
            raise _bad("idempotency_key: only for writing statements (INSERT, UPDATE, DELETE, WITH)")  # noqa: E501
        return Request(op, event, idem, statement=stmt, extra={"max_rows": max_rows})
    if op in ("kv.get", "kv.delete"):
        _key(event["key"], "key")
        return Request(op, event, idem)
    if op == "kv.put":
        _key(event["item"], "item")
        return Request(op, event, idem)
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
        data = event["body"].encode()
    else:
        try:
            data = base64.b64decode(str(event["body_b64"]), validate=True)
        except ValueError:
            raise _bad("body_b64: not valid base64") from None
    if len(data) > MAX_OBJECT_BYTES:
        raise DataError("PayloadTooLarge", f"object body: {len(data)} bytes; at most {MAX_OBJECT_BYTES}")  # noqa: E501
    ctype = event.get("content_type", "application/octet-stream")
    if not isinstance(ctype, str) or len(ctype) > 255:
        raise _bad("content_type: must be a string of at most 255 characters")
    return Request(op, event, idem, data=data, extra={"content_type": ctype})
