"""``RegionOutageProxy`` in front of the moto server holding the deployed aws-dev plan (IAM
enforced, so signatures are checked): a function's calls to a faulted region are refused as
documented in ``outage.py`` while the other region answers, and everything passes after heal."""

from __future__ import annotations

import dataclasses
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pulumi
import pytest
from botocore.config import Config as BotoConfig
from botocore.exceptions import ClientError, ConnectionClosedError

from components.plan.run import read_stack, run_program
from components.program import main
from components.sandbox.deploy import Deployment, Function, deploy_run
from components.sandbox.lambda_runner import LambdaRunner
from components.sandbox.moto_proc import MotoProcess
from components.sandbox.outage import RegionOutageProxy, credential_scope

ROOT = Path(__file__).resolve().parents[2]
TABLE = "shop-orders"
EAST, WEST = "us-east-1", "us-west-2"


@pytest.fixture(scope="module")
def deployment() -> Iterator[Deployment]:
    run = run_program(read_stack("aws-dev", ROOT), main)
    with MotoProcess() as moto:
        yield deploy_run(run, moto.url, "aws-dev")


def test_credential_scope_is_read_from_the_header_and_the_presigned_query() -> None:
    header = {"Authorization": "AWS4-HMAC-SHA256 Credential=AKID/20261121/us-west-2/"
                               "dynamodb/aws4_request, SignedHeaders=host, Signature=ab"}
    assert credential_scope(header, "/") == (WEST, "dynamodb")
    assert credential_scope({}, "/b/k?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential="
                                "AKID%2F20261121%2Fus-east-1%2Fs3%2Faws4_request") == (EAST, "s3")
    assert credential_scope({}, "/moto-api/data.json") is None


def test_bad_fault_arguments_are_refused(deployment: Deployment) -> None:
    with RegionOutageProxy(deployment.moto_url) as proxy:
        with pytest.raises(ValueError, match=r"region 'US_EAST': not a region name"):
            proxy.fault("US_EAST")
        with pytest.raises(ValueError, match=r"service 'Dynamo DB': not a SigV4 signing name"):
            proxy.fault(EAST, "Dynamo DB")
        with pytest.raises(ValueError, match=r"mode 'drop'; allowed: reset, unavailable"):
            proxy.fault(EAST, mode="drop")
        assert proxy.faults == {}
    with pytest.raises(ValueError, match=r"upstream 'moto': allowed: http://HOST:PORT"):
        RegionOutageProxy("moto")


def _deployer(d: Deployment, region: str, url: str, secret: str | None = None) -> Any:
    make: Any = boto3.client
    return make("dynamodb", region_name=region, endpoint_url=url,
                aws_access_key_id=d.access_key[0],
                aws_secret_access_key=secret or d.access_key[1],
                config=BotoConfig(retries={"total_max_attempts": 1}, read_timeout=10))


def test_a_signed_request_keeps_a_valid_signature_through_the_proxy(
    deployment: Deployment,
) -> None:
    with RegionOutageProxy(deployment.moto_url) as proxy:
        # moto checks signatures (IAM on): the same call with a wrong secret is refused, so
        # the call that passes proves the forwarded request is the one that was signed.
        ok = _deployer(deployment, WEST, proxy.url).describe_table(TableName=TABLE)
        assert ok["Table"]["TableName"] == TABLE
        with pytest.raises(ClientError) as bad:
            _deployer(deployment, WEST, proxy.url, secret="wrong").describe_table(
                TableName=TABLE)
        # (moto answers a JSON-protocol call in XML here, so botocore reports code "403")
        assert bad.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
        assert "<Code>SignatureDoesNotMatch</Code>" in bad.value.response["Error"]["Message"]
        assert proxy.forwarded[(WEST, "dynamodb")] == 2


def test_unavailable_mode_answers_503_service_unavailable(deployment: Deployment) -> None:
    with RegionOutageProxy(deployment.moto_url) as proxy:
        proxy.fault(WEST, "dynamodb", mode="unavailable")
        with pytest.raises(ClientError) as refused:
            _deployer(deployment, WEST, proxy.url).describe_table(TableName=TABLE)
        assert refused.value.response["Error"]["Code"] == "ServiceUnavailable"
        assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 503
        assert proxy.refused[(WEST, "dynamodb")] == 1


