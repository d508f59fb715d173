"""The stub's services: state and one handler per action, each checked against the API doc
page and version it names. CAM resources follow the six-segment ``qcs`` form
(``qcs::<service>:<region>:uin/<uin>:<type>/<id>``, doc 598/10606)."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from components.sandbox.tencent_stub import Action, ApiError, P, Request
from components.sandbox.tencent_stub_alerts import Alerts, alert_actions

if TYPE_CHECKING:
    from components.sandbox.tencent_stub import TencentStub

DNSPOD, SCF, CDB, SSM = "2021-03-23", "2018-04-16", "2017-03-20", "2019-09-23"


@dataclass
class Record:
    domain: str
    record_id: int
    sub_domain: str
    line: str
    type: str
    value: str
    status: str = "ENABLE"
    ttl: int = 600


@dataclass
class Function:
    region: str
    namespace: str
    name: str
    handler: Callable[[Any], Any]
    """Called with the decoded event; its return value is the result, an exception the
    function error."""
    env: dict[str, str] = field(default_factory=dict)
    """Its environment variables (GetFunction ``Environment.Variables``)."""


@dataclass
class CustomDomain:
    region: str
    domain: str
    protocol: str
    endpoints: list[dict[str, Any]]


@dataclass
class Instance:
    instance_id: str
    region: str
    type: int
    """1 master, 2 disaster recovery (DescribeDBInstances ``InstanceType``)."""
    master: str | None = None
    read_only: int = 0
    lag_bytes: int = 0
    vip: str = ""
    vport: int = 3306
    """The private address DescribeDBInstances reports (``Vip``/``Vport``)."""


@dataclass
class AsyncRequest:
    request_id: str
    instance_id: str
    ignore_delay: int
    polls_left: int
    status: str = "RUNNING"
    info: str = ""


@dataclass
class Services:
    stub: TencentStub
    records: dict[int, Record] = field(default_factory=dict)
    functions: dict[tuple[str, str, str], Function] = field(default_factory=dict)
    domains: dict[tuple[str, str], CustomDomain] = field(default_factory=dict)
    instances: dict[str, Instance] = field(default_factory=dict)
    requests: dict[str, AsyncRequest] = field(default_factory=dict)
    secrets: dict[tuple[str, str, str], str] = field(default_factory=dict)
    """(region, secret name, version id) -> SecretString."""
    async_polls: int = 1
    """How many DescribeAsyncRequestInfo polls a DR switch stays RUNNING."""
    alerts: Alerts = field(default_factory=Alerts)
    """SES senders and templates, SMS apps, templates and signs; what was sent."""

    def __post_init__(self) -> None:
        self.lock = threading.Lock()
        for a in self._actions():
            self.stub.register(a)

    # -- set-up (what a deploy creates) ----------------------------------------------------

    def add_record(self, domain: str, sub_domain: str, line: str, value: str,
                   status: str = "ENABLE", type: str = "A") -> int:
        rid = 1000 + len(self.records)
        self.records[rid] = Record(domain, rid, sub_domain, line, type, value, status)
        return rid

    def add_function(self, region: str, name: str, handler: Callable[[Any], Any],
                     namespace: str = "default", env: dict[str, str] | None = None) -> None:
        self.functions[(region, namespace, name)] = Function(region, namespace, name, handler,
                                                             dict(env or {}))

    def add_domain(self, region: str, domain: str, endpoints: list[dict[str, Any]],
                   protocol: str = "HTTP") -> None:
        self.domains[(region, domain)] = CustomDomain(region, domain, protocol, endpoints)

    def add_instance(self, instance_id: str, region: str, master: str | None = None,
                     vip: str = "", vport: int = 3306) -> None:
        self.instances[instance_id] = Instance(instance_id, region, 2 if master else 1, master,
                                               vip=vip, vport=vport)

    def add_secret(self, region: str, name: str, value: str, version: str = "v1") -> None:
        self.secrets[(region, name, version)] = value

    # -- SSM -------------------------------------------------------------------------------

    def get_secret_value(self, req: Request) -> dict[str, Any]:
        """SSM GetSecretValue, API 2019-09-23 (doc page "GetSecretValue"): SecretName and
        VersionId, both required; the secret is regional."""
        p = req.params
        key = (req.region, p["SecretName"], p["VersionId"])
        if key not in self.secrets:
            if not any(k[:2] == key[:2] for k in self.secrets):
                raise ApiError("ResourceNotFound.SecretNotExist",
                               f"secret {p['SecretName']} does not exist in {req.region}")
            raise ApiError("ResourceNotFound.VersionNotExist",
                           f"secret {p['SecretName']} has no version {p['VersionId']}")
        return {"SecretName": p["SecretName"], "VersionId": p["VersionId"],
                "SecretString": self.secrets[key], "SecretBinary": "", "SecretType": 0}

    # -- DNSPod ----------------------------------------------------------------------------

    def _domain_records(self, domain: str) -> list[Record]:
        recs = [r for r in self.records.values() if r.domain == domain]
        if not recs:
            raise ApiError("InvalidParameterValue.DomainNotExists",
                           f"domain {domain} is not in this account")
        return recs

    def modify_record_status(self, req: Request) -> dict[str, Any]:
        """DNSPod ModifyRecordStatus, API 2021-03-23 (doc page "ModifyRecordStatus",
        tencentcloud.com/document/api/1157/53836): Domain, RecordId, Status ENABLE|DISABLE."""
        p = req.params
        with self.lock:
            recs = {r.record_id: r for r in self._domain_records(p["Domain"])}
            rec = recs.get(p["RecordId"])
            if rec is None:
                raise ApiError("InvalidParameter.RecordIdInvalid",
                               f"record {p['RecordId']} is not a record of {p['Domain']}")
            rec.status = p["Status"]
        return {"RecordId": rec.record_id}

    def describe_record_list(self, req: Request) -> dict[str, Any]:
        """DNSPod DescribeRecordList, API 2021-03-23 (doc page "DescribeRecordList"):
        Domain required; Subdomain, RecordLine, RecordType filter;
        ErrorOnEmpty yes (default) | no."""
        p = req.params
        with self.lock:
            recs = [r for r in self._domain_records(p["Domain"])
                    if p.get("Subdomain") in (None, r.sub_domain)
                    and p.get("RecordLine") in (None, r.line)
                    and p.get("RecordType") in (None, r.type)]
            items = [{"RecordId": r.record_id, "Value": r.value, "Status": r.status,
                      "Name": r.sub_domain, "Line": r.line, "LineId": "0", "Type": r.type,
                      "TTL": r.ttl, "MonitorStatus": "", "Weight": None, "Remark": "",
                      "UpdatedOn": "2026-01-01 00:00:00", "MX": 0} for r in recs]
        if not items and p.get("ErrorOnEmpty", "yes") == "yes":
            raise ApiError("ResourceNotFound.NoDataOfRecord", "the record list is empty")
        off, lim = p.get("Offset", 0), p.get("Limit", 100)
        return {"RecordCountInfo": {"SubdomainCount": len(items), "ListCount": len(items),
                                    "TotalCount": len(items)},
                "RecordList": items[off:off + lim]}

    # -- SCF -------------------------------------------------------------------------------

    def _function(self, region: str, namespace: str, name: str) -> Function:
        fn = self.functions.get((region, namespace, name))
        if fn is None:
            raise ApiError("ResourceNotFound.Function",
                           f"function {namespace}/{name} does not exist in {region}")
        return fn

    def get_function(self, req: Request) -> dict[str, Any]:
        """SCF GetFunction, API 2018-04-16 (doc 583/18584 "GetFunction"): FunctionName required;
        Qualifier, Namespace, ShowCode (TRUE|FALSE). Answers the configuration; only the
        fields the run time reads are filled (``Environment.Variables`` as Key/Value)."""
        p = req.params
        fn = self._function(req.region, p.get("Namespace", "default"), p["FunctionName"])
        return {"FunctionName": fn.name, "Namespace": fn.namespace, "Status": "Active",
                "Qualifier": p.get("Qualifier", "$LATEST"), "Runtime": "Python3.10",
                "Environment": {"Variables": [{"Key": k, "Value": v}
                                              for k, v in sorted(fn.env.items())]}}

    def invoke(self, req: Request) -> dict[str, Any]:
        """SCF Invoke, API 2018-04-16 (doc page "Invoke"): FunctionName, InvocationType
        Event|RequestResponse, Qualifier, ClientContext (the event, a JSON string),
        LogType None|Tail, Namespace, RoutingKey."""
        p = req.params
        fn = self._function(req.region, p.get("Namespace", "default"), p["FunctionName"])
        try:
            event = json.loads(p.get("ClientContext") or "{}")
        except ValueError:
            raise ApiError("InvalidParameterValue.ClientContext",
                           "ClientContext must be a JSON string") from None
        rid = str(uuid.uuid4())
        if p.get("InvocationType") == "Event":
            return {"Result": {"FunctionRequestId": rid, "RetMsg": "", "ErrMsg": "",
                               "InvokeResult": 0, "Duration": 0, "BillDuration": 0,
                               "MemUsage": 0, "Log": ""}}
        try:
            ret, err, code = json.dumps(fn.handler(event)), "", 0
        except Exception as exc:  # the function's own error, reported as SCF reports it
            ret, err, code = "", json.dumps({"errorMessage": str(exc)}), -1
        return {"Result": {"FunctionRequestId": rid, "RetMsg": ret, "ErrMsg": err,
                           "InvokeResult": code, "Duration": 1.0, "BillDuration": 1,
                           "MemUsage": 1, "Log": ""}}

    def _custom_domain(self, region: str, domain: str) -> CustomDomain:
        d = self.domains.get((region, domain))
        if d is None:
            raise ApiError("ResourceNotFound.Domain",
                           f"custom domain {domain} does not exist in {region}")
        return d

    def get_custom_domain(self, req: Request) -> dict[str, Any]:
        """SCF GetCustomDomain, API 2018-04-16 (doc page "GetCustomDomain"): Domain."""
        with self.lock:
            d = self._custom_domain(req.region, req.params["Domain"])
            return {"Domain": d.domain, "Protocol": d.protocol,
                    "EndpointsConfig": json.loads(json.dumps(d.endpoints)),
                    "CertConfig": {"CertificateId": ""},
                    "WafConfig": {"WafOpen": "CLOSE", "WafInstanceId": ""}, "Tags": []}

    def update_custom_domain(self, req: Request) -> dict[str, Any]:
        """SCF UpdateCustomDomain, API 2018-04-16 (doc page "UpdateCustomDomain"): Domain required;
        Protocol HTTP|HTTPS|HTTP&HTTPS; EndpointsConfig replaces the routes wholesale, each
        naming a function that must exist in the domain's region (a domain is regional)."""
        p = req.params
        with self.lock:
            d = self._custom_domain(req.region, p["Domain"])
            endpoints = p.get("EndpointsConfig")
            if endpoints is not None:
                if not endpoints:
                    raise ApiError("InvalidParameterValue.EndpointsConfig",
                                   "EndpointsConfig needs at least one route")
                for e in endpoints:
                    self._function(req.region, e.get("Namespace", "default"),
                                   e["FunctionName"])
                d.endpoints = endpoints
            if "Protocol" in p:
                d.protocol = p["Protocol"]
        return {}

    # -- CDB -------------------------------------------------------------------------------

    def _instance(self, instance_id: str, region: str | None = None) -> Instance:
        inst = self.instances.get(instance_id)
        if inst is None or (region is not None and inst.region != region):
            raise ApiError("InvalidParameter.InstanceNotFound",
                           f"instance {instance_id} does not exist"
                           + (f" in {region}" if region else ""))
        return inst

    def _info(self, i: Instance) -> dict[str, Any]:
        out: dict[str, Any] = {"InstanceId": i.instance_id, "InstanceType": i.type,
                               "Region": i.region, "Status": 1, "TaskStatus": 0,
                               "Vip": i.vip, "Vport": i.vport}
        if i.type == 2 and i.master:
            m = self.instances[i.master]
            out["MasterInfo"] = {"InstanceId": m.instance_id, "Region": m.region,
                                 "Status": 1}
        if i.type == 1:
            out["DrInfo"] = [{"InstanceId": d.instance_id, "Region": d.region, "Status": 1,
                              "SyncStatus": 2 if d.lag_bytes == 0 else 1}
                             for d in self.instances.values() if d.master == i.instance_id]
        return out

    def describe_db_instances(self, req: Request) -> dict[str, Any]:
        """CDB DescribeDBInstances, API 2017-03-20 (doc page "DescribeDBInstances"):
        InstanceIds filters; InstanceType 1 master, 2 DR; MasterInfo on a DR, DrInfo on a
        master; Vip/Vport the private address."""
        ids = req.params.get("InstanceIds")
        with self.lock:
            items = [self._info(i) for i in self.instances.values()
                     if i.region == req.region and (ids is None or i.instance_id in ids)]
        return {"TotalCount": len(items), "Items": items}

    def modify_read_only(self, req: Request) -> dict[str, Any]:
        """CDB ModifyDBInstanceReadOnlyStatus, API 2017-03-20 (doc page
        "ModifyDBInstanceReadOnlyStatus"): InstanceId,
        ReadOnly 1 set | 0 clear. The instance must be in the request's region."""
        with self.lock:
            self._instance(req.params["InstanceId"], req.region).read_only = \
                req.params["ReadOnly"]
        return {}

    def switch_dr_to_master(self, req: Request) -> dict[str, Any]:
        """CDB SwitchDrInstanceToMaster, API 2017-03-20 (doc page "SwitchDrInstanceToMaster",
        cloud.tencent.com/document/api/236/52562): InstanceId of a DR
        instance, sent to the DR instance's region; IgnoreSyncDelay 0 waits until caught
        up, else the switch fails when more than that many bytes are behind."""
        p = req.params
        delay = p.get("IgnoreSyncDelay", 0)
        if not 0 <= delay <= 104857600:
            raise ApiError("InvalidParameterValue",
                           f"IgnoreSyncDelay {delay}: allowed 0..104857600")
        with self.lock:
            inst = self._instance(p["InstanceId"], req.region)
            if inst.type != 2:
                raise ApiError("OperationDenied.InstanceTypeNotSupported",
                               f"{inst.instance_id} is not a disaster-recovery instance")
            rid = f"async-{uuid.uuid4().hex[:12]}"
            self.requests[rid] = AsyncRequest(rid, inst.instance_id, delay, self.async_polls)
        return {"AsyncRequestId": rid}

    def describe_async(self, req: Request) -> dict[str, Any]:
        """CDB DescribeAsyncRequestInfo, API 2017-03-20 (doc page "DescribeAsyncRequestInfo"):
        AsyncRequestId -> Status INITIAL|RUNNING|SUCCESS|FAILED|KILLED, Info."""
        with self.lock:
            r = self.requests.get(req.params["AsyncRequestId"])
            if r is None:
                raise ApiError("InvalidParameter",
                               f"async request {req.params['AsyncRequestId']} not found")
            if r.status == "RUNNING":
                inst = self.instances[r.instance_id]
                if r.ignore_delay and inst.lag_bytes > r.ignore_delay:
                    r.status, r.info = "FAILED", f"{inst.lag_bytes} bytes behind"
                elif r.polls_left > 0 or (not r.ignore_delay and inst.lag_bytes):
                    r.polls_left -= 1
                else:
                    inst.type, inst.master, inst.read_only = 1, None, 0
                    r.status, r.info = "SUCCESS", "promoted"
            return {"Status": r.status, "Info": r.info}

    # -- the table -------------------------------------------------------------------------

    def _actions(self) -> list[Action]:
        def res(svc: str, kind: str, key: str, regional: bool = True) -> Callable[[Request],
                                                                                  str]:
            def f(req: Request) -> str:
                region = req.region if regional else ""
                return f"qcs::{svc}:{region}:uin/{req.uin}:{kind}/{req.params.get(key, '*')}"
            return f

        def fn_res(req: Request) -> str:
            ns = req.params.get("Namespace", "default")
            return (f"qcs::scf:{req.region}:uin/{req.uin}:namespace/{ns}/function/"
                    f"{req.params['FunctionName']}")

        def secret_res(req: Request) -> str:
            return (f"qcs::ssm:{req.region}:uin/{req.uin}:secret/creatorUin/{req.uin}/"
                    f"{req.params['SecretName']}")

        def one_instance(req: Request) -> str:
            ids = req.params.get("InstanceIds") or []
            rest = ids[0] if len(ids) == 1 else "*"
            return f"qcs::cdb:{req.region}:uin/{req.uin}:instanceId/{rest}"

        s, i, a, o = "String", "Integer", "Array", "Object"
        endpoint = {"Namespace": P(s), "FunctionName": P(s, True), "Qualifier": P(s),
                    "PathMatch": P(s, True), "PathRewrite": P(a)}
        return [
            *alert_actions(self.alerts, self.lock),
            Action("ssm", SSM, "GetSecretValue",
                   {"SecretName": P(s, True), "VersionId": P(s, True)},
                   self.get_secret_value, secret_res),
            Action("dnspod", DNSPOD, "ModifyRecordStatus",
                   {"Domain": P(s, True), "RecordId": P(i, True),
                    "Status": P(s, True, ("ENABLE", "DISABLE")), "DomainId": P(i)},
                   self.modify_record_status, res("dnspod", "domain", "Domain", False),
                   regional=False),
            Action("dnspod", DNSPOD, "DescribeRecordList",
                   {"Domain": P(s, True), "DomainId": P(i), "Subdomain": P(s),
                    "RecordType": P(s), "RecordLine": P(s), "RecordLineId": P(s),
                    "GroupId": P(i), "Keyword": P(s), "SortField": P(s), "SortType": P(s),
                    "Offset": P(i), "Limit": P(i), "ErrorOnEmpty": P(s, False, ("yes", "no"))},
                   self.describe_record_list, res("dnspod", "domain", "Domain", False),
                   regional=False),
            Action("scf", SCF, "Invoke",
                   {"FunctionName": P(s, True),
                    "InvocationType": P(s, False, ("Event", "RequestResponse")),
                    "Qualifier": P(s), "ClientContext": P(s),
                    "LogType": P(s, False, ("None", "Tail")), "Namespace": P(s),
                    "RoutingKey": P(s)},
                   self.invoke, fn_res, cam="InvokeFunction"),
            Action("scf", SCF, "GetFunction",
                   {"FunctionName": P(s, True), "Qualifier": P(s), "Namespace": P(s),
                    "ShowCode": P(s, False, ("TRUE", "FALSE"))},
                   self.get_function, fn_res),
            Action("scf", SCF, "GetCustomDomain", {"Domain": P(s, True)},
                   self.get_custom_domain, res("scf", "customdomain", "Domain")),
            Action("scf", SCF, "UpdateCustomDomain",
                   {"Domain": P(s, True), "Protocol": P(s, False, ("HTTP", "HTTPS",
                                                                   "HTTP&HTTPS")),
                    "CertConfig": P(o), "WafConfig": P(o),
                    "EndpointsConfig": P(a, False, items=endpoint)},
                   self.update_custom_domain, res("scf", "customdomain", "Domain")),
            Action("cdb", CDB, "DescribeDBInstances",
                   {"InstanceIds": P(a), "InstanceTypes": P(a), "WithDr": P(i),
                    "WithMaster": P(i), "WithRo": P(i), "Offset": P(i), "Limit": P(i)},
                   # CAM authorises a look-up of one instance on that instance (the
                   # run time always names exactly one); a listing needs instanceId/*.
                   self.describe_db_instances, one_instance),
            Action("cdb", CDB, "ModifyDBInstanceReadOnlyStatus",
                   {"InstanceId": P(s, True), "ReadOnly": P(i, True, (0, 1))},
                   self.modify_read_only, res("cdb", "instanceId", "InstanceId")),
            Action("cdb", CDB, "SwitchDrInstanceToMaster",
                   {"InstanceId": P(s, True), "IgnoreSyncDelay": P(i)},
                   self.switch_dr_to_master, res("cdb", "instanceId", "InstanceId")),
            Action("cdb", CDB, "DescribeAsyncRequestInfo", {"AsyncRequestId": P(s, True)},
                   self.describe_async,
                   lambda req: f"qcs::cdb:{req.region}:uin/{req.uin}:instanceId/*"),
        ]
