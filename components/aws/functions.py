"""Logic and wrapper layers: a primary and a standby function per region.

Logic functions run the user's code. ``logic.standby_version`` decides what the standby runs:
- ``same``: both run the code being deployed (a region or function fault is the risk);
- ``pinned``: the standby keeps the code it had (Pulumi ignores its code changes), so a bad
  deploy cannot break both sides; promote it deliberately by switching back to ``same``.

Wrapper functions run this package's run-time code (``components.runtime``) and are the
only path to the data. Only the logic functions' roles are granted ``lambda:InvokeFunction``
on them. On a SQL engine they run in the region's VPC with their own security group and get
the drivers layer (``components.aws.layers``); logic functions never do, as they never talk
to the database directly.
"""

from __future__ import annotations

import json
from pathlib import Path

import pulumi
import pulumi_aws as aws

from components.archives import logic_archive, runtime_archive
from components.aws._common import (
    PACKAGE,
    RUNTIME_PYTHON,
    FunctionParts,
    PolicyBuilder,
    fn_name,
    lambda_function,
    region_short,
)
from components.aws.data import DataLayer
from components.spec import TopologySpec

SIDES = ("primary", "standby")
WRAPPER_HANDLER = "components.runtime.aws.wrapper.handler"


def _arn(region: str, account: pulumi.Input[str], name: str) -> pulumi.Output[str]:
    return pulumi.Output.concat("arn:aws:lambda:", region, ":", account, ":function:", name)


class _TwoSided(pulumi.ComponentResource):
    """A primary and a standby function: parts, names and ARNs by side."""

    functions: dict[str, FunctionParts]
    names: dict[str, str]
    arns: dict[str, pulumi.Output[str]]

    def _start(self, token: str, name: str, opts: pulumi.ResourceOptions | None) -> None:
        super().__init__(token, name, None, opts)
        self.functions, self.names, self.arns = {}, {}, {}

    def _add(
        self, side: str, parts: FunctionParts, fname: str, region: str,
        account: pulumi.Input[str],
    ) -> None:
        self.functions[side] = parts
        self.names[side] = fname
        self.arns[side] = _arn(region, account, fname)


class WrapperLayer(_TwoSided):

    def __init__(
        self,
        name: str,
        spec: TopologySpec,
        region: str,
        provider: aws.Provider,
        account: pulumi.Input[str],
        pointer_table: aws.dynamodb.Table,
        data: DataLayer,
        opts: pulumi.ResourceOptions | None = None,
        *,
        layers: list[pulumi.Input[str]] | None = None,
    ) -> None:
        self._start(f"{PACKAGE}:aws:WrapperLayer", name, opts)
        settings = spec.for_region(region).wrapper
        vpc = data.function_vpc(region, "wrapper")
        secret_arn = data.db_secret_arns.get(region)
        for side in SIDES:
            fname = fn_name(spec.name, "wrap", region_short(region), side)
            policy = PolicyBuilder().allow(["dynamodb:GetItem"], [pointer_table.arn])
            if data.table_arns:
                policy.allow(
                    [
                        # exactly what AwsBackends calls (iam_actions.UNITS)
                        "dynamodb:GetItem",
                        "dynamodb:PutItem",
                        "dynamodb:DeleteItem",
                    ],
                    list(data.table_arns.values()),
                )
            if secret_arn is not None:
                policy.allow(["secretsmanager:GetSecretValue"], [secret_arn])
            if data.buckets:
                policy.allow(["s3:ListBucket"], [b.arn for b in data.buckets.values()])
                policy.allow(
                    ["s3:GetObject", "s3:PutObject"],
                    [pulumi.Output.concat(b.arn, "/*") for b in data.buckets.values()],
                )
            env: dict[str, pulumi.Input[str]] = {
                "STANDBY_TOPOLOGY": spec.name,
                "STANDBY_SIDE": side,
                "STANDBY_REGION": region,
                "STANDBY_POINTER_TABLE": pointer_table.name,
                "STANDBY_POINTER_CACHE_S": str(settings.pointer_cache_s),
                "STANDBY_DB_ENGINE": data.engine,
                "STANDBY_DATA_REGIONS": json.dumps([data.primary_region, data.standby_region]),
            }
            if data.table is not None:
                env["STANDBY_DB_TABLE"] = data.table.name
            if data.db_primary is not None:
                # "host:port" (the instance's endpoint attribute) per region.
                endpoints = {data.primary_region: data.db_primary.endpoint}
                if data.db_replica is not None:
                    endpoints[data.standby_region] = data.db_replica.endpoint
                env["STANDBY_DB_ENDPOINTS"] = pulumi.Output.json_dumps(endpoints)
                env["STANDBY_DB_NAME"] = spec.database.name
                assert secret_arn is not None
                # This region's replica of the secret: readable while another region is down.
                env["STANDBY_DB_SECRET_ARN"] = secret_arn
            if data.buckets:
                env["STANDBY_BUCKETS"] = pulumi.Output.json_dumps(
                    {r: b.bucket for r, b in data.buckets.items()}
                )
            parts = lambda_function(
                f"{name}-{side}",
                function_name=fname,
                region=region,
                account=account,
                code=runtime_archive(),
                handler=WRAPPER_HANDLER,
                runtime=RUNTIME_PYTHON,
                memory_mb=settings.memory_mb,
                timeout_s=settings.timeout_s,
                env=env,
                policy=policy,
                parent=self,
                provider=provider,
                vpc=vpc,
                layers=layers,
                tags={"standby:topology": spec.name, "standby:layer": "wrapper"},
            )
            self._add(side, parts, fname, region, account)
        self.register_outputs({"functions": self.names})


