"""``standby readiness``: is the standby side ready to take over, as deployed, right now?

Every rule has a stable id and gives one of four statuses per subject, as Route 53 ARC
readiness checks do:

- ``READY``: read, and as it should be;
- ``NOT_READY``: read, and wrong (the detail says what differs, or what is missing);
- ``NOT_AUTHORIZED``: the caller may not read it (the detail names the IAM action);
- ``UNKNOWN``: it could not be read or cannot be judged (the detail says why).

Two families of rules: **parity** between the primary and the standby side of every layer
(a difference the stack's own program registers, such as a per-region override, is by
design and READY), and **conformance to the plan**: the deployed value equals what the
stack's program registers when run under mocks, as ``standby plan`` runs it.

The overall status is NOT_READY if any rule is, else NOT_AUTHORIZED or UNKNOWN if any is
(NOT_AUTHORIZED first: it has a fix), else READY. This module is cloud-neutral; the AWS
reads are in ``readiness_aws`` and ``readiness_plan``.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import time
from dataclasses import dataclass, field
from typing import Any

READY = "READY"
UNKNOWN = "UNKNOWN"
NOT_AUTHORIZED = "NOT_AUTHORIZED"
NOT_READY = "NOT_READY"
#: From best to worst; ``--fail-on S`` fails when the overall status is S or worse.
STATUSES = (READY, UNKNOWN, NOT_AUTHORIZED, NOT_READY)
SCHEMA = 1
MAX_DETAIL = 300

#: Every rule id, with what it checks. Ids are stable: scripts and alerts key on them.
RULES: dict[str, str] = {
    "lambda.runtime": "function runtime equal on both sides",
    "lambda.memory": "function memory equal on both sides",
    "lambda.timeout": "function timeout equal on both sides",
    "lambda.env_keys": "the same environment variable names on both sides (never values)",
    "lambda.layers": "the same layers (by name, in order) on both sides",
    "lambda.code_hash": "the same code (SHA-256) on both sides, unless the standby is pinned",
    "lambda.concurrency": "the same reserved concurrency on both sides, and never 0",
    "apigw.stage_settings": "API stage settings (REST: method settings, caching, tracing; "
                            "HTTP: route settings) and variable names equal in both regions",
    "dynamodb.table_status": "the data table is ACTIVE in every region that holds it",
    "dynamodb.replica_status": "the table's global-table replica in each other region is "
                               "ACTIVE",
    "dynamodb.pitr": "point-in-time recovery equal in every region, and on where registered",
    "s3.versioning": "bucket versioning Enabled on both sides",
    "s3.replication": "replication rules Enabled towards the other side's bucket",
    "rds.engine_version": "database engine and version equal on primary and replica",
    "rds.instance_class": "database instance class equal on primary and replica",
    "rds.replica_status": "the standby instance is a replica of the primary and replicating",
    "secrets.present": "every secret a function uses exists, undeleted, in each region",
    "quota.lambda_concurrency": "the standby region's Lambda concurrent-executions quota is "
                                "at least the primary region's",
    "plan.lambda": "function settings as the plan registers them",
    "plan.dynamodb": "table settings (PITR, stream) as the plan registers them",
    "plan.s3": "bucket versioning and replication as the plan registers them",
    "plan.apigw_stage": "API stage as the plan registers it; its switch (stage variable or "
                        "integration) names one of the two logic functions",
    "plan.rds": "database instances as the plan registers them",
    "plan.schedule": "monitor schedules enabled, at the registered rate",
}

_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")


def one_line(text: str) -> str:
    text = _CONTROL.sub(" ", str(text)).strip()
    return text if len(text) <= MAX_DETAIL else text[:MAX_DETAIL - 3] + "..."


@dataclass(frozen=True)
class Check:
    rule: str
    subject: str
    status: str
    detail: str

    def __post_init__(self) -> None:
        if self.rule not in RULES:
            raise ValueError(f"rule {self.rule!r}; allowed: {', '.join(RULES)}")
        if self.status not in STATUSES:
            raise ValueError(f"status {self.status!r}; allowed: {', '.join(STATUSES)}")
        object.__setattr__(self, "detail", one_line(self.detail))


def rank(status: str) -> int:
    return STATUSES.index(status)


def overall(checks: list[Check]) -> str:
    """The worst status; nothing checked is UNKNOWN, never READY."""
    if not checks:
        return UNKNOWN
    return max((c.status for c in checks), key=rank)


def fails(status: str, fail_on: str | None) -> bool:
    return fail_on is not None and rank(status) >= rank(fail_on)


@dataclass
class Report:
    stack: str
    topology: str
    cloud: str
    checks: list[Check]
    checked_at: float = field(default_factory=time.time)

    @property
    def overall(self) -> str:
        return overall(self.checks)

    def counts(self) -> dict[str, int]:
        return {s: sum(1 for c in self.checks if c.status == s) for s in STATUSES}

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "stack": self.stack,
            "topology": self.topology,
            "cloud": self.cloud,
            "checked_at": dt.datetime.fromtimestamp(self.checked_at, dt.UTC)
            .strftime("%Y-%m-%dT%H:%M:%SZ"),
            "overall": self.overall,
            "counts": self.counts(),
            "rules": [{"id": c.rule, "subject": c.subject, "status": c.status,
                       "detail": c.detail} for c in self.checks],
        }


def render_json(report: Report) -> str:
    return json.dumps(report.to_json(), indent=2) + "\n"


def render_table(report: Report) -> str:
    head = ("STATUS", "RULE", "SUBJECT")
    widths = [max([len(h)] + [len(getattr(c, k)) for c in report.checks])
              for h, k in zip(head, ("status", "rule", "subject"), strict=True)]
    out = [f"readiness of stack {report.stack} (topology {report.topology}, "
           f"{report.cloud})", ""]
    out.append("  ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)) + "  DETAIL")
    for c in report.checks:
        out.append(f"{c.status:<{widths[0]}}  {c.rule:<{widths[1]}}  "
                   f"{c.subject:<{widths[2]}}  {c.detail}")
    counts = ", ".join(f"{n} {s}" for s, n in report.counts().items() if n)
    out += ["", f"overall: {report.overall} ({counts or 'nothing checked'})"]
    return "\n".join(out) + "\n"


# -- Tencent ------------------------------------------------------------------------------

#: What each rule would read on Tencent Cloud, for the UNKNOWN reason.
_TENCENT_READS = {
    "lambda.": "SCF GetFunction",
    "apigw.": "SCF GetCustomDomain: Tencent has no API Gateway here",
    "plan.apigw": "SCF GetCustomDomain, compared with the plan",
    "s3.": "COS GetBucketVersioning / GetBucketReplication",
    "rds.": "CDB DescribeDBInstances for the primary and its DR instance",
    "secrets.": "SSM DescribeSecret",
    "quota.": "SCF GetAccount (concurrency quota)",
    "plan.": "the same reads, compared with the plan",
}


def tencent_checks(spec: Any) -> list[Check]:
    """Tencent stacks: no reader yet, so every rule that applies is UNKNOWN with the reason
    (never READY on trust, never a crash)."""
    checks = []
    for rule in RULES:
        if rule.startswith(("dynamodb.", "plan.dynamodb")):
            continue  # no DynamoDB on Tencent (its data is CDB): the rule does not apply
        what = next(v for k, v in _TENCENT_READS.items() if rule.startswith(k))
        checks.append(Check(rule, spec.name, UNKNOWN,
                            f"not read on Tencent Cloud yet (needs {what})"))
    return checks


def check_stack(stack: str, spec: Any, plan_run: Any | None, clients: Any) -> Report:
    """Every rule for the stack. AWS needs the plan run (``plan.run.run_program``) and
    ``runtime.aws.clients.Clients``; Tencent needs neither yet."""
    if spec.cloud == "aws":
        from components.dr.readiness_aws import check_aws

        if plan_run is None:
            raise ValueError("an AWS readiness check needs the plan run of the stack")
        return Report(stack, spec.name, spec.cloud, check_aws(spec, plan_run, clients))
    return Report(stack, spec.name, spec.cloud, tencent_checks(spec))
