"""The data client in a Lambda logic function: wrappers by Lambda Invoke, the wrapper pointer
from the region's pointer table. See ``components.runtime.data_client``."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from components.runtime.aws.clients import Clients, region_of_arn
from components.runtime.config import env_number
from components.runtime.data_client import DataClient, InvokeFailed
from components.runtime.errors import ConfigError

#: One try per wrapper: the fallback to the other wrapper is the retry.
INVOKE_CONFIG = Config(connect_timeout=1, read_timeout=8, retries={"max_attempts": 1})
ENV = ("STANDBY_REGION", "STANDBY_POINTER_TABLE", "STANDBY_WRAPPER_PRIMARY",
       "STANDBY_WRAPPER_STANDBY")


def from_env(env: Mapping[str, str] | None = None, clients: Clients | None = None) -> DataClient:
    env = os.environ if env is None else env
    problems = [f"{n}: missing" for n in ENV if not env.get(n)]
    cache_s = env_number(env, "STANDBY_POINTER_CACHE_S", 5.0, 0, 300, problems)
    if problems:
        raise ConfigError(problems)
    region = env["STANDBY_REGION"]
    clients = clients or Clients(config=INVOKE_CONFIG)

    def invoke(fn: str, req: dict[str, Any]) -> dict[str, Any]:
        try:
            out = clients.get("lambda", region_of_arn(fn, region)).invoke(
                FunctionName=fn, Payload=json.dumps(req).encode())
            body = out["Payload"].read()
        except (ClientError, BotoCoreError) as exc:
            raise InvokeFailed(f"{type(exc).__name__}: {str(exc)[:200]}") from None
        if out.get("FunctionError"):
            raise InvokeFailed(f"function error: {body[:200].decode(errors='replace')}")
        try:
            answer = json.loads(body)
        except ValueError:
            raise InvokeFailed("answer is not JSON") from None
        if not isinstance(answer, dict):
            raise InvokeFailed("answer is not a JSON object")
        return answer

    def pointer() -> str:
        item = clients.get("dynamodb", region).get_item(
            TableName=env["STANDBY_POINTER_TABLE"], Key={"pointer": {"S": "wrapper"}}
        ).get("Item") or {}
        return str(item.get("active", {}).get("S", ""))

    return DataClient(invoke, {"primary": env["STANDBY_WRAPPER_PRIMARY"],
                               "standby": env["STANDBY_WRAPPER_STANDBY"]}, pointer, cache_s)
