"""Deploy a stack's plan into a moto server: what ``pulumi up`` would create, minus the cloud.

The stack's real program runs under ``RecordingMocks``; every registered resource moto can
hold is then created in moto, in registration order (Pulumi registers a resource only once
its inputs are known, so dependencies come first), with the plan's names and inputs.

Identifiers that only the cloud knows (a REST API id, a health check id, a secret's ARN
suffix, a hosted zone id) differ between the plan's mocks and moto. Every such plan value
is recorded in ``Deployment.ids`` with its moto value, and every later input (a policy's
``Resource``, a function's environment, a record's ``healthCheckId``) is rewritten through
that map before it is sent, so the wiring is the plan's wiring.

IAM is enforced (see ``moto_proc``): the deployer spends moto's free calls on a user of its
own, then creates everything with that user's key, as a person running ``pulumi up`` would.
Handlers dispatch on the resource type, so resources that other parts of the program add
later are picked up; a type with no handler is reported, never silently dropped.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from components.plan.mocks import Registration
from components.plan.run import read_stack, run_program
from components.sandbox.deploy_aws import _zones
from components.sandbox.deploy_iam import moto_action_names, policy_for_moto, trust_for_sandbox
from components.sandbox.deploy_model import (
    DEPLOYER_POLICY,
    DEPLOYER_USER,
    HANDLERS,
    NO_API,
    Created,
    Deployment,
    Function,
    Handler,
    RevealingMocks,
    Schedule,
    Skipped,
    plan_id,
)
from components.sandbox.deploy_net import existing_network
from components.sandbox.deploy_rds import relocate_endpoints
from components.sandbox.package import PackageError

__all__ = ["NO_API", "Created", "Deployment", "Function", "Schedule", "Skipped", "deploy_run",
           "deploy_stack", "moto_action_names", "plan_id", "policy_for_moto",
           "trust_for_sandbox"]

# -- driver -------------------------------------------------------------------------------

def _bootstrap_deployer(d: Deployment) -> None:
    """Spend moto's free calls on a user and key of our own (moto_proc.FREE_CALLS)."""
    iam: Any = boto3.client("iam", region_name="us-east-1", endpoint_url=d.moto_url,
                            aws_access_key_id="bootstrap", aws_secret_access_key="bootstrap")
    iam.create_user(UserName=DEPLOYER_USER)
    iam.put_user_policy(UserName=DEPLOYER_USER, PolicyName="deploy-anything",
                        PolicyDocument=json.dumps(DEPLOYER_POLICY))
    key = iam.create_access_key(UserName=DEPLOYER_USER)["AccessKey"]
    d.access_key = (str(key["AccessKeyId"]), str(key["SecretAccessKey"]))


def deploy_run(run: Any, moto_url: str, stack: str = "") -> Deployment:
    """Create every resource of a finished mock run (``PlanRun``) in the moto at ``moto_url``."""
    d = Deployment(moto_url=moto_url, stack=stack, exports=dict(run.exports),
                   clear_inputs=dict(getattr(run.mocks, "clear", {})))
    _bootstrap_deployer(d)
    _zones(d, run.mocks.calls)
    try:
        existing_network(d, run)
    except (ClientError, BotoCoreError, ValueError) as exc:
        d.skipped.append(Skipped("aws:ec2/vpc:Vpc (named by the stack)", "network", "-",
                                 f"failed: {type(exc).__name__}: {exc}"))
    retry: list[tuple[Registration, Handler, str, str]] = []
    for r in run.resources:
        if not r.custom or r.type.startswith("pulumi:providers:"):
            continue
        region = r.region or "us-east-1"
        if r.type in NO_API:
            d.skipped.append(Skipped(r.type, r.name, region, f"not needed: {NO_API[r.type]}"))
            continue
        handler = HANDLERS.get(r.type)
        if handler is None:
            d.skipped.append(Skipped(r.type, r.name, region,
                                     "not created: the sandbox has no handler for this type"))
            continue
        error = _create(d, r, handler, region)
        if error:
            retry.append((r, handler, region, error))
    # Pulumi creates a resource as soon as its inputs are known; one whose real dependency is
    # not among its inputs can reach the cloud first and fail. A second `pulumi up` would
    # create it: so does this retry, and the report keeps the first error.
    for r, handler, region, first in retry:
        error = _create(d, r, handler, region)
        if error:
            d.skipped.append(Skipped(r.type, r.name, region, f"failed: {error}"))
        else:
            d.warnings.append(f"{r.type} {r.name}: created only on a retry; a first "
                              f"`pulumi up` would fail with {first} (a dependency that is "
                              "not among its inputs)")
    return d


def _create(d: Deployment, r: Registration, handler: Handler, region: str) -> str:
    """Create one resource; returns the error text, or "" when it was created."""
    inputs = {k: v for k, v in d.fix(d.inputs_of(r)).items() if k != "code"}
    if d.endpoints:
        inputs = relocate_endpoints(inputs, d.endpoints)
    try:
        cloud_id = handler(d, r, inputs, region)
    except (ClientError, BotoCoreError, KeyError, LookupError, PackageError,
            ValueError, RuntimeError) as exc:
        return f"{type(exc).__name__}: {exc}"
    d.created.append(Created(r.type, r.name, region, cloud_id, inputs))
    return ""


def deploy_stack(stack: str, project_dir: Path, moto_url: str) -> Deployment:
    """Run the stack's real program under mocks, then deploy the result into moto."""
    from components.program import main

    run = run_program(read_stack(stack, project_dir), main, RevealingMocks())
    return deploy_run(run, moto_url, stack)
