"""Conformance to the plan: each deployed resource against what the stack's program
registers (run under mocks, as ``standby plan`` runs it).

Values the cloud picks (ARNs, API ids, bucket and secret names) differ between the plan's
mocks and any deployment, so they are never compared. Environment variables are compared by
name; their values only for ``DETERMINISTIC_ENV`` (they come from the spec alone) and the
user's own ``logic.env``.
"""

from __future__ import annotations

from typing import Any

from components.dr.readiness import NOT_READY, READY, RULES, Check
from components.dr.readiness_aws import Context, read_stage, stage_targets
from components.dr.readiness_aws_data import deployed_buckets
from components.dr.readiness_read import MISSING, PlanFunction, layer_name, problem_check

#: Environment values fixed by the spec: a change is drift (``STANDBY_SETTINGS`` holds the
#: monitor's thresholds and its practice flag).
DETERMINISTIC_ENV = frozenset({
    "STANDBY_TOPOLOGY", "STANDBY_SIDE", "STANDBY_REGION", "STANDBY_LAYER", "STANDBY_SETTINGS",
    "STANDBY_LOOP_S", "STANDBY_POINTER_TABLE", "STANDBY_POINTER_CACHE_S", "STANDBY_DB_ENGINE",
    "STANDBY_DB_NAME", "STANDBY_DB_TABLE", "STANDBY_DATA_REGIONS", "STANDBY_STATE_TABLE",
    "STANDBY_STATE_REGION", "STANDBY_WRAPPER_PRIMARY", "STANDBY_WRAPPER_STANDBY",
})


def conformance(ctx: Context) -> list[Check]:
    checks = [_function(ctx, fn) for fn in ctx.view.functions.values()]
    checks += _tables(ctx)
    checks += _buckets(ctx)
    checks += _stages(ctx)
    checks += _dbs(ctx)
    checks += _schedules(ctx)
    # Registration order varies between runs of the program: sort for a stable report.
    return sorted(checks, key=lambda c: (list(RULES).index(c.rule), c.subject))


def _verdict(rule: str, subject: str, diffs: list[str], ok: str) -> Check:
    return Check(rule, subject, NOT_READY, "; ".join(diffs)) if diffs else Check(
        rule, subject, READY, ok)


def _function(ctx: Context, fn: PlanFunction) -> Check:
    rule = "plan.lambda"
    cfg, reserved = ctx.config(fn), ctx.reserved(fn)
    bad = problem_check(rule, fn.name, cfg, reserved)
    if bad is not None:
        return bad
    got = cfg.value
    diffs = [f"{what} {have} (plan {want})" for what, have, want in (
        ("runtime", got.get("Runtime"), fn.runtime), ("handler", got.get("Handler"), fn.handler),
        ("memory", got.get("MemorySize"), fn.memory), ("timeout", got.get("Timeout"),
                                                       fn.timeout),
        ("layers", [layer_name(str(x["Arn"])) for x in got.get("Layers") or []], fn.layers),
        ("reserved concurrency", reserved.value, fn.reserved),
    ) if have != want]
    env = {str(k): str(v) for k, v in (got.get("Environment") or {}).get("Variables",
                                                                          {}).items()}
    if set(env) - set(fn.env):
        diffs.append(f"env adds {', '.join(sorted(set(env) - set(fn.env)))}")
    if set(fn.env) - set(env):
        diffs.append(f"env lacks {', '.join(sorted(set(fn.env) - set(env)))}")
    user = set(ctx.spec.for_region(fn.region).logic.env) if fn.layer == "logic" else set()
    changed = sorted(k for k in (DETERMINISTIC_ENV | user) & set(env) & set(fn.env)
                     if env[k] != fn.env[k])
    if changed:
        diffs.append(f"env values differ: {', '.join(changed)}")
    return _verdict(rule, fn.name, diffs, f"{fn.runtime}, {fn.memory} MB, {fn.timeout} s, "
                                          f"{len(fn.env)} env names as registered")


