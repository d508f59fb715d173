"""The control plane: the state, lease and pointer store, its credentials, and alert wiring.

The store is a small CDB (MySQL) instance in the control region (the data standby region):
the run-time protocol needs linearizable compare-and-set on a fencing token, which a
single MySQL primary gives with ``UPDATE ... WHERE token = ?`` (one row changed or none).
Its DSN is an SSM secret in the same region; monitors get ``STANDBY_STATE_STORE=mysql``,
``STANDBY_STATE_DSN_SECRET`` and ``STANDBY_STATE_REGION``.

Cloud Monitor has no "send this message now" API, so alerts go out from the monitor itself:
SES SendEmail, SMS SendSms and webhooks whose URLs are SSM secrets in each region.
"""

from __future__ import annotations

import json

import pulumi
from tencentcloud_iac_pulumi import Provider, ccn, ssm

from components.spec import TopologySpec
from components.tencent._common import CamPolicyBuilder, qcs, type_token
from components.tencent.cdb import Cdb, cdb_instance, dsn_secret
from components.tencent.naming import state_dsn_secret

STATE_DATABASE = "standby_state"
STATE_VOLUME_GB = 25


class ControlPlane(pulumi.ComponentResource):
    """Outputs: ``state_store`` (CDB instance), ``state_dsn_secret`` (SSM name),
    ``control_region``, ``webhook_secrets[region]``."""

    state: Cdb
    control_region: str
    state_dsn_secret: str
    webhook_secrets: dict[str, list[tuple[str, str]]]

    def __init__(self, name: str, spec: TopologySpec, providers: dict[str, Provider],
                 secret_values: dict[str, pulumi.Output[str]],
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(type_token("ControlPlane"), name, None, opts)
        assert spec.tencent is not None
        self.spec = spec
        self.owner = spec.tencent.owner_uin
        region = self.control_region = spec.data_standby_region
        tags = {"standby:topology": spec.name}
        self.state = cdb_instance(
            f"{name}-state", instance_name=f"{spec.name}-standby-state",
            database=STATE_DATABASE, volume_gb=STATE_VOLUME_GB,
            network=spec.database.network[region], provider=providers[region], parent=self,
            tags=tags,
        )
        self.state_dsn_secret = state_dsn_secret(spec.name)
        dsn_secret(
            f"{name}-state", secret_name=self.state_dsn_secret,
            host=self.state.instance.intranet_ip, port=self.state.instance.intranet_port,
            cdb=self.state, provider=providers[region], parent=self,
            description=f"{spec.name}: DSN of the standby state, lease and pointer store",
        )
        # Functions in every region reach the store (and the database) privately: one Cloud
        # Connect Network joins the regions' VPCs (CCN "Overview": cross-region VPC routing).
        self.ccn = ccn.Instance(
            f"{name}-ccn", name=f"{spec.name}-standby", description=f"{spec.name} regions",
            charge_type="POSTPAID", qos="AU", bandwidth_limit_type="OUTER_REGION_LIMIT",
            tags=tags, opts=pulumi.ResourceOptions(parent=self, provider=providers[region]),
        )
        for r in spec.all_regions:
            ccn.AttachmentV2(
                f"{name}-ccn-{r}", ccn_id=self.ccn.id, instance_type="VPC",
                instance_id=spec.database.network[r].vpc_id, instance_region=r,
                description=f"{spec.name} {r}",
                opts=pulumi.ResourceOptions(parent=self, provider=providers[region]),
            )
        self.webhook_secrets = {}
        for r in spec.all_regions:
            o = pulumi.ResourceOptions(parent=self, provider=providers[r])
            hooks: list[tuple[str, str]] = []
            for i, hook in enumerate(spec.alerting.webhooks):
                if hook.url.secret_store is not None:
                    hooks.append((hook.kind, hook.url.secret_store))
                    continue
                assert hook.url.config is not None
                sname = f"{spec.name}-webhook-{i}"
                secret = ssm.Secret(f"{name}-webhook-{i}-{r}", secret_name=sname,
                                    description=f"{spec.name}: {hook.kind} alert webhook URL",
                                    recovery_window_in_days=7, is_enabled=True, opts=o)
                ssm.SecretVersion(f"{name}-webhook-{i}-{r}-value",
                                  secret_name=secret.secret_name, version_id="v1",
                                  secret_string=secret_values[hook.url.config], opts=o)
                hooks.append((hook.kind, sname))
            self.webhook_secrets[r] = hooks
        self.register_outputs({"state_dsn_secret": self.state_dsn_secret,
                               "control_region": region})

    # -- what functions get ------------------------------------------------------------------

    def state_env(self) -> dict[str, pulumi.Input[str]]:
        return {
            "STANDBY_STATE_STORE": "mysql",
            "STANDBY_STATE_DSN_SECRET": self.state_dsn_secret,
            "STANDBY_STATE_REGION": self.control_region,
        }

    def alert_env(self, region: str) -> dict[str, pulumi.Input[str]]:
        """The recipients, each channel's sender (``components.runtime.tencent.alerts``)
        and the webhooks' SSM secrets in ``region``."""
        alerting, account = self.spec.alerting, self.spec.tencent
        assert account is not None
        env: dict[str, pulumi.Input[str]] = {
            "STANDBY_ALERT_EMAILS": json.dumps(alerting.emails),
            "STANDBY_ALERT_SMS": json.dumps(alerting.sms),
            "STANDBY_WEBHOOKS": json.dumps([{"kind": k, "secret_name": n, "region": region}
                                            for k, n in self.webhook_secrets[region]]),
        }
        if alerting.emails and account.ses is not None:
            env["STANDBY_ALERT_SES"] = json.dumps(
                {"from": account.ses.from_address, "template_id": account.ses.template_id,
                 "region": account.ses.region}, sort_keys=True)
        if alerting.sms and account.sms is not None:
            env["STANDBY_ALERT_SMS_SENDER"] = json.dumps(
                {"sdk_app_id": account.sms.sdk_app_id, "template_id": account.sms.template_id,
                 "sign_name": account.sms.sign_name, "region": account.sms.region},
                sort_keys=True, ensure_ascii=False)
        return env

    def secret_resource(self, region: str, secret_name: pulumi.Input[str]) -> pulumi.Output[str]:
        """SSM secret as a CAM resource (SSM "Resource-level permissions")."""
        return qcs("ssm", region, self.owner,
                   pulumi.Output.concat("secret/creatorUin/", self.owner, "/", secret_name))

    def allow_state_read(self, policy: CamPolicyBuilder, region: str) -> None:
        """Read the store's DSN; the SQL itself is authorised by the MySQL account."""
        policy.allow(["ssm:GetSecretValue"],
                     [self.secret_resource(self.control_region, self.state_dsn_secret)])

    def allow_alerts(self, policy: CamPolicyBuilder, region: str) -> None:
        if self.spec.alerting.emails:
            policy.allow(["ses:SendEmail"], ["*"])
        if self.spec.alerting.sms:
            policy.allow(["sms:SendSms"], ["*"])
        if self.webhook_secrets[region]:
            policy.allow(["ssm:GetSecretValue"],
                         [self.secret_resource(region, n) for _, n in self.webhook_secrets[region]])
