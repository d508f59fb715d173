"""Data layer: the primary/standby database and object storage.

- DynamoDB (default): one global table with a replica in every region. Writes still go to
  one active region at a time (the ``data`` pointer), so last-writer-wins never arbitrates
  between two live writers.
- RDS PostgreSQL/MySQL: a Multi-AZ primary with an encrypted cross-region read replica.
  The master password is generated at deploy time (never in config) and kept in a Secrets
  Manager secret replicated to every region. The wrappers and the data monitor run in the
  stack's VPCs with their own security groups; the database admits only those.
- S3: a versioned, encrypted, private bucket in each data region, replicating in both
  directions (so a failback loses no object), with Replication Time Control as an option.
"""

from __future__ import annotations

import functools
from typing import Any

import pulumi
import pulumi_aws as aws
import pulumi_random as random

from components.aws._common import PACKAGE, PolicyBuilder, assume_role_policy
from components.spec import TopologySpec

_ENGINE = {"postgres": ("postgres", 5432), "mysql": ("mysql", 3306)}
DB_USER = "standby_admin"


def credentials_document(engine: str, port: int, dbname: str, password: Any) -> dict[str, Any]:
    """The credentials secret's JSON, in the RDS-managed secret's shape that
    ``components.runtime.aws.clients.db_credentials`` reads (``username``, ``password``)."""
    return {"engine": engine, "username": DB_USER, "password": password, "port": port,
            "dbname": dbname}


def arn_in_region(arn: str, region: str) -> str:
    """A replicated secret's ARN in ``region``: the primary's ARN with that region."""
    parts = arn.split(":")
    if len(parts) < 7 or parts[0] != "arn":
        raise ValueError(f"{arn!r} is not an ARN")
    parts[3] = region
    return ":".join(parts)


