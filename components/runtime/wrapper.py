"""The data-access wrapper function: the only code that talks to the database and bucket.

Logic functions send it small requests (``components.runtime.data_api``); it serves each
from the database and bucket of the region the data pointer names, and answers

* ``{"ok": true, "result": {...}, "served": {...}}``, or
* ``{"ok": false, "error": {"code": ..., "message": ..., "retryable": ...}, "served": ...}``.

It never writes to a side that has not been promoted: SQL writes run on the server the
pointer names and first check, in the writing transaction, that it takes writes (a replica
or a fenced old primary answers ``NotPrimary``); key-value writes re-read the pointer
(strongly consistent) before writing. The pointer is cached for ``STANDBY_POINTER_CACHE_S``
and re-read after a ``NotPrimary``. It fails closed: once the pointer has not been read for
longer than the cache TTL, writes are refused (``Unavailable``, retryable); reads are served
from the last value read for at most ``STANDBY_POINTER_MAX_STALE_S``.

Every SQL statement runs under a statement timeout: ``STANDBY_STATEMENT_TIMEOUT_S``, cut to
what the invocation has left (minus a margin to answer). Idempotency keys expire after
``STANDBY_IDEMPOTENCY_TTL_S``. An unexpected exception answers ``Internal`` (never a crash
the client would take for an unavailable wrapper).

The handlers are ``components.runtime.aws.wrapper.handler`` and
``components.runtime.tencent.wrapper.handler``; both read the cloud-neutral variables with
``load_common``. The AWS environment (set by ``WrapperLayer``):
``STANDBY_TOPOLOGY``, ``STANDBY_SIDE``, ``STANDBY_REGION``, ``STANDBY_POINTER_TABLE``,
``STANDBY_POINTER_CACHE_S``, ``STANDBY_POINTER_MAX_STALE_S``, ``STANDBY_STATEMENT_TIMEOUT_S``,
``STANDBY_IDEMPOTENCY_TTL_S``, ``STANDBY_DB_ENGINE``, ``STANDBY_DATA_REGIONS`` and, by engine,
``STANDBY_DB_TABLE`` (DynamoDB) or ``STANDBY_DB_ENDPOINTS``/``STANDBY_DB_NAME``/
``STANDBY_DB_SECRET_ARN`` (SQL); ``STANDBY_BUCKETS`` when the topology has storage.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from components.runtime.config import env_number
from components.runtime.data_api import DataError, Request, parse
from components.runtime.errors import ConfigError
from components.runtime.observe import Log
from components.runtime.pointer_cache import PointerCache, PointerUnavailable
from components.runtime.sqldb import (
    ENGINES,
    IDEMPOTENCY_TTL_S,
    STATEMENT_TIMEOUT_S,
    Endpoint,
    SqlPool,
)

DB_ENGINES = (*ENGINES, "dynamodb")
ANSWER_MARGIN_S = 1.0          # left to roll back and answer after a cancelled statement
MIN_STATEMENT_TIMEOUT_S = 0.1


@dataclass(frozen=True)
class WrapperConfig:
    topology: str
    side: str
    region: str
    pointer_table: str
    """The AWS pointer table; empty where the adapter keeps the pointer elsewhere."""
    pointer_cache_s: float
    engine: str
    data_regions: list[str]
    db_table: str | None = None
    db_endpoints: Mapping[str, Endpoint] = field(default_factory=dict)
    """By data region; an adapter may resolve an address on first use (a lookup that fails
    raises ``DataError``)."""
    db_secret_arn: str | None = None
    buckets: dict[str, str] = field(default_factory=dict)
    timeout_s: float = 3.0
    pointer_max_stale_s: float = 60.0
    statement_timeout_s: float = STATEMENT_TIMEOUT_S
    idempotency_ttl_s: float = IDEMPOTENCY_TTL_S


def load_common(env: Mapping[str, str], problems: list[str]) -> dict[str, Any]:
    """The cloud-neutral part of the wrapper's environment, as ``WrapperConfig`` keywords
    (every problem is added to ``problems``). Where the pointer lives and how the database
    is reached are the adapter's: ``load_config`` reads the AWS variables, other adapters
    their own."""
    for name in ("STANDBY_TOPOLOGY", "STANDBY_SIDE", "STANDBY_REGION", "STANDBY_DB_ENGINE",
                 "STANDBY_DATA_REGIONS"):
        if not env.get(name):
            problems.append(f"{name}: missing")
    if env.get("STANDBY_SIDE") not in (None, "", "primary", "standby"):
        problems.append(f"STANDBY_SIDE: {env['STANDBY_SIDE']!r}; allowed: primary, standby")
    engine = env.get("STANDBY_DB_ENGINE", "")
    if engine and engine not in DB_ENGINES:
        problems.append(f"STANDBY_DB_ENGINE: {engine!r}; allowed: {', '.join(DB_ENGINES)}")
    cache_s = env_number(env, "STANDBY_POINTER_CACHE_S", 5.0, 0, 300, problems)
    max_stale_s = env_number(env, "STANDBY_POINTER_MAX_STALE_S", max(60.0, cache_s), 0, 3600,
                             problems)
    if max_stale_s < cache_s:
        problems.append(f"STANDBY_POINTER_MAX_STALE_S: {max_stale_s:g} is less than "
                        f"STANDBY_POINTER_CACHE_S ({cache_s:g}); allowed: at least the cache TTL")
    stmt_timeout_s = env_number(env, "STANDBY_STATEMENT_TIMEOUT_S", STATEMENT_TIMEOUT_S, 0.1,
                                300, problems)
    idem_ttl_s = env_number(env, "STANDBY_IDEMPOTENCY_TTL_S", IDEMPOTENCY_TTL_S, 60,
                            30 * 86400, problems)
    regions = _js(env, "STANDBY_DATA_REGIONS", list, problems) or []
    buckets = _js(env, "STANDBY_BUCKETS", dict, problems) or {}
    return {
        "topology": env.get("STANDBY_TOPOLOGY", ""), "side": env.get("STANDBY_SIDE", ""),
        "region": env.get("STANDBY_REGION", ""), "pointer_cache_s": cache_s, "engine": engine,
        "data_regions": [str(r) for r in regions],
        "buckets": {str(k): str(v) for k, v in buckets.items()},
        "pointer_max_stale_s": max_stale_s, "statement_timeout_s": stmt_timeout_s,
        "idempotency_ttl_s": idem_ttl_s,
    }


def _js(env: Mapping[str, str], name: str, kind: type, problems: list[str]) -> Any:
    raw = env.get(name)
    if raw is None:
        return None
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        problems.append(f"{name}: not valid JSON ({exc.msg})")
        return None
    if not isinstance(value, kind):
        problems.append(f"{name}: must be a JSON {kind.__name__}")
        return None
    return value


def load_config(env: Mapping[str, str] | None = None) -> WrapperConfig:
    """Read and check the wrapper's environment as the AWS deploy sets it; ``ConfigError``
    lists every problem."""
    env = os.environ if env is None else env
    problems: list[str] = []
    common = load_common(env, problems)
    engine = common["engine"]
    if not env.get("STANDBY_POINTER_TABLE"):
        problems.append("STANDBY_POINTER_TABLE: missing")
    endpoints: dict[str, Endpoint] = {}
    if engine in ENGINES:
        raw_eps = _js(env, "STANDBY_DB_ENDPOINTS", dict, problems)
        if raw_eps is None and "STANDBY_DB_ENDPOINTS" not in env:
            problems.append("STANDBY_DB_ENDPOINTS: missing (a SQL engine needs the endpoints)")
        if not env.get("STANDBY_DB_SECRET_ARN"):
            problems.append("STANDBY_DB_SECRET_ARN: missing (a SQL engine needs credentials)")
        if not env.get("STANDBY_DB_NAME"):
            problems.append("STANDBY_DB_NAME: missing")
        for r, ep in (raw_eps or {}).items():
            try:
                endpoints[r] = Endpoint.parse(engine, ep, env.get("STANDBY_DB_NAME", ""))
            except (ValueError, KeyError, TypeError) as exc:
                problems.append(f"STANDBY_DB_ENDPOINTS.{r}: {exc}")
    if engine == "dynamodb" and not env.get("STANDBY_DB_TABLE"):
        problems.append("STANDBY_DB_TABLE: missing (engine dynamodb)")
    if problems:
        raise ConfigError(problems)
    return WrapperConfig(
        **common, pointer_table=env["STANDBY_POINTER_TABLE"],
        db_table=env.get("STANDBY_DB_TABLE"), db_endpoints=endpoints,
        db_secret_arn=env.get("STANDBY_DB_SECRET_ARN"),
    )


class Backends(Protocol):
    """What a cloud adapter supplies to the wrapper."""

    def read_pointer(self, key: str, consistent: bool) -> tuple[str, int]: ...
    def credentials(self) -> tuple[str, str]: ...
    def kv(self, op: str, region: str, req: Request) -> dict[str, Any]: ...
    def objects(self, op: str, region: str, bucket: str, req: Request) -> dict[str, Any]: ...


class Wrapper:
    def __init__(self, cfg: WrapperConfig, backends: Backends, log: Log | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.cfg = cfg
        self.backends = backends
        self.log = log or Log(component="wrapper", region=cfg.region, side=cfg.side)
        self.pointer: PointerCache[tuple[str, int]] = PointerCache(
            lambda fresh: backends.read_pointer("data", fresh), cfg.pointer_cache_s, clock)
        self._pools: dict[str, SqlPool] = {}
        self._lock = threading.Lock()

    def _served(self, data_region: str | None, token: int | None) -> dict[str, Any]:
        return {"region": self.cfg.region, "side": self.cfg.side, "data_region": data_region,
                "token": token}

    def _data_pointer(self, fresh: bool = False, writes: bool = True) -> tuple[str, int]:
        # Fail closed: a write needs a pointer read within one TTL; a read may use an older
        # one, but only up to the bounded staleness.
        max_age = self.cfg.pointer_cache_s if writes else self.cfg.pointer_max_stale_s
        try:
            return self.pointer.get(fresh, max_age=max_age)
        except PointerUnavailable as exc:
            what = "writes are refused" if writes else "reads are refused"
            raise DataError("Unavailable", f"data pointer unreadable ({exc}); {what} until it "
                            "is read again") from None

    def health(self) -> dict[str, Any]:
        try:
            region, token = self._data_pointer(writes=True)
        except DataError as exc:
            return {"ok": False, "detail": exc.message}
        return {"ok": True, "detail": f"data pointer -> {region} (token {token})"}

    def handle(self, event: Any, remaining_s: float | None = None) -> dict[str, Any]:
        """Answer one request; ``remaining_s`` is what the invocation has left (the
        statement timeout is cut to fit it)."""
        if isinstance(event, dict) and event.get("standby_probe") is True:
            return self.health()
        region: str | None = None
        token: int | None = None
        try:
            req = parse(event, self.cfg.engine if self.cfg.engine in ENGINES else "postgres")
            # A write reads the pointer now (strongly consistent), never from the cache: on
            # SQL engines a cached pointer let a write reach the old primary for up to one
            # TTL after a switch (RDS has no synchronous fence), and that write could be
            # acknowledged there and lost. A read may use the cached pointer.
            region, token = self._data_pointer(fresh=req.writes, writes=req.writes)
            if region not in self.cfg.data_regions:
                raise DataError("Internal", f"data pointer names {region!r}, not one of this "
                                f"topology's data regions ({', '.join(self.cfg.data_regions)})")
            result = self._dispatch(req, region, self._statement_timeout(remaining_s))
        except Exception as exc:
            if isinstance(exc, DataError):
                err = exc
            else:
                # A bug must not crash the handler: the client would take the crash for an
                # unavailable wrapper and resend.
                self.log.error("unexpected error", error=f"{type(exc).__name__}: {exc}"[:500])
                err = DataError("Internal", f"unexpected {type(exc).__name__}; see the "
                                "wrapper's log")
            if err.code == "NotPrimary":
                self.pointer.invalidate()
            if err.code in ("Internal", "Unavailable", "NotPrimary"):
                self.log.warning("request failed", code=err.code, error=err.message,
                                 data_region=region)
            return {**err.answer(), "served": self._served(region, token)}
        return {"ok": True, "result": result, "served": self._served(region, token)}

    def _statement_timeout(self, remaining_s: float | None) -> float:
        timeout = self.cfg.statement_timeout_s
        if remaining_s is not None:
            timeout = min(timeout, remaining_s - ANSWER_MARGIN_S)
        return max(MIN_STATEMENT_TIMEOUT_S, timeout)

    def _dispatch(self, req: Request, region: str, timeout_s: float) -> dict[str, Any]:
        if req.op == "sql":
            if self.cfg.engine not in ENGINES:
                raise DataError("BadRequest", f"op sql: this topology's database is "
                                f"{self.cfg.engine}; use kv.get, kv.put, kv.delete")
            assert req.statement is not None
            return self._pool(region).execute(req.statement, req.idempotency_key,
                                              int(req.extra["max_rows"]), timeout_s)
        if req.op.startswith("kv."):
            if self.cfg.engine != "dynamodb":
                raise DataError("BadRequest", f"op {req.op}: this topology's database is "
                                f"{self.cfg.engine}; use op sql")
            return self.backends.kv(req.op, region, req)
        bucket = self.cfg.buckets.get(region)
        if bucket is None:
            raise DataError("BadRequest", f"op {req.op}: this topology has no bucket in {region}")
        return self.backends.objects(req.op, region, bucket, req)

    def _pool(self, region: str) -> SqlPool:
        with self._lock:
            pool = self._pools.get(region)
            if pool is None:
                ep = self.cfg.db_endpoints.get(region)
                if ep is None:
                    raise DataError("Internal", f"no database endpoint for {region}")
                user, password = self.backends.credentials()
                pool = self._pools[region] = SqlPool(
                    ep, user, password, self.cfg.timeout_s,
                    idempotency_ttl_s=self.cfg.idempotency_ttl_s)
            return pool

    def close(self) -> None:
        for pool in self._pools.values():
            pool.close()


class WrapperHandler:
    """A Lambda-style handler bound to one wrapper (``.wrapper``)."""

    def __init__(self, wrapper: Wrapper) -> None:
        self.wrapper = wrapper

    def __call__(self, event: Any, context: Any = None) -> dict[str, Any]:
        remaining = getattr(context, "get_remaining_time_in_millis", None)
        return self.wrapper.handle(event, remaining() / 1000 if callable(remaining) else None)


def make_handler(env: Mapping[str, str], backends: Backends,
                 log: Log | None = None) -> WrapperHandler:
    """A handler bound to one environment and one cloud's backends (the cloud adapters'
    entry points and the local sandbox build it this way)."""
    return WrapperHandler(Wrapper(load_config(env), backends, log))
