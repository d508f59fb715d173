"""``sql_promote``: switch a self-managed PostgreSQL or MySQL/MariaDB pair (cloud-neutral).

For databases the package's functions can administer directly (self-managed on VMs, and the
local sandbox). RDS has its own switch kind (``rds_promote``): RDS allows no ``pg_promote``.

A switch from side A to side B, in this order, never leaves two writable primaries:

1. **Fence A.** It refuses writes from now on, and every session that could still write is
   ended and waited for. The fence is then re-checked from a fresh session. If A cannot be
   fenced for any reason other than *proven* unreachability (the TCP connect is refused or
   times out: the server is down or cut off), the switch aborts: an authentication error or
   "too many connections" means A is up and may still take writes. A fence this switch
   started is undone when it aborts; a fence it found in place is left alone.
2. **Drain**: wait (bounded by ``drain_timeout_s``, on every engine) until B has applied
   everything A wrote, up to a position read *after* the fence. A planned switchover
   therefore loses nothing. If B does not catch up in time, A is unfenced and nothing changed.
   If A is unreachable (unplanned), there is nothing to drain; the monitor only got here
   because B's probe said everything it received was applied and its lag was within
   ``max_lag_s``. With asynchronous replication what A never sent is lost: the RPO is
   bounded, not guaranteed.
3. **Re-check the fence** on A (fresh session) right before promoting: someone unfencing A
   during the drain aborts the switch.
4. **Promote B**; it must be a replica (or already the writable primary). A server that is
   neither (a fenced old primary that was never rebuilt as a replica) is refused: promoting it
   would resurrect stale data. Once promotion was asked for, A is never unfenced again, even
   if promotion reports a timeout (it may still complete).

A crash between fence and promote leaves both sides read-only. ``heartbeat`` detects it (the
active side is fenced, by its own clock longer than ``fence_grace_s`` ago, and the other side
is not writable) and raises a critical alert; the next holder finishes the switch (``apply``
to B again: A is already fenced and drained) or rolls it back (``apply`` to A: A is a fenced
primary and B still a replica of it, so A is unfenced). ``heartbeat`` also keeps the invariant
every round: when the active side is a writable primary, a reachable non-active side that is
writable too (an old primary back after a crash) is fenced at once.
"""

from __future__ import annotations

import contextlib
import errno
import socket
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from components.runtime import sql_failover, sqldb
from components.runtime.engine import SIDES, Side, other
from components.runtime.errors import SwitchError

Credentials = Callable[[Mapping[str, Any]], tuple[str, str]]
Alert = Callable[[str, str], None]
"""``alert(title, text)``: a critical alert from ``heartbeat``."""
DRAIN_TIMEOUT_S = 10.0
CONNECT_TIMEOUT_S = 2.0
#: A fence older than this (the lease TTL) with no writable side means its switch died.
FENCE_GRACE_S = 60.0
_UNREACHABLE_ERRNOS = {errno.ECONNREFUSED, errno.EHOSTUNREACH, errno.ENETUNREACH,
                       errno.ETIMEDOUT, errno.EHOSTDOWN}


class Unreachable(Exception):
    """The server's port refused or did not answer a TCP connect: proven down or cut off."""


