"""Readiness on AWS: parity between the primary and the standby side of every layer.

Sides, as the switches see them:
- logic and wrapper functions: the primary and standby function of each region (the gateway
  and logic switches flip between them), and the same function of the two regions of a
  group (a region loss moves traffic to the other region's functions);
- API stages, buckets and Lambda quotas: the two regions of a group;
- the data table, database and secrets: the data primary region and every other region.

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
    MISSING,
    PlanFunction,
    PlanView,
    Read,
    Reader,
    layer_name,
    plan_view,
    problem_check,
)

SIDES = ("primary", "standby")
#: Service Quotas code of "Concurrent executions" (Lambda), per region.
LAMBDA_CONCURRENCY_QUOTA = "L-B99A9384"
#: The REST stage fields compared between regions (GetStage); variables by name only.
STAGE_FIELDS = ("methodSettings", "cacheClusterEnabled", "cacheClusterSize", "tracingEnabled")


def check_aws(spec: Any, run: Any, clients: Any) -> list[Check]:
    from components.dr.readiness_plan import conformance  # it builds on this module

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

def _show(value: Any) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(map(str, value)) + "]" if value else "none"
    return "none" if value is None else str(value)


def _pair(rule: str, subject: str, labels: tuple[str, str], deployed: tuple[Any, Any],
          planned: tuple[Any, Any], unit: str = "") -> Check:
    (va, vb), (pa, pb) = deployed, planned
    if va == vb:
        return Check(rule, subject, READY, f"{_show(va)}{unit} on both")
    if pa != pb and (va, vb) == (pa, pb):
        return Check(rule, subject, READY, f"{labels[0]} {_show(va)}{unit}, {labels[1]} "
                                           f"{_show(vb)}{unit}: by design (the plan "
                                           "registers them so)")
    return Check(rule, subject, NOT_READY,
                 f"{labels[0]} {_show(va)}{unit}, {labels[1]} {_show(vb)}{unit}")


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
            checks.append(_pair(rule, subject, labels, (x.get(key), y.get(key)),
                                (planned(a), planned(b)), unit))
        ea = set((x.get("Environment") or {}).get("Variables", {}))
        eb = set((y.get("Environment") or {}).get("Variables", {}))
        checks.append(_env_keys(subject, labels, ea, eb, set(a.env), set(b.env)))
        la = [layer_name(str(v["Arn"])) for v in x.get("Layers") or []]
        lb = [layer_name(str(v["Arn"])) for v in y.get("Layers") or []]
        checks.append(_pair("lambda.layers", subject, labels, (la, lb), (a.layers, b.layers)))
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
    return _pair(rule, subject, labels, (ra.value, rb.value), planned)


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
        if any(t is None for t in ts):
            checks.append(problem_check(rule, subject, *failed) or Check(
                rule, subject, NOT_READY, "no gateway switch target names the stage of "
                                          f"{' and '.join(r for r, t in zip((primary, standby), ts, strict=True) if t is None)}"))  # noqa: E501
            continue
        if any(t["kind"] != "apigw_stage_variable" for t in ts if t):
            checks.append(Check(rule, subject, UNKNOWN, "HTTP API stages are not read yet "
                                                        "(only REST stages)"))
            continue
        reads = [ctx.reader.call("apigateway", r, "get_stage", f"stage {t['stage']}",
                                 restApiId=t["rest_api_id"], stageName=t["stage"])
                 for r, t in zip((primary, standby), ts, strict=True) if t]
        bad = problem_check(rule, subject, *reads)
        if bad is not None:
            checks.append(bad)
            continue
        a, b = (_stage_settings(r.value) for r in reads)
        diff = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
        checks.append(Check(rule, subject, READY, "method settings, cache, tracing and "
                                                  "variable names equal") if not diff else
                      Check(rule, subject, NOT_READY, "; ".join(
                          f"{k}: {primary} {_show(a.get(k))}, {standby} {_show(b.get(k))}"
                          for k in diff)))
    return checks


def _stage_settings(stage: dict[str, Any]) -> dict[str, Any]:
    out = {k: stage.get(k) for k in STAGE_FIELDS}
    for flag in ("cacheClusterEnabled", "tracingEnabled"):  # GetStage may omit a false flag
        out[flag] = bool(stage.get(flag))
    out["methodSettings"] = json.dumps(stage.get("methodSettings") or {}, sort_keys=True)
    out["variable names"] = sorted(stage.get("variables") or {})
    out["access logs"] = bool(stage.get("accessLogSettings"))
    out["web ACL"] = bool(stage.get("webAclArn"))
    return out


# -- DynamoDB -------------------------------------------------------------------------------

def dynamodb_parity(ctx: Context) -> list[Check]:
    table = next((t for t in ctx.view.tables
                  if t.name == f"{ctx.spec.name}-{ctx.spec.database.name}"), None)
    if ctx.spec.db_engine != "dynamodb" or table is None:
        return []
    regions = [table.region, *table.replicas]
    subject = f"{table.name}"
    described = {r: ctx.reader.call("dynamodb", r, "describe_table", f"table {table.name}",
                                    TableName=table.name) for r in regions}
    checks = []
    bad = problem_check("dynamodb.table_status", subject, *described.values())
    states = {r: d.value["Table"].get("TableStatus") for r, d in described.items() if d.ok}
    if bad is not None:
        checks.append(bad)
    else:
        wrong = {r: s for r, s in states.items() if s != "ACTIVE"}
        checks.append(Check("dynamodb.table_status", subject, NOT_READY if wrong else READY,
                            ", ".join(f"{r} {s}" for r, s in states.items())))
    if table.replicas:
        checks.append(_replicas(subject, table.region, list(table.replicas),
                                described[table.region]))
    backups = {r: ctx.reader.call("dynamodb", r, "describe_continuous_backups",
                                  f"table {table.name}", TableName=table.name)
               for r in regions}
    bad = problem_check("dynamodb.pitr", subject, *backups.values())
    if bad is not None:
        return [*checks, bad]
    pitr = {r: b.value["ContinuousBackupsDescription"].get(
        "PointInTimeRecoveryDescription", {}).get("PointInTimeRecoveryStatus", "DISABLED")
        for r, b in backups.items()}
    wanted = {table.region: table.pitr, **table.replicas}
    off = [r for r, s in pitr.items() if wanted.get(r) and s != "ENABLED"]
    unequal = len(set(pitr.values())) > 1
    detail = ", ".join(f"{r} {s}" for r, s in pitr.items())
    checks.append(Check("dynamodb.pitr", subject, NOT_READY if off or unequal else READY,
                        detail + (f" (registered ENABLED in {', '.join(off)})" if off else "")))
    return checks


def _replicas(subject: str, home: str, wanted: list[str], described: Read) -> Check:
    rule = "dynamodb.replica_status"
    bad = problem_check(rule, subject, described)
    if bad is not None:
        return bad
    got = {str(r.get("RegionName")): str(r.get("ReplicaStatus"))
           for r in described.value["Table"].get("Replicas") or []}
    if not got:
        return Check(rule, subject, NOT_READY, f"DescribeTable in {home} lists no replicas: "
                                               f"{', '.join(wanted)} not replicated")
    wrong = {r: got.get(r, "not a replica") for r in wanted if got.get(r) != "ACTIVE"}
    return Check(rule, subject, NOT_READY if wrong else READY,
                 ", ".join(f"{r} {got.get(r, 'not a replica')}" for r in wanted))


# -- S3 -------------------------------------------------------------------------------------

def deployed_buckets(ctx: Context) -> tuple[dict[str, str], list[Read]]:
    """Region -> bucket name, from a deployed wrapper's STANDBY_BUCKETS (the cloud names
    buckets from a prefix)."""
    failed = []
    for fn in ctx.view.functions.values():
        if fn.layer == "wrapper" and "STANDBY_BUCKETS" in fn.env:
            env = ctx.env(fn)
            if env.ok and "STANDBY_BUCKETS" in env.value:
                try:
                    return {str(k): str(v) for k, v in
                            json.loads(env.value["STANDBY_BUCKETS"]).items()}, []
                except (ValueError, AttributeError):
                    failed.append(Read(problem=UNKNOWN,
                                       why=f"{fn.name}: STANDBY_BUCKETS is not JSON"))
            elif env.ok:
                failed.append(Read(problem=MISSING, why=f"{fn.name} has no STANDBY_BUCKETS"))
            else:
                failed.append(env)
    return {}, failed


def bucket_parity(ctx: Context) -> list[Check]:
    if not ctx.view.buckets:
        return []
    names, failed = deployed_buckets(ctx)
    regions = list(ctx.view.buckets)
    subject = "buckets " + "~".join(regions)
    if failed or set(regions) - set(names):
        bad = problem_check("s3.versioning", subject, *failed) or Check(
            "s3.versioning", subject, NOT_READY, "no deployed wrapper names the buckets of "
                                                 f"{', '.join(sorted(set(regions) - set(names)))}")
        return [bad, Check("s3.replication", subject, bad.status, bad.detail)]
    versions = {r: ctx.reader.call("s3", r, "get_bucket_versioning", f"bucket {names[r]}",
                                   Bucket=names[r]) for r in regions}
    checks = [problem_check("s3.versioning", subject, *versions.values()) or _versioning(
        subject, {r: v.value.get("Status", "never enabled") for r, v in versions.items()})]
    replicated = [r for r in regions if ctx.view.buckets[r].replication]
    if replicated:
        checks.append(_replication(ctx, subject, names, replicated))
    return checks


def _versioning(subject: str, status: dict[str, str]) -> Check:
    off = [r for r, s in status.items() if s != "Enabled"]
    return Check("s3.versioning", subject, NOT_READY if off else READY,
                 ", ".join(f"{r} {s}" for r, s in status.items()))


def _replication(ctx: Context, subject: str, names: dict[str, str],
                 regions: list[str]) -> Check:
    rule = "s3.replication"
    reads = {r: ctx.reader.call("s3", r, "get_bucket_replication", f"bucket {names[r]}",
                                Bucket=names[r]) for r in regions}
    missing = [r for r, x in reads.items() if x.problem == MISSING]
    if missing:
        return Check(rule, subject, NOT_READY, "no replication configuration on "
                                               f"{', '.join(names[r] for r in missing)}")
    bad = problem_check(rule, subject, *reads.values())
    if bad is not None:
        return bad
    problems = []
    for r, x in reads.items():
        others = {f"arn:aws:s3:::{n}" for o, n in names.items() if o != r}
        rules = x.value.get("ReplicationConfiguration", {}).get("Rules") or []
        live = [q for q in rules if q.get("Status") == "Enabled"
                and (q.get("Destination") or {}).get("Bucket") in others]
        if not live:
            problems.append(f"{r}: no Enabled rule towards the other side's bucket")
    return Check(rule, subject, NOT_READY if problems else READY,
                 "; ".join(problems) or "Enabled in " + ", ".join(regions))


# -- RDS ------------------------------------------------------------------------------------

def rds_parity(ctx: Context) -> list[Check]:
    checks = []
    by_id = {d.identifier: d for d in ctx.view.dbs}
    for replica in (d for d in ctx.view.dbs if d.replica_of):
        source_id = str(replica.replica_of).rsplit(":db:", 1)[-1]
        source = by_id.get(source_id)
        if source is None:
            continue
        subject = f"{source.identifier}~{replica.identifier}"
        reads = [ctx.reader.call("rds", d.region, "describe_db_instances",
                                 f"instance {d.identifier}", DBInstanceIdentifier=d.identifier)
                 for d in (source, replica)]
        bad = problem_check("rds.engine_version", subject, *reads)
        if bad is not None:
            checks += [Check(r, subject, bad.status, bad.detail)
                       for r in ("rds.engine_version", "rds.instance_class", "rds.replica_status")]
            continue
        a, b = (r.value["DBInstances"][0] for r in reads)
        labels = (source.region, replica.region)
        checks.append(_pair("rds.engine_version", subject, labels,
                            (f"{a.get('Engine')} {a.get('EngineVersion')}",
                             f"{b.get('Engine')} {b.get('EngineVersion')}"), ("", "")))
        checks.append(_pair("rds.instance_class", subject, labels,
                            (a.get("DBInstanceClass"), b.get("DBInstanceClass")),
                            (source.instance_class, replica.instance_class)))
        checks.append(replica_status(subject, source.identifier, b))
    return checks


def replica_status(subject: str, source_id: str, replica: dict[str, Any]) -> Check:
    rule = "rds.replica_status"
    src = str(replica.get("ReadReplicaSourceDBInstanceIdentifier") or "")
    if not src or src.rsplit(":db:", 1)[-1] != source_id:
        return Check(rule, subject, NOT_READY, f"not a replica of {source_id} (source: "
                                               f"{src or 'none'}: promoted or detached?)")
    if replica.get("DBInstanceStatus") != "available":
        return Check(rule, subject, NOT_READY, f"status {replica.get('DBInstanceStatus')}")
    info = [s for s in replica.get("StatusInfos") or [] if s.get("StatusType") ==
            "read replication"]
    if not info:
        return Check(rule, subject, UNKNOWN, "available, but the replica reports no "
                                             "read-replication status")
    s = info[0]
    ok = s.get("Normal") and s.get("Status") == "replicating"
    return Check(rule, subject, READY if ok else NOT_READY,
                 f"read replication {s.get('Status')}" + (f": {s.get('Message')}"
                                                          if s.get("Message") else ""))


# -- secrets and quotas ---------------------------------------------------------------------

def _secret_refs(env: dict[str, str]) -> dict[str, list[str]]:
    """Purpose -> secret ARNs named in a function's environment."""
    out: dict[str, list[str]] = {}
    if "STANDBY_WEBHOOKS" in env:
        try:
            for n, hook in enumerate(json.loads(env["STANDBY_WEBHOOKS"])):
                out[f"webhook {n} ({hook.get('kind')})"] = [str(hook.get("secret_arn"))]
        except (ValueError, AttributeError, TypeError):
            out["webhooks"] = []
    for key, value in env.items():
        if key.endswith("_SECRET_ARN"):
            out["database credentials" if key == "STANDBY_DB_SECRET_ARN" else key] = [value]
    return out


