"""The topology spec: what one stack's active-standby topology is, validated once at the edge.

It loads from Pulumi stack config (``standby:topology``, see ``components.program``) and can
be built directly in Python by other programs (``TopologySpec.model_validate({...})`` or
``parse_spec({...})``). Unknown keys are errors, and every error names the config path,
the bad value and what is allowed (``monitor.dns.failure_threshold: 0 is not in 1..10``).

This module holds the models; ``spec_facts`` the per-cloud limits (region name shapes, DNS
lines, runtimes, quotas), ``spec_checks`` the checks across fields and ``spec_errors`` the
messages. None of them builds anything or imports ``pulumi``.
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
from components.spec_checks import cross_check
from components.spec_errors import problems_from, raise_problems
from components.spec_facts import (
    AWS_CONTINENTS,
    AWS_LINE_HELP,
    AWS_REGION_RE,
    BUCKET_MAX,
    DB_ENGINES,
    DEFAULT_DB_ENGINE,
    DEFAULT_GATEWAY,
    DEFAULT_LINE,
    DEFAULT_RUNTIME,
    DNSPOD_FREE_MIN_TTL_S,
    GATEWAY_KINDS,
    LAYERS,
    REGION_EXAMPLE,
    REGION_RE,
    ROUTE53_INTERVALS,
    RUNTIMES,
    SCHEDULER_FLOOR_S,
    SECRET_ENV_HINT,
    SQL_ENGINES,
    TENCENT_LINES,
    TENCENT_REGION_RE,
    TTL_MAX,
    Layer,
)

Cloud = Literal["aws", "tencent"]
Failback = Literal["auto", "manual"]

#: Re-exported: deploy time imports the per-cloud facts from here.
__all__ = [
    "AWS_CONTINENTS",
    "AWS_LINE_HELP",
    "AWS_REGION_RE",
    "DB_ENGINES",
    "DEFAULT_DB_ENGINE",
    "DEFAULT_GATEWAY",
    "DEFAULT_LINE",
    "DEFAULT_RUNTIME",
    "DR_ROLES",
    "GATEWAY_KINDS",
    "LAYERS",
    "REGION_EXAMPLE",
    "REGION_RE",
    "ROUTE53_INTERVALS",
    "RUNTIMES",
    "SCHEDULER_FLOOR_S",
    "SECRET_ENV_HINT",
    "SQL_ENGINES",
    "TENCENT_LINES",
    "TENCENT_REGION_RE",
    "TTL_MAX",
    "Cloud",
    "DrContact",
    "DrRole",
    "DrSpec",
    "Failback",
    "Layer",
    "LogicSpec",
    "MonitorSettings",
    "RegionSettings",
    "SecretRef",
    "TencentAccountSpec",
    "TopologySpec",
    "WitnessSpec",
    "deep_merge",
    "parse_spec",
    "problems_from",
    "secret_refs",
]


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
                "bad_format", "{value} is not {what}",
                {"value": repr(value) if len(value) <= 80 else f"{value[:60]!r}... "
                 f"({len(value)} characters)", "what": what},
            )
        return value

    return check


def _relative_path(value: str) -> str:
    parts = value.replace("\\", "/").split("/")
    if (not value or len(value) > 255 or value.startswith(("/", "~")) or ".." in parts
            or re.search(r"[\x00-\x1f\x7f:]", value)):
        shown = repr(value) if len(value) <= 80 else f"{value[:60]!r}..."
        raise PydanticCustomError(
            "bad_format", "{value} is not a folder inside the project; allowed: a relative "
            "path without '..', like examples/app", {"value": shown})
    return value


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
    """AWS: the secret's full Secrets Manager ARN (IAM policies need the ARN, not a name);
    Tencent: the SSM secret name."""

    @model_validator(mode="before")
    @classmethod
    def _no_plaintext(cls, data: Any) -> Any:
        if isinstance(data, str):
            raise PydanticCustomError(
                "plaintext_secret",
                "plaintext secrets are not allowed; write `config: KEY` naming a secret stack "
                "config value (pulumi config set --secret KEY ...) or `secret_store: ARN`",
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
    min_ttl_s: Annotated[int, STRICT, rng(1, 600)] | None = None
    """Tencent only: the lowest TTL the DNSPod domain's plan allows (free plan 600 s, paid
    plans lower, down to 1 s). Defaults to the free plan's 600; ``ttl_s`` may not be lower."""


