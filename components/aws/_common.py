"""Shared AWS deploy-time helpers: names, least-privilege policy documents, functions.

Policy documents are plain data built from a list of ``Statement`` so tests (and the policy
pack) can read them without AWS. Every statement names resources; the only ``*`` resources
are the cases AWS offers no narrower resource for, each listed in ``WILDCARD_EXCEPTIONS``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_aws as aws

from components.aws.iam_rules import WILDCARD_EXCEPTIONS
from components.naming import fn_name, region_short

PACKAGE = "standby"
#: CloudWatch namespace every monitor publishes to; PutMetricData is scoped to it by condition.
METRIC_NAMESPACE = "Standby"


RUNTIME_PYTHON = "python3.12"


@dataclass
class Statement:
    actions: list[str]
    resources: list[Any]
    """Strings or ``pulumi.Output[str]``."""
    condition: dict[str, Any] | None = None
    sid: str | None = None


@dataclass
class PolicyBuilder:
    statements: list[Statement] = field(default_factory=list)

    def allow(
        self,
        actions: list[str],
        resources: list[Any],
        condition: dict[str, Any] | None = None,
    ) -> PolicyBuilder:
        if not resources:
            return self
        for action in actions:
            if "*" in action:
                raise ValueError(f"wildcard action {action!r} is not allowed")
        if "*" in resources:
            bad = [a for a in actions if a not in WILDCARD_EXCEPTIONS]
            if bad:
                raise ValueError(f"resource '*' is only allowed for {sorted(WILDCARD_EXCEPTIONS)}")
        self.statements.append(Statement(sorted(set(actions)), resources, condition))
        return self

    def document(self) -> pulumi.Output[str]:
        def render(resolved: list[list[str]]) -> str:
            stmts = []
            for st, res in zip(self.statements, resolved, strict=True):
                body: dict[str, Any] = {
                    "Effect": "Allow",
                    "Action": st.actions,
                    "Resource": sorted(set(res)),
                }
                if st.condition:
                    body["Condition"] = st.condition
                stmts.append(body)
            return json.dumps({"Version": "2012-10-17", "Statement": stmts}, sort_keys=True)

        return pulumi.Output.all(*[pulumi.Output.all(*s.resources) for s in self.statements]).apply(
            lambda parts: render([list(p) for p in parts])
        )


def assume_role_policy(service: str) -> str:
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Service": service},
                    "Action": "sts:AssumeRole",
                }
            ],
        }
    )


def log_group_arn(
    region: str, account: pulumi.Input[str], function_name: str
) -> pulumi.Output[str]:
    return pulumi.Output.concat(
        "arn:aws:logs:", region, ":", account, ":log-group:/aws/lambda/", function_name, ":*"
    )


SECRET_SUFFIX = re.compile(r"-[A-Za-z0-9]{6}$")


def secret_resource(arn: str) -> str:
    """The IAM ``Resource`` for a Secrets Manager secret given by ARN.

    A complete ARN ends in ``-`` and six random characters Secrets Manager adds; a partial
    ARN (without them) matches nothing in a policy, so it gets the ``-??????`` wildcard AWS
    documents for that case. A bare name is refused: it is not a resource.
    """
    parts = arn.split(":")
    if not arn.startswith("arn:") or len(parts) < 7 or parts[2] != "secretsmanager" \
            or parts[5] != "secret" or not parts[6]:
        raise ValueError(
            f"secret_store: {arn!r} is not a Secrets Manager secret ARN; give the ARN "
            "(arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME-xxxxxx)")
    return arn if SECRET_SUFFIX.search(parts[6]) else f"{arn}-??????"


@dataclass
class FunctionParts:
    function: aws.lambda_.Function
    role: aws.iam.Role
    policy: aws.iam.RolePolicy


def lambda_function(
    name: str,
    *,
    function_name: str,
    region: str,
    account: pulumi.Input[str],
    code: pulumi.Archive,
    handler: str,
    runtime: str,
    memory_mb: int,
    timeout_s: int,
    env: dict[str, pulumi.Input[str]],
    policy: PolicyBuilder,
    parent: pulumi.Resource,
    provider: pulumi.ProviderResource,
    vpc: aws.lambda_.FunctionVpcConfigArgs | None = None,
    layers: list[pulumi.Input[str]] | None = None,
    opts_extra: pulumi.ResourceOptions | None = None,
    tags: dict[str, str] | None = None,
) -> FunctionParts:
    """A function with its own role, its own inline policy and its own log group.

    The log group is created by us (with retention) so the role never needs
    ``logs:CreateLogGroup``, and log permissions name this one group.
    """
    opts = pulumi.ResourceOptions(parent=parent, provider=provider)
    role = aws.iam.Role(
        f"{name}-role",
        assume_role_policy=assume_role_policy("lambda.amazonaws.com"),
        tags=tags,
        opts=opts,
    )
    log_group = aws.cloudwatch.LogGroup(
        f"{name}-logs",
        name=f"/aws/lambda/{function_name}",
        retention_in_days=30,
        tags=tags,
        opts=opts,
    )
    policy.allow(
        ["logs:CreateLogStream", "logs:PutLogEvents"],
        [log_group_arn(region, account, function_name)],
    )
    if vpc is not None:
        policy.allow(
            [
                "ec2:CreateNetworkInterface",
                "ec2:DescribeNetworkInterfaces",
                "ec2:DeleteNetworkInterface",
                "ec2:AssignPrivateIpAddresses",
                "ec2:UnassignPrivateIpAddresses",
            ],
            ["*"],
        )
    role_policy = aws.iam.RolePolicy(
        f"{name}-policy", role=role.id, policy=policy.document(), opts=opts
    )
    fn_opts = pulumi.ResourceOptions(
        parent=parent, provider=provider, depends_on=[log_group, role_policy]
    )
    if opts_extra is not None:
        fn_opts = pulumi.ResourceOptions.merge(fn_opts, opts_extra)
    function = aws.lambda_.Function(
        name,
        name=function_name,
        role=role.arn,
        runtime=runtime,
        handler=handler,
        code=code,
        memory_size=memory_mb,
        timeout=timeout_s,
        environment=aws.lambda_.FunctionEnvironmentArgs(variables=env),
        vpc_config=vpc,
        layers=layers or None,
        tags=tags,
        opts=fn_opts,
    )
    return FunctionParts(function, role, role_policy)


__all__ = ["WILDCARD_EXCEPTIONS", "fn_name", "region_short"]
