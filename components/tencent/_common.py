"""Shared pieces of the Tencent components: CAM policy documents, SCF functions, names.

CAM policy syntax is ``{"version": "2.0", "statement": [{"effect", "action", "resource"}]}``
with six-segment ``qcs::service:region:uin/<owner>:<resource>`` resource strings
(CAM "Policy syntax" and "Resource description"). The provider autonames any unset ``name``
(``SetAutonaming`` in the bridge), so every function, role and policy gets an explicit name
the run-time code can address.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
from tencentcloud_iac_pulumi import Provider, cam, scf

# The archive builders are cloud-neutral (zip of components/runtime plus user code); they
# live next to the AWS functions today.
from components.archives import file_archive, logic_zip, runtime_zip

PACKAGE = "standby"
NAMESPACE = "default"
#: SCF runtime of the wrapper and monitor functions (SCF "Runtime" list: Python 3.10).
RUNTIME_PYTHON = "Python3.10"
#: The run role's trust: only SCF may assume it (cam.Role docstring example).
SCF_TRUST = json.dumps({
    "version": "2.0",
    "statement": [{"action": "name/sts:AssumeRole", "effect": "allow",
                   "principal": {"service": ["scf.qcloud.com"]}}],
}, sort_keys=True)


def type_token(cls: str) -> str:
    return f"{PACKAGE}:tencent:{cls}"


def qcs(service: str, region: str, owner: pulumi.Input[str], rest: pulumi.Input[str]) -> pulumi.Output[str]:  # noqa: E501
    """A CAM resource string: ``qcs::<service>:<region>:uin/<owner>:<rest>``."""
    return pulumi.Output.concat("qcs::", service, ":", region, ":uin/", owner, ":", rest)


def scf_resource(region: str, owner: str, function: pulumi.Input[str]) -> pulumi.Output[str]:
    return qcs("scf", region, owner, pulumi.Output.concat("namespace/", NAMESPACE,
                                                          "/function/", function))


def bucket_objects(region: str, app_id: str, bucket: str, prefix: str = "") -> str:
    """COS objects as a CAM resource: ``qcs::cos:<region>:uid/<appid>:<bucket>/<prefix>*``
    (COS "Access policy language", resource format)."""
    return f"qcs::cos:{region}:uid/{app_id}:{bucket}/{prefix}*"


def bucket_resource(region: str, app_id: str, bucket: str) -> str:
    return f"qcs::cos:{region}:uid/{app_id}:{bucket}/"


def custom_domain_target(app_id: str, region: str) -> str:
    """An SCF custom domain CNAMEs to ``<appid>.<region>.tencentscf.com`` (SCF "Custom
    domain" doc, tencentcloud.com/document/product/583/64369); it serves only that region."""
    return f"{app_id}.{region}.tencentscf.com"


def timer_cron(interval_s: int) -> str:
    """A 7-field SCF timer cron (second minute hour day month week year) that fires at least
    every ``interval_s`` seconds, so the budget's one-probe-per-interval model holds.

    ``*/N`` in the seconds field restarts at each minute, so its gaps are N or shorter; above
    a minute the trigger fires on whole minutes, every ``interval_s // 60`` of them.
    """
    if not 1 <= interval_s <= 300:
        raise ValueError(f"monitor interval {interval_s} s is not in 1..300")
    if interval_s < 60:
        return f"*/{interval_s} * * * * * *"
    return f"0 */{interval_s // 60} * * * * *"


@dataclass
class CamStatement:
    actions: list[str]
    resources: list[Any]
    condition: dict[str, Any] | None = None


@dataclass
class CamPolicyBuilder:
    """Least privilege: named actions only, on named resources."""

    statements: list[CamStatement] = field(default_factory=list)

    def allow(self, actions: list[str], resources: list[Any],
              condition: dict[str, Any] | None = None) -> CamPolicyBuilder:
        if not resources:
            return self
        for action in actions:
            if "*" in action or ":" not in action:
                raise ValueError(f"CAM action {action!r} is not allowed; allowed: one named "
                                 "action like scf:InvokeFunction (no wildcard)")
        if any(isinstance(r, str) and r == "*" for r in resources):
            bad = [a for a in actions if a not in RESOURCE_WILDCARD_ACTIONS]
            if bad:
                raise ValueError(f"resource '*' is only allowed for "
                                 f"{sorted(RESOURCE_WILDCARD_ACTIONS)}, not {bad}")
        self.statements.append(CamStatement(sorted(set(actions)), resources, condition))
        return self

    def actions(self) -> list[str]:
        return sorted({a for st in self.statements for a in st.actions})

    def document(self) -> pulumi.Output[str]:
        def render(resolved: list[list[str]]) -> str:
            body = []
            for st, res in zip(self.statements, resolved, strict=True):
                item: dict[str, Any] = {"effect": "allow", "action": st.actions,
                                        "resource": sorted(set(res))}
                if st.condition:
                    item["condition"] = st.condition
                body.append(item)
            return json.dumps({"version": "2.0", "statement": body}, sort_keys=True,
                              ensure_ascii=False)

        return pulumi.Output.all(*[pulumi.Output.all(*s.resources)
                                   for s in self.statements]).apply(
            lambda parts: render([list(p) for p in parts]))


#: Actions that take no resource-level scope: SES and SMS sends are account-wide
#: (CAM "Services that support CAM": SES and SMS authorise at the service level only).
RESOURCE_WILDCARD_ACTIONS = frozenset({"ses:SendEmail", "sms:SendSms"})


def code_path(data: bytes) -> str:
    """``scf.Function(zip_file=...)`` takes a local zip file path."""
    return str(file_archive(data).path)


def runtime_code() -> str:
    return code_path(runtime_zip())


def logic_code(code_dir: Path) -> str:
    return code_path(logic_zip(code_dir))


@dataclass
class ScfParts:
    function: scf.Function
    role: cam.Role
    policy: cam.Policy | None
    name: str


def scf_function(
    resource_name: str,
    *,
    function_name: str,
    code: str,
    handler: str,
    runtime: str,
    memory_mb: int,
    timeout_s: int,
    env: dict[str, pulumi.Input[str]],
    policy: CamPolicyBuilder,
    parent: pulumi.Resource,
    provider: Provider,
    tags: dict[str, str],
    triggers: list[scf.FunctionTriggerArgs] | None = None,
    vpc: tuple[str, str] | None = None,
    public_net: bool = False,
) -> ScfParts:
    """One SCF function with its own run role and least-privilege policy."""
    o = pulumi.ResourceOptions(parent=parent, provider=provider)
    role = cam.Role(
        f"{resource_name}-role",
        name=f"{function_name}-role"[:128],
        document=SCF_TRUST,
        description=f"run role of SCF function {function_name}",
        tags=tags,
        opts=o,
    )
    pol: cam.Policy | None = None
    if policy.statements:
        pol = cam.Policy(
            f"{resource_name}-policy",
            name=f"{function_name}-policy"[:128],
            document=policy.document(),
            description=f"least privilege of SCF function {function_name}",
            opts=o,
        )
        cam.RolePolicyAttachment(
            f"{resource_name}-attach", role_id=role.id, policy_id=pol.id, opts=o,
        )
    fn = scf.Function(
        resource_name,
        name=function_name,
        namespace=NAMESPACE,
        handler=handler,
        runtime=runtime,
        mem_size=memory_mb,
        timeout=timeout_s,
        zip_file=code,
        environment=env,
        role=role.name,
        triggers=triggers,
        vpc_id=vpc[0] if vpc else None,
        subnet_id=vpc[1] if vpc else None,
        enable_public_net=public_net,
        tags=tags,
        opts=pulumi.ResourceOptions(parent=parent, provider=provider,
                                    depends_on=[pol] if pol is not None else None),
    )
    return ScfParts(fn, role, pol, function_name)