def test_a_presigned_url_is_refused_for_its_faulted_region_and_passes_after_heal(
    deployment: Deployment,
) -> None:
    s3 = deployment.client("s3", EAST)
    bucket = next(c.cloud_id for c in deployment.created
                  if c.type.startswith("aws:s3/bucket") and c.region == EAST
                  and c.type.endswith((":Bucket", ":BucketV2")))
    s3.put_object(Bucket=bucket, Key="presigned.txt", Body=b"hello")
    with RegionOutageProxy(deployment.moto_url) as proxy:
        make: Any = boto3.client
        via = make("s3", region_name=EAST, endpoint_url=proxy.url,
                   aws_access_key_id=deployment.access_key[0],
                   aws_secret_access_key=deployment.access_key[1],
                   config=BotoConfig(signature_version="s3v4"))
        url = via.generate_presigned_url("get_object", Params={"Bucket": bucket,
                                                               "Key": "presigned.txt"})
        proxy.fault(EAST, "s3")
        assert "X-Amz-Credential=" in url
        with pytest.raises(OSError) as reset:  # RemoteDisconnected or ConnectionResetError
            urllib.request.urlopen(url, timeout=10)
        assert not isinstance(reset.value, urllib.error.HTTPError), reset.value
        assert proxy.refused[(EAST, "s3")] == 1
        proxy.heal(EAST)
        # After heal the request reaches moto and moto's answer comes back. (moto 5.2.5 with
        # IAM on answers a presigned GET with 500 even when called directly, so the answer
        # itself is moto's, not the object.)
        try:
            with urllib.request.urlopen(url, timeout=10) as resp:
                assert resp.read() == b"hello"
        except urllib.error.HTTPError as exc:
            assert exc.code == 500, exc
        assert proxy.forwarded[(EAST, "s3")] == 1
        assert proxy.refused[(EAST, "s3")] == 1


_PROBE = """
import boto3
from botocore.config import Config

def handler(event, context):
    out = {}
    for region in ("us-east-1", "us-west-2"):
        ddb = boto3.client("dynamodb", region_name=region,
                           config=Config(retries={"total_max_attempts": 2}, read_timeout=10))
        try:
            ddb.get_item(TableName="shop-orders",
                         Key={"pk": {"S": "probe"}, "sk": {"S": "order"}})
            out[region] = "ok"
        except Exception as exc:
            out[region] = type(exc).__name__ + ": " + str(exc)
    return out
"""


@pytest.fixture(scope="module")
def proxied(deployment: Deployment, tmp_path_factory: pytest.TempPathFactory,
            ) -> Iterator[tuple[RegionOutageProxy, LambdaRunner]]:
    wrapper = deployment.functions["shop-wrap-ue1-primary"]
    deployment.functions["outage-probe"] = Function(
        name="outage-probe", region=EAST, arn=wrapper.arn + "-probe",
        role_arn=wrapper.role_arn, handler="app.handler", runtime="python3.12",
        timeout_s=30, memory_mb=128, env={},
        code=pulumi.AssetArchive({"app.py": pulumi.StringAsset(_PROBE)}), layers=[])
    with RegionOutageProxy(deployment.moto_url) as proxy:
        # The functions' AWS_ENDPOINT_URL is the proxy: every call they make crosses it.
        runner = LambdaRunner(dataclasses.replace(deployment, moto_url=proxy.url),
                              tmp_path_factory.mktemp("lambda"),
                              runtime_root=ROOT / ".standby-cache")
        yield proxy, runner


def test_a_functions_dynamodb_call_to_a_faulted_region_is_refused_until_heal(
    proxied: tuple[RegionOutageProxy, LambdaRunner],
) -> None:
    proxy, runner = proxied
    inv = runner.invoke("outage-probe", {})
    assert inv.ok and inv.payload == {EAST: "ok", WEST: "ok"}, (inv.payload, inv.logs[-800:])
    proxy.fault(EAST, "dynamodb")
    inv = runner.invoke("outage-probe", {})
    assert inv.ok, (inv.payload, inv.logs[-800:])
    assert inv.payload[WEST] == "ok"
    assert inv.payload[EAST].startswith(ConnectionClosedError.__name__ + ": "), inv.payload
    assert proxy.refused[(EAST, "dynamodb")] == 2  # the first try and botocore's one retry
    assert proxy.refused[(WEST, "dynamodb")] == 0
    proxy.heal(EAST, "dynamodb")
    inv = runner.invoke("outage-probe", {})
    assert inv.ok and inv.payload == {EAST: "ok", WEST: "ok"}, inv.payload
    assert proxy.refused[(EAST, "dynamodb")] == 2


def test_a_whole_region_fault_covers_every_service_of_that_region_only(
    proxied: tuple[RegionOutageProxy, LambdaRunner],
) -> None:
    proxy, runner = proxied
    proxy.fault(WEST)
    try:
        inv = runner.invoke("outage-probe", {})
        assert inv.ok, (inv.payload, inv.logs[-800:])
        assert inv.payload[EAST] == "ok"
        assert inv.payload[WEST].startswith("ConnectionClosedError"), inv.payload
    finally:
        proxy.heal(WEST)
    assert runner.invoke("outage-probe", {}).payload == {EAST: "ok", WEST: "ok"}
