"""The Tencent contract stub checked with the real SDK (``tencentcloud-sdk-python-common``
``CommonClient``) over loopback HTTP: signatures right and wrong, stale timestamps, wrong
service scope, bad parameters, CAM denials, and successful calls that change state."""

from __future__ import annotations

import datetime
import hashlib
import json
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from tencentcloud.common import credential
from tencentcloud.common.common_client import CommonClient
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException
from tencentcloud.common.profile.client_profile import ClientProfile
from tencentcloud.common.profile.http_profile import HttpProfile

from components.sandbox.tencent_stub import TencentStub, allowed, check_policy, signature

ALL = {"version": "2.0", "statement": [{"effect": "allow", "action": "*", "resource": "*"}]}
DNS_ONLY = {"version": "2.0", "statement": [
    {"effect": "allow", "action": ["name/dnspod:DescribeRecordList"], "resource": "*"}]}


@pytest.fixture
def stub(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[TencentStub, str]]:
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    with TencentStub() as s:
        s.add_key("AKIDadmin", "admin-key", ALL)
        s.add_key("AKIDdns", "dns-key", DNS_ONLY)
        s.add_key("AKIDtemp", "temp-key", ALL, token="session-token")
        s.services.add_record("example.com", "www", "默认", "1.1.1.1", "ENABLE")
        s.services.add_record("example.com", "www", "默认", "2.2.2.2", "DISABLE")
        yield s, s.start()


def client(endpoint: str, service: str, version: str, region: str = "",
           sid: str = "AKIDadmin", key: str = "admin-key", token: str | None = None) -> Any:
    hp = HttpProfile(endpoint=endpoint, protocol="http", reqTimeout=10)
    return CommonClient(service, version, credential.Credential(sid, key, token), region,
                        ClientProfile(httpProfile=hp))


def dns(endpoint: str, **kw: Any) -> Any:
    return client(endpoint, "dnspod", "2021-03-23", **kw)


def code_of(fn: Any) -> str:
    with pytest.raises(TencentCloudSDKException) as exc:
        fn()
    return str(exc.value.get_code())


def test_a_signed_sdk_call_succeeds_and_changes_state(stub: tuple[TencentStub, str]) -> None:
    s, ep = stub
    out = dns(ep).call_json("ModifyRecordStatus", {"Domain": "example.com", "RecordId": 1001,
                                                   "Status": "ENABLE"})
    assert out["Response"]["RecordId"] == 1001 and out["Response"]["RequestId"]
    listed = dns(ep).call_json("DescribeRecordList", {"Domain": "example.com",
                                                      "Subdomain": "www", "ErrorOnEmpty": "no"})
    assert [r["Status"] for r in listed["Response"]["RecordList"]] == ["ENABLE", "ENABLE"]
    assert s.checked == 2 and not s.refused
    assert s.calls == [("AKIDadmin", "dnspod", "ModifyRecordStatus"),
                       ("AKIDadmin", "dnspod", "DescribeRecordList")]


def test_wrong_secret_key_is_a_signature_failure(stub: tuple[TencentStub, str]) -> None:
    s, ep = stub
    assert code_of(lambda: dns(ep, key="not-the-key").call_json(
        "DescribeRecordList", {"Domain": "example.com"})) == "AuthFailure.SignatureFailure"
    assert code_of(lambda: dns(ep, sid="AKIDnobody").call_json(
        "DescribeRecordList", {"Domain": "example.com"})) == "AuthFailure.SecretIdNotFound"
    assert s.refused == {"AuthFailure.SignatureFailure": 1, "AuthFailure.SecretIdNotFound": 1}
    assert s.calls == []


def test_temporary_key_needs_its_token(stub: tuple[TencentStub, str]) -> None:
    _, ep = stub
    assert code_of(lambda: dns(ep, sid="AKIDtemp", key="temp-key").call_json(
        "DescribeRecordList", {"Domain": "example.com"})) == "AuthFailure.TokenFailure"
    out = dns(ep, sid="AKIDtemp", key="temp-key", token="session-token").call_json(
        "DescribeRecordList", {"Domain": "example.com"})
    assert out["Response"]["RecordCountInfo"]["TotalCount"] == 2


def test_stale_timestamp_is_refused_as_expired(stub: tuple[TencentStub, str]) -> None:
    s, ep = stub
    real = s.clock
    s.clock = lambda: real() + 301  # the server's clock is 301 s ahead of the signer's
    assert code_of(lambda: dns(ep).call_json("DescribeRecordList", {"Domain": "example.com"})
                   ) == "AuthFailure.SignatureExpire"
    s.clock = lambda: real() + 250  # within 300 s: accepted
    dns(ep).call_json("DescribeRecordList", {"Domain": "example.com"})


