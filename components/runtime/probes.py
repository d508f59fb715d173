"""Probes: each returns a plain ``ProbeResult`` and never raises.

Cloud-neutral probes live here (HTTP, SQL); cloud adapters add theirs. Every kind is
registered with its role (``components.runtime.registry``), which is what the verdicts
read. A probe that times out or errors is a failed probe with the reason in ``detail``; an
unexpected exception in a probe is also a failure, so one broken probe can never stop the
round.
"""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

from components.runtime.registry import ProbeKind, register_probe


@dataclass(frozen=True)
class ProbeResult:
    scope: str
    kind: str
    ok: bool
    latency_ms: float
    detail: str
    side: str | None = None
    data: dict[str, Any] = field(default_factory=dict)
    """Measured values a decision may use (e.g. ``lag_s`` for SQL)."""

    def brief(self) -> dict[str, Any]:
        return {"scope": self.scope, "kind": self.kind, "side": self.side, "ok": self.ok,
                "ms": round(self.latency_ms, 1), "detail": self.detail[:200], **self.data}


Probe = Callable[[Mapping[str, Any], float], ProbeResult]

# The cloud-neutral kinds (their connection details, e.g. SQL credentials, come from the
# adapter that runs them). The gateway's URL is the public entry path; a SQL server is the
# store the data layer switches.
HTTP = register_probe(ProbeKind("http", "entry", ("scope", "url"), component="endpoint"))
SQL = register_probe(ProbeKind("sql", "backend",
                               ("scope", "side", "engine", "host", "port", "database"),
                               component="database"))


def timed(target: Mapping[str, Any], fn: Callable[[], tuple[bool, str, dict[str, Any]]]) -> ProbeResult:  # noqa: E501
    t0 = time.perf_counter()
    try:
        ok, detail, data = fn()
    except Exception as exc:  # a probe never raises: the failure is the result
        ok, detail, data = False, f"{type(exc).__name__}: {exc}", {}
    return ProbeResult(
        scope=str(target.get("scope")), kind=str(target.get("kind")), ok=ok,
        latency_ms=(time.perf_counter() - t0) * 1000, detail=detail,
        side=target.get("side"), data=data,
    )


def http_probe(target: Mapping[str, Any], timeout_s: float) -> ProbeResult:
    """GET the URL: healthy when the status is ``expect_status`` (200) and, if set, the
    body contains ``body_contains``; redirects are not followed."""

    def run() -> tuple[bool, str, dict[str, Any]]:
        expect = int(target.get("expect_status", 200))
        req = urllib.request.Request(str(target["url"]), method="GET",
                                     headers={"User-Agent": "standby-monitor/1"})
        opener = urllib.request.build_opener(_NoRedirect)
        try:
            with opener.open(req, timeout=timeout_s) as resp:
                status, body = resp.status, resp.read(65536)
        except urllib.error.HTTPError as exc:
            status, body = exc.code, exc.read(65536) if exc.fp else b""
        if status != expect:
            return False, f"status {status}, expected {expect}", {"status": status}
        needle = target.get("body_contains")
        if needle and str(needle).encode() not in body:
            return False, f"status {status} but body lacks {needle!r}", {"status": status}
        return True, f"status {status}", {"status": status}

    return timed(target, run)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


SQL_LAG = {
    # On a replica: seconds since the last replayed transaction (0 when no WAL is pending).
    "postgres": (
        "SELECT pg_is_in_recovery(), CASE WHEN pg_last_wal_receive_lsn() = "
        "pg_last_wal_replay_lsn() THEN 0 ELSE COALESCE(EXTRACT(EPOCH FROM now() - "
        "pg_last_xact_replay_timestamp()), 0) END"
    ),
}


def sql_probe(target: Mapping[str, Any], timeout_s: float,
              connect: Callable[[Mapping[str, Any], float], Any]) -> ProbeResult:
    """``SELECT 1``; on PostgreSQL also whether the server is a replica and its lag.

    ``connect(target, timeout)`` returns a DB-API connection (the adapter supplies the
    driver and the credentials, e.g. from Secrets Manager).
    """

    def run() -> tuple[bool, str, dict[str, Any]]:
        conn = connect(target, timeout_s)
        try:
            cur = conn.cursor()
            cur.execute("SELECT 1")
            if cur.fetchone()[0] != 1:
                return False, "SELECT 1 returned something else", {}
            data: dict[str, Any] = {}
            engine = target.get("engine")
            if engine == "postgres":
                cur.execute(SQL_LAG["postgres"])
                replica, lag = cur.fetchone()
                data = {"replica": bool(replica), "lag_s": float(lag or 0) if replica else 0.0}
            elif engine == "mysql":
                cur.execute("SELECT @@global.read_only")
                data = {"read_only": bool(cur.fetchone()[0]), "replica": False, "lag_s": 0.0}
                cur.execute("SHOW SLAVE STATUS")  # the spelling MariaDB and MySQL 8 share
                row = cur.fetchone()
                if row is not None:
                    status = dict(zip([d[0] for d in cur.description], row, strict=False))
                    lag = status.get("Seconds_Behind_Master",
                                     status.get("Seconds_Behind_Source"))
                    # NULL: replication stopped or broken; the lag is unknown, not zero.
                    data.update(replica=True, lag_s=float(lag) if lag is not None else None)
            return True, "SELECT 1 ok", data
        finally:
            conn.close()

    return timed(target, run)


def run_probes(
    targets: Sequence[Mapping[str, Any]],
    probes: Mapping[str, Probe],
    timeout_s: float,
    pool: ThreadPoolExecutor,
) -> list[ProbeResult]:
    """Run every probe concurrently; each is bounded by ``timeout_s`` (plus a grace)."""
    futures: list[Future[ProbeResult] | None] = []
    for t in targets:
        probe = probes.get(str(t.get("kind")))
        if probe is None:
            futures.append(None)
            continue
        futures.append(pool.submit(probe, t, timeout_s))
    live = [f for f in futures if f is not None]
    wait(live, timeout=timeout_s + 1.0)
    results = []
    for t, f in zip(targets, futures, strict=True):
        if f is None:
            results.append(ProbeResult(str(t.get("scope")), str(t.get("kind")), False, 0.0,
                                       "no probe for this kind", t.get("side")))
        elif not f.done():
            results.append(ProbeResult(str(t.get("scope")), str(t.get("kind")), False,
                                       (timeout_s + 1.0) * 1000, "timed out", t.get("side")))
        else:
            results.append(f.result())
    return results
