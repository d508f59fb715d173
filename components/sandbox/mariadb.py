"""A real MariaDB primary with a GTID replica in a temp dir, for tests and the drill.

Needs ``mariadbd`` and ``mariadb-install-db`` (Debian: ``mariadb-server-core``). Found via
``STANDBY_MARIADB_ROOT`` (a folder holding ``usr/sbin/mariadbd``, e.g. packages unpacked with
``dpkg -x``), ``STANDBY_MARIADB_BIN`` (the folder of ``mariadbd``), ``PATH`` or ``/usr/sbin``.
``ensure_mariadb`` installs the package when missing on a Debian machine where we are root.

Both servers log a ROW binlog with full row images (MariaDB's default is MIXED, which loses
row images a replica or a migration needs). The replica replicates by GTID from the primary's
first binlog event, so users and databases created on the primary exist on both. Every process
started here is stopped by PID in ``close()`` (and by the context manager).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from components.sandbox.pg import free_port

ADMIN, APP, REPL = "admin", "app", "repl"
PACKAGES = ("mariadb-server-core", "mariadb-client-core")


class MariaUnavailable(RuntimeError):
    pass


@dataclass(frozen=True)
class MariaBin:
    mariadbd: Path
    install_db: Path
    basedir: Path
    """``--basedir`` for install-db (it finds ``share/mariadb`` below it)."""


def mariadb_bin() -> MariaBin:
    roots: list[Path] = []
    if os.environ.get("STANDBY_MARIADB_ROOT"):
        roots.append(Path(os.environ["STANDBY_MARIADB_ROOT"]))
    roots.append(Path("/"))
    bins = [Path(os.environ["STANDBY_MARIADB_BIN"])] if os.environ.get("STANDBY_MARIADB_BIN") \
        else []
    found = shutil.which("mariadbd")
    if found:
        bins.append(Path(found).parent)
    for root in roots:
        for sbin in [*bins, root / "usr/sbin"]:
            daemon = sbin / "mariadbd"
            for install in (sbin / "mariadb-install-db", root / "usr/bin/mariadb-install-db"):
                if daemon.exists() and install.exists():
                    return MariaBin(daemon, install, root / "usr")
    raise MariaUnavailable(
        "MariaDB server binaries not found (mariadbd, mariadb-install-db). Install them "
        f"(Debian/Ubuntu: apt-get install {' '.join(PACKAGES)}), or set STANDBY_MARIADB_ROOT "
        "to a folder where the .deb files were unpacked with dpkg -x")


def ensure_mariadb(say: Any = print) -> MariaBin:
    """The binaries; installs the Debian packages (server core only: no service is started)
    when they are missing and we are root on Debian/Ubuntu, else raises ``MariaUnavailable``."""
    try:
        return mariadb_bin()
    except MariaUnavailable:
        if os.geteuid() != 0 or not shutil.which("apt-get"):
            raise
    say(f"MariaDB not found: apt-get install {' '.join(PACKAGES)} (one time)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update", "-qq"],
                ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *PACKAGES]):
        out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
        if out.returncode != 0:
            raise MariaUnavailable(f"{' '.join(cmd)} failed: {out.stderr.strip()[-500:]}")
    return mariadb_bin()


_INNODB = ("--innodb-buffer-pool-size=32M", "--innodb-log-file-size=16M",
           "--innodb-flush-log-at-trx-commit=2", "--innodb-doublewrite=0")
_TEMPLATES: dict[tuple[Path, str], Path] = {}


def _template(b: MariaBin, user: str) -> Path:
    """A freshly installed, never started data dir (made once per process)."""
    key = (b.mariadbd, user)
    if key not in _TEMPLATES:
        base = Path(tempfile.mkdtemp(prefix="standby-maria-template-"))
        atexit.register(shutil.rmtree, base, True)
        out = subprocess.run(
            [str(b.install_db), "--no-defaults", f"--datadir={base / 'data'}",
             f"--basedir={b.basedir}", f"--user={user}",
             "--auth-root-authentication-method=normal", "--skip-test-db",
             "--skip-name-resolve", *_INNODB],
            capture_output=True, text=True, timeout=120, cwd=str(base))
        if out.returncode != 0:
            raise RuntimeError(f"mariadb-install-db failed ({out.returncode}): "
                               f"{(out.stderr or out.stdout).strip()[-800:]}")
        _TEMPLATES[key] = base / "data"
    return _TEMPLATES[key]


@dataclass
class MariaServer:
    name: str
    datadir: Path
    port: int
    server_id: int
    proc: subprocess.Popen[bytes] | None = None

    @property
    def socket(self) -> Path:
        return self.datadir.parent / f"{self.name}.sock"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None and self.proc.poll() is None else None


@dataclass
class MariaPair:
    """``primary`` and ``standby`` (a GTID replica of the primary, started ``read_only``)."""

    base: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="standby-maria-")))
    admin_password: str = field(default_factory=lambda: secrets.token_urlsafe(16))
    app_password: str = field(default_factory=lambda: secrets.token_urlsafe(16))
    repl_password: str = field(default_factory=lambda: secrets.token_urlsafe(16))
    database: str = "orders"
    servers: dict[str, MariaServer] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.bin = mariadb_bin()
        self.user = pwd.getpwuid(os.geteuid()).pw_name
        self.base.chmod(0o755)

    # -- process plumbing -------------------------------------------------------------------

    def _install(self, srv: MariaServer) -> None:
        # install-db takes seconds on a busy machine; a copy of one pristine data dir per
        # process takes a fraction of that.
        shutil.copytree(_template(self.bin, self.user), srv.datadir, symlinks=True)

    def _start(self, srv: MariaServer, read_only: bool = False) -> None:
        log = open(self.base / f"{srv.name}.log", "ab")  # noqa: SIM115 - owned by the process
        args = [str(self.bin.mariadbd), "--no-defaults", f"--datadir={srv.datadir}",
                f"--basedir={self.bin.basedir}", f"--user={self.user}",
                f"--port={srv.port}", "--bind-address=127.0.0.1", f"--socket={srv.socket}",
                f"--pid-file={srv.datadir / 'mariadbd.pid'}", "--skip-name-resolve",
                f"--server-id={srv.server_id}", "--log-bin=binlog", "--binlog-format=ROW",
                "--binlog-row-image=FULL", "--log-slave-updates", "--gtid-strict-mode=ON",
                *_INNODB, "--sync-binlog=0",
                "--skip-log-error", "--max-connections=64"]
        if read_only:
            args.append("--read-only")
        srv.proc = subprocess.Popen(args, stdout=log, stderr=log, cwd=str(self.base),
                                    start_new_session=True)
        log.close()
        self._wait_ready(srv)

    def _root(self, srv: MariaServer) -> Any:
        import pymysql

        return pymysql.connect(unix_socket=str(srv.socket), user="root", autocommit=True,
                               connect_timeout=2)

    def _wait_ready(self, srv: MariaServer, timeout_s: float = 30.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if srv.proc is not None and srv.proc.poll() is not None:
                tail = (self.base / f"{srv.name}.log").read_text(errors="replace")[-800:]
                raise RuntimeError(f"mariadbd {srv.name} exited: {tail}")
            with contextlib.suppress(Exception), self.connect(srv.name, ADMIN) as c:
                c.cursor().execute("SELECT 1")
                return
            with contextlib.suppress(Exception):
                c = self._root(srv)  # before the admin user exists
                c.close()
                return
            time.sleep(0.05)
        raise RuntimeError(f"mariadbd {srv.name} not ready within {timeout_s:g} s")

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> MariaPair:
        """Install and start the primary, create the users and the database, then a replica
        that replays the primary's binlog from its first GTID."""
        p = MariaServer("primary", self.base / "primary", free_port(), 1)
        self.servers["primary"] = p
        self._install(p)
        self._start(p)
        c = self._root(p)
        try:
            cur = c.cursor()
            for user, pw in ((ADMIN, self.admin_password), (APP, self.app_password),
                             (REPL, self.repl_password)):
                cur.execute(f"CREATE USER '{user}'@'127.0.0.1' IDENTIFIED BY %s", (pw,))
            cur.execute(f"GRANT ALL ON *.* TO '{ADMIN}'@'127.0.0.1' WITH GRANT OPTION")
            cur.execute(f"GRANT REPLICATION SLAVE ON *.* TO '{REPL}'@'127.0.0.1'")
            cur.execute(f"CREATE DATABASE `{self.database}`")
            # The application role: data only. No SUPER/READ_ONLY ADMIN, so read_only binds it.
            cur.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE, CREATE, INDEX, ALTER, DROP ON "
                        f"`{self.database}`.* TO '{APP}'@'127.0.0.1'")
        finally:
            c.close()
        self.add_replica("standby", source="primary")
        return self

    def add_replica(self, name: str, source: str) -> MariaServer:
        """A fresh server replicating ``source`` by GTID from its first binlog event."""
        src = self.servers[source]
        srv = MariaServer(name, self.base / name, free_port(), 1 + len(self.servers))
        self.servers[name] = srv
        self._install(srv)
        self._start(srv, read_only=True)
        c = self._root(srv)
        try:
            cur = c.cursor()
            cur.execute("SET GLOBAL gtid_slave_pos = ''")
            cur.execute("CHANGE MASTER TO MASTER_HOST='127.0.0.1', MASTER_PORT=%s, "
                        "MASTER_USER=%s, MASTER_PASSWORD=%s, MASTER_USE_GTID=slave_pos, "
                        "MASTER_CONNECT_RETRY=1", (src.port, REPL, self.repl_password))
            cur.execute("START SLAVE")
        finally:
            c.close()
        self._wait_replicated(name)
        return srv

    def _wait_replicated(self, name: str, timeout_s: float = 30.0) -> None:
        """Until the replica has applied the admin user (so both sides take its logins)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with contextlib.suppress(Exception), self.connect(name, ADMIN) as c:
                cur = c.cursor()
                cur.execute("SELECT COUNT(*) FROM information_schema.schemata "
                            "WHERE schema_name = %s", (self.database,))
                if cur.fetchone()[0] == 1:
                    return
            time.sleep(0.05)
        tail = (self.base / f"{name}.log").read_text(errors="replace")[-800:]
        raise RuntimeError(f"replica {name} did not catch up within {timeout_s:g} s: {tail}")

    def connect(self, name: str, user: str = ADMIN, dbname: str | None = None) -> Any:
        import pymysql

        srv = self.servers[name]
        return pymysql.connect(host="127.0.0.1", port=srv.port, user=user,
                               password={ADMIN: self.admin_password, APP: self.app_password,
                                         REPL: self.repl_password}[user],
                               database=dbname or self.database, autocommit=True,
                               connect_timeout=2, read_timeout=10, write_timeout=10)

    def kill(self, name: str) -> None:
        """SIGKILL the server: a crash, not a shutdown."""
        srv = self.servers[name]
        if srv.proc is None or srv.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(srv.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            srv.proc.wait(timeout=10)

    def stop(self, name: str) -> None:
        srv = self.servers.get(name)
        if srv is None or srv.proc is None or srv.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(srv.proc.pid, signal.SIGTERM)  # clean shutdown
        try:
            srv.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.kill(name)

    def restart(self, name: str) -> None:
        """Start a stopped or killed server again on its data dir and port. ``read_only`` is
        not persisted by MariaDB: a restarted old primary comes back writable."""
        self._start(self.servers[name])

    def endpoint(self, name: str) -> dict[str, Any]:
        return {"host": "127.0.0.1", "port": self.servers[name].port}

    def close(self) -> None:
        for name in list(self.servers):
            self.stop(name)
        shutil.rmtree(self.base, ignore_errors=True)

    def __enter__(self) -> MariaPair:
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(self, *exc: object) -> None:
        self.close()
