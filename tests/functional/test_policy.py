"""The policy pack over every resource of each example stack, and over broken stacks."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, cast

import pulumi
import pulumi_aws as aws
import pytest
from pulumi_policy import (
    PolicyProviderResource,
    PolicyResource,
    PolicyResourceOptions,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)

from components.plan.mocks import PlanRun
from components.plan.run import StackConfig, read_stack, run_program
from components.program import main
from policy.adapters import policies
from policy.rules import RESOURCE_RULES, STACK_RULES, Res, check_all, schedule_problem
from tests.conftest import EXAMPLE_STACKS, ROOT, minimal_raw, run_raw, run_stack


def as_res(run: PlanRun) -> list[Res]:
    return [
        Res(type=r.type, name=r.name, urn=r.urn, props={**r.inputs, **r.outputs},
            region=r.region, parent=r.parent or None)
        for r in run.resources
    ]


@pytest.mark.parametrize("stack", EXAMPLE_STACKS)
def test_every_rule_passes_on_the_example_stacks(stack: str) -> None:
    resources = as_res(run_stack(stack))
    assert check_all(resources) == []
    # Not vacuous: each rule had its subject in the stack.
    types = {r.type for r in resources}
    assert {"aws:iam/rolePolicy:RolePolicy", "aws:route53/record:Record",
            "aws:lambda/function:Function", "aws:cloudwatch/eventRule:EventRule",
            "aws:s3/bucket:Bucket", "aws:s3/bucketReplicationConfig:BucketReplicationConfig",
            "standby:index:ActiveStandbyTopology"} <= types


def _variant(kind: str) -> dict[str, Any]:
    raw = minimal_raw()
    if kind == "direct-http":
        raw["dns"]["mode"] = "direct"
        raw["gateway"] = {"kind": "http"}
    else:
        net = {"vpc_id": "vpc-1", "subnet_ids": ["subnet-a", "subnet-b"]}
        raw["database"] = {"engine": kind, "max_lag_s": 5,
                           "network": {"us-east-1": net, "us-west-2": net}}
        raw["targets"] = {"rto_s": 900, "rpo_s": 10}
    return raw


@pytest.mark.parametrize("kind", ["direct-http", "postgres"])
def test_switch_permissions_hold_for_every_switch_kind(kind: str) -> None:
    # route53_record, apigw_integration and rds_promote are not in the example stacks; the
    # pack derives their needs (write and read-back) from iam_actions like the others.
    resources = as_res(run_raw(_variant(kind)))
    kinds = {t.get("kind") for r in resources if r.type == "aws:lambda/function:Function"
             for t in json.loads(r.props["environment"]["variables"].get("STANDBY_SWITCH", "[]"))}
    assert {"direct-http": {"route53_record", "apigw_integration"},
            "postgres": {"rds_promote"}}[kind] <= kinds
    assert [v for name, v in check_all(resources)
            if name == "switchable-layers-monitored"] == []


# -- broken stacks: the real program with one invariant broken by a stack transformation ----

Transform = Callable[[pulumi.ResourceTransformationArgs], pulumi.ResourceTransformationResult | None]  # noqa: E501


def _set(args: pulumi.ResourceTransformationArgs, **props: Any) -> pulumi.ResourceTransformationResult:  # noqa: E501
    return pulumi.ResourceTransformationResult({**args.props, **props}, args.opts)


def _ttl(a: pulumi.ResourceTransformationArgs) -> pulumi.ResourceTransformationResult | None:
    return _set(a, ttl=3600) if a.type_ == "aws:route53/record:Record" else None


def _runtime(a: pulumi.ResourceTransformationArgs) -> pulumi.ResourceTransformationResult | None:
    return _set(a, runtime="python2.7") if a.type_ == "aws:lambda/function:Function" else None


def _schedule(a: pulumi.ResourceTransformationArgs) -> pulumi.ResourceTransformationResult | None:
    if a.type_ == "aws:cloudwatch/eventRule:EventRule":
        return _set(a, schedule_expression="rate(1 minutes)")
    return None


def _failover(a: pulumi.ResourceTransformationArgs) -> pulumi.ResourceTransformationResult | None:
    if a.type_ == "aws:route53/record:Record" and a.props.get("failover_routing_policies"):
        return _set(a, failover_routing_policies=[{"type": "PRIMARY_FIRST"}])
    return None


def _wildcard(a: pulumi.ResourceTransformationArgs) -> pulumi.ResourceTransformationResult | None:
    if a.type_ == "aws:iam/rolePolicy:RolePolicy" and "monitor-data" in a.name:
        doc = {"Version": "2012-10-17",
               "Statement": [{"Effect": "Allow", "Action": ["dynamodb:*"], "Resource": "*"}]}
        return _set(a, policy=json.dumps(doc))
    return None


def _versioning(a: pulumi.ResourceTransformationArgs) -> pulumi.ResourceTransformationResult | None:
    if a.type_ == "aws:s3/bucketVersioning:BucketVersioning":
        return _set(a, versioning_configuration={"status": "Suspended"})
    return None


def _replication(a: pulumi.ResourceTransformationArgs) -> pulumi.ResourceTransformationResult | None:  # noqa: E501
    if a.type_ == "aws:s3/bucketReplicationConfig:BucketReplicationConfig":
        rules = [{**r, "status": "Disabled"} for r in cast(list[dict[str, Any]], a.props["rules"])]
        return _set(a, rules=rules)
    return None


def _global_table(a: pulumi.ResourceTransformationArgs) -> pulumi.ResourceTransformationResult | None:  # noqa: E501
    if a.type_ == "aws:dynamodb/table:Table" and a.props.get("replicas"):
        return _set(a, replicas=[{"region_name": "us-east-1"}])
    return None


def _secondary_same_region(a: pulumi.ResourceTransformationArgs) -> pulumi.ResourceTransformationResult | None:  # noqa: E501
    policies_ = cast(list[dict[str, Any]], a.props.get("failover_routing_policies") or [])
    if a.type_ == "aws:route53/record:Record" and policies_ and policies_[0]["type"] == "SECONDARY":
        return _set(a, records=["d-0123456789.execute-api.us-east-1.amazonaws.com"])
    return None


def _no_switch(a: pulumi.ResourceTransformationArgs) -> pulumi.ResourceTransformationResult | None:
    if a.type_ == "aws:lambda/function:Function" and "monitor-gateway" in a.name:
        env = cast(aws.lambda_.FunctionEnvironmentArgs, a.props["environment"])
        variables = {**cast(dict[str, Any], env.variables), "STANDBY_SWITCH": "[]"}
        return _set(a, environment=aws.lambda_.FunctionEnvironmentArgs(variables=variables))
    return None


def _no_permission(a: pulumi.ResourceTransformationArgs) -> pulumi.ResourceTransformationResult | None:  # noqa: E501
    if a.type_ == "aws:iam/rolePolicy:RolePolicy" and "monitor-gateway" in a.name:
        def drop(doc: str) -> str:
            parsed = json.loads(doc)
            parsed["Statement"] = [s for s in parsed["Statement"]
                                   if "apigateway:PATCH" not in s["Action"]]
            return json.dumps(parsed)
        return _set(a, policy=pulumi.Output.from_input(a.props["policy"]).apply(drop))
    return None


def _no_alarm_read(a: pulumi.ResourceTransformationArgs) -> pulumi.ResourceTransformationResult | None:  # noqa: E501
    # The DNS monitor's read-back of the force alarm: only the iam_actions table says the
    # route53_health_metrics switcher needs it, so the pack catching it proves the pack
    # reads that table.
    if a.type_ == "aws:iam/rolePolicy:RolePolicy" and "monitor-dns" in a.name:
        def drop(doc: str) -> str:
            parsed = json.loads(doc)
            parsed["Statement"] = [s for s in parsed["Statement"]
                                   if "cloudwatch:DescribeAlarms" not in s["Action"]]
            return json.dumps(parsed)
        return _set(a, policy=pulumi.Output.from_input(a.props["policy"]).apply(drop))
    return None


BROKEN: dict[str, tuple[Transform, str, str]] = {
    "ttl": (_ttl, "dns-ttl-within-budget", "ttl 3600 s exceeds"),
    "runtime": (_runtime, "valid-enum-values", "runtime: 'python2.7' is not valid"),
    "schedule": (_schedule, "valid-enum-values", "schedule 'rate(1 minutes)' is not valid"),
    "failover": (_failover, "valid-enum-values", "failoverRoutingPolicies.type: 'PRIMARY_FIRST'"),
    "wildcard": (_wildcard, "no-wildcard-iam", "wildcard action 'dynamodb:*'"),
    "versioning": (_versioning, "buckets-versioned-and-replicated", "versioning is not Enabled"),
    "replication": (_replication, "buckets-versioned-and-replicated", "no enabled replication"),
    "global-table": (_global_table, "primary-standby-in-different-regions",
                     "replica in the table's own region us-east-1"),
    "dns-pair": (_secondary_same_region, "primary-standby-in-different-regions",
                 "PRIMARY and SECONDARY both point at us-east-1"),
    "no-switch": (_no_switch, "switchable-layers-monitored", "has no switch target"),
    "no-permission": (_no_permission, "switchable-layers-monitored",
                      "may not apigateway:PATCH"),
    "no-alarm-read": (_no_alarm_read, "switchable-layers-monitored",
                      "may not cloudwatch:DescribeAlarms"),
}


def run_broken(transform: Transform, stack: str = "aws-dev") -> PlanRun:
    cfg: StackConfig = read_stack(stack, ROOT)

    def program() -> None:
        pulumi.runtime.register_stack_transformation(transform)
        main()

    return run_program(cfg, program)


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_the_pack_fails_a_broken_stack(case: str) -> None:
    transform, rule, fragment = BROKEN[case]
    found = check_all(as_res(run_broken(transform)))
    assert found, f"{case}: no violation"
    matching = [v for name, v in found if name == rule and fragment in v.message]
    assert matching, f"{case}: expected {rule} ~ {fragment!r}, got {found}"


def _policy_resources(run: PlanRun) -> list[PolicyResource]:
    by_urn: dict[str, PolicyResource] = {}
    out: list[PolicyResource] = []
    for r in run.resources:
        provider = (PolicyProviderResource("pulumi:providers:aws", {"region": r.region},
                                           r.provider_urn or "", "aws")
                    if r.custom else None)
        pr = PolicyResource(r.type, {**r.inputs, **r.outputs}, r.urn, r.name,
                            PolicyResourceOptions(False, [], False, [], None, [], r.parent),  # type: ignore[arg-type]
                            provider, by_urn.get(r.parent), [], {})
        by_urn[r.urn] = pr
        out.append(pr)
    return out


def _run_pack(run: PlanRun) -> list[tuple[str, str]]:
    """Run the pulumi-policy policies exactly as the analyzer calls them."""
    reported: list[tuple[str, str]] = []
    resources = _policy_resources(run)
    for pol in policies():
        def report(message: str, urn: str | None = None, _n: str = pol.name) -> None:
            reported.append((_n, message))
        if isinstance(pol, ResourceValidationPolicy):
            for r in resources:
                args = ResourceValidationArgs(r.resource_type, r.props, r.urn, r.name, r.opts,
                                              r.provider)
                pol.validate(args, report)
        else:
            assert isinstance(pol, StackValidationPolicy)
            pol.validate(StackValidationArgs(resources), report)
    return reported


def test_the_pulumi_policy_adapters_run_every_rule() -> None:
    names = [p.name for p in policies()]
    assert names == [*RESOURCE_RULES, *STACK_RULES]
    assert _run_pack(run_stack("aws-dev")) == []
    broken = _run_pack(run_broken(_no_permission))
    assert any(n == "switchable-layers-monitored" and "apigateway:PATCH" in m for n, m in broken)
    broken = _run_pack(run_broken(_runtime))
    assert any(n == "valid-enum-values" and "python2.7" in m for n, m in broken)


@pytest.mark.parametrize(
    ("expr", "ok"),
    [("rate(1 minute)", True), ("rate(5 minutes)", True), ("rate(1 minutes)", False),
     ("rate(2 minute)", False), ("rate(0 minutes)", False), ("cron(0 12 * * ? *)", True),
     ("cron(0 12 * * * *)", False), ("cron(0 12 ? * MON *)", True), ("every 5m", False)],
)
def test_schedule_expressions(expr: str, ok: bool) -> None:
    assert (schedule_problem(expr) is None) is ok
