"""The kind registry: adapters register probe kinds (with a role) and switch kinds; the
configuration checks read it, and no core module names an adapter's kind."""

from __future__ import annotations

import ast
import json
from pathlib import Path
from typing import Any

import pytest

import components.runtime.aws  # noqa: F401  registers the AWS kinds, as a handler does
from components.runtime import config
from components.runtime.aws import kinds as aws_kinds
from components.runtime.errors import ConfigError
from components.runtime.registry import (
    REGISTRY,
    ProbeKind,
    Registry,
    SwitchKind,
    UnknownKind,
)

RUNTIME = Path(config.__file__).resolve().parent


def env(probes: list[dict[str, Any]], switch: list[dict[str, Any]]) -> dict[str, str]:
    settings = {"interval_s": 10, "timeout_s": 2, "failure_threshold": 3,
                "recovery_threshold": 3, "cooldown_s": 60, "quorum": 2}
    return {"STANDBY_TOPOLOGY": "shop", "STANDBY_LAYER": "data", "STANDBY_REGION": "us-east-1",
            "STANDBY_STATE_TABLE": "state", "STANDBY_STATE_REGION": "us-west-2",
            "STANDBY_SETTINGS": json.dumps(settings), "STANDBY_PROBES": json.dumps(probes),
            "STANDBY_SWITCH": json.dumps(switch)}


SQL_PROBE = {"scope": "data", "kind": "sql", "side": "primary", "engine": "postgres",
             "host": "db", "port": 5432, "database": "shop"}
RDS = {"scope": "data", "kind": "rds_promote", "region": "us-west-2", "instance_id": "db-r",
       "max_lag_s": 5}


# Other adapters may register more kinds in the same process: expectations are built from
# the registry where they list every kind.
CORE_PROBES = {"http": "entry", "sql": "backend"}
AWS_PROBES = {"lambda": "backend", "dynamodb": "backend", "bucket": "dependency"}


def test_unknown_kind_is_refused_naming_the_allowed_kinds() -> None:
    with pytest.raises(UnknownKind) as exc:
        REGISTRY.probe("s3_head")
    allowed = ", ".join(sorted(REGISTRY.probes()))
    assert str(exc.value) == f"unknown probe kind 's3_head'; allowed: {allowed}"
    assert set(CORE_PROBES) | set(AWS_PROBES) <= set(REGISTRY.probes())
    with pytest.raises(UnknownKind, match=r"unknown switch kind 'flip'; allowed: .*rds_promote"):
        REGISTRY.switch("flip")


def test_config_refuses_an_unknown_kind_naming_every_registered_one() -> None:
    with pytest.raises(ConfigError) as exc:
        config.load(env([SQL_PROBE, {**SQL_PROBE, "kind": "s3_head"}],
                        [RDS, {"scope": "data", "kind": ["x"]}]))
    probes = ", ".join(sorted(REGISTRY.probes()))
    switches = ", ".join(sorted(REGISTRY.switches()))
    assert exc.value.problems == [
        f"STANDBY_PROBES[1].kind: 's3_head'; allowed: {probes}",
        f"STANDBY_SWITCH[1].kind: ['x']; allowed: {switches}",
    ]


def test_config_without_an_adapter_says_none_of_its_kinds_is_registered() -> None:
    bare = Registry()
    with pytest.raises(ConfigError) as exc:
        config.load(env([SQL_PROBE], [RDS]), registry=bare)
    assert ("STANDBY_PROBES[0].kind: 'sql'; no kinds are registered (a cloud adapter "
            "registers its kinds when imported)") in exc.value.problems


def test_aws_kinds_are_registered_on_import_with_their_roles() -> None:
    for name, role in {**CORE_PROBES, **AWS_PROBES}.items():
        assert REGISTRY.probe(name).role == role
    assert {k.name: k.role for k in aws_kinds.PROBES} == AWS_PROBES
    guarded = sorted(k.name for k in aws_kinds.SWITCHES if k.lag_guard)
    assert guarded == ["rds_promote", "sql_promote"]
    assert all(REGISTRY.switch(k.name) == k for k in aws_kinds.SWITCHES)


