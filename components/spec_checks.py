"""Checks that need more than one field of the spec; each returns every problem it finds.

Called from ``TopologySpec``'s validator. Every problem names the config path, the bad value
and what is allowed.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from pydantic import ValidationError

from components.errors import Problem
from components.spec_errors import problems_from
from components.spec_facts import (
    AWS_CONTINENTS,
    AWS_LINE_HELP,
    BUCKET_BAD_PREFIXES,
    DB_ENGINES,
    DEFAULT_LINE,
    ENV_LIMIT_BYTES,
    GATEWAY_KINDS,
    LAYERS,
    RDS_ROLES,
    REGION_EXAMPLE,
    REGION_RE,
    ROUTE53_INTERVALS,
    RUNTIMES,
    SCHEDULER_FLOOR_S,
    SECRET_ARN_HELP,
    SECRET_ARN_RE,
    SQL_ENGINES,
    TENCENT_LINES,
    TENCENT_PG_CROSS_REGION,
    TENCENT_SECRET_HELP,
    TENCENT_SECRET_RE,
    TTL_MAX,
    created_secret_arn_max,
    logic_env_estimate,
    rds_identifier,
    rds_identifier_problem,
)

if TYPE_CHECKING:
    from components.spec import LogicSpec, RegionSettings, TopologySpec

#: Monitor settings both regions' monitors of a layer must share. They vote on one switch:
#: a region with its own quorum fails over alone; vote freshness and the cooldown are judged
#: from interval_s, timeout_s and cooldown_s by whichever monitor decides; and one side on
#: auto failback undoes the other's decision. Thresholds, practice and switch_allowance_s
#: only shape one region's own streak or report, and the budget takes the slowest region.
SHARED_MONITOR_SETTINGS = ("quorum", "interval_s", "timeout_s", "cooldown_s", "failback")

#: ``failback: auto`` switches back by itself. It is allowed only when it cannot flap:
#: every switch needs both vantage points (quorum 2), so two monitors that see different
#: things cannot undo each other, and a scope switches at most once per cooldown, which must
#: be at least the cloud's scheduler floor (60 s on AWS) and at least 60 s anywhere.
AUTO_FAILBACK_MIN_QUORUM = 2

#: The witness lease's holder renews this many times per lease_ttl_s
#: (``components.runtime.quorum_lease.RENEWS_PER_TTL``; a test checks they agree).
WITNESS_RENEWS_PER_TTL = 3
AUTO_FAILBACK_MIN_COOLDOWN_S = 60

#: Keys the program sets (``STANDBY_``, and ``<KEY>_SECRET_ARN`` for each secret_env key) or
#: the platform reserves: a user value would be overwritten or refused at deploy time.
#: Lambda: "Reserved environment variables" (Lambda developer guide, "Defined runtime
#: environment variables"); SCF: keys starting SCF_, QCLOUD_, TENCENTCLOUD_ (SCF
#: "Environment Variables").
RESERVED_ENV_PREFIXES = {"aws": ("STANDBY_",),
                         "tencent": ("STANDBY_", "SCF_", "QCLOUD_", "TENCENTCLOUD_")}
RESERVED_ENV_KEYS = {
    "aws": ("_HANDLER", "_X_AMZN_TRACE_ID", "AWS_DEFAULT_REGION", "AWS_REGION",
            "AWS_EXECUTION_ENV", "AWS_LAMBDA_FUNCTION_NAME", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
            "AWS_LAMBDA_FUNCTION_VERSION", "AWS_LAMBDA_INITIALIZATION_TYPE",
            "AWS_LAMBDA_LOG_GROUP_NAME", "AWS_LAMBDA_LOG_STREAM_NAME", "AWS_ACCESS_KEY",
            "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
            "AWS_LAMBDA_RUNTIME_API", "LAMBDA_TASK_ROOT", "LAMBDA_RUNTIME_DIR"),
    "tencent": (),
}


def cross_check(spec: TopologySpec) -> list[Problem]:
    """Checks that need more than one field. Returns every problem, not just the first."""
    p: list[Problem] = []
    cloud = spec.cloud
    region_rx = REGION_RE[cloud]

    def region_ok(path: str, name: str) -> bool:
        if not region_rx.fullmatch(name):
            p.append(Problem(path, f"{name!r} is not a {cloud} region name like {REGION_EXAMPLE[cloud]}"))  # noqa: E501
            return False
        return True

    if (spec.regions is None) == (spec.groups is None):
        p.append(Problem("regions", "give exactly one of `regions` (one primary and one standby) or `groups` (nearby access)"))  # noqa: E501
        return p
    if spec.regions is not None:
        for i, role in enumerate(spec.regions):
            region_ok(f"regions[{i}].name", role.name)
        roles = [r.role for r in spec.regions]
        if roles.count("primary") != 1 or roles.count("standby") != 1 or len(roles) != 2:
            p.append(Problem("regions", f"needs exactly one primary and one standby region, got roles {roles}; use `groups` for more regions"))  # noqa: E501
        elif spec.regions[0].name == spec.regions[1].name:
            p.append(Problem("regions[1].name", f"{spec.regions[1].name!r}: standby region must differ from the primary region"))  # noqa: E501
    else:
        assert spec.groups is not None
        if not spec.groups:
            p.append(Problem("groups", "needs at least one region group"))
        names = [g.name for g in spec.groups]
        for i, g in enumerate(spec.groups):
            base = f"groups[{i}]"
            if names.count(g.name) > 1:
                p.append(Problem(f"{base}.name", f"{g.name!r} is used by more than one group"))
            region_ok(f"{base}.primary", g.primary)
            region_ok(f"{base}.standby", g.standby)
            if g.primary == g.standby:
                p.append(Problem(f"{base}.standby", f"{g.standby!r}: standby region must differ from the primary region"))  # noqa: E501
            if not g.lines:
                p.append(Problem(f"{base}.lines", "needs at least one DNS line"))
            for j, line in enumerate(g.lines):
                if not _line_ok(cloud, line):
                    allowed = ", ".join(TENCENT_LINES) if cloud == "tencent" else AWS_LINE_HELP
                    p.append(Problem(f"{base}.lines[{j}]", f"{line!r} is not a {cloud} DNS line; allowed: {allowed}"))  # noqa: E501
        p.extend(_check_lines_across_groups(spec))

    regions = spec.all_regions if not p else []
    _check_choice(p, "gateway.kind", spec.gateway.kind, GATEWAY_KINDS[cloud], cloud)
    _check_choice(p, "logic.runtime", spec.logic.runtime, RUNTIMES[cloud], cloud)
    _check_choice(p, "database.engine", spec.database.engine, DB_ENGINES[cloud], cloud)

    if not 1 <= spec.dns.ttl_s <= TTL_MAX[cloud]:
        p.append(Problem("dns.ttl_s", f"{spec.dns.ttl_s} is not in 1..{TTL_MAX[cloud]}"))
    p.extend(_tencent(spec))
    dns_mon = spec.monitor.dns
    if cloud == "aws" and spec.dns.mode == "health_check" and dns_mon.interval_s not in ROUTE53_INTERVALS:  # noqa: E501
        p.append(Problem("monitor.dns.interval_s", f"{dns_mon.interval_s} is not allowed with dns.mode health_check (Route 53 health checks); allowed: 10, 30"))  # noqa: E501
    if cloud == "tencent" and spec.dns.mode == "health_check":
        p.append(Problem("dns.mode", "'health_check' is not available on tencent (DNSPod has no health-based failover records); allowed: direct"))  # noqa: E501

    for layer in LAYERS:
        m = spec.monitor.for_layer(layer)
        if m.quorum > spec.vantage_points():
            p.append(Problem(f"monitor.{layer}.quorum", f"{m.quorum} is more than the {spec.vantage_points()} vantage points (one monitor in each region of a pair); allowed: 1..{spec.vantage_points()}"))  # noqa: E501
        if m.timeout_s >= m.interval_s:
            p.append(Problem(f"monitor.{layer}.timeout_s", f"{m.timeout_s} must be less than interval_s ({m.interval_s})"))  # noqa: E501

    if regions:
        for key in ("primary_region", "standby_region"):
            value = getattr(spec.database, key)
            if value is not None and value not in regions:
                p.append(Problem(f"database.{key}", f"{value!r} is not a region of this topology; allowed: {', '.join(regions)}"))  # noqa: E501
        if spec.data_primary_region == spec.data_standby_region:
            p.append(Problem("database.standby_region", "must differ from database.primary_region"))
        engine = spec.db_engine
        if engine in SQL_ENGINES:
            for r in regions:  # every region's wrappers must reach the database privately
                if r not in spec.database.network:
                    p.append(Problem(f"database.network.{r}", f"required for engine {engine!r}: the VPC (vpc_id, subnet_ids) the database and functions use in {r}"))  # noqa: E501
        for r in spec.database.network:
            if r not in regions:
                p.append(Problem(f"database.network.{r}", f"{r!r} is not a region of this topology; allowed: {', '.join(regions)}"))  # noqa: E501
        for r in spec.overrides:
            if r not in regions:
                p.append(Problem(f"overrides.{r}", f"{r!r} is not a region of this topology; allowed: {', '.join(regions)}"))  # noqa: E501
                continue
            try:
                settings = spec.for_region(r)
            except ValidationError as exc:
                p.extend(
                    Problem(f"overrides.{r}.{q.path}", q.reason) for q in problems_from(exc)
                )
                continue
            if settings.logic.runtime is not None and settings.logic.runtime not in RUNTIMES[cloud]:
                p.append(Problem(f"overrides.{r}.logic.runtime", f"{settings.logic.runtime!r} is not a {cloud} runtime; allowed: {', '.join(RUNTIMES[cloud])}"))  # noqa: E501
            p.extend(_shared_monitor_settings(spec, r, settings))
        p.extend(_function_env(spec, regions))
        p.extend(_names(spec))
        p.extend(_witness(spec))
    p.extend(_flapping(spec))
    p.extend(_secret_refs(spec))
    return p


def _witness(spec: TopologySpec) -> list[Problem]:
    """The witness must be a third failure domain, and a lease holder must outlive one
    missed renewal (every lease_ttl_s / 3) even when its clock is clock_skew_s off."""
    w = spec.witness
    if w is None:
        return []
    p: list[Problem] = []
    cloud = spec.cloud
    data = (spec.data_primary_region, spec.data_standby_region)
    if not REGION_RE[cloud].fullmatch(w.region):
        p.append(Problem("witness.region", f"{w.region!r} is not a {cloud} region name like {REGION_EXAMPLE[cloud]}"))  # noqa: E501
    elif w.region in data:
        p.append(Problem("witness.region", f"{w.region!r} holds the database already; allowed: a third region, not {' or '.join(repr(r) for r in data)}"))  # noqa: E501
    if w.clock_skew_s * WITNESS_RENEWS_PER_TTL >= w.lease_ttl_s:
        p.append(Problem("witness.clock_skew_s", f"{w.clock_skew_s:g} must be less than lease_ttl_s / {WITNESS_RENEWS_PER_TTL} ({w.lease_ttl_s / WITNESS_RENEWS_PER_TTL:g}); a holder renews every lease_ttl_s / {WITNESS_RENEWS_PER_TTL} and must outlive one missed renewal"))  # noqa: E501
    return p


def _tencent(spec: TopologySpec) -> list[Problem]:
    """What only applies to one cloud: the DNSPod plan's TTL floor, the account, the engines."""
    out: list[Problem] = []
    if spec.cloud != "tencent":
        if spec.dns.min_ttl_s is not None:
            out.append(Problem("dns.min_ttl_s", "applies to DNSPod only (cloud: tencent); "
                               "allowed on aws: leave it out"))
        if spec.tencent is not None:
            out.append(Problem("tencent", "applies to cloud: tencent only; allowed on aws: "
                               "leave it out"))
        return out
    floor = spec.dns_min_ttl_s
    if spec.dns.ttl_s < floor:
        plan = ("the DNSPod free plan's minimum (set dns.min_ttl_s to your paid plan's "
                "minimum to go lower)" if spec.dns.min_ttl_s is None
                else "dns.min_ttl_s, the DNSPod plan's minimum")
        out.append(Problem("dns.ttl_s", f"{spec.dns.ttl_s} is below {floor} s, {plan}; "
                           f"allowed: {floor}..{TTL_MAX['tencent']}"))
    if spec.tencent is None:
        out.append(Problem("tencent", "required with cloud: tencent: {app_id: <10-digit "
                           "APPID>, owner_uin: <account UIN>} (COS bucket names end in "
                           "-<app_id>; replication and CAM name the owner UIN)"))
    elif spec.alerting.emails and spec.tencent.ses is None:
        out.append(Problem("tencent.ses", "required when alerting.emails is set: SES sends "
                           "API mail only from a verified sender with an approved template: "
                           "{from_address, template_id, region}"))
    if spec.tencent is not None and spec.alerting.sms and spec.tencent.sms is None:
        out.append(Problem("tencent.sms", "required when alerting.sms is set: SMS needs an "
                           "approved template and sign: {sdk_app_id, template_id, sign_name, "
                           "region}"))
    if spec.db_engine == "postgres" and spec.database.replica:
        out.append(Problem("database.engine", f"'postgres' with a standby in another region "
                           f"(database.replica: true): {TENCENT_PG_CROSS_REGION}"))
    return out


