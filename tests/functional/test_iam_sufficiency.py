"""IAM sufficiency: every AWS call the run-time code makes is allowed to the role that makes it.

moto checks only a call's top-level action (``TransactWriteItems`` passes without
``ConditionCheckItem``), so this test reads the code instead:
1. an AST scan of ``components/runtime/**`` finds every boto3 client call (a client is what
   ``<clients>.get("<service>", region)`` returns, used directly or through a name or
   ``self`` attribute), with its ``TransactItems`` entries;
2. each call must be in ``components.aws.iam_actions`` (method -> actions, code unit ->
   calls), and the table must list no call the code no longer makes;
3. for every function in the plan of the shipped stacks, a SQL stack and stacks covering every
   switch kind, the policy its role registers must allow each call its code makes for its
   wiring, on that resource; and every granted action must be one its code needs.
"""

from __future__ import annotations

import ast
import copy
import functools
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest

from components.aws._common import SECRET_SUFFIX
from components.aws.iam_actions import (
    API_ACTIONS,
    LOGIC_UNITS,
    MONITOR_UNITS,
    PROBE_UNITS,
    SNS_KMS_ACTIONS,
    SWITCH_UNITS,
    TRANSACT_ITEM_ACTIONS,
    UNITS,
    WEBHOOK_UNITS,
    WRAPPER_UNITS,
    Call,
    calls_of,
)
from components.aws.iam_rules import WILDCARD_EXCEPTIONS
from components.plan.mocks import ACCOUNT, PlanRun, Registration
from tests.conftest import ROOT, minimal_raw, run_raw, run_stack

RUNTIME = ROOT / "components" / "runtime"
SERVICES = frozenset(boto3.session.Session().get_available_services())


# -- 1. the scan ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Found:
    unit: tuple[str, str]
    service: str
    method: str
    items: tuple[str, ...]
    line: int

    def where(self) -> str:
        return f"components/runtime/{self.unit[0]}:{self.line} ({self.unit[1]})"


def _service_of_get(node: ast.AST) -> str | None:
    """``X.get("dynamodb", ...)`` -> ``"dynamodb"`` when the string names a boto3 service."""
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
            and node.func.attr == "get" and node.args
            and isinstance(node.args[0], ast.Constant) and node.args[0].value in SERVICES):
        return str(node.args[0].value)
    return None


def _key(target: ast.AST) -> str | None:
    if isinstance(target, ast.Name):
        return target.id
    if (isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name)
            and target.value.id == "self"):
        return f"self.{target.attr}"
    return None


def _transact_items(call: ast.Call) -> tuple[str, ...] | None:
    for kw in call.keywords:
        if kw.arg == "TransactItems" and isinstance(kw.value, ast.List):
            keys: list[str] = []
            for elt in kw.value.elts:
                if not isinstance(elt, ast.Dict) or len(elt.keys) != 1:
                    return None
                k = elt.keys[0]
                if not isinstance(k, ast.Constant) or not isinstance(k.value, str):
                    return None
                keys.append(k.value)
            return tuple(keys)
    return None


def _unit_transact_items(unit: ast.AST) -> tuple[str, ...]:
    """Every ``{"Put"|"Update"|"Delete"|"ConditionCheck": ...}`` entry built anywhere in the
    unit: when the items are assembled by helpers, the transaction may carry any of them."""
    keys: set[str] = set()
    for node in ast.walk(unit):
        if isinstance(node, ast.Dict) and len(node.keys) == 1:
            k = node.keys[0]
            if isinstance(k, ast.Constant) and k.value in TRANSACT_ITEM_ACTIONS:
                keys.add(str(k.value))
    return tuple(sorted(keys))


