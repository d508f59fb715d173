"""The Tencent policy rules over both Tencent example stacks, and over graphs broken one
invariant at a time (each break changes one resource the real program registered)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from functools import cache
from typing import Any

import pytest

from policy.rules import RESOURCE_RULES, STACK_RULES, Res, check_all
from policy.tencent_rules import TENCENT_RESOURCE_RULES, TENCENT_STACK_RULES, cron_problem
from tests.conftest import run_stack

TENCENT_STACKS = ("tencent-dev", "tencent-nearby")


@cache
def _resources(stack: str) -> tuple[Res, ...]:
    return tuple(
        Res(type=r.type, name=r.name, urn=r.urn, props={**r.inputs, **r.outputs},
            region=r.region, parent=r.parent or None)
        for r in run_stack(stack).resources
    )


def test_tencent_rules_are_registered_in_the_pack() -> None:
    assert set(TENCENT_RESOURCE_RULES) <= set(RESOURCE_RULES)
    assert set(TENCENT_STACK_RULES) <= set(STACK_RULES)


@pytest.mark.parametrize("stack", TENCENT_STACKS)
def test_every_rule_passes_on_the_tencent_stacks(stack: str) -> None:
    resources = list(_resources(stack))
    assert check_all(resources) == []
    types = {r.type for r in resources}
    # Not vacuous: each rule's subject is in the stack.
    assert {"tencentcloud:Cam/policy:Policy", "tencentcloud:Dnspod/record:Record",
            "tencentcloud:Scf/function:Function", "tencentcloud:Cos/bucket:Bucket",
            "tencentcloud:Mysql/drInstance:DrInstance",
            "tencentcloud:Scf/customDomain:CustomDomain",
            "standby:index:ActiveStandbyTopology"} <= types


def _doc_edit(edit: Callable[[dict[str, Any]], None]) -> Callable[[dict[str, Any]], None]:
    def apply(props: dict[str, Any]) -> None:
        doc = json.loads(props["document"])
        edit(doc)
        props["document"] = json.dumps(doc)
    return apply


def _first_statement(doc: dict[str, Any]) -> dict[str, Any]:
    st: dict[str, Any] = doc["statement"][0]
    return st


def _drop_action(action: str) -> Callable[[dict[str, Any]], None]:
    def edit(doc: dict[str, Any]) -> None:
        for st in doc["statement"]:
            st["action"] = [a for a in st["action"] if a != action]
    return _doc_edit(edit)


def _rename_action(old: str, new: str) -> Callable[[dict[str, Any]], None]:
    def edit(doc: dict[str, Any]) -> None:
        for st in doc["statement"]:
            st["action"] = [new if a == old else a for a in st["action"]]
    return _doc_edit(edit)


def _set(key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    return lambda props: props.__setitem__(key, value)


def _trigger(desc: str) -> Callable[[dict[str, Any]], None]:
    def edit(props: dict[str, Any]) -> None:
        props["triggers"] = [dict(props["triggers"][0], triggerDesc=desc)]
    return edit


def _is(typ: str, name_part: str = "") -> Callable[[Res], bool]:
    return lambda r: r.type == typ and name_part in r.name


# (rule, which resource, how it is broken, text the violation must contain)
BREAKS: list[tuple[str, Callable[[Res], bool], Callable[[dict[str, Any]], None], str]] = [
    ("tencent-no-wildcard-cam", _is("tencentcloud:Cam/policy:Policy", "monitor-dns"),
     _doc_edit(lambda d: _first_statement(d).__setitem__("action", ["dnspod:*"])),
     "use a wildcard"),
    ("tencent-no-wildcard-cam", _is("tencentcloud:Cam/policy:Policy", "monitor-gateway"),
     _doc_edit(lambda d: _first_statement(d).__setitem__("resource", ["*"])),
     "resource '*' for"),
    ("tencent-valid-enum-values", _is("tencentcloud:Dnspod/record:Record"),
     _set("recordLine", "北京"), "record_line '北京' is not one of"),
    ("tencent-valid-enum-values", _is("tencentcloud:Dnspod/record:Record"),
     _set("recordType", "ALIAS"), "record_type 'ALIAS'"),
    ("tencent-valid-enum-values", _is("tencentcloud:Dnspod/record:Record"),
     _set("status", "ON"), "status 'ON' is not ENABLE or DISABLE"),
    ("tencent-valid-enum-values", _is("tencentcloud:Scf/function:Function", "monitor-data"),
     _set("runtime", "Python2.7"), "runtime 'Python2.7'"),
    ("tencent-valid-enum-values", _is("tencentcloud:Scf/function:Function", "monitor-data"),
     _trigger("*/5 * * * *"), "has 5 fields; SCF needs 7"),
    ("tencent-valid-enum-values", _is("tencentcloud:Scf/customDomain:CustomDomain"),
     _set("protocol", "FTP"), "protocol 'FTP'"),
    ("tencent-primary-standby-in-different-regions",
     _is("tencentcloud:Dnspod/record:Record", "-primary"),
     _set("value", "1250000000.ap-shanghai.tencentscf.com."), "both sides point at"),
    ("tencent-primary-standby-in-different-regions",
     _is("tencentcloud:Mysql/drInstance:DrInstance"),
     _set("masterRegion", "ap-shanghai"), "DR instance in its master's region"),
    ("tencent-buckets-versioned-and-replicated", _is("tencentcloud:Cos/bucket:Bucket"),
     _set("versioningEnable", False), "versioning_enable is not true"),
    ("tencent-buckets-versioned-and-replicated", _is("tencentcloud:Cos/bucket:Bucket"),
     _set("replicaRules", []), "no replica rule"),
    ("tencent-switchable-layers-monitored",
     _is("tencentcloud:Cam/policy:Policy", "monitor-data"),
     _drop_action("cos:PutBucketReplication"), "may not cos:PutBucketReplication"),
    ("tencent-switchable-layers-monitored",
     _is("tencentcloud:Cam/policy:Policy", "monitor-data"),
     _drop_action("cdb:SwitchDrInstanceToMaster"), "may not cdb:SwitchDrInstanceToMaster"),
    ("tencent-switchable-layers-monitored",
     _is("tencentcloud:Cam/policy:Policy", "monitor-data"),
     _drop_action("cdb:ModifyDBInstanceReadOnlyStatus"),
     "may not cdb:ModifyDBInstanceReadOnlyStatus"),
    ("tencent-switchable-layers-monitored",
     _is("tencentcloud:Cam/policy:Policy", "monitor-dns"),
     _drop_action("dnspod:ModifyRecordStatus"), "may not dnspod:ModifyRecordStatus"),
    ("tencent-switchable-layers-monitored",
     _is("tencentcloud:Cam/policy:Policy", "monitor-gateway"),
     _drop_action("scf:UpdateCustomDomain"), "may not scf:UpdateCustomDomain"),
    # The deploy once granted scf:InvokeFunction while the stub authorised scf:Invoke; the
    # documented CAM name is InvokeFunction (doc 583/18014), so the API name is refused.
    ("tencent-documented-cam-actions", _is("tencentcloud:Cam/policy:Policy", "monitor-logic"),
     _rename_action("scf:InvokeFunction", "scf:Invoke"), "'scf:Invoke' is an API name"),
    ("tencent-switchable-layers-monitored",
     _is("tencentcloud:Cam/policy:Policy", "monitor-gateway"),
     _drop_action("scf:InvokeFunction"), "may not scf:InvokeFunction"),
    ("tencent-dns-ttl-within-budget", _is("tencentcloud:Dnspod/record:Record"),
     _set("ttl", 86400), "ttl 86400 s exceeds"),
]


@pytest.mark.parametrize("stack", TENCENT_STACKS)
@pytest.mark.parametrize(("rule", "pick", "breaks", "expect"), BREAKS,
                         ids=[f"{b[0]}:{b[3][:24]}" for b in BREAKS])
def test_each_rule_catches_one_broken_invariant(
    stack: str, rule: str, pick: Callable[[Res], bool],
    breaks: Callable[[dict[str, Any]], None], expect: str,
) -> None:
    resources = list(_resources(stack))
    i = next(i for i, r in enumerate(resources) if pick(r))
    props = json.loads(json.dumps(dict(resources[i].props)))
    breaks(props)
    resources[i] = dataclasses.replace(resources[i], props=props)
    found = check_all(resources)
    assert any(name == rule and expect in v.message for name, v in found), found
    # Nothing unrelated fires. A monitor policy that lost its switch action (a wildcard
    # instead of the name, or a '*' resource) is also a monitor that cannot switch; a record
    # moved to another line or status also leaves its partner without a pair.
    related = {rule, "tencent-switchable-layers-monitored"}
    if resources[i].type == "tencentcloud:Dnspod/record:Record":
        related.add("tencent-primary-standby-in-different-regions")
    assert {name for name, _ in found} <= related, found


@pytest.mark.parametrize("stack", TENCENT_STACKS)
def test_a_missing_monitor_layer_is_reported(stack: str) -> None:
    resources = [r for r in _resources(stack)
                 if not (r.type == "tencentcloud:Scf/function:Function"
                         and "monitor-logic" in r.name)]
    found = check_all(resources)
    assert tuple({n for n, _ in found}) == ("tencent-switchable-layers-monitored",)
    assert any("no monitor for the logic layer" in v.message for _, v in found)


def test_cron_grammar() -> None:
    assert cron_problem("*/10 * * * * * *") is None
    assert cron_problem("0 */2 * * * * *") is None
    assert "field(s) ['x']" in str(cron_problem("x * * * * * *"))


def _monitor_policy(resources: list[Res], layer: str) -> int:
    return next(i for i, r in enumerate(resources)
                if r.type == "tencentcloud:Cam/policy:Policy" and f"monitor-{layer}" in r.name)


def test_monitor_that_may_not_send_email_is_reported() -> None:
    """tencent-dev mails its on-call address: a monitor whose CAM policy lost
    ses:SendEmail could never deliver, and the pack says so."""
    resources = list(_resources("tencent-dev"))
    i = _monitor_policy(resources, "data")
    props = json.loads(json.dumps(dict(resources[i].props)))
    _drop_action("ses:SendEmail")(props)
    resources[i] = dataclasses.replace(resources[i], props=props)
    found = check_all(resources)
    assert {n for n, _ in found} == {"tencent-monitor-alerts-allowed"}, found
    assert any("may not ses:SendEmail" in v.message and "STANDBY_ALERT_EMAILS" in v.message
               for _, v in found)


def test_monitor_with_recipients_but_no_ses_sender_is_reported() -> None:
    resources = list(_resources("tencent-dev"))
    i = next(i for i, r in enumerate(resources)
             if r.type == "tencentcloud:Scf/function:Function" and "monitor-dns" in r.name)
    props = json.loads(json.dumps(dict(resources[i].props)))
    del props["environment"]["STANDBY_ALERT_SES"]
    resources[i] = dataclasses.replace(resources[i], props=props)
    found = check_all(resources)
    assert [n for n, _ in found] == ["tencent-monitor-alerts-allowed"], found
    assert "STANDBY_ALERT_SES (the approved sender) is missing" in found[0][1].message


@pytest.mark.parametrize("stack", TENCENT_STACKS)
def test_a_bucket_pair_with_no_enabled_rule_is_reported(stack: str) -> None:
    """The standby's rule is Disabled by design now (cos_replication reverses it on a
    failover); a pair where neither bucket replicates still fails the pack."""
    resources = []
    for r in _resources(stack):
        if r.type == "tencentcloud:Cos/bucket:Bucket":
            props = json.loads(json.dumps(dict(r.props)))
            props["replicaRules"] = [dict(x, status="Disabled") for x in props["replicaRules"]]
            r = dataclasses.replace(r, props=props)
        resources.append(r)
    found = check_all(resources)
    assert [n for n, _ in found] == ["tencent-buckets-versioned-and-replicated"]
    assert "no bucket has an enabled replica rule" in found[0][1].message
