"""The runbook's operational parts: the exact commands, the per-layer procedures and the
decision tree with its data-loss gate.

Commands are built as argument lists and checked against the CLI's own parser before they
are printed, so a runbook never shows a flag the CLI does not accept (a subcommand another
version lacks, such as ``drill``, is simply left out). Expected output is produced by the
CLI's own status formatter, not retyped.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import shlex
from functools import lru_cache
from types import SimpleNamespace
from typing import TYPE_CHECKING

from components.dr.document import Bullets, Code, Document, Heading, Para, Table
from components.plan.model import describe_switch
from components.spec import TopologySpec

if TYPE_CHECKING:
    from components.dr.inputs import Inputs

#: Clouds whose deployed stack ``standby status``/``switch`` can reach (AWS APIs only).
OPS_CLOUDS = ("aws",)


@lru_cache(maxsize=1)
def _parser() -> argparse.ArgumentParser:
    from components.cli import _parser as cli_parser

    return cli_parser()


def accepted(argv: list[str]) -> bool:
    """Whether the CLI's parser accepts ``argv`` (without ``standby``); nothing runs."""
    sink = io.StringIO()
    try:
        with contextlib.redirect_stderr(sink), contextlib.redirect_stdout(sink):
            _parser().parse_args(argv)
    except SystemExit:
        return False
    return True


def command(*argv: str) -> str:
    """``standby <argv>`` as a shell line, or ValueError if the CLI would refuse it."""
    args = list(argv)
    if not accepted(args):
        raise ValueError(f"the CLI does not accept: standby {shlex.join(args)}")
    return shlex.join(["standby", *args])


def _optional(*argv: str) -> list[str]:
    return [shlex.join(["standby", *argv])] if accepted(list(argv)) else []


def cli_commands(inputs: Inputs, kind: str) -> list[str]:
    s = inputs.stack
    if kind == "drill":
        return _optional("drill", "run", "--stack", s, "--scenario", "region-loss",
                         "--mode", "practice")
    if kind == "readiness":
        return _optional("readiness", "--stack", s, "--format", "json")
    if kind == "evidence" and inputs.spec.cloud in OPS_CLOUDS:
        return [command("status", "--stack", s, "--format", "json", "--limit", "1000")]
    return []


def status_command(inputs: Inputs) -> list[str]:
    if inputs.spec.cloud not in OPS_CLOUDS:
        return [command("plan", "--stack", inputs.stack)]
    return [command("status", "--stack", inputs.stack),
            *cli_commands(inputs, "readiness")]


def _status_example(name: str, layer: str, scope: str, active: str, token: int) -> str:
    from components.cli import _status_text

    healthy = [SimpleNamespace(layer=x, scopes={}, log=[]) for x in ("dns", "gateway",
                                                                     "logic", "data")]
    rec = {"at": 1767225600.0, "scope": scope, "from": "primary", "to": active,
           "by": "ops:you@host#...", "token": token, "practice": False,
           "reason": "runbook: " + layer}
    for row in healthy:
        if row.layer == layer and token:
            row.scopes = {scope: {"active": active, "token": token,
                                  "last_switch_at": 1767225600.0}}
            row.log = [rec]
    return str(_status_text(name, healthy))


def data_reversible(spec: TopologySpec) -> tuple[bool, str]:
    p, s = spec.data_primary_region, spec.data_standby_region
    if not spec.database.replica:
        return False, ("Data: no replica (`database.replica: false`): there is nothing to "
                       "switch to; recovery is a restore from backup.")
    if spec.db_engine == "dynamodb":
        return True, ("Data (DynamoDB global table): a switch moves the data pointer only; "
                      "both replicas stay writable and replicate each other, so the way back "
                      "is the same command with `--to primary`.")
    if spec.cloud == "tencent":
        return False, (f"Data (CDB): SwitchDrInstanceToMaster makes the DR instance in `{s}` "
                       f"the master and ends replication. Switching back needs a new DR "
                       f"instance in `{p}` replicating from it (created outside this "
                       "package today); then a planned switch back.")
    return False, (f"Data (RDS {spec.db_engine}): promoting the replica in `{s}` ends "
                   f"replication. `--to primary` is refused until `{p}` holds a replica of "
                   f"the new primary again (rebuild it as a cross-region read replica); a "
                   "planned switch back then fences, drains and loses nothing.")