def scan_file(path: Path, root: Path = RUNTIME) -> Iterator[Found]:
    rel = path.relative_to(root).as_posix()
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for top in tree.body:
        if not isinstance(top, (ast.FunctionDef, ast.ClassDef)):
            continue
        unit = (rel, top.name)
        # Names and self attributes bound to a client anywhere in this unit.
        bound: dict[str, str] = {}
        for node in ast.walk(top):
            if isinstance(node, ast.Assign):
                service = _service_of_get(node.value)
                if service:
                    for t in node.targets:
                        if (k := _key(t)) is not None:
                            bound[k] = service
        for node in ast.walk(top):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                continue
            recv = node.func.value
            service = _service_of_get(recv)
            if service is None and (k := _key(recv)) is not None:
                service = bound.get(k)
            if service is None:
                continue
            method = node.func.attr
            items: tuple[str, ...] = ()
            if (service, method) == ("dynamodb", "transact_write_items"):
                found = _transact_items(node) or _unit_transact_items(top)
                if not found:
                    raise AssertionError(
                        f"components/runtime/{rel}:{node.lineno}: cannot read the "
                        "TransactItems entries (Put/Update/Delete/ConditionCheck) of this call")
                items = found
            yield Found(unit, service, method, items, node.lineno)


def scan() -> list[Found]:
    return [f for p in sorted(RUNTIME.rglob("*.py")) for f in scan_file(p)]


def test_scanner_finds_the_commit_transaction_and_its_condition_check() -> None:
    found = scan()
    commit = [f for f in found if f.method == "transact_write_items"]
    assert commit and all(f.unit == ("aws/state.py", "DynamoStateStore") for f in commit)
    assert "ConditionCheck" in commit[0].items
    # Through a ``self`` attribute, a local name and a direct ``.get(...)``.
    units = {f.unit for f in found}
    assert {("aws/state.py", "DynamoStateStore"), ("aws/probes.py", "bucket_probe"),
            ("aws/switchers.py", "RecordSwitcher")} <= units


def test_scanner_reads_sub_actions_and_refuses_what_it_cannot_read(tmp_path: Path) -> None:
    src = tmp_path / "probe.py"
    src.write_text(
        "def f(clients, items):\n"
        "    ddb = clients.get('dynamodb', 'r')\n"
        "    ddb.transact_write_items(TransactItems=[{'Delete': {}}, {'ConditionCheck': {}}])\n"
        "    clients.get('dynamodb', 'r').transact_write_items(TransactItems=items)\n",
        encoding="utf-8")
    # The second call's items come from elsewhere: the entries built in the unit count.
    first, second = scan_file(src, tmp_path)
    assert first.items == ("Delete", "ConditionCheck")
    assert second.items == ("ConditionCheck", "Delete")
    src.write_text(
        "def f(clients, items):\n"
        "    clients.get('dynamodb', 'r').transact_write_items(TransactItems=items)\n",
        encoding="utf-8")
    with pytest.raises(AssertionError, match="cannot read the TransactItems entries"):
        list(scan_file(src, tmp_path))
    src.write_text(
        "def f(clients):\n"
        "    ddb = clients.get('dynamodb', 'r')\n"
        "    ddb.transact_write_items(TransactItems=[{'Delete': {}}, {'ConditionCheck': {}}])\n"
        "    event = {}\n"
        "    event.get('source')\n",
        encoding="utf-8")
    [found] = list(scan_file(src, tmp_path))
    assert found.items == ("Delete", "ConditionCheck")
    call = Call(found.service, found.method, "state_table", found.items)
    assert set(call.actions) == {"dynamodb:DeleteItem", "dynamodb:ConditionCheckItem"}


# -- 2. the table matches the code ---------------------------------------------------------


def test_every_runtime_aws_call_is_in_the_table() -> None:
    missing = []
    for f in scan():
        if (f.service, f.method) not in API_ACTIONS:
            missing.append(f"{f.where()}: {f.service}.{f.method} has no IAM action in "
                           "iam_actions.API_ACTIONS")
            continue
        unknown = [i for i in f.items if i not in TRANSACT_ITEM_ACTIONS]
        if unknown:
            missing.append(f"{f.where()}: TransactItems {unknown} not in TRANSACT_ITEM_ACTIONS")
        listed = UNITS.get(f.unit, ())
        if not any((c.service, c.method, set(c.items)) == (f.service, f.method, set(f.items))
                   for c in listed):
            missing.append(f"{f.where()}: {f.service}.{f.method}{list(f.items) or ''} is not "
                           f"listed for {f.unit} in iam_actions.UNITS")
    assert not missing, "\n".join(missing)