def test_a_signature_for_another_service_is_refused(stub: tuple[TencentStub, str]) -> None:
    # A correctly signed request whose credential scope names scf, sent as a DNSPod action.
    _, ep = stub
    body = json.dumps({"Domain": "example.com"}).encode()
    ts = int(time.time())
    date = datetime.datetime.fromtimestamp(ts, datetime.UTC).strftime("%Y-%m-%d")
    canonical = (f"POST\n/\n\ncontent-type:application/json\nhost:{ep}\n\ncontent-type;host\n"
                 f"{hashlib.sha256(body).hexdigest()}")
    to_sign = (f"TC3-HMAC-SHA256\n{ts}\n{date}/scf/tc3_request\n"
               f"{hashlib.sha256(canonical.encode()).hexdigest()}")
    sig = signature("admin-key", date, "scf", to_sign)
    req = urllib.request.Request(f"http://{ep}/", data=body, method="POST", headers={
        "Content-Type": "application/json", "Host": ep, "X-TC-Action": "DescribeRecordList",
        "X-TC-Version": "2021-03-23", "X-TC-Timestamp": str(ts),
        "Authorization": f"TC3-HMAC-SHA256 Credential=AKIDadmin/{date}/scf/tc3_request, "
                         f"SignedHeaders=content-type;host, Signature={sig}"})
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(req, timeout=10) as resp:
        assert resp.headers["Content-Type"] == "application/json"
        answer = json.loads(resp.read())["Response"]
    assert answer["Error"]["Code"] == "AuthFailure.SignatureFailure"
    assert "dnspod" in answer["Error"]["Message"]


def test_bad_parameters_name_what_is_wrong(stub: tuple[TencentStub, str]) -> None:
    s, ep = stub
    c = dns(ep)
    assert code_of(lambda: c.call_json("ModifyRecordStatus", {"Domain": "example.com",
                                                              "Status": "ENABLE"})
                   ) == "MissingParameter"
    assert code_of(lambda: c.call_json("ModifyRecordStatus", {
        "Domain": "example.com", "RecordId": "1001", "Status": "ENABLE"})) == "InvalidParameter"
    assert code_of(lambda: c.call_json("ModifyRecordStatus", {
        "Domain": "example.com", "RecordId": 1001, "Status": "PAUSED"})
    ) == "InvalidParameterValue"
    assert code_of(lambda: c.call_json("ModifyRecordStatus", {
        "Domain": "example.com", "RecordId": 1001, "Status": "ENABLE", "Ttl": 5})
    ) == "UnknownParameter"
    assert code_of(lambda: c.call_json("ModifyRecordStatus", {
        "Domain": "example.com", "RecordId": 9, "Status": "ENABLE"})
    ) == "InvalidParameter.RecordIdInvalid"
    assert code_of(lambda: c.call_json("DescribeRecordList", {
        "Domain": "example.com", "Subdomain": "none"})) == "ResourceNotFound.NoDataOfRecord"
    assert code_of(lambda: c.call_json("NoSuchThing", {})) == "InvalidAction"
    assert code_of(lambda: client(ep, "dnspod", "2018-08-26").call_json(
        "DescribeRecordList", {"Domain": "example.com"})) == "NoSuchVersion"
    # SCF is regional: no X-TC-Region, no call.
    assert code_of(lambda: client(ep, "scf", "2018-04-16").call_json(
        "GetCustomDomain", {"Domain": "x.example.com"})) == "MissingParameter"
    assert sum(s.refused.values()) == 9 and s.checked == 9
    # Only the two that passed signature, shape and CAM reached a handler (which refused).
    assert s.calls == [("AKIDadmin", "dnspod", "ModifyRecordStatus"),
                       ("AKIDadmin", "dnspod", "DescribeRecordList")]


def test_cam_policy_denies_what_it_does_not_allow(stub: tuple[TencentStub, str]) -> None:
    s, ep = stub
    c = dns(ep, sid="AKIDdns", key="dns-key")
    c.call_json("DescribeRecordList", {"Domain": "example.com"})
    assert code_of(lambda: c.call_json("ModifyRecordStatus", {
        "Domain": "example.com", "RecordId": 1000, "Status": "DISABLE"})
    ) == "AuthFailure.UnauthorizedOperation"
    assert s.services.records[1000].status == "ENABLE"  # refused: nothing changed
    assert s.refused == {"AuthFailure.UnauthorizedOperation": 1}


