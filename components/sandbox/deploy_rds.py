"""RDS in the sandbox: each ``aws:rds/instance:Instance`` is an instance in moto (so
DescribeDBInstances, PromoteReadReplica, the ``rds_promote`` switcher and IAM work as
deployed) backed by a real local PostgreSQL server; a read replica is a streaming replica
of its source's server (``pg.PgPair``). The master password is the one the sandbox
generated for the plan's ``random.RandomPassword``.

Endpoints. moto answers ``<identifier>.aaaaaaaaaa.<region>.rds.amazonaws.com``, a name no
resolver knows, and the plan's functions name the plan's endpoint. Every input the deploy
sends after an instance exists is rewritten (``relocate_endpoints``): a ``host:port`` string
naming the instance, and a ``{"host": ..., "port": ...}`` object (also inside JSON-valued
strings such as a monitor's ``STANDBY_PROBES``), become ``127.0.0.1:<local port>``. moto's
instance is created with that port, so its ``Endpoint.Port`` is the server's real port.

The control plane (``RdsController``, a thread) applies what RDS would do to the servers:

- PromoteReadReplica: moto (patched in ``moto_proc``) reports the replica ``modifying`` and
  keeps ``ReadReplicaSourceDBInstanceIdentifier`` until the promotion is done, as RDS
  does. The controller promotes the local replica (it stops replicating and takes writes),
  reboots it (RDS reboots a promoted replica; open connections drop), then completes the
  promotion in moto through RebootDBInstance: ``available``, no source, and the source no
  longer lists it.
- ``kill(region)``: the region's server is SIGKILLed (connection refused), moto unchanged.
- ``rebuild(region, source)``: RDS cannot turn a promoted or old primary back into a
  replica; the way back is a new read replica. The sandbox deletes the old instance in
  moto and creates a read replica of ``source`` under the same identifier (so the same
  endpoint), and re-seeds the local server from ``source`` (``pg_basebackup``) on the same
  port.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import re
import secrets
import string
import threading
from dataclasses import dataclass
from typing import Any

from components.plan.mocks import Registration
from components.sandbox.deploy_model import MASKED, Deployment, _int, _tags, handles
from components.sandbox.pg import PgPair, ensure_postgres

LOCALHOST = "127.0.0.1"
#: Terraform's random_password default for ``special`` characters.
DEFAULT_SPECIAL = "!@#$%&*()-_=+[]{}<>:?"
CONTROL_INTERVAL_S = 0.3
STOP_TIMEOUT_S = 10.0


# -- the generated password ---------------------------------------------------------------

def generate_password(inputs: dict[str, Any]) -> str:
    """A password as ``random.RandomPassword`` makes one from these inputs: ``length``;
    ``upper``/``lower``/``numeric``/``special`` (each default true) with their ``min*``
    counts; ``overrideSpecial`` replaces the special characters."""
    def flag(name: str) -> bool:
        v = inputs.get(name, True)
        return v if isinstance(v, bool) else str(v).lower() == "true"

    length = _int(inputs.get("length", 0))
    classes = {"upper": string.ascii_uppercase, "lower": string.ascii_lowercase,
               "numeric": string.digits,
               "special": str(inputs.get("overrideSpecial") or DEFAULT_SPECIAL)}
    on = {k: v for k, v in classes.items() if flag(k) and v}
    mins = {k: _int(inputs.get(f"min{k[0].upper()}{k[1:]}", 0)) for k in on}
    if length < 1 or not on or sum(mins.values()) > length:
        raise ValueError(
            f"RandomPassword: length {length} with character classes {sorted(on) or 'none'} "
            f"and minimums {mins}; allowed: length >= 1, at least one of upper/lower/numeric/"
            "special on, and the minimums adding up to at most length")
    rng = secrets.SystemRandom()
    chars = [rng.choice(on[k]) for k, n in mins.items() for _ in range(n)]
    pool = "".join(on.values())
    chars += [rng.choice(pool) for _ in range(length - len(chars))]
    rng.shuffle(chars)
    return "".join(chars)


@handles("random:index/randomPassword:RandomPassword")
def _random_password(d: Deployment, r: Registration, i: dict[str, Any], region: str) -> str:
    password = generate_password(i)
    plan_value = str(r.outputs.get("result", ""))
    if plan_value:
        d.generated.add(plan_value)
        d.map(plan_value, password)
    return f"(generated, {len(password)} characters, never printed)"


# -- endpoints ----------------------------------------------------------------------------

def relocate_endpoints(value: Any, endpoints: dict[str, tuple[str, int]]) -> Any:
    """``value`` with every endpoint of a plan database host pointed at its local server."""
    if isinstance(value, dict):
        out = {k: relocate_endpoints(v, endpoints) for k, v in value.items()}
        host = value.get("host")
        if isinstance(host, str) and host in endpoints:
            out["host"], out["port"] = endpoints[host]
        return out
    if isinstance(value, list):
        return [relocate_endpoints(v, endpoints) for v in value]
    if not isinstance(value, str) or not any(h in value for h in endpoints):
        return value
    if value[:1] in "[{":
        with contextlib.suppress(ValueError):
            return json.dumps(relocate_endpoints(json.loads(value), endpoints))
    for host, (local, port) in endpoints.items():
        value = re.sub(re.escape(host) + r"(:\d+)?", f"{local}:{port}", value)
    return value


# -- instances and their servers ------------------------------------------------------------

@dataclass
class Instance:
    identifier: str
    region: str
    arn: str
    port: int
    pair: PgPair
    instance_class: str
    source: str | None = None
    """The source instance's identifier while this is a read replica."""