def test_the_table_lists_no_call_the_code_does_not_make() -> None:
    made = {(f.unit, f.service, f.method, frozenset(f.items)) for f in scan()}
    stale = [f"{unit}: {c.service}.{c.method}" for unit, calls in UNITS.items() for c in calls
             if (unit, c.service, c.method, frozenset(c.items)) not in made]
    assert not stale, stale


def test_the_commit_needs_condition_check_item() -> None:
    # The defect: the monitor role lacked this, so every automatic switch was applied but
    # its commit was denied.
    actions = {a for c in UNITS[("aws/state.py", "DynamoStateStore")] for a in c.actions}
    assert "dynamodb:ConditionCheckItem" in actions


# -- 3. the plan's roles allow what their code calls -----------------------------------------


def _sql_raw(engine: str) -> dict[str, Any]:
    raw = minimal_raw()
    net = {"vpc_id": "vpc-1", "subnet_ids": ["subnet-a", "subnet-b"]}
    raw["database"] = {"engine": engine, "max_lag_s": 5,
                       "network": {"us-east-1": net, "us-west-2": net}}
    raw["targets"] = {"rto_s": 900, "rpo_s": 10}
    return raw


def _direct_http_raw() -> dict[str, Any]:
    raw = copy.deepcopy(minimal_raw())
    raw["dns"]["mode"] = "direct"
    raw["gateway"] = {"kind": "http"}
    return raw


def _webhook_arn_raw() -> dict[str, Any]:
    raw = minimal_raw()
    raw["alerting"] = {"webhooks": [{"kind": "slack", "url": {
        "secret_store": f"arn:aws:secretsmanager:us-east-1:{ACCOUNT}:secret:shop/slack-Ab12Cd"}}]}
    return raw


PLANS: dict[str, Any] = {
    "aws-dev": lambda: run_stack("aws-dev"),
    "aws-nearby": lambda: run_stack("aws-nearby"),
    "postgres": lambda: run_raw(_sql_raw("postgres")),
    "mysql": lambda: run_raw(_sql_raw("mysql")),
    "direct-dns-http-gateway": lambda: run_raw(_direct_http_raw()),
    "webhook-secret-arn": lambda: run_raw(_webhook_arn_raw()),
}


@dataclass(frozen=True)
class Need:
    action: str
    resource: str
    why: str
    key: str | None = None
    """The DynamoDB partition key the call touches (checked against LeadingKeys)."""
    namespace: str | None = None


class Plan:
    def __init__(self, run: PlanRun) -> None:
        self.run = run
        self.res = run.resources

    def of_type(self, typ: str) -> list[Registration]:
        return [r for r in self.res if r.type == typ]

    def table_arn(self, region: str, name: str) -> str:
        for t in self.of_type("aws:dynamodb/table:Table"):
            if t.inputs.get("name") != name:
                continue
            if t.region == region:
                return str(t.outputs["arn"])
            # A global table's replica: same name, the replica region's ARN.
            if region in {r.get("regionName") for r in t.inputs.get("replicas") or []}:
                return f"arn:aws:dynamodb:{region}:{ACCOUNT}:table/{name}"
        raise AssertionError(f"no table {name} in {region} in the plan")

    def key_arn_of_topic(self, topic_arn: str) -> str:
        topic = next(t for t in self.of_type("aws:sns/topic:Topic")
                     if t.outputs.get("arn") == topic_arn)
        return str(topic.inputs["kmsMasterKeyId"])

    def created_secrets(self) -> set[str]:
        out = {str(r.outputs["arn"]) for r in self.of_type("aws:secretsmanager/secret:Secret")}
        for db in self.of_type("aws:rds/instance:Instance"):
            out |= {str(m["secretArn"]) for m in db.outputs.get("masterUserSecrets") or []}
        return out

    def policy(self, fn: Registration) -> list[dict[str, Any]]:
        [pol] = [p for p in self.of_type("aws:iam/rolePolicy:RolePolicy")
                 if p.name == f"{fn.name}-policy"]
        return list(json.loads(pol.inputs["policy"])["Statement"])


