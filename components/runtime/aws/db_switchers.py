"""AWS database switchers: ``rds_promote`` (an RDS cross-region read replica) and
``sql_promote`` (a self-managed SQL pair, steps in ``components.runtime.sql_switch``) with
credentials from Secrets Manager."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from components.runtime.aws.clients import Clients, db_credentials
from components.runtime.engine import Side
from components.runtime.errors import SwitchError
from components.runtime.sql_switch import SqlPromoteSwitcher


class RdsPromoteSwitcher:
    """Promote the cross-region replica. One way: a promoted instance cannot become a
    replica again, so a switch back needs a new replica (a manual failback)."""

    def __init__(self, clients: Clients) -> None:
        self.clients = clients

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
        try:
            if not self._describe(target).get("ReadReplicaSourceDBInstanceIdentifier"):
                return  # already promoted: idempotent
            self.clients.get("rds", target["region"]).promote_read_replica(
                DBInstanceIdentifier=target["instance_id"])
        except (ClientError, BotoCoreError) as exc:
            raise SwitchError(f"promote {target['instance_id']}: {exc}") from None

    def current(self, target: Mapping[str, Any]) -> Side | None:
        promoted = not self._describe(target).get("ReadReplicaSourceDBInstanceIdentifier")
        return "standby" if promoted else "primary"


def secret_credentials(clients: Clients) -> Any:
    """``(user, password)`` from the Secrets Manager secret named by the target."""

    def get(target: Mapping[str, Any]) -> tuple[str, str]:
        try:
            return db_credentials(clients, str(target["secret_arn"]),
                                  str(target.get("region") or "us-east-1"))
        except LookupError as exc:
            raise SwitchError(str(exc)) from None

    return get


def db_switchers(clients: Clients) -> dict[str, Any]:
    return {
        "rds_promote": RdsPromoteSwitcher(clients),
        "sql_promote": SqlPromoteSwitcher(secret_credentials(clients)),
    }