def _shared_monitor_settings(spec: TopologySpec, region: str,
                             settings: RegionSettings) -> list[Problem]:
    """A region may not change what both regions' monitors of a layer decide together."""
    out: list[Problem] = []
    for layer in LAYERS:
        base = spec.monitor.for_layer(layer)
        own = settings.monitor.for_layer(layer)
        for key in SHARED_MONITOR_SETTINGS:
            if getattr(own, key) != getattr(base, key):
                out.append(Problem(
                    f"overrides.{region}.monitor.{layer}.{key}",
                    f"{getattr(own, key)!r} differs from monitor.{layer}.{key} "
                    f"({getattr(base, key)!r}); both regions' {layer} monitors vote on one "
                    f"switch, so {', '.join(SHARED_MONITOR_SETTINGS)} are set once per layer; "
                    f"allowed: {getattr(base, key)!r} (or change monitor.{layer}.{key})"))
    return out


def _flapping(spec: TopologySpec) -> list[Problem]:
    out: list[Problem] = []
    floor = max(AUTO_FAILBACK_MIN_COOLDOWN_S, SCHEDULER_FLOOR_S[spec.cloud])
    for layer in LAYERS:
        m = spec.monitor.for_layer(layer)
        if m.failback != "auto":
            continue
        if m.quorum < AUTO_FAILBACK_MIN_QUORUM:
            out.append(Problem(
                f"monitor.{layer}.quorum",
                f"{m.quorum} with failback auto lets two monitors that see different things "
                f"switch the scope back and forth; allowed with failback auto: quorum "
                f"{AUTO_FAILBACK_MIN_QUORUM} (or failback: manual)"))
        if m.cooldown_s < floor:
            out.append(Problem(
                f"monitor.{layer}.cooldown_s",
                f"{m.cooldown_s} with failback auto lets a flapping fault switch every round; "
                f"allowed with failback auto: at least {floor} (or failback: manual)"))
    return out


