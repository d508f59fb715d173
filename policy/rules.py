"""The policy pack's rules: plain functions over a neutral view of the stack's resources.

Nothing here imports ``pulumi`` or ``pulumi_policy``: ``policy/__main__.py`` adapts these
functions into a ``PolicyPack``, and the tests call them directly over every resource a mock
run of each example stack registers.

Two kinds of rule:
  * a resource rule ``(Res) -> list[str]`` looks at one resource;
  * a stack rule ``(Sequence[Res]) -> list[Violation]`` needs the whole graph (pairs,
    monitors and what their roles may do).

Values that are not known yet (a first ``pulumi preview`` of a new stack) are skipped, never
guessed: a rule reports only what it can prove from known values.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from components.aws.iam_actions import switch_calls
from components.aws.iam_rules import WILDCARD_EXCEPTIONS

TOPOLOGY_TYPE = "standby:index:ActiveStandbyTopology"
MONITOR_TYPE = "standby:aws:LayerMonitor"
DNS_LAYER_TYPE = "standby:aws:DnsLayer"
SWITCHABLE_LAYERS = ("dns", "gateway", "logic", "data")


@dataclass(frozen=True)
class Res:
    """One resource as the rules see it."""

    type: str
    name: str
    urn: str
    props: Mapping[str, Any]
    region: str | None = None
    parent: str | None = None


@dataclass(frozen=True)
class Violation:
    message: str
    urn: str | None = None


ResourceRule = Callable[[Res], list[str]]
StackRule = Callable[[Sequence[Res]], list[Violation]]


# --------------------------------------------------------------------------------------------
# helpers


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _json(value: Any) -> Any:
    """A JSON document given as a string or already parsed; None when not known."""
    if isinstance(value, (dict, list)):
        return value
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return None
    return None


def _env(res: Res) -> dict[str, Any]:
    env = res.props.get("environment")
    if isinstance(env, Mapping):
        variables = env.get("variables")
        if isinstance(variables, Mapping):
            return dict(variables)
    return {}


def _region_of_arn(arn: Any) -> str | None:
    if isinstance(arn, str) and arn.startswith("arn:"):
        parts = arn.split(":")
        if len(parts) > 3 and parts[3]:
            return parts[3]
    return None


_HOST_REGION = re.compile(r"\.(?:execute-api|s3|lambda-url)\.([a-z]{2}(?:-[a-z]+)+-\d)\.")


def _ancestors(res: Res, by_urn: Mapping[str, Res]) -> Iterable[Res]:
    seen: set[str] = set()
    parent = res.parent
    while parent and parent in by_urn and parent not in seen:
        seen.add(parent)
        node = by_urn[parent]
        yield node
        parent = node.parent


def _statements(doc: Any) -> list[Mapping[str, Any]]:
    doc = _json(doc)
    if not isinstance(doc, Mapping):
        return []
    return [s for s in _as_list(doc.get("Statement")) if isinstance(s, Mapping)]


# --------------------------------------------------------------------------------------------
# resource rules

#: AWS-managed policies that grant wildcard actions; never attached by this package.
BROAD_MANAGED_POLICIES = ("AdministratorAccess", "PowerUserAccess", "FullAccess", "IAMFullAccess")


def no_wildcard_iam(res: Res) -> list[str]:
    """No ``*`` in an action, no NotAction, ``Resource: "*"`` only for the listed exceptions."""
    docs: list[Any] = []
    if res.type in ("aws:iam/rolePolicy:RolePolicy", "aws:iam/policy:Policy",
                    "aws:iam/userPolicy:UserPolicy", "aws:iam/groupPolicy:GroupPolicy"):
        docs.append(res.props.get("policy"))
    elif res.type == "aws:iam/role:Role":
        docs.extend(p.get("policy") for p in _as_list(res.props.get("inlinePolicies"))
                    if isinstance(p, Mapping))
    elif res.type == "aws:iam/rolePolicyAttachment:RolePolicyAttachment":
        arn = res.props.get("policyArn")
        if isinstance(arn, str) and arn.startswith("arn:aws:iam::aws:policy/") and any(
            arn.endswith(b) for b in BROAD_MANAGED_POLICIES
        ):
            return [f"attaches the managed policy {arn}, which grants wildcard actions"]
        return []
    else:
        return []
    problems: list[str] = []
    for doc in docs:
        for i, st in enumerate(_statements(doc)):
            if st.get("Effect", "Allow") != "Allow":
                continue
            if "NotAction" in st or "NotResource" in st:
                problems.append(f"statement {i}: NotAction/NotResource grants everything else")
                continue
            actions = [str(a) for a in _as_list(st.get("Action"))]
            for action in actions:
                if "*" in action:
                    problems.append(
                        f"statement {i}: wildcard action {action!r}; name each action"
                    )
            resources = _as_list(st.get("Resource"))
            if "*" in resources:
                broad = sorted(a for a in actions if a not in WILDCARD_EXCEPTIONS)
                if broad:
                    problems.append(
                        f"statement {i}: Resource '*' for {', '.join(broad)}; '*' is allowed "
                        f"only for {', '.join(sorted(WILDCARD_EXCEPTIONS))}"
                    )
    return problems


#: Lambda runtimes AWS accepts for new functions (https://docs.aws.amazon.com/lambda/latest/dg/lambda-runtimes.html).
LAMBDA_RUNTIMES = frozenset({
    "python3.9", "python3.10", "python3.11", "python3.12", "python3.13",
    "nodejs18.x", "nodejs20.x", "nodejs22.x",
    "java11", "java17", "java21", "java8.al2",
    "dotnet8", "ruby3.2", "ruby3.3", "ruby3.4",
    "provided.al2", "provided.al2023",
})
FAILOVER_TYPES = frozenset({"PRIMARY", "SECONDARY"})
RECORD_TYPES = frozenset({"A", "AAAA", "CAA", "CNAME", "DS", "MX", "NAPTR", "NS", "PTR", "SOA",
                          "SPF", "SRV", "TXT", "HTTPS", "SSHFP", "SVCB", "TLSA"})
HEALTH_CHECK_TYPES = frozenset({"HTTP", "HTTPS", "HTTP_STR_MATCH", "HTTPS_STR_MATCH", "TCP",
                                "CALCULATED", "CLOUDWATCH_METRIC", "RECOVERY_CONTROL"})
HEALTH_CHECK_INTERVALS = frozenset({10, 30})
INSUFFICIENT_DATA_STATUS = frozenset({"Healthy", "Unhealthy", "LastKnownStatus"})
ALARM_OPERATORS = frozenset({
    "GreaterThanOrEqualToThreshold", "GreaterThanThreshold", "LessThanThreshold",
    "LessThanOrEqualToThreshold", "LessThanLowerOrGreaterThanUpperThreshold",
    "LessThanLowerThreshold", "GreaterThanUpperThreshold",
})
ALARM_MISSING_DATA = frozenset({"breaching", "notBreaching", "ignore", "missing"})
ALARM_STATISTICS = frozenset({"SampleCount", "Average", "Sum", "Minimum", "Maximum"})

_RATE = re.compile(r"^rate\((?:1 (?:minute|hour|day)|(?:[2-9]|[1-9]\d+) (?:minutes|hours|days))\)$")
_CRON = re.compile(r"^cron\((\S+) (\S+) (\S+) (\S+) (\S+) (\S+)\)$")


def schedule_problem(expr: str) -> str | None:
    """Why an EventBridge rule schedule is invalid, or None (AWS checks this only at deploy)."""
    if expr.startswith("rate("):
        if not _RATE.match(expr):
            return (f"schedule {expr!r} is not valid: use rate(1 minute|hour|day) or "
                    "rate(N minutes|hours|days) with N > 1")
        return None
    m = _CRON.match(expr)
    if m:
        day_of_month, day_of_week = m.group(3), m.group(5)
        if (day_of_month == "?") == (day_of_week == "?"):
            return (f"schedule {expr!r}: exactly one of day-of-month and day-of-week must "
                    "be '?'")
        return None
    return (f"schedule {expr!r} is not valid: allowed forms are rate(...) and cron(6 fields)")


def valid_enums(res: Res) -> list[str]:
    """Values the SDK passes through unchecked and AWS would refuse only at deploy time."""
    p = res.props
    problems: list[str] = []

    def check(field: str, value: Any, allowed: Iterable[Any]) -> None:
        allowed = sorted(allowed, key=str)
        if value is not None and value not in allowed:
            problems.append(
                f"{field}: {value!r} is not valid; allowed: {', '.join(map(str, allowed))}"
            )

    if res.type == "aws:route53/record:Record":
        check("type", p.get("type"), RECORD_TYPES)
        for pol in _as_list(p.get("failoverRoutingPolicies")):
            if isinstance(pol, Mapping):
                check("failoverRoutingPolicies.type", pol.get("type"), FAILOVER_TYPES)
    elif res.type == "aws:route53/healthCheck:HealthCheck":
        check("type", p.get("type"), HEALTH_CHECK_TYPES)
        check("requestInterval", p.get("requestInterval"), HEALTH_CHECK_INTERVALS)
        check("insufficientDataHealthStatus", p.get("insufficientDataHealthStatus"),
              INSUFFICIENT_DATA_STATUS)
    elif res.type == "aws:lambda/function:Function":
        if p.get("packageType", "Zip") == "Zip":
            check("runtime", p.get("runtime"), LAMBDA_RUNTIMES)
    elif res.type == "aws:cloudwatch/eventRule:EventRule":
        expr = p.get("scheduleExpression")
        if isinstance(expr, str):
            why = schedule_problem(expr)
            if why:
                problems.append(why)
    elif res.type == "aws:cloudwatch/metricAlarm:MetricAlarm":
        check("comparisonOperator", p.get("comparisonOperator"), ALARM_OPERATORS)
        check("treatMissingData", p.get("treatMissingData"), ALARM_MISSING_DATA)
        check("statistic", p.get("statistic"), ALARM_STATISTICS)
    return problems


RESOURCE_RULES: dict[str, tuple[str, ResourceRule]] = {
    "no-wildcard-iam": (
        "IAM policies name their actions and resources; '*' resources only where AWS "
        "offers nothing narrower (listed and justified in components/aws/iam_rules.py)",
        no_wildcard_iam,
    ),
    "valid-enum-values": (
        "failover types, record and health-check types, Lambda runtimes, schedule "
        "expressions and alarm settings are values AWS accepts",
        valid_enums,
    ),
}


# --------------------------------------------------------------------------------------------
# stack rules


def _topologies(resources: Sequence[Res]) -> list[Res]:
    return [r for r in resources if r.type == TOPOLOGY_TYPE]


def _under(res: Res, top: Res, by_urn: Mapping[str, Res]) -> bool:
    return any(a.urn == top.urn for a in _ancestors(res, by_urn))


def dns_ttl_within_budget(resources: Sequence[Res]) -> list[Violation]:
    """Every record of a topology has a TTL that still fits the RTO target."""
    by_urn = {r.urn: r for r in resources}
    out: list[Violation] = []
    for top in _topologies(resources):
        budget = top.props.get("standby_budget")
        if not isinstance(budget, Mapping) or budget.get("dns_ttl_max_s") is None:
            out.append(Violation(
                "the topology registers no standby_budget; cannot check DNS TTLs", top.urn))
            continue
        limit = float(budget["dns_ttl_max_s"])
        for rec in resources:
            if rec.type != "aws:route53/record:Record" or not _under(rec, top, by_urn):
                continue
            # Only the records callers resolve: a certificate's validation record carries no
            # traffic, so its TTL delays no failover.
            if not any(x.type == DNS_LAYER_TYPE for x in _ancestors(rec, by_urn)):
                continue
            ttl = rec.props.get("ttl")
            if isinstance(ttl, (int, float)) and ttl > limit:
                out.append(Violation(
                    f"{rec.name}: ttl {ttl:g} s exceeds {limit:g} s, the most the RTO target "
                    f"({float(budget.get('rto_target_s', 0)):g} s) leaves after DNS detection "
                    "and switch", rec.urn))
    return out


def _region(res: Res) -> str | None:
    region = res.props.get("region")
    return region if isinstance(region, str) and region else res.region


def primary_standby_regions_differ(resources: Sequence[Res]) -> list[Violation]:
    """Every primary/standby pair spans two regions: DNS pairs, database replicas, buckets."""
    out: list[Violation] = []
    # Route 53 failover pairs: the two targets must be in different regions.
    host_regions: dict[str, str] = {}
    for r in resources:
        reg = _region(r)
        for key in ("regionalDomainName", "domainName"):
            v = r.props.get(key)
            if isinstance(v, str) and reg and r.type.startswith("aws:apigateway"):
                host_regions.setdefault(v.rstrip("."), reg)
        cfg = r.props.get("domainNameConfiguration")
        if isinstance(cfg, Mapping) and isinstance(cfg.get("targetDomainName"), str) and reg:
            host_regions.setdefault(str(cfg["targetDomainName"]).rstrip("."), reg)

    def target_region(rec: Res) -> str | None:
        for value in _as_list(rec.props.get("records")):
            if not isinstance(value, str):
                continue
            host = value.rstrip(".")
            if host in host_regions:
                return host_regions[host]
            m = _HOST_REGION.search(host + ".")
            if m:
                return m.group(1)
        return None

    pairs: dict[tuple[Any, Any], dict[str, Res]] = {}
    for r in resources:
        if r.type != "aws:route53/record:Record":
            continue
        for pol in _as_list(r.props.get("failoverRoutingPolicies")):
            if isinstance(pol, Mapping) and pol.get("type") in FAILOVER_TYPES:
                pairs.setdefault((r.props.get("zoneId"), r.props.get("name")), {})[
                    str(pol["type"])] = r
    for (_, name), sides in pairs.items():
        if set(sides) != FAILOVER_TYPES:
            missing = sorted(FAILOVER_TYPES - set(sides))
            any_rec = next(iter(sides.values()))
            out.append(Violation(f"failover record {name}: no {missing[0]} record", any_rec.urn))
            continue
        a, b = target_region(sides["PRIMARY"]), target_region(sides["SECONDARY"])
        if a is not None and a == b:
            out.append(Violation(
                f"failover record {name}: PRIMARY and SECONDARY both point at {a}",
                sides["SECONDARY"].urn))
    # Database replicas.
    for r in resources:
        if r.type == "aws:rds/instance:Instance":
            source = r.props.get("replicateSourceDb")
            if isinstance(source, str) and source:
                src_region = _region_of_arn(source)
                if src_region is None or src_region == _region(r):
                    out.append(Violation(
                        f"{r.name}: the replica of {source} is in the same region "
                        f"({_region(r)}); a standby must be in another region", r.urn))
        elif r.type == "aws:dynamodb/table:Table" and r.props.get("replicas") is not None:
            own = _region(r)
            regions = [x.get("regionName") for x in _as_list(r.props.get("replicas"))
                       if isinstance(x, Mapping)]
            if not regions:
                out.append(Violation(f"{r.name}: a global table with no replica", r.urn))
            for reg in regions:
                if reg == own:
                    out.append(Violation(
                        f"{r.name}: replica in the table's own region {own}", r.urn))
    # Bucket replication.
    buckets = {k: r for r in resources if r.type == "aws:s3/bucket:Bucket"
               for k in (r.props.get("id"), r.props.get("bucket"), r.props.get("arn"))
               if isinstance(k, str)}
    for r in resources:
        if r.type != "aws:s3/bucketReplicationConfig:BucketReplicationConfig":
            continue
        src = buckets.get(str(r.props.get("bucket")))
        for rule in _as_list(r.props.get("rules")):
            dest = rule.get("destination") if isinstance(rule, Mapping) else None
            if not isinstance(dest, Mapping):
                continue
            dst = buckets.get(str(dest.get("bucket")))
            if src is not None and dst is not None and _region(src) == _region(dst):
                out.append(Violation(
                    f"{r.name}: replicates {src.name} to {dst.name} in the same region "
                    f"{_region(src)}", r.urn))
    return out


def buckets_versioned_and_replicated(resources: Sequence[Res]) -> list[Violation]:
    """Every topology bucket is versioned and replicates to another bucket (both ways)."""
    out: list[Violation] = []
    versioned: set[str] = set()
    replicated: set[str] = set()
    for r in resources:
        if r.type == "aws:s3/bucketVersioning:BucketVersioning":
            cfg = r.props.get("versioningConfiguration")
            if isinstance(cfg, Mapping) and cfg.get("status") == "Enabled":
                versioned.add(str(r.props.get("bucket")))
        elif r.type == "aws:s3/bucketReplicationConfig:BucketReplicationConfig":
            rules = [x for x in _as_list(r.props.get("rules")) if isinstance(x, Mapping)]
            if any(x.get("status") == "Enabled" and isinstance(x.get("destination"), Mapping)
                   for x in rules):
                replicated.add(str(r.props.get("bucket")))
    for r in resources:
        if r.type != "aws:s3/bucket:Bucket":
            continue
        tags = r.props.get("tags")
        if not isinstance(tags, Mapping) or "standby:topology" not in tags:
            continue
        ids = {str(r.props.get(k)) for k in ("id", "bucket") if r.props.get(k)}
        if not ids:
            continue  # not known yet
        if not ids & versioned:
            out.append(Violation(f"{r.name}: bucket versioning is not Enabled", r.urn))
        if not ids & replicated:
            out.append(Violation(
                f"{r.name}: no enabled replication rule; a failover would lose objects "
                "(set storage.replication: true)", r.urn))
    return out


def _target_resources(resource: str, target: Mapping[str, Any],
                      arns: Mapping[str, str]) -> list[str | None]:
    """The ARN(s) a switch target's call of this resource kind acts on (``None``: any)."""
    region = target.get("region")
    if resource == "pointer_table":
        if target.get("kind") == "pointer_all":
            return [arns.get(f"table:{t.get('region')}:{t.get('table')}")
                    for t in _as_list(target.get("tables")) if isinstance(t, Mapping)]
        return [arns.get(f"table:{region}:{target.get('table')}")]
    if resource == "rest_stage":
        return [f"arn:aws:apigateway:{region}::/restapis/{target.get('rest_api_id')}"
                f"/stages/{target.get('stage')}"]
    if resource == "http_integration":
        return [f"arn:aws:apigateway:{region}::/apis/{target.get('api_id')}"
                f"/integrations/{target.get('integration_id')}"]
    if resource == "alarm":
        return [arns.get(f"alarm:{region}:{target.get('force_alarm')}")]
    if resource == "hosted_zone":
        return [f"arn:aws:route53:::hostedzone/{target.get('zone_id')}"]
    if resource == "db_instance":
        return [arns.get(f"db:{region}:{target.get('instance_id')}")]
    if resource == "db_secret":
        return [str(target["secret_arn"])] if target.get("secret_arn") else [None]
    return [None]  # "metric": PutMetricData has no resource (namespace condition)


