"""Gateway layer, per region: an API whose backend switches with one API call, no redeploy.

Default ``rest``: a REST API whose Lambda-proxy integration URI names the function through
the stage variable ``logicFunction``. The gateway monitor rebinds the API with one
``UpdateStage`` patch of that variable; nothing is redeployed, and Pulumi ignores the
variable after creation so ``pulumi up`` never undoes a switch. REST APIs are chosen as the
default because stage variables make the switch a single, atomic, read-back-able call and
regional REST custom domains are what Route 53 failover points at.

``http``: an HTTP API whose single integration is switched with ``UpdateIntegration``.
"""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_aws as aws

from components.aws._common import PACKAGE
from components.aws.functions import LogicLayer
from components.spec import TopologySpec

STAGE_VARIABLE = "logicFunction"


class GatewayLayer(pulumi.ComponentResource):
    kind: str
    api_id: pulumi.Output[str]
    stage_name: str
    invoke_url: pulumi.Output[str]
    endpoint_host: pulumi.Output[str]
    """execute-api host of this region, probed directly by health checks and monitors."""
    health_path: str
    """Path (with stage prefix for REST) that answers the deep health check."""
    domain_target: pulumi.Output[str]
    """Regional domain name that DNS points at (the custom domain's regional target)."""
    integration_id: pulumi.Output[str] | None

    def __init__(
        self,
        name: str,
        spec: TopologySpec,
        region: str,
        provider: aws.Provider,
        account: pulumi.Input[str],
        logic: LogicLayer,
        zone_id: pulumi.Input[str],
        dns_provider: aws.Provider,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__(f"{PACKAGE}:aws:GatewayLayer", name, None, opts)
        settings = spec.for_region(region).gateway
        self.kind = settings.kind or spec.gateway_kind
        o = pulumi.ResourceOptions(parent=self, provider=provider)
        tags = {"standby:topology": spec.name, "standby:layer": "gateway"}
        self.integration_id = None
        if self.kind == "rest":
            self._rest(name, spec, region, account, logic, o, tags, settings.stage)
        else:
            self._http(name, spec, region, logic, o, tags)
        self.endpoint_host = pulumi.Output.concat(
            self.api_id, ".execute-api.", region, ".amazonaws.com"
        )

        for side in ("primary", "standby"):
            aws.lambda_.Permission(
                f"{name}-invoke-{side}",
                action="lambda:InvokeFunction",
                function=logic.functions[side].function.name,
                principal="apigateway.amazonaws.com",
                source_arn=pulumi.Output.concat(
                    "arn:aws:execute-api:", region, ":", account, ":", self.api_id, "/*"
                ),
                opts=o,
            )

        domain = settings.domain or spec.domain
        cert_arn: pulumi.Input[str]
        if settings.certificate_arn:
            cert_arn = settings.certificate_arn
        else:
            cert = aws.acm.Certificate(
                f"{name}-cert", domain_name=domain, validation_method="DNS", tags=tags, opts=o
            )
            option = cert.domain_validation_options[0]
            # The same domain validated in several regions yields the same record: overwrite.
            validation = aws.route53.Record(
                f"{name}-cert-validation",
                zone_id=zone_id,
                name=option.resource_record_name,
                type=option.resource_record_type,
                records=[option.resource_record_value],
                ttl=60,
                allow_overwrite=True,
                opts=pulumi.ResourceOptions(parent=self, provider=dns_provider),
            )
            cert_arn = aws.acm.CertificateValidation(
                f"{name}-cert-valid",
                certificate_arn=cert.arn,
                validation_record_fqdns=[validation.fqdn],
                opts=o,
            ).certificate_arn
        if self.kind == "rest":
            dn = aws.apigateway.DomainName(
                f"{name}-domain",
                domain_name=domain,
                regional_certificate_arn=cert_arn,
                endpoint_configuration={"types": "REGIONAL"},
                security_policy="TLS_1_2",
                tags=tags,
                opts=o,
            )
            aws.apigateway.BasePathMapping(
                f"{name}-mapping",
                rest_api=self.api_id,
                # The stage's own output, so the mapping waits for the stage (by name alone
                # CreateBasePathMapping races it: "Invalid stage identifier specified").
                stage_name=self._stage.stage_name,
                domain_name=dn.domain_name,
                opts=o,
            )
            self.domain_target = dn.regional_domain_name
        else:
            dn2 = aws.apigatewayv2.DomainName(
                f"{name}-domain",
                domain_name=domain,
                domain_name_configuration={
                    "certificate_arn": cert_arn,
                    "endpoint_type": "REGIONAL",
                    "security_policy": "TLS_1_2",
                },
                tags=tags,
                opts=o,
            )
            aws.apigatewayv2.ApiMapping(
                f"{name}-mapping",
                api_id=self.api_id,
                domain_name=dn2.domain_name,
                stage=self._stage.name,
                opts=o,
            )
            self.domain_target = dn2.domain_name_configuration.target_domain_name
        self.register_outputs({"invoke_url": self.invoke_url, "kind": self.kind})

    def _rest(
        self,
        name: str,
        spec: TopologySpec,
        region: str,
        account: pulumi.Input[str],
        logic: LogicLayer,
        o: pulumi.ResourceOptions,
        tags: dict[str, str],
        stage: str,
    ) -> None:
        api = aws.apigateway.RestApi(
            f"{name}-api",
            name=f"{spec.name}-{region}",
            endpoint_configuration={"types": "REGIONAL"},
            tags=tags,
            opts=o,
        )
        uri = pulumi.Output.concat(
            "arn:aws:apigateway:", region, ":lambda:path/2015-03-31/functions/arn:aws:lambda:",
            region, ":", account, ":function:${stageVariables.", STAGE_VARIABLE, "}/invocations",
        )
        proxy = aws.apigateway.Resource(
            f"{name}-proxy", rest_api=api.id, parent_id=api.root_resource_id, path_part="{proxy+}",
            opts=o,
        )
        deps: list[pulumi.Resource] = []
        for label, resource_id in (("root", api.root_resource_id), ("proxy", proxy.id)):
            method = aws.apigateway.Method(
                f"{name}-{label}-any",
                rest_api=api.id,
                resource_id=resource_id,
                http_method="ANY",
                authorization="NONE",
                opts=o,
            )
            deps.append(
                aws.apigateway.Integration(
                    f"{name}-{label}-integration",
                    rest_api=api.id,
                    resource_id=resource_id,
                    http_method=method.http_method,
                    integration_http_method="POST",
                    type="AWS_PROXY",
                    uri=uri,
                    opts=o,
                )
            )
        deployment = aws.apigateway.Deployment(
            f"{name}-deployment",
            rest_api=api.id,
            triggers={"integration": "stage-variable-v1"},
            opts=pulumi.ResourceOptions.merge(o, pulumi.ResourceOptions(depends_on=deps)),
        )
        stage_res = aws.apigateway.Stage(
            f"{name}-stage",
            rest_api=api.id,
            deployment=deployment.id,
            stage_name=stage,
            variables={STAGE_VARIABLE: logic.names["primary"]},
            tags=tags,
            # The gateway monitor owns this variable after creation.
            opts=pulumi.ResourceOptions.merge(o, pulumi.ResourceOptions(ignore_changes=["variables"])),  # noqa: E501
        )
        self.api_id = api.id
        self.stage_name = stage
        self._stage: Any = stage_res
        self.invoke_url = stage_res.invoke_url
        self.health_path = f"/{stage}{spec.dns.health_path}"

    def _http(
        self,
        name: str,
        spec: TopologySpec,
        region: str,
        logic: LogicLayer,
        o: pulumi.ResourceOptions,
        tags: dict[str, str],
    ) -> None:
        api = aws.apigatewayv2.Api(
            f"{name}-api", name=f"{spec.name}-{region}", protocol_type="HTTP", tags=tags, opts=o
        )
        integration = aws.apigatewayv2.Integration(
            f"{name}-integration",
            api_id=api.id,
            integration_type="AWS_PROXY",
            integration_uri=logic.arns["primary"],
            payload_format_version="2.0",
            # The gateway monitor owns the target after creation.
            opts=pulumi.ResourceOptions.merge(o, pulumi.ResourceOptions(ignore_changes=["integrationUri"])),  # noqa: E501
        )
        aws.apigatewayv2.Route(
            f"{name}-route",
            api_id=api.id,
            route_key="$default",
            target=pulumi.Output.concat("integrations/", integration.id),
            opts=o,
        )
        stage_res = aws.apigatewayv2.Stage(
            f"{name}-stage", api_id=api.id, name="$default", auto_deploy=True, tags=tags, opts=o
        )
        self.api_id = api.id
        self.stage_name = "$default"
        self._stage = stage_res
        self.invoke_url = stage_res.invoke_url
        self.integration_id = integration.id
        self.health_path = spec.dns.health_path
