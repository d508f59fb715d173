"""The Tencent topology: every layer in every region, and a monitor per layer per region.

Only wiring: what each monitor probes and may switch is computed here from the layers'
outputs and handed to ``LayerMonitor`` as data, so tests read the wiring back from the
registered resources. Switch and probe kinds are the ones the Tencent run time registers:
``dnspod_record_status``, ``scf_custom_domain``, ``tencent_pointer``,
``tencent_pointer_all``, ``cdb_dr_switch``; probes ``http``, ``scf_invoke``, ``cdb_sql``,
``cos_bucket``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pulumi
from tencentcloud_iac_pulumi import Provider, ssm

from components.spec import LAYERS, Layer, TopologySpec
from components.tencent._common import (
    NAMESPACE,
    CamPolicyBuilder,
    bucket_objects,
    bucket_resource,
    qcs,
)
from components.tencent.control import ControlPlane
from components.tencent.data import DataLayer
from components.tencent.dns import DnsLayer
from components.tencent.functions import LogicLayer, WrapperLayer
from components.tencent.gateway import PATH, GatewayLayer
from components.tencent.monitor import LayerMonitor

PROBE_PREFIX = "_standby-probe/"
Wiring = tuple[list[dict[str, Any]], list[dict[str, Any]], CamPolicyBuilder]


def pointer_key(layer: str, region: str | None = None) -> str:
    """Keys in the one pointer store: ``wrapper:<region>`` per region, ``data`` shared."""
    return f"{layer}:{region}" if region else layer


class TencentTopology:
    """Builds the Tencent resources under ``parent``; see ``ActiveStandbyTopology``."""

    def __init__(self, parent: pulumi.ComponentResource, name: str, spec: TopologySpec,
                 providers: dict[str, Provider], secret_values: dict[str, pulumi.Output[str]],
                 project_dir: Path) -> None:
        assert spec.tencent is not None
        self.spec = spec
        self.owner = spec.tencent.owner_uin
        self.app_id = spec.tencent.app_id
        child = pulumi.ResourceOptions(parent=parent)
        self.control = ControlPlane(f"{name}-control", spec, providers, secret_values, child)
        self.data = DataLayer(f"{name}-data", spec, providers, child)
        self.wrappers: dict[str, WrapperLayer] = {}
        self.logic: dict[str, LogicLayer] = {}
        self.gateways: dict[str, GatewayLayer] = {}
        for region in spec.all_regions:
            p = providers[region]
            self.wrappers[region] = WrapperLayer(
                f"{name}-wrapper-{region}", spec, region, p, self.control, self.data, child)
            self.logic[region] = LogicLayer(
                f"{name}-logic-{region}", spec, region, p, self.control, self.wrappers[region],
                project_dir, self._logic_secrets(name, region, p, secret_values, parent), child)
            self.gateways[region] = GatewayLayer(
                f"{name}-gateway-{region}", spec, region, p,
                self.logic[region].functions["primary"].function, child)
        # DNSPod is a global service; its calls go through the first region's provider.
        self.dns = DnsLayer(f"{name}-dns", spec, providers[spec.all_regions[0]], child)
        self.monitors: dict[Layer, dict[str, LayerMonitor]] = {layer: {} for layer in LAYERS}
        for region in spec.all_regions:
            for layer in LAYERS:
                owner: pulumi.ComponentResource = {
                    "dns": self.dns, "data": self.data, "gateway": self.gateways[region],
                    "logic": self.logic[region]}[layer]
                probes, switch, policy = getattr(self, f"_wire_{layer}")(region)
                self.monitors[layer][region] = LayerMonitor(
                    f"{name}-monitor-{layer}-{region}", spec, layer, region, providers[region],
                    spec.for_region(region).monitor.for_layer(layer), probes, switch, policy,
                    self.control, self.data.vpc(region), pulumi.ResourceOptions(parent=owner))

    def _logic_secrets(self, name: str, region: str, provider: Provider,
                       secret_values: dict[str, pulumi.Output[str]],
                       parent: pulumi.Resource) -> dict[str, pulumi.Input[str]]:
        out: dict[str, pulumi.Input[str]] = {}
        for key, ref in self.spec.for_region(region).logic.secret_env.items():
            if ref.secret_store is not None:
                out[key] = ref.secret_store
                continue
            assert ref.config is not None
            sname = f"{self.spec.name}-logic-{key.lower()}"
            o = pulumi.ResourceOptions(parent=parent, provider=provider)
            secret = ssm.Secret(f"{name}-logic-secret-{region}-{key.lower()}",
                                secret_name=sname, recovery_window_in_days=7,
                                is_enabled=True, description=f"{self.spec.name}: {key}", opts=o)
            ssm.SecretVersion(f"{name}-logic-secret-{region}-{key.lower()}-value",
                              secret_name=secret.secret_name, version_id="v1",
                              secret_string=secret_values[ref.config], opts=o)
            out[key] = sname
        return out

    # -- wiring ------------------------------------------------------------------------------

    def _peers(self, region: str) -> list[str]:
        seen: dict[str, None] = {}
        for g in self.spec.region_groups:
            if region in (g.primary, g.standby):
                seen.setdefault(g.primary)
                seen.setdefault(g.standby)
        return list(seen)

    def _http_probe(self, r: str) -> dict[str, Any]:
        gw = self.gateways[r]
        # The region's own entry, not the public name (which follows DNS to one side).
        return {"scope": r, "kind": "http", "url": f"http://{gw.domain_target}{gw.health_path}",
                "host_header": gw.domain, "expect_status": 200}

    def _wire_dns(self, region: str) -> Wiring:
        spec = self.spec
        peers = self._peers(region)
        probes = [self._http_probe(r) for r in peers]
        switch: list[dict[str, Any]] = []
        for group in spec.region_groups:
            if region not in (group.primary, group.standby):
                continue
            for line, recs in self.dns.records[group.name].items():
                switch.append({
                    "scope": group.name, "kind": "dnspod_record_status",
                    "domain": spec.dns.zone, "sub_domain": spec.dns.record,
                    "record_line": line,
                    # dnspod.Record ids are ``<domain>#<RecordId>`` (the provider's import id).
                    "record_ids": {s: r.id for s, r in recs.items()},
                    "regions": {"primary": group.primary, "standby": group.standby},
                })
        policy = CamPolicyBuilder().allow(
            ["dnspod:ModifyRecordStatus", "dnspod:DescribeRecordList"],
            [qcs("dnspod", "", self.owner, f"domain/{spec.dns.zone}")])
        return probes, switch, policy

    def _wire_gateway(self, region: str) -> Wiring:
        probes: list[dict[str, Any]] = []
        switch: list[dict[str, Any]] = []
        policy = CamPolicyBuilder()
        for r in self._peers(region):
            gw, logic = self.gateways[r], self.logic[r]
            probes.append(self._http_probe(r))
            for side, fname in logic.names.items():
                probes.append({"scope": r, "kind": "scf_invoke", "side": side, "region": r,
                               "namespace": NAMESPACE, "function": fname})
            switch.append({
                "scope": r, "kind": "scf_custom_domain", "region": r, "domain": gw.domain,
                "namespace": NAMESPACE, "path": PATH, "values": dict(logic.names),
            })
            policy.allow(["scf:GetCustomDomain", "scf:UpdateCustomDomain"],
                         [qcs("scf", r, self.owner, f"customdomain/{gw.domain}")])
            policy.allow(["scf:InvokeFunction"], list(logic.resources.values()))
        return probes, switch, policy

    def _wire_logic(self, region: str) -> Wiring:
        probes: list[dict[str, Any]] = []
        switch: list[dict[str, Any]] = []
        policy = CamPolicyBuilder()
        for r in self._peers(region):
            wrapper = self.wrappers[r]
            for side, fname in wrapper.names.items():
                probes.append({"scope": r, "kind": "scf_invoke", "side": side, "region": r,
                               "namespace": NAMESPACE, "function": fname})
            switch.append({"scope": r, "kind": "tencent_pointer",
                           "key": pointer_key("wrapper", r),
                           "values": {"primary": "primary", "standby": "standby"}})
            policy.allow(["scf:InvokeFunction"], list(wrapper.resources.values()))
        return probes, switch, policy

    def _wire_data(self, region: str) -> Wiring:
        data, spec = self.data, self.spec
        policy = CamPolicyBuilder()
        probes: list[dict[str, Any]] = []
        switch: list[dict[str, Any]] = []
        if data.db is not None:
            secret = self.control.secret_resource(region, data.db_secret_name)
            policy.allow(["ssm:GetSecretValue"], [secret])
            instances: list[tuple[str, pulumi.Output[str]]] = [
                (data.primary_region, data.db.instance.id)]
            if data.dr is not None:
                instances.append((data.standby_region, data.dr.id))
            for r, iid in instances:
                probes.append({"scope": "data", "kind": "cdb_sql", "engine": "mysql",
                               "region": r, "side": data.side(r), "instance_id": iid,
                               "database": spec.database.name,
                               "secret_name": data.db_secret_name, "secret_region": region})
            policy.allow(["cdb:DescribeDBInstances"],
                         [self._cdb(r, iid) for r, iid in instances])
            if data.dr is not None:
                switch.append({
                    "scope": "data", "kind": "cdb_dr_switch", "region": data.standby_region,
                    "primary_region": data.primary_region,
                    "instance_ids": {"primary": data.db.instance.id, "standby": data.dr.id},
                    "max_lag_s": spec.database.max_lag_s,
                })
                # Fence first (the old primary read-only, if reachable), then promote the DR
                # instance in its own region and poll the async request.
                policy.allow(["cdb:ModifyDBInstanceReadOnlyStatus"],
                             [self._cdb(data.primary_region, data.db.instance.id)])
                policy.allow(["cdb:SwitchDrInstanceToMaster", "cdb:DescribeAsyncRequestInfo"],
                             [self._cdb(data.standby_region, data.dr.id)])
        for r, bucket in data.bucket_names.items():
            probes.append({"scope": "data", "kind": "cos_bucket", "side": data.side(r),
                           "region": r, "bucket": bucket, "probe_key": PROBE_PREFIX})
        if data.bucket_names:
            policy.allow(["cos:HeadBucket"],
                         [bucket_resource(r, self.app_id, b)
                          for r, b in data.bucket_names.items()])
            policy.allow(["cos:GetObject", "cos:PutObject"],
                         [bucket_objects(r, self.app_id, b, PROBE_PREFIX)
                          for r, b in data.bucket_names.items()])
        switch.append({"scope": "data", "kind": "tencent_pointer_all", "key": pointer_key("data"),
                       "values": {"primary": data.primary_region,
                                  "standby": data.standby_region}})
        if len(data.bucket_names) == 2 and spec.storage.replication:
            # After the pointer: the new side takes writes first, then its bucket becomes
            # the replication source (cos_switch).
            switch.append({"scope": "data", "kind": "cos_replication",
                           "role": data.replica_role,
                           "buckets": {data.side(r): {"region": r, "bucket": b}
                                       for r, b in data.bucket_names.items()}})
            policy.allow(["cos:GetBucketReplication", "cos:PutBucketReplication"],
                         [bucket_resource(r, self.app_id, b)
                          for r, b in data.bucket_names.items()])
        return probes, switch, policy

    def _cdb(self, region: str, instance_id: pulumi.Input[str]) -> pulumi.Output[str]:
        return qcs("cdb", region, self.owner, pulumi.Output.concat("instanceId/", instance_id))