def test_cam_evaluation_deny_wins_and_resources_match() -> None:
    pol = {"version": "2.0", "statement": [
        {"effect": "allow", "action": "name/cdb:*", "resource": "qcs::cdb:ap-guangzhou:*"},
        {"effect": "deny", "action": "name/cdb:SwitchDrInstanceToMaster", "resource": "*"}]}
    check_policy(pol)
    short = {"version": "2.0", "statement": [{"effect": "allow", "action": ["cdb:Describe*"],
                                               "resource": "*"}]}
    assert allowed(short, "name/cdb:DescribeDBInstances", "qcs::cdb:x")  # prefix optional
    assert not allowed(short, "name/cdb:SwitchDrInstanceToMaster", "qcs::cdb:x")
    assert allowed(pol, "name/cdb:DescribeDBInstances", "qcs::cdb:ap-guangzhou:uin/1:x/y")
    assert not allowed(pol, "name/cdb:DescribeDBInstances", "qcs::cdb:ap-shanghai:uin/1:x/y")
    assert not allowed(pol, "name/cdb:SwitchDrInstanceToMaster", "qcs::cdb:ap-guangzhou:a")
    with pytest.raises(ValueError, match="statement 0"):
        check_policy({"version": "2.0", "statement": [{"effect": "maybe", "action": "*",
                                                       "resource": "*"}]})
    with pytest.raises(ValueError, match="version"):
        check_policy({"Statement": []})


def test_cos_checks_its_own_sha1_signature_time_and_cam(stub: tuple[TencentStub, str]) -> None:
    from qcloud_cos import CosConfig, CosS3Client
    from qcloud_cos.cos_exception import CosServiceError

    s, _ = stub
    s.cos.add_bucket("ap-guangzhou", "shop-1250000000")
    ip, _, port = s.cos.endpoint.rpartition(":")

    def cos(sid: str, key: str) -> Any:
        return CosS3Client(CosConfig(Region="ap-guangzhou", SecretId=sid, SecretKey=key,
                                     IP=ip, Port=int(port), Scheme="http"), retry=0)

    cos("AKIDadmin", "admin-key").put_object(Bucket="shop-1250000000", Key="a/b c", Body=b"1")
    assert s.cos.buckets[("ap-guangzhou", "shop-1250000000")] == {"a/b c": b"1"}

    def code(fn: Any) -> str:
        with pytest.raises(CosServiceError) as exc:
            fn()
        return str(exc.value.get_error_code())

    assert code(lambda: cos("AKIDadmin", "bad").put_object(
        Bucket="shop-1250000000", Key="x", Body=b"2")) == "SignatureDoesNotMatch"
    assert code(lambda: cos("AKIDnobody", "k").get_object(
        Bucket="shop-1250000000", Key="a/b c")) == "InvalidAccessKeyId"
    assert code(lambda: cos("AKIDdns", "dns-key").get_object(
        Bucket="shop-1250000000", Key="a/b c")) == "AccessDenied"
    real = s.clock
    s.clock = lambda: real() + 20_000  # past the SDK's sign-time window
    assert code(lambda: cos("AKIDadmin", "admin-key").get_object(
        Bucket="shop-1250000000", Key="a/b c")) == "RequestTimeTooSkewed"
    assert list(s.cos.buckets[("ap-guangzhou", "shop-1250000000")]) == ["a/b c"]


def test_scf_invoke_is_authorised_as_invokefunction_like_the_deploy_grants(
        stub: tuple[TencentStub, str]) -> None:
    """The deploy grants ``scf:InvokeFunction`` (components/tencent); the stub used to ask for
    ``scf:Invoke`` and refused the deployed roles. Doc "Permission Management Overview"
    (cloud.tencent.com/document/product/583/18014) names ``InvokeFunction`` as the CAM action
    for triggering a function, so the ``Invoke`` API is authorised under that name."""
    from components.tencent._common import CamPolicyBuilder

    s, ep = stub
    fn = "qcs::scf:ap-guangzhou:uin/100000000001:namespace/default/function/shop-wrap"
    s.services.add_function("ap-guangzhou", "shop-wrap", lambda event: {"echo": event})
    deployed = CamPolicyBuilder().allow(["scf:InvokeFunction"], [fn]).actions()
    s.add_key("AKIDdeployed", "k1", {"version": "2.0", "statement": [
        {"effect": "allow", "action": deployed, "resource": [fn]}]})
    s.add_key("AKIDapiname", "k2", {"version": "2.0", "statement": [
        {"effect": "allow", "action": ["scf:Invoke"], "resource": [fn]}]})
    params = {"FunctionName": "shop-wrap", "InvocationType": "RequestResponse",
              "ClientContext": json.dumps({"x": 1})}
    out = client(ep, "scf", "2018-04-16", "ap-guangzhou", sid="AKIDdeployed",
                 key="k1").call_json("Invoke", params)
    assert json.loads(out["Response"]["Result"]["RetMsg"]) == {"echo": {"x": 1}}
    assert code_of(lambda: client(ep, "scf", "2018-04-16", "ap-guangzhou", sid="AKIDapiname",
                                  key="k2").call_json("Invoke", params)
                   ) == "AuthFailure.UnauthorizedOperation"
    assert s.refused == {"AuthFailure.UnauthorizedOperation": 1}
