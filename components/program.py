"""The Pulumi program: stack config -> spec -> topology -> exports.

``__main__.py`` calls ``main()``; ``standby plan`` runs the same function under mocks.
Stack config (``stacks/Pulumi.<stack>.yaml``)::

    config:
      standby:topology: { ...the spec... }
      standby:slackWebhook: { secure: ... }   # referenced as `config: slackWebhook`
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pulumi
from pulumi.runtime.config import get_config

from components.errors import BudgetError, SpecError
from components.spec import TopologySpec, parse_spec
from components.topology import ActiveStandbyTopology, _secret_keys

CONFIG_KEY = "topology"


def load_spec(config: pulumi.Config | None = None) -> TopologySpec:
    """Read ``<project>:topology`` and validate it; bad input raises InputPropertiesError."""
    cfg = config or pulumi.Config()
    raw = cfg.get_object(CONFIG_KEY)
    if raw is None:
        raise pulumi.InputPropertiesError(
            f"stack config {cfg.name}:{CONFIG_KEY} is missing",
            [{"property_path": CONFIG_KEY, "reason": "is required but missing"}],
        )
    try:
        return parse_spec(raw, source=f"{cfg.name}:{CONFIG_KEY}")
    except SpecError as exc:
        raise pulumi.InputPropertiesError(
            str(exc),
            [{"property_path": f"{CONFIG_KEY}.{p.path}".rstrip("."), "reason": p.reason}
             for p in exc.problems],
        ) from None


def secret_values(spec: TopologySpec, config: pulumi.Config | None = None) -> dict[str, pulumi.Output[str]]:  # noqa: E501
    """Values of the secret config keys the spec refers to; each key must really be secret."""
    cfg = config or pulumi.Config()
    out: dict[str, pulumi.Output[str]] = {}
    for key in sorted(_secret_keys(spec)):
        full = f"{cfg.name}:{key}"
        if get_config(full) is None:
            raise pulumi.InputPropertiesError(
                f"config key {full} is referenced as a secret but not set",
                [{"property_path": key, "reason": f"set it with: pulumi config set --secret {key} VALUE"}],  # noqa: E501
            )
        if not pulumi.runtime.is_config_secret(full):
            raise pulumi.InputPropertiesError(
                f"config key {full} holds a plaintext value; secrets must be set with --secret",
                [{"property_path": key, "reason": f"re-set it with: pulumi config set --secret {key} VALUE"}],  # noqa: E501
            )
        out[key] = cfg.require_secret(key)
    return out


def build(spec: TopologySpec, project_dir: Path | None = None) -> ActiveStandbyTopology:
    """Create one provider per region (the only place providers are made) and the topology."""
    dns_provider: Any = None
    if spec.cloud == "tencent":
        providers = _tencent_providers(spec)
    else:
        import pulumi_aws as aws

        tags = {"standby:topology": spec.name, "managed-by": "pulumi"}
        providers = {
            region: aws.Provider(f"aws-{region}", region=region, default_tags={"tags": tags})
            for region in spec.all_regions
        }
        # Route 53 is a global service whose control plane lives in us-east-1.
        dns_provider = providers.get("us-east-1") or aws.Provider(
            "aws-route53", region="us-east-1", default_tags={"tags": tags}
        )
    return ActiveStandbyTopology(
        spec.name,
        spec,
        providers,
        dns_provider=dns_provider,
        secret_values=secret_values(spec),
        project_dir=project_dir or Path.cwd(),
    )


def _tencent_providers(spec: TopologySpec) -> dict[str, Any]:
    """One ``tencentcloud.Provider`` per region. Credentials come from the environment
    (TENCENTCLOUD_SECRET_ID / _SECRET_KEY) or ``tencentcloud:`` stack config, never the spec.
    The engine needs the plugin: ``pulumi plugin install resource tencentcloud
    --server github://api.github.com/tencentcloudstack``."""
    import tencentcloud_iac_pulumi as tencentcloud

    return {region: tencentcloud.Provider(f"tencentcloud-{region}", region=region)
            for region in spec.all_regions}


def main() -> None:
    spec = load_spec()
    try:
        topology = build(spec)
    except BudgetError as exc:
        raise pulumi.RunError(str(exc)) from None
    pulumi.export("public_url", topology.public_url)
    pulumi.export("pointers", topology.pointers)
    pulumi.export("monitors", topology.monitors)
    pulumi.export("alert_topics", topology.alert_topics)
    pulumi.export("dashboard_url", topology.dashboard_url)
    pulumi.export("state_table", topology.state_table)
    pulumi.export("budget", topology.budget.as_dict())
