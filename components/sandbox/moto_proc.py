"""A moto server in its own process, with IAM access control on.

moto reads ``INITIAL_NO_AUTH_ACTION_COUNT`` once, when ``moto.settings`` is imported, so it
must be in the environment of a process that has not imported moto yet: a subprocess
(``moto_server``) is the only way to get enforcement while the sandbox itself uses moto.
The first N authenticated calls are free (the deployer spends them on its own user and key);
every later call is signed and checked against the caller's policies.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

#: Calls the deployer needs before it has a key of its own: CreateUser, PutUserPolicy,
#: CreateAccessKey.
FREE_CALLS = 3
START_TIMEOUT_S = 20.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


#: ``moto_server`` with two changes.
#: 1. moto 5.2.5 re-signs a request to check its signature from the request body OR the
#:    parsed query data (``IAMRequestBase._create_aws_request``), so a signed REST GET with
#:    no body (``GetRestApis``, ``GetFunctionConfiguration``) is hashed over a non-empty
#:    payload and refused with ``SignatureDoesNotMatch``. SigV4 hashes the body that was
#:    sent: for a request without one that is the empty string.
#: 2. CloudWatch stores a standard-resolution datum (no ``StorageResolution: 1``) at
#:    one-minute granularity; moto keeps its exact time. Flooring its timestamp to the
#:    minute makes an alarm with a 10 s period see such a metric in one period of six, as
#:    on AWS (``alarms.py`` evaluates alarms over what moto stores).
#: 3. RDS promotes a read replica asynchronously: PromoteReadReplica leaves it ``modifying``
#:    with its ``ReadReplicaSourceDBInstanceIdentifier`` until the promotion is done, then
#:    reboots it; moto 5.2 drops nothing and reports ``available`` at once (so the
#:    ``rds_promote`` switcher would never see the promotion). Here PromoteReadReplica only
#:    starts it, and RebootDBInstance of a promoting instance completes it (``available``,
#:    no source, gone from the source's replicas): the sandbox's RDS control plane
#:    (``deploy_rds.RdsController``) calls it once the local server is promoted.
#:    A cross-region CreateDBInstanceReadReplica looked its subnet group up in the source's
#:    region (the copied instance took the replica's backend only after its other settings):
#:    it now takes the replica's region first.
_LAUNCH = r"""
import sys
import moto.iam.access_control as ac
_orig = ac.IAMRequestBase._create_aws_request
def _create_aws_request(self):
    if not self._body and self._method in ("GET", "HEAD", "DELETE"):
        saved, self._data = self._data, b""
        try:
            return _orig(self)
        finally:
            self._data = saved
    return _orig(self)
ac.IAMRequestBase._create_aws_request = _create_aws_request

import datetime
import moto.cloudwatch.models as cw
from moto.core.utils import utcnow
_put = cw.CloudWatchBackend.put_metric_data
def put_metric_data(self, namespace, metric_data):
    for m in metric_data:
        if str(m.get("StorageResolution") or "60") != "1":
            ts = m.get("Timestamp") or utcnow()
            if isinstance(ts, datetime.datetime):
                m["Timestamp"] = ts.replace(second=0, microsecond=0)
    return _put(self, namespace, metric_data)
cw.CloudWatchBackend.put_metric_data = put_metric_data
import moto.rds.models as rds
def promote_read_replica(self, db_kwargs):
    database = self.describe_db_instances(db_kwargs["db_instance_identifier"])[0]
    if database.is_replica:
        database.is_replica = False
        database.status = "modifying"
        database.sandbox_promoting = True
    return database
def reboot_db_instance(self, db_instance_identifier):
    database = self.describe_db_instances(db_instance_identifier)[0]
    if getattr(database, "sandbox_promoting", False):
        source = self.find_db_from_id(database.source_db_instance_identifier)
        for ref in (database.db_instance_arn, database.db_instance_identifier):
            if ref in source.replicas:
                source.replicas.remove(ref)
        database.source_db_instance_identifier = None
        database.sandbox_promoting = False
    database.status = "available"
    return database
_create_replica = rds.RDSBackend.create_db_instance_read_replica
def create_db_instance_read_replica(self, db_kwargs):
    if self.arn_regex.match(db_kwargs["source_db_instance_identifier"]):
        db_kwargs = {"backend": self, **db_kwargs}
    return _create_replica(self, db_kwargs)
rds.RDSBackend.create_db_instance_read_replica = create_db_instance_read_replica
rds.RDSBackend.promote_read_replica = promote_read_replica
rds.RDSBackend.reboot_db_instance = reboot_db_instance
from moto.server import main
sys.argv[0] = "moto_server"
sys.exit(main())
"""


def _moto_server_cmd() -> list[str]:
    return [sys.executable, "-c", _LAUNCH]


@dataclass
class MotoProcess:
    """``moto_server -H 127.0.0.1 -p PORT`` (see ``_LAUNCH``) with IAM enforced after
    ``free_calls`` calls."""

    free_calls: int = FREE_CALLS
    port: int = 0
    log_path: Path | None = None
    """Where moto's own output goes (its tracebacks explain a 500); discarded when None."""
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> MotoProcess:
        env = dict(os.environ)
        env["INITIAL_NO_AUTH_ACTION_COUNT"] = str(self.free_calls)
        # Three attempts: another process on this machine may take the port between
        # free_port() and moto's bind.
        for _ in range(3):
            self.port = self.port or free_port()
            with open(self.log_path or os.devnull, "ab") as log:
                self.proc = subprocess.Popen(
                    [*_moto_server_cmd(), "-H", "127.0.0.1", "-p", str(self.port)],
                    env=env, stdout=log, stderr=subprocess.STDOUT,
                )
            if self._wait_ready():
                return self
            self.stop()
            self.port = 0
        raise RuntimeError("moto_server did not start on 127.0.0.1 (3 attempts)")

    def _wait_ready(self) -> bool:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc is None or self.proc.poll() is not None:
                return False
            try:
                # The moto-api endpoints are not AWS actions: they do not spend free calls.
                with urllib.request.urlopen(f"{self.url}/moto-api/data.json", timeout=1):
                    return True
            except (urllib.error.URLError, OSError):
                time.sleep(0.05)
        return False

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self.proc = None

    def __enter__(self) -> MotoProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
