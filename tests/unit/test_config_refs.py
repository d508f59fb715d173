"""The monitor configuration names its state store and webhook secrets by reference, the
same way for every cloud: a registered store kind with its reference variable, and a secret
by ARN or by name and region. AWS environments as deployed keep loading unchanged."""

from __future__ import annotations

import json
from typing import Any

import pytest

import components.runtime.aws  # registers dynamodb, as the AWS handler does
import components.runtime.tencent  # noqa: F401  registers mysql, as the Tencent handler does
from components.runtime.config import SecretRef, StateRef, load
from components.runtime.errors import ConfigError
from components.runtime.registry import Registry, StateStoreKind

SETTINGS = {"interval_s": 10, "timeout_s": 2, "failure_threshold": 3, "recovery_threshold": 3,
            "cooldown_s": 60, "quorum": 2}
PROBE = {"scope": "logic", "kind": "http", "url": "http://127.0.0.1:1/health"}
POINTER = {"scope": "logic", "kind": "tencent_pointer", "key": "wrapper:ap-guangzhou",
           "values": {"primary": "primary", "standby": "standby"}}


def env(**extra: Any) -> dict[str, str]:
    base = {"STANDBY_TOPOLOGY": "shop", "STANDBY_LAYER": "logic",
            "STANDBY_REGION": "ap-guangzhou", "STANDBY_STATE_REGION": "ap-shanghai",
            "STANDBY_SETTINGS": json.dumps(SETTINGS), "STANDBY_PROBES": json.dumps([PROBE]),
            "STANDBY_SWITCH": json.dumps([POINTER])}
    return {**base, **{k: v if isinstance(v, str) else json.dumps(v) for k, v in extra.items()}}


def problems(e: dict[str, str]) -> list[str]:
    with pytest.raises(ConfigError) as exc:
        load(e)
    return exc.value.problems


def test_tencent_state_store_loads_without_state_table() -> None:
    """Regression: config.load required STANDBY_STATE_TABLE, an AWS name the Tencent deploy
    does not emit, so the Tencent handler had to fake it."""
    cfg = load(env(STANDBY_STATE_STORE="mysql", STANDBY_STATE_DSN_SECRET="shop-state-dsn",
                   STANDBY_STATE_DSN_VERSION="v2"))
    assert cfg.state == StateRef("mysql", "shop-state-dsn", "ap-shanghai",
                                 {"STANDBY_STATE_DSN_VERSION": "v2"})


def test_aws_environment_still_names_its_table() -> None:
    cfg = load(env(STANDBY_STATE_TABLE="shop-standby-state"))
    assert cfg.state == StateRef("dynamodb", "shop-standby-state", "ap-shanghai")
    assert (cfg.state_table, cfg.state_region) == ("shop-standby-state", "ap-shanghai")


def test_webhook_secret_by_name_and_region_is_accepted() -> None:
    """Regression: a webhook needed ``secret_arn``; Tencent names an SSM secret and region."""
    hooks = [{"kind": "wecom", "secret_name": "shop-webhook-0", "region": "ap-guangzhou"},
             {"kind": "slack", "secret_arn": "arn:aws:secretsmanager:us-east-1:1:secret:x"},
             {"kind": "dingtalk", "url_env": "DINGTALK_URL"}]
    cfg = load(env(STANDBY_STATE_TABLE="t", STANDBY_WEBHOOKS=hooks))
    assert [(h.kind, h.secret, h.url_env) for h in cfg.webhooks] == [
        ("wecom", SecretRef("shop-webhook-0", "ap-guangzhou"), None),
        ("slack", SecretRef("arn:aws:secretsmanager:us-east-1:1:secret:x"), None),
        ("dingtalk", None, "DINGTALK_URL")]


