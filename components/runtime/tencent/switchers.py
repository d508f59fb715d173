"""Tencent switchers. Each is idempotent and reads back what it wrote (``verify``).

Fencing, per target:

* pointers live in the SQL state store and hold the token: a write with an older token is
  refused in the same transaction (``StaleToken``);
* a DNSPod record status and an SCF custom-domain route cannot hold a token (neither API has
  a field for one, nor a conditional update), so a stale holder's late write is undone by
  the ``heartbeat``, which brings the target back to the committed side every round.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from components.runtime.engine import SIDES, Side, other
from components.runtime.errors import StaleToken, StoreError, SwitchError
from components.runtime.sql_state import SqlStateStore
from components.runtime.tencent.client import TencentApi, TencentApiError

DNSPOD = ("dnspod", "2021-03-23")
SCF = ("scf", "2018-04-16")


def _side_of(values: Mapping[str, Any], value: Any) -> Side | None:
    for side in SIDES:
        if values[side] == value:
            return side
    return None


class _Base:
    def __init__(self, api: TencentApi) -> None:
        self.api = api

    def current(self, target: Mapping[str, Any]) -> Side | None:
        raise NotImplementedError

    def verify(self, target: Mapping[str, Any], to: Side) -> bool:
        try:
            return self.current(target) == to
        except (TencentApiError, SwitchError):
            return False


class DnspodRecordStatusSwitcher(_Base):
    """One record per side under the same name and line; the active side's is ENABLE, the
    other's DISABLE. The new side's record is enabled before the old one is disabled, so
    the name never answers nothing."""

    def _status(self, target: Mapping[str, Any], rid: Any, status: str) -> None:
        self.api.call(*DNSPOD, "", "ModifyRecordStatus",
                      {"Domain": target["domain"], "RecordId": int(rid), "Status": status})

    def _set(self, target: Mapping[str, Any], to: Side) -> None:
        ids = target["record_ids"]
        self._status(target, ids[to], "ENABLE")
        self._status(target, ids[other(to)], "DISABLE")

    def apply(self, target: Mapping[str, Any], to: Side, token: int, reason: str) -> None:
        try:
            self._set(target, to)
        except TencentApiError as exc:
            raise SwitchError(f"DNSPod {target['sub_domain']}.{target['domain']} "
                              f"({target['record_line']}): {exc}") from None

    def current(self, target: Mapping[str, Any]) -> Side | None:
        out = self.api.call(*DNSPOD, "", "DescribeRecordList", {
            "Domain": target["domain"], "Subdomain": target["sub_domain"],
            "RecordLine": target["record_line"], "ErrorOnEmpty": "no"})
        status = {r.get("RecordId"): r.get("Status") for r in out.get("RecordList") or []}
        ids = target["record_ids"]
        on = {side for side in SIDES if status.get(int(ids[side])) == "ENABLE"}
        off = {side for side in SIDES if status.get(int(ids[side])) == "DISABLE"}
        for side in SIDES:
            if on == {side} and off == {other(side)}:
                return side
        return None  # both on (mid-switch), both off, or a record missing

    def heartbeat(self, target: Mapping[str, Any], active: Side, token: int) -> None:
        """Reconcile to the committed side (a stale holder's late write, a hand edit)."""
        try:
            if self.current(target) != active:
                self._set(target, active)
        except TencentApiError as exc:
            raise SwitchError(f"DNSPod {target['domain']}: heartbeat: {exc}") from None


class ScfCustomDomainSwitcher(_Base):
    """The custom domain's route for ``path`` names the side's function. UpdateCustomDomain
    replaces the routes wholesale, so the full list is read and sent back with only that
    route's function changed."""

    def _routes(self, target: Mapping[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        out = self.api.call(*SCF, target["region"], "GetCustomDomain",
                            {"Domain": target["domain"]})
        return out, [dict(r) for r in out.get("EndpointsConfig") or []]

    def _route(self, target: Mapping[str, Any], routes: list[dict[str, Any]]) -> dict[str, Any]:
        for r in routes:
            if (r.get("PathMatch") == target["path"]
                    and r.get("Namespace", "default") == target["namespace"]):
                return r
        raise SwitchError(f"custom domain {target['domain']} in {target['region']} has no "
                          f"route {target['path']} in namespace {target['namespace']}; routes: "
                          f"{sorted(str(r.get('PathMatch')) for r in routes)}")

    def _set(self, target: Mapping[str, Any], to: Side) -> None:
        domain, routes = self._routes(target)
        route = self._route(target, routes)
        if route.get("FunctionName") == target["values"][to]:
            return
        route["FunctionName"] = target["values"][to]
        params: dict[str, Any] = {"Domain": target["domain"], "EndpointsConfig": routes}
        if domain.get("Protocol"):
            params["Protocol"] = domain["Protocol"]
        self.api.call(*SCF, target["region"], "UpdateCustomDomain", params)

    def apply(self, target: Mapping[str, Any], to: Side, token: int, reason: str) -> None:
        try:
            self._set(target, to)
        except TencentApiError as exc:
            raise SwitchError(f"custom domain {target['domain']}: {exc}") from None

    def current(self, target: Mapping[str, Any]) -> Side | None:
        _, routes = self._routes(target)
        return _side_of(target["values"], self._route(target, routes).get("FunctionName"))

    def heartbeat(self, target: Mapping[str, Any], active: Side, token: int) -> None:
        try:
            self._set(target, active)
        except TencentApiError as exc:
            raise SwitchError(f"custom domain {target['domain']}: heartbeat: {exc}") from None


class PointerSwitcher:
    """A pointer row in the SQL state store (``wrapper@<region>``, ``data``), fenced by the
    token in the same transaction that writes it."""

    def __init__(self, store: SqlStateStore) -> None:
        self.store = store

    def apply(self, target: Mapping[str, Any], to: Side, token: int, reason: str) -> None:
        try:
            self.store.write_pointer(target["key"], target["values"][to], token, reason,
                                     time.time())
        except StoreError as exc:
            raise SwitchError(f"pointer {target['key']}: {exc}") from None

    def current(self, target: Mapping[str, Any]) -> Side | None:
        return _side_of(target["values"], self.store.read_pointer(target["key"])[0])

    def verify(self, target: Mapping[str, Any], to: Side) -> bool:
        try:
            return self.current(target) == to
        except StoreError:
            return False

    def heartbeat(self, target: Mapping[str, Any], active: Side, token: int) -> None:
        """Bring the pointer back to the committed side; never before the first switch
        (token 0: the deploy's initial row stands) and never over a newer token."""
        if token <= 0:
            return
        value = target["values"][active]
        try:
            held_value, held = self.store.read_pointer(target["key"])
            if held < token or held_value != value:
                self.store.write_pointer(target["key"], value, token,
                                         "reconciled to the committed side", time.time())
        except StaleToken:
            return
        except StoreError as exc:
            raise SwitchError(f"pointer {target['key']}: heartbeat: {exc}") from None


def tencent_switchers(api: TencentApi, store: SqlStateStore) -> dict[str, Any]:
    from components.runtime.tencent.cos_switch import CosReplicationSwitcher
    from components.runtime.tencent.db_switchers import CdbDrSwitcher

    return {
        "dnspod_record_status": DnspodRecordStatusSwitcher(api),
        "scf_custom_domain": ScfCustomDomainSwitcher(api),
        "tencent_pointer": PointerSwitcher(store),
        "tencent_pointer_all": PointerSwitcher(store),
        "cdb_dr_switch": CdbDrSwitcher(api),
        "cos_replication": CosReplicationSwitcher(api),
    }