class LogicLayer(_TwoSided):

    def __init__(
        self,
        name: str,
        spec: TopologySpec,
        region: str,
        provider: aws.Provider,
        account: pulumi.Input[str],
        pointer_table: aws.dynamodb.Table,
        wrapper: WrapperLayer,
        secret_arns: dict[str, pulumi.Input[str]],
        project_dir: Path,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        self._start(f"{PACKAGE}:aws:LogicLayer", name, opts)
        settings = spec.for_region(region)
        logic = settings.logic
        code_dir = (project_dir / logic.code).resolve()
        if not code_dir.is_dir():
            raise ValueError(
                f"logic.code: {logic.code!r} is not a directory under {project_dir}; "
                "point it at the folder holding your function's code"
            )
        for side in SIDES:
            fname = fn_name(spec.name, "logic", region_short(region), side)
            policy = (
                PolicyBuilder()
                .allow(["lambda:InvokeFunction"], list(wrapper.arns.values()))
                .allow(["dynamodb:GetItem"], [pointer_table.arn])
            )
            if secret_arns:
                policy.allow(["secretsmanager:GetSecretValue"], list(secret_arns.values()))
            env: dict[str, pulumi.Input[str]] = dict(logic.env)
            env.update(
                {
                    "STANDBY_TOPOLOGY": spec.name,
                    "STANDBY_SIDE": side,
                    "STANDBY_REGION": region,
                    "STANDBY_POINTER_TABLE": pointer_table.name,
                    "STANDBY_POINTER_CACHE_S": str(settings.wrapper.pointer_cache_s),
                    "STANDBY_WRAPPER_PRIMARY": wrapper.names["primary"],
                    "STANDBY_WRAPPER_STANDBY": wrapper.names["standby"],
                    # The example app (and any app on the data client) picks kv or SQL by it.
                    "STANDBY_DB_ENGINE": spec.database.engine or "dynamodb",
                }
            )
            for key, arn in secret_arns.items():
                env[f"{key}_SECRET_ARN"] = arn
            pinned = side == "standby" and logic.standby_version == "pinned"
            parts = lambda_function(
                f"{name}-{side}",
                function_name=fname,
                region=region,
                account=account,
                code=logic_archive(code_dir),
                handler=logic.handler,
                runtime=logic.runtime or spec.runtime,
                memory_mb=logic.memory_mb,
                timeout_s=logic.timeout_s,
                env=env,
                policy=policy,
                parent=self,
                provider=provider,
                opts_extra=pulumi.ResourceOptions(ignore_changes=["code", "sourceCodeHash"])
                if pinned
                else None,
                tags={"standby:topology": spec.name, "standby:layer": "logic"},
            )
            self._add(side, parts, fname, region, account)
        self.register_outputs({"functions": self.names})
