"""One monitor function for one layer in one region (a vantage point), on an SCF timer.

SCF timer triggers take a 7-field cron with seconds and go down to 1 s, so the monitor
probes once per invocation (``STANDBY_LOOP_S=0``); the budget models the same. Timer
triggers always invoke asynchronously; overlapping runs are serialised by the lease in the
state store.

The environment is the same contract as on AWS (``components.runtime``): STANDBY_LAYER,
STANDBY_REGION, STANDBY_TOPOLOGY, STANDBY_SETTINGS, STANDBY_PROBES, STANDBY_SWITCH, plus
STANDBY_STATE_STORE=mysql, STANDBY_STATE_DSN_SECRET, STANDBY_STATE_REGION and the alert
targets (STANDBY_ALERT_EMAILS, STANDBY_ALERT_SMS, STANDBY_WEBHOOKS).
"""

from __future__ import annotations

from typing import Any

import pulumi
from tencentcloud_iac_pulumi import Provider, scf

from components.budget import MONITOR_LOOP_S
from components.spec import Layer, MonitorSettings, TopologySpec
from components.tencent._common import (
    RUNTIME_PYTHON,
    CamPolicyBuilder,
    ScfParts,
    runtime_code,
    scf_function,
    timer_cron,
    type_token,
)
from components.tencent.control import ControlPlane
from components.tencent.naming import monitor_name

MONITOR_HANDLER = "components.runtime.tencent.monitor.handler"
TIMEOUT_S = 30


class LayerMonitor(pulumi.ComponentResource):
    """Outputs: ``function_name``, ``schedule`` (the cron)."""

    function: ScfParts
    function_name: str
    schedule: str

    def __init__(self, name: str, spec: TopologySpec, layer: Layer, region: str,
                 provider: Provider, settings: MonitorSettings, probes: list[dict[str, Any]],
                 switch: list[dict[str, Any]], policy: CamPolicyBuilder, control: ControlPlane,
                 vpc: tuple[str, str] | None,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(type_token("LayerMonitor"), name, None, opts)
        self.layer, self.region = layer, region
        self.function_name = monitor_name(spec.name, layer, region)
        control.allow_state_read(policy, region)
        control.allow_alerts(policy, region)
        self.schedule = timer_cron(settings.interval_s)
        env: dict[str, pulumi.Input[str]] = {
            "STANDBY_TOPOLOGY": spec.name,
            "STANDBY_LAYER": layer,
            "STANDBY_REGION": region,
            "STANDBY_SETTINGS": settings.model_dump_json(),
            "STANDBY_PROBES": pulumi.Output.json_dumps(probes),
            "STANDBY_SWITCH": pulumi.Output.json_dumps(switch),
            "STANDBY_LOOP_S": str(int(MONITOR_LOOP_S["tencent"])),
            **control.state_env(),
            **control.alert_env(region),
        }
        self.function = scf_function(
            f"{name}-fn", function_name=self.function_name, code=runtime_code(),
            handler=MONITOR_HANDLER, runtime=RUNTIME_PYTHON, memory_mb=256,
            timeout_s=TIMEOUT_S, env=env, policy=policy, parent=self, provider=provider,
            tags={"standby:topology": spec.name, "standby:layer": layer},
            triggers=[scf.FunctionTriggerArgs(name="schedule", type="timer",
                                              trigger_desc=self.schedule)],
            # In the region's VPC to reach the state store; public network for probes and
            # the cloud APIs it calls.
            vpc=vpc, public_net=True,
        )
        self.register_outputs({"function": self.function_name, "schedule": self.schedule})