def secrets_present(ctx: Context) -> list[Check]:
    rule = "secrets.present"
    wanted: dict[str, dict[str, list[Read]]] = {}
    for fn in ctx.view.functions.values():
        planned = _secret_refs(fn.env)
        if not planned:
            continue
        env = ctx.env(fn)
        got = _secret_refs(env.value) if env.ok else {}
        for purpose in planned:
            per_region = wanted.setdefault(purpose, {}).setdefault(fn.region, [])
            if not env.ok:
                per_region.append(env)
            elif not got.get(purpose):
                per_region.append(Read(problem=MISSING,
                                       why=f"{fn.name} names no secret for {purpose}"))
            for arn in got.get(purpose, []):
                region = arn.split(":")[3] if arn.count(":") >= 6 else fn.region
                per_region.append(_secret(ctx, region, arn))
    checks = []
    for purpose, regions in sorted(wanted.items()):
        reads = [r for rs in regions.values() for r in rs]
        checks.append(problem_check(rule, purpose, *reads) or Check(
            rule, purpose, READY, "present in " + ", ".join(sorted(regions))))
    return checks


def _secret(ctx: Context, region: str, arn: str) -> Read:
    got = ctx.reader.call("secretsmanager", region, "describe_secret",
                          f"secret {arn.rsplit(':', 1)[-1]}", SecretId=arn)
    if got.ok and got.value.get("DeletedDate"):
        return Read(problem=MISSING, why=f"secret {got.value.get('Name')} in {region} is "
                                           "scheduled for deletion")
    return got


