"""The topology spec: what one stack's active-standby topology is, validated once at the edge.

It loads from Pulumi stack config (``standby:topology``, see ``components.program``) and can
be built directly in Python by other programs (``TopologySpec.model_validate({...})`` or
``parse_spec({...})``). Unknown keys are errors, and every error names the config path,
the bad value and what is allowed (``monitor.dns.failure_threshold: 0 is not in 1..10``).

This module is cloud-neutral data: it knows the per-cloud *limits* (region name shapes, DNS
lines, runtimes) but builds nothing and never imports ``pulumi``.
"""

from __future__ import annotations

import copy
import difflib
import re
from collections.abc import Callable, Mapping
from functools import cached_property
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)
from pydantic_core import PydanticCustomError

from components.errors import Problem, SpecError

Cloud = Literal["aws", "tencent"]
Layer = Literal["dns", "gateway", "logic", "data"]
LAYERS: tuple[Layer, ...] = ("dns", "gateway", "logic", "data")
Failback = Literal["auto", "manual"]

# --- per-cloud limits (documented facts; each one says where it comes from) -------------

#: Scheduler floor for monitor invocations. EventBridge schedules fire at most once a
#: minute; Tencent SCF timer triggers accept a 1 s cron granularity.
SCHEDULER_FLOOR_S: dict[str, int] = {"aws": 60, "tencent": 1}

#: Route 53 health checks only support a 10 s ("fast") or 30 s request interval.
ROUTE53_INTERVALS = (10, 30)

AWS_REGION_RE = re.compile(r"^[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-\d$")
TENCENT_REGION_RE = re.compile(r"^(ap|na|eu|sa)-[a-z]+(-[a-z0-9]+)?$")
REGION_RE = {"aws": AWS_REGION_RE, "tencent": TENCENT_REGION_RE}
REGION_EXAMPLE = {"aws": "us-east-1", "tencent": "ap-guangzhou"}

#: DNSPod line names (默认 = default line; ISP lines 电信/联通/移动/教育网; 境外 = abroad).
TENCENT_LINES = ("默认", "电信", "联通", "移动", "教育网", "境外")
#: Route 53 geolocation continent codes.
AWS_CONTINENTS = ("AF", "AN", "AS", "EU", "NA", "OC", "SA")
AWS_LINE_HELP = "default, latency, geo:<continent> (AF AN AS EU NA OC SA) or country:<ISO code>"
DEFAULT_LINE = {"aws": "default", "tencent": "默认"}

RUNTIMES: dict[str, tuple[str, ...]] = {
    "aws": ("python3.10", "python3.11", "python3.12", "python3.13", "nodejs20.x", "nodejs22.x"),
    "tencent": ("Python3.9", "Python3.10", "Nodejs16.13", "Nodejs18.15"),
}
DEFAULT_RUNTIME = {"aws": "python3.12", "tencent": "Python3.10"}

GATEWAY_KINDS: dict[str, tuple[str, ...]] = {
    # REST API: the integration URI reads a stage variable, so one UpdateStage call rebinds it.
    "aws": ("rest", "http"),
    # Tencent API Gateway is being retired; SCF custom domains route to function + qualifier.
    "tencent": ("scf_domain",),
}
DEFAULT_GATEWAY = {"aws": "rest", "tencent": "scf_domain"}

DB_ENGINES: dict[str, tuple[str, ...]] = {
    # Aurora Global Database is not offered yet: its RDS-managed master secret is not
    # supported for global clusters, and we do not take database passwords from config.
    "aws": ("dynamodb", "postgres", "mysql"),
    "tencent": ("mysql", "postgres"),
}
DEFAULT_DB_ENGINE = {"aws": "dynamodb", "tencent": "mysql"}
SQL_ENGINES = ("postgres", "mysql")

TTL_MAX = {"aws": 86400, "tencent": 604800}