class GatewaySpec(_Strict):
    kind: str | None = None
    """aws: rest (default) or http; tencent: scf_domain."""
    stage: Slug = "live"
    domain: Hostname | None = None
    """Custom domain served in every region; defaults to <dns.record>.<dns.zone>."""
    certificate_arn: str | None = None
    """Existing certificate for the domain (override per region); created if absent."""


class LogicSpec(_Strict):
    code: Annotated[str, AfterValidator(_relative_path)] = "app"
    """Path of the logic function's code, relative to the Pulumi project (the whole folder is
    zipped, so ``/`` or ``../..`` would archive far more than the app)."""
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
        raise_problems(
            [
                Problem(
                    f"env.{key}",
                    f"looks like a secret in plaintext; move it to secret_env.{key} "
                    "with `config: KEY` or `secret_store: ARN`",
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
    bucket: Annotated[str, AfterValidator(_matches(r"[a-z0-9][a-z0-9-]{1,34}[a-z0-9]", f"3-{BUCKET_MAX} lowercase letters, digits or '-'"))] = "data"  # noqa: E501
    """Bucket name prefix: each region's bucket is ``<bucket>-`` plus a unique suffix Pulumi
    adds (pulumi-aws ``bucket_prefix``, at most 37 characters, hence 36 here)."""
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


#: Who does what in an incident; the runbook names them in its roles, decision tree and
#: procedures. ``data_loss_approver`` picks which of them may accept lost writes.
DrRole = Literal["incident_commander", "operator", "database_owner", "communications"]
DR_ROLES: tuple[str, ...] = ("incident_commander", "operator", "database_owner",
                             "communications")


class DrContact(_Strict):
    name: Annotated[str, AfterValidator(_matches(r"[^\x00-\x1f\x7f<>|`]{1,80}", "1-80 printable characters without < > | or `"))]  # noqa: E501
    role: DrRole
    email: Email | None = None
    phone: Phone | None = None

    @model_validator(mode="after")
    def _reachable(self) -> DrContact:
        if self.email is None and self.phone is None:
            raise PydanticCustomError(
                "unreachable_contact", "give at least one of `email` or `phone`: a contact "
                "the runbook cannot reach is no contact")
        return self


class DrSpec(_Strict):
    """Disaster-recovery practice: who is called, who may accept data loss, how often the
    topology is exercised. Used by ``standby runbook``; deploys nothing."""

    contacts: list[DrContact] = Field(default_factory=list)
    data_loss_approver: DrRole = "incident_commander"
    """The role whose yes a forced data switch (writes may be lost) needs."""
    exercise_every_days: Annotated[int, STRICT, rng(7, 366)] = 90
    """How often a drill should run; the runbook's exercise programme and staleness."""

    @model_validator(mode="after")
    def _roles_covered(self) -> DrSpec:
        problems: list[Problem] = []
        seen: dict[str, int] = {}
        for i, c in enumerate(self.contacts):
            key = c.name.strip().lower()
            if key in seen:
                problems.append(Problem(f"contacts[{i}].name", f"{c.name!r} is already "
                                        f"contacts[{seen[key]}]; allowed: one entry per person"))
            seen.setdefault(key, i)
        roles = {c.role for c in self.contacts}
        if self.contacts:
            for need in dict.fromkeys(("incident_commander", self.data_loss_approver)):
                if need not in roles:
                    problems.append(Problem("contacts", f"no contact has role {need!r}; "
                                            "allowed: contacts that include it (the runbook "
                                            "routes decisions to it)"))
        raise_problems(problems)
        return self


class TargetsSpec(_Strict):
    rto_s: Annotated[int, STRICT, rng(1, 86400)]
    """Recovery time objective: worst case from failure to service on the standby."""
    rpo_s: Annotated[float, STRICT, rng(0, 86400)]
    """Recovery point objective for the database: the most data (in seconds) a failover loses."""
    object_rpo_s: Annotated[float, STRICT, rng(0, 86400)] | None = None
    """Optional RPO for object storage (S3 RTC guarantees 900 s; without RTC: none)."""


class WitnessSpec(_Strict):
    """A third region with one vote and no data: the data layer's write lease becomes a
    2-of-3 register over the primary, standby and witness regions
    (``components.runtime.quorum_lease``; designed and tested, not yet deployed)."""

    region: str
    """Must differ from the database's primary and standby regions."""
    lease_ttl_s: Annotated[float, STRICT, rng(3, 600)] = 30.0
    """How long a renewal holds the lease; the active side renews every third of it."""
    clock_skew_s: Annotated[float, STRICT, rng(0, 60)] = 1.0
    """The most any two participants' clocks may differ; below lease_ttl_s / 3."""


_OVERRIDABLE = ("gateway", "logic", "wrapper", "storage", "monitor")


class TencentSesSpec(_Strict):
    """How alert mail leaves Tencent Cloud SES: SES sends API mail only from a verified
    sender with an approved template (SendEmail, API 2020-10-02); the template's variables
    are ``title``, ``text`` and ``severity``."""

    from_address: Email
    template_id: Annotated[int, STRICT, rng(1, 2**31 - 1)]
    region: Literal["ap-guangzhou", "ap-hongkong"] = "ap-guangzhou"


class TencentSmsSpec(_Strict):
    """How alert texts leave Tencent Cloud SMS (SendSms, API 2021-01-11): an approved
    template with one parameter (the alert's title) and an approved sign."""

    sdk_app_id: Annotated[str, AfterValidator(_matches(r"\d{6,20}", "the SMS application's SdkAppId (digits)"))]  # noqa: E501
    template_id: Annotated[str, AfterValidator(_matches(r"\d{1,20}", "the approved template's id (digits)"))]  # noqa: E501
    sign_name: Annotated[str, STRICT, Field(min_length=1, max_length=64)]
    region: Literal["ap-guangzhou", "ap-beijing", "ap-nanjing"] = "ap-guangzhou"


class TencentAccountSpec(_Strict):
    """The Tencent account the stack deploys into: COS bucket names end in ``-<app_id>`` and
    replication and CAM resources (``qcs::cam::uin/<owner_uin>:...``) name the owner.
    ``ses``/``sms`` are the account's approved alert senders, required when
    ``alerting.emails``/``alerting.sms`` name recipients."""

    app_id: Annotated[str, AfterValidator(_matches(r"[1-9]\d{9}", "a 10-digit Tencent APPID like 1250000000"))]  # noqa: E501
    owner_uin: Annotated[str, AfterValidator(_matches(r"[1-9]\d{4,14}", "a Tencent account UIN (5-15 digits)"))]  # noqa: E501
    ses: TencentSesSpec | None = None
    sms: TencentSmsSpec | None = None


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
    dr: DrSpec = Field(default_factory=DrSpec)
    """Contacts and exercise cadence for the DR runbook (``standby runbook``)."""
    witness: WitnessSpec | None = None
    """A third region that lets the data layer fail over on the loss of the primary's
    region without ever having two writers (see ``WitnessSpec``)."""
    overrides: dict[str, RegionOverride] = Field(default_factory=dict)
    """Per-region overrides keyed by region name (``us-west-2: {logic: {memory_mb: 512}}``)."""
    tencent: TencentAccountSpec | None = None
    """Required with ``cloud: tencent``: the account's APPID and owner UIN."""

    @model_validator(mode="after")
    def _cross_checks(self) -> TopologySpec:
        raise_problems(cross_check(self))
        return self

    # -- derived views (not stored, so they cannot disagree with the input) --

    @cached_property
    def region_groups(self) -> list[RegionGroup]:
        """Every topology is a list of groups; simple mode is one group on the default line."""
        if self.groups is not None:
            return self.groups
        assert self.regions is not None  # guaranteed by cross_check
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
    def dns_min_ttl_s(self) -> int:
        """The lowest TTL the DNS provider accepts for this stack's records."""
        if self.cloud == "tencent":
            return self.dns.min_ttl_s or DNSPOD_FREE_MIN_TTL_S
        return 1

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



def parse_spec(raw: Any, *, source: str = "topology") -> TopologySpec:
    """Validate raw config into a spec, or raise ``SpecError`` listing every problem."""
    if not isinstance(raw, Mapping):
        raise SpecError([Problem("", f"expected a mapping, got {type(raw).__name__}")], source)
    try:
        return TopologySpec.model_validate(raw)
    except ValidationError as exc:
        raise SpecError(problems_from(exc), source) from None


def secret_refs(spec: TopologySpec) -> list[tuple[str, SecretRef]]:
    """Every secret reference with its config path (per-region overrides included)."""
    out: list[tuple[str, SecretRef]] = [
        (f"alerting.webhooks[{i}].url", hook.url) for i, hook in enumerate(spec.alerting.webhooks)
    ]
    out += [(f"logic.secret_env.{k}", ref) for k, ref in spec.logic.secret_env.items()]
    for region in spec.overrides:
        if region not in spec.all_regions:
            continue
        try:
            env = spec.for_region(region).logic.secret_env
        except ValidationError:
            continue
        out += [(f"overrides.{region}.logic.secret_env.{k}", ref) for k, ref in env.items()
                if spec.logic.secret_env.get(k) != ref]
    return out
