"""Data layer: the primary/standby database and object storage.

- DynamoDB (default): one global table with a replica in every region. Writes still go to
  one active region at a time (the ``data`` pointer), so last-writer-wins never arbitrates
  between two live writers.
- RDS PostgreSQL/MySQL: a Multi-AZ primary with an encrypted cross-region read replica.
  The master password is managed by RDS in Secrets Manager (never in config).
- S3: a versioned, encrypted, private bucket in each data region, replicating in both
  directions (so a failback loses no object), with Replication Time Control as an option.
"""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_aws as aws

from components.aws._common import PACKAGE, PolicyBuilder, assume_role_policy
from components.spec import TopologySpec

_ENGINE = {"postgres": ("postgres", 5432), "mysql": ("mysql", 3306)}


class DataLayer(pulumi.ComponentResource):
    engine: str
    primary_region: str
    standby_region: str
    table: aws.dynamodb.Table | None
    table_arns: dict[str, pulumi.Output[str]]
    db_primary: aws.rds.Instance | None
    db_replica: aws.rds.Instance | None
    db_secret_arn: pulumi.Output[str] | None
    db_security_groups: dict[str, aws.ec2.SecurityGroup]
    buckets: dict[str, aws.s3.Bucket]

    def __init__(
        self,
        name: str,
        spec: TopologySpec,
        providers: dict[str, aws.Provider],
        account: pulumi.Input[str],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__(f"{PACKAGE}:aws:DataLayer", name, None, opts)
        self.engine = spec.db_engine
        self.primary_region = spec.data_primary_region
        self.standby_region = spec.data_standby_region
        self.table = None
        self.table_arns = {}
        self.db_primary = None
        self.db_replica = None
        self.db_secret_arn = None
        self.db_security_groups = {}
        self.buckets = {}
        tags = {"standby:topology": spec.name}

        self._providers = providers
        if self.engine == "dynamodb":
            table_name = f"{spec.name}-{spec.database.name}"
            replicas = [r for r in spec.all_regions if r != self.primary_region]
            self.table = aws.dynamodb.Table(
                f"{name}-table",
                name=table_name,
                billing_mode="PAY_PER_REQUEST",
                hash_key="pk",
                range_key="sk",
                attributes=[{"name": "pk", "type": "S"}, {"name": "sk", "type": "S"}],
                stream_enabled=True,  # required for global-table replicas
                stream_view_type="NEW_AND_OLD_IMAGES",
                point_in_time_recovery={"enabled": True},
                server_side_encryption={"enabled": True},
                replicas=[
                    {"region_name": r, "point_in_time_recovery": True} for r in replicas
                ]
                if spec.database.replica
                else [],
                tags=tags,
                opts=self._on(self.primary_region),
            )
            regions = spec.all_regions if spec.database.replica else [self.primary_region]
            for r in regions:
                self.table_arns[r] = pulumi.Output.concat(
                    "arn:aws:dynamodb:", r, ":", account, ":table/", table_name
                )
        else:
            self._sql(name, spec, tags)

        if spec.storage.enabled:
            self._buckets(name, spec, tags)
        self.register_outputs(
            {"engine": self.engine, "buckets": {r: b.bucket for r, b in self.buckets.items()}}
        )

    def _on(
        self, region: str, depends_on: list[pulumi.Resource] | None = None
    ) -> pulumi.ResourceOptions:
        return pulumi.ResourceOptions(
            parent=self, provider=self._providers[region], depends_on=depends_on
        )

    def _sql(self, name: str, spec: TopologySpec, tags: dict[str, str]) -> None:
        engine, port = _ENGINE[self.engine]
        db = spec.database
        opts_for = self._on
        subnet_groups: dict[str, aws.rds.SubnetGroup] = {}
        for region in (self.primary_region, self.standby_region):
            net = db.network[region]
            sg = aws.ec2.SecurityGroup(
                f"{name}-db-sg-{region}",
                vpc_id=net.vpc_id,
                description=f"{spec.name} database: {engine} from the topology's functions",
                tags=tags,
                opts=opts_for(region),
            )
            # Functions share this group; the database admits only members of it.
            aws.vpc.SecurityGroupIngressRule(
                f"{name}-db-sg-{region}-self",
                security_group_id=sg.id,
                referenced_security_group_id=sg.id,
                ip_protocol="tcp",
                from_port=port,
                to_port=port,
                opts=opts_for(region),
            )
            aws.vpc.SecurityGroupEgressRule(
                f"{name}-db-sg-{region}-egress",
                security_group_id=sg.id,
                cidr_ipv4="0.0.0.0/0",
                ip_protocol="tcp",
                from_port=443,
                to_port=443,
                opts=opts_for(region),
            )
            self.db_security_groups[region] = sg
            subnet_groups[region] = aws.rds.SubnetGroup(
                f"{name}-db-subnets-{region}",
                subnet_ids=net.subnet_ids,
                tags=tags,
                opts=opts_for(region),
            )
        self.db_primary = aws.rds.Instance(
            f"{name}-db-primary",
            identifier=f"{spec.name}-{db.name}-primary".lower().replace("_", "-"),
            engine=engine,
            instance_class=db.instance_class,
            allocated_storage=db.storage_gb,
            db_name=db.name,
            username="standby_admin",
            manage_master_user_password=True,
            multi_az=True,
            storage_encrypted=True,
            backup_retention_period=7,  # replicas need automated backups on the source
            db_subnet_group_name=subnet_groups[self.primary_region].name,
            vpc_security_group_ids=[self.db_security_groups[self.primary_region].id],
            deletion_protection=True,
            final_snapshot_identifier=f"{spec.name}-{db.name}-final".lower().replace("_", "-"),
            publicly_accessible=False,
            tags=tags,
            opts=opts_for(self.primary_region),
        )
        self.db_secret_arn = self.db_primary.master_user_secrets.apply(
            lambda s: (s[0].secret_arn or "") if s else ""
        )
        if db.replica:
            key = aws.kms.Key(
                f"{name}-db-replica-key",
                description=f"{spec.name} cross-region replica encryption",
                enable_key_rotation=True,
                tags=tags,
                opts=opts_for(self.standby_region),
            )
            self.db_replica = aws.rds.Instance(
                f"{name}-db-replica",
                identifier=f"{spec.name}-{db.name}-standby".lower().replace("_", "-"),
                replicate_source_db=self.db_primary.arn,
                instance_class=db.instance_class,
                storage_encrypted=True,
                kms_key_id=key.arn,
                db_subnet_group_name=subnet_groups[self.standby_region].name,
                vpc_security_group_ids=[self.db_security_groups[self.standby_region].id],
                backup_retention_period=7,
                deletion_protection=True,
                skip_final_snapshot=True,
                publicly_accessible=False,
                tags=tags,
                # After a promotion the replica is a standalone primary: do not fight it.
                opts=pulumi.ResourceOptions.merge(
                    opts_for(self.standby_region),
                    pulumi.ResourceOptions(ignore_changes=["replicateSourceDb"]),
                ),
            )

    def _buckets(
        self,
        name: str,
        spec: TopologySpec,
        tags: dict[str, str],
    ) -> None:
        opts_for = self._on
        regions = [self.primary_region, self.standby_region]
        versioning: dict[str, aws.s3.BucketVersioning] = {}
        for region in regions:
            bucket = aws.s3.Bucket(
                f"{name}-bucket-{region}",
                bucket_prefix=f"{spec.storage.bucket}-",
                tags=tags,
                opts=opts_for(region),
            )
            self.buckets[region] = bucket
            versioning[region] = aws.s3.BucketVersioning(
                f"{name}-bucket-{region}-versioning",
                bucket=bucket.id,
                versioning_configuration={"status": "Enabled"},
                opts=opts_for(region),
            )
            aws.s3.BucketPublicAccessBlock(
                f"{name}-bucket-{region}-private",
                bucket=bucket.id,
                block_public_acls=True,
                block_public_policy=True,
                ignore_public_acls=True,
                restrict_public_buckets=True,
                opts=opts_for(region),
            )
            aws.s3.BucketServerSideEncryptionConfiguration(
                f"{name}-bucket-{region}-sse",
                bucket=bucket.id,
                rules=[{"apply_server_side_encryption_by_default": {"sse_algorithm": "AES256"}}],
                opts=opts_for(region),
            )
        if not spec.storage.replication:
            return
        for src, dst in ((regions[0], regions[1]), (regions[1], regions[0])):
            source, dest = self.buckets[src], self.buckets[dst]
            policy = (
                PolicyBuilder()
                .allow(["s3:GetReplicationConfiguration", "s3:ListBucket"], [source.arn])
                .allow(
                    [
                        "s3:GetObjectVersionForReplication",
                        "s3:GetObjectVersionAcl",
                        "s3:GetObjectVersionTagging",
                    ],
                    [pulumi.Output.concat(source.arn, "/*")],
                )
                .allow(
                    ["s3:ReplicateObject", "s3:ReplicateDelete", "s3:ReplicateTags"],
                    [pulumi.Output.concat(dest.arn, "/*")],
                )
            )
            role = aws.iam.Role(
                f"{name}-replication-{src}",
                assume_role_policy=assume_role_policy("s3.amazonaws.com"),
                tags=tags,
                opts=opts_for(src),
            )
            aws.iam.RolePolicy(
                f"{name}-replication-{src}-policy",
                role=role.id,
                policy=policy.document(),
                opts=opts_for(src),
            )
            destination: dict[str, Any] = {
                "bucket": dest.arn,
                "storage_class": "STANDARD",
            }
            if spec.storage.rtc:
                destination["replication_time"] = {"status": "Enabled", "time": {"minutes": 15}}
                destination["metrics"] = {"status": "Enabled", "event_threshold": {"minutes": 15}}
            rule: Any = {
                        "id": f"to-{dst}",
                        "status": "Enabled",
                        "priority": 1,
                        "filter": {"prefix": ""},
                        "delete_marker_replication": {"status": "Enabled"},
                        "destination": destination,
            }
            aws.s3.BucketReplicationConfig(
                f"{name}-bucket-{src}-replication",
                bucket=source.id,
                role=role.arn,
                rules=[rule],
                opts=opts_for(src, depends_on=[versioning[src], versioning[dst]]),
            )