def _secret_refs(spec: TopologySpec) -> list[Problem]:
    from components.spec import secret_refs

    out: list[Problem] = []
    rx, help_ = ((SECRET_ARN_RE, SECRET_ARN_HELP) if spec.cloud == "aws"
                 else (TENCENT_SECRET_RE, TENCENT_SECRET_HELP))
    for path, ref in secret_refs(spec):
        if ref.secret_store is not None and not rx.fullmatch(ref.secret_store):
            shown = ref.secret_store if len(ref.secret_store) <= 80 else ref.secret_store[:60] + "..."  # noqa: E501
            out.append(Problem(f"{path}.secret_store", f"{shown!r} is not {help_}"))
        if ref.config is not None and not re.fullmatch(r"[A-Za-z][A-Za-z0-9_.-]{0,127}",
                                                       ref.config):
            out.append(Problem(f"{path}.config", f"{ref.config[:80]!r} is not a stack config "
                               "key name; allowed: 1-128 letters, digits, '_', '.' or '-', "
                               "first a letter (the KEY of pulumi config set --secret KEY)"))
    return out


def _names(spec: TopologySpec) -> list[Problem]:
    """Names the program derives from the spec, checked against the cloud's rules."""
    out: list[Problem] = []
    bucket = spec.storage.bucket
    for bad in BUCKET_BAD_PREFIXES:
        if spec.storage.enabled and bucket.startswith(bad):
            out.append(Problem("storage.bucket", f"{bucket!r} starts with {bad!r}, which S3 "
                               "reserves; allowed: any other prefix"))
    if spec.cloud == "aws" and spec.db_engine in SQL_ENGINES:
        for role in RDS_ROLES:
            ident = rds_identifier(spec.name, spec.database.name, role)
            why = rds_identifier_problem(ident)
            if why is not None:
                out.append(Problem("database.name", f"{spec.database.name!r} makes the RDS "
                                   f"identifier {ident!r}, which {why}; allowed: a shorter "
                                   "name or database.name without '_' at either end or "
                                   "doubled"))
                break
    return out


