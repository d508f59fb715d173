"""``cdb_dr_switch``: promote a TencentDB for MySQL disaster-recovery instance.

Steps (CDB API 2017-03-20): fence the old primary with ``ModifyDBInstanceReadOnlyStatus``
(ReadOnly 1, in the primary's region), then ``SwitchDrInstanceToMaster`` in the DR region,
poll ``DescribeAsyncRequestInfo`` until SUCCESS, and verify with ``DescribeDBInstances`` that
the DR instance is a master (InstanceType 1, no MasterInfo).

Fail closed: if the primary's region answers but refuses the fence (access denied, a wrong
id), nothing is promoted. Only a region whose API cannot be reached at all is promoted past
unfenced, and then ``IgnoreSyncDelay`` is the target's ``disaster_ignore_sync_delay``
(bytes, default 0: wait until caught up, as a planned switch always does). The heartbeat
re-fences an old primary that comes back, every round.

One way: a promoted DR instance has no DR link any more, so a switch back needs a new DR
instance of it in the primary region (a manual failback); ``apply(to="primary")`` refuses.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from components.runtime.engine import Side
from components.runtime.errors import SwitchError
from components.runtime.tencent.cdb import CDB, describe_instance
from components.runtime.tencent.client import TencentApi, TencentApiError

#: Error codes that prove the old primary's region API could not be reached at all.
UNREACHABLE = {"ClientNetworkError", "ServerNetworkError", "RequestLimitExceeded.Unreachable"}


class CdbDrSwitcher:
    def __init__(self, api: TencentApi, poll_s: float = 1.0,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.api = api
        self.poll_s = poll_s
        self.sleep = sleep
        self.last: dict[str, Any] = {}
        """What the last ``apply`` did (fenced or not, the async request), for the record."""

    def _describe(self, region: str, instance_id: str) -> dict[str, Any]:
        return describe_instance(self.api, region, instance_id)

    def _primary_region(self, target: Mapping[str, Any], dr: Mapping[str, Any]) -> str:
        region = target.get("primary_region") or (dr.get("MasterInfo") or {}).get("Region")
        if not region:
            # After the promotion the DR instance no longer names its master, so keeping
            # the old primary fenced needs the region from the target itself.
            raise SwitchError(f"cannot tell the region of {target['instance_ids']['primary']}: "
                              "the target has no primary_region and the DR instance no "
                              "MasterInfo (it was promoted); add primary_region to the "
                              "cdb_dr_switch target")
        return str(region)

    def _fence(self, region: str, instance_id: str) -> None:
        self.api.call(*CDB, region, "ModifyDBInstanceReadOnlyStatus",
                      {"InstanceId": instance_id, "ReadOnly": 1})

    def current(self, target: Mapping[str, Any]) -> Side | None:
        dr = self._describe(target["region"], target["instance_ids"]["standby"])
        if dr.get("InstanceType") == 1 and not dr.get("MasterInfo"):
            return "standby"
        if dr.get("InstanceType") == 2:
            return "primary"
        return None

    def verify(self, target: Mapping[str, Any], to: Side) -> bool:
        try:
            return self.current(target) == to
        except (TencentApiError, SwitchError):
            return False

    def apply(self, target: Mapping[str, Any], to: Side, token: int, reason: str) -> None:
        ids = target["instance_ids"]
        if to != "standby":
            raise SwitchError(f"{ids['standby']} was promoted and has no DR link any more; "
                              "fail back by creating a DR instance of it in the primary "
                              "region, then switching over")
        try:
            self._promote(target, token)
        except TencentApiError as exc:
            raise SwitchError(f"cdb_dr_switch {ids['standby']}: {exc}") from None

    def _promote(self, target: Mapping[str, Any], token: int) -> None:
        ids, dr_region = target["instance_ids"], str(target["region"])
        dr = self._describe(dr_region, ids["standby"])
        self.last = {"token": token}
        if dr.get("InstanceType") == 1 and not dr.get("MasterInfo"):
            self.last["already_master"] = True  # a retry after the promotion went through
            return
        fenced, ignore = True, 0
        try:
            self._fence(self._primary_region(target, dr), ids["primary"])
        except TencentApiError as exc:
            if exc.code not in UNREACHABLE:
                raise SwitchError(f"fence of {ids['primary']} refused ({exc}); nothing was "
                                  "promoted") from None
            fenced, ignore = False, int(target.get("disaster_ignore_sync_delay", 0))
        self.last.update(fenced=fenced, ignore_sync_delay=ignore)
        out = self.api.call(*CDB, dr_region, "SwitchDrInstanceToMaster",
                            {"InstanceId": ids["standby"], "IgnoreSyncDelay": ignore})
        rid = str(out["AsyncRequestId"])
        self.last["async_request"] = rid
        deadline = time.monotonic() + float(target.get("switch_timeout_s", 600))
        while True:
            st = self.api.call(*CDB, dr_region, "DescribeAsyncRequestInfo",
                               {"AsyncRequestId": rid})
            status = st.get("Status")
            if status == "SUCCESS":
                break
            if status in ("FAILED", "KILLED"):
                raise SwitchError(f"SwitchDrInstanceToMaster {rid} {status}: {st.get('Info')}")
            if time.monotonic() >= deadline:
                raise SwitchError(f"SwitchDrInstanceToMaster {rid} still {status} after "
                                  f"{target.get('switch_timeout_s', 600)} s")
            self.sleep(self.poll_s)
        if self.current(target) != "standby":
            raise SwitchError(f"{ids['standby']} reported SUCCESS but is not a master")

    def heartbeat(self, target: Mapping[str, Any], active: Side, token: int) -> None:
        """After a promotion, keep the old primary read-only: it may come back (a region
        recovers) writable. An unreachable region is tried again next round."""
        if active != "standby" or token <= 0:
            return
        try:
            dr = self._describe(target["region"], target["instance_ids"]["standby"])
            self._fence(self._primary_region(target, dr), target["instance_ids"]["primary"])
        except TencentApiError as exc:
            if exc.code in UNREACHABLE:
                return
            raise SwitchError(f"cdb_dr_switch heartbeat fence: {exc}") from None
