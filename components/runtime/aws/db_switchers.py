"""AWS database switchers: ``rds_promote`` (an RDS cross-region read replica) and
``sql_promote`` (a self-managed SQL pair, steps in ``components.runtime.sql_switch``) with
credentials from Secrets Manager."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from typing import Any

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
)

from components.runtime.aws.clients import Clients, db_credentials
from components.runtime.engine import Side
from components.runtime.errors import SwitchError
from components.runtime.sql_switch import SqlPromoteSwitcher

#: RDS exceptions that prove the old primary's region API cannot be reached at all.
_UNREACHABLE = (EndpointConnectionError, ConnectTimeoutError)
FENCES = ("pointer_order", "parameter_group")
#: The parameter that makes the old primary refuse application writes, per RDS engine:
#: (name, fenced value, unfenced value). Both are dynamic ("immediate") parameters.
_READ_ONLY_PARAMETER = {"postgres": ("default_transaction_read_only", "1", "0"),
                        "mysql": ("read_only", "1", "0"), "mariadb": ("read_only", "1", "0")}


class RdsPromoteSwitcher:
    """Promote the cross-region replica. One way: a promoted instance cannot become a
    replica again, so a switch back needs a new replica (a manual failback).

    The fence, chosen per target by ``fence``:

    * ``pointer_order`` (default): the data pointer (the next switch target) moves only
      after ``promote_read_replica`` was accepted, and wrappers send writes only to the side
      the pointer names. RDS gives no fast, synchronous way to make an instance read-only:
      a security-group change leaves open connections alone, and a parameter change is
      applied asynchronously and needs an instance-owned (not ``default.*``) parameter group.
      Wrappers read the pointer (strongly consistent) for every write, so what remains is
      a write that read it just before it moved and commits on the old primary after the
      replica stopped replicating: one transaction's time.
    * ``parameter_group``: before promoting, set the old primary's read-only parameter
      (``default_transaction_read_only`` on PostgreSQL, ``read_only`` on MySQL/MariaDB) in
      its own parameter group, applied immediately. If the old primary's region answers but
      the fence fails (default parameter group, access denied, throttling), the switch aborts
      and nothing is promoted; only a region whose API cannot be reached at all (connection
      error or connect timeout) is promoted past unfenced. If the promotion fails, the
      parameter is set back. Needs ``rds:DescribeDBInstances`` and
      ``rds:ModifyDBParameterGroup`` on the old primary and its group.
    """

    def __init__(self, clients: Clients) -> None:
        self.clients = clients
        self.last: dict[str, Any] = {}

    def verify(self, target: Mapping[str, Any], to: Side) -> bool:
        try:
            return self.current(target) == to
        except (ClientError, BotoCoreError):
            return False

    def _describe(self, target: Mapping[str, Any]) -> dict[str, Any]:
        out = self.clients.get("rds", target["region"]).describe_db_instances(
            DBInstanceIdentifier=target["instance_id"])
        return dict(out["DBInstances"][0])

    def apply(self, target: Mapping[str, Any], to: Side, token: int, reason: str) -> None:
        if to != "standby":
            raise SwitchError(
                f"{target['instance_id']} was promoted and cannot be demoted; fail back by "
                "creating a new replica of it in the primary region, then switching over")
        mode = str(target.get("fence", "pointer_order"))
        if mode not in FENCES:
            raise SwitchError(f"rds_promote fence {mode!r}; allowed: {', '.join(FENCES)}")
        self.last = {"token": token, "fence": mode}
        try:
            source = self._describe(target).get("ReadReplicaSourceDBInstanceIdentifier")
        except (ClientError, BotoCoreError) as exc:
            raise SwitchError(f"describe {target['instance_id']}: {exc}") from None
        if not source:
            self.last["already_promoted"] = True
            return  # already promoted: idempotent
        undo = None
        if mode == "parameter_group":
            undo = fence_by_parameter_group(self.clients, str(source), str(target["region"]),
                                            self.last)
        try:
            self.clients.get("rds", target["region"]).promote_read_replica(
                DBInstanceIdentifier=target["instance_id"])
        except (ClientError, BotoCoreError) as exc:
            if undo is not None:
                with contextlib.suppress(ClientError, BotoCoreError):
                    undo()
                    self.last["unfenced"] = True
            raise SwitchError(f"promote {target['instance_id']}: {exc}") from None
        self.last["promoted"] = True

    def current(self, target: Mapping[str, Any]) -> Side | None:
        promoted = not self._describe(target).get("ReadReplicaSourceDBInstanceIdentifier")
        return "standby" if promoted else "primary"


def fence_by_parameter_group(clients: Clients, source: str, default_region: str,
                             last: dict[str, Any]) -> Callable[[], None] | None:
    """The opt-in ``fence: parameter_group`` of ``rds_promote``: set the old primary's
    read-only parameter in its own parameter group. The components do not grant
    ``rds:ModifyDBParameterGroup`` (the default ``pointer_order`` needs none), so a user who
    opts in adds that grant on the instance's parameter group.

    Set the old primary read-only; returns how to undo it, or None if its region's
    API is unreachable. Raises ``SwitchError`` on any other failure."""
    region = source.split(":")[3] if source.startswith("arn:") else default_region
    instance = source.rsplit(":", 1)[-1]
    rds = clients.get("rds", region)
    try:
        old = rds.describe_db_instances(DBInstanceIdentifier=instance)["DBInstances"][0]
        engine = str(old["Engine"])
        param = _READ_ONLY_PARAMETER.get(engine)
        if param is None:
            raise SwitchError(f"cannot fence {instance}: engine {engine!r}; allowed: "
                              f"{', '.join(_READ_ONLY_PARAMETER)}")
        group = str(old["DBParameterGroups"][0]["DBParameterGroupName"])
        if group.startswith("default."):
            raise SwitchError(
                f"cannot fence {instance}: it uses the default parameter group {group}, "
                "which cannot be modified. Give it its own parameter group, or set the "
                "target's fence to pointer_order; not promoting")
        name, on, off = param

        def set_to(value: str) -> None:
            rds.modify_db_parameter_group(DBParameterGroupName=group, Parameters=[
                {"ParameterName": name, "ParameterValue": value, "ApplyMethod": "immediate"}])

        set_to(on)
    except _UNREACHABLE as exc:
        last.update(fenced=False, unreachable=str(exc))
        return None  # the old primary's region is cut off: nothing to fence through
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "DBInstanceNotFound":
            last.update(fenced=False, gone=instance)
            return None
        raise SwitchError(f"could not fence {instance} in {region} (its region answers, "
                          f"so it may still take writes): {exc}; not promoting") from None
    except BotoCoreError as exc:
        raise SwitchError(f"could not fence {instance} in {region}: {exc}; "
                          "not promoting") from None
    last.update(fenced=True, parameter_group=group, parameter=name)
    return lambda: set_to(off)


def secret_credentials(clients: Clients) -> Any:
    """``(user, password)`` from the Secrets Manager secret named by the target."""

    def get(target: Mapping[str, Any]) -> tuple[str, str]:
        try:
            return db_credentials(clients, str(target["secret_arn"]),
                                  str(target.get("region") or "us-east-1"))
        except LookupError as exc:
            raise SwitchError(str(exc)) from None

    return get


def db_switchers(clients: Clients,
                 alert: Callable[[str, str], None] | None = None) -> dict[str, Any]:
    """``alert(title, text)`` receives the SQL heartbeat's critical findings (no writable
    side, targets disagreeing with the committed side); without it they are raised and the
    monitor logs them as a failed heartbeat."""
    return {
        "rds_promote": RdsPromoteSwitcher(clients),
        "sql_promote": SqlPromoteSwitcher(secret_credentials(clients), alert),
    }