SECRET_ENV_HINT = re.compile(r"(PASSWORD|PASSWD|SECRET|TOKEN|PRIVATE_KEY|CREDENTIAL)", re.I)


# --- building blocks -----------------------------------------------------------------------


def _in_range(lo: float, hi: float) -> Callable[[Any], Any]:
    def check(value: Any) -> Any:
        if not lo <= value <= hi:
            raise PydanticCustomError(
                "not_in_range", "{value} is not in {lo}..{hi}", {"value": value, "lo": lo, "hi": hi}
            )
        return value

    return check


def _matches(pattern: str, what: str) -> Callable[[str], str]:
    rx = re.compile(pattern)

    def check(value: str) -> str:
        if not rx.fullmatch(value):
            raise PydanticCustomError(
                "bad_format", "{value} is not {what}", {"value": repr(value), "what": what}
            )
        return value

    return check


STRICT = Field(strict=True)


def rng(lo: float, hi: float) -> AfterValidator:
    """Range check whose error reads ``0 is not in 1..10``."""
    return AfterValidator(_in_range(lo, hi))


Slug = Annotated[
    str,
    AfterValidator(
        _matches(r"[a-z][a-z0-9-]{1,22}[a-z0-9]", "3-24 lowercase letters, digits or '-'")
    ),
]
Hostname = Annotated[
    str,
    AfterValidator(
        _matches(
            r"(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}",
            "a lowercase DNS name like api.example.com",
        )
    ),
]
Email = Annotated[str, AfterValidator(_matches(r"[^@\s]+@[^@\s]+\.[^@\s]+", "an email address"))]
Phone = Annotated[
    str,
    AfterValidator(
        _matches(r"\+[1-9]\d{6,14}", "a phone number in E.164 form (+8613800000000)")
    ),
]
EnvName = Annotated[
    str, AfterValidator(_matches(r"[A-Za-z_][A-Za-z0-9_]{0,127}", "an environment variable name"))
]