def _tables(ctx: Context) -> list[Check]:
    rule = "plan.dynamodb"
    checks = []
    for t in ctx.view.tables:
        for region, pitr in ((t.region, t.pitr), *t.replicas.items()):
            subject = f"{t.name} {region}"
            desc = ctx.reader.call("dynamodb", region, "describe_table", f"table {t.name}",
                                   TableName=t.name)
            backups = ctx.reader.call("dynamodb", region, "describe_continuous_backups",
                                      f"table {t.name}", TableName=t.name)
            bad = problem_check(rule, subject, desc, backups)
            if bad is not None:
                checks.append(bad)
                continue
            stream = bool((desc.value["Table"].get("StreamSpecification") or {}).get(
                "StreamEnabled"))
            status = backups.value["ContinuousBackupsDescription"].get(
                "PointInTimeRecoveryDescription", {}).get("PointInTimeRecoveryStatus")
            diffs = []
            if pitr and status != "ENABLED":
                diffs.append(f"point-in-time recovery {status} (plan ENABLED)")
            if t.stream and not stream:
                diffs.append("stream disabled (plan enabled)")
            checks.append(_verdict(rule, subject, diffs, "PITR and stream as registered"))
    return checks


def _buckets(ctx: Context) -> list[Check]:
    rule = "plan.s3"
    if not ctx.view.buckets:
        return []
    names, failed = deployed_buckets(ctx)
    checks = []
    for region, planned in ctx.view.buckets.items():
        subject = f"bucket {region}"
        if region not in names:
            checks.append(problem_check(rule, subject, *failed) or Check(
                rule, subject, NOT_READY, "no deployed wrapper names this region's bucket"))
            continue
        versioning = ctx.reader.call("s3", region, "get_bucket_versioning",
                                     f"bucket {names[region]}", Bucket=names[region])
        replication = ctx.reader.call("s3", region, "get_bucket_replication",
                                      f"bucket {names[region]}", Bucket=names[region])
        has_replication = replication.ok and any(
            q.get("Status") == "Enabled" for q in
            replication.value.get("ReplicationConfiguration", {}).get("Rules") or [])
        if replication.problem == MISSING:
            replication = versioning  # "no configuration" is an answer, judged below
        bad = problem_check(rule, subject, versioning, replication)
        if bad is not None:
            checks.append(bad)
            continue
        diffs = []
        status = versioning.value.get("Status", "never enabled")
        if planned.versioning and status != planned.versioning:
            diffs.append(f"versioning {status} (plan {planned.versioning})")
        if planned.replication != has_replication:
            diffs.append(f"replication {'on' if has_replication else 'off'} "
                         f"(plan {'on' if planned.replication else 'off'})")
        checks.append(_verdict(rule, subject, diffs,
                               f"{names[region]}: versioning and replication as registered"))
    return checks


def _stages(ctx: Context) -> list[Check]:
    rule = "plan.apigw_stage"
    targets, failed = stage_targets(ctx)
    checks = []
    wanted = [(r, "apigw_stage_variable") for r in ctx.view.stage_variables]
    wanted += [(r, "apigw_integration") for r in ctx.view.http_stages]
    for region, kind in sorted(wanted):
        subject = f"stage {region}"
        t = targets.get(region)
        if t is None or t.get("kind") != kind:
            checks.append(problem_check(rule, subject, *failed) or Check(
                rule, subject, NOT_READY, "no deployed gateway monitor names this stage"))
            continue
        checks.append(_rest_stage(ctx, subject, region, t) if kind == "apigw_stage_variable"
                      else _http_stage(ctx, subject, region, t))
    return checks


