"""Policy rules for the Tencent resources (``cloud: tencent``), registered in ``policy.rules``.

Same shape as the AWS rules: resource rules ``(Res) -> list[str]``, stack rules
``(Sequence[Res]) -> list[Violation]``; values not known yet are skipped, never guessed.
Property names are the camelCase inputs the engine sees (``recordLine``, ``triggerDesc``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from components.spec_facts import RUNTIMES, TENCENT_LINES, TTL_MAX
from policy.rules import (
    SWITCHABLE_LAYERS,
    TOPOLOGY_TYPE,
    Res,
    ResourceRule,
    StackRule,
    Violation,
    _ancestors,
    _as_list,
    _json,
)

CAM_POLICY = "tencentcloud:Cam/policy:Policy"
CAM_ROLE = "tencentcloud:Cam/role:Role"
CAM_ATTACH = "tencentcloud:Cam/rolePolicyAttachment:RolePolicyAttachment"
SCF_FUNCTION = "tencentcloud:Scf/function:Function"
DNSPOD_RECORD = "tencentcloud:Dnspod/record:Record"
COS_BUCKET = "tencentcloud:Cos/bucket:Bucket"
DR_INSTANCE = "tencentcloud:Mysql/drInstance:DrInstance"
CUSTOM_DOMAIN = "tencentcloud:Scf/customDomain:CustomDomain"
DNS_LAYER = "standby:tencent:DnsLayer"

#: SES and SMS sends authorise at the service level only; nothing narrower exists.
CAM_RESOURCE_WILDCARD_OK = frozenset({"ses:SendEmail", "sms:SendSms"})
#: API action names that CAM authorises under another name. SCF's ``Invoke`` API is granted
#: as ``scf:InvokeFunction`` ("Permission Management Overview", cloud.tencent.com/document/
#: product/583/18014: ``InvokeFunction`` "triggers a function synchronously or
#: asynchronously"); a policy naming ``scf:Invoke`` allows nothing.
CAM_ACTION_FOR_API = {"scf:Invoke": "scf:InvokeFunction"}
#: DNSPod record types (ModifyRecord RecordType) and statuses.
RECORD_TYPES = ("A", "AAAA", "CNAME", "MX", "TXT", "NS", "SRV", "CAA")
RECORD_STATUS = ("ENABLE", "DISABLE")
#: SCF trigger types this package makes, and the custom domain protocols (CreateCustomDomain).
TRIGGER_TYPES = ("timer", "http")
DOMAIN_PROTOCOLS = ("HTTP", "HTTPS", "HTTP&HTTPS")
HTTP_AUTH_TYPES = ("NONE", "CAM")
#: One field of an SCF timer cron: ``*``, a number, ``*/n``, ``a-b`` or a list of those.
_CRON_FIELD = re.compile(r"(\*|\d+(-\d+)?)(/\d+)?(,(\*|\d+(-\d+)?)(/\d+)?)*|\?")
_TARGET_REGION = re.compile(r"^\d+\.([a-z]+-[a-z]+(-[a-z0-9]+)?)\.tencentscf\.com\.?$")


def cron_problem(expr: Any) -> str | None:
    """SCF timer triggers take 7 fields: second minute hour day month weekday year."""
    if not isinstance(expr, str):
        return None
    fields = expr.split()
    if len(fields) != 7:
        return (f"timer cron {expr!r} has {len(fields)} fields; SCF needs 7 (second minute "
                "hour day month weekday year)")
    bad = [f for f in fields if not _CRON_FIELD.fullmatch(f)]
    return f"timer cron {expr!r}: field(s) {bad} are not cron syntax" if bad else None


def _cam_statements(doc: Any) -> list[Mapping[str, Any]]:
    doc = _json(doc)
    if not isinstance(doc, Mapping):
        return []
    return [s for s in _as_list(doc.get("statement")) if isinstance(s, Mapping)]


# -- resource rules ------------------------------------------------------------------------


def no_wildcard_cam(res: Res) -> list[str]:
    if res.type != CAM_POLICY:
        return []
    out: list[str] = []
    for st in _cam_statements(res.props.get("document")):
        actions = [str(a) for a in _as_list(st.get("action"))]
        wild = [a for a in actions if "*" in a]
        if wild:
            out.append(f"CAM action(s) {wild} use a wildcard; allowed: named actions")
        resources = _as_list(st.get("resource"))
        if "*" in resources and str(st.get("effect", "allow")).lower() == "allow":
            broad = [a for a in actions if a not in CAM_RESOURCE_WILDCARD_OK]
            if broad:
                out.append(f"resource '*' for {broad}; allowed only for "
                           f"{sorted(CAM_RESOURCE_WILDCARD_OK)}")
    return out


def valid_tencent_enums(res: Res) -> list[str]:
    p, out = res.props, []
    if res.type == DNSPOD_RECORD:
        line, rtype, status, ttl = (p.get("recordLine"), p.get("recordType"), p.get("status"),
                                    p.get("ttl"))
        if isinstance(line, str) and line not in TENCENT_LINES:
            out.append(f"record_line {line!r} is not one of {', '.join(TENCENT_LINES)}")
        if isinstance(rtype, str) and rtype not in RECORD_TYPES:
            out.append(f"record_type {rtype!r} is not one of {', '.join(RECORD_TYPES)}")
        if isinstance(status, str) and status not in RECORD_STATUS:
            out.append(f"status {status!r} is not ENABLE or DISABLE")
        if isinstance(ttl, (int, float)) and not 1 <= ttl <= TTL_MAX["tencent"]:
            out.append(f"ttl {ttl} is not in 1..{TTL_MAX['tencent']}")
    elif res.type == SCF_FUNCTION:
        runtime = p.get("runtime")
        if isinstance(runtime, str) and runtime not in RUNTIMES["tencent"]:
            out.append(f"runtime {runtime!r} is not one of {', '.join(RUNTIMES['tencent'])}")
        for trig in _as_list(p.get("triggers")):
            if not isinstance(trig, Mapping):
                continue
            kind, desc = trig.get("type"), trig.get("triggerDesc")
            if isinstance(kind, str) and kind not in TRIGGER_TYPES:
                out.append(f"trigger type {kind!r} is not one of {', '.join(TRIGGER_TYPES)}")
            elif kind == "timer":
                why = cron_problem(desc)
                if why:
                    out.append(why)
            elif kind == "http":
                doc = _json(desc)
                auth = doc.get("AuthType") if isinstance(doc, Mapping) else None
                if desc is not None and auth not in HTTP_AUTH_TYPES:
                    out.append(f"http trigger AuthType {auth!r} is not NONE or CAM")
    elif res.type == CUSTOM_DOMAIN:
        proto = p.get("protocol")
        if isinstance(proto, str) and proto not in DOMAIN_PROTOCOLS:
            out.append(f"protocol {proto!r} is not one of {', '.join(DOMAIN_PROTOCOLS)}")
    if res.type.startswith("tencentcloud:ApiGateway/"):
        out.append("Tencent API Gateway is retired (batch shutdown from 2026-10-30); use an "
                   "SCF Function URL with a custom domain")
    return out


# -- stack rules ---------------------------------------------------------------------------


def _target_region(value: Any) -> str | None:
    m = _TARGET_REGION.match(value) if isinstance(value, str) else None
    return m.group(1) if m else None


def tencent_regions_differ(resources: Sequence[Res]) -> list[Violation]:
    """DNSPod record pairs, the CDB DR instance and COS replication span two regions."""
    out: list[Violation] = []
    pairs: dict[tuple[Any, Any, Any], dict[str, Res]] = {}
    for r in resources:
        if r.type == DNSPOD_RECORD and r.props.get("status") in RECORD_STATUS:
            key = (r.props.get("domain"), r.props.get("subDomain"), r.props.get("recordLine"))
            pairs.setdefault(key, {})[str(r.props["status"])] = r
        elif r.type == DR_INSTANCE:
            master = r.props.get("masterRegion")
            if isinstance(master, str) and r.region is not None and master == r.region:
                out.append(Violation(f"{r.name}: DR instance in its master's region {master}; "
                                     "a standby must be in another region", r.urn))
        elif r.type == COS_BUCKET:
            for rule in _as_list(r.props.get("replicaRules")):
                dest = rule.get("destinationBucket") if isinstance(rule, Mapping) else None
                parts = dest.split(":") if isinstance(dest, str) else []
                if len(parts) > 3 and parts[3] == r.region:
                    out.append(Violation(f"{r.name}: replicates to {dest} in its own region "
                                         f"{r.region}", r.urn))
    for (_, sub, line), sides in pairs.items():
        if set(sides) != set(RECORD_STATUS):
            any_rec = next(iter(sides.values()))
            out.append(Violation(f"record {sub} line {line}: no "
                                 f"{(set(RECORD_STATUS) - set(sides)).pop()} side", any_rec.urn))
            continue
        a = _target_region(sides["ENABLE"].props.get("value"))
        b = _target_region(sides["DISABLE"].props.get("value"))
        if a is not None and a == b:
            out.append(Violation(f"record {sub} line {line}: both sides point at {a}",
                                 sides["DISABLE"].urn))
    return out


def tencent_buckets_versioned_and_replicated(resources: Sequence[Res]) -> list[Violation]:
    out: list[Violation] = []
    enabled: set[str] = set()
    topologies: dict[str, Res] = {}
    for r in resources:
        tags = r.props.get("tags")
        if r.type != COS_BUCKET or not isinstance(tags, Mapping) or "standby:topology" not in tags:
            continue
        if r.props.get("versioningEnable") is not True:
            out.append(Violation(f"{r.name}: versioning_enable is not true (COS replication "
                                 "needs versioning on both buckets)", r.urn))
        # The standby's rule is Disabled until a failover reverses the direction
        # (cos_replication), so a rule of either status counts here; the pair needs one
        # Enabled (below).
        rules = [x for x in _as_list(r.props.get("replicaRules")) if isinstance(x, Mapping)]
        if not any(x.get("status") in ("Enabled", "Disabled") and x.get("destinationBucket")
                   for x in rules):
            out.append(Violation(f"{r.name}: no replica rule; a failover would lose objects "
                                 "(set storage.replication: true)", r.urn))
        elif not r.props.get("replicaRole"):
            out.append(Violation(f"{r.name}: replica rules without replica_role", r.urn))
        if any(x.get("status") == "Enabled" for x in rules):
            enabled.add(str(tags["standby:topology"]))
        topologies.setdefault(str(tags["standby:topology"]), r)
    for topology, first in topologies.items():
        if topology not in enabled:
            out.append(Violation(f"{topology}: no bucket has an enabled replica rule; nothing "
                                 "replicates to the standby", first.urn))
    return out


def tencent_dns_ttl_within_budget(resources: Sequence[Res]) -> list[Violation]:
    by_urn = {r.urn: r for r in resources}
    out: list[Violation] = []
    for rec in resources:
        if rec.type != DNSPOD_RECORD:
            continue
        chain = list(_ancestors(rec, by_urn))
        tops = [a for a in chain if a.type == TOPOLOGY_TYPE]
        if not tops or not any(a.type == DNS_LAYER for a in chain):
            continue
        budget = tops[0].props.get("standby_budget")
        ttl = rec.props.get("ttl")
        if not isinstance(budget, Mapping) or budget.get("dns_ttl_max_s") is None:
            out.append(Violation("the topology registers no standby_budget; cannot check "
                                 "DNSPod TTLs", tops[0].urn))
            continue
        limit = float(budget["dns_ttl_max_s"])
        if isinstance(ttl, (int, float)) and ttl > limit:
            out.append(Violation(f"{rec.name}: ttl {ttl:g} s exceeds {limit:g} s, the most the "
                                 "RTO target leaves after DNS detection and switch", rec.urn))
    return out


#: What each Tencent switch kind calls, on which resource (service, suffix of the qcs string).
def _needed(target: Mapping[str, Any], env: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    kind, region = target.get("kind"), target.get("region")
    if kind == "dnspod_record_status":
        return [("dnspod:ModifyRecordStatus", "qcs::dnspod:", f":domain/{target.get('domain')}")]
    if kind == "scf_custom_domain":
        return [("scf:UpdateCustomDomain", f"qcs::scf:{region}:",
                 f":customdomain/{target.get('domain')}")]
    if kind == "cdb_dr_switch":
        ids = target.get("instance_ids") if isinstance(target.get("instance_ids"), Mapping) else {}
        assert isinstance(ids, Mapping)
        return [("cdb:SwitchDrInstanceToMaster", f"qcs::cdb:{region}:",
                 f":instanceId/{ids.get('standby')}"),
                ("cdb:ModifyDBInstanceReadOnlyStatus",
                 f"qcs::cdb:{target.get('primary_region')}:",
                 f":instanceId/{ids.get('primary')}")]
    if kind == "cos_replication":
        buckets = target.get("buckets") if isinstance(target.get("buckets"), Mapping) else {}
        assert isinstance(buckets, Mapping)
        return [(action, f"qcs::cos:{b.get('region')}:", f":{b.get('bucket')}/")
                for b in buckets.values() if isinstance(b, Mapping)
                for action in ("cos:PutBucketReplication", "cos:GetBucketReplication")]
    if kind in ("tencent_pointer", "tencent_pointer_all"):
        return [("ssm:GetSecretValue", f"qcs::ssm:{env.get('STANDBY_STATE_REGION')}:",
                 f"/{env.get('STANDBY_STATE_DSN_SECRET')}")]
    return [("?", "", "")]


def _probe_needed(probe: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    """A probe's CAM needs; only kinds whose call authorises on a named resource."""
    if probe.get("kind") == "scf_invoke":
        return [("scf:InvokeFunction", f"qcs::scf:{probe.get('region')}:",
                 f":namespace/{probe.get('namespace')}/function/{probe.get('function')}")]
    return []