class DataLayer(pulumi.ComponentResource):
    engine: str
    primary_region: str
    standby_region: str
    table: aws.dynamodb.Table | None
    table_arns: dict[str, pulumi.Output[str]]
    db_primary: aws.rds.Instance | None
    db_replica: aws.rds.Instance | None
    db_secret_arn: pulumi.Output[str] | None
    db_secret_arns: dict[str, pulumi.Output[str]]
    """The credentials secret's ARN in each region (the primary or its replica)."""
    db_port: int | None
    db_security_groups: dict[str, aws.ec2.SecurityGroup]
    wrapper_security_groups: dict[str, aws.ec2.SecurityGroup]
    monitor_security_groups: dict[str, aws.ec2.SecurityGroup]
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
        self.db_secret_arns = {}
        self.db_port = None
        self.db_security_groups = {}
        self.wrapper_security_groups = {}
        self.monitor_security_groups = {}
        self._subnets = {r: n.subnet_ids for r, n in spec.database.network.items()}
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
        self.db_port = port
        db = spec.database
        opts_for = self._on
        data_regions = [self.primary_region, self.standby_region]
        self._network(name, spec, tags, data_regions, port)
        subnet_groups: dict[str, aws.rds.SubnetGroup] = {}
        for region in data_regions:
            subnet_groups[region] = aws.rds.SubnetGroup(
                f"{name}-db-subnets-{region}",
                subnet_ids=db.network[region].subnet_ids,
                tags=tags,
                opts=opts_for(region),
            )
        # RDS refuses a cross-region read replica of a source whose master password it manages
        # in Secrets Manager (every engine but SQL Server), so the password is generated here,
        # kept only in Pulumi's encrypted state and in our own secret, replicated to every
        # region so a wrapper or monitor reads it locally while the primary region is down.
        password = random.RandomPassword(
            f"{name}-db-password",
            length=40,
            special=False,  # RDS forbids / @ " and space; 40 alphanumerics is ~238 bits
            opts=pulumi.ResourceOptions(parent=self),
        )
        secret = aws.secretsmanager.Secret(
            f"{name}-db-secret",
            name_prefix=f"{spec.name}/db/{db.name}-",
            description=f"{spec.name}: {engine} master credentials (replicated to every region)",
            recovery_window_in_days=7,
            replicas=[{"region": r} for r in spec.all_regions if r != self.primary_region],
            tags=tags,
            opts=opts_for(self.primary_region),
        )
        aws.secretsmanager.SecretVersion(
            f"{name}-db-secret-value",
            secret_id=secret.id,
            secret_string=pulumi.Output.json_dumps(
                credentials_document(engine, port, db.name, password.result)
            ),
            opts=opts_for(self.primary_region),
        )
        self.db_secret_arn = secret.arn
        # A replica's ARN is the primary's with its own region (Secrets Manager user guide,
        # "Replicate secrets across Regions").
        self.db_secret_arns = {
            r: secret.arn.apply(functools.partial(arn_in_region, region=r))
            for r in spec.all_regions
        }
        self.db_primary = aws.rds.Instance(
            f"{name}-db-primary",
            identifier=f"{spec.name}-{db.name}-primary".lower().replace("_", "-"),
            engine=engine,
            instance_class=db.instance_class,
            allocated_storage=db.storage_gb,
            db_name=db.name,
            username=DB_USER,
            password=password.result,
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

    def _network(
        self, name: str, spec: TopologySpec, tags: dict[str, str], data_regions: list[str],
        port: int,
    ) -> None:
        """Security groups: the database admits the wrappers and the data monitor only.

        Every region gets a wrapper group and a data-monitor group (its functions run in that
        region's ``database.network``); each data region gets a database group. Inside a region
        the rules reference groups. Across regions AWS cannot reference a group through
        inter-region VPC peering, so the database admits the other regions' function subnets
        by CIDR, and those VPCs must be peered (or joined by a Transit Gateway) with routes.
        """
        net = spec.database.network
        for region in spec.all_regions:
            vpc_id = net[region].vpc_id
            for role, groups in (("wrapper", self.wrapper_security_groups),
                                 ("monitor", self.monitor_security_groups)):
                sg = aws.ec2.SecurityGroup(
                    f"{name}-{role}-sg-{region}",
                    vpc_id=vpc_id,
                    description=f"{spec.name} {role} functions: database port and AWS APIs",
                    tags=tags,
                    opts=self._on(region),
                )
                groups[region] = sg
                # AWS APIs (DynamoDB, Secrets Manager, CloudWatch, SNS, RDS, Lambda) through
                # VPC endpoints or a NAT gateway; both are reached on 443.
                aws.vpc.SecurityGroupEgressRule(
                    f"{name}-{role}-sg-{region}-https",
                    security_group_id=sg.id,
                    cidr_ipv4="0.0.0.0/0",
                    ip_protocol="tcp",
                    from_port=443,
                    to_port=443,
                    description="AWS APIs via VPC endpoints or NAT",
                    opts=self._on(region),
                )
        for region in data_regions:
            self.db_security_groups[region] = aws.ec2.SecurityGroup(
                f"{name}-db-sg-{region}",
                vpc_id=net[region].vpc_id,
                description=f"{spec.name} database: the wrappers and the data monitor only",
                tags=tags,
                opts=self._on(region),
            )
        cidrs = {
            r: [
                aws.ec2.get_subnet_output(
                    id=subnet,
                    opts=pulumi.InvokeOutputOptions(provider=self._providers[r], parent=self),
                ).cidr_block
                for subnet in net[r].subnet_ids
            ]
            for r in spec.all_regions
        }
        for db_region in data_regions:
            db_sg = self.db_security_groups[db_region]
            for region in spec.all_regions:
                for role, groups in (("wrapper", self.wrapper_security_groups),
                                     ("monitor", self.monitor_security_groups)):
                    fn_sg = groups[region]
                    rule = f"{name}-{role}-{region}-to-db-{db_region}"
                    if region == db_region:
                        aws.vpc.SecurityGroupIngressRule(
                            f"{rule}-in", security_group_id=db_sg.id,
                            referenced_security_group_id=fn_sg.id, ip_protocol="tcp",
                            from_port=port, to_port=port, description=f"{role} functions",
                            opts=self._on(db_region),
                        )
                        aws.vpc.SecurityGroupEgressRule(
                            f"{rule}-out", security_group_id=fn_sg.id,
                            referenced_security_group_id=db_sg.id, ip_protocol="tcp",
                            from_port=port, to_port=port, description=f"database in {db_region}",
                            opts=self._on(region),
                        )
                        continue
                    for i, cidr in enumerate(cidrs[db_region]):
                        aws.vpc.SecurityGroupEgressRule(
                            f"{rule}-out-{i}", security_group_id=fn_sg.id, cidr_ipv4=cidr,
                            ip_protocol="tcp", from_port=port, to_port=port,
                            description=f"database in {db_region} (peered VPC)",
                            opts=self._on(region),
                        )
                # Both roles share the region's subnets, so one rule per subnet admits both.
                if region != db_region:
                    for i, cidr in enumerate(cidrs[region]):
                        aws.vpc.SecurityGroupIngressRule(
                            f"{name}-db-sg-{db_region}-from-{region}-{i}",
                            security_group_id=db_sg.id, cidr_ipv4=cidr, ip_protocol="tcp",
                            from_port=port, to_port=port,
                            description=f"wrappers and data monitor in {region} (peered VPC)",
                            opts=self._on(db_region),
                        )

    def function_vpc(self, region: str, role: str) -> aws.lambda_.FunctionVpcConfigArgs | None:
        """VPC config for a wrapper (``role="wrapper"``) or the data monitor in ``region``;
        ``None`` when the engine needs no VPC (DynamoDB)."""
        groups = {"wrapper": self.wrapper_security_groups,
                  "monitor": self.monitor_security_groups}[role]
        if region not in groups:
            return None
        return aws.lambda_.FunctionVpcConfigArgs(
            subnet_ids=self._subnets[region], security_group_ids=[groups[region].id]
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
