"""A real PostgreSQL primary with a streaming replica in a temp dir, for tests and the drill.

Needs the PostgreSQL server binaries (``initdb``, ``postgres``, ``pg_basebackup``): found via
``STANDBY_PG_BIN``, ``pg_config --bindir`` or ``/usr/lib/postgresql/<version>/bin``. When run
as root, the servers run as the ``postgres`` user (PostgreSQL refuses to run as root).
Every process started here is stopped by ``close()`` (and by the context manager).
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ADMIN, APP = "postgres", "app"


class PgUnavailable(RuntimeError):
    pass


def pg_bin() -> Path:
    candidates = [os.environ.get("STANDBY_PG_BIN", "")]
    if shutil.which("pg_config"):
        with contextlib.suppress(OSError, subprocess.CalledProcessError):
            candidates.append(subprocess.run(["pg_config", "--bindir"], capture_output=True,
                                             text=True, check=True).stdout.strip())
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"),
                         key=lambda p: int(Path(p).parent.name) if Path(p).parent.name.isdigit()
                         else 0, reverse=True)
    for c in candidates:
        if c and (Path(c) / "initdb").exists() and (Path(c) / "pg_basebackup").exists():
            return Path(c)
    raise PgUnavailable(
        "PostgreSQL server binaries not found (initdb, postgres, pg_basebackup). Install them "
        "(Debian/Ubuntu: apt-get install postgresql) or set STANDBY_PG_BIN to their folder")


def ensure_postgres(say: Any = print) -> Path:
    """The server binaries' folder; installs the Debian package when they are missing and
    this is a Debian/Ubuntu machine where we are root, else raises ``PgUnavailable``."""
    try:
        return pg_bin()
    except PgUnavailable:
        if os.geteuid() != 0 or not shutil.which("apt-get"):
            raise
    say("PostgreSQL server binaries not found: apt-get install postgresql (one time)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update", "-qq"],
                ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "postgresql"]):
        out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
        if out.returncode != 0:
            raise PgUnavailable(f"{' '.join(cmd)} failed: {out.stderr.strip()[-500:]}")
    return pg_bin()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class PgServer:
    name: str
    datadir: Path
    port: int
    proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        try:
            return int((self.datadir / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None


@dataclass
class PgPair:
    """``primary`` and ``standby`` (a streaming replica of the primary).

    ``app_user`` owns ``database`` and logs in with ``app_password`` (the RDS master user
    when the sandbox stands in for RDS); ``ADMIN`` is the local superuser the sandbox
    itself uses to promote, fence and copy."""

    base: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="standby-pg-")))
    admin_password: str = field(default_factory=lambda: secrets.token_urlsafe(16))
    app_password: str = field(default_factory=lambda: secrets.token_urlsafe(16))
    database: str = "orders"
    app_user: str = APP
    #: ``logical`` for a logical-replication publisher or subscriber (standby migrate).
    wal_level: str = "replica"
    #: False: only the primary (a migration's source or target needs no streaming replica).
    with_standby: bool = True
    servers: dict[str, PgServer] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.bin = pg_bin()
        self._as_postgres = os.geteuid() == 0
        if self._as_postgres:
            pw = pwd.getpwnam("postgres")
            self._uid, self._gid = pw.pw_uid, pw.pw_gid
            os.chown(self.base, self._uid, self._gid)
        self.base.chmod(0o755)

    # -- process plumbing -------------------------------------------------------------------

    def _cmd(self, *args: str) -> list[str]:
        return (["runuser", "-u", "postgres", "--"] if self._as_postgres else []) + list(args)

    def _run(self, *args: str, env: dict[str, str] | None = None) -> None:
        out = subprocess.run(self._cmd(*args), capture_output=True, text=True, timeout=60,
                             env={**os.environ, **(env or {})}, cwd=str(self.base))
        if out.returncode != 0:
            raise RuntimeError(f"{Path(args[0]).name} failed ({out.returncode}): "
                               f"{out.stderr.strip()[-800:]}")

    def _start(self, srv: PgServer) -> None:
        log = open(self.base / f"{srv.name}.log", "ab")  # noqa: SIM115 - owned by the process
        srv.proc = subprocess.Popen(
            self._cmd(str(self.bin / "postgres"), "-D", str(srv.datadir), "-p", str(srv.port),
                      "-k", str(self.base), "-c", "listen_addresses=127.0.0.1"),
            stdout=log, stderr=log, cwd=str(self.base), start_new_session=True)
        log.close()
        self._wait_ready(srv)

    def _wait_ready(self, srv: PgServer, timeout_s: float = 30.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if srv.proc is not None and srv.proc.poll() is not None:
                tail = (self.base / f"{srv.name}.log").read_text(errors="replace")[-800:]
                raise RuntimeError(f"postgres {srv.name} exited: {tail}")
            with contextlib.suppress(Exception), self.connect(srv.name, ADMIN) as c:
                c.execute("SELECT 1")
                return
            time.sleep(0.05)
        raise RuntimeError(f"postgres {srv.name} not ready within {timeout_s:g} s")

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self, primary: str = "primary", replica: str | None = "standby") -> PgPair:
        """initdb the primary, create the app role and database, then a streaming replica
        (none when ``replica`` is None)."""
        p = PgServer(primary, self.base / primary, free_port())
        self.servers[primary] = p
        pwfile = self.base / "pw"
        pwfile.write_text(self.admin_password)
        if self._as_postgres:
            os.chown(pwfile, self._uid, self._gid)
        self._run(str(self.bin / "initdb"), "-D", str(p.datadir), "-U", ADMIN, "--pwfile",
                  str(pwfile), "--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8",
                  "--no-sync")
        pwfile.unlink()
        with open(p.datadir / "postgresql.auto.conf", "a") as f:
            f.write(f"wal_level = {self.wal_level}\nmax_wal_senders = 8\nhot_standby = on\n"
                    "fsync = off\nfull_page_writes = off\nwal_keep_size = '64MB'\n"
                    "wal_receiver_status_interval = 1\n")
        self._start(p)
        with self.connect(primary, ADMIN) as c:
            c.execute(f"CREATE ROLE {_ident(self.app_user)} LOGIN PASSWORD "
                      f"{_literal(self.app_password)}")
            c.execute(f"CREATE DATABASE {_ident(self.database)} OWNER {_ident(self.app_user)}")
        if replica is not None and self.with_standby:
            self.add_replica(replica, source=primary)
        return self

    def add_replica(self, name: str, source: str) -> PgServer:
        """``pg_basebackup -R`` of ``source`` into a new data dir, started as a replica."""
        src = self.servers[source]
        old = self.servers.get(name)
        if old is not None:
            self.stop(name)
            shutil.rmtree(old.datadir, ignore_errors=True)
        srv = PgServer(name, self.base / f"{name}-{int(time.time() * 1000)}", free_port()
                       if old is None else old.port)
        self._run(str(self.bin / "pg_basebackup"), "-h", "127.0.0.1", "-p", str(src.port),
                  "-U", ADMIN, "-D", str(srv.datadir), "-R", "-X", "stream", "--no-sync",
                  "-c", "fast",
                  env={"PGPASSWORD": self.admin_password})
        # A copy of a fenced server carries its read-only setting: the replica starts clean.
        with contextlib.suppress(OSError):
            auto = srv.datadir / "postgresql.auto.conf"
            lines = [ln for ln in auto.read_text().splitlines()
                     if not ln.startswith("default_transaction_read_only")]
            auto.write_text("\n".join(lines) + "\n")
        self.servers[name] = srv
        self._start(srv)
        return srv

    def connect(self, name: str, user: str = ADMIN, dbname: str | None = None) -> Any:
        import psycopg

        srv = self.servers[name]
        return psycopg.connect(host="127.0.0.1", port=srv.port, user=user,
                               password=self.admin_password if user == ADMIN
                               else self.app_password,
                               dbname=dbname or (self.database if user == self.app_user
                                                 else "postgres"),
                               autocommit=True, connect_timeout=2)

    def kill(self, name: str) -> None:
        """SIGKILL the postmaster and every backend: a crash, not a shutdown."""
        srv = self.servers[name]
        pid = srv.pid
        if pid is None:
            return
        children = _children(pid)
        for p in [pid, *children]:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(p, signal.SIGKILL)
        if srv.proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                srv.proc.wait(timeout=10)
        with contextlib.suppress(OSError):
            (srv.datadir / "postmaster.pid").unlink()

    def stop(self, name: str) -> None:
        srv = self.servers.get(name)
        if srv is None or srv.proc is None or srv.proc.poll() is not None:
            return
        pid = srv.pid
        if pid is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGINT)  # fast shutdown
        try:
            srv.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.kill(name)

    def promote(self, name: str, timeout_s: float = 30.0) -> None:
        """End recovery on a replica (``pg_promote``): it stops replicating and takes
        writes. Raises ``RuntimeError`` when it did not finish within ``timeout_s``."""
        with self.connect(name, ADMIN) as c:
            row = c.execute("SELECT pg_promote(true, %s)", (max(1, int(timeout_s)),)).fetchone()
        if not row or not row[0]:
            raise RuntimeError(f"postgres {name} was not promoted within {timeout_s:g} s")

    def in_recovery(self, name: str) -> bool:
        with self.connect(name, ADMIN) as c:
            row = c.execute("SELECT pg_is_in_recovery()").fetchone()
        return bool(row and row[0])

    def restart(self, name: str) -> None:
        """Start a stopped or killed server again on its data dir and port."""
        self._start(self.servers[name])

    def url(self, name: str = "primary", user: str = ADMIN) -> str:
        """A libpq URL of the server, as a ``standby migrate`` endpoint takes it."""
        from urllib.parse import quote

        pw = self.admin_password if user == ADMIN else self.app_password
        db = self.database
        return f"postgresql://{user}:{quote(pw, safe='')}@127.0.0.1:{self.servers[name].port}/{db}"

    def endpoint(self, name: str) -> dict[str, Any]:
        return {"host": "127.0.0.1", "port": self.servers[name].port}

    def close(self) -> None:
        for name in list(self.servers):
            self.stop(name)
        shutil.rmtree(self.base, ignore_errors=True)

    def __enter__(self) -> PgPair:
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(self, *exc: object) -> None:
        self.close()


def _ident(s: str) -> str:
    return '"' + s.replace('"', '""') + '"'


def _literal(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


def _children(pid: int) -> list[int]:
    out = []
    for stat in glob.glob("/proc/[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = Path(stat).read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == pid:
                out.append(int(Path(stat).parent.name))
    return out
