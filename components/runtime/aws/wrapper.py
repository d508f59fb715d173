"""The wrapper function's AWS entry point: the cloud-neutral ``Wrapper`` over AWS backends
(pointer table, Secrets Manager, DynamoDB, S3)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from components.runtime.aws.data import AwsBackends
from components.runtime.errors import ConfigError
from components.runtime.observe import Log
from components.runtime.wrapper import Wrapper, WrapperHandler, load_config

_handler: WrapperHandler | None = None


def make_handler(env: Mapping[str, str], log: Log | None = None) -> WrapperHandler:
    cfg = load_config(env)
    return WrapperHandler(Wrapper(cfg, AwsBackends(cfg), log))


def handler(event: Any, context: Any = None) -> dict[str, Any]:
    """Lambda entry point: built once per container from the environment, then reused
    (a warm container may keep it; a cold one builds it again, which is always correct)."""
    global _handler
    if _handler is None:
        try:
            _handler = make_handler(os.environ)
        except ConfigError as exc:
            Log(component="wrapper").error("refused: bad configuration", error=str(exc))
            raise
    return _handler(event, context)
