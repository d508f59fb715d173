"""The AWS topology: every layer in every region, and a monitor per layer per region.

This module only wires. What each monitor may probe and switch is computed here from the
layers' outputs and handed to ``LayerMonitor`` as data (probes, switch targets, a policy),
so tests can read the wiring from the registered resources.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pulumi
import pulumi_aws as aws

from components.aws._common import METRIC_NAMESPACE, PolicyBuilder, secret_resource
from components.aws.control import ControlPlane
from components.aws.data import DataLayer
from components.aws.dns import FORCE_METRIC, DnsLayer
from components.aws.functions import LogicLayer, WrapperLayer
from components.aws.gateway import STAGE_VARIABLE, GatewayLayer
from components.aws.layers import DriversLayer
from components.aws.monitor import LayerMonitor
from components.aws.pointers import PointerStore
from components.spec import LAYERS, Layer, TopologySpec

PROBE_PREFIX = "_standby-probe/"


class AwsTopology:
    """Builds the AWS resources under ``parent``; see ``ActiveStandbyTopology``."""

    def __init__(
        self,
        parent: pulumi.ComponentResource,
        name: str,
        spec: TopologySpec,
        providers: dict[str, aws.Provider],
        dns_provider: aws.Provider,
        secret_values: dict[str, pulumi.Output[str]],
        project_dir: Path,
    ) -> None:
        self.spec = spec
        child = pulumi.ResourceOptions(parent=parent)
        first = providers[spec.all_regions[0]]
        self.account = aws.get_caller_identity_output(
            opts=pulumi.InvokeOutputOptions(provider=first, parent=parent)
        ).account_id
        self.zone_id = aws.route53.get_zone_output(
            name=spec.dns.zone,
            private_zone=False,
            opts=pulumi.InvokeOutputOptions(provider=dns_provider, parent=parent),
        ).zone_id

        self.control = ControlPlane(
            f"{name}-control", spec, providers, self.account, secret_values, child
        )
        self.pointers = PointerStore(f"{name}-pointers", spec, providers, child)
        self.data = DataLayer(f"{name}-data", spec, providers, self.account, child)
        # Only the SQL engines need drivers, and only the wrappers and the data monitor get them.
        self.drivers: DriversLayer | None = None
        if self.data.db_primary is not None:
            self.drivers = DriversLayer(f"{name}-drivers", spec.name, spec.all_regions,
                                        providers, project_dir,
                                        opts=pulumi.ResourceOptions(parent=self.data))

        logic_secrets = self._logic_secrets(name, spec, providers, secret_values, parent)
        self.wrappers: dict[str, WrapperLayer] = {}
        self.logic: dict[str, LogicLayer] = {}
        self.gateways: dict[str, GatewayLayer] = {}
        for region in spec.all_regions:
            p = providers[region]
            table = self.pointers.tables[region]
            self.wrappers[region] = WrapperLayer(
                f"{name}-wrapper-{region}", spec, region, p, self.account, table, self.data,
                child, layers=self._drivers(region),
            )
            self.logic[region] = LogicLayer(
                f"{name}-logic-{region}", spec, region, p, self.account, table,
                self.wrappers[region], logic_secrets.get(region, {}), project_dir, child,
            )
            self.gateways[region] = GatewayLayer(
                f"{name}-gateway-{region}", spec, region, p, self.account,
                self.logic[region], self.zone_id, dns_provider, child,
            )
        self.dns = DnsLayer(
            f"{name}-dns", spec, providers, dns_provider, self.zone_id, self.gateways, child
        )
        self.monitors: dict[Layer, dict[str, LayerMonitor]] = {layer: {} for layer in LAYERS}
        owners: dict[Layer, pulumi.ComponentResource] = {
            "dns": self.dns,
            "data": self.data,
        }
        for region in spec.all_regions:
            for layer in LAYERS:
                owner = owners.get(layer) or (
                    self.gateways[region] if layer == "gateway" else self.logic[region]
                )
                probes, switch, policy = getattr(self, f"_wire_{layer}")(region)
                self.monitors[layer][region] = LayerMonitor(
                    f"{name}-monitor-{layer}-{region}",
                    spec,
                    layer,
                    region,
                    providers[region],
                    self.account,
                    spec.for_region(region).monitor.for_layer(layer),
                    probes,
                    switch,
                    policy,
                    self.control.state_table,
                    self.control.control_region,
                    self.control.alert_topics[region],
                    self.control.alert_keys[region],
                    self.control.webhook_secrets[region],
                    pulumi.ResourceOptions(parent=owner),
                    vpc=self.data.function_vpc(region, "monitor") if layer == "data" else None,
                    layers=self._drivers(region) if layer == "data" else None,
                )
        self._lag_alarm(name, providers)
        self.dashboard = self._dashboard(name, providers)

    def _drivers(self, region: str) -> list[pulumi.Input[str]] | None:
        return [self.drivers.arns[region]] if self.drivers is not None else None

    # -- secrets for the logic functions ---------------------------------------------------

    def _logic_secrets(
        self,
        name: str,
        spec: TopologySpec,
        providers: dict[str, aws.Provider],
        secret_values: dict[str, pulumi.Output[str]],
        parent: pulumi.Resource,
    ) -> dict[str, dict[str, pulumi.Input[str]]]:
        out: dict[str, dict[str, pulumi.Input[str]]] = {}
        for region in spec.all_regions:
            for key, ref in spec.for_region(region).logic.secret_env.items():
                if ref.secret_store is not None:
                    secret_resource(ref.secret_store)  # a name or a bad ARN fails here
                    out.setdefault(region, {})[key] = ref.secret_store
                    continue
                assert ref.config is not None
                o = pulumi.ResourceOptions(parent=parent, provider=providers[region])
                secret = aws.secretsmanager.Secret(
                    f"{name}-logic-secret-{region}-{key.lower()}",
                    name_prefix=f"{spec.name}/logic/{key}-",
                    recovery_window_in_days=7,
                    opts=o,
                )
                aws.secretsmanager.SecretVersion(
                    f"{name}-logic-secret-{region}-{key.lower()}-value",
                    secret_id=secret.id,
                    secret_string=secret_values[ref.config],
                    opts=o,
                )
                out.setdefault(region, {})[key] = secret.arn
        return out

    # -- wiring: what each layer's monitor probes and may switch -----------------------------
    #
    # A monitor's vantage point is its region; it votes on the scopes of the region groups its
    # region belongs to (its peers), never on unrelated groups. That keeps each monitor's
    # environment and policy the size of its group, and the whole plan linear in the groups.

    def _peers(self, region: str) -> list[str]:
        seen: dict[str, None] = {}
        for g in self.spec.region_groups:
            if region in (g.primary, g.standby):
                seen.setdefault(g.primary)
                seen.setdefault(g.standby)
        return list(seen)

    def _arn(self, service: str, region: str, suffix: pulumi.Input[str]) -> pulumi.Output[str]:
        return pulumi.Output.concat(
            "arn:aws:", service, ":", region, ":", self.account, ":", suffix
        )

    def _wire_dns(self, region: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]], PolicyBuilder]:  # noqa: E501
        spec = self.spec
        peers = self._peers(region)
        probes = [
            {
                "scope": r,
                "kind": "http",
                "url": pulumi.Output.concat("https://", gw.endpoint_host, gw.health_path),
                "expect_status": 200,
            }
            for r, gw in self.gateways.items()
            if r in peers
        ]
        policy = PolicyBuilder()
        switch: list[dict[str, Any]] = []
        if spec.dns.mode == "health_check":
            for r in peers:
                switch.append(
                    {
                        "scope": r,
                        "kind": "route53_health_metrics",
                        "region": r,
                        "namespace": METRIC_NAMESPACE,
                        "dimensions": {"Topology": spec.name, "Region": r},
                        "force_metric": FORCE_METRIC,
                        "force_alarm": self.dns.force_alarms[r].name,
                    }
                )
            policy.allow(
                ["cloudwatch:DescribeAlarms"], [self.dns.force_alarms[r].arn for r in peers]
            )
            # Only the DNS monitor publishes a metric through the API (its force metric); the
            # other metrics are EMF log lines, which need no permission.
            policy.allow(
                ["cloudwatch:PutMetricData"],
                ["*"],
                condition={"StringEquals": {"cloudwatch:namespace": METRIC_NAMESPACE}},
            )
        else:
            groups = [g for g in spec.region_groups if region in (g.primary, g.standby)]
            for group in groups:
                switch.append(
                    {
                        "scope": group.name,
                        "kind": "route53_record",
                        "zone_id": self.zone_id,
                        "name": self.dns.pair_names[group.name],
                        "type": "CNAME",
                        "ttl": spec.dns.ttl_s,
                        "values": {
                            "primary": self.gateways[group.primary].domain_target,
                            "standby": self.gateways[group.standby].domain_target,
                        },
                        "regions": {"primary": group.primary, "standby": group.standby},
                    }
                )
            policy.allow(
                ["route53:ChangeResourceRecordSets", "route53:ListResourceRecordSets"],
                [pulumi.Output.concat("arn:aws:route53:::hostedzone/", self.zone_id)],
                condition={
                    "ForAllValues:StringEquals": {
                        "route53:ChangeResourceRecordSetsNormalizedRecordNames": sorted(
                            self.dns.pair_names[g.name] for g in groups
                        )
                    }
                },
            )
        return probes, switch, policy

    def _wire_gateway(self, region: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]], PolicyBuilder]:  # noqa: E501
        probes: list[dict[str, Any]] = []
        switch: list[dict[str, Any]] = []
        policy = PolicyBuilder()
        for r in self._peers(region):
            gw, logic = self.gateways[r], self.logic[r]
            probes.append(
                {"scope": r, "kind": "http", "expect_status": 200,
                 "url": pulumi.Output.concat("https://", gw.endpoint_host, gw.health_path)}
            )
            for side in ("primary", "standby"):
                probes.append(
                    {"scope": r, "kind": "lambda", "side": side, "function": logic.arns[side]}
                )
            if gw.kind == "rest":
                switch.append(
                    {
                        "scope": r,
                        "kind": "apigw_stage_variable",
                        "region": r,
                        "rest_api_id": gw.api_id,
                        "stage": gw.stage_name,
                        "variable": STAGE_VARIABLE,
                        "values": {"primary": logic.names["primary"],
                                   "standby": logic.names["standby"]},
                    }
                )
                target = pulumi.Output.concat(
                    "arn:aws:apigateway:", r, "::/restapis/", gw.api_id, "/stages/", gw.stage_name
                )
            else:
                assert gw.integration_id is not None
                switch.append(
                    {
                        "scope": r,
                        "kind": "apigw_integration",
                        "region": r,
                        "api_id": gw.api_id,
                        "integration_id": gw.integration_id,
                        "values": {"primary": logic.arns["primary"],
                                   "standby": logic.arns["standby"]},
                    }
                )
                target = pulumi.Output.concat(
                    "arn:aws:apigateway:", r, "::/apis/", gw.api_id, "/integrations/",
                    gw.integration_id,
                )
            policy.allow(["apigateway:GET", "apigateway:PATCH"], [target])
            policy.allow(["lambda:InvokeFunction"], list(logic.arns.values()))
        return probes, switch, policy

    def _wire_logic(self, region: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]], PolicyBuilder]:  # noqa: E501
        probes: list[dict[str, Any]] = []
        switch: list[dict[str, Any]] = []
        policy = PolicyBuilder()
        for r in self._peers(region):
            wrapper = self.wrappers[r]
            for side in ("primary", "standby"):
                probes.append(
                    {"scope": r, "kind": "lambda", "side": side, "function": wrapper.arns[side]}
                )
            table = self.pointers.tables[r]
            switch.append(
                {
                    "scope": r,
                    "kind": "pointer",
                    "region": r,
                    "table": table.name,
                    "key": "wrapper",
                    "values": {"primary": "primary", "standby": "standby"},
                }
            )
            policy.allow(["lambda:InvokeFunction"], list(wrapper.arns.values()))
            policy.allow(
                ["dynamodb:GetItem", "dynamodb:UpdateItem"],
                [table.arn],
                condition={"ForAllValues:StringEquals": {"dynamodb:LeadingKeys": ["wrapper"]}},
            )
        return probes, switch, policy

    def _wire_data(self, region: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]], PolicyBuilder]:  # noqa: E501
        data = self.data
        policy = PolicyBuilder()
        probes: list[dict[str, Any]] = []
        switch: list[dict[str, Any]] = []
        data_regions = [data.primary_region, data.standby_region]
        if data.table is not None:
            for r in data_regions:
                if r in data.table_arns:
                    probes.append(
                        {"scope": "data", "kind": "dynamodb", "region": r,
                         "table": data.table.name, "side": _side(data, r)}
                    )
            policy.allow(["dynamodb:DescribeTable"], list(data.table_arns.values()))
        if data.db_primary is not None:
            # This monitor's own region's copy of the secret: readable in a region outage.
            secret_arn = data.db_secret_arns[region]
            instances = [(data.primary_region, data.db_primary)]
            if data.db_replica is not None:
                instances.append((data.standby_region, data.db_replica))
            for r, inst in instances:
                probes.append(
                    {"scope": "data", "kind": "sql", "engine": data.engine, "region": r,
                     "side": _side(data, r), "host": inst.address, "port": inst.port,
                     "database": self.spec.database.name, "secret_arn": secret_arn,
                     "instance_id": inst.identifier}
                )
            policy.allow(["rds:DescribeDBInstances"], [inst.arn for _, inst in instances])
            policy.allow(["secretsmanager:GetSecretValue"], [secret_arn])
            if data.db_replica is not None:
                switch.append(
                    {
                        "scope": "data",
                        "kind": "rds_promote",
                        "region": data.standby_region,
                        "instance_id": data.db_replica.identifier,
                        "max_lag_s": self.spec.database.max_lag_s,
                    }
                )
                policy.allow(["rds:PromoteReadReplica"], [data.db_replica.arn])
        for r, bucket in data.buckets.items():
            probes.append(
                {"scope": "data", "kind": "bucket", "region": r, "bucket": bucket.bucket,
                 "side": _side(data, r), "probe_key": PROBE_PREFIX}
            )
        if data.buckets:
            policy.allow(["s3:ListBucket"], [b.arn for b in data.buckets.values()])
            policy.allow(
                ["s3:GetObject", "s3:PutObject"],
                [pulumi.Output.concat(b.arn, "/", PROBE_PREFIX, "*")
                 for b in data.buckets.values()],
            )
        tables = self.pointers.tables
        switch.append(
            {
                "scope": "data",
                "kind": "pointer_all",
                "tables": [{"region": r, "table": t.name} for r, t in tables.items()],
                "key": "data",
                "values": {"primary": data.primary_region, "standby": data.standby_region},
            }
        )
        policy.allow(
            ["dynamodb:GetItem", "dynamodb:UpdateItem"],
            [t.arn for t in tables.values()],
            condition={"ForAllValues:StringEquals": {"dynamodb:LeadingKeys": ["data"]}},
        )
        return probes, switch, policy

    # -- observability ---------------------------------------------------------------------

    def _lag_alarm(self, name: str, providers: dict[str, aws.Provider]) -> None:
        data = self.data
        if data.db_replica is None:
            return
        r = data.standby_region
        aws.cloudwatch.MetricAlarm(
            f"{name}-replica-lag",
            name=f"{self.spec.name}-replica-lag",
            alarm_description=(
                f"Replica lag above database.max_lag_s ({self.spec.database.max_lag_s} s): "
                "the data monitor will refuse to promote"
            ),
            namespace="AWS/RDS",
            metric_name="ReplicaLag",
            dimensions={"DBInstanceIdentifier": data.db_replica.identifier},
            statistic="Maximum",
            period=60,
            evaluation_periods=2,
            threshold=self.spec.database.max_lag_s,
            comparison_operator="GreaterThanThreshold",
            treat_missing_data="breaching",
            alarm_actions=[self.control.alert_topics[r].arn],
            ok_actions=[self.control.alert_topics[r].arn],
            opts=pulumi.ResourceOptions(parent=data, provider=providers[r]),
        )

    def _dashboard(self, name: str, providers: dict[str, aws.Provider]) -> aws.cloudwatch.Dashboard:
        spec = self.spec
        region = self.control.control_region
        widgets: list[dict[str, Any]] = []
        y = 0
        for layer in LAYERS:
            for i, (metric, title) in enumerate(
                (("ActiveSide", "active side (0 primary, 1 standby)"),
                 ("ProbeLatency", "probe latency (ms)"),
                 ("Switches", "switches"))
            ):
                widgets.append(
                    {
                        "type": "metric",
                        "x": i * 8,
                        "y": y,
                        "width": 8,
                        "height": 6,
                        "properties": {
                            "title": f"{layer}: {title}",
                            "region": region,
                            "stat": "Sum" if metric == "Switches" else "Maximum",
                            "period": 60,
                            "metrics": [
                                [METRIC_NAMESPACE, metric, "Topology", spec.name, "Layer", layer]
                            ],
                        },
                    }
                )
            y += 6
        return aws.cloudwatch.Dashboard(
            f"{name}-dashboard",
            dashboard_name=f"{spec.name}-standby",
            dashboard_body=json.dumps({"widgets": widgets}),
            opts=pulumi.ResourceOptions(parent=self.control, provider=providers[region]),
        )

    def dashboard_url(self) -> pulumi.Output[str]:
        region = self.control.control_region
        return pulumi.Output.concat(
            "https://", region, ".console.aws.amazon.com/cloudwatch/home?region=", region,
            "#dashboards:name=", self.dashboard.dashboard_name,
        )


def _side(data: DataLayer, region: str) -> str:
    return "primary" if region == data.primary_region else "standby"