def _function_env(spec: TopologySpec, regions: list[str]) -> list[Problem]:
    """The logic function's environment per region: reserved keys and the cloud's size cap."""
    out: list[Problem] = []
    cloud = spec.cloud
    limit = ENV_LIMIT_BYTES[cloud]
    reported: set[str] = set()
    for region in regions:
        try:
            logic = spec.for_region(region).logic
        except ValidationError:
            continue  # reported under overrides.<region> already
        where = f"overrides.{region}.logic" if region in spec.overrides else "logic"
        for key in logic.env:
            if (key.startswith(RESERVED_ENV_PREFIXES[cloud]) or key in RESERVED_ENV_KEYS[cloud]
                    or key.endswith("_SECRET_ARN")) and key not in reported:
                reported.add(key)
                out.append(Problem(f"{where}.env.{key}", "is set by the program or reserved "
                                   f"by the platform; allowed: any other name (not "
                                   f"{', '.join(RESERVED_ENV_PREFIXES[cloud])}..., "
                                   "..._SECRET_ARN or the platform's reserved names)"))
        size = logic_env_estimate(spec.name, logic.env, _secret_arn_sizes(spec, logic))
        if size > limit and where not in reported:
            reported.add(where)
            out.append(Problem(
                f"{where}.env",
                f"the function environment in {region} is about {size} bytes (logic.env, "
                f"secret_env ARNs and the program's STANDBY_* keys); {cloud} allows {limit} "
                "bytes in total; allowed: smaller values (keep large data in the bucket or "
                "the secret store)"))
    return out


