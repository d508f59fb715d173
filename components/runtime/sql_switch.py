"""``sql_promote``: switch a self-managed PostgreSQL or MySQL/MariaDB pair (cloud-neutral).

For databases the package's functions can administer directly (self-managed on VMs, and the
local sandbox). RDS has its own switch kind (``rds_promote``): RDS allows no ``pg_promote``.

A switch from side A to side B, in this order, never leaves two writable primaries:

1. **Fence A** if it can be reached: it refuses writes from now on and its open sessions are
   ended, so no write can be acknowledged on A after this point.
2. **Drain**: wait (bounded by ``drain_timeout_s``) until B has replayed everything A
   committed. A planned switchover therefore loses nothing. If B does not catch up in time,
   A is unfenced again and the switch fails: nothing changed.
   If A cannot be reached (unplanned), there is nothing to drain; the monitor only got here
   because B's measured lag was within ``max_lag_s`` (the RPO budget).
3. **Promote B**; it must be a replica (or already the writable primary). A server that is
   neither (a fenced old primary that was never rebuilt as a replica) is refused: promoting
   it would resurrect stale data.

``heartbeat`` enforces the invariant every round afterwards: when the active side is a
writable primary, a reachable non-active side that is writable too (an old primary that came
back after a crash or a region outage) is fenced at once.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from components.runtime import sql_failover, sqldb
from components.runtime.engine import SIDES, Side, other
from components.runtime.errors import SwitchError

Credentials = Callable[[Mapping[str, Any]], tuple[str, str]]
DRAIN_TIMEOUT_S = 10.0
CONNECT_TIMEOUT_S = 2.0


class SqlPromoteSwitcher:
    def __init__(self, credentials: Credentials) -> None:
        self.credentials = credentials
        self.last: dict[str, Any] = {}
        """What the last ``apply`` did (fenced, drained, position), for the switch log."""

    def _endpoint(self, target: Mapping[str, Any], side: Side) -> sqldb.Endpoint:
        return sqldb.Endpoint.parse(str(target["engine"]), target["sides"][side],
                                    str(target["database"]))

    @contextlib.contextmanager
    def _conn(self, target: Mapping[str, Any], side: Side) -> Iterator[Any]:
        user, password = self.credentials(target)
        c = sqldb.connect(self._endpoint(target, side), user, password,
                          float(target.get("connect_timeout_s", CONNECT_TIMEOUT_S)))
        try:
            yield c
        finally:
            with contextlib.suppress(Exception):
                c.close()

    def _role(self, target: Mapping[str, Any], side: Side) -> dict[str, Any] | None:
        try:
            with self._conn(target, side) as c:
                return sql_failover.role(c, str(target["engine"]))
        except Exception:
            return None

    @staticmethod
    def _writable(r: dict[str, Any] | None) -> bool:
        return r is not None and not r["replica"] and not r["read_only"]

    def apply(self, target: Mapping[str, Any], to: Side, token: int, reason: str) -> None:
        engine = str(target["engine"])
        src: Side = other(to)
        drain_s = float(target.get("drain_timeout_s", DRAIN_TIMEOUT_S))
        dst_role = self._role(target, to)
        if dst_role is None:
            raise SwitchError(f"{to} {self._endpoint(target, to)} is unreachable: not switching")
        if self._writable(dst_role):
            self.last = {"already_primary": True}
            self._fence_if_writable(target, src)
            return  # idempotent: the target side is already the primary
        if not dst_role["replica"]:
            raise SwitchError(
                f"{to} {self._endpoint(target, to)} is a read-only server, not a replica: it "
                "missed every write since it was fenced. Rebuild it as a replica of the active "
                "side first (pg_basebackup -R / a fresh replica), then switch")
        fenced, target_pos = False, None
        try:
            with self._conn(target, src) as c:
                sql_failover.fence(c, engine)
                fenced = True
                target_pos = sql_failover.position(c, engine)
        except Exception as exc:
            if fenced:
                raise SwitchError(f"fenced {src} but could not read its position: {exc}; "
                                  "not switching") from None
            # Unreachable: unplanned failover. The lag guard already bounded the loss.
        try:
            if target_pos is not None:
                with self._conn(target, to) as c:
                    if not sql_failover.wait_caught_up(c, engine, target_pos, drain_s):
                        raise SwitchError(f"{to} did not replay {src}'s last write ({target_pos}) "
                                          f"within {drain_s:g} s: not switching")
            with self._conn(target, to) as c:
                sql_failover.promote(c, engine, timeout_s=max(5.0, drain_s))
        except Exception as exc:
            if fenced:
                with contextlib.suppress(Exception), self._conn(target, src) as c:
                    sql_failover.unfence(c, engine)  # nothing switched: give the writes back
            if isinstance(exc, SwitchError):
                raise
            raise SwitchError(f"promote {to} {self._endpoint(target, to)}: {exc}") from None
        self.last = {"fenced": fenced, "drained_to": target_pos}

    def _fence_if_writable(self, target: Mapping[str, Any], side: Side) -> bool:
        r = self._role(target, side)
        if not self._writable(r):
            return False
        with contextlib.suppress(Exception), self._conn(target, side) as c:
            sql_failover.fence(c, str(target["engine"]))
            return True
        return False

    def current(self, target: Mapping[str, Any]) -> Side | None:
        writable = [s for s in SIDES if self._writable(self._role(target, s))]
        return writable[0] if len(writable) == 1 else None

    def verify(self, target: Mapping[str, Any], to: Side) -> bool:
        return self._writable(self._role(target, to))

    def heartbeat(self, target: Mapping[str, Any], active: Side, token: int) -> None:
        if self._writable(self._role(target, active)):
            self._fence_if_writable(target, other(active))
