"""Example logic function: a tiny orders API on the data client.

Replace this folder with your own code (``logic.code`` in the stack config). The deployed
function gets the package's run-time code next to this file, so the data client imports as
below; it reads its wrappers and pointer table from the environment ``LogicLayer`` sets.

Routes (API Gateway proxy events):
  GET  /health          the deep-health path the DNS health checks call
  POST /orders          body {"id": "...", "item": "..."}: stores the order once
  GET  /orders/<id>     reads it back

The schema it expects: ``CREATE TABLE orders (id text PRIMARY KEY, item text,
region text, created_at timestamptz DEFAULT now())``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

from components.runtime.data_client import DataClient, DataClientError

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


def route(event: Mapping[str, Any], data: DataClient, env: Mapping[str, str]) -> dict[str, Any]:
    """The routing, with the data client and environment passed in (testable, hostable)."""
    if event.get("standby_probe") is True:  # the monitors' health probe
        return {"ok": True}
    me = {"region": env.get("STANDBY_REGION"), "side": env.get("STANDBY_SIDE")}
    method = str(event.get("httpMethod") or "GET").upper()
    path = str(event.get("path") or event.get("rawPath") or "/")
    if path.endswith("/health"):
        return _reply(200, {"ok": True, "logic": me})
    try:
        if method == "POST" and path.rstrip("/") == "/orders":
            try:
                body = json.loads(event.get("body") or "{}")
                order_id, item = str(body["id"]), str(body.get("item", ""))
            except (ValueError, KeyError, TypeError):
                return _reply(400, {"error": 'body must be {"id": "...", "item": "..."}'})
            data.sql("INSERT INTO orders (id, item, region) VALUES (:id, :item, :region)",
                     {"id": order_id, "item": item, "region": me["region"]},
                     idempotency_key=f"order-{order_id}")
            return _reply(201, {"id": order_id, "logic": me, "data": data.last_served})
        if method == "GET" and path.startswith("/orders/"):
            rows = data.sql("SELECT id, item, region FROM orders WHERE id = :id",
                            {"id": path.rsplit("/", 1)[1]})["rows"]
            if not rows:
                return _reply(404, {"error": "no such order"})
            return _reply(200, {"order": dict(zip(("id", "item", "region"), rows[0],
                                                  strict=True)), "logic": me})
    except DataClientError as exc:
        status = 503 if exc.retryable else 409 if exc.code == "Conflict" else 500
        return _reply(status, {"error": exc.code, "message": exc.message, "logic": me,
                               "data": exc.served})
    return _reply(404, {"error": f"no route for {method} {path}"})
