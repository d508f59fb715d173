"""The data layer: CDB primary with a cross-region DR instance, and a COS bucket per side.

The DR instance is made with the standby region's provider (``mysql.DrInstance`` with
``master_region``); at run time the data monitor calls ``SwitchDrInstanceToMaster`` in the
DR region (switch kind ``cdb_dr_switch``), never at deploy time (``mysql.DrInstanceToMater``
switches once, on create, and is not used). Tencent has no cross-region PostgreSQL
promotion, so the spec refuses that engine with a standby region.

COS replication needs versioning on both buckets. The active side's bucket is the source:
the primary's rule is Enabled, the standby's (back to the primary) Disabled, and the data
monitor reverses them on a failover (switch kind ``cos_replication``), so Pulumi ignores the
rules after creation. Its lag has no published bound: the budget states it as best effort.
"""

from __future__ import annotations

import pulumi
from tencentcloud_iac_pulumi import Provider, cos, mysql

from components.naming import region_short
from components.spec import TopologySpec
from components.tencent._common import type_token
from components.tencent.cdb import MEM_MB, PORT, Cdb, cdb_instance, dsn_secret

SIDES = ("primary", "standby")


def bucket_name(prefix: str, region: str, app_id: str) -> str:
    """COS bucket names are ``<name>-<APPID>`` (COS "Bucket overview"); one per region."""
    return f"{prefix}-{region_short(region)}-{app_id}"


class DataLayer(pulumi.ComponentResource):
    """Outputs: ``db`` (primary CDB), ``dr`` (DR instance), ``buckets[region]``,
    ``db_secret_name`` (SSM, one copy per region), ``primary_region``, ``standby_region``."""

    db: Cdb | None
    dr: mysql.DrInstance | None
    buckets: dict[str, cos.Bucket]
    bucket_names: dict[str, str]

    def __init__(self, name: str, spec: TopologySpec, providers: dict[str, Provider],
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(type_token("DataLayer"), name, None, opts)
        assert spec.tencent is not None
        self.spec = spec
        self.primary_region = spec.data_primary_region
        self.standby_region = spec.data_standby_region
        db = spec.database
        tags = {"standby:topology": spec.name}
        self.db, self.dr = None, None
        self.db_secret_name = f"{spec.name}-db-dsn"
        if spec.db_engine == "mysql":
            self.db = cdb_instance(
                f"{name}-db-primary", instance_name=f"{spec.name}-{db.name}-primary",
                database=db.name, volume_gb=db.storage_gb,
                network=db.network[self.primary_region],
                provider=providers[self.primary_region], parent=self, tags=tags,
            )
            standby: dict[str, pulumi.Input[object]] = {}
            if db.replica:
                net = db.network[self.standby_region]
                self.dr = mysql.DrInstance(
                    f"{name}-db-dr",
                    instance_name=f"{spec.name}-{db.name}-dr",
                    master_instance_id=self.db.instance.id,
                    master_region=self.primary_region,
                    mem_size=MEM_MB,
                    volume_size=db.storage_gb,
                    vpc_id=net.vpc_id,
                    subnet_id=net.subnet_ids[0],
                    intranet_port=PORT,
                    slave_deploy_mode=1,
                    slave_sync_mode=1,
                    charge_type="POSTPAID",
                    tags=tags,
                    opts=pulumi.ResourceOptions(parent=self,
                                                provider=providers[self.standby_region]),
                )
                # DrInstance exposes no intranet IP output: the run time resolves the DR
                # instance's address with DescribeDBInstances when the data pointer moves.
                standby = {"standby_instance_id": self.dr.id, "standby_port": PORT,
                           "standby_region": self.standby_region}
            # One copy per region, so a wrapper or monitor reads it while another is down.
            for r in spec.all_regions:
                dsn_secret(
                    f"{name}-db-{r}", secret_name=self.db_secret_name,
                    host=self.db.instance.intranet_ip, port=PORT, cdb=self.db,
                    provider=providers[r], parent=self,
                    description=f"{spec.name}: {db.name} DSN (primary and DR hosts)",
                    extra={"primary_region": self.primary_region, **standby},
                )
        self.buckets, self.bucket_names = {}, {}
        storage = spec.storage
        if storage.enabled:
            app_id, owner = spec.tencent.app_id, spec.tencent.owner_uin
            regions = [self.primary_region, self.standby_region]
            names = {r: bucket_name(storage.bucket, r, app_id) for r in regions}
            for r in regions:
                other = regions[1] if r == regions[0] else regions[0]
                rules = []
                if storage.replication:
                    rules = [cos.BucketReplicaRuleArgs(
                        id=f"to-{region_short(other)}",
                        status="Enabled" if r == self.primary_region else "Disabled",
                        destination_bucket=f"qcs::cos:{other}::{names[other]}",
                    )]
                self.buckets[r] = cos.Bucket(
                    f"{name}-bucket-{r}",
                    bucket=names[r],
                    acl="private",
                    versioning_enable=True,
                    replica_role=f"qcs::cam::uin/{owner}:uin/{owner}" if rules else None,
                    replica_rules=rules or None,
                    force_clean=False,
                    tags=tags,
                    opts=pulumi.ResourceOptions(parent=self, provider=providers[r],
                                                ignore_changes=["replicaRules"]),
                )
            self.bucket_names = names
            self.replica_role = f"qcs::cam::uin/{owner}:uin/{owner}"
        self.register_outputs({"buckets": self.bucket_names,
                               "db_secret_name": self.db_secret_name})

    def side(self, region: str) -> str:
        return "primary" if region == self.primary_region else "standby"

    def vpc(self, region: str) -> tuple[str, str] | None:
        net = self.spec.database.network.get(region)
        return (net.vpc_id, net.subnet_ids[0]) if net is not None else None


__all__ = ["DataLayer", "bucket_name"]