def _secret(plan: Plan, arn: str) -> str:
    """The ARN IAM evaluates: the secret's complete ARN. A secret the plan creates has it; a
    given partial ARN (no ``-xxxxxx`` suffix) names a secret whose real ARN has one, so the
    policy must match that."""
    if arn in plan.created_secrets() or SECRET_SUFFIX.search(arn.split(":")[-1]):
        return arn
    return f"{arn}-a1B2c3"


def _fn_arn(region: str, name_or_arn: str) -> str:
    if name_or_arn.startswith("arn:"):
        return name_or_arn
    return f"arn:aws:lambda:{region}:{ACCOUNT}:function:{name_or_arn}"


def _needs(calls: list[Call], resource: str, arn: str, why: str, key: str | None = None,
           namespace: str | None = None) -> list[Need]:
    return [Need(a, arn, why, key, namespace) for c in calls if c.resource == resource
            for a in c.actions]


def monitor_needs(plan: Plan, env: dict[str, str]) -> list[Need]:
    region = env["STANDBY_REGION"]
    out: list[Need] = []
    units = MONITOR_UNITS
    hooks = json.loads(env["STANDBY_WEBHOOKS"])
    if hooks:
        units = units + WEBHOOK_UNITS
    base = calls_of(units)
    out += _needs(base, "state_table",
                  plan.table_arn(env["STANDBY_STATE_REGION"], env["STANDBY_STATE_TABLE"]),
                  "state store")
    topic = env["STANDBY_ALERT_TOPIC"]
    out += _needs(base, "topic", topic, "alerts")
    key = plan.key_arn_of_topic(topic)
    if not key.startswith("alias/aws/"):
        # A customer-managed key: its use must be granted (an AWS-managed key's own policy
        # lets every principal of the account use it through SNS).
        out += [Need(a, key, "alerts: SNS encrypts with the topic key") for a in SNS_KMS_ACTIONS]
    for hook in hooks:
        out += _needs(base, "webhook_secret", _secret(plan, hook["secret_arn"]), "webhook URL")
    for p in json.loads(env["STANDBY_PROBES"]):
        calls = calls_of(PROBE_UNITS[p["kind"]])
        why = f"probe {p['kind']} ({p['scope']})"
        if p["kind"] == "lambda":
            out += _needs(calls, "function", _fn_arn(region, p["function"]), why)
        elif p["kind"] == "dynamodb":
            out += _needs(calls, "data_table", plan.table_arn(p["region"], p["table"]), why)
        elif p["kind"] == "bucket":
            bucket = f"arn:aws:s3:::{p['bucket']}"
            out += _needs(calls, "bucket", bucket, why)
            out += _needs(calls, "bucket_probe_object", f"{bucket}/{p['probe_key']}{region}",
                          why)
        elif p["kind"] == "sql":
            out += _needs(calls, "db_secret", _secret(plan, p["secret_arn"]), why)
    for t in json.loads(env["STANDBY_SWITCH"]):
        calls = calls_of(SWITCH_UNITS[t["kind"]])
        why = f"switch {t['kind']} ({t['scope']})"
        kind = t["kind"]
        if kind == "pointer":
            out += _needs(calls, "pointer_table", plan.table_arn(t["region"], t["table"]), why,
                          key=t["key"])
        elif kind == "pointer_all":
            for tb in t["tables"]:
                out += _needs(calls, "pointer_table", plan.table_arn(tb["region"], tb["table"]),
                              why, key=t["key"])
        elif kind == "apigw_stage_variable":
            out += _needs(calls, "rest_stage",
                          f"arn:aws:apigateway:{t['region']}::/restapis/{t['rest_api_id']}"
                          f"/stages/{t['stage']}", why)
        elif kind == "apigw_integration":
            out += _needs(calls, "http_integration",
                          f"arn:aws:apigateway:{t['region']}::/apis/{t['api_id']}"
                          f"/integrations/{t['integration_id']}", why)
        elif kind == "route53_health_metrics":
            out += _needs(calls, "metric", "*", why, namespace=t["namespace"])
            out += _needs(calls, "alarm", f"arn:aws:cloudwatch:{t['region']}:{ACCOUNT}:alarm:"
                          f"{t['force_alarm']}", why)
        elif kind == "route53_record":
            out += _needs(calls, "hosted_zone", f"arn:aws:route53:::hostedzone/{t['zone_id']}",
                          why)
        elif kind == "rds_promote":
            out += _needs(calls, "db_instance",
                          f"arn:aws:rds:{t['region']}:{ACCOUNT}:db:{t['instance_id']}", why)
        elif kind == "sql_promote":
            out += _needs(calls, "db_secret", _secret(plan, t["secret_arn"]), why)
        else:
            raise AssertionError(f"switch kind {kind!r}: no resource rule in this test")
    return out


