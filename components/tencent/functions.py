"""Logic and wrapper functions of one region, primary and standby, with their Function URLs.

The logic function is what users run; it reaches data only through the wrapper, whose
active side is read from the pointer in the state store (key ``wrapper@<region>``). The
logic function gets an HTTP trigger (its Function URL), which the region's custom domain
routes to.
"""

from __future__ import annotations

import json
from pathlib import Path

import pulumi
from tencentcloud_iac_pulumi import Provider, scf

from components.spec import TopologySpec
from components.tencent._common import (
    RUNTIME_PYTHON,
    CamPolicyBuilder,
    ScfParts,
    bucket_objects,
    bucket_resource,
    logic_code,
    qcs,
    runtime_code,
    scf_function,
    scf_resource,
    type_token,
)
from components.tencent.control import ControlPlane
from components.tencent.data import DataLayer
from components.tencent.naming import scf_name

SIDES = ("primary", "standby")
WRAPPER_HANDLER = "components.runtime.tencent.wrapper.handler"
#: Function URL: an SCF trigger of type http (SCF "Function URL", doc 583/96099).
FUNCTION_URL = scf.FunctionTriggerArgs(
    name="url",
    type="http",
    trigger_desc=json.dumps({"AuthType": "NONE",
                             "NetConfig": {"EnableIntranet": False, "EnableExtranet": True}},
                            sort_keys=True),
)


class WrapperLayer(pulumi.ComponentResource):
    """Outputs: ``names[side]`` (SCF function names), ``functions[side]``."""

    functions: dict[str, ScfParts]
    names: dict[str, str]

    def __init__(self, name: str, spec: TopologySpec, region: str, provider: Provider,
                 control: ControlPlane, data: DataLayer,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(type_token("WrapperLayer"), name, None, opts)
        assert spec.tencent is not None
        owner = spec.tencent.owner_uin
        wrapper = spec.for_region(region).wrapper
        self.functions, self.names = {}, {}
        for side in SIDES:
            fname = scf_name(spec.name, "wrap", side[0], region)
            policy = CamPolicyBuilder()
            control.allow_state_read(policy, region)
            if data.db is not None:
                policy.allow(["ssm:GetSecretValue"],
                             [control.secret_resource(region, data.db_secret_name)])
            if data.dr is not None:
                # The DR instance has no address output; after a data switch the wrapper
                # looks it up (the DSN secret names the instance).
                policy.allow(["cdb:DescribeDBInstances"],
                             [qcs("cdb", data.standby_region, owner,
                                  pulumi.Output.concat("instanceId/", data.dr.id))])
            if data.buckets:
                policy.allow(["cos:GetObject", "cos:PutObject", "cos:DeleteObject",
                              "cos:HeadObject"],
                             [bucket_objects(r, spec.tencent.app_id, n)
                              for r, n in data.bucket_names.items()])
                # object.list is GET Bucket, authorised on the bucket itself.
                policy.allow(["cos:GetBucket"],
                             [bucket_resource(r, spec.tencent.app_id, n)
                              for r, n in data.bucket_names.items()])
            env: dict[str, pulumi.Input[str]] = {
                "STANDBY_TOPOLOGY": spec.name,
                "STANDBY_SIDE": side,
                "STANDBY_REGION": region,
                "STANDBY_POINTER_CACHE_S": str(wrapper.pointer_cache_s),
                "STANDBY_DB_ENGINE": spec.db_engine,
                "STANDBY_DATA_REGIONS": json.dumps([data.primary_region, data.standby_region]),
                **control.state_env(),
                "STANDBY_DB_SECRET": data.db_secret_name if data.db is not None else "",
                "STANDBY_BUCKETS": json.dumps(data.bucket_names, sort_keys=True),
            }
            self.functions[side] = scf_function(
                f"{name}-{side}", function_name=fname, code=runtime_code(),
                handler=WRAPPER_HANDLER, runtime=RUNTIME_PYTHON, memory_mb=wrapper.memory_mb,
                timeout_s=wrapper.timeout_s, env=env, policy=policy, parent=self,
                provider=provider, tags={"standby:topology": spec.name, "standby:side": side},
                vpc=data.vpc(region),
            )
            self.names[side] = fname
        self.resources = {s: scf_resource(region, owner, n) for s, n in self.names.items()}
        self.register_outputs({"names": self.names})


class LogicLayer(pulumi.ComponentResource):
    """Outputs: ``names[side]``, ``functions[side]`` (each with a Function URL trigger)."""

    functions: dict[str, ScfParts]
    names: dict[str, str]

    def __init__(self, name: str, spec: TopologySpec, region: str, provider: Provider,
                 control: ControlPlane, wrapper: WrapperLayer, project_dir: Path,
                 secret_names: dict[str, pulumi.Input[str]],
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(type_token("LogicLayer"), name, None, opts)
        assert spec.tencent is not None
        owner = spec.tencent.owner_uin
        logic = spec.for_region(region).logic
        code = logic_code(project_dir / logic.code)
        self.functions, self.names = {}, {}
        for side in SIDES:
            fname = scf_name(spec.name, "logic", side[0], region)
            policy = CamPolicyBuilder()
            policy.allow(["scf:InvokeFunction"], list(wrapper.resources.values()))
            control.allow_state_read(policy, region)
            if secret_names:
                policy.allow(["ssm:GetSecretValue"],
                             [control.secret_resource(region, n) for n in secret_names.values()])
            env: dict[str, pulumi.Input[str]] = {
                **logic.env,
                "STANDBY_TOPOLOGY": spec.name,
                "STANDBY_SIDE": side,
                "STANDBY_REGION": region,
                "STANDBY_POINTER_CACHE_S": str(spec.for_region(region).wrapper.pointer_cache_s),
                "STANDBY_WRAPPER_PRIMARY": wrapper.names["primary"],
                "STANDBY_WRAPPER_STANDBY": wrapper.names["standby"],
                "STANDBY_DB_ENGINE": spec.db_engine,
                **control.state_env(),
                **{f"{k}_SECRET_NAME": v for k, v in secret_names.items()},
            }
            self.functions[side] = scf_function(
                f"{name}-{side}", function_name=fname, code=code, handler=logic.handler,
                runtime=logic.runtime or spec.runtime, memory_mb=logic.memory_mb,
                timeout_s=logic.timeout_s, env=env, policy=policy, parent=self,
                provider=provider, tags={"standby:topology": spec.name, "standby:side": side},
                triggers=[FUNCTION_URL],
            )
            self.names[side] = fname
        self.resources = {s: scf_resource(region, owner, n) for s, n in self.names.items()}
        self.register_outputs({"names": self.names})
