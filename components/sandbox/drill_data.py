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

    def __init__(self, d: Deployment, table: str, regions: list[str], delay_s: float,
                 max_run_s: float = 3600.0) -> None:
        self.d, self.table, self.regions, self.delay_s = d, table, regions, delay_s
        self.max_run_s = max_run_s
        self.replicator: Any = None

    def start(self) -> None:
        from components.sandbox.replication import GlobalTableReplicator

        self.replicator = GlobalTableReplicator(self.d, delay_s=self.delay_s,
                                                max_run_s=self.max_run_s).start()

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


#: The drill's orders table. The row's key is the server's; ``id`` is the client's request
#: id and deliberately not unique, so a request applied twice is stored twice and
#: ``applied_twice`` sees it (a unique key would refuse the second insert and hide the
#: defect). The example app's INSERT (id, item, region) works unchanged on it.
ORDERS_DDL = {
    "postgres": "CREATE TABLE orders (row_id bigserial PRIMARY KEY, id text NOT NULL, "
                "item text, region text, created_at timestamptz NOT NULL DEFAULT now())",
}


class SqlPlane:
    """The stack's RDS instances, backed by local servers (``deploy_rds.RdsWorld``)."""

    def __init__(self, engine: str, rds: Any) -> None:
        self.engine, self.rds = engine, rds

    def start(self) -> None:
        primary = next(r for r in self.rds.regions()
                       if self.rds.in_region(r).source is None)
        with self.rds.connect(primary) as c:
            c.execute(ORDERS_DDL[self.engine])

    def present(self, region: str) -> set[str]:
        with self.rds.connect(region) as c:
            return {str(row[0]) for row in c.execute("SELECT id FROM orders").fetchall()}

    def applied_twice(self, region: str) -> list[dict[str, Any]]:
        from components.sandbox.drill_report import applied_twice

        with self.rds.connect(region) as c:
            return applied_twice(c)

    def settle(self, timeout_s: float = 10.0) -> bool:
        return True  # a promotion drains before it completes; a replica is read at the end

    def kill(self, region: str) -> None:
        self.rds.kill(region)

    def rebuild(self, region: str, source: str) -> None:
        self.rds.rebuild(region, source)

    def differences(self) -> list[str]:
        return []

    def close(self) -> None:
        return None  # the servers belong to the deployment (Deployment.close)


def sql_plane(world: Any, engine: str) -> SqlPlane:
    from components.sandbox.deploy_rds import rds_world
    from components.sandbox.drill_deployed_world import DrillSetupError

    if engine not in ORDERS_DDL:
        raise DrillSetupError(f"engine {engine}: the deployed drill runs "
                              f"{', '.join(['dynamodb', *ORDERS_DDL])}")
    rds = rds_world(world.d)
    if not rds.instances:
        raise DrillSetupError(f"stack {world.stack}: engine {engine} but no RDS instance "
                              "was deployed")
    return SqlPlane(engine, rds)