def _cam_allows(statements: list[Mapping[str, Any]], action: str, prefix: str,
                suffix: str) -> bool:
    for st in statements:
        if str(st.get("effect", "allow")).lower() != "allow":
            continue
        if action not in _as_list(st.get("action")):
            continue
        if any(isinstance(r, str) and r.startswith(prefix) and r.endswith(suffix)
               for r in _as_list(st.get("resource"))):
            return True
    return False


def _role_statements(resources: Sequence[Res]) -> tuple[dict[str, str],
                                                         dict[str, list[Mapping[str, Any]]]]:
    """Role name -> role id, and role id -> the statements of the policies attached to it."""
    role_ids = {str(r.props.get("name")): str(r.props.get("id")) for r in resources
                if r.type == CAM_ROLE}
    policies = {str(r.props.get("id")): r for r in resources if r.type == CAM_POLICY}
    attached: dict[str, list[Mapping[str, Any]]] = {}
    for a in resources:
        if a.type == CAM_ATTACH:
            pol = policies.get(str(a.props.get("policyId")))
            if pol is not None:
                attached.setdefault(str(a.props.get("roleId")), []).extend(
                    _cam_statements(pol.props.get("document")))
    return role_ids, attached


#: Alert recipients -> the sender variable the run time needs and the CAM action it calls
#: (``components.runtime.tencent.alerts``).
ALERT_CHANNELS = (("STANDBY_ALERT_EMAILS", "STANDBY_ALERT_SES", "ses:SendEmail"),
                  ("STANDBY_ALERT_SMS", "STANDBY_ALERT_SMS_SENDER", "sms:SendSms"))


