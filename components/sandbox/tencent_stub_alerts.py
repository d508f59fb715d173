"""The stub's alert services: SES ``SendEmail`` and SMS ``SendSms``, each checked against its
API doc page and version (request shape, verified sender, approved template and sign), with
what was sent kept for the tests and the drill. Both authorise at the service level only
(neither has resource-level CAM), so their CAM resource is ``*``."""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass, field
from threading import Lock
from typing import Any

from components.sandbox.tencent_stub import Action, ApiError, P, Request

SES, SMS = "2020-10-02", "2021-01-11"
_E164 = re.compile(r"^\+[1-9]\d{6,14}$")
_TEMPLATE_VAR = re.compile(r"{{\s*(\w+)\s*}}")


@dataclass
class Alerts:
    ses_senders: set[str] = field(default_factory=set)
    """Verified SES sender addresses."""
    ses_templates: dict[int, str] = field(default_factory=dict)
    """Approved SES templates: id -> body with ``{{variable}}`` placeholders."""
    mails: list[dict[str, Any]] = field(default_factory=list)
    sms_apps: set[str] = field(default_factory=set)
    sms_templates: dict[str, int] = field(default_factory=dict)
    """Approved SMS templates: id -> number of parameters."""
    sms_signs: set[str] = field(default_factory=set)
    texts: list[dict[str, Any]] = field(default_factory=list)

    def send_email(self, req: Request, lock: Lock) -> dict[str, Any]:
        """SES SendEmail, API 2020-10-02 (doc page "SendEmail", cloud.tencent.com/document/
        api/1288/51034): FromEmailAddress, Destination (1..50 addresses), Subject, and a
        Template {TemplateID, TemplateData (a JSON object of the template's variables)};
        API mail goes out only from a verified sender with an approved template."""
        p = req.params
        to = p["Destination"]
        if not 1 <= len(to) <= 50 or not all(isinstance(a, str) and "@" in a for a in to):
            raise ApiError("InvalidParameterValue", "Destination: 1..50 email addresses")
        sender = p["FromEmailAddress"].rpartition("<")[2].rstrip(">").strip()
        if sender not in self.ses_senders:
            raise ApiError("FailedOperation.IncorrectSender",
                           f"sender {sender} is not a verified sender address")
        t = p.get("Template")
        if not isinstance(t, dict) or set(t) != {"TemplateID", "TemplateData"}:
            raise ApiError("MissingParameter", "Template: needs exactly TemplateID and "
                           "TemplateData (sending without a template is not enabled)")
        tid, data = t["TemplateID"], t["TemplateData"]
        if isinstance(tid, bool) or not isinstance(tid, int) or not isinstance(data, str):
            raise ApiError("InvalidParameter", "Template.TemplateID must be an Integer and "
                           "Template.TemplateData a String")
        if tid not in self.ses_templates:
            raise ApiError("FailedOperation.TemplateNotFound", f"template {tid} not found")
        try:
            values = json.loads(data)
        except ValueError:
            values = None
        if not isinstance(values, dict):
            raise ApiError("InvalidParameterValue", "Template.TemplateData: a JSON object")
        missing = sorted(set(_TEMPLATE_VAR.findall(self.ses_templates[tid])) - set(values))
        if missing:
            raise ApiError("InvalidParameterValue", f"Template.TemplateData lacks the "
                           f"template's variable(s) {', '.join(missing)}")
        with lock:
            self.mails.append({"from": sender, "to": list(to), "subject": p["Subject"],
                               "template": tid, "data": values, "region": req.region})
        return {"MessageId": f"qcloudses-{uuid.uuid4().hex[:20]}"}

    def send_sms(self, req: Request, lock: Lock) -> dict[str, Any]:
        """SMS SendSms, API 2021-01-11 (doc page "SendSms", cloud.tencent.com/document/api/
        382/55981): PhoneNumberSet (1..200, E.164), SmsSdkAppId, TemplateId, SignName,
        TemplateParamSet (as many as the approved template has). Per-number outcomes are in
        SendStatusSet (Code "Ok" on success)."""
        p = req.params
        numbers = p["PhoneNumberSet"]
        if not 1 <= len(numbers) <= 200:
            raise ApiError("InvalidParameterValue", "PhoneNumberSet: 1..200 numbers")
        if p["SmsSdkAppId"] not in self.sms_apps:
            raise ApiError("InvalidParameterValue.SdkAppIdNotExist",
                           f"SmsSdkAppId {p['SmsSdkAppId']} does not exist")
        params = p.get("TemplateParamSet", [])
        code = "Ok"
        if p["TemplateId"] not in self.sms_templates:
            code = "FailedOperation.TemplateIncorrectOrUnapproved"
        elif p.get("SignName") not in self.sms_signs:
            code = "FailedOperation.SignatureIncorrectOrUnapproved"
        elif len(params) != self.sms_templates[p["TemplateId"]]:
            code = "FailedOperation.TemplateParamSetNotMatchApprovedTemplate"
        out = []
        for n in numbers:
            c = code if _E164.match(str(n)) else "InvalidParameterValue.IncorrectPhoneNumber"
            out.append({"SerialNo": uuid.uuid4().hex[:16], "PhoneNumber": n, "Fee": 1,
                        "SessionContext": "", "Code": c,
                        "Message": "send success" if c == "Ok" else c, "IsoCode": "CN"})
            if c == "Ok":
                with lock:
                    self.texts.append({"to": n, "template": p["TemplateId"],
                                       "params": list(params), "sign": p.get("SignName")})
        return {"SendStatusSet": out}


def alert_actions(alerts: Alerts, lock: Lock) -> list[Action]:
    def service_wide(req: Request) -> str:
        return "*"

    s, i, a, o = "String", "Integer", "Array", "Object"
    return [
        Action("ses", SES, "SendEmail",
               {"FromEmailAddress": P(s, True), "Destination": P(a, True),
                "Subject": P(s, True), "ReplyToAddresses": P(s), "Cc": P(a), "Bcc": P(a),
                "Template": P(o), "Simple": P(o), "Attachments": P(a),
                "Unsubscribe": P(s), "TriggerType": P(i, False, (0, 1)),
                "SmtpMessageId": P(s), "SmtpHeaders": P(s), "HeaderFrom": P(s)},
               lambda req: alerts.send_email(req, lock), service_wide),
        Action("sms", SMS, "SendSms",
               {"PhoneNumberSet": P(a, True), "SmsSdkAppId": P(s, True),
                "TemplateId": P(s, True), "SignName": P(s), "TemplateParamSet": P(a),
                "ExtendCode": P(s), "SessionContext": P(s), "SenderId": P(s)},
               lambda req: alerts.send_sms(req, lock), service_wide),
    ]
