"""Alert channels on Tencent Cloud: webhooks whose URLs are SSM secrets, SES mail and SMS.

Cloud Monitor has no "send this message now" API, so the monitor sends itself, through the
signed client and its own role (the deploy grants ``ses:SendEmail``/``sms:SendSms`` only when
the stack has recipients):

* SES ``SendEmail`` (API 2020-10-02): ``FromEmailAddress``, ``Destination`` (at most 50),
  ``Subject`` and ``Template`` ``{"TemplateID", "TemplateData"}``; SES sends API mail only
  with an approved template, so the deploy passes the sender and template id in
  ``STANDBY_ALERT_SES`` (``{"from", "template_id", "region"}``). The template's variables
  are ``title``, ``text`` and ``severity``.
* SMS ``SendSms`` (API 2021-01-11): ``PhoneNumberSet`` (E.164, at most 200),
  ``SmsSdkAppId``, ``TemplateId``, ``SignName`` and ``TemplateParamSet``; an approved
  template and sign are needed, so ``STANDBY_ALERT_SMS_SENDER`` is
  ``{"sdk_app_id", "template_id", "sign_name", "region"}``. The template takes one
  parameter: the alert's title, cut to ``SMS_PARAM_MAX`` characters (Tencent SMS limits a
  variable's length by template type; 20 is UNCONFIRMED against an approved template, and
  the detail is in the mail and the webhooks).

A send is successful only when the API answered without error and, for SMS, every number's
``SendStatusSet`` entry says ``Ok``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from components.runtime.config import MonitorConfig, Webhook
from components.runtime.errors import ConfigError
from components.runtime.notify import Alert, Sender, post_webhook
from components.runtime.tencent.client import TencentApi, TencentApiError

SES = ("ses", "2020-10-02")
SMS = ("sms", "2021-01-11")
SSM = ("ssm", "2019-09-23")
WEBHOOK_TIMEOUT_S = 3.0
SES_REGIONS = ("ap-guangzhou", "ap-hongkong")
SMS_REGIONS = ("ap-guangzhou", "ap-beijing", "ap-nanjing")
SES_MAX_DESTINATIONS = 50
SMS_MAX_NUMBERS = 200
SMS_PARAM_MAX = 20
SES_ENV = "STANDBY_ALERT_SES"
SMS_ENV = "STANDBY_ALERT_SMS_SENDER"


@dataclass(frozen=True)
class SesSender:
    from_address: str
    template_id: int
    region: str


@dataclass(frozen=True)
class SmsSender:
    sdk_app_id: str
    template_id: str
    sign_name: str
    region: str


def _doc(env: Mapping[str, str], name: str, keys: tuple[str, ...],
         problems: list[str]) -> dict[str, Any] | None:
    raw = env.get(name)
    if not raw:
        problems.append(f"{name}: missing; needs {{{', '.join(keys)}}}")
        return None
    try:
        doc = json.loads(raw)
    except ValueError:
        problems.append(f"{name}: not valid JSON")
        return None
    if not isinstance(doc, dict):
        problems.append(f"{name}: must be a JSON object with {', '.join(keys)}")
        return None
    missing = [k for k in keys if doc.get(k) in (None, "")]
    unknown = sorted(set(doc) - set(keys))
    if missing or unknown:
        problems.append(f"{name}: " + "; ".join(
            ([f"missing {', '.join(missing)}"] if missing else [])
            + ([f"unknown {', '.join(unknown)}"] if unknown else []))
            + f"; allowed: {', '.join(keys)}")
        return None
    return doc


def ses_sender_config(env: Mapping[str, str], out: list[str]) -> SesSender | None:
    problems: list[str] = []
    doc = _doc(env, SES_ENV, ("from", "template_id", "region"), problems)
    out += problems
    if doc is None:
        return None
    tid = doc["template_id"]
    if isinstance(tid, bool) or not isinstance(tid, int) or tid < 1:
        problems.append(f"{SES_ENV}.template_id: {tid!r}; allowed: a positive integer (the "
                        "approved SES template's id)")
    if doc["region"] not in SES_REGIONS:
        problems.append(f"{SES_ENV}.region: {doc['region']!r}; allowed: "
                        f"{', '.join(SES_REGIONS)}")
    if not isinstance(doc["from"], str) or "@" not in doc["from"]:
        problems.append(f"{SES_ENV}.from: {doc['from']!r}; allowed: a verified sender address")
    out += problems
    if problems:
        return None
    return SesSender(doc["from"], tid, doc["region"])


def sms_sender_config(env: Mapping[str, str], out: list[str]) -> SmsSender | None:
    problems: list[str] = []
    doc = _doc(env, SMS_ENV, ("sdk_app_id", "template_id", "sign_name", "region"), problems)
    out += problems
    if doc is None:
        return None
    for key in ("sdk_app_id", "template_id"):
        if not str(doc[key]).isdigit():
            problems.append(f"{SMS_ENV}.{key}: {doc[key]!r}; allowed: digits")
    if doc["region"] not in SMS_REGIONS:
        problems.append(f"{SMS_ENV}.region: {doc['region']!r}; allowed: "
                        f"{', '.join(SMS_REGIONS)}")
    out += problems
    if problems:
        return None
    return SmsSender(str(doc["sdk_app_id"]), str(doc["template_id"]), str(doc["sign_name"]),
                     str(doc["region"]))


def ses_sender(api: TencentApi, sender: SesSender, to: list[str]) -> Sender:
    def send(alert: Alert) -> tuple[bool, str]:
        data = {"title": alert.title, "text": alert.markdown(), "severity": alert.severity}
        sent = []
        # SES takes at most 50 destinations per call.
        for i in range(0, len(to), SES_MAX_DESTINATIONS):
            try:
                out = api.call(*SES, sender.region, "SendEmail", {
                    "FromEmailAddress": sender.from_address,
                    "Destination": to[i:i + SES_MAX_DESTINATIONS],
                    "Subject": alert.title[:200],
                    "Template": {"TemplateID": sender.template_id,
                                 "TemplateData": json.dumps(data, ensure_ascii=False)}})
            except TencentApiError as exc:
                return False, f"SendEmail: {exc.code}: {exc.message}"[:300]
            sent.append(str(out.get("MessageId", "")))
        return True, f"mailed ({', '.join(sent)})"

    return send


def sms_sender(api: TencentApi, sender: SmsSender, numbers: list[str]) -> Sender:
    def send(alert: Alert) -> tuple[bool, str]:
        failed: list[str] = []
        for i in range(0, len(numbers), SMS_MAX_NUMBERS):
            try:
                out = api.call(*SMS, sender.region, "SendSms", {
                    "PhoneNumberSet": numbers[i:i + SMS_MAX_NUMBERS],
                    "SmsSdkAppId": sender.sdk_app_id, "TemplateId": sender.template_id,
                    "SignName": sender.sign_name,
                    "TemplateParamSet": [alert.title[:SMS_PARAM_MAX]]})
            except TencentApiError as exc:
                return False, f"SendSms: {exc.code}: {exc.message}"[:300]
            failed += [f"{s.get('PhoneNumber')}: {s.get('Code')}"
                       for s in out.get("SendStatusSet") or [] if s.get("Code") != "Ok"]
        if failed:
            return False, f"SendSms refused for {', '.join(failed)}"[:300]
        return True, f"texted {len(numbers)} number(s)"

    return send


def webhook_sender(api: TencentApi, hook: Webhook) -> Sender:
    """The URL is read once, on first use, from the SSM secret (version ``v1``, as the
    deploy writes it); it is never logged."""
    cache: dict[str, str] = {}
    secret = hook.secret

    def send(alert: Alert) -> tuple[bool, str]:
        if "url" not in cache:
            if secret is None or not secret.region:
                return False, "webhook: no SSM secret and region to read the URL from"
            try:
                out = api.call(*SSM, secret.region, "GetSecretValue",
                               {"SecretName": secret.ref, "VersionId": "v1"})
            except TencentApiError as exc:
                return False, f"webhook URL secret {secret.ref}: {exc.code}"
            cache["url"] = str(out.get("SecretString") or "")
        return post_webhook(hook.kind, cache["url"], alert, WEBHOOK_TIMEOUT_S)

    return send


def tencent_channels(api: TencentApi, cfg: MonitorConfig,
                     env: Mapping[str, str]) -> dict[str, Sender]:
    """Every channel the configuration names; ``ConfigError`` (before anything is probed)
    when recipients are given without the sender their channel needs."""
    problems: list[str] = []
    channels: dict[str, Sender] = {}
    for i, hook in enumerate(cfg.webhooks):
        if hook.secret is None or not hook.secret.region:
            problems.append(f"STANDBY_WEBHOOKS[{i}]: on Tencent the URL is an SSM secret: "
                            "give secret_name and region")
        channels[f"{hook.kind}-{i}"] = webhook_sender(api, hook)
    if cfg.emails:
        ses = ses_sender_config(env, problems)
        if ses is not None:
            channels["ses"] = ses_sender(api, ses, list(cfg.emails))
    if cfg.sms:
        sms = sms_sender_config(env, problems)
        if sms is not None:
            channels["sms"] = sms_sender(api, sms, list(cfg.sms))
    if problems:
        raise ConfigError(problems)
    return channels
