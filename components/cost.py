"""What standby costs while nothing fails: the idle HA overhead of a plan, per month.

Counted from the plan itself (the resources the program registers and the monitors' own
schedules and settings), so the figure follows the spec: more monitors, faster probes or a
SQL replica change it. Each price names where it comes from and when it was read. This
machine has no internet: a price is ``verified`` only when a stored copy of the provider's
pricing page was read; the others are list prices marked as not verified offline. A price
that is not known at all is ``None`` and the line says why; the total then says it is a
lower bound instead of inventing a number.

Traffic-driven costs (requests, data written, replication of data) are not idle overhead and
are left out; so are free tiers, which depend on the whole account.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from components.budget import MONITOR_LOOP_S, probe_offsets
from components.plan.mocks import Registration
from components.plan.model import Plan
from components.spec import LAYERS, SCHEDULER_FLOOR_S, MonitorSettings

#: What Tencent's SCF basic package holds each month (Billing Overview, 583/17299).
SCF_BASIC_INVOCATIONS = 500_000
SCF_BASIC_GB_S = 100_000
#: AWS bills a month as 730 hours in its calculators and pricing examples.
HOURS_PER_MONTH = 730.0
SECONDS_PER_MONTH = HOURS_PER_MONTH * 3600.0
#: The alternative a user would pick: a Route 53 ARC cluster (five regional endpoints).
ARC_CLUSTER_USD_PER_HOUR = 2.5

_READ_OFFLINE = "2026-11-21"


@dataclass(frozen=True)
class Price:
    usd: float | None
    per: str
    source: str
    as_of: str
    verified: bool

    def text(self) -> str:
        if self.usd is None:
            return f"unknown: the {self.per} price is not in the offline store; see {self.source}"
        amount = f"${self.usd:g} per {self.per}"
        if self.verified:
            how = (f"as of {self.as_of} (stored copy of the page, read here offline "
                   f"{_READ_OFFLINE})")
        else:
            how = f"list price as of {self.as_of}, not verified offline"
        return f"{amount}; {self.source}; {how}"


_R53 = "https://aws.amazon.com/route53/pricing/"
_LAMBDA = "https://aws.amazon.com/lambda/pricing/"
_CW = "https://aws.amazon.com/cloudwatch/pricing/"
_SCF = "https://www.tencentcloud.com/document/product/583/17299"
_TDSQLC = "https://intl.cloud.tencent.com/document/product/1098/51974"
#: The smallest compute a TDSQL-C Serverless cluster can be held at ("Service Features",
#: 1098/52035: "The minimum capacity ... can be configured down to 0.25 CCU").
TDSQLC_MIN_CCU = 0.25
#: Regions the Serverless billing page prices, by price pair (1098/51974).
TDSQLC_PRICES = {
    **dict.fromkeys(("ap-guangzhou", "ap-shanghai", "ap-beijing", "ap-nanjing"),
                    ("tdsqlc_ccu", "tdsqlc_storage")),
    **dict.fromkeys(("ap-hongkong", "ap-singapore", "na-siliconvalley", "na-ashburn"),
                    ("tdsqlc_ccu_intl", "tdsqlc_storage_intl")),
}

#: Every price used here. Stored copies: the Route 53 and Secrets Manager pages as
#: transcribed verbatim on 2026-09-20 (api-evangelist harvest, docs corpus) and the SCF basic
#: package from Tencent's "Billing Overview" (last updated 2023-02-01). The Lambda harvest
#: could not see the headline rates (rendered client-side), so Lambda stays unverified.
PRICES: dict[str, Price] = {
    "lambda_request": Price(0.20, "1M requests", _LAMBDA, "2024", False),
    "lambda_gb_s": Price(0.0000166667, "GB-second (x86)", _LAMBDA, "2024", False),
    "r53_check": Price(0.50, "health check-month (AWS endpoint)", _R53, "2026-09-20", True),
    "r53_feature": Price(1.00, "optional feature-month (AWS endpoint)", _R53, "2026-09-20",
                         True),
    "cw_alarm": Price(0.10, "standard-resolution alarm-month", _CW, "2024", False),
    "cw_metric": Price(0.30, "custom metric-month (first 10,000)", _CW, "2024", False),
    "cw_put": Price(0.01, "1,000 PutMetricData requests", _CW, "2024", False),
    "cw_dashboard": Price(3.00, "dashboard-month", _CW, "2024", False),
    "secret": Price(0.40, "secret-month (a replica is a secret)",
                    "https://aws.amazon.com/secrets-manager/pricing/", "2026-09-20", True),
    "kms_key": Price(1.00, "customer managed key-month", "https://aws.amazon.com/kms/pricing/",
                     "2024", False),
    "ddb_wru": Price(0.625, "1M on-demand write request units",
                     "https://aws.amazon.com/dynamodb/pricing/on-demand/", "2024-11", False),
    "ddb_rru": Price(0.125, "1M on-demand read request units",
                     "https://aws.amazon.com/dynamodb/pricing/on-demand/", "2024-11", False),
    "rds_db.t4g.medium": Price(0.065, "instance-hour (db.t4g.medium, Single-AZ, us-east-1)",
                               "https://aws.amazon.com/rds/postgresql/pricing/", "2024", False),
    "rds_other": Price(None, "instance-hour (other classes)",
                       "https://aws.amazon.com/rds/pricing/", "-", False),
    "arc_cluster": Price(ARC_CLUSTER_USD_PER_HOUR, "cluster-hour",
                         "https://aws.amazon.com/application-recovery-controller/pricing/",
                         "2024", False),
    "scf_basic": Price(1.86, "month (basic package: 500,000 invocations, 100,000 GBs)", _SCF,
                       "2023-02-01", True),
    "scf_usage": Price(None, "GBs and invocation beyond the basic package", _SCF, "-", False),
    "tencent_cdb": Price(None, "CDB instance-month", "https://www.tencentcloud.com/document/"
                         "product/236", "-", False),
    "tencent_ssm": Price(None, "SSM secret-month", "https://www.tencentcloud.com/document/"
                         "product/1140", "-", False),
    "dnspod_plan": Price(None, "DNSPod plan-month", "https://www.dnspod.com/pricing", "-",
                         False),
    # TDSQL-C for MySQL Serverless, Guangzhou/Shanghai/Beijing/Nanjing ("Billing Overview" of
    # the Serverless service, 1098/51974, last updated 2024-04-25: stored copy).
    "tdsqlc_ccu": Price(0.00001397, "CCU-second (Serverless, Chinese mainland regions)",
                        _TDSQLC, "2024-04-25", True),
    "tdsqlc_storage": Price(0.00072, "GB-hour (Serverless storage, Chinese mainland regions)",
                            _TDSQLC, "2024-04-25", True),
    "tdsqlc_ccu_intl": Price(0.00001529, "CCU-second (Serverless, Hong Kong, Singapore, "
                             "Silicon Valley, Virginia)", _TDSQLC, "2024-04-25", True),
    "tdsqlc_storage_intl": Price(0.000792, "GB-hour (Serverless storage, outside the Chinese "
                                 "mainland)", _TDSQLC, "2024-04-25", True),
}


@dataclass(frozen=True)
class CostLine:
    item: str
    quantity: float
    unit: str
    price: str
    """Key into ``PRICES``."""
    basis: str
    """How the quantity was counted, from the plan and the spec."""
    usd: float | None = None
    """Monthly cost; ``None`` when the price is unknown."""


@dataclass(frozen=True)
class Comparison:
    """An alternative priced beside the plan, never added to its total."""

    item: str
    usd: float
    basis: str
    prices: tuple[str, ...]


@dataclass
class IdleCost:
    cloud: str
    lines: list[CostLine] = field(default_factory=list)
    comparisons: list[Comparison] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def known_usd(self) -> float:
        return sum(line.usd for line in self.lines if line.usd is not None)

    @property
    def unknown(self) -> list[str]:
        return [line.item for line in self.lines if line.usd is None]

    @property
    def arc_usd(self) -> float:
        return ARC_CLUSTER_USD_PER_HOUR * HOURS_PER_MONTH

    def total_text(self) -> str:
        total = f"${self.known_usd:,.2f}/month"
        if self.unknown:
            total = f"at least {total} (unknown: {', '.join(self.unknown)})"
        return total

    def table(self) -> str:
        rows = [("item", "quantity/month", "USD/month", "basis")]
        for line in self.lines:
            usd = "unknown" if line.usd is None else f"{line.usd:,.2f}"
            qty = (f"{line.quantity:,.0f}" if line.quantity >= 1000 else f"{line.quantity:g}")
            rows.append((line.item, f"{qty} {line.unit}", usd, line.basis))
        widths = [max(len(r[i]) for r in rows) for i in range(3)]
        out = ["  ".join([*(c.ljust(w) for c, w in zip(r[:3], widths, strict=True)), r[3]])
               for r in rows]
        # With unknown prices the total is a lower bound: a ratio would understate it.
        share = ("no ratio: the total is a lower bound" if self.unknown else
                 f"{self.known_usd / self.arc_usd:.1%} of it")
        out += ["", f"idle HA overhead: {self.total_text()}",
                f"compare: one Route 53 ARC cluster at ${ARC_CLUSTER_USD_PER_HOUR:g}/hour = "
                f"${self.arc_usd:,.0f}/month ({share}; ARC is only the switch, monitors and "
                "replicas come on top)"]
        out += [f"compare: {c.item}: ${c.usd:,.2f}/month ({c.basis})" for c in self.comparisons]
        out += ["", "prices:"]
        for key in self._price_keys():
            out.append(f"  {key}: {PRICES[key].text()}")
        out += [f"  note: {n}" for n in self.notes]
        return "\n".join(out)

    def _price_keys(self) -> list[str]:
        keys = {line.price for line in self.lines} | {"arc_cluster"}
        return sorted(keys.union(*(c.prices for c in self.comparisons)))

    def as_dict(self) -> dict[str, Any]:
        keys = self._price_keys()
        return {
            "cloud": self.cloud,
            "hours_per_month": HOURS_PER_MONTH,
            "lines": [{"item": x.item, "quantity": x.quantity, "unit": x.unit,
                       "usd_per_month": x.usd, "price": x.price, "basis": x.basis}
                      for x in self.lines],
            "known_usd_per_month": round(self.known_usd, 4),
            "unknown": self.unknown,
            "lower_bound": bool(self.unknown),
            "arc_cluster_usd_per_month": self.arc_usd,
            "comparisons": [{"item": c.item, "usd_per_month": round(c.usd, 4),
                             "basis": c.basis, "prices": list(c.prices)}
                            for c in self.comparisons],
            "prices": {k: {"usd": PRICES[k].usd, "per": PRICES[k].per,
                           "source": PRICES[k].source, "as_of": PRICES[k].as_of,
                           "verified_offline": PRICES[k].verified} for k in keys},
            "notes": list(self.notes),
        }


def _line(item: str, quantity: float, unit: str, price: str, per_unit: float, basis: str,
          ) -> CostLine:
    """``per_unit``: how many of ``unit`` one priced unit holds (1e6 for 'per 1M')."""
    usd = PRICES[price].usd
    return CostLine(item, quantity, unit, price, basis,
                    None if usd is None else quantity / per_unit * usd)


# --- the monitors -----------------------------------------------------------------------------


@dataclass(frozen=True)
class MonitorLoad:
    """One monitor function's month: how often it runs, how long, how many rounds."""

    function: str
    layer: str
    region: str
    memory_mb: float
    invocations: float
    seconds_each: float
    rounds_each: int
    scopes: int
    heartbeat_puts: int
    """PutMetricData calls per round (the DNS force metric's heartbeat, one per target)."""