def _reversible(spec: TopologySpec, layer: str) -> tuple[bool, str]:
    if layer == "data":
        return data_reversible(spec)
    if spec.cloud not in OPS_CLOUDS:
        return True, f"{layer}: reversible; the way back is the same API call toward primary."
    return True, f"{layer}: reversible; the way back is the same command with `--to primary`."


_WHAT = {"dns": "users reach a region whose entry point fails",
         "gateway": "a region's gateway answers but its logic function fails",
         "logic": "a region's logic answers but its wrapper fails",
         "data": "writes fail or time out against the primary database"}


def scope_regions(inputs: Inputs, layer: str) -> dict[str, list[str]]:
    """Each scope of a layer and the regions whose monitor can switch it, the standby
    regions first (they survive the loss of their primary)."""
    spec = inputs.spec
    standbys = {g.standby for g in spec.region_groups}
    out: dict[str, list[str]] = {}
    for w in inputs.plan.wiring:
        if w.layer != layer:
            continue
        for t in w.switches:
            regions = out.setdefault(str(t["scope"]), [])
            if w.region not in regions:
                regions.append(w.region)
    for regions in out.values():
        regions.sort(key=lambda r: (r not in standbys, spec.all_regions.index(r)
                                    if r in spec.all_regions else 99))
    return out


def _switch(stack: str, layer: str, to: str, reason: str, scope: str, region: str | None,
            *extra: str) -> str:
    where = ("--region", region) if region is not None else ()
    return command("switch", "--stack", stack, "--layer", layer, "--to", to, "--reason",
                   reason, "--scope", scope, *where, *extra)


def layer_procedure(doc: Document, inputs: Inputs, layer: str) -> None:
    spec = inputs.spec
    n = ("dns", "gateway", "logic", "data").index(layer) + 1
    by_scope = scope_regions(inputs, layer)
    scopes = list(by_scope)
    # The CLI uses the control region's monitor unless --region names another; a scope that
    # monitor cannot switch (another group's) needs a region whose monitor can.
    control = spec.data_standby_region
    region_of = {x: None if control in regions else regions[0]
                 for x, regions in by_scope.items()}
    targets = dict.fromkeys(describe_switch(t) for w in inputs.plan.wiring
                            if w.layer == layer for t in w.switches)
    ok, why = _reversible(spec, layer)
    doc.add(Heading(2, f"7.{n} {layer}"),
            Table(["when", "scopes", "what the switch changes", "reversible"],
                  [[_WHAT[layer], ", ".join(f"`{x}`" for x in scopes), "<br>".join(targets),
                    "yes" if ok else "NO"]]))
    if spec.cloud not in OPS_CLOUDS:
        doc.add(Bullets([
            "Look: the cloud console of each target named above, and the monitors' alerts.",
            "Switch by hand only with the incident commander's yes, through the API named "
            "above for the scope that failed, then record who, when and why (the monitors' "
            "switch log will not have it).",
            why]))
        return
    s = inputs.stack
    reason = f"runbook: {layer} to standby"
    first = scopes[0]
    doc.add(Para("1. Look (expected output while nothing has switched):"),
            Code(command("status", "--stack", s)),
            Code(_status_example(spec.name, layer, first, "primary", 0)))
    where = ("--region", region_of[first]) if region_of[first] else ()
    preview = _optional("switch", "--stack", s, "--layer", layer, "--to", "standby",
                        "--reason", reason, "--scope", first, *where, "--dry-run")
    if preview:  # only where this CLI version has a dry run
        doc.add(Para("Preview what would change, without changing it:"), Code(preview[0]))
    doc.add(
            Para("2. Switch only the scope that failed (one line per scope; without "
                 "`--scope` the CLI switches every scope of the layer, which is rarely what "
                 "an incident needs; `--region` where the control region's monitor does not "
                 "switch that scope):"),
            Code("\n".join(_switch(s, layer, "standby", reason, x, region_of[x])
                           for x in scopes)),
            Para(f"Expected: `{layer}/{first}: switched to standby (verified) token N` and exit "
                 "0 (already on that side: exit 0 too). `standby: refused: ...` with exit 1 "
                 "means the standby side fails its own probes or another switch holds the "
                 "lease: nothing changed. The steps below are shown for "
                 f"`{first}`; use the failed scope."),
            Para("3. Only if the standby is known good and its probes are wrong, with the "
                 "incident commander's yes"
                 + (" and past the data-loss gate (§6)" if layer == "data" else "") + ":"),
            Code(_switch(s, layer, "standby", reason, first, region_of[first], "--force")))
    used = region_of[first] or control
    spare = [r for r in by_scope[first] if r != used]
    if spare:
        doc.add(Para(f"If that region's `{layer}` monitor itself is broken, use another "
                     "region's wiring (the state table still decides):"),
                Code(_switch(s, layer, "standby", reason, first, spare[0])))
    doc.add(Para("4. Verify: the scope shows `active=standby` with the new token (times and "
                 "tokens differ), and the public URL answers from the standby:"),
            Code(command("status", "--stack", s)),
            Code(_status_example(spec.name, layer, first, "standby", 1)))
    doc.add(Para("5. Reversible? " + why))
    if ok:
        doc.add(Para("Back (§8):"),
                Code(_switch(s, layer, "primary", f"runbook: {layer} back to primary", first,
                             region_of[first])))


