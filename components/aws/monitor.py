"""One monitor function for one layer, running in one region (a vantage point).

Every monitor of a layer probes every scope of that layer (e.g. both regions' gateways), so
the monitors in both regions can vote; the one holding the lease switches when the quorum
agrees. EventBridge fires at most once a minute, so when the probe interval is shorter the
function probes in a loop for ``STANDBY_LOOP_S`` seconds per invocation.

The environment is the contract with the run-time code (``components.runtime``):
  STANDBY_LAYER / STANDBY_REGION / STANDBY_TOPOLOGY
  STANDBY_SETTINGS   monitor settings (JSON)
  STANDBY_PROBES     what to probe (JSON list, each with a ``scope``)
  STANDBY_SWITCH     what it may switch and how (JSON list, each with a ``scope``)
  STANDBY_STATE_TABLE / STANDBY_STATE_REGION   lease + switch log
  STANDBY_ALERT_TOPIC / STANDBY_WEBHOOKS       where alerts go (webhook URLs by secret ARN)
"""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_aws as aws

from components.archives import runtime_archive
from components.aws._common import (
    METRIC_NAMESPACE,
    PACKAGE,
    RUNTIME_PYTHON,
    FunctionParts,
    PolicyBuilder,
    lambda_function,
    secret_resource,
)
from components.aws.iam_actions import SNS_KMS_ACTIONS, STATE_STORE_ACTIONS
from components.budget import MONITOR_LOOP_S
from components.naming import monitor_function
from components.spec import SCHEDULER_FLOOR_S, Layer, MonitorSettings, TopologySpec

MONITOR_HANDLER = "components.runtime.aws.monitor.handler"
SCHEDULE = "rate(1 minute)"
#: The budget's detection model reads the same figure (``components.budget``).
LOOP_S = int(MONITOR_LOOP_S["aws"])
TIMEOUT_S = 60


class LayerMonitor(pulumi.ComponentResource):
    layer: Layer
    region: str
    function: FunctionParts
    function_name: str
    schedule: aws.cloudwatch.EventRule
    errors_alarm: aws.cloudwatch.MetricAlarm

    def __init__(
        self,
        name: str,
        spec: TopologySpec,
        layer: Layer,
        region: str,
        provider: aws.Provider,
        account: pulumi.Input[str],
        settings: MonitorSettings,
        probes: list[dict[str, Any]],
        switch: list[dict[str, Any]],
        policy: PolicyBuilder,
        state_table: aws.dynamodb.Table,
        state_region: str,
        alert_topic: aws.sns.Topic,
        alert_key: aws.kms.Key,
        webhooks: list[tuple[str, pulumi.Output[str]]],
        opts: pulumi.ResourceOptions | None = None,
        *,
        vpc: aws.lambda_.FunctionVpcConfigArgs | None = None,
        layers: list[pulumi.Input[str]] | None = None,
    ) -> None:
        """``vpc`` and ``layers``: the SQL data monitor probes a private database, so it runs
        in the region's VPC with the drivers layer; every other monitor runs outside a VPC."""
        super().__init__(f"{PACKAGE}:aws:LayerMonitor", name, None, opts)
        self.layer, self.region = layer, region
        o = pulumi.ResourceOptions(parent=self, provider=provider)
        self.function_name = monitor_function(spec.name, layer, region)
        policy.allow(list(STATE_STORE_ACTIONS), [state_table.arn])
        policy.allow(["sns:Publish"], [alert_topic.arn])
        # The topic is encrypted with a customer-managed key: SNS encrypts on the publisher's
        # behalf, so the publisher needs these on the key, and only through SNS.
        policy.allow(
            list(SNS_KMS_ACTIONS),
            [alert_key.arn],
            condition={"StringEquals": {"kms:ViaService": f"sns.{region}.amazonaws.com"}},
        )
        if webhooks:
            policy.allow(
                ["secretsmanager:GetSecretValue"],
                [pulumi.Output.from_input(arn).apply(secret_resource) for _, arn in webhooks],
            )
        loop = LOOP_S if settings.interval_s < SCHEDULER_FLOOR_S["aws"] else 0
        env: dict[str, pulumi.Input[str]] = {
            "STANDBY_TOPOLOGY": spec.name,
            "STANDBY_LAYER": layer,
            "STANDBY_REGION": region,
            "STANDBY_SETTINGS": settings.model_dump_json(),
            "STANDBY_PROBES": pulumi.Output.json_dumps(probes),
            "STANDBY_SWITCH": pulumi.Output.json_dumps(switch),
            "STANDBY_STATE_TABLE": state_table.name,
            "STANDBY_STATE_REGION": state_region,
            "STANDBY_ALERT_TOPIC": alert_topic.arn,
            "STANDBY_WEBHOOKS": pulumi.Output.json_dumps(
                [{"kind": kind, "secret_arn": arn} for kind, arn in webhooks]
            ),
            "STANDBY_LOOP_S": str(loop),
            "STANDBY_METRIC_NAMESPACE": METRIC_NAMESPACE,
        }
        self.function = lambda_function(
            f"{name}-fn",
            function_name=self.function_name,
            region=region,
            account=account,
            code=runtime_archive(),
            handler=MONITOR_HANDLER,
            runtime=RUNTIME_PYTHON,
            memory_mb=256,
            timeout_s=TIMEOUT_S,
            env=env,
            policy=policy,
            parent=self,
            provider=provider,
            vpc=vpc,
            layers=layers,
            tags={"standby:topology": spec.name, "standby:layer": layer},
        )
        fn = self.function.function
        self.schedule = aws.cloudwatch.EventRule(
            f"{name}-schedule",
            schedule_expression=SCHEDULE,
            description=f"{spec.name}: run the {layer} monitor in {region}",
            tags={"standby:topology": spec.name},
            opts=o,
        )
        aws.cloudwatch.EventTarget(
            f"{name}-target",
            rule=self.schedule.name,
            arn=fn.arn,
            input=pulumi.Output.json_dumps({"source": "schedule", "layer": layer}),
            opts=o,
        )
        aws.lambda_.Permission(
            f"{name}-allow-schedule",
            action="lambda:InvokeFunction",
            function=fn.name,
            principal="events.amazonaws.com",
            source_arn=self.schedule.arn,
            opts=o,
        )
        self.errors_alarm = aws.cloudwatch.MetricAlarm(
            f"{name}-errors",
            name=f"{self.function_name}-errors",
            alarm_description=f"The {layer} monitor in {region} is failing: no automatic switch",
            namespace="AWS/Lambda",
            metric_name="Errors",
            dimensions={"FunctionName": fn.name},
            statistic="Sum",
            period=60,
            evaluation_periods=3,
            threshold=1,
            comparison_operator="GreaterThanOrEqualToThreshold",
            treat_missing_data="notBreaching",
            alarm_actions=[alert_topic.arn],
            ok_actions=[alert_topic.arn],
            opts=o,
        )
        self.register_outputs({"function": self.function_name})
