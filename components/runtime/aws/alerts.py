"""Alert channels on AWS: the SNS topic, and webhooks whose URLs are in Secrets Manager."""

from __future__ import annotations

import os
from collections.abc import Sequence

from botocore.exceptions import BotoCoreError, ClientError

from components.runtime.aws.clients import Clients, region_of_arn
from components.runtime.config import Webhook
from components.runtime.notify import Alert, Sender, post_webhook

WEBHOOK_TIMEOUT_S = 3.0


def sns_sender(clients: Clients, topic_arn: str) -> Sender:
    def send(alert: Alert) -> tuple[bool, str]:
        try:
            clients.get("sns", region_of_arn(topic_arn, "us-east-1")).publish(
                TopicArn=topic_arn, Subject=alert.title[:99], Message=alert.markdown())
        except (ClientError, BotoCoreError) as exc:
            return False, str(exc)
        return True, "published"

    return send


def webhook_sender(clients: Clients, hook: Webhook) -> Sender:
    """The URL is read once, on first use, from the secret or the environment; it is never
    logged (only the channel kind is)."""
    cache: dict[str, str] = {}

    def url() -> str:
        if "url" not in cache:
            if hook.secret is not None:
                arn = hook.secret.ref
                out = clients.get("secretsmanager",
                                  hook.secret.region or region_of_arn(arn, "us-east-1"))
                cache["url"] = out.get_secret_value(SecretId=arn)["SecretString"]
            else:
                value = os.environ.get(hook.url_env or "")
                if not value:
                    raise LookupError(f"environment variable {hook.url_env} is not set")
                cache["url"] = value
        return cache["url"]

    def send(alert: Alert) -> tuple[bool, str]:
        return post_webhook(hook.kind, url(), alert, WEBHOOK_TIMEOUT_S)

    return send


def aws_channels(clients: Clients, topic_arn: str | None,
                 hooks: Sequence[Webhook]) -> dict[str, Sender]:
    channels: dict[str, Sender] = {}
    if topic_arn:
        channels["sns"] = sns_sender(clients, topic_arn)
    for i, hook in enumerate(hooks):
        channels[f"{hook.kind}-{i}"] = webhook_sender(clients, hook)
    return channels
