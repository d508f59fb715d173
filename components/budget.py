"""The RTO/RPO budget: a plain function from the spec to worst-case figures per layer.

Every figure carries its source: a config value (``monitor.gateway.interval_s``) or a
documented cloud limit. If the declared targets cannot be met, ``check_budget`` raises
``BudgetError`` with the whole table, before any resource is created.

Model (per layer, worst case):
    detection   = ``detection_seconds``: the longest time from a failure to the round in
                  which ``failure_threshold`` consecutive failed probes are counted, over the
                  monitor's real probe times (rounds every ``interval_s`` inside each
                  once-a-minute invocation of ``MONITOR_LOOP_S`` seconds, then the scheduler
                  gap to the next invocation), plus the probe timeout. Streaks persist across
                  invocations in the state table. With quorum > 1 the regions' schedules have
                  an unknown phase; the switch waits for the later vantage point's streak, and
                  each vantage's own worst case bounds it, for every phase.
    switch      = the time the switch itself takes (documented per layer; the DNS force path
                  counts the CloudWatch alarm and Route 53's reading of it); with a witness
                  the data layer adds the lease wait, ``lease_ttl + 2 x clock_skew``
                  (counted in full although it runs while the failure is being detected)
    propagation = how long callers keep using the old side (DNS TTL, pointer caches)
    RTO         = detection + switch + propagation
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field

from components.errors import BudgetError
from components.runtime.engine import Settings as EngineSettings
from components.spec import (
    LAYERS,
    SCHEDULER_FLOOR_S,
    SQL_ENGINES,
    Layer,
    MonitorSettings,
    TopologySpec,
)


@dataclass(frozen=True)
class Figure:
    """A number of seconds (``None`` = no bound) and where it comes from."""

    seconds: float | None
    source: str

    def text(self) -> str:
        return "unbounded" if self.seconds is None else f"{self.seconds:g} s"


@dataclass(frozen=True)
class LayerBudget:
    layer: Layer
    switches: str
    detection: Figure
    switch: Figure
    propagation: Figure

    @property
    def rto_s(self) -> float:
        parts = (self.detection.seconds, self.switch.seconds, self.propagation.seconds)
        return sum(p for p in parts if p is not None)


@dataclass(frozen=True)
class RpoBudget:
    store: str
    replication: str
    figure: Figure
    guaranteed: bool
    target_s: float | None


@dataclass(frozen=True)
class Budget:
    rto_target_s: float
    rpo_target_s: float
    layers: list[LayerBudget]
    rpo: list[RpoBudget]
    violations: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.violations

    @property
    def worst_rto_s(self) -> float:
        return max(lb.rto_s for lb in self.layers)

    def table(self) -> str:
        """Plain-text table (used in errors, logs and the text plan)."""
        rows = [("layer", "detection", "switch", "propagation", "RTO", "target")]
        for lb in self.layers:
            rows.append(
                (
                    lb.layer,
                    lb.detection.text(),
                    lb.switch.text(),
                    lb.propagation.text(),
                    f"{lb.rto_s:g} s",
                    f"<= {self.rto_target_s:g} s",
                )
            )
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        out = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
        out.append("")
        rrows = [("store", "replication", "RPO", "guaranteed", "target")]
        for rb in self.rpo:
            target = "-" if rb.target_s is None else f"<= {rb.target_s:g} s"
            rrows.append(
                (rb.store, rb.replication, rb.figure.text(), "yes" if rb.guaranteed else "no",
                 target)
            )
        widths = [max(len(r[i]) for r in rrows) for i in range(len(rrows[0]))]
        out += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rrows]
        out.append("")
        out.append("sources:")
        for lb in self.layers:
            for what, fig in (("detection", lb.detection), ("switch", lb.switch),
                              ("propagation", lb.propagation)):
                out.append(f"  {lb.layer}.{what}: {fig.source}")
        for rb in self.rpo:
            out.append(f"  rpo.{rb.store}: {rb.figure.source}")
        return "\n".join(out)

    def as_dict(self) -> dict[str, object]:
        def fig(f: Figure) -> dict[str, object]:
            return {"seconds": f.seconds, "source": f.source}

        return {
            "targets": {"rto_s": self.rto_target_s, "rpo_s": self.rpo_target_s},
            "layers": [
                {
                    "layer": lb.layer,
                    "switches": lb.switches,
                    "detection": fig(lb.detection),
                    "switch": fig(lb.switch),
                    "propagation": fig(lb.propagation),
                    "rto_s": lb.rto_s,
                }
                for lb in self.layers
            ],
            "rpo": [
                {
                    "store": rb.store,
                    "replication": rb.replication,
                    "rpo": fig(rb.figure),
                    "guaranteed": rb.guaranteed,
                    "target_s": rb.target_s,
                }
                for rb in self.rpo
            ],
            "ok": self.ok,
            "violations": list(self.violations),
        }


# Documented switch times. Where the cloud publishes no figure we use a conservative
# allowance, say so in the source, and let the user override it per layer.
_SWITCH_DEFAULTS: dict[str, tuple[float, str]] = {
    "dns:health_check": (
        0.0,  # replaced by the force path below (_dns_force_path)
        "no record edit: Route 53 answers from health-check status (data plane)",
    ),
    "dns:direct:aws": (
        60.0,
        "Route 53 ChangeResourceRecordSets reaches INSYNC on all name servers, documented "
        "as typically within 60 s",
    ),
    "dns:direct:tencent": (
        10.0,
        "allowance for DNSPod ModifyRecord (no published figure)",
    ),
    "gateway": (5.0, "allowance for one stage-variable update plus read-back"),
    "logic": (2.0, "allowance for one conditional pointer write plus read-back"),
    "data:dynamodb": (2.0, "pointer write only: the replica table is already writable"),
    "data:postgres": (
        600.0,
        "allowance: RDS documents that promoting a read replica takes several minutes "
        "(depending on its size) and publishes no upper bound; the pointer moves at once "
        "but writes fail until the promotion completes",
    ),
    "data:mysql": (
        600.0,
        "allowance: RDS documents that promoting a read replica takes several minutes "
        "(depending on its size) and publishes no upper bound; the pointer moves at once "
        "but writes fail until the promotion completes",
    ),
    # Tencent publishes no RTO for promoting a CDB DR instance (docs/research/tencent.md,
    # section 5: "Published RTO/RPO for DR promotion: none found"); the only published CDB
    # figure is for the in-region HA switch (<=30 s unavailability, doc 236/70665).
    "data:tencent:mysql": (
        300.0,
        "allowance for CDB SwitchDrInstanceToMaster in the DR region plus polling "
        "DescribeAsyncRequestInfo (Tencent publishes no figure for DR promotion; the in-region "
        "HA switch is documented at <=30 s, cloud.tencent.com/document/product/236/70665)",
    ),
    "data:tencent:postgres": (
        0.0,
        "no cross-region switch: Tencent has no API to promote a PostgreSQL replica in "
        "another region (the spec allows postgres only with database.replica: false)",
    ),
    "gateway:tencent": (
        5.0,
        "allowance for one SCF UpdateCustomDomain call plus read-back (no published figure)",
    ),
}

_SWITCHES: dict[Layer, str] = {
    "dns": "public DNS answer -> standby region",
    "gateway": "gateway integration -> standby logic function",
    "logic": "logic's wrapper pointer -> standby wrapper",
    "data": "data pointer -> standby database/bucket (promote replica)",
}


#: How long a monitor invocation probes in a loop when ``interval_s`` is below the scheduler
#: floor: the AWS schedule fires once a minute and the function leaves headroom in its 60 s
#: timeout for the final write and alert. Tencent's floor is 1 s: one probe per invocation.
MONITOR_LOOP_S: dict[str, float] = {"aws": 50.0, "tencent": 0.0}

#: The DNS force path (AWS health_check mode), see ``components.aws.dns``: a 60 s
#: standard-resolution alarm that goes to ALARM on one forcing data point.
FORCE_ALARM_PERIOD_S = 60.0
FORCE_ALARM_DATAPOINTS = 1
#: Route 53 publishes no interval for reading a CloudWatch alarm's state; an allowance of
#: one standard health-check interval.
ROUTE53_ALARM_READ_S = 30.0


def probe_offsets(interval_s: float, timeout_s: float, loop_s: float,
                  period_s: float) -> tuple[list[float], float]:
    """When one invocation probes (seconds after it starts), and the step between counted
    probes when one probe per invocation is all there is.

    Mirrors ``Monitor.run``: a round starts every ``interval_s`` and another starts only if
    it can finish (``timeout_s``) inside ``loop_s``.
    """
    if interval_s < period_s and loop_s > 0:
        offsets = [0.0]
        k = 1
        while k * interval_s + timeout_s <= loop_s:
            offsets.append(k * interval_s)
            k += 1
        return offsets, period_s
    # One round per invocation; a streak counts one failure per interval, so the counted
    # probes are whole scheduler periods apart.
    return [0.0], math.ceil(interval_s / period_s) * period_s


def detection_seconds(interval_s: float, timeout_s: float, failure_threshold: int,
                      loop_s: float, period_s: float, quorum: int = 1,
                      vantages: int = 1, freshness_s: float | None = None) -> float | None:
    """Worst-case seconds from a failure to the round that has seen ``failure_threshold``
    consecutive failed probes (``None``: detection is impossible with these settings).

    The probes of one vantage are at ``offsets + n * step`` (``probe_offsets``); a failure
    that starts just after a probe is counted by the next ``failure_threshold`` probes, and
    the last one's result takes up to ``timeout_s``. With ``quorum`` vantages whose schedules
    have any phase, the later one decides, and its own worst case bounds it. That needs the
    earlier vantage's vote to stay fresh (``freshness_s``) across its largest probe gap.
    """
    if failure_threshold < 1 or interval_s <= 0 or period_s <= 0:
        raise ValueError("detection_seconds: failure_threshold >= 1, interval_s > 0, "
                         "period_s > 0 required")
    if quorum > vantages:
        return None
    offsets, step = probe_offsets(interval_s, timeout_s, loop_s, period_s)
    times = [n * step + o for n in range(failure_threshold + 2) for o in offsets]
    worst = max(times[m + failure_threshold] - times[m] for m in range(len(offsets)))
    if quorum > 1 and freshness_s is not None:
        gap = max(b - a for a, b in itertools.pairwise(times)) + timeout_s
        if gap > freshness_s:
            return None
    return float(worst + timeout_s)


def _vantages(spec: TopologySpec, region: str) -> int:
    # A monitor votes with the monitors of the regions it shares a group with.
    peers = {r for g in spec.region_groups if region in (g.primary, g.standby)
             for r in (g.primary, g.standby)}
    return len(peers)


def _detection(spec: TopologySpec, layer: Layer, m: MonitorSettings,
               vantages: int) -> Figure:
    cloud = spec.cloud
    p = f"monitor.{layer}"
    floor = SCHEDULER_FLOOR_S[cloud]
    loop = MONITOR_LOOP_S[cloud]
    fresh = EngineSettings(interval_s=m.interval_s, timeout_s=m.timeout_s).freshness_s
    seconds = detection_seconds(m.interval_s, m.timeout_s, m.failure_threshold, loop, floor,
                                m.quorum, vantages, fresh)
    offsets, step = probe_offsets(m.interval_s, m.timeout_s, loop, floor)
    if len(offsets) > 1:
        how = (f"{len(offsets)} rounds every {m.interval_s} s in each {floor} s invocation "
               f"(loop {loop:g} s), then the {floor - offsets[-1]:g} s scheduler gap")
    else:
        how = f"one counted probe every {step:g} s (the {floor} s scheduler floor)"
    if seconds is None:
        why = (f"{p}.quorum ({m.quorum}) exceeds the {vantages} vantage points"
               if m.quorum > vantages else
               f"a vantage's vote goes stale ({fresh:g} s) between its probes")
        return Figure(None, f"detection impossible: {why}")
    source = (f"worst case of {p}.failure_threshold ({m.failure_threshold}) consecutive "
              f"failed probes + {p}.timeout_s ({m.timeout_s:g}): {how}")
    if m.quorum > 1:
        source += (f"; {p}.quorum ({m.quorum}): the later vantage's streak decides, for any "
                   "phase between the regions' schedules")
    return Figure(seconds, source)


def _dns_endpoint_path(m: MonitorSettings) -> float:
    return float(m.interval_s * m.failure_threshold)


def _switch(spec: TopologySpec, layer: Layer, m: MonitorSettings) -> Figure:
    fig = _switch_itself(spec, layer, m)
    if layer != "data" or spec.witness is None or fig.seconds is None:
        return fig
    w = spec.witness
    wait = w.lease_ttl_s + 2 * w.clock_skew_s
    return Figure(fig.seconds + wait,
                  f"{fig.source}; + {wait:g} s witness lease: a promotion waits out the old "
                  f"lease (witness.lease_ttl_s {w.lease_ttl_s:g} s from its last renewal) + "
                  f"witness.clock_skew_s ({w.clock_skew_s:g} s) on the promoter's clock, "
                  f"+ clock_skew_s again for the clocks' difference "
                  "(components.runtime.quorum_lease)")


def _switch_itself(spec: TopologySpec, layer: Layer, m: MonitorSettings) -> Figure:
    if m.switch_allowance_s is not None:
        return Figure(m.switch_allowance_s,
                      f"monitor.{layer}.switch_allowance_s (your figure; used by this budget "
                      "only, nothing at run time waits for it)")
    if layer == "dns":
        if spec.dns.mode == "health_check" and spec.cloud == "aws":
            alarm = FORCE_ALARM_PERIOD_S * FORCE_ALARM_DATAPOINTS
            return Figure(
                alarm + ROUTE53_ALARM_READ_S,
                f"force path: the forcing data point may open a {FORCE_ALARM_PERIOD_S:g} s "
                f"alarm period, ALARM after {FORCE_ALARM_DATAPOINTS} period(s) + "
                f"{ROUTE53_ALARM_READ_S:g} s allowance for Route 53 to read the alarm (no "
                "published figure); Route 53's own endpoint checks may act sooner "
                f"(interval_s x failure_threshold = {_dns_endpoint_path(m):g} s) "
                f"(override: monitor.{layer}.switch_allowance_s)",
            )
        key = "dns:health_check" if spec.dns.mode == "health_check" else f"dns:direct:{spec.cloud}"
    elif layer == "data":
        engine = spec.db_engine
        key = f"data:tencent:{engine}" if spec.cloud == "tencent" else f"data:{engine}"
    elif layer == "gateway" and spec.cloud == "tencent":
        key = "gateway:tencent"
    else:
        key = layer
    seconds, why = _SWITCH_DEFAULTS[key]
    return Figure(seconds, f"{why} (override: monitor.{layer}.switch_allowance_s)")


def _propagation(spec: TopologySpec, layer: Layer) -> Figure:
    if layer == "gateway" and spec.cloud == "tencent":
        return Figure(10.0, "allowance for the SCF custom domain's new route to reach its "
                            "edge (no published figure)")
    if layer == "gateway":
        return Figure(0.0, "stage variable applies to the next request, no redeploy")
    if layer == "dns" and spec.cloud != "tencent":
        return Figure(float(spec.dns.ttl_s), "dns.ttl_s: resolvers may cache the old answer")
    if layer == "dns" and spec.cloud == "tencent":
        return Figure(float(spec.dns.ttl_s),
                      f"dns.ttl_s: resolvers may cache the old answer (DNSPod plan minimum "
                      f"{spec.dns_min_ttl_s} s)")
    cache = spec.wrapper.pointer_cache_s
    return Figure(float(cache), "wrapper.pointer_cache_s: callers cache the active pointer")


def _rpo(spec: TopologySpec) -> list[RpoBudget]:
    out: list[RpoBudget] = []
    t = spec.targets
    engine = spec.db_engine
    db = spec.database
    if not db.replica:
        out.append(RpoBudget("database", "none (database.replica: false)",
                             Figure(None, "no replica: recovery needs a backup restore"), False,
                             t.rpo_s))
    elif engine == "dynamodb":
        out.append(RpoBudget("database", "DynamoDB global table (async)",
                             Figure(1.0, "DynamoDB global tables: usually under 1 s, "
                                         "no guarantee, last writer wins"), False, t.rpo_s))
    elif engine == "mysql" and spec.cloud == "tencent":
        out.append(RpoBudget("database", "CDB DR instance (async) with lag guard",
                             Figure(db.max_lag_s, "database.max_lag_s: the data monitor does "
                                                  "not switch a DR instance it sees lagging "
                                                  "more (SwitchDrInstanceToMaster without "
                                                  "IgnoreSyncDelay also waits for catch-up); "
                                                  "best effort, asynchronous replication"),
                             False, t.rpo_s))
    elif engine in SQL_ENGINES:
        # Asynchronous replication: the guard refuses to promote a replica seen lagging more,
        # but what the primary acknowledged after the last lag reading can still be lost.
        out.append(RpoBudget("database", "cross-region replica (async) with lag guard",
                             Figure(db.max_lag_s, "database.max_lag_s: the data monitor does "
                                                  "not promote a replica it sees lagging more; "
                                                  "best effort, guaranteed only with "
                                                  "synchronous replication"), False,
                             t.rpo_s))
    if spec.storage.enabled:
        if not spec.storage.replication:
            out.append(RpoBudget("storage", "none (storage.replication: false)",
                                 Figure(None, "objects exist in one region only"), False,
                                 t.object_rpo_s))
        elif spec.cloud == "aws" and spec.storage.rtc:
            out.append(RpoBudget("storage", "S3 replication with RTC",
                                 Figure(900.0, "S3 Replication Time Control: 99.99% of objects "
                                               "within 15 minutes"), True, t.object_rpo_s))
        else:
            name = "S3 replication" if spec.cloud == "aws" else "COS cross-region replication"
            out.append(RpoBudget("storage", f"{name} (best effort)",
                                 Figure(None, f"{name} without a time guarantee"), False,
                                 t.object_rpo_s))
    return out


def compute_budget(spec: TopologySpec) -> Budget:
    """The worst-case RTO per layer and the RPO per store, checked against the targets."""
    layers: list[LayerBudget] = []
    for layer in LAYERS:
        # The budget is for the worst region: overrides may slow one region's monitor.
        candidates = []
        for region in spec.all_regions:
            m = spec.for_region(region).monitor.for_layer(layer)
            candidates.append(
                LayerBudget(layer, _SWITCHES[layer],
                            _detection(spec, layer, m, _vantages(spec, region)),
                            _switch(spec, layer, m), _propagation(spec, layer))
            )
        impossible = [c for c in candidates if c.detection.seconds is None]
        layers.append(impossible[0] if impossible else max(candidates, key=lambda lb: lb.rto_s))
    rpo = _rpo(spec)
    violations: list[str] = []
    for lb in layers:
        if lb.detection.seconds is None:
            violations.append(f"{lb.layer}: {lb.detection.source}; no automatic switch")
        elif lb.rto_s > spec.targets.rto_s:
            violations.append(
                f"{lb.layer}: worst-case RTO {lb.rto_s:g} s exceeds targets.rto_s "
                f"({spec.targets.rto_s} s)"
            )
    for rb in rpo:
        if rb.target_s is None:
            continue
        if rb.figure.seconds is None:
            violations.append(
                f"{rb.store}: RPO is unbounded with {rb.replication}, so targets."
                f"{'rpo_s' if rb.store == 'database' else 'object_rpo_s'} ({rb.target_s:g} s) "
                "cannot be met"
            )
        elif rb.figure.seconds > rb.target_s:
            violations.append(
                f"{rb.store}: RPO {rb.figure.seconds:g} s ({rb.replication}) exceeds "
                f"targets.{'rpo_s' if rb.store == 'database' else 'object_rpo_s'} "
                f"({rb.target_s:g} s)"
            )
    return Budget(float(spec.targets.rto_s), spec.targets.rpo_s, layers, rpo, violations)


def check_budget(spec: TopologySpec) -> Budget:
    """Compute the budget and raise ``BudgetError`` (with the table) if targets are not met."""
    budget = compute_budget(spec)
    if not budget.ok:
        lines = "\n".join(f"  - {v}" for v in budget.violations)
        raise BudgetError(
            f"the declared RTO/RPO targets cannot be met:\n{lines}\n\n{budget.table()}"
        )
    return budget