def _needed(target: Mapping[str, Any], arns: Mapping[str, str]) -> list[tuple[str, str | None]]:
    """Every IAM action a switch kind's code needs, on which ARN: read from the same table
    the IAM sufficiency test checks the run-time code against (``iam_actions``)."""
    try:
        calls = switch_calls(str(target.get("kind")))
    except KeyError:
        return [("?", None)]
    out: dict[tuple[str, str | None], None] = {}
    for call in calls:
        for arn in _target_resources(call.resource, target, arns):
            for action in call.actions:
                out.setdefault((action, arn))
    return list(out)


def _allows(statements: list[Mapping[str, Any]], action: str, arn: str | None) -> bool:
    for st in statements:
        if st.get("Effect", "Allow") != "Allow" or action not in _as_list(st.get("Action")):
            continue
        resources = _as_list(st.get("Resource"))
        if arn is None or arn in resources or ("*" in resources and action in WILDCARD_EXCEPTIONS):
            return True
    return False


def _is_tencent(top: Res, resources: Sequence[Res], by_urn: Mapping[str, Res]) -> bool:
    return any(r.type.startswith("standby:tencent:") and _under(r, top, by_urn)
               for r in resources)


def switchable_layers_monitored(resources: Sequence[Res]) -> list[Violation]:
    """Every switchable layer has a monitor whose role may switch what its env names."""
    by_urn = {r.urn: r for r in resources}
    arns: dict[str, str] = {}
    role_policies: dict[str, list[Mapping[str, Any]]] = {}
    role_key: dict[str, str] = {}
    for r in resources:
        arn = r.props.get("arn")
        if r.type == "aws:dynamodb/table:Table" and isinstance(arn, str):
            arns[f"table:{_region(r)}:{r.props.get('name')}"] = arn
        elif r.type == "aws:rds/instance:Instance" and isinstance(arn, str):
            arns[f"db:{_region(r)}:{r.props.get('identifier')}"] = arn
        elif r.type == "aws:cloudwatch/metricAlarm:MetricAlarm" and isinstance(arn, str):
            arns[f"alarm:{_region(r)}:{r.props.get('name')}"] = arn
        elif r.type == "aws:iam/role:Role" and isinstance(arn, str):
            for k in (r.props.get("id"), r.props.get("name")):
                if isinstance(k, str):
                    role_key[k] = arn
    for r in resources:
        if r.type == "aws:iam/rolePolicy:RolePolicy":
            role_arn = role_key.get(str(r.props.get("role")))
            if role_arn:
                role_policies.setdefault(role_arn, []).extend(_statements(r.props.get("policy")))

    out: list[Violation] = []
    for top in _topologies(resources):
        if _is_tencent(top, resources, by_urn):
            continue  # policy.tencent_rules checks its monitors
        monitors: dict[str, list[Res]] = {layer: [] for layer in SWITCHABLE_LAYERS}
        for fn in resources:
            if fn.type != "aws:lambda/function:Function" or not _under(fn, top, by_urn):
                continue
            layer = _env(fn).get("STANDBY_LAYER")
            if isinstance(layer, str) and layer in monitors:
                monitors[layer].append(fn)
        for layer, fns in monitors.items():
            if not fns:
                out.append(Violation(f"{top.name}: no monitor for the {layer} layer", top.urn))
                continue
            for fn in fns:
                raw = _env(fn).get("STANDBY_SWITCH")
                if raw is None:
                    continue  # not known yet
                switch = _json(raw)
                if not isinstance(switch, list) or not switch:
                    out.append(Violation(
                        f"{fn.name}: the {layer} monitor has no switch target "
                        "(STANDBY_SWITCH is empty)", fn.urn))
                    continue
                statements = role_policies.get(str(fn.props.get("role")))
                if statements is None:
                    continue  # role not known yet
                for target in switch:
                    if not isinstance(target, Mapping):
                        continue
                    for action, arn in _needed(target, arns):
                        if not _allows(statements, action, arn):
                            out.append(Violation(
                                f"{fn.name}: the {layer} monitor may not {action} on "
                                f"{arn or '*'} ({target.get('kind')} {target.get('scope')}), "
                                "so it cannot switch", fn.urn))
    return out


