"""Example logic function: a tiny orders API on the data client, for every database engine.

Replace this folder with your own code (``logic.code`` in the stack config). The deployed
function gets the package's run-time code next to this file, so the data client imports as
below; it reads its wrappers and pointer table from the environment ``LogicLayer`` sets.

Routes (API Gateway proxy events):
  GET  /health          deep health: one read through the active wrapper and database
  POST /orders          body {"id": "...", "item": "..."}: stores the order once
  GET  /orders/<id>     reads it back

The probe contract: the monitors invoke every logic function with ``{"standby_probe": true}``
and count it healthy when the invoke succeeds and the answer is not ``{"ok": false, ...}``.
This app answers it with the same deep check as ``/health``, so a logic function that cannot
reach its data is reported unhealthy.

The engine comes from ``STANDBY_DB_ENGINE`` (``dynamodb``, ``postgres`` or ``mysql``; absent
means SQL, any other value is refused):

- DynamoDB: items ``{"pk": "order#<id>", "sk": "order", "item", "region"}`` in the stack's
  table (hash key ``pk``, range key ``sk``; the program creates it);
- SQL: ``CREATE TABLE orders (id varchar(200) PRIMARY KEY, item text, region text)``.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from typing import Any

from components.runtime.data_client import DataClient, DataClientError

ENGINES = ("dynamodb", "postgres", "mysql")
MAX_ID = 200
_IDEM = re.compile(r"[A-Za-z0-9._:-]{1,128}")
#: The read the deep check makes: a key no order uses, so "not found" proves the path works.
PROBE_KEY = {"pk": "standby#probe", "sk": "probe"}

_data: DataClient | None = None


def handler(event: dict[str, Any] | None, context: object) -> dict[str, Any]:
    """Lambda entry point: the data client is built once per container."""
    global _data
    if _data is None:
        from components.runtime.aws.data_client import from_env

        _data = from_env()
    return route(event or {}, _data, os.environ)


def _reply(status: int, doc: Any) -> dict[str, Any]:
    return {"statusCode": status, "headers": {"Content-Type": "application/json"},
            "body": json.dumps(doc)}


def engine_of(env: Mapping[str, str]) -> str:
    # Deployments made before the program set STANDBY_DB_ENGINE on logic functions ran SQL
    # stacks only, so an absent value means SQL. On a DynamoDB stack that guess fails
    # visibly: the wrapper refuses SQL, and the deep probe reports the logic function unhealthy.
    engine = env.get("STANDBY_DB_ENGINE", "postgres")
    if engine not in ENGINES:
        raise DataClientError("Internal", f"STANDBY_DB_ENGINE: {engine!r}; allowed: "
                              f"{', '.join(ENGINES)} (set by the program on logic functions)")
    return engine


def deep_check(data: DataClient, env: Mapping[str, str]) -> dict[str, Any]:
    """One read through the active wrapper to the active database: ``{"ok": bool, ...}``."""
    try:
        if engine_of(env) == "dynamodb":
            try:
                data.kv_get(PROBE_KEY)
            except DataClientError as exc:
                if exc.code != "NotFound":  # not found is an answer from a working table
                    raise
        else:
            data.sql("SELECT 1")
    except DataClientError as exc:
        return {"ok": False, "detail": f"data path: {exc.code}: {exc.message}"[:300],
                "data": exc.served}
    return {"ok": True, "detail": "data path answered", "data": data.last_served}


def route(event: Mapping[str, Any], data: DataClient, env: Mapping[str, str]) -> dict[str, Any]:
    """The routing, with the data client and environment passed in (testable, hostable)."""
    if event.get("standby_probe") is True:  # the monitors' health probe (deep)
        return deep_check(data, env)
    me = {"region": env.get("STANDBY_REGION"), "side": env.get("STANDBY_SIDE")}
    method = str(event.get("httpMethod") or "GET").upper()
    path = str(event.get("path") or event.get("rawPath") or "/")
    if path.endswith("/health"):
        health = deep_check(data, env)
        return _reply(200 if health["ok"] else 503, {**health, "logic": me})
    try:
        if method == "POST" and path.rstrip("/") == "/orders":
            try:
                body = json.loads(event.get("body") or "{}")
                order_id, item = str(body["id"]), str(body.get("item", ""))
            except (ValueError, KeyError, TypeError, AttributeError):
                return _reply(400, {"error": 'body must be {"id": "...", "item": "..."}'})
            if not 1 <= len(order_id) <= MAX_ID:
                return _reply(400, {"error": f"id: 1..{MAX_ID} characters"})
            _store(data, env, order_id, item, me["region"])
            return _reply(201, {"id": order_id, "logic": me, "data": data.last_served})
        if method == "GET" and path.startswith("/orders/"):
            order = _load(data, env, path.rsplit("/", 1)[1])
            if order is None:
                return _reply(404, {"error": "no such order"})
            return _reply(200, {"order": order, "logic": me})
    except DataClientError as exc:
        status = 503 if exc.retryable else 409 if exc.code == "Conflict" else 500
        return _reply(status, {"error": exc.code, "message": exc.message, "logic": me,
                               "data": exc.served})
    return _reply(404, {"error": f"no route for {method} {path}"})


def _store(data: DataClient, env: Mapping[str, str], order_id: str, item: str,
           region: str | None) -> None:
    # The wrapper takes idempotency keys of A-Z a-z 0-9 . _ : - (data_api); any other id is
    # still stored once: the primary key refuses a second insert, and the client adds its own
    # random key for the retry.
    key: str | None = f"order-{order_id}"
    if not _IDEM.fullmatch(key or ""):
        key = None
    if engine_of(env) == "dynamodb":
        data.kv_put({"pk": f"order#{order_id}", "sk": "order", "item": item,
                     "region": region or ""}, idempotency_key=key)
    else:
        data.sql("INSERT INTO orders (id, item, region) VALUES (:id, :item, :region)",
                 {"id": order_id, "item": item, "region": region}, idempotency_key=key)


def _load(data: DataClient, env: Mapping[str, str], order_id: str) -> dict[str, Any] | None:
    if engine_of(env) == "dynamodb":
        try:
            got = data.kv_get({"pk": f"order#{order_id}", "sk": "order"})
        except DataClientError as exc:
            if exc.code == "NotFound":
                return None
            raise
        return {"id": order_id, "item": got.get("item"), "region": got.get("region")}
    rows = data.sql("SELECT id, item, region FROM orders WHERE id = :id",
                    {"id": order_id})["rows"]
    if not rows:
        return None
    return dict(zip(("id", "item", "region"), rows[0], strict=True))