def _rest_stage(ctx: Context, subject: str, region: str, t: dict[str, Any]) -> Check:
    rule = "plan.apigw_stage"
    got = read_stage(ctx, region, t)
    bad = problem_check(rule, subject, got)
    if bad is not None:
        return bad
    have = got.value.get("variables") or {}
    variables = ctx.view.stage_variables[region]
    diffs = []
    if set(have) != set(variables):
        diffs.append(f"variables {sorted(have)} (plan {sorted(variables)})")
    value = have.get(t["variable"])
    allowed = sorted(set(t["values"].values()))
    if value not in allowed:
        diffs.append(f"{t['variable']} = {value!r} names neither logic function "
                     f"({', '.join(allowed)})")
    return _verdict(rule, subject, diffs, f"{t['variable']} = {value}")


def _http_stage(ctx: Context, subject: str, region: str, t: dict[str, Any]) -> Check:
    """The HTTP API's $default stage exists and the switched integration targets one of
    the two logic functions."""
    rule = "plan.apigw_stage"
    stage = read_stage(ctx, region, t)
    integration = ctx.reader.call("apigatewayv2", region, "get_integration",
                                  f"integration {t['integration_id']}", ApiId=t["api_id"],
                                  IntegrationId=t["integration_id"])
    bad = problem_check(rule, subject, stage, integration)
    if bad is not None:
        return bad
    uri = integration.value.get("IntegrationUri")
    allowed = sorted(set(t["values"].values()))
    diffs = [] if uri in allowed else [f"integration targets {uri!r}, neither logic "
                                       f"function ({', '.join(allowed)})"]
    return _verdict(rule, subject, diffs, f"integration -> {str(uri).rsplit(':', 1)[-1]}")


def _dbs(ctx: Context) -> list[Check]:
    rule = "plan.rds"
    checks = []
    for db in ctx.view.dbs:
        got = ctx.reader.call("rds", db.region, "describe_db_instances",
                              f"instance {db.identifier}", DBInstanceIdentifier=db.identifier)
        bad = problem_check(rule, db.identifier, got)
        if bad is not None:
            checks.append(bad)
            continue
        x: dict[str, Any] = got.value["DBInstances"][0]
        diffs = [f"{what} {have} (plan {want})" for what, have, want in (
            ("instance class", x.get("DBInstanceClass"), db.instance_class),
            ("engine", x.get("Engine"), db.engine),
            ("engine version", x.get("EngineVersion"), db.engine_version),
        ) if want is not None and have != want]
        if db.replica_of and not x.get("ReadReplicaSourceDBInstanceIdentifier"):
            diffs.append(f"not a replica (plan: replica of {db.replica_of})")
        checks.append(_verdict(rule, db.identifier, diffs, f"{x.get('DBInstanceClass')} as "
                                                           "registered"))
    return checks


def _schedules(ctx: Context) -> list[Check]:
    rule = "plan.schedule"
    checks = []
    for planned in ctx.view.rules:
        subject = f"{planned.name}"
        got = ctx.reader.call("events", planned.region, "list_rules", f"rule {planned.name}*",
                              NamePrefix=planned.name)
        bad = problem_check(rule, subject, got)
        if bad is not None:
            checks.append(bad)
            continue
        # Pulumi names a rule "<logical name>-<7 hex>"; the prefix may match others too.
        found = [r for r in got.value.get("Rules") or []
                 if r.get("Name") == planned.name
                 or (str(r.get("Name", "")).startswith(planned.name + "-")
                     and len(str(r["Name"])) == len(planned.name) + 8)]
        if len(found) != 1:
            checks.append(Check(rule, subject, NOT_READY,
                                f"{len(found)} rules named {planned.name}-* in "
                                f"{planned.region} (expected 1)"))
            continue
        r = found[0]
        diffs = []
        if r.get("State") != "ENABLED":
            diffs.append(f"{r.get('Name')} is {r.get('State')}: the monitor never runs")
        if r.get("ScheduleExpression") != planned.expression:
            diffs.append(f"schedule {r.get('ScheduleExpression')} (plan {planned.expression})")
        checks.append(_verdict(rule, subject, diffs, f"{r.get('Name')} ENABLED, "
                                                     f"{planned.expression}"))
    return checks
