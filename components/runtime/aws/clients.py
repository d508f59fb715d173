"""boto3 clients per (service, region), created once per invocation and shared."""

from __future__ import annotations

import json
import os
import threading
from typing import Any

import boto3
from botocore.config import Config

#: Monitors must fail fast: a hanging control-plane call is a failed switch, not a stuck one.
CLIENT_CONFIG = Config(connect_timeout=3, read_timeout=10, retries={"max_attempts": 2,
                                                                    "mode": "standard"})


class Clients:
    def __init__(self, endpoint_url: str | None = None, config: Config = CLIENT_CONFIG) -> None:
        self.endpoint_url = endpoint_url
        self.config = config
        self._lock = threading.Lock()
        self._cache: dict[tuple[str, str], Any] = {}
        self._session = boto3.session.Session()

    def get(self, service: str, region: str) -> Any:
        with self._lock:
            key = (service, region)
            if key not in self._cache:
                kwargs: dict[str, Any] = {"region_name": region, "config": self.config}
                service_env = f"AWS_ENDPOINT_URL_{service.upper().replace('-', '_')}"
                if self.endpoint_url and not os.environ.get(service_env):
                    kwargs["endpoint_url"] = self.endpoint_url
                make: Any = self._session.client  # service is a runtime string
                self._cache[key] = make(service, **kwargs)
            return self._cache[key]


def db_credentials(clients: Clients, secret_arn: str, default_region: str) -> tuple[str, str]:
    """``(username, password)`` from a database secret (the RDS-managed secret's shape).
    Raises ``LookupError`` naming the secret (never its value) when it cannot be read."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        secret = json.loads(clients.get("secretsmanager", region_of_arn(
            secret_arn, default_region)).get_secret_value(SecretId=secret_arn)["SecretString"])
        return str(secret["username"]), str(secret["password"])
    except (ClientError, BotoCoreError, KeyError, ValueError, TypeError) as exc:
        raise LookupError(f"database credentials from {secret_arn}: "
                          f"{type(exc).__name__}") from None


def region_of_arn(arn: str, default: str) -> str:
    parts = arn.split(":")
    return parts[3] if arn.startswith("arn:") and len(parts) > 3 and parts[3] else default


def error_code(exc: BaseException) -> str:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Code", ""))
    return ""
