"""Shared fixtures: fresh recording mocks per test, and helpers to run the real program."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pulumi
import pytest

from components.plan.mocks import PlanRun, RecordingMocks, RecordingMonitor
from components.plan.run import StackConfig, read_stack, run_program
from components.program import main

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE_STACKS = ("aws-dev", "aws-nearby")


@pytest.fixture(autouse=True)
def fresh_mocks() -> RecordingMocks:
    """``set_mocks`` is process-global: install a fresh recorder before every test."""
    mocks = RecordingMocks()
    pulumi.runtime.set_mocks(mocks, project="standby", stack="test", preview=False,
                             monitor=RecordingMonitor(mocks))
    return mocks


def example_raw(stack: str) -> dict[str, Any]:
    cfg = read_stack(stack, ROOT)
    return copy.deepcopy(cfg.raw["standby:topology"])


def minimal_raw() -> dict[str, Any]:
    return {
        "name": "shop",
        "cloud": "aws",
        "regions": [{"name": "us-east-1", "role": "primary"},
                    {"name": "us-west-2", "role": "standby"}],
        "dns": {"zone": "example.com"},
        "logic": {"code": "examples/app"},
        "targets": {"rto_s": 300, "rpo_s": 10},
    }


def run_raw(raw: dict[str, Any], secrets: dict[str, str] | None = None,
            plain: dict[str, str] | None = None) -> PlanRun:
    """Run the real program with this topology config (secrets marked secret)."""
    import json

    config = {"standby:topology": json.dumps(raw)}
    secret_keys = []
    for key, value in (secrets or {}).items():
        config[f"standby:{key}"] = value
        secret_keys.append(f"standby:{key}")
    for key, value in (plain or {}).items():
        config[f"standby:{key}"] = value
    cfg = StackConfig("standby", "test", ROOT, ROOT / "stacks" / "inline.yaml", config,
                      secret_keys, {})
    return run_program(cfg, main)


def run_stack(stack: str) -> PlanRun:
    return run_program(read_stack(stack, ROOT), main)


# -- local AWS: moto in server mode over HTTP ----------------------------------------------


@pytest.fixture(scope="session")
def moto_server() -> Any:
    """One moto server for the session, on 127.0.0.1 and a free port."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def aws(moto_server: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """Point boto3 at the moto server with throwaway credentials; a clean state per test."""
    import urllib.request

    urllib.request.urlopen(urllib.request.Request(f"{moto_server}/moto-api/reset",
                                                  method="POST"), timeout=10).read()
    for key, value in {"AWS_ENDPOINT_URL": moto_server, "AWS_ACCESS_KEY_ID": "testing",
                       "AWS_SECRET_ACCESS_KEY": "testing", "AWS_SESSION_TOKEN": "testing",
                       "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    return moto_server


class _DownRegion:
    """A client for a region whose API does not answer: botocore raises
    ``EndpointConnectionError`` when nothing accepts the connection (botocore exceptions)."""

    def __init__(self, region: str) -> None:
        self.region = region

    def __getattr__(self, method: str) -> Any:
        from botocore.exceptions import EndpointConnectionError

        def call(**_: Any) -> Any:
            raise EndpointConnectionError(
                endpoint_url=f"https://{method}.{self.region}.amazonaws.com")

        return call


def DownRegionClients(down: str) -> Any:
    """``Clients`` whose clients for region ``down`` never connect (the region is lost)."""
    from components.runtime.aws.clients import Clients

    class _Clients(Clients):
        def get(self, service: str, region: str) -> Any:
            return _DownRegion(region) if region == down else super().get(service, region)

    return _Clients()