_RATE = re.compile(r"rate\((\d+) minutes?\)")
_CRON_SECONDS = re.compile(r"\*/(\d+) \* \* \* \* \* \*")
_CRON_MINUTES = re.compile(r"0 \*/(\d+) \* \* \* \* \*")


def invocations_per_month(schedule: str) -> float:
    """From the deployed schedule: an EventBridge ``rate(N minute[s])`` or the SCF timer's
    7-field cron (``*/N`` seconds restarts each minute, so a minute holds ceil(60/N))."""
    if m := _RATE.fullmatch(schedule):
        return SECONDS_PER_MONTH / (60.0 * int(m.group(1)))
    if m := _CRON_SECONDS.fullmatch(schedule):
        per_minute = -(-60 // int(m.group(1)))
        return SECONDS_PER_MONTH / 60.0 * per_minute
    if m := _CRON_MINUTES.fullmatch(schedule):
        return SECONDS_PER_MONTH / (60.0 * int(m.group(1)))
    raise ValueError(f"monitor schedule {schedule!r} is not one this package deploys")


def _schedule_of(reg: Registration, regs: Iterable[Registration]) -> str:
    triggers = reg.inputs.get("triggers")
    if triggers:  # SCF: the timer trigger lives on the function
        return str(triggers[0]["triggerDesc"])
    rule = reg.name.removesuffix("-fn") + "-schedule"
    for r in regs:
        if r.type == "aws:cloudwatch/eventRule:EventRule" and r.name == rule:
            return str(r.inputs["scheduleExpression"])
    raise ValueError(f"no schedule found for monitor {reg.name}")


def _settings(plan: Plan, layer: str, region: str) -> MonitorSettings:
    """A layer monitor's own settings; a monitor outside the pair (a witness in a third
    region, another kind of monitor) runs on the defaults."""
    spec = plan.spec
    if layer in LAYERS and region in spec.all_regions:
        return spec.for_region(region).monitor.for_layer(layer)
    return spec.monitor.defaults


def monitor_loads(plan: Plan) -> list[MonitorLoad]:
    regs = [r for group in plan.groups.values() for r in group]
    by_function = {str(r.inputs.get("name")): r for r in regs
                   if r.type in ("aws:lambda/function:Function",
                                 "tencentcloud:Scf/function:Function")}
    cloud = plan.spec.cloud
    floor = float(SCHEDULER_FLOOR_S[cloud])
    out: list[MonitorLoad] = []
    for w in plan.wiring:
        reg = by_function[w.function]
        m = _settings(plan, w.layer, w.region)
        # The same loop the budget models: rounds every interval inside the invocation,
        # another only if its probes can finish before the loop ends.
        offsets, _ = probe_offsets(m.interval_s, m.timeout_s, MONITOR_LOOP_S[cloud], floor)
        memory = float(reg.inputs.get("memorySize") or reg.inputs.get("memSize") or 128)
        puts = sum(1 for t in w.switches if t.get("kind") == "route53_health_metrics")
        out.append(MonitorLoad(
            w.function, w.layer, w.region, memory,
            invocations_per_month(_schedule_of(reg, regs)),
            offsets[-1] + m.timeout_s, len(offsets),
            len({str(t["scope"]) for t in w.switches}), puts))
    return out


#: State-store requests per scope per round (components.runtime.aws.state): the votes query
#: and the scope read (both strongly consistent, items under 4 KB: 1 RRU each) and the vote
#: write (under 1 KB: 1 WRU). Saves, records and switches happen only on a change.
RRU_PER_SCOPE_ROUND = 2
WRU_PER_SCOPE_ROUND = 1
#: Metrics each monitor emits per round in embedded metric format, dimensions
#: {Topology, Layer}, in its own region (Monitor._metrics).
EMF_METRICS_PER_MONITOR = ("ProbeLatency", "ActiveSide", "Switches")


def _monitor_lines(plan: Plan, loads: list[MonitorLoad]) -> list[CostLine]:
    n = len(loads)
    invocations = sum(x.invocations for x in loads)
    gb_s = sum(x.invocations * x.seconds_each * x.memory_mb / 1024.0 for x in loads)
    shape = sorted({(x.memory_mb, x.seconds_each, x.rounds_each) for x in loads})
    how = "; ".join(f"{mem:g} MB x {sec:g} s ({rounds} round(s) per run)"
                    for mem, sec, rounds in shape)
    if plan.spec.cloud == "tencent":
        # Usage inside the basic package costs nothing more; above it the unit prices are
        # not in the offline store, so the line says unknown rather than guess.
        inside = invocations <= SCF_BASIC_INVOCATIONS and gb_s <= SCF_BASIC_GB_S
        return [
            CostLine("monitor invocations", invocations, "invocations", "scf_usage",
                     f"{n} monitors on their timer triggers; basic package holds "
                     f"{SCF_BASIC_INVOCATIONS:,}", 0.0 if inside else None),
            CostLine("monitor compute", gb_s, "GBs", "scf_usage",
                     f"{how}: the probe timeout bounds a run; basic package holds "
                     f"{SCF_BASIC_GB_S:,} GBs", 0.0 if inside else None),
            _line("SCF basic package", 1, "month", "scf_basic", 1,
                  "charged monthly once functions run"),
        ]
    return [
        _line("monitor invocations", invocations, "requests", "lambda_request", 1e6,
              f"{n} monitors x {loads[0].invocations:,.0f} scheduled runs"),
        _line("monitor compute", gb_s, "GB-s", "lambda_gb_s", 1,
              f"{how}: the last round's start plus its probe timeout (healthy rounds end "
              "sooner, so this is an upper estimate)"),
    ]


def _state_lines(plan: Plan, loads: list[MonitorLoad]) -> list[CostLine]:
    scope_rounds = sum(x.invocations * x.rounds_each * x.scopes for x in loads)
    if plan.spec.cloud == "tencent":
        return [CostLine("state store (CDB instance)", 1, "instance", "tencent_cdb",
                         "the control region's CDB instance for leases, votes and pointers")]
    return [
        _line("state store reads", scope_rounds * RRU_PER_SCOPE_ROUND, "RRU", "ddb_rru", 1e6,
              f"DynamoDB on-demand: {RRU_PER_SCOPE_ROUND} strongly consistent reads per scope "
              f"per round, {scope_rounds:,.0f} scope-rounds"),
        _line("state store writes", scope_rounds * WRU_PER_SCOPE_ROUND, "WRU", "ddb_wru", 1e6,
              f"one vote write per scope per round, {scope_rounds:,.0f} scope-rounds"),
    ]


# --- resources that cost by the month ------------------------------------------------------


def _health_check_features(reg: Registration) -> list[str]:
    """Route 53's optional health-check features, each billed per month: HTTPS, string
    matching, fast interval (10 s) and latency measurement."""
    i = reg.inputs
    out = []
    if str(i.get("type", "")).startswith("HTTPS"):
        out.append("HTTPS")
    if str(i.get("type", "")).endswith("STR_MATCH"):
        out.append("string matching")
    if i.get("requestInterval") is not None and float(i["requestInterval"]) == 10.0:
        out.append("fast interval")
    if i.get("measureLatency"):
        out.append("latency measurement")
    return out


def _aws_resource_lines(plan: Plan, loads: list[MonitorLoad]) -> list[CostLine]:
    regs = [r for group in plan.groups.values() for r in group]

    def of(kind: str) -> list[Registration]:
        return [r for r in regs if r.type == kind]

    out: list[CostLine] = []
    checks = of("aws:route53/healthCheck:HealthCheck")
    if checks:
        kinds: dict[str, int] = {}
        for r in checks:
            kinds[str(r.inputs.get("type"))] = kinds.get(str(r.inputs.get("type")), 0) + 1
        out.append(_line("Route 53 health checks", len(checks), "checks", "r53_check", 1,
                         ", ".join(f"{k} x{v}" for k, v in sorted(kinds.items()))
                         + "; no free tier applied"))
        features = [f for r in checks for f in _health_check_features(r)]
        if features:
            named = sorted(set(features))
            out.append(_line("Route 53 optional features", len(features), "features",
                             "r53_feature", 1, ", ".join(
                                 f"{f} x{features.count(f)}" for f in named)))
    alarms = of("aws:cloudwatch/metricAlarm:MetricAlarm")
    if alarms:
        out.append(_line("CloudWatch alarms", len(alarms), "alarms", "cw_alarm", 1,
                         "every metric alarm the plan creates; no free tier applied"))
    regions = {x.region for x in loads}
    emf = len(EMF_METRICS_PER_MONITOR) * len({(x.layer, x.region) for x in loads})
    force = {(t["region"], t["force_metric"]) for w in plan.wiring for t in w.switches
             if t.get("kind") == "route53_health_metrics"}
    out.append(_line("CloudWatch custom metrics", emf + len(force), "metrics", "cw_metric", 1,
                     f"{len(EMF_METRICS_PER_MONITOR)} monitor metrics per layer in "
                     f"{len(regions)} regions + {len(force)} DNS force metrics"))
    puts = sum(x.invocations * x.rounds_each * x.heartbeat_puts for x in loads)
    if puts:
        out.append(_line("DNS force-metric heartbeats", puts, "PutMetricData", "cw_put", 1000,
                         "each DNS monitor round publishes the committed side per region"))
    dashboards = of("aws:cloudwatch/dashboard:Dashboard")
    if dashboards:
        out.append(_line("CloudWatch dashboard", len(dashboards), "dashboards",
                         "cw_dashboard", 1, "the topology dashboard; first 3 free per account"
                         " not applied"))
    secrets = of("aws:secretsmanager/secret:Secret")
    if secrets:
        count = sum(1 + len(r.inputs.get("replicas") or []) for r in secrets)
        out.append(_line("Secrets Manager secrets", count, "secrets", "secret", 1,
                         f"{len(secrets)} secret(s) and their replicas (webhook URLs, "
                         "database credentials)"))
    keys = of("aws:kms/key:Key")
    if keys:
        out.append(_line("KMS keys", len(keys), "keys", "kms_key", 1,
                         "customer managed keys (alert topics, replicated secrets)"))
    for r in of("aws:rds/instance:Instance"):
        if not r.inputs.get("replicateSourceDb"):
            continue
        cls = str(r.inputs.get("instanceClass"))
        key = f"rds_{cls}"
        if key not in PRICES:
            out.append(CostLine(f"RDS replica {cls}", HOURS_PER_MONTH, "instance-hours",
                                "rds_other", f"the idle standby database in {r.region}; no "
                                f"offline price for {cls}", None))
            continue
        out.append(_line(f"RDS replica {cls}", HOURS_PER_MONTH, "instance-hours", key, 1,
                         f"the idle standby database in {r.region} runs all month "
                         "(storage and I/O not counted)"))
    return out


def _tencent_resource_lines(plan: Plan) -> list[CostLine]:
    regs = [r for group in plan.groups.values() for r in group]
    out: list[CostLine] = []
    dr = [r for r in regs if r.type == "tencentcloud:Mysql/drInstance:DrInstance"]
    for r in dr:
        out.append(CostLine("CDB DR instance", 1, "instance", "tencent_cdb",
                            f"{r.inputs.get('memSize'):g} MB, {r.inputs.get('volumeSize'):g} "
                            f"GB in {r.region}: the idle standby database runs all month"))
    secrets = [r for r in regs if r.type == "tencentcloud:Ssm/secret:Secret"]
    if secrets:
        out.append(CostLine("SSM secrets", len(secrets), "secrets", "tencent_ssm",
                            "webhook URLs and database DSNs per region"))
    if plan.spec.dns_min_ttl_s < 600:
        out.append(CostLine("DNSPod paid plan", 1, "plan", "dnspod_plan",
                            f"dns.min_ttl_s {plan.spec.dns_min_ttl_s} s needs a paid plan "
                            "(the free plan's minimum TTL is 600 s)"))
    return out


def _tencent_state_store_comparison(plan: Plan) -> Comparison | None:
    """What the same lease protocol would cost on TDSQL-C Serverless: a sourced figure beside
    the CDB line, whose price is not stored offline. Monitors connect every round, so the
    cluster never auto-pauses and stays at its floor. Not part of the deployed total."""
    keys = TDSQLC_PRICES.get(plan.spec.data_standby_region)
    if keys is None:
        return None
    compute = TDSQLC_MIN_CCU * SECONDS_PER_MONTH * (PRICES[keys[0]].usd or 0.0)
    storage = HOURS_PER_MONTH * (PRICES[keys[1]].usd or 0.0)
    return Comparison(
        "the state store on TDSQL-C Serverless instead of CDB", compute + storage,
        f"not deployed: {TDSQLC_MIN_CCU:g} CCU floor all month (never paused: monitors connect "
        f"every round) ${compute:,.2f} + 1 GB stored ${storage:,.2f}; the CDB price for this "
        f"plan comes from cdb DescribeDBPrice (Region {plan.spec.data_standby_region}, Memory "
        "1000, Volume 25, InstanceRole master, PayType HOUR_PAID)",
        keys)


def idle_overhead(plan: Plan) -> IdleCost:
    """The monthly cost of standing by: everything the topology runs whether or not anything
    fails. An idle standby Lambda or SCF function costs nothing (billed per invocation)."""
    loads = monitor_loads(plan)
    cost = IdleCost(plan.spec.cloud)
    cost.lines += _monitor_lines(plan, loads)
    cost.lines += _state_lines(plan, loads)
    if plan.spec.cloud == "aws":
        cost.lines += _aws_resource_lines(plan, loads)
    else:
        cost.lines += _tencent_resource_lines(plan)
        state_store = _tencent_state_store_comparison(plan)
        if state_store is not None:
            cost.comparisons.append(state_store)
        else:
            cost.notes.append(f"state store: no TDSQL-C Serverless price is stored for "
                              f"{plan.spec.data_standby_region}; see {_TDSQLC}")
    witness = getattr(plan.spec, "witness", None)
    cost.notes.append("witness: " + ("its monitors are counted with the others above"
                                     if witness is not None else "none in this spec"))
    cost.notes.append("idle standby functions: $0 (billed per invocation, none while idle)")
    cost.notes.append("not counted: logs, traffic-driven requests, data replication and "
                      "storage, free tiers (they depend on the whole account)")
    return cost
