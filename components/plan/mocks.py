"""A recording ``pulumi.runtime.Mocks``: realistic computed outputs, and a log of everything.

Used by ``standby plan`` (no cloud, no CLI, no credentials) and by the tests. Every
registration is kept with its type, name, inputs, parent URN and provider region, so the
plan can group resources by layer and region and read the monitors' wiring back.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import pulumi
from google.protobuf import json_format
from pulumi.runtime.mocks import MockMonitor

ACCOUNT = "123456789012"


@dataclass
class Registration:
    urn: str
    type: str
    name: str
    inputs: dict[str, Any]
    outputs: dict[str, Any]
    parent: str
    custom: bool
    provider_urn: str | None
    region: str | None = None
    ignore_changes: list[str] = field(default_factory=list)


_SIG_KEY = "4dabf18193072939515e22adb298388d"  # Pulumi's special signature key
_SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"  # ... and its value for secrets


def mask_secrets(value: Any) -> Any:
    """Replace every secret-wrapped value with ``[secret]`` so a plan never shows one."""
    if isinstance(value, dict):
        if value.get(_SIG_KEY) == _SECRET_SIG:
            return "[secret]"
        return {k: mask_secrets(v) for k, v in value.items()}
    if isinstance(value, list):
        return [mask_secrets(v) for v in value]
    return value


def _hex(seed: str, n: int = 8) -> str:
    return hashlib.sha256(seed.encode()).hexdigest()[:n]


class RecordingMocks(pulumi.runtime.Mocks):
    def __init__(self, default_region: str = "us-east-1") -> None:
        self.default_region = default_region
        self.resources: list[Registration] = []
        self.by_urn: dict[str, Registration] = {}
        self.provider_regions: dict[str, str] = {}
        self._pending_parent: dict[tuple[str, str], tuple[str, bool, str | None, list[str]]] = {}
        self.calls: list[tuple[str, dict[str, Any]]] = []
        # Keyed by (type, name): registrations may run on several threads at once.
        self.unlinked: dict[tuple[str, str], Registration] = {}

    # The MockMonitor subclass below tells us parent/custom/provider before new_resource runs.
    def note_request(
        self, type_: str, name: str, parent: str, custom: bool, provider: str | None,
        ignore_changes: list[str],
    ) -> None:
        self._pending_parent[(type_, name)] = (parent, custom, provider, ignore_changes)

    def region_of(self, provider_ref: str | None) -> str | None:
        if not provider_ref:
            return None
        urn = provider_ref.split("::")[0:-1]
        key = "::".join(urn) if urn else provider_ref
        return self.provider_regions.get(key)

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str | None, dict[str, Any]]:  # noqa: E501
        parent, custom, provider, ignore = self._pending_parent.pop(
            (args.typ, args.name), ("", True, None, [])
        )
        inputs = mask_secrets(dict(args.inputs))
        if args.typ.startswith("pulumi:providers:"):
            region = str(inputs.get("region", self.default_region))
            rid = f"{args.name}-provider-id"
            outputs = dict(inputs)
        else:
            region = self.region_of(provider) or self.default_region
            rid = f"{args.name}-{_hex(args.name)}"
            outputs = self._outputs(args.typ, args.name, inputs, region, rid)
            if args.typ.startswith("tencentcloud:"):
                rid = str(outputs["id"])  # the provider's id shape (cdb-..., domain#id)
        reg = Registration(
            urn="", type=args.typ, name=args.name, inputs=inputs, outputs=outputs,
            parent=parent, custom=custom, provider_urn=provider, region=region,
            ignore_changes=ignore,
        )
        self.resources.append(reg)
        self.unlinked[(args.typ, args.name)] = reg
        return rid, outputs

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]]]:  # noqa: E501
        self.calls.append((args.token, dict(args.args)))
        if args.token == "aws:index/getCallerIdentity:getCallerIdentity":
            return {
                "accountId": ACCOUNT,
                "arn": f"arn:aws:iam::{ACCOUNT}:user/plan",
                "userId": "AIDPLAN",
                "id": ACCOUNT,
            }, []
        if args.token == "aws:route53/getZone:getZone":
            name = str(args.args.get("name", "example.com"))
            zid = "Z" + _hex(name, 12).upper()
            return {"zoneId": zid, "id": zid, "name": name, "arn": f"arn:aws:route53:::hostedzone/{zid}"}, []  # noqa: E501
        if args.token == "aws:ec2/getSubnet:getSubnet":
            # A stable, distinct /24 per subnet id, so cross-region CIDR rules are visible.
            sid = str(args.args.get("id", "subnet-plan"))
            octets = int(_hex(sid, 4), 16)
            return {"id": sid, "vpcId": "vpc-" + _hex(sid, 8),
                    "cidrBlock": f"10.{octets >> 8 & 255}.{octets & 255}.0/24"}, []
        return {}, []

    # -- realistic computed outputs -------------------------------------------------------

    def _outputs(self, typ: str, name: str, inputs: dict[str, Any], region: str, rid: str) -> dict[str, Any]:  # noqa: E501
        out = dict(inputs)
        out.setdefault("id", rid)
        pkg, _, rest = typ.partition(":")
        if typ == "random:index/randomPassword:RandomPassword":
            # Deterministic stand-in of the generated secret (never a real credential).
            length = int(inputs.get("length", 32))
            out["result"] = (_hex(name, 64) * (length // 64 + 1))[:length]
            return out
        if pkg == "tencentcloud":
            return _tencent_outputs(typ, name, inputs, region, out)
        if pkg != "aws":
            return out
        module = rest.split(":")[0].split("/")[0]
        res_name = str(inputs.get("name") or inputs.get("functionName") or f"{name}-{_hex(name, 7)}")  # noqa: E501
        out.setdefault("name", res_name)
        arn = f"arn:aws:{module}:{region}:{ACCOUNT}:{res_name}"
        if typ == "aws:lambda/function:Function":
            arn = f"arn:aws:lambda:{region}:{ACCOUNT}:function:{res_name}"
            out["invokeArn"] = (
                f"arn:aws:apigateway:{region}:lambda:path/2015-03-31/functions/{arn}/invocations"
            )
            out["qualifiedArn"] = f"{arn}:$LATEST"
            out["version"] = "$LATEST"
        elif typ == "aws:iam/role:Role":
            arn = f"arn:aws:iam::{ACCOUNT}:role/{res_name}"
        elif typ == "aws:dynamodb/table:Table":
            arn = f"arn:aws:dynamodb:{region}:{ACCOUNT}:table/{res_name}"
            out["streamArn"] = f"{arn}/stream/2026-01-01T00:00:00.000"
        elif typ == "aws:sns/topic:Topic":
            arn = f"arn:aws:sns:{region}:{ACCOUNT}:{res_name}"
        elif typ == "aws:s3/bucket:Bucket":
            bucket = f"{inputs.get('bucketPrefix', name + '-')}{_hex(name, 12)}"
            out["bucket"] = bucket
            arn = f"arn:aws:s3:::{bucket}"
            out["bucketRegionalDomainName"] = f"{bucket}.s3.{region}.amazonaws.com"
        elif typ == "aws:apigateway/restApi:RestApi":
            api_id = _hex(name, 10)
            out["id"] = api_id
            out["rootResourceId"] = _hex(name + "root", 10)
            out["executionArn"] = f"arn:aws:execute-api:{region}:{ACCOUNT}:{api_id}"
            arn = f"arn:aws:apigateway:{region}::/restapis/{api_id}"
        elif typ == "aws:apigatewayv2/api:Api":
            api_id = _hex(name, 10)
            out["id"] = api_id
            out["apiEndpoint"] = f"https://{api_id}.execute-api.{region}.amazonaws.com"
            out["executionArn"] = f"arn:aws:execute-api:{region}:{ACCOUNT}:{api_id}"
        elif typ == "aws:apigateway/stage:Stage":
            out["invokeUrl"] = f"https://{inputs.get('restApi')}.execute-api.{region}.amazonaws.com/{inputs.get('stageName')}"
        elif typ == "aws:apigatewayv2/stage:Stage":
            out["invokeUrl"] = f"https://{inputs.get('apiId')}.execute-api.{region}.amazonaws.com/"
        elif typ == "aws:apigateway/domainName:DomainName":
            out["regionalDomainName"] = f"d-{_hex(name, 10)}.execute-api.{region}.amazonaws.com"
            out["regionalZoneId"] = "Z1UJRXOUMOOFQ8"
        elif typ == "aws:apigatewayv2/domainName:DomainName":
            cfg = dict(inputs.get("domainNameConfiguration") or {})
            cfg["targetDomainName"] = f"d-{_hex(name, 10)}.execute-api.{region}.amazonaws.com"
            cfg["hostedZoneId"] = "Z1UJRXOUMOOFQ8"
            out["domainNameConfiguration"] = cfg
        elif typ == "aws:acm/certificate:Certificate":
            arn = f"arn:aws:acm:{region}:{ACCOUNT}:certificate/{_hex(name, 32)}"
            dom = inputs.get("domainName", "example.com")
            out["domainValidationOptions"] = [
                {
                    "domainName": dom,
                    "resourceRecordName": f"_{_hex(dom, 32)}.{dom}.",
                    "resourceRecordType": "CNAME",
                    "resourceRecordValue": f"_{_hex(dom + 'v', 32)}.acm-validations.aws.",
                }
            ]
        elif typ == "aws:acm/certificateValidation:CertificateValidation":
            out["certificateArn"] = inputs.get("certificateArn")
        elif typ == "aws:route53/record:Record":
            out["fqdn"] = inputs.get("name")
        elif typ == "aws:route53/healthCheck:HealthCheck":
            out["id"] = f"{_hex(name, 8)}-{_hex(name + 'a', 4)}-{_hex(name + 'b', 4)}"
            arn = f"arn:aws:route53:::healthcheck/{out['id']}"
        elif typ == "aws:cloudwatch/metricAlarm:MetricAlarm":
            arn = f"arn:aws:cloudwatch:{region}:{ACCOUNT}:alarm:{res_name}"
        elif typ == "aws:cloudwatch/eventRule:EventRule":
            arn = f"arn:aws:events:{region}:{ACCOUNT}:rule/{res_name}"
        elif typ == "aws:cloudwatch/logGroup:LogGroup":
            arn = f"arn:aws:logs:{region}:{ACCOUNT}:log-group:{res_name}"
        elif typ == "aws:secretsmanager/secret:Secret":
            prefix = str(inputs.get("namePrefix", name))
            arn = f"arn:aws:secretsmanager:{region}:{ACCOUNT}:secret:{prefix}{_hex(name, 6)}"
        elif typ == "aws:rds/instance:Instance":
            ident = str(inputs.get("identifier", name))
            out["identifier"] = ident
            arn = f"arn:aws:rds:{region}:{ACCOUNT}:db:{ident}"
            out["address"] = f"{ident}.{_hex(name, 12)}.{region}.rds.amazonaws.com"
            out["port"] = 5432 if inputs.get("engine", "postgres") == "postgres" else 3306
            out["endpoint"] = f"{out['address']}:{out['port']}"
            if inputs.get("manageMasterUserPassword"):
                out["masterUserSecrets"] = [
                    {
                        "secretArn": f"arn:aws:secretsmanager:{region}:{ACCOUNT}:secret:rds!db-{_hex(name, 8)}",  # noqa: E501
                        "secretStatus": "active",
                        "kmsKeyId": "",
                    }
                ]
        elif typ == "aws:kms/key:Key":
            arn = f"arn:aws:kms:{region}:{ACCOUNT}:key/{_hex(name, 32)}"
        elif typ == "aws:ec2/securityGroup:SecurityGroup":
            out["id"] = f"sg-{_hex(name, 17)}"
        elif typ == "aws:cloudwatch/dashboard:Dashboard":
            arn = f"arn:aws:cloudwatch::{ACCOUNT}:dashboard/{inputs.get('dashboardName')}"
        out.setdefault("arn", arn)
        return out


def _tencent_outputs(typ: str, name: str, inputs: dict[str, Any], region: str,
                     out: dict[str, Any]) -> dict[str, Any]:
    """Computed outputs of tencentcloud-iac-pulumi resources, shaped as the provider's docs
    describe them (ids, intranet addresses); inputs pass through."""
    if typ in ("tencentcloud:Mysql/instance:Instance", "tencentcloud:Mysql/drInstance:DrInstance"):
        out["id"] = f"cdb-{_hex(name, 8)}"
        octets = int(_hex(name, 4), 16)
        out["intranetIp"] = f"10.{octets >> 8 & 255}.{octets & 255}.10"
        out.setdefault("intranetPort", 3306)
    elif typ == "tencentcloud:Dnspod/record:Record":
        # The provider's id is ``<domain>#<RecordId>`` (its import id).
        out["id"] = f"{inputs.get('domain')}#{int(_hex(name, 7), 16)}"
        out["monitorStatus"] = ""
    elif typ == "tencentcloud:Scf/function:Function":
        out["id"] = f"{inputs.get('namespace', 'default')}+{inputs.get('name')}"
        out["functionId"] = f"lam-{_hex(name, 8)}"
        out["status"] = "Active"
    elif typ == "tencentcloud:Cam/role:Role":
        out["id"] = str(int(_hex(name, 10), 16))
    elif typ == "tencentcloud:Cam/policy:Policy":
        out["id"] = str(int(_hex(name, 9), 16))
    elif typ == "tencentcloud:Cos/bucket:Bucket":
        out["cosBucketUrl"] = f"{inputs.get('bucket')}.cos.{region}.myqcloud.com"
    elif typ == "tencentcloud:Ccn/instance:Instance":
        out["id"] = f"ccn-{_hex(name, 8)}"
    return out


class RecordingMonitor(MockMonitor):
    """A MockMonitor that also tells the mocks each resource's parent, kind and provider."""

    mocks: RecordingMocks

    def RegisterResource(self, request: Any) -> Any:
        self.mocks.note_request(
            request.type, request.name, request.parent, bool(request.custom),
            request.provider or None, list(request.ignoreChanges),
        )
        response = super().RegisterResource(request)  # type: ignore[no-untyped-call]
        reg = self.mocks.unlinked.pop((request.type, request.name), None)
        if reg is not None:
            reg.urn = response.urn
            self.mocks.by_urn[response.urn] = reg
            if request.type.startswith("pulumi:providers:"):
                self.mocks.provider_regions[response.urn] = reg.region or ""
        elif request.type != "pulumi:pulumi:Stack":
            # Component resources are not passed to new_resource by every SDK version.
            comp = Registration(
                urn=response.urn, type=request.type, name=request.name,
                inputs=mask_secrets(json_format.MessageToDict(request.object)),
                outputs={}, parent=request.parent, custom=False, provider_urn=None,
            )
            self.mocks.resources.append(comp)
            self.mocks.by_urn[response.urn] = comp
        return response


@dataclass
class PlanRun:
    """Everything one mock run produced."""

    mocks: RecordingMocks
    exports: dict[str, Any] = field(default_factory=dict)

    @property
    def resources(self) -> list[Registration]:
        return [r for r in self.mocks.resources if r.type != "pulumi:pulumi:Stack"]
