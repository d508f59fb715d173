"""The RTO/RPO budget: a plain function from the spec to worst-case figures per layer.

Every figure carries its source: a config value (``monitor.gateway.interval_s``) or a
documented cloud limit. If the declared targets cannot be met, ``check_budget`` raises
``BudgetError`` with the whole table, before any resource is created.

Model (per layer, worst case):
    detection   = failure_threshold x effective interval + probe timeout
                  (+ one interval when quorum > 1: the other vantage point may see the
                  failure one probe later)
    switch      = the time the switch itself takes (allowance, documented per layer)
    propagation = how long callers keep using the old side (DNS TTL, pointer caches)
    RTO         = detection + switch + propagation
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from components.errors import BudgetError
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
        0.0,
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
    "data:postgres": (600.0, "RDS cross-region read replica promotion takes minutes"),
    "data:mysql": (600.0, "RDS cross-region read replica promotion takes minutes"),
    "data:tencent:mysql": (
        60.0,
        "allowance for CDB SwitchDrInstanceToMaster (Tencent's DR standard: failover <=5 s, "
        "recovery <=60 s)",
    ),
    "data:tencent:postgres": (60.0, "allowance for replica promotion"),
}

_SWITCHES: dict[Layer, str] = {
    "dns": "public DNS answer -> standby region",
    "gateway": "gateway integration -> standby logic function",
    "logic": "logic's wrapper pointer -> standby wrapper",
    "data": "data pointer -> standby database/bucket (promote replica)",
}


def _detection(spec: TopologySpec, layer: Layer, m: MonitorSettings) -> Figure:
    cloud = spec.cloud
    p = f"monitor.{layer}"
    if layer == "dns" and spec.dns.mode == "health_check":
        seconds: float = m.interval_s * m.failure_threshold
        return Figure(
            float(seconds),
            f"{p}.interval_s ({m.interval_s}) x {p}.failure_threshold ({m.failure_threshold}): "
            "Route 53 health checkers",
        )
    floor = SCHEDULER_FLOOR_S[cloud]
    interval: float
    if m.interval_s < floor:
        interval = m.interval_s
        how = f"probing in a loop inside each invocation ({cloud} scheduler floor {floor} s)"
    else:
        interval = math.ceil(m.interval_s / floor) * floor
        how = f"one probe per scheduled invocation, interval rounded up to the {floor} s floor"
    seconds = interval * m.failure_threshold + m.timeout_s
    source = (
        f"{p}.interval_s ({interval}) x {p}.failure_threshold ({m.failure_threshold}) + "
        f"{p}.timeout_s ({m.timeout_s:g}), {how}"
    )
    if m.quorum > 1:
        seconds += interval
        source += f"; + one interval for {p}.quorum ({m.quorum}) vantage points to agree"
    return Figure(float(seconds), source)


def _switch(spec: TopologySpec, layer: Layer, m: MonitorSettings) -> Figure:
    if m.switch_allowance_s is not None:
        return Figure(m.switch_allowance_s, f"monitor.{layer}.switch_allowance_s")
    if layer == "dns":
        key = "dns:health_check" if spec.dns.mode == "health_check" else f"dns:direct:{spec.cloud}"
    elif layer == "data":
        engine = spec.db_engine
        key = f"data:tencent:{engine}" if spec.cloud == "tencent" else f"data:{engine}"
    else:
        key = layer
    seconds, why = _SWITCH_DEFAULTS[key]
    return Figure(seconds, f"{why} (override: monitor.{layer}.switch_allowance_s)")


def _propagation(spec: TopologySpec, layer: Layer) -> Figure:
    if layer == "dns":
        return Figure(float(spec.dns.ttl_s), "dns.ttl_s: resolvers may cache the old answer")
    if layer == "gateway":
        return Figure(0.0, "stage variable applies to the next request, no redeploy")
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
    elif engine in SQL_ENGINES:
        out.append(RpoBudget("database", "cross-region replica (async) with lag guard",
                             Figure(db.max_lag_s, "database.max_lag_s: the data monitor never "
                                                  "promotes a replica lagging more"), True,
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
                LayerBudget(layer, _SWITCHES[layer], _detection(spec, layer, m),
                            _switch(spec, layer, m), _propagation(spec, layer))
            )
        layers.append(max(candidates, key=lambda lb: lb.rto_s))
    rpo = _rpo(spec)
    violations: list[str] = []
    for lb in layers:
        if lb.rto_s > spec.targets.rto_s:
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
