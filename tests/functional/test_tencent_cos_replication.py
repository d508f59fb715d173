"""COS replication reversal (switch kind ``cos_replication``) against the contract stub, with
the real ``cos-python-sdk-v5`` client: the request shape of PUT/GET Bucket replication (COS
API docs 436/19223 and 436/19222), CAM, the switch, read-back, idempotence, the heartbeat,
and a failover with the old source's region down."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator

import pytest
from qcloud_cos import CosConfig, CosS3Client
from qcloud_cos.cos_exception import CosServiceError

from components.runtime.registry import REGISTRY
from components.runtime.tencent.client import TencentApi
from components.runtime.tencent.cos_switch import CosReplicationSwitcher
from components.sandbox.tencent_stub import TencentStub

P, S, APPID, UIN = "ap-guangzhou", "ap-shanghai", "1250000000", "100000000001"
BP, BS = f"shop-data-aguangzhou-{APPID}", f"shop-data-ashanghai-{APPID}"
ROLE = f"qcs::cam::uin/{UIN}:uin/{UIN}"
T = {"scope": "data", "kind": "cos_replication", "role": ROLE,
     "buckets": {"primary": {"region": P, "bucket": BP},
                 "standby": {"region": S, "bucket": BS}}}
# As the deploy grants it to the data monitor: the two replication actions on its two
# buckets only (components/tencent/topology.py).
MONITOR_POLICY = {"version": "2.0", "statement": [
    {"effect": "allow", "action": ["cos:GetBucketReplication", "cos:PutBucketReplication"],
     "resource": [f"qcs::cos:{P}:uid/{APPID}:{BP}/", f"qcs::cos:{S}:uid/{APPID}:{BS}/"]}]}
READ_ONLY = {"version": "2.0", "statement": [
    {"effect": "allow", "action": ["cos:GetBucketReplication"], "resource": ["*"]}]}


@pytest.fixture
def stub(monkeypatch: pytest.MonkeyPatch) -> Iterator[TencentStub]:
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    with TencentStub() as s:
        s.add_key("AKIDmonitor", "monitor-key", MONITOR_POLICY)
        s.add_key("AKIDread", "read-key", READ_ONLY)
        s.add_key("AKIDadmin", "admin-key", {"version": "2.0", "statement": [
            {"effect": "allow", "action": "*", "resource": "*"}]})
        s.cos.add_bucket(P, BP)
        s.cos.add_bucket(S, BS)
        s.cos.add_bucket(S, f"plain-{APPID}", versioned=False)
        s.start()
        yield s


def api(s: TencentStub, sid: str = "AKIDmonitor", key: str = "monitor-key") -> TencentApi:
    return TencentApi(sid, key, endpoint=s.endpoint, cos_endpoint=s.cos.endpoint)


def status(s: TencentStub) -> dict[str, str]:
    return {b: s.cos.replication[(r, b)]["Rules"][0]["Status"]
            for r, b in ((P, BP), (S, BS)) if (r, b) in s.cos.replication}


def deploy(s: TencentStub) -> None:
    """What the deploy creates: the primary's rule Enabled, the standby's Disabled."""
    sw = CosReplicationSwitcher(api(s))
    sw._put(T, "primary", "Enabled")
    sw._put(T, "standby", "Disabled")


def test_adapter_registers_cos_replication() -> None:
    # test_tencent_switchers checks that tencent_switchers() serves every registered kind.
    assert REGISTRY.switch("cos_replication").required == ("scope", "role", "buckets")
    assert REGISTRY.switch("cos_replication").component == "bucket"


def test_failover_makes_the_standby_bucket_the_source_and_failback_reverses(
        stub: TencentStub) -> None:
    deploy(stub)
    sw = CosReplicationSwitcher(api(stub))
    assert sw.current(T) == "primary" and status(stub) == {BP: "Enabled", BS: "Disabled"}
    sw.apply(T, "standby", 2, "data failover")
    assert status(stub) == {BP: "Disabled", BS: "Enabled"}
    conf = stub.cos.replication[(S, BS)]
    assert conf["Role"] == ROLE
    assert conf["Rules"] == [{"ID": "to-aguangzhou", "Status": "Enabled", "Prefix": "",
                              "Bucket": f"qcs::cos:{P}::{BP}", "StorageClass": ""}]
    assert sw.verify(T, "standby") and not sw.verify(T, "primary")
    sw.apply(T, "standby", 2, "retry")  # idempotent
    assert status(stub) == {BP: "Disabled", BS: "Enabled"}
    # A stale holder's late write turns it back; the heartbeat restores the committed side.
    sw.apply(T, "primary", 1, "stale")
    sw.heartbeat(T, "standby", 2)
    assert sw.current(T) == "standby"
    sw.apply(T, "primary", 3, "failback")
    assert status(stub) == {BP: "Enabled", BS: "Disabled"}
    assert [a for _, svc, a in stub.calls if svc == "cos"].count("PutBucketReplication") >= 6
    assert not stub.refused


def test_failover_with_the_old_region_down_enables_the_new_source_and_heartbeat_finishes(
        stub: TencentStub) -> None:
    deploy(stub)
    sw = CosReplicationSwitcher(api(stub))
    stub.down_regions.add(P)
    sw.apply(T, "standby", 2, "primary region down")
    assert status(stub) == {BP: "Enabled", BS: "Enabled"}  # the old one is unreachable
    assert not sw.verify(T, "standby")  # reported unverified, never claimed
    stub.down_regions.clear()
    sw.heartbeat(T, "standby", 2)
    assert status(stub) == {BP: "Disabled", BS: "Enabled"} and sw.verify(T, "standby")


def test_replication_refused_by_cam_changes_nothing(stub: TencentStub) -> None:
    deploy(stub)
    sw = CosReplicationSwitcher(api(stub, "AKIDread", "read-key"))
    assert sw.current(T) == "primary"  # reading is allowed
    from components.runtime.errors import SwitchError

    with pytest.raises(SwitchError, match="AccessDenied"):
        sw.apply(T, "standby", 2, "no grant")
    assert status(stub) == {BP: "Enabled", BS: "Disabled"}
    assert stub.refused == {"cos:AccessDenied": 1}


def _raw(s: TencentStub) -> CosS3Client:
    ip, _, port = s.cos.endpoint.rpartition(":")
    return CosS3Client(CosConfig(Region=S, SecretId="AKIDadmin", SecretKey="admin-key",
                                 IP=ip, Port=int(port), Scheme="http"), retry=0)


def _put_raw(s: TencentStub, body: bytes, bucket: str = BS, md5: str | None = None) -> str:
    """A hand-made PUT /?replication through the SDK's signer, to send shapes the SDK's own
    builder never would; returns the COS error code."""
    client = _raw(s)
    headers = {"Content-MD5": md5 if md5 is not None
               else base64.b64encode(hashlib.md5(body).digest()).decode(),
               "Content-Type": "application/xml"}
    from qcloud_cos.cos_auth import CosS3Auth

    params = {"replication": ""}
    with pytest.raises(CosServiceError) as exc:
        client.send_request(method="PUT", url=client._conf.uri(bucket=bucket), bucket=bucket,
                            data=body, auth=CosS3Auth(client._conf, params=params),
                            headers=headers, params=params)
    return str(exc.value.get_error_code())


def _conf(status: str = "Enabled", role: str = ROLE, dest: str = f"qcs::cos:{P}::{BP}",
          extra: str = "") -> bytes:
    return (f"<ReplicationConfiguration><Role>{role}</Role><Rule><Status>{status}</Status>"
            f"<ID>to-aguangzhou</ID><Prefix></Prefix><Destination><Bucket>{dest}</Bucket>"
            f"</Destination>{extra}</Rule></ReplicationConfiguration>").encode()


def test_stub_checks_the_put_bucket_replication_shape(stub: TencentStub) -> None:
    assert _put_raw(stub, _conf(status="On")) == "MalformedXML"
    assert _put_raw(stub, _conf(role="admin")) == "MalformedXML"
    assert _put_raw(stub, _conf(dest=f"{BP}")) == "MalformedXML"
    assert _put_raw(stub, _conf(extra="<Priority>1</Priority>")) == "MalformedXML"
    assert _put_raw(stub, b"<ReplicationConfiguration><Role>" + ROLE.encode()
                    + b"</Role></ReplicationConfiguration>") == "MalformedXML"  # no Rule
    assert _put_raw(stub, b"not xml") == "MalformedXML"
    assert _put_raw(stub, _conf(), md5="AAAAAAAAAAAAAAAAAAAAAA==") == "BadDigest"
    assert _put_raw(stub, _conf(), md5="not-md5") == "InvalidDigest"
    assert _put_raw(stub, _conf(dest=f"qcs::cos:{S}::{BS}"), bucket=BS) == "InvalidArgument"
    assert _put_raw(stub, _conf(dest=f"qcs::cos:{P}::gone-{APPID}")) == "NoSuchBucket"
    assert stub.cos.replication == {}  # every refusal left the bucket as it was
    # And a well-formed body from the SDK's own builder is accepted.
    _raw(stub).put_bucket_replication(Bucket=BS, ReplicationConfiguration={
        "Role": ROLE, "Rule": [{"ID": "to-aguangzhou", "Status": "Disabled", "Prefix": "",
                                "Destination": {"Bucket": f"qcs::cos:{P}::{BP}"}}]})
    assert status(stub) == {BS: "Disabled"}


def test_stub_refuses_replication_without_versioning(stub: TencentStub) -> None:
    assert _put_raw(stub, _conf(), bucket=f"plain-{APPID}") == "BucketVersionNotOpen"
