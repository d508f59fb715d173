"""Switch kind ``cos_replication``: on a data failover the active side's bucket becomes the
replication source. PUT Bucket replication (COS API doc 436/19223) on the new source with an
Enabled rule to the other bucket, then the old source's rule set to Disabled (kept, not
deleted, so a failback only flips the two statuses back).

The new source is enabled before the old one is disabled: for a moment both replicate (COS
does not replicate a replica again, so nothing loops), never neither. A data failover is
often the old region being down; then its rule cannot be reached and the ``heartbeat``
disables it when the region answers again (nothing is written there meanwhile: the data
pointer names the new side). Neither COS call can carry the fencing token, so a stale
holder's late write is undone by that same heartbeat.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from components.naming import region_short
from components.runtime.engine import SIDES, Side, other
from components.runtime.errors import SwitchError
from components.runtime.tencent.client import TencentApi


def rule_id(dest_region: str) -> str:
    """The deploy's rule name for replication into ``dest_region`` (components/tencent/data)."""
    return f"to-{region_short(dest_region)}"


def _errors() -> tuple[type[Exception], type[Exception]]:
    from qcloud_cos.cos_exception import CosClientError, CosServiceError

    return CosServiceError, CosClientError


class CosReplicationSwitcher:
    def __init__(self, api: TencentApi) -> None:
        self.api = api

    @staticmethod
    def _bucket(target: Mapping[str, Any], side: str) -> tuple[str, str]:
        b = target["buckets"][side]
        return str(b["region"]), str(b["bucket"])

    def _put(self, target: Mapping[str, Any], src: Side, status: str) -> None:
        region, bucket = self._bucket(target, src)
        dest_region, dest = self._bucket(target, other(src))
        self.api.cos(region).put_bucket_replication(Bucket=bucket, ReplicationConfiguration={
            "Role": target["role"],
            "Rule": [{"ID": rule_id(dest_region), "Status": status, "Prefix": "",
                      "Destination": {"Bucket": f"qcs::cos:{dest_region}::{dest}"}}]})

    def _enabled(self, target: Mapping[str, Any], src: Side) -> bool:
        """Whether ``src``'s bucket replicates into the other side's (no configuration:
        False)."""
        from qcloud_cos.cos_exception import CosServiceError

        region, bucket = self._bucket(target, src)
        dest_region, dest = self._bucket(target, other(src))
        try:
            conf = self.api.cos(region).get_bucket_replication(Bucket=bucket)
        except CosServiceError as exc:
            if exc.get_status_code() == 404 and exc.get_error_code() != "NoSuchBucket":
                return False
            raise
        return any(r.get("Status") == "Enabled"
                   and r.get("Destination", {}).get("Bucket") == f"qcs::cos:{dest_region}::{dest}"
                   for r in conf.get("Rule") or [])

    def _set(self, target: Mapping[str, Any], to: Side, defer_old: bool) -> None:
        service_error, client_error = _errors()
        try:
            self._put(target, to, "Enabled")
        except (service_error, client_error) as exc:
            raise SwitchError(f"COS replication from {self._bucket(target, to)[1]}: "
                              f"{exc}") from None
        try:
            self._put(target, other(to), "Disabled")
        except client_error as exc:
            if not defer_old:
                raise SwitchError(f"COS replication from {self._bucket(target, other(to))[1]}:"
                                  f" unreachable: {exc}") from None
            # The old source's region is unreachable: the heartbeat disables it later.
        except service_error as exc:
            raise SwitchError(f"COS replication from {self._bucket(target, other(to))[1]}: "
                              f"{exc}") from None

    def apply(self, target: Mapping[str, Any], to: Side, token: int, reason: str) -> None:
        self._set(target, to, defer_old=True)

    def current(self, target: Mapping[str, Any]) -> Side | None:
        on = {side for side in SIDES if self._enabled(target, side)}
        return next(iter(on)) if len(on) == 1 else None

    def verify(self, target: Mapping[str, Any], to: Side) -> bool:
        try:
            return self.current(target) == to
        except Exception:  # an unreachable bucket: not verified, the heartbeat finishes it
            return False

    def heartbeat(self, target: Mapping[str, Any], active: Side, token: int) -> None:
        """Bring replication back to flowing out of the committed side."""
        service_error, client_error = _errors()
        try:
            if self.current(target) == active:
                return
        except (service_error, client_error) as exc:
            raise SwitchError(f"COS replication: heartbeat: {exc}") from None
        self._set(target, active, defer_old=False)