class RdsWorld:
    """The local servers behind the deployed RDS instances, and their control plane."""

    def __init__(self, d: Deployment) -> None:
        self.d = d
        self.instances: dict[str, Instance] = {}
        self.pairs: list[PgPair] = []
        self.events: list[str] = []
        """What the control plane did, in order (for the drill's report)."""
        self.errors: list[str] = []
        self.lock = threading.Lock()
        self.controller = RdsController(self)

    # -- deploy ------------------------------------------------------------------------------

    def create_primary(self, r: Registration, i: dict[str, Any], region: str) -> Instance:
        engine = str(i.get("engine", ""))
        if engine != "postgres":
            raise ValueError(f"rds instance {r.name}: engine {engine!r}; the sandbox backs "
                             "RDS with local PostgreSQL only; allowed: postgres")
        password = str(i.get("password") or "")
        if not password or password == MASKED:
            raise ValueError(f"rds instance {r.name}: the master password is masked; deploy "
                             "with deploy_stack (RevealingMocks) so the generated one is known")
        ensure_postgres(say=lambda _m: None)
        ident = str(i["identifier"])
        pair = PgPair(app_user=str(i["username"]), app_password=password,
                      database=str(i.get("dbName") or "postgres"))
        self.pairs.append(pair)
        pair.start(primary=ident, replica=None)
        port = pair.servers[ident].port
        args: dict[str, Any] = {
            "DBInstanceIdentifier": ident, "Engine": engine,
            "DBInstanceClass": str(i["instanceClass"]),
            "AllocatedStorage": _int(i.get("allocatedStorage", 20)),
            "MasterUsername": str(i["username"]), "MasterUserPassword": password,
            "MultiAZ": bool(i.get("multiAz")), "StorageEncrypted": bool(i.get("storageEncrypted")),
            "BackupRetentionPeriod": _int(i.get("backupRetentionPeriod", 1)),
            "DeletionProtection": bool(i.get("deletionProtection")),
            "PubliclyAccessible": bool(i.get("publiclyAccessible")), "Port": port,
            "Tags": [{"Key": k, "Value": v} for k, v in _tags(i).items()],
        }
        for src, dst in (("dbName", "DBName"), ("dbSubnetGroupName", "DBSubnetGroupName"),
                         ("engineVersion", "EngineVersion"), ("kmsKeyId", "KmsKeyId")):
            if i.get(src):
                args[dst] = str(i[src])
        if i.get("vpcSecurityGroupIds"):
            args["VpcSecurityGroupIds"] = [str(g) for g in i["vpcSecurityGroupIds"]]
        out = self.d.client("rds", region).create_db_instance(**args)["DBInstance"]
        return self._record(r, region, Instance(ident, region, str(out["DBInstanceArn"]), port,
                                                pair, str(i["instanceClass"])))

    def create_replica(self, r: Registration, i: dict[str, Any], region: str) -> Instance:
        src = self.find(str(i["replicateSourceDb"]))
        ident = str(i["identifier"])
        server = src.pair.add_replica(ident, source=src.identifier)
        args: dict[str, Any] = {
            "DBInstanceIdentifier": ident, "SourceDBInstanceIdentifier": src.arn,
            "DBInstanceClass": str(i["instanceClass"]), "Port": server.port,
            "DeletionProtection": bool(i.get("deletionProtection")),
            "PubliclyAccessible": bool(i.get("publiclyAccessible")),
            "Tags": [{"Key": k, "Value": v} for k, v in _tags(i).items()],
        }
        for src_key, dst in (("dbSubnetGroupName", "DBSubnetGroupName"),
                             ("kmsKeyId", "KmsKeyId")):
            if i.get(src_key):
                args[dst] = str(i[src_key])
        if i.get("vpcSecurityGroupIds"):
            args["VpcSecurityGroupIds"] = [str(g) for g in i["vpcSecurityGroupIds"]]
        out = self.d.client("rds", region).create_db_instance_read_replica(**args)["DBInstance"]
        inst = Instance(ident, region, str(out["DBInstanceArn"]), server.port, src.pair,
                        str(i["instanceClass"]), source=src.identifier)
        self._record(r, region, inst)
        self.controller.ensure_started()
        return inst

    def _record(self, r: Registration, region: str, inst: Instance) -> Instance:
        with self.lock:
            self.instances[inst.identifier] = inst
        self.d.map(str(r.outputs.get("arn", "")), inst.arn)
        address = str(r.outputs.get("address", ""))
        if address:
            self.d.endpoints[address] = (LOCALHOST, inst.port)
        return inst

    def find(self, ref: str) -> Instance:
        """An instance by identifier or ARN."""
        for inst in self.instances.values():
            if ref in (inst.identifier, inst.arn):
                return inst
        raise LookupError(f"rds instance {ref!r} was not deployed; deployed: "
                          f"{', '.join(sorted(self.instances)) or '(none)'}")

    def in_region(self, region: str) -> Instance:
        found = [x for x in self.instances.values() if x.region == region]
        if len(found) != 1:
            raise LookupError(f"region {region!r} holds {len(found)} rds instances; "
                              f"regions with one: {', '.join(sorted(self.regions()))}")
        return found[0]

    def regions(self) -> list[str]:
        return sorted({x.region for x in self.instances.values()})

    # -- for the drill -----------------------------------------------------------------------

    def endpoint(self, region: str) -> tuple[str, int]:
        """Where the region's instance really listens."""
        return LOCALHOST, self.in_region(region).port

    def connect(self, region: str, admin: bool = False) -> Any:
        """A connection to the region's server: as the master user, or the local superuser
        (``admin``; RDS has none, the sandbox needs one to inspect)."""
        inst = self.in_region(region)
        return inst.pair.connect(inst.identifier) if admin else inst.pair.connect(
            inst.identifier, inst.pair.app_user)

    def kill(self, region: str) -> None:
        """The region's server crashes (SIGKILL): connections are refused."""
        inst = self.in_region(region)
        inst.pair.kill(inst.identifier)
        self.events.append(f"killed {inst.identifier} ({region})")

    def rebuild(self, region: str, source: str) -> None:
        """The region's instance becomes a new read replica of ``source``'s (region)."""
        old, src = self.in_region(region), self.in_region(source)
        if src.source is not None:
            raise ValueError(f"rebuild {region} from {source}: {src.identifier} is itself a "
                             "replica; allowed: a standalone (promoted or original) primary")
        rds = self.d.client("rds", region)
        # The new replica keeps the old instance's network and protection settings.
        keep: dict[str, Any] = {}
        with contextlib.suppress(rds.exceptions.DBInstanceNotFoundFault):
            was = rds.describe_db_instances(DBInstanceIdentifier=old.identifier)[
                "DBInstances"][0]
            if was.get("DBSubnetGroup"):
                keep["DBSubnetGroupName"] = was["DBSubnetGroup"]["DBSubnetGroupName"]
            keep["VpcSecurityGroupIds"] = [g["VpcSecurityGroupId"]
                                           for g in was.get("VpcSecurityGroups") or []]
            keep["DeletionProtection"] = bool(was.get("DeletionProtection"))
            rds.modify_db_instance(DBInstanceIdentifier=old.identifier,
                                   DeletionProtection=False, ApplyImmediately=True)
            rds.delete_db_instance(DBInstanceIdentifier=old.identifier, SkipFinalSnapshot=True)
        server = src.pair.add_replica(old.identifier, source=src.identifier)
        rds.create_db_instance_read_replica(
            DBInstanceIdentifier=old.identifier, SourceDBInstanceIdentifier=src.arn,
            DBInstanceClass=old.instance_class, Port=server.port, **keep)
        with self.lock:
            old.pair, old.source, old.port = src.pair, src.identifier, server.port
        self.events.append(f"rebuilt {old.identifier} ({region}) as a replica of "
                           f"{src.identifier} ({source})")
        self.controller.ensure_started()

    # -- control plane -----------------------------------------------------------------------

    def settle(self, inst: Instance) -> None:
        """Apply a promotion moto accepted to the local replica (see the module doc)."""
        if inst.source is None:
            return
        rds = self.d.client("rds", inst.region)
        got = rds.describe_db_instances(DBInstanceIdentifier=inst.identifier)["DBInstances"][0]
        if got.get("DBInstanceStatus") != "modifying":
            return
        inst.pair.promote(inst.identifier)
        # RDS reboots a promoted replica before it reports it available.
        inst.pair.stop(inst.identifier)
        inst.pair.restart(inst.identifier)
        rds.reboot_db_instance(DBInstanceIdentifier=inst.identifier)
        with self.lock:
            inst.source = None
        self.events.append(f"promoted {inst.identifier} ({inst.region})")

    def close(self) -> None:
        self.controller.stop()
        for pair in self.pairs:
            pair.close()
        self.pairs.clear()


