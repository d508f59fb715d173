"""Active pointers: which side is active, per region, with a fencing token.

Each region has its own pointer table (a plain DynamoDB table, read locally by the logic
functions and wrappers). Items:
  ``wrapper`` -> active wrapper side in this region (switched by the logic monitor)
  ``data``    -> active data region (switched by the data monitor, in every region)
Each item carries ``token``; a switch writes with ``ConditionExpression token < :new`` so a
monitor holding a stale lease is rejected. Pulumi creates the items once and then ignores
their content, so ``pulumi up`` never reverts a switch.
The gateway's pointer is the stage variable / integration itself; the DNS pointer is the
Route 53 health state (or the record in direct mode).
"""

from __future__ import annotations

import json

import pulumi
import pulumi_aws as aws

from components import naming
from components.aws._common import PACKAGE
from components.spec import TopologySpec

POINTER_KEY = "pointer"


class PointerStore(pulumi.ComponentResource):
    tables: dict[str, aws.dynamodb.Table]

    def __init__(
        self,
        name: str,
        spec: TopologySpec,
        providers: dict[str, aws.Provider],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__(f"{PACKAGE}:aws:PointerStore", name, None, opts)
        self.tables = {}
        for region in spec.all_regions:
            ropts = pulumi.ResourceOptions(parent=self, provider=providers[region])
            table = aws.dynamodb.Table(
                f"{name}-{region}",
                name=naming.pointer_table(spec.name),
                billing_mode="PAY_PER_REQUEST",
                hash_key=POINTER_KEY,
                attributes=[{"name": POINTER_KEY, "type": "S"}],
                point_in_time_recovery={"enabled": True},
                server_side_encryption={"enabled": True},
                tags={"standby:topology": spec.name},
                opts=ropts,
            )
            initial = {
                "wrapper": "primary",
                "data": spec.data_primary_region,
            }
            for key, active in initial.items():
                aws.dynamodb.TableItem(
                    f"{name}-{region}-{key}",
                    table_name=table.name,
                    hash_key=POINTER_KEY,
                    item=json.dumps(
                        {
                            POINTER_KEY: {"S": key},
                            "active": {"S": active},
                            "token": {"N": "0"},
                            "reason": {"S": "initial deploy"},
                        }
                    ),
                    opts=pulumi.ResourceOptions(
                        parent=self, provider=providers[region], ignore_changes=["item"]
                    ),
                )
            self.tables[region] = table
        self.register_outputs({r: t.name for r, t in self.tables.items()})