def test_every_aws_kind_has_an_implementation_and_vice_versa() -> None:
    from components.runtime.aws.clients import Clients
    from components.runtime.aws.probes import aws_probes
    from components.runtime.aws.switchers import aws_switchers

    clients = Clients()
    assert set(aws_probes(clients, "us-east-1")) == set(CORE_PROBES) | set(AWS_PROBES)
    assert set(aws_switchers(clients)) == {k.name for k in aws_kinds.SWITCHES}


def test_registering_again_is_harmless_but_a_different_definition_is_refused() -> None:
    reg = Registry()
    kind = ProbeKind("cos", "dependency", ("scope", "side", "bucket"))
    reg.add_probe(kind)
    reg.add_probe(ProbeKind("cos", "dependency", ("scope", "side", "bucket")))
    assert reg.probe("cos") == kind
    with pytest.raises(ValueError, match="'cos' is already registered"):
        reg.add_probe(ProbeKind("cos", "backend", ("scope", "side", "bucket")))
    assert reg.probe("cos").role == "dependency"  # nothing half-changed


@pytest.mark.parametrize("kind, message", [
    (ProbeKind("cos", "primary", ("scope",)), "role 'primary'; allowed: backend, dependency, "  # type: ignore[arg-type]
     "entry"),
    (ProbeKind("cos", "backend", ("side",)), "must include 'scope'"),
    (ProbeKind("Bad Name", "backend", ("scope",)), "the name must match"),
    (SwitchKind("promote", ("scope", "max_lag_s"), lag_guard=True), "needs the component"),
    (SwitchKind("promote", ("scope",), component="database", lag_guard=True),
     "needs 'max_lag_s'"),
])
def test_a_malformed_kind_is_refused_at_registration(kind: Any, message: str) -> None:
    reg = Registry()
    with pytest.raises(ValueError, match=message):
        if isinstance(kind, ProbeKind):
            reg.add_probe(kind)
        else:
            reg.add_switch(kind)
    assert not reg.probes() and not reg.switches()


def test_lag_guard_needs_a_number_of_seconds() -> None:
    with pytest.raises(ConfigError) as exc:
        config.load(env([SQL_PROBE], [{**RDS, "max_lag_s": "5"}]))
    assert exc.value.problems == [
        "STANDBY_SWITCH[0].max_lag_s (rds_promote): '5'; allowed: a number in 0..86400"]
    assert config.load(env([SQL_PROBE], [RDS])).switch == [RDS]


def test_health_metrics_target_needs_no_veto_and_an_old_one_still_loads() -> None:
    target = {"scope": "us-east-1", "kind": "route53_health_metrics", "region": "us-east-1",
              "namespace": "Standby", "dimensions": {"Region": "us-east-1"},
              "force_metric": "ForceFailover", "force_alarm": "shop-force-use1"}
    probe = {"scope": "us-east-1", "kind": "http", "url": "https://gw/health"}
    assert config.load(env([probe], [target])).switch == [target]
    old = {**target, "veto_metric": "VetoFailover", "veto_alarm": "shop-veto-use1"}
    assert config.load(env([probe], [old])).switch == [old]


#: The monitor's core path: what it probes, how it judges, decides and switches. (The
#: wrapper's engine names are a different vocabulary: ``engine: dynamodb``.)
MONITOR_CORE = ("config.py", "registry.py", "probes.py", "verdict.py", "engine.py",
                "lease.py", "monitor_core.py")


def test_core_modules_name_no_adapter_kind() -> None:
    # Adding a cloud must touch no core file: the monitor's core may not decide by an AWS
    # kind's name (review: config.PROBE_KINDS/SWITCH_KINDS, assess on "lambda"/"rds_promote").
    aws_names = {k.name for k in aws_kinds.PROBES} | {k.name for k in aws_kinds.SWITCHES}
    offenders = []
    for path in (RUNTIME / name for name in MONITOR_CORE):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and node.value in aws_names:
                offenders.append(f"{path.name}:{node.lineno} {node.value!r}")
    assert offenders == []
