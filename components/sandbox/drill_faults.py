"""The drill's faults: inject one, wait for the first success on the standby, read the
monitors' timeline, heal, and switch back."""

from __future__ import annotations

import time
from collections.abc import Callable

from components.sandbox.drill_load import LoadGen
from components.sandbox.drill_report import TITLES, FaultReport, Sample, budgets
from components.sandbox.drill_world import DNS_CHECK, World


class FaultSteps(World):
    """One method per fault (``_fault_*``, ``_planned``), with the timeline helpers."""

    load: LoadGen

    def _report(self, key: str, layer: str, planned: bool) -> FaultReport:
        budget, source = budgets()[layer]
        r = FaultReport(key, TITLES[key], layer, planned, time.time(), budget, source)
        self.reports.append(r)
        self.say(f"  {self._ts(r.injected)}  injected")
        return r

    def _ts(self, t: float) -> str:
        return f"t={t - self.t0:6.2f}s"

    def _await(self, r: FaultReport, layer: str, on_standby: Callable[[Sample], bool],
               timeout_s: float = 30.0, detect: bool = True) -> None:
        """Wait for the first success on the standby; then read the monitors' timeline."""
        deadline = time.time() + timeout_s
        while time.time() < deadline:
            with self.load._lock:
                hit = next((s for s in self.load.samples
                            if s.t >= r.injected and s.ok and on_standby(s)), None)
            if hit is not None and (not detect or self._switch_event(r, layer) is not None):
                r.first_standby = hit.t
                break
            time.sleep(0.1)
        with self.lock:
            if detect:
                d = next((e for e in self.events if e[0] >= r.injected and e[3] == "detected"
                          and e[1].startswith(layer + "@")), None)
                if d is not None:
                    r.detected, r.detected_how = d[0], f"{d[1]} saw {d[2]} fail twice in a row"
        sw = self._switch_event(r, layer)
        if sw is not None:
            r.switched = sw[0]
            r.switched_how = (f"switch call returned: {sw[3]}" if sw[1] == "data@drill"
                              else f"by {sw[1]}: scope {sw[2]} {sw[3]}")
        if r.detected is not None:
            self.say(f"  {self._ts(r.detected)}  detected   {r.detected_how}")
        if r.switched is not None:
            self.say(f"  {self._ts(r.switched)}  switched   {r.switched_how}")
        if r.first_standby is not None:
            self.say(f"  {self._ts(r.first_standby)}  first success on the standby")
        else:
            r.notes.append(f"no success on the standby within {timeout_s:g} s")
            self.say(f"  no success on the standby within {timeout_s:g} s")

    def _switch_event(self, r: FaultReport, layer: str) -> tuple[float, str, str, str] | None:
        with self.lock:
            return next((e for e in self.events if e[0] >= r.injected
                         and e[3].startswith("switched") and e[1].startswith(layer + "@")), None)

    def _close(self, r: FaultReport) -> None:
        with self.load._lock:
            window = [s for s in self.load.samples
                      if r.injected <= s.t <= (r.first_standby or time.time())]
        r.failed_requests = sum(not s.ok for s in window)
        rto = r.rto_s
        text = "no recovery" if rto is None else f"{rto:.2f} s"
        self.say(f"  RTO {text}   budget {r.budget_s:g} s ({r.budget_source})"
                 + ("" if rto is None else f"   ratio {rto / r.budget_s:.2f}")
                 + f"   failed requests {r.failed_requests}")

    def _switch_back(self, layer: str, scope: str, monitor_region: str) -> None:
        m = self.monitors[(layer, monitor_region)].monitor
        o = m.switch(scope, "primary", "drill: fault healed, planned failback", {}, by="drill")
        self.say(f"  healed; planned switch back to primary: {o.detail or 'ok'}")

    def _fault_logic(self) -> None:
        fn = self.fn("logic", self.R1, "primary")
        r = self._report("logic", "gateway", planned=False)
        self.host.fault(fn, "5xx")
        self._await(r, "gateway", lambda s: s.region == self.R1 and s.logic_side == "standby")
        self._close(r)
        self.host.fault(fn, "none")
        self._settle(1.5)
        self._switch_back("gateway", self.R1, self.R2)
        self._settle(1.5)

    def _fault_wrapper(self) -> None:
        fn = self.fn("wrap", self.R1, "primary")
        r = self._report("wrapper", "logic", planned=False)
        self.host.fault(fn, "down")
        self._await(r, "logic", lambda s: s.region == self.R1 and s.wrapper_side == "standby")
        self._close(r)
        r.notes.append("the data client falls back to the standby wrapper on the first failed "
                       "invoke; the monitor then moves the pointer so callers stop trying it")
        self.host.fault(fn, "none")
        self._settle(1.5)
        self._switch_back("logic", self.R1, self.R2)
        self._settle(1.5)

    def _planned(self) -> None:
        m = self.monitors[("data", self.R2)].monitor
        r = self._report("planned", "data", planned=True)
        o = m.switch("data", "standby", "drill: planned switchover", {}, by="drill")
        with self.lock:
            self.events.append((time.time(), "data@drill", "data",
                                f"switched to standby ({o.detail})"))
        self._await(r, "data", lambda s: s.data_region == self.R2, detect=False)
        self._close(r)
        r.lost_writes = self._missing("standby", before=r.switched)
        self.say(f"  acknowledged writes missing on the new primary: {r.lost_writes}")
        self.pg.add_replica("primary", source="standby")
        self.say("  rebuilt us-east-1 as a replica of us-west-2 (pg_basebackup)")
        self._settle(1.0)
        self.say(f"  then: {TITLES['failback']}")
        back = self._report("failback", "data", planned=True)
        o = m.switch("data", "primary", "drill: planned failback", {}, by="drill")
        with self.lock:
            self.events.append((time.time(), "data@drill", "data",
                                f"switched to primary ({o.detail})"))
        self._await(back, "data", lambda s: s.data_region == self.R1, detect=False)
        self._close(back)
        back.lost_writes = self._missing("primary", before=back.switched)
        self.say(f"  acknowledged writes missing on the new primary: {back.lost_writes}")
        self.pg.add_replica("standby", source="primary")
        self.say("  rebuilt us-west-2 as a replica of us-east-1")
        self._settle(1.5)

    def _fault_database(self) -> None:
        r = self._report("database", "data", planned=False)
        self.pg.kill("primary")
        self._await(r, "data", lambda s: s.data_region == self.R2)
        self._close(r)
        r.lost_writes = self._missing("standby", before=r.injected)
        self.say(f"  acknowledged writes missing on the new primary: {r.lost_writes} "
                 "(asynchronous replication: a crash may lose what was not yet streamed)")
        self.pg.add_replica("primary", source="standby")
        self.say("  rebuilt the killed us-east-1 server as a replica of us-west-2")
        self._settle(1.5)

    def _fault_region(self) -> None:
        r = self._report("region", "dns", planned=False)
        for layer in ("gateway", "logic", "data", "dns"):
            self.monitors[(layer, self.R1)].stop()
        for tier in ("logic", "wrap"):
            for side in ("primary", "standby"):
                self.host.fault(self.fn(tier, self.R1, side), "down")
        self.gateways[self.R1].stop()
        if self._data_region() == self.R2:
            self.pg.kill("primary")  # the us-east-1 server (a replica by now) dies with it
        else:
            r.notes.append("the database primary is in us-east-1 and is left running: with two "
                           "regions and quorum 2 the data layer cannot fail over without a "
                           "third vantage point (run the database fault first)")
        deadline = time.time() + 30
        while time.time() < deadline and self.route53.answer() != self.R2:
            time.sleep(0.05)
        if self.route53.answer() == self.R2:
            r.detected = r.switched = time.time()
            r.detected_how = (f"Route 53 endpoint check failed {DNS_CHECK['failure_threshold']:g}"
                              " times in a row")
            r.switched_how = "Route 53 answers the SECONDARY record (us-west-2)"
        self._await(r, "dns", lambda s: s.region == self.R2, detect=False)
        self._close(r)
        r.notes.append("the us-east-1 monitors are down with their region; the us-west-2 DNS "
                       "monitor alone cannot reach quorum 2, so Route 53's own checks move the "
                       "traffic (by design: a cut-off monitor never fails over alone)")

    def _data_region(self) -> str:
        from components.sandbox import world

        return world.pointer(self.R2, "data")[0]

    def _missing(self, server: str, before: float | None) -> int:
        acked = set(self.load.acked(before))
        if not acked:
            return 0
        with self.pg.connect(server, "app") as c:
            present = {row[0] for row in c.execute("SELECT id FROM orders").fetchall()}
        return len(acked - present)