def _secret_arn_sizes(spec: TopologySpec, logic: LogicSpec) -> list[tuple[str, int]]:
    out = []
    for key, ref in logic.secret_env.items():
        given = ref.secret_store
        out.append((key, len(given) if given is not None
                    else created_secret_arn_max(spec.name, key)))
    return out


def _check_choice(
    p: list[Problem], path: str, value: str | None, allowed: tuple[str, ...], cloud: str
) -> None:
    if value is not None and value not in allowed:
        p.append(Problem(path, f"{value!r} is not available on {cloud}; allowed: {', '.join(allowed)}"))  # noqa: E501


def _line_ok(cloud: str, line: str) -> bool:
    if cloud == "tencent":
        return line in TENCENT_LINES
    if line in ("default", "latency"):
        return True
    kind, _, code = line.partition(":")
    if kind == "geo":
        return code in AWS_CONTINENTS
    return kind == "country" and re.fullmatch(r"[A-Z]{2}", code) is not None


def _check_lines_across_groups(spec: TopologySpec) -> list[Problem]:
    assert spec.groups is not None
    p: list[Problem] = []
    lines = [(i, line) for i, g in enumerate(spec.groups) for line in g.lines]
    seen: dict[str, int] = {}
    for i, line in lines:
        if line in seen and seen[line] != i:
            p.append(Problem(f"groups[{i}].lines", f"{line!r} is already routed to group {spec.groups[seen[line]].name!r}; each line belongs to one group"))  # noqa: E501
        seen.setdefault(line, i)
    if spec.cloud == "aws" and len(spec.groups) > 1:
        # Route 53 cannot mix latency and geolocation records under one name.
        latency = {i for i, line in lines if line == "latency"}
        if latency and len(latency) != len(spec.groups):
            p.append(Problem("groups", "either every group uses the 'latency' line or none does (Route 53 cannot mix latency and geolocation records for one name)"))  # noqa: E501
        if latency:
            primaries = [g.primary for g in spec.groups]
            dup = {r for r in primaries if primaries.count(r) > 1}
            if dup:
                p.append(Problem("groups", f"latency routing needs a different primary region per group; shared: {', '.join(sorted(dup))}"))  # noqa: E501
    default = DEFAULT_LINE[spec.cloud]
    if len(spec.groups) > 1 and not any(line in (default, "latency") for _, line in lines):
        p.append(Problem("groups", f"no group serves the {default!r} line, so users on no listed line get no answer; add {default!r} to one group"))  # noqa: E501
    return p

