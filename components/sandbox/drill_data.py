"""The deployed drill's data planes: what sits behind the deployed wrappers.

``DynamoPlane``: the stack's global table, one moto table per region, kept in step by the
sandbox's global-table replication stand-in (``replication.py``). ``sql_plane``: the RDS
instances of a SQL stack, backed by local servers (``deploy_rds.py``).
"""

from __future__ import annotations

from typing import Any

from components.sandbox.deploy import Deployment

#: The example app's DynamoDB item key for an order (examples/app/main.py).
ORDER_PREFIX = "order#"


class DynamoPlane:
    engine = "dynamodb"

    def __init__(self, d: Deployment, table: str, regions: list[str], delay_s: float) -> None:
        self.d, self.table, self.regions, self.delay_s = d, table, regions, delay_s
        self.replicator: Any = None

    def start(self) -> None:
        try:  # TEMPORARY until the replication stand-in lands
            from components.sandbox.replication import GlobalTableReplicator
        except ImportError:
            return
        self.replicator = GlobalTableReplicator.for_deployment(self.d, delay_s=self.delay_s)
        self.replicator.start()

    def present(self, region: str) -> set[str]:
        client = self.d.client("dynamodb", region)
        out: set[str] = set()
        kwargs: dict[str, Any] = {"TableName": self.table, "ConsistentRead": True}
        for _ in range(10_000):  # bounded: 10,000 pages
            page = client.scan(**kwargs)
            for item in page.get("Items", []):
                pk = item.get("pk", {}).get("S", "")
                if pk.startswith(ORDER_PREFIX):
                    out.add(pk[len(ORDER_PREFIX):])
            if "LastEvaluatedKey" not in page:
                break
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        return out

    def applied_twice(self, region: str) -> list[dict[str, Any]]:
        return []  # keyed by the order id: a second put of one request overwrites the first

    def settle(self, timeout_s: float = 10.0) -> bool:
        """Wait until replication has nothing pending (True) or ``timeout_s`` passed."""
        if self.replicator is None:
            return True
        return bool(self.replicator.wait_idle(timeout_s))

    def kill(self, region: str) -> None:
        raise NotImplementedError("a DynamoDB table cannot be killed alone in the sandbox")

    def rebuild(self, region: str, source: str) -> None:
        return None  # a global table replica needs no rebuild

    def differences(self) -> list[str]:
        return []

    def close(self) -> None:
        if self.replicator is not None:
            self.replicator.stop()


def sql_plane(world: Any, engine: str) -> Any:
    from components.sandbox.drill_deployed_world import DrillSetupError

    raise DrillSetupError(f"engine {engine}: the deployed drill has no data plane for it yet")
