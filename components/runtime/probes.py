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
    # One row, on any server: whether it is a replica, fenced, and (on a replica) the WAL
    # receiver's state, the seconds since it last heard from the primary and the server's
    # own limit for that (wal_receiver_timeout, ms), the received and replayed positions,
    # and the seconds since the last replayed commit. A replica whose receiver is gone
    # returns NULLs for the receiver columns: broken replication, never "lag 0".
    "postgres": (
        "SELECT pg_is_in_recovery(), current_setting('default_transaction_read_only') = 'on', "
        "r.status, EXTRACT(EPOCH FROM now() - r.last_msg_receipt_time), "
        "(SELECT setting::float FROM pg_settings WHERE name = 'wal_receiver_timeout'), "
        "pg_last_wal_receive_lsn()::text, pg_last_wal_replay_lsn()::text, "
        "pg_last_wal_replay_lsn() >= pg_last_wal_receive_lsn(), "
        "EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp()) "
        "FROM (SELECT 1) AS one LEFT JOIN pg_stat_wal_receiver AS r ON true"
    ),
}
#: A receiver that heard nothing for this long is not streaming, whatever its status says,
#: when the server's ``wal_receiver_timeout`` is off (0).
PG_RECEIPT_MAX_AGE_S = 60.0


def _pg_replica_data(row: Sequence[Any], target: Mapping[str, Any]) -> dict[str, Any]:
    replica, ro, status, receipt_age, timeout_ms, received, applied, all_applied, replay_age = row
    if not replica:
        return {"replica": False, "read_only": bool(ro), "writable": not ro,
                "replicating": False, "lag_s": 0.0, "received": None, "applied": None,
                "applied_all_received": True, "received_age_s": None,
                "last_applied_age_s": None}
    limit = float(target.get("max_receipt_age_s") or
                  (float(timeout_ms) / 1000 if timeout_ms else PG_RECEIPT_MAX_AGE_S))
    age = None if receipt_age is None else float(receipt_age)
    replicating = status == "streaming" and age is not None and age <= limit
    caught_up = bool(all_applied) if received is not None else False
    lag: float | None = None
    if replicating:
        # Everything received was replayed: no lag. Otherwise the replay is behind by at least
        # the time since its last replayed commit (conservative after an idle period).
        lag = 0.0 if caught_up else float(replay_age) if replay_age is not None else None
    return {"replica": True, "read_only": True, "writable": False, "replicating": replicating,
            "lag_s": lag, "received": received, "applied": applied,
            "applied_all_received": caught_up, "received_age_s": age,
            "last_applied_age_s": None if replay_age is None else float(replay_age),
            "receiver_status": status}


def _my_position(file: Any, pos: Any) -> tuple[str, int] | None:
    return None if not file or pos is None else (str(file), int(pos))


def _my_replica_data(cur: Any) -> dict[str, Any]:
    from components.runtime.sql_failover import replica_status

    cur.execute("SELECT @@global.read_only")
    ro = bool(cur.fetchone()[0])
    status = replica_status(cur)
    if status is None:
        return {"replica": False, "read_only": ro, "writable": not ro, "replicating": False,
                "lag_s": 0.0, "received": None, "applied": None,
                "applied_all_received": True, "received_age_s": None,
                "last_applied_age_s": None}
    received = _my_position(status.get("Master_Log_File"), status.get("Read_Master_Log_Pos"))
    applied = _my_position(status.get("Relay_Master_Log_File"),
                           status.get("Exec_Master_Log_Pos"))
    io, sql = status.get("Slave_IO_Running"), status.get("Slave_SQL_Running")
    replicating = io == "Yes" and sql == "Yes"
    sbm = status.get("Seconds_Behind_Master")
    return {"replica": True, "read_only": ro, "writable": False, "replicating": replicating,
            # NULL while the IO thread reconnects: unknown, never zero.
            "lag_s": float(sbm) if replicating and sbm is not None else None,
            "received": None if received is None else f"{received[0]}:{received[1]}",
            "applied": None if applied is None else f"{applied[0]}:{applied[1]}",
            # The SQL thread must be running, or what was received will never be applied.
            "applied_all_received": received is not None and applied is not None
            and sql == "Yes" and applied >= received,
            # MariaDB 10.11 says neither when the IO thread last heard from the primary nor
            # when the last applied event was written.
            "received_age_s": None, "last_applied_age_s": None, "io_thread": io,
            "sql_thread": sql}


def sql_probe(target: Mapping[str, Any], timeout_s: float,
              connect: Callable[[Mapping[str, Any], float], Any]) -> ProbeResult:
    """``SELECT 1``, then the server's role and replication truth in ``data``:

    ``replica`` and ``writable`` (not a replica and not read-only: a fenced primary is not
    writable), ``replicating`` (PostgreSQL: ``pg_stat_wal_receiver`` streaming and heard from
    the primary within ``wal_receiver_timeout``; MySQL/MariaDB: IO and SQL threads running),
    ``lag_s`` (None when not replicating: unknown, not zero), the ``received`` and ``applied``
    positions and ``applied_all_received``. After the primary dies ``replicating`` is False;
    ``applied_all_received`` then says whether promoting loses anything the replica got, and
    ``received_age_s``/``last_applied_age_s`` (None where the engine does not say) how old
    its newest data is: what the primary wrote and never sent is lost either way.

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
                data = _pg_replica_data(cur.fetchone(), target)
            elif engine == "mysql":
                data = _my_replica_data(cur)
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
