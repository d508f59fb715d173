"""Per-cloud facts the spec checks against: limits, name shapes, quotas.

Plain data and small pure functions, no pydantic, no pulumi. Each fact says where it comes
from, so a reviewer can check it against the cloud's documentation.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Literal

Layer = Literal["dns", "gateway", "logic", "data"]
LAYERS: tuple[Layer, ...] = ("dns", "gateway", "logic", "data")


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

#: DNSPod: the lowest TTL a record may have depends on the domain's plan (ModifyRecord "TTL:
#: 1-604800, the minimum differs per domain grade", cloud.tencent.com/document/api/1427/56157;
#: the free plan's minimum is 600 s, paid plans go lower, down to 1 s). The spec takes the
#: plan's minimum as ``dns.min_ttl_s`` and assumes the free plan when it is not given.
DNSPOD_FREE_MIN_TTL_S = 600

#: Tencent has no API that promotes a cross-region PostgreSQL replica: read-only replicas
#: must be in the primary's region and SwitchDBInstancePrimary is in-region HA only
#: (postgres 2017-03-12 API; docs/research/tencent.md section 5).
TENCENT_PG_CROSS_REGION = (
    "Tencent has no API that promotes a PostgreSQL replica in another region (read-only "
    "replicas must be in the primary's region; SwitchDBInstancePrimary is in-region HA "
    "only), so the data monitor could never fail over; allowed: engine mysql (CDB with a "
    "cross-region DR instance), or postgres with database.replica: false"
)

SECRET_ENV_HINT = re.compile(r"(PASSWORD|PASSWD|SECRET|TOKEN|PRIVATE_KEY|CREDENTIAL)", re.I)


# --- names built from the spec (checked before any resource exists) ---------------------

#: pulumi-aws ``s3.Bucket(bucket_prefix=...)``: at most 37 characters, because Terraform
#: appends a 26-character unique suffix and S3 names are at most 63. The program passes
#: ``f"{storage.bucket}-"``, so ``storage.bucket`` may have at most 36.
BUCKET_PREFIX_MAX = 37
BUCKET_MAX = BUCKET_PREFIX_MAX - 1
#: S3 general purpose bucket naming rules: names must not start with these.
BUCKET_BAD_PREFIXES = ("xn--", "sthree-", "amzn-s3-demo-")

#: RDS DB instance identifier: 1-63 letters, digits or hyphens, first a letter, no two
#: consecutive hyphens, no trailing hyphen (CreateDBInstance, DBInstanceIdentifier).
RDS_IDENTIFIER_MAX = 63
RDS_ROLES = ("primary", "standby", "final")


def rds_identifier(topology: str, db_name: str, role: str) -> str:
    """The identifier ``components/aws/data.py`` builds for the primary, replica and final
    snapshot; kept here so the spec can check it before deploy."""
    return f"{topology}-{db_name}-{role}".lower().replace("_", "-")


def rds_identifier_problem(identifier: str) -> str | None:
    if len(identifier) > RDS_IDENTIFIER_MAX:
        return f"is {len(identifier)} characters; RDS allows {RDS_IDENTIFIER_MAX}"
    if "--" in identifier:
        return "contains '--' (from '-' or '_' next to each other); RDS refuses two hyphens in a row"  # noqa: E501
    if not re.fullmatch(r"[a-z][a-z0-9-]*[a-z0-9]", identifier):
        return "must start with a letter and hold only letters, digits and '-'"
    return None


#: Secrets Manager secret ARN as the console and DescribeSecret show it: the secret's name
#: plus the 6 random characters Secrets Manager appends. IAM ``Resource`` needs the ARN; a
#: bare name is a MalformedPolicyDocument. Partitions: aws, aws-cn, aws-us-gov.
SECRET_ARN_RE = re.compile(
    r"arn:aws(-cn|-us-gov)?:secretsmanager:[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-\d:\d{12}:"
    r"secret:[A-Za-z0-9/_+=.@-]{1,512}-[A-Za-z0-9]{6}"
)
SECRET_ARN_HELP = ("the secret's full ARN, arn:aws:secretsmanager:<region>:<account>:"
                   "secret:<name>-<6 characters> (aws secretsmanager describe-secret "
                   "--secret-id NAME --query ARN)")
#: Tencent SSM SecretName: 1-128 letters, digits, '-' or '_' (CreateSecret).
TENCENT_SECRET_RE = re.compile(r"[A-Za-z0-9_-]{1,128}")
TENCENT_SECRET_HELP = "a Tencent SSM secret name (1-128 letters, digits, '-' or '_')"


# --- function environment size -----------------------------------------------------------

#: AWS Lambda quotas (docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html):
#: "Environment variables: 4 KB, for all environment variables associated with the function,
#: in aggregate". Tencent SCF quotas (cloud.tencent.com/document/product/583/11637):
#: "单个函数的环境变量大小 4KB" (environment variables per function).
ENV_LIMIT_BYTES = {"aws": 4096, "tencent": 4096}

#: Keys the program sets on every logic function besides ``logic.env``
#: (``components/aws/functions.py`` LogicLayer), with the longest value each can take:
#: Lambda function names are at most 64 characters, region names at most 25 here
#: (ap-southeast-7 is 14), DynamoDB table names are ``<name>-standby-pointers``.
LOGIC_PROGRAM_KEYS: dict[str, int | str] = {
    "STANDBY_TOPOLOGY": "name",
    "STANDBY_SIDE": 7,
    "STANDBY_REGION": 25,
    "STANDBY_POINTER_TABLE": "pointer_table",
    "STANDBY_POINTER_CACHE_S": 2,
    "STANDBY_WRAPPER_PRIMARY": 64,
    "STANDBY_WRAPPER_STANDBY": 64,
    "STANDBY_DB_ENGINE": 8,
}
#: Each ``secret_env`` key becomes ``<KEY>_SECRET_ARN``. A secret the program creates from a
#: config key is named ``<name>/logic/<KEY>-`` + 26 (Terraform's unique suffix), and its ARN
#: adds the longest partition/region/account prefix and Secrets Manager's ``-XXXXXX``.
_ARN_PREFIX_MAX = len("arn:aws-us-gov:secretsmanager:") + 25 + len(":123456789012:secret:")


def created_secret_arn_max(topology: str, key: str) -> int:
    return _ARN_PREFIX_MAX + len(f"{topology}/logic/{key}-") + 26 + 7


def logic_env_estimate(topology: str, env: Mapping[str, str],
                       secret_arns: Iterable[tuple[str, int]]) -> int:
    """Bytes of a logic function's environment, counted conservatively.

    The quota counts keys and values; this counts the whole environment as compact JSON
    (``{"K":"V",...}``, quotes, separators and escapes included, values in UTF-8), which
    is never less, with every program-set value at its longest possible length.
    """
    full: dict[str, str] = dict(env)
    for key, size in LOGIC_PROGRAM_KEYS.items():
        if size == "name":
            full[key] = topology
        elif size == "pointer_table":
            full[key] = f"{topology}-standby-pointers"
        elif isinstance(size, int):
            full[key] = "x" * size
    for key, arn_len in secret_arns:
        full[f"{key}_SECRET_ARN"] = "x" * arn_len
    return len(json.dumps(full, separators=(",", ":"), ensure_ascii=False).encode("utf-8",
                                                                               "surrogatepass"))
