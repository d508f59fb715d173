"""The HTTP entry of one region: the logic function's Function URL behind an SCF custom domain.

Tencent API Gateway is retired (no sales since 2024-07-01, batch shutdown from 2026-10-30),
so no ``apigateway.*`` resource is made. The custom domain routes every path to one function
and qualifier; the gateway monitor switches the route between the primary and standby logic
function with ``UpdateCustomDomain`` (switch kind ``scf_custom_domain``).
"""

from __future__ import annotations

import pulumi
from tencentcloud_iac_pulumi import Provider, scf

from components.spec import TopologySpec
from components.tencent._common import NAMESPACE, custom_domain_target, type_token

#: Every path goes to the active logic function (SCF custom domain PathMatch).
PATH = "/*"
#: The qualifier routed to: the function's default alias.
QUALIFIER = "$DEFAULT"


class GatewayLayer(pulumi.ComponentResource):
    """Outputs: ``domain`` (served here), ``domain_target`` (what DNS points at),
    ``health_path``, ``custom_domain``."""

    custom_domain: scf.CustomDomain
    domain: str
    domain_target: str
    health_path: str

    def __init__(self, name: str, spec: TopologySpec, region: str, provider: Provider,
                 logic_primary: scf.Function, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(type_token("GatewayLayer"), name, None, opts)
        assert spec.tencent is not None
        gw = spec.for_region(region).gateway
        self.domain = spec.domain
        self.domain_target = custom_domain_target(spec.tencent.app_id, region)
        self.health_path = spec.dns.health_path
        cert = gw.certificate_arn
        self.custom_domain = scf.CustomDomain(
            f"{name}-domain",
            domain=self.domain,
            protocol="HTTP&HTTPS" if cert else "HTTP",
            cert_config=scf.CustomDomainCertConfigArgs(certificate_id=cert) if cert else None,
            endpoints_configs=[scf.CustomDomainEndpointsConfigArgs(
                namespace=NAMESPACE,
                function_name=logic_primary.name,
                qualifier=QUALIFIER,
                path_match=PATH,
            )],
            opts=pulumi.ResourceOptions(parent=self, provider=provider,
                                        # the monitor owns the route after the first deploy
                                        ignore_changes=["endpointsConfigs"]),
        )
        self.register_outputs({"domain": self.domain, "domain_target": self.domain_target})
