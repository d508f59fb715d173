"""Readiness on AWS: parity between the primary and the standby side of every layer.

Sides, as the switches see them:
- logic and wrapper functions: the primary and standby function of each region (the gateway
  and logic switches flip between them), and the same function of the two regions of a
  group (a region loss moves traffic to the other region's functions);
- API stages, buckets and Lambda quotas: the two regions of a group;
- the data table, database and secrets: the data primary region and every other region
  (those rules are in ``readiness_aws_data``).

A difference the plan itself registers (a per-region override, a pinned standby) is by
design: READY, with the reason. Names come from the plan (they are deterministic) or, where
the cloud picks them (bucket names, API ids, secret ARNs), from the deployed functions'
environments: the same wiring the monitors use.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from components.dr.readiness import NOT_READY, READY, UNKNOWN, Check
from components.dr.readiness_read import (
    PlanFunction,
    PlanView,
    Read,
    Reader,
    layer_name,
    plan_view,
    problem_check,
)

SIDES = ("primary", "standby")
#: The REST stage fields compared between regions (GetStage); variables by name only.
STAGE_FIELDS = ("methodSettings", "cacheClusterEnabled", "cacheClusterSize", "tracingEnabled")


def check_aws(spec: Any, run: Any, clients: Any) -> list[Check]:
    # Both build on this module's Context.
    from components.dr.readiness_aws_data import (
        bucket_parity,
        dynamodb_parity,
        quota_parity,
        rds_parity,
        secrets_present,
    )
    from components.dr.readiness_plan import conformance

    view = plan_view(run)
    ctx = Context(spec, view, Reader(clients))
    checks = lambda_parity(ctx)
    checks += stage_parity(ctx)
    checks += dynamodb_parity(ctx)
    checks += bucket_parity(ctx)
    checks += rds_parity(ctx)
    checks += secrets_present(ctx)
    checks += quota_parity(ctx)
    checks += conformance(ctx)
    return checks


class Context:
    """The spec, the plan view and the reader, plus the deployed reads every rule shares."""

    def __init__(self, spec: Any, view: PlanView, reader: Reader) -> None:
        self.spec, self.view, self.reader = spec, view, reader

    def config(self, fn: PlanFunction) -> Read:
        return self.reader.call("lambda", fn.region, "get_function_configuration",
                                f"function {fn.name}", FunctionName=fn.name)

    def env(self, fn: PlanFunction) -> Read:
        cfg = self.config(fn)
        if not cfg.ok:
            return cfg
        return Read({str(k): str(v) for k, v in
                     (cfg.value.get("Environment") or {}).get("Variables", {}).items()})

    def reserved(self, fn: PlanFunction) -> Read:
        got = self.reader.call("lambda", fn.region, "get_function_concurrency",
                               f"function {fn.name}", FunctionName=fn.name)
        return Read(got.value.get("ReservedConcurrentExecutions")) if got.ok else got

    def monitors(self, layer: str) -> list[PlanFunction]:
        return [f for f in self.view.functions.values()
                if f.monitor and f.env.get("STANDBY_LAYER") == layer]

    def pairs(self) -> list[tuple[str, str]]:
        """(primary, standby) region of every group, each pair once."""
        return list(dict.fromkeys((g.primary, g.standby) for g in self.spec.region_groups))


# -- Lambda ---------------------------------------------------------------------------------

def show(value: Any) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(map(str, value)) + "]" if value else "none"
    return "none" if value is None else str(value)


def pair(rule: str, subject: str, labels: tuple[str, str], deployed: tuple[Any, Any],
         planned: tuple[Any, Any], unit: str = "") -> Check:
    (va, vb), (pa, pb) = deployed, planned
    if va == vb:
        return Check(rule, subject, READY, f"{show(va)}{unit} on both")
    if pa != pb and (va, vb) == (pa, pb):
        return Check(rule, subject, READY, f"{labels[0]} {show(va)}{unit}, {labels[1]} "
                                           f"{show(vb)}{unit}: by design (the plan "
                                           "registers them so)")
    return Check(rule, subject, NOT_READY,
                 f"{labels[0]} {show(va)}{unit}, {labels[1]} {show(vb)}{unit}")


def _env_keys(subject: str, labels: tuple[str, str], a: set[str], b: set[str],
              pa: set[str], pb: set[str]) -> Check:
    rule = "lambda.env_keys"
    if a == b:
        return Check(rule, subject, READY, f"{len(a)} names on both")
    if (a, b) == (pa, pb):
        return Check(rule, subject, READY, "different names by design (the plan registers "
                                           "them so)")
    lacks = [f"{labels[1]} lacks {', '.join(sorted(a - b))}" if a - b else "",
             f"{labels[0]} lacks {', '.join(sorted(b - a))}" if b - a else ""]
    return Check(rule, subject, NOT_READY, "; ".join(x for x in lacks if x))


def _function_pairs(ctx: Context) -> list[tuple[str, tuple[str, str], PlanFunction,
                                                 PlanFunction]]:
    out = []
    for role in ("logic", "wrapper"):
        for region in ctx.spec.all_regions:
            a, b = (ctx.view.function(role, region, s) for s in SIDES)
            if a and b:
                out.append((f"{role} {region}: primary~standby", SIDES, a, b))
        for primary, standby in ctx.pairs():
            for side in SIDES:
                a, b = ctx.view.function(role, primary, side), ctx.view.function(
                    role, standby, side)
                if a and b:
                    out.append((f"{role} {side}: {primary}~{standby}", (primary, standby),
                                a, b))
    return out


def lambda_parity(ctx: Context) -> list[Check]:
    checks: list[Check] = []
    simple: list[tuple[str, str, Callable[[PlanFunction], Any], str]] = [
        ("lambda.runtime", "Runtime", lambda f: f.runtime, ""),
        ("lambda.memory", "MemorySize", lambda f: f.memory, " MB"),
        ("lambda.timeout", "Timeout", lambda f: f.timeout, " s"),
    ]
    for subject, labels, a, b in _function_pairs(ctx):
        ca, cb = ctx.config(a), ctx.config(b)
        bad = problem_check("lambda.runtime", subject, ca, cb)
        if bad is not None:  # the same read failure explains every attribute
            checks += [Check(rule, subject, bad.status, bad.detail) for rule in (
                "lambda.runtime", "lambda.memory", "lambda.timeout", "lambda.env_keys",
                "lambda.layers", "lambda.code_hash", "lambda.concurrency")]
            continue
        x, y = ca.value, cb.value
        for rule, key, planned, unit in simple:
            checks.append(pair(rule, subject, labels, (x.get(key), y.get(key)),
                               (planned(a), planned(b)), unit))
        ea = set((x.get("Environment") or {}).get("Variables", {}))
        eb = set((y.get("Environment") or {}).get("Variables", {}))
        checks.append(_env_keys(subject, labels, ea, eb, set(a.env), set(b.env)))
        la = [layer_name(str(v["Arn"])) for v in x.get("Layers") or []]
        lb = [layer_name(str(v["Arn"])) for v in y.get("Layers") or []]
        checks.append(pair("lambda.layers", subject, labels, (la, lb), (a.layers, b.layers)))
        checks.append(_code_hash(subject, labels, x.get("CodeSha256"), y.get("CodeSha256"),
                                 a.pinned != b.pinned))
        checks.append(_concurrency(subject, labels, ctx.reserved(a), ctx.reserved(b),
                                   (a.reserved, b.reserved)))
    return checks


def _code_hash(subject: str, labels: tuple[str, str], ha: Any, hb: Any,
               pinned: bool) -> Check:
    rule = "lambda.code_hash"
    if ha == hb:
        return Check(rule, subject, READY, f"{str(ha)[:12]}... on both")
    if pinned:
        return Check(rule, subject, READY, "differs by design: the standby is pinned "
                                           "(logic.standby_version: pinned)")
    return Check(rule, subject, NOT_READY, f"{labels[0]} {str(ha)[:12]}..., {labels[1]} "
                                           f"{str(hb)[:12]}...")


def _concurrency(subject: str, labels: tuple[str, str], ra: Read, rb: Read,
                 planned: tuple[int | None, int | None]) -> Check:
    rule = "lambda.concurrency"
    bad = problem_check(rule, subject, ra, rb)
    if bad is not None:
        return bad
    zero = [label for label, r in zip(labels, (ra, rb), strict=True) if r.value == 0]
    if zero:
        return Check(rule, subject, NOT_READY, f"reserved concurrency 0 on {', '.join(zero)}:"
                                               " every invocation is throttled")
    return pair(rule, subject, labels, (ra.value, rb.value), planned)


# -- API Gateway ----------------------------------------------------------------------------

def stage_targets(ctx: Context) -> tuple[dict[str, dict[str, Any]], list[Read]]:
    """Region -> the deployed gateway switch target (REST id, stage, values), from the
    deployed gateway monitors' environments; and the reads that failed."""
    targets: dict[str, dict[str, Any]] = {}
    failed = []
    for mon in ctx.monitors("gateway"):
        env = ctx.env(mon)
        if not env.ok:
            failed.append(env)
            continue
        try:
            for t in json.loads(env.value.get("STANDBY_SWITCH", "[]")):
                targets.setdefault(str(t.get("region", t["scope"])), t)
        except (ValueError, KeyError, TypeError):
            failed.append(Read(problem=UNKNOWN,
                               why=f"{mon.name}: STANDBY_SWITCH is not the monitor's JSON"))
    return targets, failed


