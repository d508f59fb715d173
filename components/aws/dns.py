"""DNS layer: Route 53 failover records, health checks, and the monitor's force alarm.

``health_check`` mode (default): each region gets
  E  an HTTPS health check of its gateway's deep-health path (interval/threshold from spec),
  F  a CloudWatch-alarm check on ``ForceFailover`` (healthy unless the monitor forces),
  C  a calculated check: healthy when both E and F are.
So: E fails -> failover; the monitor forces (F) -> failover even if Route 53's checkers still
see 200. The monitor only publishes a metric (regional data plane): no record edit during an
outage, because record edits go through the Route 53 control plane in us-east-1. There is no
"veto" (keep a region up while E fails): nothing ever decided to veto, so it was removed.

The force alarm is what Route 53 supports: a standard-resolution metric and a 60 s period
(a shorter period over a standard-resolution metric gets no data 5 periods in 6). The monitor
publishes the metric every round (its heartbeat), so each minute holds a data point. One
forcing data point in ``FORCE_EVALUATION_PERIODS`` minutes keeps the alarm in ALARM, and
missing data is ignored (``missing``); with no data at all the alarm is INSUFFICIENT_DATA and
Route 53 keeps the last status. So a forced region stays out while the monitor skips a
minute (or stops), and an unforced region is never taken out by missing data.

``direct`` mode: one record the DNS monitor rewrites (UPSERT). Pulumi ignores its target
after creation so ``pulumi up`` does not undo a switch.

Records are CNAMEs (not aliases) so that ``dns.ttl_s`` is what resolvers honour. Nearby
access: per group a failover pair at ``<group>.<domain>``, and at ``<domain>`` one latency
or geolocation CNAME per line pointing at its group's pair.
"""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_aws as aws

from components.aws._common import METRIC_NAMESPACE, PACKAGE
from components.aws.gateway import GatewayLayer
from components.spec import TopologySpec

FORCE_METRIC = "ForceFailover"
#: Route 53 CloudWatch-alarm health checks support standard-resolution metrics only.
FORCE_PERIOD_S = 60
#: ALARM while at least one of the last 3 minutes holds a forcing data point.
FORCE_EVALUATION_PERIODS = 3
FORCE_DATAPOINTS_TO_ALARM = 1
FORCE_MISSING_DATA = "missing"
FORCE_INSUFFICIENT_HEALTH = "LastKnownStatus"