def wrapper_needs(plan: Plan, env: dict[str, str]) -> list[Need]:
    region = env["STANDBY_REGION"]
    calls = calls_of(WRAPPER_UNITS)
    out = _needs(calls, "pointer_table", plan.table_arn(region, env["STANDBY_POINTER_TABLE"]),
                 "wrapper pointer")
    if env.get("STANDBY_DB_TABLE"):
        for r in json.loads(env["STANDBY_DATA_REGIONS"]):
            out += _needs(calls, "data_table", plan.table_arn(r, env["STANDBY_DB_TABLE"]),
                          "kv requests")
    for bucket in json.loads(env.get("STANDBY_BUCKETS", "{}")).values():
        out += _needs(calls, "bucket", f"arn:aws:s3:::{bucket}", "object requests")
        out += _needs(calls, "bucket_object", f"arn:aws:s3:::{bucket}/any-key", "object requests")
    if env.get("STANDBY_DB_SECRET_ARN"):
        out += _needs(calls, "db_secret", _secret(plan, env["STANDBY_DB_SECRET_ARN"]),
                      "SQL credentials")
    return out


def logic_needs(plan: Plan, env: dict[str, str]) -> list[Need]:
    region = env["STANDBY_REGION"]
    calls = calls_of(LOGIC_UNITS)
    out = _needs(calls, "pointer_table", plan.table_arn(region, env["STANDBY_POINTER_TABLE"]),
                 "data client pointer", key="wrapper")
    for side in ("PRIMARY", "STANDBY"):
        out += _needs(calls, "function", _fn_arn(region, env[f"STANDBY_WRAPPER_{side}"]),
                      "data client")
    return out


def _match(pattern: str, value: str) -> bool:
    regex = "".join(".*" if ch == "*" else "." if ch == "?" else re.escape(ch)
                    for ch in pattern)
    return re.fullmatch(regex, value) is not None


def _allowed_by(st: dict[str, Any], need: Need) -> bool:
    if st.get("Effect") != "Allow" or need.action not in st["Action"]:
        return False
    resources = st["Resource"] if isinstance(st["Resource"], list) else [st["Resource"]]
    if "*" in resources and need.action not in WILDCARD_EXCEPTIONS:
        return False
    if not any(_match(r, need.resource) for r in resources):
        return False
    cond = st.get("Condition") or {}
    for op, body in cond.items():
        for ckey, values in body.items():
            vals = values if isinstance(values, list) else [values]
            if ckey == "dynamodb:LeadingKeys" and (need.key is None or need.key not in vals):
                return False
            if ckey == "cloudwatch:namespace" and need.namespace not in vals:
                return False
            if ckey == "kms:ViaService" and not all(v.startswith("sns.") for v in vals):
                return False
            if ckey not in ("dynamodb:LeadingKeys", "cloudwatch:namespace", "kms:ViaService",
                            "route53:ChangeResourceRecordSetsNormalizedRecordNames"):
                raise AssertionError(f"condition {op} {ckey}: this test cannot judge it")
    return True


#: Granted for the platform, not for the run-time code: Lambda writes the function's logs,
#: and attaches it to a VPC.
PLATFORM_ACTIONS = frozenset({
    "logs:CreateLogStream", "logs:PutLogEvents", "ec2:CreateNetworkInterface",
    "ec2:DescribeNetworkInterfaces", "ec2:DeleteNetworkInterface",
    "ec2:AssignPrivateIpAddresses", "ec2:UnassignPrivateIpAddresses",
})


