"""``ActiveStandbyTopology``: the whole multi-layer topology as one ComponentResource.

Providers are injected (one per region, plus the one Route 53 calls go through), never
created inside, so a program controls credentials, assume-role and default tags.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pulumi

from components.budget import Budget, check_budget
from components.errors import StandbyError
from components.spec import LAYERS, TopologySpec


class ActiveStandbyTopology(pulumi.ComponentResource):
    """DNS -> gateway -> logic -> wrapper -> database/storage, primary and standby, with a
    monitor per layer per region wired to switch that layer.

    Outputs: ``public_url``, ``pointers`` (where each layer's active side lives),
    ``monitors`` (layer -> region -> function name), ``alert_topics`` (region -> SNS ARN),
    ``dashboard_url`` and ``budget`` (the RTO/RPO budget as data).
    """

    public_url: pulumi.Output[str]
    pointers: pulumi.Output[dict[str, object]]
    monitors: pulumi.Output[dict[str, dict[str, str]]]
    alert_topics: pulumi.Output[dict[str, str]]
    dashboard_url: pulumi.Output[str]
    state_table: pulumi.Output[str]
    budget: Budget

    def __init__(
        self,
        name: str,
        spec: TopologySpec,
        providers: dict[str, Any],
        *,
        dns_provider: Any = None,
        secret_values: dict[str, pulumi.Output[str]] | None = None,
        project_dir: Path | str = ".",
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        # Everything that can be wrong with the input fails here, before any resource exists.
        self.budget = check_budget(spec)
        missing = [r for r in spec.all_regions if r not in providers]
        if missing:
            raise StandbyError(
                f"providers: no provider for region(s) {', '.join(missing)}; pass one "
                f"{PROVIDER_CLASS[spec.cloud]} per region of the topology "
                f"({', '.join(spec.all_regions)})"
            )
        needed = _secret_keys(spec)
        secret_values = secret_values or {}
        absent = sorted(k for k in needed if k not in secret_values)
        if absent:
            raise StandbyError(
                f"secret_values: no value for secret config key(s) {', '.join(absent)}"
            )
        # Registered as the component's inputs, so the policy pack can check resources
        # against the budget the spec was accepted with.
        super().__init__(
            "standby:index:ActiveStandbyTopology",
            name,
            {
                "standby_regions": list(spec.all_regions),
                "standby_budget": _policy_budget(spec, self.budget),
            },
            opts,
        )
        if spec.cloud == "tencent":
            self._build_tencent(name, spec, providers, secret_values, Path(project_dir))
        else:
            self._build_aws(name, spec, providers, dns_provider, secret_values,
                            Path(project_dir))
        self.register_outputs(
            {
                "public_url": self.public_url,
                "pointers": self.pointers,
                "monitors": self.monitors,
                "alert_topics": self.alert_topics,
                "dashboard_url": self.dashboard_url,
                "standby_regions": list(spec.all_regions),
                "standby_budget": _policy_budget(spec, self.budget),
            }
        )

    def _build_aws(self, name: str, spec: TopologySpec, providers: dict[str, Any],
                   dns_provider: Any, secret_values: dict[str, pulumi.Output[str]],
                   project_dir: Path) -> None:
        from components.aws.topology import AwsTopology

        built = AwsTopology(
            self,
            name,
            spec,
            providers,
            dns_provider or providers[spec.all_regions[0]],
            secret_values,
            project_dir,
        )
        self.public_url = pulumi.Output.from_input(f"https://{spec.domain}")
        self.monitors = pulumi.Output.from_input(
            {
                layer: {r: m.function_name for r, m in built.monitors[layer].items()}
                for layer in LAYERS
            }
        )
        tables = built.pointers.tables
        pointers: dict[str, Any] = {
            "dns": {
                "health_check": "Route 53 calculated health checks (endpoint + force alarm)",
                "direct": "Route 53 record (UPSERT by the DNS monitor)",
            }[spec.dns.mode],
            "gateway": {r: pulumi.Output.concat(gw.api_id, "/", gw.stage_name)
                        for r, gw in built.gateways.items()},
            "logic": {r: pulumi.Output.concat(t.name, "#wrapper") for r, t in tables.items()},
            "data": {r: pulumi.Output.concat(t.name, "#data") for r, t in tables.items()},
        }
        self.pointers = pulumi.Output.from_input(pointers)
        self.alert_topics = pulumi.Output.from_input(
            {r: t.arn for r, t in built.control.alert_topics.items()}  # type: ignore[misc]
        )
        self.dashboard_url = built.dashboard_url()
        self.state_table = built.control.state_table.name

    def _build_tencent(self, name: str, spec: TopologySpec, providers: dict[str, Any],
                       secret_values: dict[str, pulumi.Output[str]], project_dir: Path) -> None:
        from components.tencent.topology import TencentTopology, pointer_key

        built = TencentTopology(self, name, spec, providers, secret_values, project_dir)
        # Without a certificate the SCF custom domain serves HTTP only.
        scheme = "https" if spec.gateway.certificate_arn else "http"
        self.public_url = pulumi.Output.from_input(f"{scheme}://{spec.domain}")
        self.monitors = pulumi.Output.from_input(
            {layer: {r: m.function_name for r, m in built.monitors[layer].items()}
             for layer in LAYERS})
        store = built.control.state_dsn_secret
        self.pointers = pulumi.Output.from_input({
            "dns": "DNSPod record status per line (ModifyRecordStatus by the DNS monitor)",
            "gateway": {r: f"SCF custom domain {gw.domain} in {r}"
                        for r, gw in built.gateways.items()},
            "logic": {r: f"{store}#{pointer_key('wrapper', r)}" for r in spec.all_regions},
            "data": f"{store}#{pointer_key('data')}",
        })
        self.alert_topics = pulumi.Output.from_input(
            {r: ", ".join(["ses" if spec.alerting.emails else "", "sms" if spec.alerting.sms
                           else "", *[f"{k}:{n}" for k, n in hooks]]).strip(", ")
             for r, hooks in built.control.webhook_secrets.items()})
        self.dashboard_url = pulumi.Output.from_input(
            "https://console.cloud.tencent.com/monitor/overview")
        self.state_table = pulumi.Output.concat(
            built.control.state.instance.id, "/", built.control.state.database)


PROVIDER_CLASS = {"aws": "aws.Provider", "tencent": "tencentcloud.Provider"}


def _secret_keys(spec: TopologySpec) -> set[str]:
    keys = {h.url.config for h in spec.alerting.webhooks if h.url.config}
    for region in spec.all_regions:
        keys |= {
            ref.config for ref in spec.for_region(region).logic.secret_env.values() if ref.config
        }
    return {k for k in keys if k}


def _policy_budget(spec: TopologySpec, budget: Budget) -> dict[str, float]:
    """The figures the policy pack checks resources against."""
    dns = next(lb for lb in budget.layers if lb.layer == "dns")
    spent = sum(f.seconds or 0.0 for f in (dns.detection, dns.switch))
    return {
        "rto_target_s": budget.rto_target_s,
        "dns_ttl_max_s": max(0.0, budget.rto_target_s - spent),
        "dns_ttl_s": float(spec.dns.ttl_s),
    }
