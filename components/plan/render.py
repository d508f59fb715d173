"""Render a plan as text (rich), markdown (for a PR comment), mermaid or JSON."""

from __future__ import annotations

import io
import json
from collections import Counter
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from components.cost import idle_overhead
from components.plan.mocks import Registration
from components.plan.model import Plan, describe_switch

FORMATS = ("text", "markdown", "mermaid", "json")


def mermaid(plan: Plan) -> str:
    spec = plan.spec
    lines = ["flowchart LR", f'  users(["users"]) --> dns{{"DNS {spec.domain} (TTL {spec.dns.ttl_s}s)"}}']  # noqa: E501
    for g in spec.region_groups:
        label = ", ".join(g.lines)
        gid = f"g_{_id(g.name)}"
        lines.append(f'  dns -->|"{label}"| {gid}(["group {g.name}"])')
        lines.append(f"  {gid} -->|primary| r_{_id(g.primary)}_gw")
        lines.append(f"  {gid} -.->|standby| r_{_id(g.standby)}_gw")
    db = spec.db_engine
    for region in spec.all_regions:
        r = _id(region)
        lines += [
            f'  subgraph {r}["{region}"]',
            f'    r_{r}_gw["gateway ({spec.gateway_kind})"]',
            f'    r_{r}_lp["logic primary"]',
            f'    r_{r}_ls["logic standby"]',
            f'    r_{r}_wp["wrapper primary"]',
            f'    r_{r}_ws["wrapper standby"]',
            f'    r_{r}_mon[["monitors: dns, gateway, logic, data"]]',
            f"    r_{r}_gw --> r_{r}_lp",
            f"    r_{r}_gw -.-> r_{r}_ls",
            f"    r_{r}_lp --> r_{r}_wp",
            f"    r_{r}_lp -.-> r_{r}_ws",
            f"    r_{r}_ls --> r_{r}_wp",
            "  end",
        ]
    lines.append(f'  db_p[("{db} primary {spec.data_primary_region}")]')
    lines.append(f'  db_s[("{db} standby {spec.data_standby_region}")]')
    lines.append("  db_p ==>|replication| db_s")
    if spec.storage.enabled:
        lines.append(f'  s3_p[("bucket {spec.data_primary_region}")] <==>|replication| s3_s[("bucket {spec.data_standby_region}")]')  # noqa: E501
    for region in spec.all_regions:
        r = _id(region)
        lines.append(f"  r_{r}_wp --> db_p")
        lines.append(f"  r_{r}_wp -.-> db_s")
        lines.append(f"  r_{r}_mon -. switch .-> r_{r}_gw")
    return "\n".join(lines) + "\n"


def _type_counts(regs: list[Registration]) -> str:
    counts = Counter(r.type.split(":")[-1] for r in regs)
    return ", ".join(f"{t} x{n}" if n > 1 else t for t, n in sorted(counts.items()))


def _id(text: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in text)


def as_json(plan: Plan) -> dict[str, Any]:
    return {
        "project": plan.project,
        "stack": plan.stack,
        "cloud": plan.spec.cloud,
        "regions": plan.spec.all_regions,
        "groups": [g.model_dump() for g in plan.spec.region_groups],
        "resource_count": plan.resource_count,
        "resources": [
            {"layer": layer, "region": region, "resources": [
                {"type": r.type, "name": r.name} for r in regs]}
            for (layer, region), regs in plan.groups.items()
        ],
        "wiring": [
            {"layer": w.layer, "region": w.region, "function": w.function,
             "practice": w.practice, "switches": w.switches, "probe_count": len(w.probes),
             "actions": w.actions}
            for w in plan.wiring
        ],
        "budget": plan.budget.as_dict(),
        "idle_cost": idle_overhead(plan).as_dict(),
        "exports": plan.exports,
        "mermaid": mermaid(plan),
    }


def markdown(plan: Plan) -> str:
    spec = plan.spec
    out = [
        f"## standby plan: `{plan.project}/{plan.stack}` ({spec.cloud})",
        "",
        f"{plan.resource_count} resources in {len(spec.all_regions)} regions "
        f"({', '.join(spec.all_regions)}); public URL `{_public_url(plan)}`. "
        "Offline plan: the Pulumi program ran under mocks (no cloud, no Pulumi CLI).",
        "",
        "### Resources by layer and region",
        "",
        "| layer | region | count | types |",
        "|---|---|---:|---|",
    ]
    for (layer, region), regs in plan.groups.items():
        out.append(f"| {layer} | {region} | {len(regs)} | {_type_counts(regs)} |")
    out += ["", "### Switch wiring", "", "| monitor | layer | region | can switch | IAM actions |",
            "|---|---|---|---|---|"]
    for w in plan.wiring:
        sw = "<br>".join(describe_switch(t) for t in w.switches)
        out.append(f"| `{w.function}` | {w.layer} | {w.region} | {sw} | {', '.join(w.actions)} |")
    out += ["", "### RTO/RPO budget", "", "```", plan.budget.table(), "```", "",
            "### Idle HA overhead per month", "", "```", idle_overhead(plan).table(), "```", "",
            "### Topology", "", "```mermaid", mermaid(plan).rstrip(), "```", ""]
    return "\n".join(out)


def text(plan: Plan, width: int = 140) -> str:
    buf = io.StringIO()
    console = Console(file=buf, width=width, force_terminal=False, color_system=None)
    spec = plan.spec
    console.print(f"standby plan: {plan.project}/{plan.stack} ({spec.cloud}), "
                  f"{plan.resource_count} resources, public URL {_public_url(plan)}")
    console.print("Offline: the Pulumi program ran under mocks (no cloud, no Pulumi CLI).")
    t = Table(title="Resources by layer and region")
    for col in ("layer", "region", "count", "resources"):
        t.add_column(col)
    for (layer, region), regs in plan.groups.items():
        t.add_row(layer, region, str(len(regs)), _type_counts(regs))
    console.print(t)
    w_table = Table(title="Switch wiring: which monitor can switch what, through which API")
    for col in ("monitor", "layer", "region", "can switch", "IAM actions"):
        w_table.add_column(col)
    for w in plan.wiring:
        w_table.add_row(
            w.function + (" (practice)" if w.practice else ""), w.layer, w.region,
            Text("\n".join(describe_switch(s) for s in w.switches)), ", ".join(w.actions),
        )
    console.print(w_table)
    console.print("RTO/RPO budget")
    console.print(plan.budget.table(), markup=False, highlight=False)
    console.print("\nIdle HA overhead per month")
    console.print(idle_overhead(plan).table(), markup=False, highlight=False, soft_wrap=True)
    console.print("\nTopology (mermaid)")
    console.print(mermaid(plan), markup=False, highlight=False)
    return buf.getvalue()


def render(plan: Plan, fmt: str) -> str:
    if fmt == "json":
        return json.dumps(as_json(plan), indent=2, sort_keys=True, default=str) + "\n"
    if fmt == "markdown":
        return markdown(plan)
    if fmt == "mermaid":
        return mermaid(plan)
    if fmt == "text":
        return text(plan)
    raise ValueError(f"--format: {fmt!r} is not one of {', '.join(FORMATS)}")


def _public_url(plan: Plan) -> str:
    """What the program exported (Tencent serves plain HTTP without a certificate)."""
    return str(plan.exports.get("public_url") or f"https://{plan.spec.domain}")
