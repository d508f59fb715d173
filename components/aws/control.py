"""Control plane: the state/lease table, alert topics and webhook secrets.

The state and lease table is a plain (not global) DynamoDB table in one control region,
because the lease needs strongly consistent conditional writes: an eventually consistent
global table lets both sides of a partition win. The control region defaults to the data
standby region, so it survives the loss of the primary region. If the control region is
unreachable, monitors cannot take the lease and switch nothing (safety before speed).
"""

from __future__ import annotations

import pulumi
import pulumi_aws as aws

from components import naming
from components.aws._common import PACKAGE
from components.spec import TopologySpec


class ControlPlane(pulumi.ComponentResource):
    state_table: aws.dynamodb.Table
    control_region: str
    alert_topics: dict[str, aws.sns.Topic]
    """One topic per region: CloudWatch alarms can only notify a topic in their own region."""
    webhook_secrets: dict[str, list[tuple[str, pulumi.Output[str]]]]
    """Per region: (kind, secret ARN) of every webhook URL."""

    def __init__(
        self,
        name: str,
        spec: TopologySpec,
        providers: dict[str, aws.Provider],
        secret_values: dict[str, pulumi.Output[str]],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__(f"{PACKAGE}:aws:ControlPlane", name, None, opts)
        self.control_region = spec.data_standby_region
        tags = {"standby:topology": spec.name}
        ctl = pulumi.ResourceOptions(parent=self, provider=providers[self.control_region])
        self.state_table = aws.dynamodb.Table(
            f"{name}-state",
            name=naming.state_table(spec.name),
            billing_mode="PAY_PER_REQUEST",
            hash_key="pk",
            range_key="sk",
            attributes=[{"name": "pk", "type": "S"}, {"name": "sk", "type": "S"}],
            point_in_time_recovery={"enabled": True},
            server_side_encryption={"enabled": True},
            ttl={"attribute_name": "expires_at", "enabled": True},
            tags=tags,
            opts=ctl,
        )
        self.alert_topics = {}
        self.webhook_secrets = {}
        for region in spec.all_regions:
            ropts = pulumi.ResourceOptions(parent=self, provider=providers[region])
            topic = aws.sns.Topic(
                f"{name}-alerts-{region}",
                name=f"{spec.name}-standby-alerts",
                kms_master_key_id="alias/aws/sns",
                tags=tags,
                opts=ropts,
            )
            self.alert_topics[region] = topic
            for i, email in enumerate(spec.alerting.emails):
                aws.sns.TopicSubscription(
                    f"{name}-alerts-{region}-email-{i}",
                    topic=topic.arn, protocol="email", endpoint=email, opts=ropts,
                )
            for i, phone in enumerate(spec.alerting.sms):
                aws.sns.TopicSubscription(
                    f"{name}-alerts-{region}-sms-{i}",
                    topic=topic.arn, protocol="sms", endpoint=phone, opts=ropts,
                )
            secrets: list[tuple[str, pulumi.Output[str]]] = []
            for i, hook in enumerate(spec.alerting.webhooks):
                if hook.url.secret_store is not None:
                    secrets.append((hook.kind, pulumi.Output.from_input(hook.url.secret_store)))
                    continue
                assert hook.url.config is not None
                secret = aws.secretsmanager.Secret(
                    f"{name}-webhook-{region}-{i}",
                    name_prefix=f"{spec.name}/standby/webhook-{hook.kind}-",
                    description=f"{hook.kind} webhook URL for standby alerts",
                    recovery_window_in_days=7,
                    tags=tags,
                    opts=ropts,
                )
                aws.secretsmanager.SecretVersion(
                    f"{name}-webhook-{region}-{i}-value",
                    secret_id=secret.id,
                    secret_string=secret_values[hook.url.config],
                    opts=ropts,
                )
                secrets.append((hook.kind, secret.arn))
            self.webhook_secrets[region] = secrets
        self.register_outputs({"state_table": self.state_table.name})