def tencent_monitor_alerts_allowed(resources: Sequence[Res]) -> list[Violation]:
    """A monitor that names alert recipients has the sender its channel needs and a CAM
    policy that lets it send: SES SendEmail, SMS SendSms, and GetSecretValue on each
    webhook URL's SSM secret."""
    role_ids, attached = _role_statements(resources)
    out: list[Violation] = []
    for fn in resources:
        env = fn.props.get("environment") if fn.type == SCF_FUNCTION else None
        if not isinstance(env, Mapping) or not env.get("STANDBY_LAYER"):
            continue
        role_id = role_ids.get(str(fn.props.get("role")))
        statements = attached.get(role_id, []) if role_id is not None else None
        needs: list[tuple[str, str, str, str]] = []
        for recipients, sender, action in ALERT_CHANNELS:
            if env.get(recipients) is None or not _json(env.get(recipients)):
                continue
            if not env.get(sender):
                out.append(Violation(f"{fn.name}: {recipients} names recipients but "
                                     f"{sender} (the approved sender) is missing", fn.urn))
            needs.append((action, "", "", recipients))
        hooks = _json(env.get("STANDBY_WEBHOOKS")) if env.get("STANDBY_WEBHOOKS") else []
        for hook in hooks if isinstance(hooks, list) else []:
            if isinstance(hook, Mapping):
                needs.append(("ssm:GetSecretValue", f"qcs::ssm:{hook.get('region')}:",
                              f"/{hook.get('secret_name')}", "STANDBY_WEBHOOKS"))
        if statements is None:
            continue  # the role is not known yet
        for action, prefix, suffix, why in needs:
            if not _cam_allows(statements, action, prefix, suffix):
                out.append(Violation(f"{fn.name}: may not {action} on {prefix or '*'}..."
                                     f"{suffix}, so the alerts of {why} cannot go out",
                                     fn.urn))
    return out


