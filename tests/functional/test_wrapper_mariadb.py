"""The wrapper against a real MariaDB server (Debian's ``mariadbd``, started in a temp dir on a
free port; never skipped: ``.ci/run`` installs it, a missing install fails): statement
timeout, error classes, fence re-check and idempotency on the MySQL dialect. Named after
issue 11's defects."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from components.runtime.aws.wrapper import make_handler
from components.runtime.wrapper import WrapperHandler
from components.sandbox import world

R1, R2 = world.R1, world.R2
pytestmark = pytest.mark.usefixtures("aws")
APP_PASSWORD = uuid.uuid4().hex


class Maria:
    """One throwaway mariadbd; ``close()`` stops the process this started."""

    def __init__(self) -> None:
        server, install = shutil.which("mariadbd") or "/usr/sbin/mariadbd", \
            shutil.which("mariadb-install-db")
        if not Path(server).exists() or install is None:
            pytest.fail("MariaDB server binaries (mariadbd, mariadb-install-db) not installed: "
                        "run .ci/run as root, or apt-get install mariadb-server-core")
        self.base = Path(tempfile.mkdtemp(prefix="wrapper-maria-"))
        user = ["--user=root"] if os.geteuid() == 0 else []
        subprocess.run([install, "--no-defaults", f"--datadir={self.base}/data", *user,
                        "--auth-root-authentication-method=normal", "--skip-test-db"],
                       check=True, capture_output=True, timeout=120)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = int(s.getsockname()[1])
        self.sock = self.base / "sock"
        self.proc = subprocess.Popen(
            [server, "--no-defaults", f"--datadir={self.base}/data", *user,
             "--bind-address=127.0.0.1", f"--port={self.port}", f"--socket={self.sock}",
             "--skip-name-resolve", "--skip-log-bin", "--innodb-buffer-pool-size=16M"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(120):
            if self.sock.exists():
                break
            time.sleep(0.25)
        else:
            self.close()
            pytest.fail("mariadbd did not start within 30 s")
        self.admin("CREATE DATABASE shop")
        self.admin(f"CREATE USER 'app'@'%' IDENTIFIED BY '{APP_PASSWORD}'")
        # The app role: data privileges on its database only, no SUPER, no FILE.
        self.admin("GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, INDEX ON shop.* TO 'app'@'%'")

    def admin(self, sql: str) -> Any:
        import pymysql

        c = pymysql.connect(unix_socket=str(self.sock), user="root", autocommit=True)
        try:
            cur = c.cursor()
            cur.execute(sql)
            return cur.fetchall()
        finally:
            c.close()

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
        shutil.rmtree(self.base, ignore_errors=True)


@pytest.fixture(scope="module")
def server() -> Iterator[Maria]:
    m = Maria()
    try:
        yield m
    finally:
        m.close()


@pytest.fixture
def maria(server: Maria) -> Maria:
    server.admin("SET GLOBAL read_only = 0")
    for table in ("orders", "standby_idempotency", "payroll"):
        server.admin(f"DROP TABLE IF EXISTS shop.{table}")
    server.admin("CREATE TABLE shop.orders (id varchar(64) PRIMARY KEY, item text)")
    return server


def handler(m: Maria, **extra: str) -> WrapperHandler:
    for r in (R1, R2):
        world.pointer_table(r)
    arn = world.client("secretsmanager", R1).create_secret(
        Name=f"app-{uuid.uuid4().hex[:6]}",
        SecretString=json.dumps({"username": "app", "password": APP_PASSWORD}))["ARN"]
    ep = f"127.0.0.1:{m.port}"
    return make_handler({
        "STANDBY_TOPOLOGY": "shop", "STANDBY_SIDE": "primary", "STANDBY_REGION": R1,
        "STANDBY_POINTER_TABLE": "shop-standby-pointers", "STANDBY_POINTER_CACHE_S": "0",
        "STANDBY_DB_ENGINE": "mysql", "STANDBY_DATA_REGIONS": json.dumps([R1, R2]),
        "STANDBY_DB_ENDPOINTS": json.dumps({R1: ep, R2: ep}), "STANDBY_DB_NAME": "shop",
        "STANDBY_DB_SECRET_ARN": arn, **extra})


def ids(m: Maria) -> set[str]:
    return {r[0] for r in m.admin("SELECT id FROM shop.orders")}


def put(i: str, item: str = "x", key: str | None = None) -> dict[str, Any]:
    return {"op": "sql", "sql": "INSERT INTO orders (id, item) VALUES (:id, :item)",
            "params": {"id": i, "item": item}, "idempotency_key": key or f"order-{i}"}


def test_mariadb_slow_statement_is_timeout_not_retryable_unavailable(maria: Maria) -> None:
    maria.admin("INSERT INTO shop.orders (id) SELECT seq FROM shop.seq_1_to_2000")
    handle = handler(maria, STANDBY_STATEMENT_TIMEOUT_S="0.3")
    answer = handle({"op": "sql", "sql": "SELECT count(*) FROM orders a, orders b, orders c"},
                    None)
    assert answer["error"]["code"] == "Timeout", answer
    assert answer["error"]["retryable"] is False
    assert handle(put("after"), None)["ok"]  # the pool is still usable
    handle.wrapper.close()


def test_mariadb_privilege_error_is_permission_denied_not_unavailable(maria: Maria) -> None:
    maria.admin("CREATE TABLE mysql.payroll_secret (id int)")
    try:
        handle = handler(maria)
        answer = handle({"op": "sql", "sql": "SELECT id FROM mysql.payroll_secret"}, None)
        assert answer["error"]["code"] == "PermissionDenied", answer
        assert answer["error"]["retryable"] is False
        handle.wrapper.close()
    finally:
        maria.admin("DROP TABLE mysql.payroll_secret")


def test_mariadb_read_only_server_answers_not_primary_and_writes_nothing(maria: Maria) -> None:
    handle = handler(maria)
    assert handle(put("before"), None)["ok"]
    maria.admin("SET GLOBAL read_only = 1")  # the fence (the app role has no SUPER)
    for event in (put("after"), {**put("plain"), "idempotency_key": None}):
        event = {k: v for k, v in event.items() if v is not None}
        answer = handle(event, None)
        assert answer["error"]["code"] == "NotPrimary" and answer["error"]["retryable"]
    assert handle({"op": "sql", "sql": "SELECT id FROM orders"}, None)["ok"]
    assert ids(maria) == {"before"}
    handle.wrapper.close()


def test_mariadb_idempotency_key_bound_to_the_request(maria: Maria) -> None:
    handle = handler(maria)
    assert handle(put("m1", "paid"), None)["result"]["replayed"] is False
    assert handle(put("m1", "paid"), None)["result"]["replayed"] is True
    clash = handle(put("m1", "refunded"), None)
    assert clash["error"]["code"] == "Conflict"
    assert maria.admin("SELECT item FROM shop.orders WHERE id = 'm1'") == (("paid",),)
    handle.wrapper.close()
