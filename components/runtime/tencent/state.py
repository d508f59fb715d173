"""The Tencent state store: ``SqlStateStore`` on the TencentDB for MySQL instance the
configuration references (``config.StateRef``, store kind ``mysql``):

``ref`` is an SSM secret in ``region`` holding ``{"engine": "mysql", "host", "port", "user",
"password", "database"}`` as JSON (``STANDBY_STATE_DSN_SECRET``/``STANDBY_STATE_REGION``),
and the option ``STANDBY_STATE_DSN_VERSION`` its version id (the deploy writes ``v1``). The
DSN is read through SSM ``GetSecretValue`` with the function's own credential, never from
the environment itself.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from components.runtime.config import StateRef
from components.runtime.errors import ConfigError
from components.runtime.sql_state import SqlStateStore, mysql_connect
from components.runtime.tencent.client import TencentApi, TencentApiError

DSN_KEYS = ("host", "port", "user", "password", "database")
VERSION_ENV = "STANDBY_STATE_DSN_VERSION"


def read_dsn(api: TencentApi, region: str, secret: str, version: str = "v1",
             what: str = "STANDBY_STATE_DSN_SECRET") -> dict[str, Any]:
    """The DSN document of SSM secret ``secret`` (``what`` names where it was configured, for
    the error); ``ConfigError`` naming what is missing or wrong."""
    try:
        out = api.call("ssm", "2019-09-23", region, "GetSecretValue",
                       {"SecretName": secret, "VersionId": version})
    except TencentApiError as exc:
        raise ConfigError([f"{what} {secret!r} in {region}: {exc}"]) from None
    try:
        doc = json.loads(out.get("SecretString") or "")
    except ValueError:
        doc = None
    if not isinstance(doc, dict):
        raise ConfigError([f"secret {secret!r}: not a JSON object with {', '.join(DSN_KEYS)}"])
    missing = [k for k in DSN_KEYS if doc.get(k) in (None, "")]
    if missing:
        raise ConfigError([f"secret {secret!r}: missing {', '.join(missing)}; needs "
                           f"{', '.join(DSN_KEYS)}"])
    if doc.get("engine", "mysql") != "mysql":
        raise ConfigError([f"secret {secret!r}: engine {doc['engine']!r}; allowed: mysql"])
    return doc


def state_ref(env: Mapping[str, str]) -> StateRef:
    """The store named by a wrapper's environment (a monitor's comes from ``config.load``);
    ``ConfigError`` names every missing variable."""
    problems = []
    if env.get("STANDBY_STATE_STORE", "mysql") != "mysql":
        problems.append(f"STANDBY_STATE_STORE: {env['STANDBY_STATE_STORE']!r}; allowed on "
                        "Tencent: mysql")
    for name in ("STANDBY_STATE_DSN_SECRET", "STANDBY_STATE_REGION"):
        if not env.get(name):
            problems.append(f"{name}: missing")
    if problems:
        raise ConfigError(problems)
    options = {VERSION_ENV: env[VERSION_ENV]} if env.get(VERSION_ENV) else {}
    return StateRef("mysql", env["STANDBY_STATE_DSN_SECRET"], env["STANDBY_STATE_REGION"],
                    options)


def state_store(api: TencentApi, ref: StateRef, timeout_s: float = 3.0) -> SqlStateStore:
    if ref.store != "mysql":
        raise ConfigError([f"STANDBY_STATE_STORE: {ref.store!r}; allowed on Tencent: mysql"])
    dsn = read_dsn(api, ref.region, ref.ref, ref.options.get(VERSION_ENV) or "v1")
    return SqlStateStore(mysql_connect(str(dsn["host"]), int(dsn["port"]), str(dsn["user"]),
                                       str(dsn["password"]), str(dsn["database"]), timeout_s))