def tencent_switchable_layers_monitored(resources: Sequence[Res]) -> list[Violation]:
    """Every switchable layer has monitors, and each monitor's CAM policy allows the switch
    action on each target its STANDBY_SWITCH names and the call of each probe that
    authorises on a named resource (``scf_invoke``)."""
    by_urn = {r.urn: r for r in resources}
    role_ids, attached = _role_statements(resources)
    out: list[Violation] = []
    for top in [r for r in resources if r.type == TOPOLOGY_TYPE]:
        under = [r for r in resources if any(a.urn == top.urn for a in _ancestors(r, by_urn))]
        if not any(r.type.startswith("standby:tencent:") for r in under):
            continue  # not a Tencent topology
        fns = [f for f in under if f.type == SCF_FUNCTION]
        monitors: dict[str, list[Res]] = {layer: [] for layer in SWITCHABLE_LAYERS}
        for fn in fns:
            env = fn.props.get("environment")
            layer = env.get("STANDBY_LAYER") if isinstance(env, Mapping) else None
            if isinstance(layer, str) and layer in monitors:
                monitors[layer].append(fn)
        for layer, mons in monitors.items():
            if not mons:
                out.append(Violation(f"{top.name}: no monitor for the {layer} layer", top.urn))
            for fn in mons:
                env = fn.props["environment"]
                switch = _json(env.get("STANDBY_SWITCH"))
                if env.get("STANDBY_SWITCH") is None:
                    continue
                if not isinstance(switch, list) or not switch:
                    out.append(Violation(f"{fn.name}: the {layer} monitor has no switch "
                                         "target", fn.urn))
                    continue
                role_id = role_ids.get(str(fn.props.get("role")))
                if role_id is None:
                    continue  # not known yet
                statements = attached.get(role_id, [])
                for target in switch:
                    if not isinstance(target, Mapping):
                        continue
                    for action, prefix, suffix in _needed(target, env):
                        if not _cam_allows(statements, action, prefix, suffix):
                            out.append(Violation(
                                f"{fn.name}: the {layer} monitor may not {action} on "
                                f"{prefix}...{suffix} ({target.get('kind')} "
                                f"{target.get('scope')}), so it cannot switch", fn.urn))
                probes = _json(env.get("STANDBY_PROBES"))
                for probe in probes if isinstance(probes, list) else []:
                    if not isinstance(probe, Mapping):
                        continue
                    for action, prefix, suffix in _probe_needed(probe):
                        if not _cam_allows(statements, action, prefix, suffix):
                            out.append(Violation(
                                f"{fn.name}: the {layer} monitor may not {action} on "
                                f"{prefix}...{suffix} (probe {probe.get('kind')} "
                                f"{probe.get('scope')}), so its vote is blind", fn.urn))
    return out


