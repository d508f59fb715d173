"""What readiness reads: the deployed stack (boto3, each answer classified once) and the
plan (the registrations of the stack's program run under mocks), both by name.

A read fails in one of three ways, each with its own status: the resource is not there
(``missing``: NOT_READY, a definite finding), the caller may not read it (NOT_AUTHORIZED,
the detail names the IAM action), or it could not be read at all (UNKNOWN: a throttle, an
outage, an API the endpoint does not implement).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from components.dr.readiness import NOT_AUTHORIZED, NOT_READY, UNKNOWN, Check

MISSING = "missing"
#: Error codes that say "the caller may not": AWS uses several spellings per service.
_DENIED = {"AccessDenied", "AccessDeniedException", "UnauthorizedOperation",
           "UnauthorizedException", "AuthorizationError", "AuthorizationErrorException",
           "Forbidden"}
#: 403s about the credentials, not about the permission: UNKNOWN, not NOT_AUTHORIZED.
_BAD_CREDENTIALS = {"SignatureDoesNotMatch", "InvalidClientTokenId", "ExpiredToken",
                    "ExpiredTokenException", "RequestExpired", "IncompleteSignature"}
#: Error codes that say "there is no such resource".
_NOT_FOUND = {"ResourceNotFoundException", "NotFoundException", "NoSuchBucket",
              "DBInstanceNotFound", "DBInstanceNotFoundFault", "NoSuchEntity",
              "TableNotFoundException", "ReplicationConfigurationNotFoundError",
              "NoSuchResourceException"}
#: boto3 service name -> IAM action prefix, where they differ.
_IAM_PREFIX = {"service-quotas": "servicequotas"}
#: Operations whose IAM action is not the prefix plus the operation's name.
_IAM_ACTION = {("s3", "get_bucket_replication"): "s3:GetReplicationConfiguration",
               ("rds", "describe_db_instances"): "rds:DescribeDBInstances"}
#: Every IAM action readiness needs (all read-only; never secretsmanager:GetSecretValue).
READ_ACTIONS = frozenset({
    "lambda:GetFunctionConfiguration", "lambda:GetFunctionConcurrency", "apigateway:GET",
    "dynamodb:DescribeTable", "dynamodb:DescribeContinuousBackups", "s3:GetBucketVersioning",
    "s3:GetReplicationConfiguration", "rds:DescribeDBInstances",
    "secretsmanager:DescribeSecret", "servicequotas:GetServiceQuota", "events:ListRules",
})


def _int_or_none(text: str) -> int | None:
    return int(text) if text.isdigit() else None


def iam_action(service: str, op: str) -> str:
    if service in ("apigateway", "apigatewayv2"):
        return "apigateway:GET"  # API Gateway's IAM actions are HTTP verbs
    if (service, op) in _IAM_ACTION:
        return _IAM_ACTION[(service, op)]
    return f"{_IAM_PREFIX.get(service, service)}:" + "".join(
        p.capitalize() for p in op.split("_"))


@dataclass(frozen=True)
class Read:
    value: Any = None
    problem: str | None = None
    """None when read; else ``missing``, NOT_AUTHORIZED or UNKNOWN."""
    why: str = ""

    @property
    def ok(self) -> bool:
        return self.problem is None


def problem_check(rule: str, subject: str, *reads: Read) -> Check | None:
    """The check for the worst failed read (missing, then denied, then unreadable), or None
    when every read succeeded."""
    for kind, status in ((MISSING, NOT_READY), (NOT_AUTHORIZED, NOT_AUTHORIZED),
                         (UNKNOWN, UNKNOWN)):
        bad = [r for r in reads if r.problem == kind]
        if bad:
            return Check(rule, subject, status, "; ".join(dict.fromkeys(r.why for r in bad)))
    return None


class Reader:
    """Cached, classified boto3 reads; never raises for a cloud answer."""

    def __init__(self, clients: Any) -> None:
        self.clients = clients
        self._cache: dict[tuple[str, str, str, str], Read] = {}

    def call(self, service: str, region: str, op: str, what: str, **kwargs: Any) -> Read:
        key = (service, region, op, json.dumps(kwargs, sort_keys=True, default=str))
        if key not in self._cache:
            self._cache[key] = self._call(service, region, op, what, kwargs)
        return self._cache[key]

    def _call(self, service: str, region: str, op: str, what: str,
              kwargs: dict[str, Any]) -> Read:
        action = iam_action(service, op)
        try:
            return Read(getattr(self.clients.get(service, region), op)(**kwargs))
        except ClientError as exc:
            err = exc.response.get("Error", {})
            code = str(err.get("Code", ""))
            http = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            # A 403 is a refusal unless it is about the credentials themselves (and some
            # endpoints answer a JSON-protocol client with an XML error, so no code parses).
            if code in _DENIED or "AccessDenied" in code or (
                    403 in (http, _int_or_none(code)) and code not in _BAD_CREDENTIALS):
                return Read(problem=NOT_AUTHORIZED,
                            why=f"not authorized: {action} on {what} ({region})")
            if code in _NOT_FOUND or code.endswith("NotFound"):
                return Read(problem=MISSING, why=f"{what} not found in {region} ({code})")
            message = str(err.get("Message", ""))[:120]
            return Read(problem=UNKNOWN, why=f"{action} on {what} ({region}) failed: "
                                             f"{code or http} {message}".rstrip())
        except BotoCoreError as exc:
            return Read(problem=UNKNOWN,
                        why=f"{action} on {what} ({region}) failed: {type(exc).__name__}")


# -- the plan, by name ----------------------------------------------------------------------

_LAYER_NAME = re.compile(r":layer:([^:]+)")


def layer_name(arn: str) -> str:
    m = _LAYER_NAME.search(arn)
    return m.group(1) if m else arn


def _int(value: Any, default: int | None = None) -> int | None:
    return default if value is None else int(float(value))


@dataclass(frozen=True)
class PlanFunction:
    name: str
    region: str
    layer: str
    """The topology layer from the ``standby:layer`` tag (logic, wrapper, or a monitor's)."""
    side: str | None
    """primary / standby for logic and wrapper functions; None for monitors."""
    runtime: str
    handler: str
    memory: int
    timeout: int
    env: dict[str, str]
    layers: list[str]
    """Layer names, in order."""
    reserved: int | None
    pinned: bool
    """Pulumi ignores its code (``logic.standby_version: pinned``)."""

    @property
    def monitor(self) -> bool:
        return "STANDBY_LAYER" in self.env


@dataclass(frozen=True)
class PlanTable:
    name: str
    region: str
    pitr: bool
    stream: bool
    replicas: dict[str, bool]
    """Replica region -> PITR registered for it."""


@dataclass(frozen=True)
class PlanBucket:
    region: str
    versioning: str | None
    replication: bool


@dataclass(frozen=True)
class PlanDb:
    identifier: str
    region: str
    instance_class: str
    engine: str | None
    engine_version: str | None
    replica_of: str | None


@dataclass(frozen=True)
class PlanRule:
    name: str
    """The logical name: Pulumi names the rule ``<name>-<7 hex>``."""
    region: str
    expression: str


@dataclass
class PlanView:
    functions: dict[str, PlanFunction] = field(default_factory=dict)
    tables: list[PlanTable] = field(default_factory=list)
    buckets: dict[str, PlanBucket] = field(default_factory=dict)
    stage_variables: dict[str, dict[str, str]] = field(default_factory=dict)
    """Region -> the REST stage's registered variables."""
    http_stages: list[str] = field(default_factory=list)
    """Regions with an HTTP API stage (``gateway.kind: http``)."""
    dbs: list[PlanDb] = field(default_factory=list)
    rules: list[PlanRule] = field(default_factory=list)

    def function(self, layer: str, region: str, side: str) -> PlanFunction | None:
        return next((f for f in self.functions.values() if f.layer == layer
                     and f.region == region and f.side == side and not f.monitor), None)


def plan_view(run: Any) -> PlanView:
    regs = [r for r in run.resources if r.custom]
    layer_names = {str(r.outputs.get("arn")): str(r.inputs.get("layerName"))
                   for r in regs if r.type == "aws:lambda/layerVersion:LayerVersion"}
    view = PlanView()
    for r in regs:
        i = r.inputs
        region = r.region or "us-east-1"
        if r.type == "aws:lambda/function:Function":
            env = {str(k): str(v) for k, v in
                   ((i.get("environment") or {}).get("variables") or {}).items()}
            view.functions[str(i["name"])] = PlanFunction(
                name=str(i["name"]), region=region,
                layer=str((i.get("tags") or {}).get("standby:layer", "")),
                side=env.get("STANDBY_SIDE") if "STANDBY_LAYER" not in env else None,
                runtime=str(i.get("runtime", "")), handler=str(i.get("handler", "")),
                memory=_int(i.get("memorySize"), 128) or 128,
                timeout=_int(i.get("timeout"), 3) or 3, env=env,
                layers=[layer_names.get(str(x), layer_name(str(x)))
                        for x in i.get("layers") or []],
                reserved=_int(i.get("reservedConcurrentExecutions")),
                pinned="code" in r.ignore_changes)
        elif r.type == "aws:dynamodb/table:Table":
            view.tables.append(PlanTable(
                name=str(i["name"]), region=region,
                pitr=bool((i.get("pointInTimeRecovery") or {}).get("enabled")),
                stream=bool(i.get("streamEnabled")),
                replicas={str(x["regionName"]): bool(x.get("pointInTimeRecovery"))
                          for x in i.get("replicas") or []}))
        elif r.type in ("aws:s3/bucketVersioning:BucketVersioning",
                        "aws:s3/bucketVersioningV2:BucketVersioningV2"):
            old = view.buckets.get(region, PlanBucket(region, None, False))
            view.buckets[region] = PlanBucket(
                region, str(i["versioningConfiguration"]["status"]), old.replication)
        elif r.type == "aws:s3/bucketReplicationConfig:BucketReplicationConfig":
            # Registered in its source bucket's region.
            old = view.buckets.get(region, PlanBucket(region, None, False))
            enabled = any(str(x.get("status")) == "Enabled" for x in i.get("rules") or [])
            view.buckets[region] = PlanBucket(region, old.versioning, enabled)
        elif r.type == "aws:apigateway/stage:Stage":
            view.stage_variables[region] = {str(k): str(v)
                                            for k, v in (i.get("variables") or {}).items()}
        elif r.type == "aws:apigatewayv2/stage:Stage":
            view.http_stages.append(region)
        elif r.type == "aws:rds/instance:Instance":
            view.dbs.append(PlanDb(
                identifier=str(i.get("identifier", r.name)), region=region,
                instance_class=str(i.get("instanceClass", "")),
                engine=str(i["engine"]) if i.get("engine") else None,
                engine_version=str(i["engineVersion"]) if i.get("engineVersion") else None,
                replica_of=str(i["replicateSourceDb"]) if i.get("replicateSourceDb")
                else None))
        elif r.type == "aws:cloudwatch/eventRule:EventRule" and i.get("scheduleExpression"):
            view.rules.append(PlanRule(str(i.get("name") or r.name), region,
                                       str(i["scheduleExpression"])))
    return view