def stage_parity(ctx: Context) -> list[Check]:
    rule = "apigw.stage_settings"
    targets, failed = stage_targets(ctx)
    checks = []
    for primary, standby in ctx.pairs():
        subject = f"stage {primary}~{standby}"
        ts = [targets.get(primary), targets.get(standby)]
        unnamed = [r for r, t in zip((primary, standby), ts, strict=True) if t is None]
        if unnamed:
            checks.append(problem_check(rule, subject, *failed) or Check(
                rule, subject, NOT_READY, "no deployed gateway monitor names the stage of "
                                          + " and ".join(unnamed)))
            continue
        reads = [read_stage(ctx, r, t) for r, t in zip((primary, standby), ts, strict=True)
                 if t]
        bad = problem_check(rule, subject, *reads)
        if bad is not None:
            checks.append(bad)
            continue
        a, b = (_stage_settings(r.value) for r in reads)
        diff = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
        checks.append(Check(rule, subject, READY, f"{', '.join(sorted(a))} equal")
                      if not diff else Check(rule, subject, NOT_READY, "; ".join(
                          f"{k}: {primary} {show(a.get(k))}, {standby} {show(b.get(k))}"
                          for k in diff)))
    return checks


#: The HTTP API stage the gateway layer creates (``components/aws/gateway.py``).
HTTP_STAGE = "$default"