class SqlPromoteSwitcher:
    def __init__(self, credentials: Credentials, alert: Alert | None = None) -> None:
        self.credentials = credentials
        self.alert = alert
        self.last: dict[str, Any] = {}
        """What the last ``apply`` did, step by step (fenced, drained_to, promoted)."""
        self._alerted: set[str] = set()

    def _endpoint(self, target: Mapping[str, Any], side: Side) -> sqldb.Endpoint:
        return sqldb.Endpoint.parse(str(target["engine"]), target["sides"][side],
                                    str(target["database"]))

    def _timeout(self, target: Mapping[str, Any]) -> float:
        return float(target.get("connect_timeout_s", CONNECT_TIMEOUT_S))

    @contextlib.contextmanager
    def _conn(self, target: Mapping[str, Any], side: Side) -> Iterator[Any]:
        """An admin session; ``Unreachable`` only when the TCP connect itself fails."""
        ep = self._endpoint(target, side)
        user, password = self.credentials(target)
        try:
            c = sqldb.connect(ep, user, password, self._timeout(target))
        except Exception as exc:
            if _tcp_unreachable(ep.host, ep.port, self._timeout(target)):
                raise Unreachable(f"{side} {ep}: {exc}") from None
            raise
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

    # -- apply --------------------------------------------------------------------------------

    def apply(self, target: Mapping[str, Any], to: Side, token: int, reason: str) -> None:
        engine = str(target["engine"])
        src: Side = other(to)
        drain_s = float(target.get("drain_timeout_s", DRAIN_TIMEOUT_S))
        self.last = {"token": token, "to": to}
        dst_role = self._role(target, to)
        if dst_role is None:
            raise SwitchError(f"{to} {self._endpoint(target, to)} is unreachable: not switching")
        if self._writable(dst_role):
            self.last["already_primary"] = True
            try:
                self._fence_if_writable(target, src, token)
            except Exception as exc:
                raise SwitchError(f"{to} is already writable but {src} is writable too and "
                                  f"could not be fenced: {exc}") from None
            return  # idempotent: the target side is already the primary
        if not dst_role["replica"]:
            self._roll_back_or_refuse(target, to, src)
            return
        we_fenced, target_pos = self._fence(target, src, token)
        promoting = False
        try:
            if target_pos is not None:
                with self._conn(target, to) as c:
                    if not sql_failover.wait_caught_up(c, engine, target_pos, drain_s):
                        raise SwitchError(f"{to} did not apply {src}'s last write ({target_pos}) "
                                          f"within drain_timeout_s={drain_s:g} s: not switching")
                self.last["drained_to"] = target_pos
                self._recheck_fence(target, src)
            promoting = True
            with self._conn(target, to) as c:
                sql_failover.promote(c, engine, timeout_s=max(5.0, drain_s))
            self.last["promoted"] = True
        except Exception as exc:
            if we_fenced and not promoting:
                self._unfence(target, src)  # nothing switched: give the writes back
            if isinstance(exc, SwitchError):
                raise
            raise SwitchError(f"promote {to} {self._endpoint(target, to)}: {exc}") from None

    def _fence(self, target: Mapping[str, Any], src: Side, token: int) -> tuple[bool, str | None]:
        """Fence ``src``: ``(we_fenced, drain_position)``; ``(False, None)`` when it is proven
        unreachable. Any other failure aborts (after undoing a fence this call started)."""
        engine = str(target["engine"])
        we_fenced = False
        try:
            with self._conn(target, src) as c:
                was_fenced = sql_failover.fenced(c, engine)
                we_fenced = not was_fenced
                sql_failover.fence(c, engine, token)
            with self._conn(target, src) as c:  # a fresh session sees what new writers see
                if not sql_failover.fenced(c, engine):
                    raise SwitchError("the fence did not hold: a fresh session is writable")
                pos = sql_failover.position(c, engine)
        except Unreachable as exc:
            if we_fenced:  # went away half-way: it may come back writable; heartbeat fences it
                self.last.update(fenced=True, fence_lost=str(exc))
                return True, None
            self.last["fenced"] = False
            self.last["unreachable"] = str(exc)
            return False, None  # unplanned failover: the lag guard bounded the loss
        except Exception as exc:
            if we_fenced:
                self._unfence(target, src)
            raise SwitchError(
                f"could not fence {src} {self._endpoint(target, src)} and it is reachable "
                f"(so it may still take writes): {type(exc).__name__}: {exc}; not switching"
            ) from None
        self.last.update(fenced=True, fenced_by_us=we_fenced, drain_from=pos)
        return we_fenced, pos

    def _recheck_fence(self, target: Mapping[str, Any], src: Side) -> None:
        try:
            with self._conn(target, src) as c:
                if sql_failover.fenced(c, str(target["engine"])):
                    return
        except Unreachable:
            return  # fenced and drained before it went away
        except Exception as exc:
            raise SwitchError(f"could not re-check the fence on {src}: {exc}; not promoting"
                              ) from None
        raise SwitchError(f"{src} was unfenced during the drain (someone made it writable "
                          "again): not promoting")

    def _unfence(self, target: Mapping[str, Any], side: Side) -> None:
        with contextlib.suppress(Exception), self._conn(target, side) as c:
            sql_failover.unfence(c, str(target["engine"]))
            self.last["unfenced"] = side

    def _roll_back_or_refuse(self, target: Mapping[str, Any], to: Side, src: Side) -> None:
        """``to`` is a fenced primary. If ``src`` is still its replica, a switch to ``src``
        stopped between fence and promote: unfencing ``to`` rolls it back. Otherwise ``to``
        missed the writes made since it was fenced: refuse."""
        src_role = self._role(target, src)
        if src_role is not None and src_role["replica"]:
            try:
                with self._conn(target, to) as c:
                    sql_failover.unfence(c, str(target["engine"]))
            except Exception as exc:
                raise SwitchError(f"roll back: could not unfence {to}: {exc}") from None
            self.last["rolled_back"] = True
            return
        raise SwitchError(
            f"{to} {self._endpoint(target, to)} is a read-only server, not a replica, and "
            f"{src} is {'unreachable' if src_role is None else 'not its replica'}: it missed "
            "every write since it was fenced. Rebuild it as a replica of the active side first "
            "(pg_basebackup -R / a fresh replica), then switch")

    def _fence_if_writable(self, target: Mapping[str, Any], side: Side, token: int) -> bool:
        r = self._role(target, side)
        if not self._writable(r):
            return False
        with self._conn(target, side) as c:
            sql_failover.fence(c, str(target["engine"]), token)
        return True

    # -- state --------------------------------------------------------------------------------

    def current(self, target: Mapping[str, Any]) -> Side | None:
        writable = [s for s in SIDES if self._writable(self._role(target, s))]
        return writable[0] if len(writable) == 1 else None

    def verify(self, target: Mapping[str, Any], to: Side) -> bool:
        return self._writable(self._role(target, to))

    def heartbeat(self, target: Mapping[str, Any], active: Side, token: int) -> None:
        act = self._role(target, active)
        if self._writable(act):
            self._alerted.clear()
            self._fence_if_writable(target, other(active), token)
            return
        if act is None:
            return  # the active side is down: the monitor's probes and votes handle that
        oth = self._role(target, other(active))
        if self._writable(oth):
            self._raise_alert(
                "disagree", f"{target['scope']}: {other(active)} is the writable side but "
                f"{active} is the committed one",
                "A switch applied its targets but did not commit (crash or lost lease). The "
                f"next holder must commit it or switch back; {active} stays fenced until then.")
            return
        age = None
        with contextlib.suppress(Exception), self._conn(target, active) as c:
            age = sql_failover.fence_age_s(c, str(target["engine"]))
        grace = float(target.get("fence_grace_s", FENCE_GRACE_S))
        if age is not None and age < grace:
            return  # a switch is fencing and draining right now
        self._raise_alert(
            "no-primary", f"{target['scope']}: NO writable database (both sides read-only)",
            f"{active} (the committed side) is fenced"
            f"{'' if age is None else f' since {age:.0f} s'} and {other(active)} is "
            f"{'unreachable' if oth is None else 'a replica'}: a switch stopped between fence "
            f"and promote. Finish it (switch to {other(active)}) or roll it back (switch to "
            f"{active}: it is unfenced while {other(active)} is still its replica).")

    def bind_alerts(self, alert: Alert) -> None:
        """The monitor offers its alert channel (``Monitor.__post_init__``)."""
        if self.alert is None:
            self.alert = alert

    def _raise_alert(self, key: str, title: str, text: str) -> None:
        if self.alert is None:
            raise SwitchError(f"{title}: {text}")  # the monitor logs a failed heartbeat
        if key not in self._alerted:
            self._alerted.add(key)
            self.alert(title, text)


def _tcp_unreachable(host: str, port: int, timeout_s: float) -> bool:
    """True only when a plain TCP connect proves the server down or cut off."""
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return False
    except (ConnectionRefusedError, TimeoutError):
        return True
    except OSError as exc:
        return exc.errno in _UNREACHABLE_ERRNOS