class DnsLayer(pulumi.ComponentResource):
    zone_id: pulumi.Output[str]
    domain: str
    endpoint_checks: dict[str, aws.route53.HealthCheck]
    calculated_checks: dict[str, aws.route53.HealthCheck]
    force_alarms: dict[str, aws.cloudwatch.MetricAlarm]
    records: list[aws.route53.Record]
    pair_names: dict[str, str]
    """Group name -> the record name its failover pair (or direct record) lives at."""

    def __init__(
        self,
        name: str,
        spec: TopologySpec,
        providers: dict[str, aws.Provider],
        dns_provider: aws.Provider,
        zone_id: pulumi.Input[str],
        gateways: dict[str, GatewayLayer],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__(f"{PACKAGE}:aws:DnsLayer", name, None, opts)
        self.zone_id = pulumi.Output.from_input(zone_id)
        self.domain = spec.domain
        self.endpoint_checks, self.calculated_checks = {}, {}
        self.force_alarms = {}
        self.records, self.pair_names = [], {}
        g_opts = pulumi.ResourceOptions(parent=self, provider=dns_provider)
        m = spec.monitor.dns
        ttl = spec.dns.ttl_s
        tags = {"standby:topology": spec.name, "standby:layer": "dns"}

        if spec.dns.mode == "health_check":
            for region in spec.all_regions:
                gw = gateways[region]
                r_opts = pulumi.ResourceOptions(parent=self, provider=providers[region])
                endpoint = aws.route53.HealthCheck(
                    f"{name}-endpoint-{region}",
                    type="HTTPS",
                    fqdn=gw.endpoint_host,
                    port=443,
                    resource_path=gw.health_path,
                    request_interval=m.interval_s,
                    failure_threshold=m.failure_threshold,
                    measure_latency=True,
                    enable_sni=True,
                    reference_name=f"{spec.name}-{region}"[:64],
                    tags={**tags, "Name": f"{spec.name} gateway {region}"},
                    opts=g_opts,
                )
                force = self._force_alarm(name, spec, region, r_opts)
                force_check = aws.route53.HealthCheck(
                    f"{name}-force-{region}",
                    type="CLOUDWATCH_METRIC",
                    cloudwatch_alarm_name=force.name,
                    cloudwatch_alarm_region=region,
                    insufficient_data_health_status=FORCE_INSUFFICIENT_HEALTH,
                    tags={**tags, "Name": f"{spec.name} force {region}"},
                    opts=g_opts,
                )
                calculated = aws.route53.HealthCheck(
                    f"{name}-calculated-{region}",
                    type="CALCULATED",
                    child_healthchecks=[endpoint.id, force_check.id],
                    child_health_threshold=2,
                    tags={**tags, "Name": f"{spec.name} {region} (endpoint+force)"},
                    opts=g_opts,
                )
                self.endpoint_checks[region] = endpoint
                self.force_alarms[region] = force
                self.calculated_checks[region] = calculated

        groups = spec.region_groups
        nearby = len(groups) > 1 or spec.groups is not None
        for group in groups:
            pair = f"{group.name}.{self.domain}" if nearby else self.domain
            self.pair_names[group.name] = pair
            if spec.dns.mode == "health_check":
                for role, region in (("PRIMARY", group.primary), ("SECONDARY", group.standby)):
                    self.records.append(
                        aws.route53.Record(
                            f"{name}-{group.name}-{role.lower()}",
                            zone_id=self.zone_id,
                            name=pair,
                            type="CNAME",
                            ttl=ttl,
                            records=[gateways[region].domain_target],
                            set_identifier=f"{group.name}-{role.lower()}",
                            failover_routing_policies=[{"type": role}],
                            health_check_id=self.calculated_checks[region].id,
                            opts=g_opts,
                        )
                    )
            else:
                self.records.append(
                    aws.route53.Record(
                        f"{name}-{group.name}-active",
                        zone_id=self.zone_id,
                        name=pair,
                        type="CNAME",
                        ttl=ttl,
                        records=[gateways[group.primary].domain_target],
                        # The DNS monitor owns the target after creation.
                        opts=pulumi.ResourceOptions.merge(
                            g_opts, pulumi.ResourceOptions(ignore_changes=["records"])
                        ),
                    )
                )
        if nearby:
            for group in groups:
                for line in group.lines:
                    routing: dict[str, Any] = {}
                    if line == "latency":
                        routing["latency_routing_policies"] = [{"region": group.primary}]
                    elif line == "default":
                        routing["geolocation_routing_policies"] = [{"country": "*"}]
                    elif line.startswith("geo:"):
                        routing["geolocation_routing_policies"] = [{"continent": line[4:]}]
                    else:
                        routing["geolocation_routing_policies"] = [{"country": line[8:]}]
                    ident = f"{group.name}-{line.replace(':', '-').replace('*', 'default')}"
                    self.records.append(
                        aws.route53.Record(
                            f"{name}-{ident}",
                            zone_id=self.zone_id,
                            name=self.domain,
                            type="CNAME",
                            ttl=ttl,
                            records=[self.pair_names[group.name]],
                            set_identifier=ident,
                            opts=g_opts,
                            **routing,
                        )
                    )
        self.register_outputs({"domain": self.domain})

    def _force_alarm(
        self, name: str, spec: TopologySpec, region: str, opts: pulumi.ResourceOptions
    ) -> aws.cloudwatch.MetricAlarm:
        return aws.cloudwatch.MetricAlarm(
            f"{name}-{FORCE_METRIC.lower()}-{region}",
            name=f"{spec.name}-{FORCE_METRIC}-{region}",
            alarm_description=(
                f"Route 53 reads this: ALARM = the monitor forces failover of {region}"
            ),
            namespace=METRIC_NAMESPACE,
            metric_name=FORCE_METRIC,
            dimensions={"Topology": spec.name, "Region": region},
            statistic="Maximum",
            period=FORCE_PERIOD_S,
            evaluation_periods=FORCE_EVALUATION_PERIODS,
            datapoints_to_alarm=FORCE_DATAPOINTS_TO_ALARM,
            threshold=1,
            comparison_operator="GreaterThanOrEqualToThreshold",
            treat_missing_data=FORCE_MISSING_DATA,
            tags={"standby:topology": spec.name, "standby:layer": "dns"},
            opts=opts,
        )
