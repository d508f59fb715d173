"""The sandbox deployment: what was created in moto, what was not, and the map from the
plan's identifiers to moto's (see ``deploy.py``)."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import boto3
import pulumi
from botocore.config import Config as BotoConfig

from components.plan.mocks import _SECRET_SIG, _SIG_KEY, ACCOUNT, RecordingMocks, Registration, _hex

DEPLOYER_USER = "standby-sandbox-deployer"
#: The deployer's own policy: it stands in for the person running ``pulumi up``.
DEPLOYER_POLICY = {"Version": "2012-10-17",
                   "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
#: Stored in Secrets Manager for every secret version: the plan never holds secret values.
SECRET_PLACEHOLDER = "sandbox-placeholder-not-a-secret"

#: Types with no API call behind them: nothing to create, and nothing lost by skipping them.
NO_API = {
    "aws:acm/certificateValidation:CertificateValidation":
        "a waiter for DNS validation, not an AWS resource",
}


@dataclass
class Created:
    type: str
    name: str
    region: str
    cloud_id: str
    inputs: dict[str, Any] = field(default_factory=dict, repr=False)
    """The plan inputs it was created with (moto ids), for stand-ins that act on the plan's
    wiring, e.g. ``replication.py`` (global-table replicas, bucket replication rules)."""


@dataclass
class Skipped:
    type: str
    name: str
    region: str
    reason: str


@dataclass
class Function:
    """A deployed function, as the runner needs it."""

    name: str
    region: str
    arn: str
    role_arn: str
    handler: str
    runtime: str
    timeout_s: float
    memory_mb: int
    env: dict[str, str]
    code: Any
    layers: list[Any]
    """The layer archives, in the registered order."""


@dataclass
class Schedule:
    rule: str
    region: str
    expression: str
    function: str
    input: Any


@dataclass
class Deployment:
    moto_url: str
    stack: str
    access_key: tuple[str, str] = ("", "")
    """The deployer's (key id, secret): allowed everything, used to assume roles."""
    created: list[Created] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    ids: dict[str, str] = field(default_factory=dict)
    functions: dict[str, Function] = field(default_factory=dict)
    schedules: list[Schedule] = field(default_factory=list)
    layers: dict[str, Any] = field(default_factory=dict)
    """Layer version ARN (moto) -> the layer's archive."""
    exports: dict[str, Any] = field(default_factory=dict)
    rules: dict[tuple[str, str], str] = field(default_factory=dict)
    """(region, rule name) -> schedule expression."""
    clear_inputs: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    """(type, name) -> the inputs with secrets in the clear (``RevealingMocks``)."""
    generated: set[str] = field(default_factory=set)
    """Plan values of generated secrets (RandomPassword results): a masked input that holds
    one is revealed, then rewritten to the real value through ``ids``."""
    endpoints: dict[str, tuple[str, int]] = field(default_factory=dict)
    """Plan host of a database -> the local server's (host, port) (``deploy_rds``)."""
    services: list[Any] = field(default_factory=list)
    """What the deploy started besides moto (local database servers): closed by ``close``."""
    _pattern: re.Pattern[str] | None = field(default=None, repr=False)

    def close(self) -> None:
        while self.services:
            self.services.pop().close()

    def inputs_of(self, r: Registration) -> dict[str, Any]:
        """``r``'s inputs, with each masked secret that holds a generated value revealed."""
        clear = self.clear_inputs.get((r.type, r.name))
        if clear is None or not self.generated:
            return dict(r.inputs)
        return dict(_reveal(r.inputs, clear, self.generated))

    @property
    def deployer_arn(self) -> str:
        return f"arn:aws:iam::{ACCOUNT}:user/{DEPLOYER_USER}"

    @property
    def ok(self) -> bool:
        return not [s for s in self.skipped if s.reason.startswith("failed")]

    def map(self, plan_value: str, cloud_value: str) -> None:
        if plan_value and plan_value != cloud_value:
            self.ids[plan_value] = cloud_value
            self._pattern = None

    def fix(self, value: Any) -> Any:
        """``value`` with every plan identifier replaced by its moto counterpart."""
        if isinstance(value, str):
            if not self.ids:
                return value
            if self._pattern is None:
                # Longest first: a role's id contains its name as a prefix.
                keys = sorted(self.ids, key=len, reverse=True)
                self._pattern = re.compile("|".join(re.escape(k) for k in keys))
            return self._pattern.sub(lambda m: self.ids[m.group(0)], value)
        if isinstance(value, dict):
            return {k: self.fix(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.fix(v) for v in value]
        return value

    def client(self, service: str, region: str) -> Any:
        make: Any = boto3.client  # the service name is a runtime string
        return make(service, region_name=region, endpoint_url=self.moto_url,
                    aws_access_key_id=self.access_key[0],
                    aws_secret_access_key=self.access_key[1],
                    config=BotoConfig(retries={"max_attempts": 2}))


MASKED = "[secret]"


def _reveal(masked: Any, clear: Any, generated: set[str]) -> Any:
    if masked == MASKED:
        text = clear if isinstance(clear, str) else repr(clear)
        return clear if any(g in text for g in generated) else masked
    if isinstance(masked, dict) and isinstance(clear, dict):
        return {k: _reveal(v, clear.get(k), generated) for k, v in masked.items()}
    if isinstance(masked, list) and isinstance(clear, list) and len(masked) == len(clear):
        return [_reveal(m, c, generated) for m, c in zip(masked, clear, strict=True)]
    return masked


def _unwrap(value: Any) -> Any:
    if isinstance(value, dict):
        if value.get(_SIG_KEY) == _SECRET_SIG:
            return _unwrap(value.get("value"))
        return {k: _unwrap(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_unwrap(v) for v in value]
    return value


class RevealingMocks(RecordingMocks):
    """``RecordingMocks`` that also keep every resource's inputs with secrets in the clear.

    The plan masks secrets, so a secret version's JSON or an RDS master password built from
    a generated password arrives as ``[secret]``. The deploy reveals only values that hold a
    generated password's plan value (``Deployment.inputs_of``) and rewrites that to the
    password it generated; every other secret keeps the placeholder. The registrations (what
    ``standby plan`` shows) stay masked.
    """

    def __init__(self, default_region: str = "us-east-1") -> None:
        super().__init__(default_region)
        self.clear: dict[tuple[str, str], dict[str, Any]] = {}

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str | None,
                                                                           dict[str, Any]]:
        self.clear[(args.typ, args.name)] = _unwrap(dict(args.inputs))
        return super().new_resource(args)


def plan_id(reg: Registration) -> str:
    """The id ``RecordingMocks`` gives a custom resource (what ``resource.id`` resolves to)."""
    return f"{reg.name}-{_hex(reg.name)}"


def _int(v: Any) -> int:
    return int(float(v))


def _tags(inputs: dict[str, Any]) -> dict[str, str]:
    return {str(k): str(v) for k, v in (inputs.get("tags") or {}).items()}


Handler = Callable[[Deployment, Registration, dict[str, Any], str], str]
HANDLERS: dict[str, Handler] = {}


def handles(*types: str) -> Callable[[Handler], Handler]:
    def deco(fn: Handler) -> Handler:
        for t in types:
            HANDLERS[t] = fn
        return fn
    return deco
