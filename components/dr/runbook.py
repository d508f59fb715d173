"""``standby runbook``: the DR runbook of one stack, generated from what the package knows.

Sources: the validated spec (targets, regions, monitors, ``dr`` contacts), the RTO/RPO
budget, the offline plan (monitor functions, switch wiring, state table, alert topics,
dashboard), the alert routes, and, when present, the last drill result and a readiness
result. Every ``standby ...`` command printed is one the CLI parser accepts (a test parses
each); commands that talk to a deployed stack are printed only where the CLI can run them.
The runbook embeds the hashes of the spec and of the drill result it read;
``standby runbook --check FILE`` reports it stale when either changed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import shlex
import sys
from pathlib import Path
from typing import Any

from components.budget import Budget
from components.dr.document import (
    Banner,
    Bullets,
    Code,
    Comment,
    Document,
    Heading,
    Para,
    Table,
    render,
)
from components.dr.inputs import (
    Inputs,
    RunbookInputError,
    gather,
    marker_comment,
    read_marker,
    stale_reasons,
)
from components.dr.procedures import (
    cli_commands,
    data_reversible,
    decision_tree,
    layer_procedure,
    status_command,
)
from components.plan.model import describe_switch
from components.plan.render import mermaid
from components.spec import LAYERS, TopologySpec

ROLE_DUTIES = {
    "incident_commander": "declares the incident, decides which procedure runs, owns the "
                          "timeline and the go/no-go of every irreversible step",
    "operator": "runs the `standby` commands below and reads their output back to the "
                "incident commander",
    "database_owner": "judges replication lag and lost writes at the data-loss gate; "
                      "re-protects the database afterwards",
    "communications": "tells users and stakeholders what is down, what was done and when, "
                      "at a fixed cadence",
}

ALERTS = [
    ("`<layer>/<scope>: switched to standby`", "critical",
     "a monitor failed the scope over (quorum reached)", "verify from outside (§7), "
     "inform, start evidence (§9)"),
    ("`<layer>/<scope>: switch to <side> FAILED` / `... unverified`", "critical",
     "a switch started and did not finish; its intent stays in the state table and the next "
     "round resumes or rolls it back", "`standby status`; do not switch by hand while an "
     "intent is open"),
    ("`<layer>/<scope>: state store failing`", "critical",
     "a monitor cannot read or write the state table: it can neither vote nor switch",
     "check the control region; automatic switching is off until it is back (fail closed)"),
    ("`<layer>: <switcher problem>`", "critical",
     "a switch target cannot be read or written (permissions, deleted resource)",
     "fix the target; `standby plan` shows the expected wiring"),
    ("`<layer>/<scope>: attention`", "warning",
     "the monitors disagree or the standby is unhealthy too; nothing switched",
     "look at both sides; consider the layer procedure"),
    ("`<layer>/<scope>: <probe> failing on <side>`", "warning",
     "a dependency (for example a bucket) fails; the layer is not switched for it",
     "fix or fail over the dependency separately"),
    ("`[practice] <layer>/<scope>: would switch`", "warning",
     "a monitor in practice mode decided to switch and did not", "exercise evidence; "
     "compare with the budget"),
    ("`<layer>/<scope>: unfinished switch rolled back`", "warning",
     "a crashed switch was undone because its target side is not healthy", "`standby status`"),
]


def _fmt_s(seconds: float | None) -> str:
    return "unbounded" if seconds is None else f"{seconds:g} s"


def _objectives(doc: Document, spec: TopologySpec, budget: Budget) -> None:
    doc.add(Heading(1, "1. Objectives"),
            Para(f"Targets from the spec: RTO `targets.rto_s` = {spec.targets.rto_s} s, "
                 f"RPO `targets.rpo_s` = {spec.targets.rpo_s:g} s"
                 + (f", object RPO {spec.targets.object_rpo_s:g} s."
                    if spec.targets.object_rpo_s is not None else ".")
                 + " The worst case per layer is the budget (`components.budget`); a stack "
                 "whose budget misses a target gets no plan and no runbook (exit 2)."))
    rows = [[lb.layer, lb.switches, _fmt_s(lb.detection.seconds), _fmt_s(lb.switch.seconds),
             _fmt_s(lb.propagation.seconds), f"{lb.rto_s:g} s",
             f"{budget.rto_target_s:g} s",
             "yes" if lb.detection.seconds is not None and lb.rto_s <= budget.rto_target_s
             else "NO"] for lb in budget.layers]
    doc.add(Table(["layer", "what switches", "detection", "switch", "propagation",
                   "worst-case RTO", "target", "fits"], rows))
    doc.add(Table(["store", "replication", "RPO", "guaranteed", "target"],
                  [[rb.store, rb.replication, rb.figure.text(),
                    "yes" if rb.guaranteed else "no",
                    "-" if rb.target_s is None else f"{rb.target_s:g} s"]
                   for rb in budget.rpo]))
    doc.add(Para("Where each figure comes from:"),
            Bullets([f"{lb.layer} detection: {lb.detection.source}" for lb in budget.layers]
                    + [f"{lb.layer} switch: {lb.switch.source}" for lb in budget.layers]
                    + [f"{rb.store} RPO: {rb.figure.source}" for rb in budget.rpo]))


def _scope(doc: Document, inputs: Inputs) -> None:
    spec, plan = inputs.spec, inputs.plan
    ex = plan.exports
    items = [
        f"Public URL: `{ex.get('public_url') or 'https://' + spec.domain}`; DNS "
        f"`{spec.dns.record}.{spec.dns.zone}` mode `{spec.dns.mode}`, TTL {spec.dns.ttl_s} s.",
        f"Database: `{spec.db_engine}`, writes in `{spec.data_primary_region}`, standby in "
        f"`{spec.data_standby_region}` (lag guard `database.max_lag_s` = "
        f"{spec.database.max_lag_s:g} s).",
        f"Control region (state table, default region of `standby switch`): "
        f"`{spec.data_standby_region}`; state store `{ex.get('state_table', '-')}`.",
        "Object storage: "
        + ("replicated both ways" if spec.storage.enabled and spec.storage.replication
           else "not replicated" if spec.storage.enabled else "none") + ".",
    ]
    if ex.get("dashboard_url"):
        items.append(f"Dashboard: {ex['dashboard_url']}")
    witness = getattr(spec, "witness", None)
    items.append("Witness: " + (f"`{getattr(witness, 'region', witness)}`" if witness
                                else "none (two vantage points per layer)"))
    doc.add(Heading(1, "2. Scope and topology"), Bullets(items))
    doc.add(Table(["group", "primary", "standby", "DNS lines"],
                  [[g.name, g.primary, g.standby, ", ".join(g.lines)]
                   for g in spec.region_groups]))
    doc.add(Para("Monitors (one per layer and region; names from the offline plan):"),
            Table(["layer", "region", "function", "can switch"],
                  [[w.layer, w.region, f"`{w.function}`",
                    "; ".join(describe_switch(t) for t in w.switches)]
                   for w in plan.wiring]),
            Code(mermaid(plan), "mermaid"))


def _risks(doc: Document, inputs: Inputs) -> None:
    spec, budget = inputs.spec, inputs.plan.budget
    by_layer = {lb.layer: lb for lb in budget.layers}
    rows = []
    what = {"dns": "a region's public entry point fails (gateway, certificate, region edge)",
            "gateway": "the logic function behind a region's gateway fails",
            "logic": "the wrapper a region's logic calls fails",
            "data": "the primary database fails or is unreachable"}
    for layer in LAYERS:
        m = spec.monitor.for_layer(layer)
        lb = by_layer[layer]
        auto = (f"{lb.switches}, after quorum {m.quorum} of {spec.vantage_points()} vantage "
                f"points agree; worst case {lb.rto_s:g} s")
        if m.practice:
            auto = "none: `practice: true` (decide and alert only)"
        if layer == "data" and spec.db_engine != "dynamodb":
            auto += (f"; never promotes a replica lagging more than "
                     f"{spec.database.max_lag_s:g} s")
        rows.append([what[layer],
                     f"{layer} monitors: {m.failure_threshold} failed probes every "
                     f"{m.interval_s} s (detection {_fmt_s(lb.detection.seconds)})",
                     auto, f"§7 {layer} procedure"])
    for lost in dict.fromkeys([g.primary for g in spec.region_groups]
                              + [spec.data_primary_region]):
        rows.append([f"region `{lost}` lost (everything in it)", *_region_loss(spec, lost)])
    control = spec.data_standby_region
    led = [g.name for g in spec.region_groups if g.primary == control]
    rows.append([f"control region `{control}` lost",
                 "monitors alert `state store failing`",
                 "none: no monitor can vote or switch without the state table (fail closed)"
                 + ("; Route 53 health checks still move DNS by themselves"
                    if spec.cloud == "aws" and spec.dns.mode == "health_check" else ""),
                 "wait for the region; the data primary keeps serving"
                 + (f"; `{control}` is also the primary of group(s) {', '.join(led)}: their "
                    "users follow the region-loss row above" if led else "")])
    rows.append(["a monitor function fails (code, permissions, quota)",
                 "the monitor's errors alarm and `... FAILED` alerts" if spec.cloud == "aws"
                 else "the monitor's own alerts", "the other region's monitor still votes; "
                 "no switch without quorum", "fix and redeploy (`pulumi up`); §7 by hand "
                 "meanwhile"])
    doc.add(Heading(1, "3. Risk register"),
            Table(["scenario", "detection", "automatic response", "manual response"], rows))


def _region_loss(spec: TopologySpec, lost: str) -> list[str]:
    witness = getattr(spec, "witness", None)
    survivors = 1 + (1 if witness is not None else 0)
    automatic = [layer for layer in LAYERS if spec.monitor.for_layer(layer).quorum <= survivors
                 and not spec.monitor.for_layer(layer).practice]
    dns_self = spec.cloud == "aws" and spec.dns.mode == "health_check"
    holds_data = lost == spec.data_primary_region
    auto = (f"layers that fail over without the lost region's vote: {', '.join(automatic)}"
            if automatic else f"none through the monitors: quorum needs {survivors + 1} "
            f"vantage points and only {survivors} remain{'s' if survivors == 1 else ''}")
    if dns_self:
        auto += "; Route 53's own endpoint health checks answer with the other region"
    manual = ("§6 decision tree: data first through the data-loss gate, then DNS"
              if holds_data else "§6 decision tree: DNS scope of the lost region")
    return [f"every monitor in `{lost}` goes silent; the survivors' probes fail", auto, manual]


def _contacts(doc: Document, spec: TopologySpec) -> None:
    doc.add(Heading(1, "4. Roles and contacts"))
    if not spec.dr.contacts:
        doc.add(Banner("No contacts: add `dr.contacts` to the stack file (name, role, email "
                       "and/or phone) so this runbook names who decides."))
    rows = []
    for role, duty in ROLE_DUTIES.items():
        people = [c for c in spec.dr.contacts if c.role == role]
        reach = "<br>".join(
            f"{c.name}: " + ", ".join(x for x in (c.email, c.phone) if x) for c in people)
        rows.append([role, duty, reach or "-"])
    doc.add(Table(["role", "duty", "contacts"], rows),
            Para(f"Accepting lost writes (a forced data switch) needs the yes of the "
                 f"`{spec.dr.data_loss_approver}` (`dr.data_loss_approver`)."))


def _alert_routes(doc: Document, inputs: Inputs) -> None:
    spec, ex = inputs.spec, inputs.plan.exports
    a = spec.alerting
    rows = []
    topics = ex.get("alert_topics") or {}
    if spec.cloud == "aws":
        for region, arn in topics.items():
            rows.append([f"SNS topic `{str(arn).rsplit(':', 1)[-1]}` ({region})",
                         "every monitor alert of that region",
                         ", ".join(a.emails + a.sms) or "no subscription in the spec"])
    else:
        rows.append(["email (SES SendEmail) from each monitor", "every monitor alert",
                     ", ".join(a.emails) or "-"])
        rows.append(["SMS (SendSms) from each monitor", "every monitor alert",
                     ", ".join(a.sms) or "-"])
    for i, hook in enumerate(a.webhooks):
        where = (f"config key `{hook.url.config}`" if hook.url.config
                 else f"secret `{hook.url.secret_store}`")
        rows.append([f"{hook.kind} webhook #{i}", "every monitor alert", f"URL from {where}"])
    doc.add(Heading(1, "5. Alert routes"), Table(["channel", "carries", "to"], rows))
    if not rows:
        doc.add(Banner("No alert route: `alerting` is empty, so nobody hears of a switch."))
    doc.add(Para("What the alerts mean:"),
            Table(["alert title", "severity", "meaning", "first action"],
                  [list(r) for r in ALERTS]))


def _drill_summary(inputs: Inputs) -> list[str]:
    d = inputs.drill
    if d is None:
        return []
    started = d.get("started_at")
    when = "-"
    if isinstance(started, int | float):
        when = dt.datetime.fromtimestamp(started, dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    elif isinstance(started, str):
        when = started
    out = [f"Last drill: `{inputs.drill_label()}`, started {when}"
           + (f", outcome `{d['outcome']}`" if isinstance(d.get("outcome"), str) else "")
           + (f", lost acknowledged writes {d['lost_acknowledged_writes']}"
              if isinstance(d.get("lost_acknowledged_writes"), int) else "") + "."]
    for f in d.get("faults") or []:
        if isinstance(f, dict) and "layer" in f:
            rto = f.get("rto_s")
            out.append(f"{f.get('key', f.get('title', '?'))} ({f['layer']}): RTO "
                       f"{_fmt_s(rto) if isinstance(rto, int | float) else 'not recovered'}"
                       f", budget {_fmt_s(f.get('budget_s'))}")
    return out


def _drill_age_days(inputs: Inputs) -> float | None:
    started = (inputs.drill or {}).get("started_at")
    if not isinstance(started, int | float):
        return None
    return (inputs.generated_at.timestamp() - float(started)) / 86400.0


def _readiness_rows(data: dict[str, Any]) -> list[list[str]]:
    rows = []
    for key in ("checks", "rules", "results"):
        for r in data.get(key) or []:
            if isinstance(r, dict) and r.get("status") not in (None, "READY"):
                rows.append([str(r.get("rule") or r.get("rule_id") or r.get("id") or "?"),
                             str(r.get("status")), str(r.get("message") or r.get("detail")
                                                       or "")])
    return rows


def _exercise(doc: Document, inputs: Inputs) -> None:
    spec = inputs.spec
    days = spec.dr.exercise_every_days
    doc.add(Heading(1, "10. Exercise programme"))
    rows = [["practice mode", "`monitor.<layer>.practice: true` for a layer: the monitors "
             "decide and alert `[practice] ... would switch`, never switch", "any time; "
             "compare alerts with the budget"],
            ["local drill", "`make demo`: every layer fails over for real on this machine "
             "(moto, PostgreSQL); writes `.drill/drill.json`", "on every change to the "
             "package"],
            ["planned switchover", "§7 data procedure to the standby and back (§8), in a "
             "quiet hour", f"every {days} days (`dr.exercise_every_days`)"]]
    drill_cmds = cli_commands(inputs, "drill")
    if drill_cmds:
        rows.append(["deployed drill", "`" + drill_cmds[0] + "`", f"every {days} days"])
    doc.add(Table(["exercise", "how", "cadence"], rows))
    summary = _drill_summary(inputs)
    age = _drill_age_days(inputs)
    if not summary:
        doc.add(Banner(f"No drill result found (looked at `{inputs.drill_label()}`): this "
                       "topology has no exercise on record."))
    else:
        doc.add(Bullets(summary))
        if age is not None and age > days:
            doc.add(Banner(f"The last drill is {age:.0f} days old: over "
                           f"`dr.exercise_every_days` ({days}). An exercise is due."))
    if inputs.readiness is not None:
        status = inputs.readiness.get("status") or inputs.readiness.get("overall") or "?"
        doc.add(Para(f"Readiness (`{inputs.readiness_path}`): `{status}`."))
        rows_r = _readiness_rows(inputs.readiness)
        if rows_r:
            doc.add(Table(["rule", "status", "message"], rows_r))
        if status != "READY":
            doc.add(Banner(f"Readiness is {status}: fix it before relying on §7."))


def _evidence(doc: Document, inputs: Inputs) -> None:
    spec, ex = inputs.spec, inputs.plan.exports
    items = ["The switch log (who, when, from, to, token, reason, practice or not) lives in "
             f"the state store `{ex.get('state_table', '-')}`; export it with the command "
             "below and keep the output with the incident record."]
    if inputs.drill is not None:
        items.append(f"The drill result `{inputs.drill_label()}` and its chart next to it.")
    if inputs.readiness_path is not None:
        items.append(f"The readiness result `{inputs.readiness_path}`.")
    if spec.cloud == "aws":
        items.append("Monitor logs: CloudWatch log groups `/aws/lambda/<monitor function>` "
                     "(JSON lines: probes, votes, decisions, switches).")
    items.append("Alerts as received (email, SMS, webhook channel).")
    items.append("This runbook: its header names the spec and drill hashes it was built "
                 "from; `standby runbook --check` proves it still matches.")
    doc.add(Heading(1, "9. Evidence"), Bullets(items))
    cmds = cli_commands(inputs, "evidence")
    if cmds:
        doc.add(Code("\n".join(cmds)))


def _return_to_normal(doc: Document, inputs: Inputs) -> None:
    spec = inputs.spec
    steps = [
        "Confirm the primary side is healthy again: its probes pass in `standby status` "
        "(no `attention` alerts) and the public URL answers from it.",
        "Fail back one layer at a time, data first, then logic, gateway and DNS, with the "
        "commands marked *back* in §7 (`--to primary`). A planned switch fences the old "
        "side and drains before it moves writes, so it loses nothing.",
        data_reversible(spec)[1],
        "Re-protect: replication must run from the new primary to the new standby before "
        "the next failure; check it with `standby plan` (budget) and a practice-mode day.",
        "Close the incident: evidence (§9), a note of what the budget predicted against what "
        "happened, and `standby runbook` again if anything in the spec changed.",
    ]
    doc.add(Heading(1, "8. Return to normal and re-protect"), Bullets(steps))


def build(inputs: Inputs) -> Document:
    spec, plan = inputs.spec, inputs.plan
    doc = Document(f"DR runbook: {spec.name} (stack {inputs.stack}, {spec.cloud})")
    doc.add(Comment(marker_comment(inputs.marker())))
    doc.add(Para(
        f"Generated {inputs.generated_at.strftime('%Y-%m-%d %H:%M UTC')} by `standby "
        f"runbook` from the spec, its RTO/RPO budget, the offline plan's outputs and the "
        "alert routes" + (f", the last drill `{inputs.drill_label()}`"
                          if inputs.drill is not None else "")
        + (f" and the readiness result `{inputs.readiness_path}`"
           if inputs.readiness is not None else "") + ". Before relying on it, check that "
        "it is not stale (exit 1 and a STALE banner when the spec or the last drill changed "
        "since):"))
    doc.add(Code(shlex.join(["standby", "runbook", "--check", f"runbook-{inputs.stack}.md"])))
    if spec.cloud != "aws":
        doc.add(Banner("On this cloud `standby status` and `standby switch` cannot reach the "
                       "deployed stack yet (they speak the AWS APIs): the procedures name the "
                       "API each manual step calls instead."))
    _objectives(doc, spec, plan.budget)
    _scope(doc, inputs)
    _risks(doc, inputs)
    _contacts(doc, spec)
    _alert_routes(doc, inputs)
    doc.add(Heading(1, "6. Decision tree"),
            Para("Start here when an alert fires or users report errors. The data-loss gate "
                 "stops any step that may lose acknowledged writes until the approver says "
                 "yes."),
            Code(decision_tree(spec), "mermaid"))
    doc.add(Heading(1, "7. Procedures per layer"),
            Para("Look first: every procedure starts from the current state."),
            Code("\n".join(status_command(inputs))))
    for layer in LAYERS:
        layer_procedure(doc, inputs, layer)
    _return_to_normal(doc, inputs)
    _evidence(doc, inputs)
    _exercise(doc, inputs)
    return doc


# --- the command ------------------------------------------------------------------------------


def _load_spec(stack: str, directory: Path) -> TopologySpec:
    from components.errors import Problem, SpecError
    from components.plan.run import read_stack
    from components.program import CONFIG_KEY
    from components.spec import parse_spec

    cfg = read_stack(stack, directory)
    key = f"{cfg.project}:{CONFIG_KEY}"
    if key not in cfg.raw:
        raise SpecError([Problem(key, "is required but missing")], source=str(cfg.path))
    return parse_spec(cfg.raw[key], source=f"{cfg.path.name} {key}")


def _check_out(path: Path) -> None:
    if not path.parent.is_dir() or path.is_dir():
        raise RunbookInputError(f"--out: {path}; allowed: a file path in an existing "
                                "directory")


def _write(path: Path, text: str) -> None:
    _check_out(path)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)  # readers never see half a runbook


def run_cli(args: argparse.Namespace) -> int:
    """``standby runbook``: 0 written or fresh, 1 stale, 2 bad input (raised)."""
    from components.plan.run import find_project_dir

    directory = (args.project_dir or find_project_dir(Path.cwd())).resolve()
    if args.check is not None:
        marker = read_marker(args.check)
        if args.stack is not None and args.stack != marker["stack"]:
            raise RunbookInputError(f"--stack {args.stack}: {args.check} is the runbook of "
                                    f"stack {marker['stack']}; allowed: that stack or no "
                                    "--stack")
        reasons = stale_reasons(marker, _load_spec(marker["stack"], directory), directory)
        for why in reasons:
            print(f"STALE: {args.check}: {why}; regenerate it with: "
                  f"{shlex.join(['standby', 'runbook', '--stack', marker['stack']])}")
        if not reasons:
            print(f"fresh: {args.check} matches stack {marker['stack']} (spec "
                  f"{marker['spec_sha256'][:12]}, generated {marker.get('generated_at')})")
        return 1 if reasons else 0
    if args.stack is None:
        raise RunbookInputError("standby runbook: --stack NAME (write a runbook) or --check "
                                "FILE (check one) is required; allowed: one of them")
    if args.out is not None:
        _check_out(args.out)  # before the plan runs: bad input fails fast
    inputs = gather(args.stack, directory, args.drill, args.readiness)
    text = render(build(inputs), args.format)
    if args.out is None:
        sys.stdout.write(text)
    else:
        _write(args.out, text)
        print(f"wrote {args.out} ({args.format}, stack {args.stack})")
    return 0
