"""Tencent alert channels and the CDB SQL probe against the contract stub (every call signed
with the real SDK and checked for shape and CAM) and a real MariaDB primary/replica pair
standing in for CDB and its DR instance."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

import components.runtime.tencent  # noqa: F401  (registers the kinds and the mysql store)
from components.runtime.config import MonitorConfig, load
from components.runtime.errors import ConfigError
from components.runtime.notify import Alert
from components.runtime.tencent.alerts import tencent_channels
from components.runtime.tencent.client import TencentApi
from components.runtime.tencent.probes import cdb_sql_probe
from components.sandbox.mariadb import ADMIN, MariaPair
from components.sandbox.tencent_stub import TencentStub

P, S = "ap-guangzhou", "ap-shanghai"
UIN = "100000000001"
SENDER = "standby@mail.example.com"
SES_ENV = json.dumps({"from": SENDER, "template_id": 100001, "region": P})
SMS_ENV = json.dumps({"sdk_app_id": "1400000001", "template_id": "2000001",
                      "sign_name": "ShopOps", "region": P})
# What the deploy grants a monitor that alerts (components/tencent/control.py allow_alerts):
# the sends service-wide, each webhook URL secret by name, the DB DSN and both instances.
MONITOR_POLICY = {"version": "2.0", "statement": [
    {"effect": "allow", "action": ["ses:SendEmail"], "resource": ["*"]},
    {"effect": "allow", "action": ["sms:SendSms"], "resource": ["*"]},
    {"effect": "allow", "action": ["ssm:GetSecretValue"],
     "resource": [f"qcs::ssm:{P}:uin/{UIN}:secret/creatorUin/{UIN}/shop-webhook-0",
                  f"qcs::ssm:{P}:uin/{UIN}:secret/creatorUin/{UIN}/shop-db-dsn"]},
    {"effect": "allow", "action": ["ssm:GetSecretValue"],
     "resource": [f"qcs::ssm:{S}:uin/{UIN}:secret/creatorUin/{UIN}/shop-standby-state-dsn"]},
    {"effect": "allow", "action": ["scf:InvokeFunction"],
     "resource": [f"qcs::scf:{P}:uin/{UIN}:namespace/default/function/shop-wrap-*"]},
    {"effect": "allow", "action": ["cdb:DescribeDBInstances"],
     "resource": [f"qcs::cdb:{P}:uin/{UIN}:instanceId/cdb-p",
                  f"qcs::cdb:{S}:uin/{UIN}:instanceId/cdb-dr"]},
]}
ALERT = Alert("standby: data switched to ap-shanghai", "the primary stopped answering",
              "critical", {"token": 7})


@pytest.fixture
def stub(monkeypatch: pytest.MonkeyPatch) -> Iterator[TencentStub]:
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    with TencentStub() as s:
        s.add_key("AKIDmonitor", "monitor-key", MONITOR_POLICY, token="sts-token")
        s.add_key("AKIDmute", "mute-key", {"version": "2.0", "statement": [
            {"effect": "allow", "action": ["ssm:GetSecretValue"], "resource": ["*"]}]})
        svc = s.services
        svc.alerts.ses_senders.add(SENDER)
        svc.alerts.ses_templates[100001] = "<h1>{{title}}</h1><pre>{{text}}</pre>{{severity}}"
        svc.alerts.sms_apps.add("1400000001")
        svc.alerts.sms_templates["2000001"] = 1
        svc.alerts.sms_signs.add("ShopOps")
        s.start()
        yield s


def api(s: TencentStub, sid: str = "AKIDmonitor", key: str = "monitor-key",
        token: str | None = "sts-token") -> TencentApi:
    return TencentApi(sid, key, token, endpoint=s.endpoint, cos_endpoint=s.cos.endpoint)


def config(**extra: str) -> MonitorConfig:
    settings = {"interval_s": 1, "timeout_s": 2, "failure_threshold": 2,
                "recovery_threshold": 2, "cooldown_s": 0, "quorum": 2}
    return load({"STANDBY_TOPOLOGY": "shop", "STANDBY_LAYER": "data", "STANDBY_REGION": P,
                 "STANDBY_SETTINGS": json.dumps(settings),
                 "STANDBY_PROBES": json.dumps([{"scope": "data", "kind": "http",
                                                "url": "http://127.0.0.1:1/"}]),
                 "STANDBY_SWITCH": json.dumps([{"scope": "data", "kind": "tencent_pointer_all",
                                                "key": "data",
                                                "values": {"primary": P, "standby": S}}]),
                 "STANDBY_STATE_STORE": "mysql", "STANDBY_STATE_DSN_SECRET": "state",
                 "STANDBY_STATE_REGION": S, **extra})


def test_ses_alert_is_a_templated_send_email_the_stub_accepts(stub: TencentStub) -> None:
    cfg = config(STANDBY_ALERT_EMAILS=json.dumps(["oncall@example.com", "lead@example.com"]))
    channels = tencent_channels(api(stub), cfg, {"STANDBY_ALERT_SES": SES_ENV})
    assert set(channels) == {"ses"}
    ok, detail = channels["ses"](ALERT)
    assert ok, detail
    [mail] = stub.services.alerts.mails
    assert mail["to"] == ["oncall@example.com", "lead@example.com"]
    assert (mail["from"], mail["template"], mail["region"]) == (SENDER, 100001, P)
    assert mail["subject"] == ALERT.title
    assert mail["data"]["title"] == ALERT.title and "token: 7" in mail["data"]["text"]
    assert ("AKIDmonitor", "ses", "SendEmail") in stub.calls and not stub.refused


def test_ses_refusals_are_reported_not_raised(stub: TencentStub) -> None:
    cfg = config(STANDBY_ALERT_EMAILS=json.dumps(["oncall@example.com"]))
    unknown = json.dumps({"from": SENDER, "template_id": 999, "region": P})
    ok, detail = tencent_channels(api(stub), cfg, {"STANDBY_ALERT_SES": unknown})["ses"](ALERT)
    assert not ok and "FailedOperation.TemplateNotFound" in detail
    # A role the deploy did not grant ses:SendEmail is refused by CAM, as Tencent does.
    mute = api(stub, "AKIDmute", "mute-key", None)
    ok, detail = tencent_channels(mute, cfg, {"STANDBY_ALERT_SES": SES_ENV})["ses"](ALERT)
    assert not ok and "AuthFailure.UnauthorizedOperation" in detail
    assert stub.services.alerts.mails == []


def test_stub_checks_the_send_email_and_send_sms_request_shape(stub: TencentStub) -> None:
    from components.runtime.tencent.client import TencentApiError

    a = api(stub)
    good: dict[str, Any] = {"FromEmailAddress": SENDER, "Destination": ["oncall@example.com"],
                            "Subject": "s", "Template": {
                                "TemplateID": 100001, "TemplateData": json.dumps(
                                    {"title": "t", "text": "x", "severity": "info"})}}
    assert a.call("ses", "2020-10-02", P, "SendEmail", good)["MessageId"]
    cases: list[tuple[dict[str, Any], str]] = [
        ({k: v for k, v in good.items() if k != "Subject"}, "MissingParameter"),
        ({**good, "Destination": "oncall@example.com"}, "InvalidParameter"),
        ({**good, "Template": {"TemplateID": 100001}}, "MissingParameter"),
        ({**good, "Template": {"TemplateID": 100001, "TemplateData": "{}"}},
         "InvalidParameterValue"),
        ({**good, "FromEmailAddress": "other@example.com"}, "FailedOperation.IncorrectSender"),
        ({**good, "Bogus": 1}, "UnknownParameter"),
    ]
    for params, code in cases:
        with pytest.raises(TencentApiError) as exc:
            a.call("ses", "2020-10-02", P, "SendEmail", params)
        assert exc.value.code == code, (params, exc.value)
    with pytest.raises(TencentApiError) as exc:
        a.call("sms", "2021-01-11", P, "SendSms", {"PhoneNumberSet": ["+8613800000000"],
                                                    "SmsSdkAppId": "1400000009",
                                                    "TemplateId": "2000001"})
    assert exc.value.code == "InvalidParameterValue.SdkAppIdNotExist"
    assert len(stub.services.alerts.mails) == 1


def test_sms_alert_sends_the_title_to_every_number(stub: TencentStub) -> None:
    cfg = config(STANDBY_ALERT_SMS=json.dumps(["+8613800000000", "+8613900000000"]))
    channels = tencent_channels(api(stub), cfg, {"STANDBY_ALERT_SMS_SENDER": SMS_ENV})
    ok, detail = channels["sms"](ALERT)
    assert ok, detail
    assert [t["to"] for t in stub.services.alerts.texts] == ["+8613800000000", "+8613900000000"]
    assert stub.services.alerts.texts[0]["params"] == [ALERT.title[:20]]
    # An unapproved sign fails per number in SendStatusSet: the channel says it failed.
    bad = json.dumps({**json.loads(SMS_ENV), "sign_name": "Other"})
    ok, detail = tencent_channels(api(stub), cfg, {"STANDBY_ALERT_SMS_SENDER": bad})["sms"](ALERT)
    assert not ok and "SignatureIncorrectOrUnapproved" in detail


def test_recipients_without_their_sender_are_a_config_error(stub: TencentStub) -> None:
    cfg = config(STANDBY_ALERT_EMAILS=json.dumps(["oncall@example.com"]),
                 STANDBY_ALERT_SMS=json.dumps(["+8613800000000"]))
    with pytest.raises(ConfigError) as exc:
        tencent_channels(api(stub), cfg, {
            "STANDBY_ALERT_SMS_SENDER": json.dumps({"sdk_app_id": "x", "template_id": "1",
                                                    "sign_name": "S", "region": "us-east-1"})})
    assert exc.value.problems == [
        "STANDBY_ALERT_SES: missing; needs {from, template_id, region}",
        "STANDBY_ALERT_SMS_SENDER.sdk_app_id: 'x'; allowed: digits",
        "STANDBY_ALERT_SMS_SENDER.region: 'us-east-1'; allowed: ap-guangzhou, ap-beijing, "
        "ap-nanjing"]


def test_webhook_url_comes_from_its_ssm_secret(stub: TencentStub) -> None:
    """The URL is read with the monitor's own credential from the secret the deploy wrote;
    an unreachable receiver is a failed delivery, not an exception."""
    stub.services.add_secret(P, "shop-webhook-0", "http://127.0.0.1:9/hook")
    hooks = [{"kind": "wecom", "secret_name": "shop-webhook-0", "region": P}]
    cfg = config(STANDBY_WEBHOOKS=json.dumps(hooks))
    [(name, send)] = tencent_channels(api(stub), cfg, {}).items()
    ok, detail = send(ALERT)
    assert name == "wecom-0" and not ok and "URLError" in detail
    assert ("AKIDmonitor", "ssm", "GetSecretValue") in stub.calls and not stub.refused


# -- the CDB SQL probe on a real MariaDB pair ---------------------------------------------------


@pytest.fixture(scope="module")
def maria() -> Iterator[MariaPair]:
    with MariaPair() as pair:
        yield pair


def _cdb(stub: TencentStub, maria: MariaPair) -> dict[str, Any]:
    svc = stub.services
    svc.add_instance("cdb-p", P, vip="127.0.0.1", vport=maria.servers["primary"].port)
    svc.add_instance("cdb-dr", S, master="cdb-p", vip="127.0.0.1",
                     vport=maria.servers["standby"].port)
    svc.add_instance("cdb-other", P, vip="127.0.0.1", vport=maria.servers["primary"].port)
    svc.add_secret(P, "shop-db-dsn", json.dumps({
        "engine": "mysql", "host": "10.0.0.9", "port": 3306, "user": ADMIN,
        "password": maria.admin_password, "database": maria.database}))
    return {"scope": "data", "kind": "cdb_sql", "engine": "mysql", "database": maria.database,
            "secret_name": "shop-db-dsn", "secret_region": P}


def test_cdb_sql_probe_finds_each_instance_by_id(stub: TencentStub, maria: MariaPair) -> None:
    """Regression: the data monitor's SQL probes had no host or port (the DR instance has no
    address output) and no Tencent probe ran them; config.load refused the environment."""
    base = _cdb(stub, maria)
    probe = cdb_sql_probe(api(stub))
    primary = probe({**base, "side": "primary", "region": P, "instance_id": "cdb-p"}, 3.0)
    standby = probe({**base, "side": "standby", "region": S, "instance_id": "cdb-dr"}, 3.0)
    assert primary.ok and primary.data["writable"] and not primary.data["replica"], primary
    assert standby.ok and standby.data["replica"] and standby.data["replicating"], standby
    assert standby.data["lag_s"] is not None and not standby.data["writable"]
    # CAM allows the look-up of this stack's instances only.
    other = probe({**base, "side": "primary", "region": P, "instance_id": "cdb-other"}, 3.0)
    assert not other.ok and "AuthFailure.UnauthorizedOperation" in other.detail
    assert stub.refused == {"AuthFailure.UnauthorizedOperation": 1}


def test_cdb_sql_probe_of_an_unknown_instance_fails_naming_it(
        stub: TencentStub, maria: MariaPair) -> None:
    base = _cdb(stub, maria)
    stub.services.instances.pop("cdb-dr")
    r = cdb_sql_probe(api(stub))({**base, "side": "standby", "region": S,
                                  "instance_id": "cdb-dr"}, 3.0)
    assert not r.ok and "cdb-dr not found in ap-shanghai" in r.detail


# -- the monitor handler sends its alerts ---------------------------------------------------


def _monitor_env(stub: TencentStub, maria: MariaPair, **extra: str) -> dict[str, str]:
    stub.services.add_secret(S, "shop-standby-state-dsn", json.dumps({
        "engine": "mysql", "host": "127.0.0.1", "port": maria.servers["primary"].port,
        "user": ADMIN, "password": maria.admin_password, "database": maria.database}))
    probes = [{"scope": "logic-gz", "kind": "scf_invoke", "side": side, "region": P,
               "namespace": "default", "function": fn}
              for side, fn in (("primary", "shop-wrap-a"), ("standby", "shop-wrap-b"))]
    switch = [{"scope": "logic-gz", "kind": "tencent_pointer", "key": f"wrapper:{P}",
               "values": {"primary": "primary", "standby": "standby"}}]
    settings = {"interval_s": 1, "timeout_s": 2, "failure_threshold": 1,
                "recovery_threshold": 2, "cooldown_s": 0, "quorum": 1}
    return {"TENCENTCLOUD_SECRETID": "AKIDmonitor", "TENCENTCLOUD_SECRETKEY": "monitor-key",
            "TENCENTCLOUD_SESSIONTOKEN": "sts-token", "STANDBY_TENCENT_ENDPOINT": stub.endpoint,
            "STANDBY_TOPOLOGY": "shop", "STANDBY_LAYER": "logic", "STANDBY_REGION": P,
            "STANDBY_SETTINGS": json.dumps(settings), "STANDBY_PROBES": json.dumps(probes),
            "STANDBY_SWITCH": json.dumps(switch), "STANDBY_STATE_STORE": "mysql",
            "STANDBY_STATE_DSN_SECRET": "shop-standby-state-dsn", "STANDBY_STATE_REGION": S,
            "STANDBY_LOOP_S": "0", "STANDBY_ALERT_EMAILS": json.dumps(["oncall@example.com"]),
            "STANDBY_ALERT_SES": SES_ENV, **extra}


def test_monitor_switch_is_mailed_through_ses(stub: TencentStub, maria: MariaPair) -> None:
    """The SCF monitor handler switches the wrapper pointer and its alert goes out as a
    templated SES mail, signed with the monitor's credential and allowed by its policy."""
    from components.runtime.tencent.monitor import handler

    def down(event: Any) -> Any:
        raise RuntimeError("wrapper crashed")

    stub.services.add_function(P, "shop-wrap-a", down)
    stub.services.add_function(P, "shop-wrap-b", lambda e: {"ok": True})
    summary = handler({"source": "manual", "layer": "logic", "rounds": 1},
                      {"request_id": "req-mail", "time_limit_in_ms": 30000},
                      env=_monitor_env(stub, maria))
    assert [s["scope"] for s in summary["switches"]] == ["logic-gz"], summary
    assert summary["alerts_delivered"] >= 1 and summary["alerts_failed"] == 0, summary
    assert stub.services.alerts.mails, "no mail sent"
    mail = stub.services.alerts.mails[0]
    assert mail["to"] == ["oncall@example.com"] and "[shop]" in mail["subject"]
    assert "logic-gz" in mail["data"]["text"]
    assert not stub.refused


def test_monitor_with_recipients_but_no_sender_probes_nothing(
        stub: TencentStub, maria: MariaPair) -> None:
    from components.runtime.tencent.monitor import handler

    e = _monitor_env(stub, maria)
    del e["STANDBY_ALERT_SES"]
    with pytest.raises(ConfigError, match="STANDBY_ALERT_SES: missing"):
        handler({"source": "manual", "layer": "logic", "rounds": 1}, {}, env=e)
    assert not [c for c in stub.calls if c[1] == "scf"]  # nothing probed
