"""The data client a logic function uses to reach the data layer (cloud-neutral).

    from components.runtime.aws.data_client import from_env
    data = from_env()                                  # once, at module level
    data.sql("INSERT INTO orders (id, item) VALUES (:id, :item)",
             {"id": order_id, "item": item}, idempotency_key=f"order-{order_id}")
    rows = data.sql("SELECT item FROM orders WHERE id = :id", {"id": order_id})["rows"]

* It invokes the wrapper the ``wrapper`` pointer names (cached ``cache_s`` seconds).
* If that invoke fails (transport error, timeout, function error, 5xx), it tries the other
  wrapper at once: a wrapper outage costs one failed invoke, not a monitor round.
* Every write carries an idempotency key (the caller's, or a fresh one), so the retry on the
  other wrapper, or on the same one after a retryable error, is applied at most once.
* A wrapper answer with a retryable code (``NotPrimary``, ``Unavailable``, ``Aborted``) is
  retried once after ``retry_delay_s``; anything else (``Timeout``, ``PermissionDenied``,
  ``Conflict``, ...) raises ``DataClientError`` with the wrapper's code: resending would get
  the same answer.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from components.runtime.data_api import SQL_VERBS, WRITE_OPS
from components.runtime.engine import SIDES, Side, other
from components.runtime.pointer_cache import PointerCache, PointerUnavailable


class InvokeFailed(Exception):
    """The wrapper could not be invoked or crashed (as opposed to answering an error)."""


class DataClientError(Exception):
    def __init__(self, code: str, message: str, retryable: bool = False,
                 served: Mapping[str, Any] | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code, self.message, self.retryable = code, message, retryable
        self.served = dict(served or {})


Invoke = Callable[[str, dict[str, Any]], dict[str, Any]]
"""``invoke(function_name, request) -> answer``; raises ``InvokeFailed``."""


def _side(value: str) -> Side:
    if value == "primary":
        return "primary"
    if value == "standby":
        return "standby"
    raise ValueError(f"wrapper pointer holds {value!r}; expected one of {', '.join(SIDES)}")


def is_write(req: Mapping[str, Any]) -> bool:
    if req.get("op") == "sql":
        sql = str(req.get("sql", "")).strip()
        return SQL_VERBS.get(sql.split(None, 1)[0].lower() if sql else "", True)
    return req.get("op") in WRITE_OPS


class DataClient:
    def __init__(self, invoke: Invoke, wrappers: Mapping[Side, str],
                 pointer: Callable[[], str] | None = None, cache_s: float = 5.0,
                 retry_delay_s: float = 0.2, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self._invoke, self.wrappers = invoke, dict(wrappers)
        self.retry_delay_s, self._sleep = retry_delay_s, sleep
        self._pointer = None if pointer is None else PointerCache(
            lambda consistent: _side(pointer()), cache_s, clock)
        self.last_served: dict[str, Any] = {}
        """Which wrapper served the last request, and where it found the data."""

    def active(self) -> Side:
        """The side the ``wrapper`` pointer names; ``primary`` until it was ever read (the
        fallback to the other wrapper covers a wrong guess)."""
        if self._pointer is None:
            return "primary"
        try:
            return self._pointer.get()
        except PointerUnavailable:
            return "primary"

    def request(self, req: dict[str, Any]) -> dict[str, Any]:
        """Send one request; returns the wrapper's ``result``."""
        req = dict(req)
        if is_write(req) and "idempotency_key" not in req:
            req["idempotency_key"] = uuid.uuid4().hex
        first = self.active()
        failures: list[str] = []
        for attempt in range(2):
            answer = None
            for side in (first, other(first)):
                fn = self.wrappers[side]
                try:
                    answer = self._invoke(fn, req)
                    break
                except InvokeFailed as exc:
                    failures.append(f"{side} wrapper {fn}: {exc}")
            if answer is None:
                raise DataClientError("Unavailable", "no wrapper could be invoked: "
                                      + "; ".join(failures), retryable=True)
            self.last_served = {"wrapper": fn, "wrapper_side": side,
                                **dict(answer.get("served") or {})}
            if answer.get("ok"):
                return dict(answer.get("result") or {})
            err = answer.get("error") or {}
            code = str(err.get("code", "Internal"))
            retryable = bool(err.get("retryable"))
            if retryable and attempt == 0:
                self._sleep(self.retry_delay_s)
                continue
            raise DataClientError(code, str(err.get("message", "")), retryable,
                                  self.last_served)
        raise AssertionError("unreachable")  # pragma: no cover

    # -- convenience -------------------------------------------------------------------

    def sql(self, sql: str, params: Mapping[str, Any] | None = None, *,
            idempotency_key: str | None = None, max_rows: int | None = None) -> dict[str, Any]:
        req: dict[str, Any] = {"op": "sql", "sql": sql, "params": dict(params or {})}
        if idempotency_key is not None:
            req["idempotency_key"] = idempotency_key
        if max_rows is not None:
            req["max_rows"] = max_rows
        return self.request(req)

    def kv_get(self, key: Mapping[str, Any]) -> dict[str, Any]:
        return dict(self.request({"op": "kv.get", "key": dict(key)})["item"])

    def kv_put(self, item: Mapping[str, Any], idempotency_key: str | None = None) -> dict[str, Any]:
        req: dict[str, Any] = {"op": "kv.put", "item": dict(item)}
        if idempotency_key is not None:
            req["idempotency_key"] = idempotency_key
        return self.request(req)

    def object_put(self, key: str, body: str, content_type: str = "text/plain") -> dict[str, Any]:
        return self.request({"op": "object.put", "key": key, "body": body,
                             "content_type": content_type})

    def object_get(self, key: str) -> dict[str, Any]:
        return self.request({"op": "object.get", "key": key})

    def object_list(self, prefix: str = "", limit: int = 100) -> list[dict[str, Any]]:
        return list(self.request({"op": "object.list", "prefix": prefix,
                                  "limit": limit})["objects"])