class _Strict(BaseModel):
    """Base of every spec model: unknown keys are errors, with a did-you-mean hint."""

    model_config = ConfigDict(extra="forbid", validate_default=True)

    @model_validator(mode="before")
    @classmethod
    def _no_unknown_keys(cls, data: Any) -> Any:
        if isinstance(data, Mapping):
            allowed = list(cls.model_fields)
            unknown = [k for k in data if k not in allowed]
            if unknown:
                key = unknown[0]
                close = difflib.get_close_matches(str(key), allowed, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise PydanticCustomError(
                    "unknown_key",
                    "unknown key {key}{hint}; allowed: {allowed}",
                    {"key": repr(key), "hint": hint, "allowed": ", ".join(allowed)},
                )
        return data


class SecretRef(_Strict):
    """Where a secret comes from: a secret stack config key, or the cloud's secret store.

    Plain strings are refused on purpose: a webhook URL or password in plaintext config
    ends up in the repository and in every preview.
    """

    config: str | None = None
    """Name of a stack config key set with ``pulumi config set --secret KEY VALUE``."""
    secret_store: str | None = None
    """Name or ARN of a secret in AWS Secrets Manager / Tencent SSM."""

    @model_validator(mode="before")
    @classmethod
    def _no_plaintext(cls, data: Any) -> Any:
        if isinstance(data, str):
            raise PydanticCustomError(
                "plaintext_secret",
                "plaintext secrets are not allowed; write `config: KEY` naming a secret stack "
                "config value (pulumi config set --secret KEY ...) or `secret_store: NAME`",
            )
        if isinstance(data, Mapping) and "secure" in data:
            raise PydanticCustomError(
                "nested_secure",
                "a secure value inside the topology object cannot be kept secret here; store it "
                "in its own key (pulumi config set --secret KEY ...) and write `config: KEY`",
            )
        return data

    @model_validator(mode="after")
    def _exactly_one(self) -> SecretRef:
        if (self.config is None) == (self.secret_store is None):
            raise PydanticCustomError(
                "secret_source", "give exactly one of `config` or `secret_store`"
            )
        return self


# --- the layers ------------------------------------------------------------------------------


class RegionRole(_Strict):
    name: str
    role: Literal["primary", "standby"]


class RegionGroup(_Strict):
    """A "nearby access" group: users on these DNS lines go to their own primary/standby pair."""

    name: Slug
    primary: str
    standby: str
    lines: list[str] = Field(default_factory=list)
    """DNS lines: on Tencent ISP lines (默认, 电信, 联通...), on AWS geo/latency routing."""


class DnsSpec(_Strict):
    zone: Hostname
    """Hosted zone (AWS) or DNSPod domain (Tencent) that holds the record."""
    record: Annotated[str, AfterValidator(_matches(r"[a-z0-9*]([a-z0-9-]{0,61}[a-z0-9])?", "a DNS label like api"))] = "api"  # noqa: E501
    ttl_s: int = Field(default=60, strict=True)
    """Record TTL. Route 53 recommends <=60 s with failover; DNSPod's minimum depends on plan."""
    mode: Literal["health_check", "direct"] = "health_check"
    """health_check: Route 53 answers from health status (data plane), the monitor can force or
    veto through an alarm. direct: the monitor edits the record (control plane)."""
    health_path: Annotated[str, AfterValidator(_matches(r"/[A-Za-z0-9/_.\-]*", "a URL path"))] = (
        "/health"
    )


class GatewaySpec(_Strict):
    kind: str | None = None
    """aws: rest (default) or http; tencent: scf_domain."""
    stage: Slug = "live"
    domain: Hostname | None = None
    """Custom domain served in every region; defaults to <dns.record>.<dns.zone>."""
    certificate_arn: str | None = None
    """Existing certificate for the domain (override per region); created if absent."""


class LogicSpec(_Strict):
    code: str = "app"
    """Path of the logic function's code, relative to the Pulumi project."""
    handler: Annotated[str, AfterValidator(_matches(r"[\w.]+\.\w+", "module.function"))] = (
        "main.handler"
    )
    runtime: str | None = None
    memory_mb: Annotated[int, STRICT, rng(128, 10240)] = 256
    timeout_s: Annotated[int, STRICT, rng(1, 900)] = 10
    env: dict[EnvName, str] = Field(default_factory=dict)
    secret_env: dict[EnvName, SecretRef] = Field(default_factory=dict)
    standby_version: Literal["same", "pinned"] = "same"
    """same: the standby runs the code being deployed; pinned: the standby keeps the previous
    published version (last known good) so a bad deploy does not break both sides."""

    @model_validator(mode="after")
    def _no_secrets_in_env(self) -> LogicSpec:
        _raise_problems(
            [
                Problem(
                    f"env.{key}",
                    f"looks like a secret in plaintext; move it to secret_env.{key} "
                    "with `config: KEY` or `secret_store: NAME`",
                )
                for key in self.env
                if SECRET_ENV_HINT.search(key)
            ]
        )
        return self


class WrapperSpec(_Strict):
    memory_mb: Annotated[int, STRICT, rng(128, 10240)] = 256
    timeout_s: Annotated[int, STRICT, rng(1, 900)] = 10
    pointer_cache_s: Annotated[int, STRICT, rng(0, 60)] = 5
    """How long callers cache the active-side pointer; adds to the switch's propagation."""


class NetworkSpec(_Strict):
    vpc_id: str
    subnet_ids: list[str] = Field(min_length=2)


class DatabaseSpec(_Strict):
    engine: str | None = None
    """aws: dynamodb (default), postgres or mysql (RDS + cross-region replica); tencent: mysql."""
    name: Annotated[str, AfterValidator(_matches(r"[A-Za-z][A-Za-z0-9_]{0,62}", "an identifier"))] = "app"  # noqa: E501
    instance_class: str = "db.t4g.medium"
    storage_gb: Annotated[int, STRICT, rng(20, 65536)] = 20
    replica: bool = True
    """Cross-region replica (SQL) or replica table (DynamoDB) in the standby region."""
    max_lag_s: Annotated[float, STRICT, rng(0, 3600)] = 5.0
    """Lag guard: the data monitor never promotes a replica lagging more than this."""
    primary_region: str | None = None
    """Defaults to the first group's primary region."""
    standby_region: str | None = None
    """Defaults to the first group's standby region."""
    network: dict[str, NetworkSpec] = Field(default_factory=dict)
    """Per region VPC and subnets; required for SQL engines (functions run in the VPC)."""


class StorageSpec(_Strict):
    enabled: bool = True
    bucket: Annotated[str, AfterValidator(_matches(r"[a-z0-9][a-z0-9-]{1,38}[a-z0-9]", "3-40 lowercase letters, digits or '-'"))] = "data"  # noqa: E501
    """Bucket name prefix; the region is appended."""
    replication: bool = True
    """Replicate in both directions, so a failback loses no object."""
    rtc: bool = False
    """S3 Replication Time Control: 99.99% of objects within 15 minutes (costs extra)."""


class MonitorSettings(_Strict):
    interval_s: Annotated[int, STRICT, rng(1, 300)] = 10
    """Probe interval. Below the scheduler floor the monitor probes in a loop per invocation."""
    timeout_s: Annotated[float, STRICT, rng(0.1, 30)] = 2.0
    failure_threshold: Annotated[int, STRICT, rng(1, 10)] = 3
    recovery_threshold: Annotated[int, STRICT, rng(1, 20)] = 5
    cooldown_s: Annotated[int, STRICT, rng(0, 86400)] = 300
    failback: Failback = "manual"
    quorum: Annotated[int, STRICT, rng(1, 5)] = 2
    """Vantage points (monitors in different regions) that must agree before a switch."""
    practice: bool = False
    """Decide and alert, never switch."""
    switch_allowance_s: Annotated[float, STRICT, rng(0, 3600)] | None = None
    """Time allowed for the switch itself; defaults to a documented figure per layer."""


class MonitorSpec(_Strict):
    defaults: MonitorSettings = Field(default_factory=MonitorSettings)
    dns: MonitorSettings = Field(default_factory=MonitorSettings)
    gateway: MonitorSettings = Field(default_factory=MonitorSettings)
    logic: MonitorSettings = Field(default_factory=MonitorSettings)
    data: MonitorSettings = Field(default_factory=MonitorSettings)

    @model_validator(mode="before")
    @classmethod
    def _inherit_defaults(cls, data: Any) -> Any:
        if not isinstance(data, Mapping) or not isinstance(data.get("defaults"), Mapping):
            return data
        try:  # a bad default is reported once, under monitor.defaults, not per layer
            MonitorSettings.model_validate(data["defaults"])
        except ValidationError:
            return data
        merged = dict(data)
        for layer in LAYERS:
            own = data.get(layer, {})
            if isinstance(own, Mapping):
                merged[layer] = {**data["defaults"], **own}
        return merged

    def for_layer(self, layer: Layer) -> MonitorSettings:
        settings: MonitorSettings = getattr(self, layer)
        return settings


class Webhook(_Strict):
    kind: Literal["wecom", "dingtalk", "slack"]
    url: SecretRef


class AlertingSpec(_Strict):
    emails: list[Email] = Field(default_factory=list)
    sms: list[Phone] = Field(default_factory=list)
    webhooks: list[Webhook] = Field(default_factory=list)


class TargetsSpec(_Strict):
    rto_s: Annotated[int, STRICT, rng(1, 86400)]
    """Recovery time objective: worst case from failure to service on the standby."""
    rpo_s: Annotated[float, STRICT, rng(0, 86400)]
    """Recovery point objective for the database: the most data (in seconds) a failover loses."""
    object_rpo_s: Annotated[float, STRICT, rng(0, 86400)] | None = None
    """Optional RPO for object storage (S3 RTC guarantees 900 s; without RTC: none)."""


_OVERRIDABLE = ("gateway", "logic", "wrapper", "storage", "monitor")


class RegionOverride(_Strict):
    """Any input of these layers can be overridden for one region; deep-merged."""

    gateway: dict[str, Any] | None = None
    logic: dict[str, Any] | None = None
    wrapper: dict[str, Any] | None = None
    storage: dict[str, Any] | None = None
    monitor: dict[str, Any] | None = None


class RegionSettings(_Strict):
    """The effective per-region settings after overrides are merged."""

    gateway: GatewaySpec
    logic: LogicSpec
    wrapper: WrapperSpec
    storage: StorageSpec
    monitor: MonitorSpec


def _raise_problems(problems: list[Problem]) -> None:
    """Raise from inside a validator while keeping each problem's own sub-path."""
    if problems:
        raise PydanticCustomError(
            "spec_problems",
            "{summary}",
            {"summary": "; ".join(map(str, problems)), "problems": problems},
        )


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Merge ``override`` into a copy of ``base``: mappings merge, everything else replaces."""
    out = copy.deepcopy(dict(base))
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


# --- the topology ------------------------------------------------------------------------------


class TopologySpec(_Strict):
    """One stack's active-standby topology."""

    name: Slug
    """Prefix of every resource name."""
    cloud: Cloud
    regions: list[RegionRole] | None = None
    """Simple mode: exactly one primary and one standby region."""
    groups: list[RegionGroup] | None = None
    """Nearby-access mode: region groups, each with its own primary, standby and DNS lines."""
    dns: DnsSpec
    gateway: GatewaySpec = Field(default_factory=GatewaySpec)
    logic: LogicSpec = Field(default_factory=LogicSpec)
    wrapper: WrapperSpec = Field(default_factory=WrapperSpec)
    database: DatabaseSpec = Field(default_factory=DatabaseSpec)
    storage: StorageSpec = Field(default_factory=StorageSpec)
    monitor: MonitorSpec = Field(default_factory=MonitorSpec)
    alerting: AlertingSpec = Field(default_factory=AlertingSpec)
    targets: TargetsSpec
    overrides: dict[str, RegionOverride] = Field(default_factory=dict)
    """Per-region overrides keyed by region name (``us-west-2: {logic: {memory_mb: 512}}``)."""

    @model_validator(mode="after")
    def _cross_checks(self) -> TopologySpec:
        _raise_problems(_cross_check(self))
        return self

    # -- derived views (not stored, so they cannot disagree with the input) --

    @cached_property
    def region_groups(self) -> list[RegionGroup]:
        """Every topology is a list of groups; simple mode is one group on the default line."""
        if self.groups is not None:
            return self.groups
        assert self.regions is not None  # guaranteed by _cross_check
        primary = next(r.name for r in self.regions if r.role == "primary")
        standby = next(r.name for r in self.regions if r.role == "standby")
        return [
            RegionGroup(
                name="main", primary=primary, standby=standby, lines=[DEFAULT_LINE[self.cloud]]
            )
        ]

    @cached_property
    def all_regions(self) -> list[str]:
        """Every region that hosts the stack, in first-seen order."""
        seen: dict[str, None] = {}
        for g in self.region_groups:
            seen.setdefault(g.primary)
            seen.setdefault(g.standby)
        return list(seen)

    @property
    def data_primary_region(self) -> str:
        return self.database.primary_region or self.region_groups[0].primary

    @property
    def data_standby_region(self) -> str:
        return self.database.standby_region or self.region_groups[0].standby

    @property
    def db_engine(self) -> str:
        return self.database.engine or DEFAULT_DB_ENGINE[self.cloud]

    @property
    def gateway_kind(self) -> str:
        return self.gateway.kind or DEFAULT_GATEWAY[self.cloud]

    @property
    def runtime(self) -> str:
        return self.logic.runtime or DEFAULT_RUNTIME[self.cloud]

    @property
    def domain(self) -> str:
        return self.gateway.domain or f"{self.dns.record}.{self.dns.zone}"

    def vantage_points(self) -> int:
        """Monitors per layer that can vote: one per region of a pair."""
        return 2

    def for_region(self, region: str) -> RegionSettings:
        """Effective gateway/logic/wrapper/storage/monitor settings for one region."""
        if region not in self.all_regions:
            raise KeyError(f"{region!r} is not a region of this topology ({self.all_regions})")
        return _region_settings(self, region)


def _region_settings(spec: TopologySpec, region: str) -> RegionSettings:
    base = spec.model_dump(mode="python", include=set(_OVERRIDABLE))
    override = spec.overrides.get(region)
    if override is not None:
        base = deep_merge(base, override.model_dump(exclude_none=True))
    return RegionSettings.model_validate(base)


def _cross_check(spec: TopologySpec) -> list[Problem]:
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
        if engine in SQL_ENGINES and cloud == "aws":
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
                settings = _region_settings(spec, r)
            except ValidationError as exc:
                p.extend(
                    Problem(f"overrides.{r}.{q.path}", q.reason) for q in problems_from(exc)
                )
                continue
            if settings.logic.runtime is not None and settings.logic.runtime not in RUNTIMES[cloud]:
                p.append(Problem(f"overrides.{r}.logic.runtime", f"{settings.logic.runtime!r} is not a {cloud} runtime; allowed: {', '.join(RUNTIMES[cloud])}"))  # noqa: E501
    return p


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


# --- errors ------------------------------------------------------------------------------------

_TYPE_WORDS = {
    "int_type": "an integer",
    "int_parsing": "an integer",
    "float_type": "a number",
    "float_parsing": "a number",
    "string_type": "a string",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "list_type": "a list",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
}


def _path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif str(part).startswith(("function-after", "function-before")):
            continue
        else:
            out += f".{part}" if out else str(part)
    return out


def problems_from(exc: ValidationError) -> list[Problem]:
    """Turn pydantic's errors into ``path: value ... allowed ...`` problems."""
    out: list[Problem] = []
    for err in exc.errors(include_url=False):
        path = _path(err["loc"])
        kind = err["type"]
        value = err.get("input")
        ctx = err.get("ctx") or {}
        if kind == "spec_problems":
            for q in ctx["problems"]:
                out.append(Problem(f"{path}.{q.path}" if path and q.path else path or q.path, q.reason))  # noqa: E501
            continue
        if kind == "missing":
            reason = "is required but missing"
        elif kind == "literal_error":
            expected = str(ctx.get("expected", "")).replace("'", "").replace(" or ", ", ")
            reason = f"{value!r} is not allowed; allowed: {expected}"
        elif kind in _TYPE_WORDS:
            reason = f"{value!r} is not {_TYPE_WORDS[kind]}"
        elif kind == "too_short":
            reason = f"needs at least {ctx.get('min_length')} item(s), got {ctx.get('actual_length')}"  # noqa: E501
        elif kind == "extra_forbidden":
            reason = "unknown key"
        else:
            reason = err["msg"]
        out.append(Problem(path, reason))
    return out


def parse_spec(raw: Any, *, source: str = "topology") -> TopologySpec:
    """Validate raw config into a spec, or raise ``SpecError`` listing every problem."""
    if not isinstance(raw, Mapping):
        raise SpecError([Problem("", f"expected a mapping, got {type(raw).__name__}")], source)
    try:
        return TopologySpec.model_validate(raw)
    except ValidationError as exc:
        raise SpecError(problems_from(exc), source) from None