def quota_parity(ctx: Context) -> list[Check]:
    checks = []
    for primary, standby in ctx.pairs():
        reads = [ctx.reader.call("service-quotas", r, "get_service_quota",
                                 "Lambda concurrent executions", ServiceCode="lambda",
                                 QuotaCode=LAMBDA_CONCURRENCY_QUOTA) for r in (primary, standby)]
        checks.append(quota_check(f"lambda {primary}~{standby}", (primary, standby), *reads))
    return checks


def quota_check(subject: str, regions: tuple[str, str], primary: Read,
                standby: Read) -> Check:
    """The standby region must allow at least the primary region's concurrency (the quota
    ARC Region switch compares). An unreadable quota is UNKNOWN, never READY."""
    rule = "quota.lambda_concurrency"
    for r, read in zip(regions, (primary, standby), strict=True):
        if read.problem == MISSING:
            return Check(rule, subject, UNKNOWN, f"not readable in {r}: Service Quotas has "
                                                 f"no applied value ({read.why})")
    bad = problem_check(rule, subject, primary, standby)
    if bad is not None:
        return bad
    a, b = (float(x.value["Quota"]["Value"]) for x in (primary, standby))
    if b < a:
        return Check(rule, subject, NOT_READY, f"{regions[1]} allows {b:g}, {regions[0]} "
                                               f"{a:g}: raise the standby region's quota")
    return Check(rule, subject, READY, f"{regions[0]} {a:g}, {regions[1]} {b:g}")
