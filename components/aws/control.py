"""Control plane: the state/lease table, alert topics and webhook secrets.

The state and lease table is a plain (not global) DynamoDB table in one control region,
because the lease needs strongly consistent conditional writes: an eventually consistent
global table lets both sides of a partition win. The control region defaults to the data
standby region, so it survives the loss of the primary region. If the control region is
unreachable, monitors cannot take the lease and switch nothing (safety before speed).

Alert topics are encrypted with a customer-managed KMS key per region. The AWS-managed key
(``alias/aws/sns``) cannot be used: its key policy cannot be changed, so CloudWatch alarms
(monitor errors, replica lag) could not publish to the topic (AWS: "Amazon SNS topic
encryption ... CloudWatch alarms"). The key policy lets CloudWatch use the key; monitors
get ``kms:GenerateDataKey``/``kms:Decrypt`` on it through SNS only. Cost: 1 USD per key and
month, two keys for two regions.
"""

from __future__ import annotations

import json

import pulumi
import pulumi_aws as aws

from components import naming
from components.aws._common import PACKAGE, secret_resource
from components.spec import TopologySpec


class ControlPlane(pulumi.ComponentResource):
    state_table: aws.dynamodb.Table
    control_region: str
    alert_topics: dict[str, aws.sns.Topic]
    """One topic per region: CloudWatch alarms can only notify a topic in their own region."""
    alert_keys: dict[str, aws.kms.Key]
    """The KMS key each region's topic is encrypted with."""
    webhook_secrets: dict[str, list[tuple[str, pulumi.Output[str]]]]
    """Per region: (kind, secret ARN) of every webhook URL."""

    def __init__(
        self,
        name: str,
        spec: TopologySpec,
        providers: dict[str, aws.Provider],
        account: pulumi.Input[str],
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
        self.alert_topics, self.alert_keys = {}, {}
        self.webhook_secrets = {}
        for region in spec.all_regions:
            ropts = pulumi.ResourceOptions(parent=self, provider=providers[region])
            key = aws.kms.Key(
                f"{name}-alerts-key-{region}",
                description=f"{spec.name}: standby alert topic encryption ({region})",
                enable_key_rotation=True,
                deletion_window_in_days=30,
                policy=pulumi.Output.from_input(account).apply(alert_key_policy),
                tags=tags,
                opts=ropts,
            )
            topic = aws.sns.Topic(
                f"{name}-alerts-{region}",
                name=f"{spec.name}-standby-alerts",
                kms_master_key_id=key.arn,
                tags=tags,
                opts=ropts,
            )
            self.alert_keys[region] = key
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
                    secret_resource(hook.url.secret_store)  # a name or a bad ARN fails here
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


def alert_key_policy(account: str) -> str:
    """The alert key's policy: the account administers it (IAM policies then grant use), and
    CloudWatch may encrypt the messages its alarms publish to the topic."""
    return json.dumps({
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "AccountAdministers",
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:aws:iam::{account}:root"},
                "Action": "kms:*",
                "Resource": "*",
            },
            {
                "Sid": "CloudWatchAlarmsPublish",
                "Effect": "Allow",
                "Principal": {"Service": "cloudwatch.amazonaws.com"},
                "Action": ["kms:Decrypt", "kms:GenerateDataKey*"],
                # As in AWS's documented example for alarms on an encrypted topic; whether
                # CloudWatch passes aws:SourceAccount to KMS is not documented, so no condition.
                "Resource": "*",
            },
        ],
    }, sort_keys=True)