def role_of(env: dict[str, str]) -> str:
    if "STANDBY_LAYER" in env:
        return "monitor"
    if "STANDBY_WRAPPER_PRIMARY" in env:
        return "logic"
    return "wrapper"


def check_plan(run: PlanRun) -> tuple[list[str], list[str], dict[str, set[str]]]:
    """(denied calls, unused grants, what was covered: switch/probe kinds, engines)."""
    plan = Plan(run)
    denied: list[str] = []
    unused: list[str] = []
    covered: dict[str, set[str]] = {"switch": set(), "probe": set(), "role": set()}
    for fn in plan.of_type("aws:lambda/function:Function"):
        env = dict(fn.inputs["environment"]["variables"])
        role = role_of(env)
        covered["role"].add(role)
        if role == "monitor":
            needs = monitor_needs(plan, env)
            covered["switch"] |= {t["kind"] for t in json.loads(env["STANDBY_SWITCH"])}
            covered["probe"] |= {p["kind"] for p in json.loads(env["STANDBY_PROBES"])}
        elif role == "logic":
            needs = logic_needs(plan, env)
        else:
            needs = wrapper_needs(plan, env)
        statements = plan.policy(fn)
        for need in needs:
            if not any(_allowed_by(st, need) for st in statements):
                denied.append(f"{fn.name}: {need.action} on {need.resource} ({need.why})")
        needed = {n.action for n in needs}
        for st in statements:
            for action in st["Action"]:
                if action in PLATFORM_ACTIONS or action in needed:
                    continue
                if role == "logic" and action == "secretsmanager:GetSecretValue":
                    continue  # the user's code reads KEY_SECRET_ARN (documented contract)
                unused.append(f"{fn.name} ({role}): {action} on {st['Resource']}")
    return denied, unused, covered


@functools.cache
def checked(name: str) -> tuple[list[str], list[str], dict[str, set[str]]]:
    # Each plan runs once per session: a PlanRun keeps its own recorded resources.
    return check_plan(PLANS[name]())


@pytest.mark.parametrize("name", sorted(PLANS))
def test_every_role_is_allowed_every_call_its_code_makes(name: str) -> None:
    denied, _, covered = checked(name)
    assert covered["role"] == {"monitor", "logic", "wrapper"}
    assert not denied, "\n".join(denied)


@pytest.mark.parametrize("name", sorted(PLANS))
def test_no_monitor_grant_is_unused(name: str) -> None:
    _, unused, _ = checked(name)
    mine = [u for u in unused if "(monitor)" in u]
    assert not mine, "\n".join(mine)


def test_no_wrapper_or_logic_grant_is_unused() -> None:
    _, unused, _ = checked("aws-dev")
    others = [u for u in unused if "(monitor)" not in u]
    assert not others, "\n".join(others)


def test_the_plans_cover_every_switch_kind_probe_kind_and_engine() -> None:
    switch: set[str] = set()
    probe: set[str] = set()
    for name in sorted(PLANS):
        _, _, covered = checked(name)
        switch |= covered["switch"]
        probe |= covered["probe"]
    # sql_promote is a self-managed SQL pair: no AWS plan wires it (its calls are in the table).
    assert switch == set(SWITCH_UNITS) - {"sql_promote"}
    assert probe == set(PROBE_UNITS)


def test_a_role_missing_condition_check_item_is_denied() -> None:
    # The check itself can fail: strip the action the old monitor policy lacked.
    run = run_stack("aws-dev")
    for pol in run.resources:
        if pol.type == "aws:iam/rolePolicy:RolePolicy" and "-monitor-" in pol.name:
            doc = json.loads(pol.inputs["policy"])
            for st in doc["Statement"]:
                st["Action"] = [a for a in st["Action"] if a != "dynamodb:ConditionCheckItem"]
            pol.inputs["policy"] = json.dumps(doc)
    denied, _, _ = check_plan(run)
    assert denied and all("dynamodb:ConditionCheckItem" in d for d in denied)
    assert any("state store" in d for d in denied)