def test_state_store_errors_name_the_variable_and_the_allowed_kinds() -> None:
    allowed = "allowed: dynamodb (with STANDBY_STATE_TABLE), mysql (with " \
              "STANDBY_STATE_DSN_SECRET)"
    assert problems(env()) == [
        f"STANDBY_STATE_STORE: missing and none of their references is set; {allowed}"]
    assert problems(env(STANDBY_STATE_STORE="redis", STANDBY_STATE_TABLE="t")) == [
        f"STANDBY_STATE_STORE: 'redis'; {allowed}"]
    assert problems(env(STANDBY_STATE_STORE="mysql")) == [
        "STANDBY_STATE_DSN_SECRET: missing (the mysql state store's reference)"]
    # Two references and no kind: which store is meant is ambiguous, never guessed.
    assert problems(env(STANDBY_STATE_TABLE="t", STANDBY_STATE_DSN_SECRET="s")) == [
        "STANDBY_STATE_STORE: missing and STANDBY_STATE_DSN_SECRET, STANDBY_STATE_TABLE are "
        f"all set; {allowed}"]
    e = env(STANDBY_STATE_TABLE="t")
    del e["STANDBY_STATE_REGION"]
    assert problems(e) == ["STANDBY_STATE_REGION: missing"]


def test_webhook_and_recipient_errors_name_what_is_allowed() -> None:
    hooks = [{"kind": "wecom"},
             {"kind": "wecom", "secret_arn": "a", "url_env": "U"},
             {"kind": "slack", "secret_name": "s"},
             {"kind": "slack", "url_env": "U", "extra": 1},
             {"kind": "teams", "url_env": "U"}]
    got = problems(env(STANDBY_STATE_TABLE="t", STANDBY_WEBHOOKS=hooks,
                       STANDBY_ALERT_EMAILS=["oncall@example.com", "nobody"],
                       STANDBY_ALERT_SMS=["13800000000"]))
    assert got == [
        "STANDBY_WEBHOOKS[0]: needs exactly one of secret_arn, secret_name (with region) or "
        "url_env; got none",
        "STANDBY_WEBHOOKS[1]: needs exactly one of secret_arn, secret_name (with region) or "
        "url_env; got secret_arn, url_env",
        "STANDBY_WEBHOOKS[2]: secret_name needs the secret's region",
        "STANDBY_WEBHOOKS[3]: unknown key(s) extra; allowed: kind, region, secret_arn, "
        "secret_name, url_env",
        "STANDBY_WEBHOOKS[4].kind: 'teams'; allowed: wecom, dingtalk, slack",
        "STANDBY_ALERT_EMAILS: 'nobody' not an email address",
        "STANDBY_ALERT_SMS: '13800000000' not an E.164 number (+8613800000000)"]


def test_recipients_are_read() -> None:
    cfg = load(env(STANDBY_STATE_TABLE="t", STANDBY_ALERT_EMAILS=["oncall@example.com"],
                   STANDBY_ALERT_SMS=["+8613800000000"]))
    assert (cfg.emails, cfg.sms) == (["oncall@example.com"], ["+8613800000000"])


def test_cdb_dr_switch_target_without_primary_region_is_refused() -> None:
    """Regression: the deploy emitted cdb_dr_switch targets without ``primary_region``; after
    the promotion the heartbeat could not find the old primary to keep it fenced."""
    target = {"scope": "data", "kind": "cdb_dr_switch", "region": "ap-shanghai",
              "instance_ids": {"primary": "cdb-p", "standby": "cdb-dr"}, "max_lag_s": 5}
    e = env(STANDBY_STATE_STORE="mysql", STANDBY_STATE_DSN_SECRET="s",
            STANDBY_SWITCH=[target])
    assert problems(e) == ["STANDBY_SWITCH[0] (cdb_dr_switch): missing primary_region"]
    assert load({**e, "STANDBY_SWITCH": json.dumps([{**target,
                                                      "primary_region": "ap-guangzhou"}])})


def test_store_kind_names_are_checked_when_registered() -> None:
    reg = Registry()
    with pytest.raises(ValueError, match="must match"):
        reg.add_state_store(StateStoreKind("mysql", "DSN"))
    reg.add_state_store(StateStoreKind("mysql", "STANDBY_STATE_DSN_SECRET"))
    with pytest.raises(ValueError, match="already registered"):
        reg.add_state_store(StateStoreKind("mysql", "STANDBY_OTHER"))


def test_aws_handler_refuses_a_store_kind_it_cannot_open() -> None:
    from components.runtime.aws.monitor import handler

    e = env(STANDBY_STATE_STORE="mysql", STANDBY_STATE_DSN_SECRET="s")
    with pytest.raises(ConfigError, match="STANDBY_STATE_STORE: 'mysql'; allowed on AWS: "
                                          "dynamodb"):
        handler({"source": "manual"}, env=e)
