"""Readiness on AWS, the data side and the account: the data table, buckets, database,
secrets and the Lambda quota, each compared between the regions that hold it (see
``readiness_aws`` for how sides and names are found)."""

from __future__ import annotations

import json
from typing import Any

from components.dr.readiness import NOT_READY, READY, UNKNOWN, Check
from components.dr.readiness_aws import Context, pair
from components.dr.readiness_read import MISSING, Read, problem_check

#: Service Quotas code of "Concurrent executions" (Lambda), per region.
LAMBDA_CONCURRENCY_QUOTA = "L-B99A9384"


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
    regions = sorted(ctx.view.buckets, key=lambda r: (r != ctx.spec.data_primary_region, r))
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
        checks.append(pair("rds.engine_version", subject, labels,
                           (f"{a.get('Engine')} {a.get('EngineVersion')}",
                            f"{b.get('Engine')} {b.get('EngineVersion')}"), ("", "")))
        checks.append(pair("rds.instance_class", subject, labels,
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
                                                 "no value for Lambda concurrent executions "
                                                 f"({LAMBDA_CONCURRENCY_QUOTA})")
    bad = problem_check(rule, subject, primary, standby)
    if bad is not None:
        return bad
    a, b = (float(x.value["Quota"]["Value"]) for x in (primary, standby))
    if b < a:
        return Check(rule, subject, NOT_READY, f"{regions[1]} allows {b:g}, {regions[0]} "
                                               f"{a:g}: raise the standby region's quota")
    return Check(rule, subject, READY, f"{regions[0]} {a:g}, {regions[1]} {b:g}")