def documented_cam_actions(res: Res) -> list[str]:
    if res.type != CAM_POLICY:
        return []
    out: list[str] = []
    for st in _cam_statements(res.props.get("document")):
        for a in (str(a).removeprefix("name/") for a in _as_list(st.get("action"))):
            if a in CAM_ACTION_FOR_API:
                out.append(f"CAM action {a!r} is an API name, not a CAM action, and allows "
                           f"nothing; allowed: {CAM_ACTION_FOR_API[a]!r} (doc 583/18014)")
    return out


TENCENT_RESOURCE_RULES: dict[str, tuple[str, ResourceRule]] = {
    "tencent-no-wildcard-cam": (
        "CAM policies name their actions; resource '*' only for SES/SMS sends",
        no_wildcard_cam,
    ),
    "tencent-documented-cam-actions": (
        "CAM policies use the documented CAM action names (scf:InvokeFunction for Invoke)",
        documented_cam_actions,
    ),
    "tencent-valid-enum-values": (
        "DNSPod lines, record types and statuses, SCF runtimes, 7-field timer crons, http "
        "trigger auth and custom-domain protocols are values Tencent accepts; no API Gateway",
        valid_tencent_enums,
    ),
}

TENCENT_STACK_RULES: dict[str, tuple[str, StackRule]] = {
    "tencent-primary-standby-in-different-regions": (
        "DNSPod record pairs, CDB DR instances and COS replication span two regions",
        tencent_regions_differ,
    ),
    "tencent-buckets-versioned-and-replicated": (
        "topology COS buckets are versioned and replicate to the other region",
        tencent_buckets_versioned_and_replicated,
    ),
    "tencent-switchable-layers-monitored": (
        "every switchable layer has monitors whose CAM policy allows each switch they name",
        tencent_switchable_layers_monitored,
    ),
    "tencent-monitor-alerts-allowed": (
        "monitors that name alert recipients have the sender and CAM action to reach them",
        tencent_monitor_alerts_allowed,
    ),
    "tencent-dns-ttl-within-budget": (
        "DNSPod record TTLs fit the RTO budget the topology was accepted with",
        tencent_dns_ttl_within_budget,
    ),
}