STACK_RULES: dict[str, tuple[str, StackRule]] = {
    "primary-standby-in-different-regions": (
        "every primary/standby pair (DNS failover records, database replicas, bucket "
        "replication) spans two regions",
        primary_standby_regions_differ,
    ),
    "switchable-layers-monitored": (
        "every switchable layer has a monitor whose role may switch each target it names",
        switchable_layers_monitored,
    ),
    "dns-ttl-within-budget": (
        "DNS record TTLs fit the RTO budget the topology was accepted with",
        dns_ttl_within_budget,
    ),
    "buckets-versioned-and-replicated": (
        "topology buckets are versioned and replicate to the other region",
        buckets_versioned_and_replicated,
    ),
}


# The Tencent rules live in their own module and use the helpers above; imported here, after
# those exist, so every entry point (pack, tests) sees one registry.
from policy.tencent_rules import TENCENT_RESOURCE_RULES, TENCENT_STACK_RULES  # noqa: E402

RESOURCE_RULES.update(TENCENT_RESOURCE_RULES)
STACK_RULES.update(TENCENT_STACK_RULES)


def check_all(resources: Sequence[Res]) -> list[tuple[str, Violation]]:
    """Every rule over every resource; (rule name, violation) pairs."""
    found: list[tuple[str, Violation]] = []
    for name, (_, rule) in RESOURCE_RULES.items():
        for res in resources:
            found.extend((name, Violation(f"{res.name}: {m}", res.urn)) for m in rule(res))
    for name, (_, stack_rule) in STACK_RULES.items():
        found.extend((name, v) for v in stack_rule(resources))
    return found
