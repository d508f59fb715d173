"""pulumi-policy adapters around the plain rules in ``policy.rules``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pulumi_policy import (
    EnforcementLevel,
    Policy,
    PolicyResource,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)

from policy.rules import RESOURCE_RULES, STACK_RULES, Res, ResourceRule, StackRule


def _provider_region(provider: Any) -> str | None:
    props: Mapping[str, Any] = getattr(provider, "props", None) or {}
    region = props.get("region")
    return region if isinstance(region, str) else None


def res_from_args(args: ResourceValidationArgs) -> Res:
    return Res(
        type=args.resource_type,
        name=args.name,
        urn=args.urn,
        props=dict(args.props),
        region=_provider_region(args.provider),
        parent=getattr(args.opts, "parent", None),
    )


def res_from_policy_resource(r: PolicyResource) -> Res:
    return Res(
        type=r.resource_type,
        name=r.name,
        urn=r.urn,
        props=dict(r.props),
        region=_provider_region(r.provider),
        parent=r.parent.urn if r.parent is not None else None,
    )


def _resource_policy(name: str, description: str, rule: ResourceRule) -> ResourceValidationPolicy:
    def validate(args: ResourceValidationArgs, report: ReportViolation) -> None:
        for message in rule(res_from_args(args)):
            report(message, None)

    return ResourceValidationPolicy(
        name=name, description=description, validate=validate,
        enforcement_level=EnforcementLevel.MANDATORY,
    )


def _stack_policy(name: str, description: str, rule: StackRule) -> StackValidationPolicy:
    def validate(args: StackValidationArgs, report: ReportViolation) -> None:
        for v in rule([res_from_policy_resource(r) for r in args.resources]):
            report(v.message, v.urn)

    return StackValidationPolicy(
        name=name, description=description, validate=validate,
        enforcement_level=EnforcementLevel.MANDATORY,
    )


def policies() -> list[Policy]:
    out: list[Policy] = [
        _resource_policy(name, desc, rule) for name, (desc, rule) in RESOURCE_RULES.items()
    ]
    out.extend(_stack_policy(name, desc, rule) for name, (desc, rule) in STACK_RULES.items())
    return out