class RdsController:
    """A thread that settles promotions every ``CONTROL_INTERVAL_S`` until ``stop``."""

    def __init__(self, world: RdsWorld) -> None:
        self.world = world
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def ensure_started(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="sandbox-rds-control",
                                            daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(CONTROL_INTERVAL_S):
            with self.world.lock:
                replicas = [x for x in self.world.instances.values() if x.source is not None]
            for inst in replicas:
                try:
                    self.world.settle(inst)
                except Exception as exc:  # reported; the loop keeps serving
                    error = f"{inst.identifier}: {type(exc).__name__}: {exc}"
                    if error not in self.world.errors[-1:]:
                        self.world.errors.append(error)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=STOP_TIMEOUT_S)


def rds_world(d: Deployment) -> RdsWorld:
    """The deployment's RDS world, for the drill: ``kill``, ``rebuild``, ``endpoint``,
    ``connect``. Raises ``LookupError`` when the stack deployed no RDS instance."""
    for x in d.services:
        if isinstance(x, RdsWorld):
            return x
    raise LookupError(f"stack {d.stack or '(unnamed)'} deployed no RDS instance")


def _world(d: Deployment) -> RdsWorld:
    """The deployment's RDS world, created on the first instance and closed with the
    deployment (``Deployment.close``, or at interpreter exit at the latest: the servers
    run in their own sessions and would outlive this process)."""
    with contextlib.suppress(LookupError):
        return rds_world(d)
    world = RdsWorld(d)
    d.services.append(world)
    atexit.register(world.close)
    return world


@handles("aws:rds/instance:Instance")
def _db_instance(d: Deployment, r: Registration, i: dict[str, Any], region: str) -> str:
    world = _world(d)
    if i.get("replicateSourceDb"):
        inst = world.create_replica(r, i, region)
        return f"{inst.identifier} (replica of {inst.source}) -> {LOCALHOST}:{inst.port}"
    inst = world.create_primary(r, i, region)
    return f"{inst.identifier} -> {LOCALHOST}:{inst.port}"
