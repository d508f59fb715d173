"""Turn a mock run into the plan: resources by layer and region, switch wiring, budget."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from components.budget import Budget
from components.plan.mocks import PlanRun, Registration
from components.spec import TopologySpec

LAYER_OF_TYPE = {
    "standby:aws:DnsLayer": "dns",
    "standby:aws:GatewayLayer": "gateway",
    "standby:aws:LogicLayer": "logic",
    "standby:aws:WrapperLayer": "wrapper",
    "standby:aws:DataLayer": "data",
    "standby:aws:ControlPlane": "control",
    "standby:aws:PointerStore": "pointers",
    "standby:tencent:DnsLayer": "dns",
    "standby:tencent:GatewayLayer": "gateway",
    "standby:tencent:LogicLayer": "logic",
    "standby:tencent:WrapperLayer": "wrapper",
    "standby:tencent:DataLayer": "data",
    "standby:tencent:ControlPlane": "control",
}
LAYER_ORDER = ["dns", "gateway", "logic", "wrapper", "data", "pointers", "control", "providers"]
#: Global services (Route 53, DNSPod) and provider-less resources (generated passwords).
GLOBAL_PREFIXES = ("aws:route53/", "tencentcloud:Dnspod/", "random:")
#: Monitor functions and their policies, per cloud: (function type, policy type).
FUNCTION_TYPES = {"aws:lambda/function:Function": "aws:iam/rolePolicy:RolePolicy",
                  "tencentcloud:Scf/function:Function": "tencentcloud:Cam/policy:Policy"}


@dataclass
class MonitorWiring:
    layer: str
    region: str
    function: str
    switches: list[dict[str, Any]]
    probes: list[dict[str, Any]]
    actions: list[str]
    practice: bool


@dataclass
class Plan:
    project: str
    stack: str
    spec: TopologySpec
    budget: Budget
    groups: dict[tuple[str, str], list[Registration]] = field(default_factory=dict)
    wiring: list[MonitorWiring] = field(default_factory=list)
    exports: dict[str, Any] = field(default_factory=dict)

    @property
    def resource_count(self) -> int:
        return sum(len(v) for v in self.groups.values())


def _layer_of(reg: Registration, by_urn: dict[str, Registration]) -> str:
    if reg.type.startswith("pulumi:providers:"):
        return "providers"
    seen = 0
    cur: Registration | None = reg
    while cur is not None and seen < 64:
        if cur.type in LAYER_OF_TYPE:
            return LAYER_OF_TYPE[cur.type]
        cur = by_urn.get(cur.parent)
        seen += 1
    return "topology"


def build_plan(project: str, stack: str, spec: TopologySpec, budget: Budget, run: PlanRun) -> Plan:
    plan = Plan(project, stack, spec, budget, exports=run.exports)
    by_urn = run.mocks.by_urn
    for reg in run.resources:
        if not reg.custom:
            continue  # components are structure, not resources
        layer = _layer_of(reg, by_urn)
        region = "global" if reg.type.startswith(GLOBAL_PREFIXES) else (reg.region or "global")
        plan.groups.setdefault((layer, region), []).append(reg)
    policy_types = set(FUNCTION_TYPES.values())
    policies = {(r.type, r.name): r for r in run.resources if r.type in policy_types}
    for reg in run.resources:
        if reg.type not in FUNCTION_TYPES:
            continue
        env = reg.inputs.get("environment") or {}
        if reg.type.startswith("aws:"):
            env = env.get("variables") or {}
        if "STANDBY_LAYER" not in env:
            continue
        policy = policies.get((FUNCTION_TYPES[reg.type], f"{reg.name}-policy"))
        actions: list[str] = []
        if policy is not None:
            actions = _policy_actions(policy)
        settings = json.loads(env["STANDBY_SETTINGS"])
        plan.wiring.append(
            MonitorWiring(
                layer=env["STANDBY_LAYER"],
                region=env["STANDBY_REGION"],
                function=str(reg.inputs.get("name")),
                switches=json.loads(env["STANDBY_SWITCH"]),
                probes=json.loads(env["STANDBY_PROBES"]),
                actions=actions,
                practice=bool(settings.get("practice")),
            )
        )
    order = {name: i for i, name in enumerate(LAYER_ORDER)}
    plan.groups = dict(
        sorted(plan.groups.items(), key=lambda kv: (order.get(kv[0][0], 99), kv[0][1]))
    )
    plan.wiring.sort(key=lambda w: (LAYER_ORDER.index(w.layer), w.region))
    return plan


def _policy_actions(policy: Registration) -> list[str]:
    """Actions of an IAM (``Statement``/``Action``) or CAM (``statement``/``action``) policy."""
    if policy.type.startswith("aws:"):
        doc = json.loads(policy.inputs["policy"])
        return sorted({a for st in doc["Statement"] for a in st["Action"]})
    doc = json.loads(policy.inputs["document"])
    return sorted({a for st in doc["statement"] for a in st["action"]})


def describe_switch(target: dict[str, Any]) -> str:
    """One line: what a switch target changes and through which API."""
    kind = target.get("kind")
    scope = target.get("scope")
    if kind == "route53_health_metrics":
        return (f"[{scope}] Route 53 health of {target['region']} via CloudWatch metric "
                f"{target['force_metric']} (alarm {target['force_alarm']})")
    if kind == "route53_record":
        return f"[{scope}] UPSERT {target['type']} {target['name']} in zone {target['zone_id']}"
    if kind == "apigw_stage_variable":
        return (f"[{scope}] UpdateStage {target['rest_api_id']}/{target['stage']} variable "
                f"{target['variable']}: {target['values']['primary']} <-> "
                f"{target['values']['standby']}")
    if kind == "apigw_integration":
        return f"[{scope}] UpdateIntegration {target['api_id']}/{target['integration_id']}"
    if kind == "pointer":
        return (f"[{scope}] conditional write {target['table']}#{target['key']} "
                f"({target['region']}), fenced by token")
    if kind == "pointer_all":
        tables = ", ".join(f"{t['table']}@{t['region']}" for t in target["tables"])
        return (f"[{scope}] conditional write #{target['key']} in {tables}: "
                f"{target['values']['primary']} <-> {target['values']['standby']}")
    if kind == "rds_promote":
        return (f"[{scope}] PromoteReadReplica {target['instance_id']} ({target['region']}) "
                f"if lag <= {target['max_lag_s']} s")
    if kind == "dnspod_record_status":
        return (f"[{scope}] DNSPod ModifyRecordStatus {target['sub_domain']}.{target['domain']} "
                f"line {target['record_line']}: ENABLE one side, DISABLE the other")
    if kind == "scf_custom_domain":
        return (f"[{scope}] UpdateCustomDomain {target['domain']} ({target['region']}) "
                f"{target['path']}: {target['values']['primary']} <-> "
                f"{target['values']['standby']}")
    if kind == "tencent_pointer":
        return f"[{scope}] conditional write {target['key']} in the CDB state store, fenced"
    if kind == "tencent_pointer_all":
        return (f"[{scope}] conditional write {target['key']} in the CDB state store: "
                f"{target['values']['primary']} <-> {target['values']['standby']}")
    if kind == "cdb_dr_switch":
        return (f"[{scope}] SwitchDrInstanceToMaster {target['instance_ids']['standby']} "
                f"({target['region']}) if lag <= {target['max_lag_s']} s")
    return f"[{scope}] {kind}"