def _label(text: str) -> str:
    return '"' + text.replace('"', "'") + '"'


def decision_tree(spec: TopologySpec) -> str:
    """A Mermaid flowchart: alert → already switched? → which scope → region loss → the
    data-loss gate (replica lag within the RPO, else the approver's yes) → the commands."""
    p = spec.data_primary_region
    approver = spec.dr.data_loss_approver
    dns_self = spec.cloud == "aws" and spec.dns.mode == "health_check"
    if spec.db_engine == "dynamodb":
        gate = (f"DATA-LOSS GATE: global table ReplicationLatency (CloudWatch) within "
                f"targets.rpo_s ({spec.targets.rpo_s:g} s)?")
    else:
        gate = (f"DATA-LOSS GATE: replica lag at most database.max_lag_s "
                f"({spec.database.max_lag_s:g} s) and within targets.rpo_s "
                f"({spec.targets.rpo_s:g} s)?")
    lines = [
        "flowchart TD",
        f"  start([{_label('alert, user report or failed drill')}]) --> "
        f"switched{{{_label('standby status: did a monitor switch already?')}}}",
        f"  switched -->|yes, verified| verify[{_label('verify from outside, inform, collect evidence (sections 7 and 9)')}]",  # noqa: E501
        f"  switched -->|no| scope{{{_label('what is down?')}}}",
        f"  scope -->|one layer in one region| layer[{_label('layer procedure, section 7')}]",
        f"  scope -->|a whole region| region{{{_label(f'does the lost region hold the data primary ({p})?')}}}",  # noqa: E501
        f"  region -->|no| dnsonly[{_label('switch the DNS scope of the lost region')}]",
        f"  region -->|yes| gate{{{_label(gate)}}}",
        f"  gate -->|yes| planned[{_label('switch data to standby without --force, then DNS')}]",
        f"  gate -->|no or unknown| approve{{{_label(f'{approver} accepts losing the writes not replicated?')}}}",  # noqa: E501
        f"  approve -->|yes, recorded| forced[{_label('switch data with --force, count lost writes, then DNS')}]",  # noqa: E501
        f"  approve -->|no| hold[{_label('hold: keep the primary fenced, serve what works, wait for the region')}]",  # noqa: E501
        "  planned --> verify",
        "  forced --> verify",
        "  layer --> verify",
        "  dnsonly --> verify",
    ]
    if dns_self:
        lines.insert(6, f"  scope -.->|{_label('Route 53 health checks move DNS by themselves')}| region")  # noqa: E501
    return "\n".join(lines) + "\n"