def read_stage(ctx: Context, region: str, target: dict[str, Any]) -> Read:
    """GetStage of a REST API (stage-variable switch) or of an HTTP API (integration
    switch; its stage is ``$default``)."""
    if target.get("kind") == "apigw_stage_variable":
        return ctx.reader.call("apigateway", region, "get_stage", f"stage {target['stage']}",
                               restApiId=target["rest_api_id"], stageName=target["stage"])
    return ctx.reader.call("apigatewayv2", region, "get_stage", f"stage {HTTP_STAGE}",
                           ApiId=target["api_id"], StageName=HTTP_STAGE)


def _stage_settings(stage: dict[str, Any]) -> dict[str, Any]:
    if "stageName" not in stage:  # an HTTP API stage (API Gateway v2: PascalCase)
        return {
            "default route settings": json.dumps(stage.get("DefaultRouteSettings") or {},
                                                 sort_keys=True),
            "route settings": json.dumps(stage.get("RouteSettings") or {}, sort_keys=True),
            "variable names": sorted(stage.get("StageVariables") or {}),
            "access logs": bool(stage.get("AccessLogSettings")),
            "auto deploy": bool(stage.get("AutoDeploy")),
        }
    out = {k: stage.get(k) for k in STAGE_FIELDS}
    for flag in ("cacheClusterEnabled", "tracingEnabled"):  # GetStage may omit a false flag
        out[flag] = bool(stage.get(flag))
    out["methodSettings"] = json.dumps(stage.get("methodSettings") or {}, sort_keys=True)
    out["variable names"] = sorted(stage.get("variables") or {})
    out["access logs"] = bool(stage.get("accessLogSettings"))
    out["web ACL"] = bool(stage.get("webAclArn"))
    return out
