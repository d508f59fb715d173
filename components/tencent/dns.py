"""DNSPod records: one primary and one standby record per (group, line), one enabled.

The DNS monitor switches a group by enabling the standby record and disabling the primary
one (``ModifyRecordStatus``): no record value is rewritten, so a failed half-switch leaves
both records intact and the monitor can finish or undo it. DNSPod has no health-based
failover records (D-Monitor has no API), so this layer has no data-plane failover of its own.
"""

from __future__ import annotations

import pulumi
from tencentcloud_iac_pulumi import Provider, dnspod

from components.spec import TopologySpec
from components.tencent._common import custom_domain_target, type_token

#: ASCII resource-name suffixes for the Chinese line names (Pulumi URNs accept them, but
#: log and CLI output is easier to read this way).
LINE_SLUG = {"默认": "default", "电信": "telecom", "联通": "unicom", "移动": "mobile",
             "教育网": "edu", "境外": "abroad"}


class DnsLayer(pulumi.ComponentResource):
    """Outputs: ``records[group][line][side]`` (the ``dnspod.Record``), ``targets[region]``."""

    records: dict[str, dict[str, dict[str, dnspod.Record]]]

    def __init__(self, name: str, spec: TopologySpec, provider: Provider,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(type_token("DnsLayer"), name, None, opts)
        assert spec.tencent is not None
        # The DNS monitor owns each record's status after the first deploy: an update must
        # not re-enable a primary it switched away from.
        o = pulumi.ResourceOptions(parent=self, provider=provider, ignore_changes=["status"])
        self.records = {}
        for group in spec.region_groups:
            per_line: dict[str, dict[str, dnspod.Record]] = {}
            for line in group.lines:
                sides: dict[str, dnspod.Record] = {}
                for side, region in (("primary", group.primary), ("standby", group.standby)):
                    sides[side] = dnspod.Record(
                        f"{name}-{group.name}-{LINE_SLUG[line]}-{side}",
                        domain=spec.dns.zone,
                        sub_domain=spec.dns.record,
                        record_line=line,
                        record_type="CNAME",
                        value=custom_domain_target(spec.tencent.app_id, region) + ".",
                        ttl=spec.dns.ttl_s,
                        status="ENABLE" if side == "primary" else "DISABLE",
                        remark=f"standby:{spec.name}:{group.name}:{side}",
                        opts=o,
                    )
                per_line[line] = sides
            self.records[group.name] = per_line
        self.register_outputs({
            "records": {g: {line: {s: r.id for s, r in sides.items()}
                            for line, sides in lines.items()}
                        for g, lines in self.records.items()},
        })
