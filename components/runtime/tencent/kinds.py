"""The Tencent adapter's probe and switch kinds, registered on import of
``components.runtime.tencent`` (the keys are those the Tencent deploy emits).

Roles: the logic function is what the gateway layer switches (``backend``), as is the CDB
instance of the data layer (``cdb_sql``); a COS bucket is
a ``dependency`` of the data layer (it alerts, never promotes a database). The pointer
kinds keep their rows in the SQL state store; ``tencent_pointer_all`` is the data pointer
that every region's functions read from that one store. ``cdb_dr_switch`` promotes the DR
instance (one way) under a lag guard.
"""

from __future__ import annotations

from components.runtime.registry import (
    ProbeKind,
    StateStoreKind,
    SwitchKind,
    register_probe,
    register_state_store,
    register_switch,
)

PROBES = tuple(register_probe(k) for k in (
    ProbeKind("scf_invoke", "backend", ("scope", "side", "region", "namespace", "function"),
              component="function"),
    ProbeKind("cos_bucket", "dependency", ("scope", "side", "region", "bucket"),
              component="bucket"),
    # A CDB instance by id: a DR instance has no address output at deploy time, so the
    # probe looks the address up (DescribeDBInstances) and reads the account from the DSN
    # secret, then runs the core SQL probe (role, read-only flag, replication and lag).
    ProbeKind("cdb_sql", "backend",
              ("scope", "side", "engine", "region", "instance_id", "database", "secret_name",
               "secret_region"),
              component="database"),
))

SWITCHES = tuple(register_switch(k) for k in (
    SwitchKind("dnspod_record_status",
               ("scope", "domain", "sub_domain", "record_line", "record_ids"),
               component="dns"),
    SwitchKind("scf_custom_domain",
               ("scope", "region", "domain", "namespace", "path", "values"),
               component="route"),
    SwitchKind("tencent_pointer", ("scope", "key", "values"), component="pointer"),
    SwitchKind("tencent_pointer_all", ("scope", "key", "values"), component="pointer"),
    # primary_region: after the promotion the DR instance no longer names its master, and
    # the heartbeat must still find the old primary to keep it fenced.
    SwitchKind("cdb_dr_switch",
               ("scope", "region", "primary_region", "instance_ids", "max_lag_s"),
               component="database", lag_guard=True),
    # After a data failover the active side's COS bucket is the replication source
    # (``cos_switch``); ``role`` is the replication Role, ``buckets`` {side: {region, bucket}}.
    SwitchKind("cos_replication", ("scope", "role", "buckets"), component="bucket"),
))

#: The SQL state store on TencentDB for MySQL, found through the SSM secret holding its DSN
#: (``components.runtime.tencent.state``); the secret's version is optional (default v1).
STATE_STORE = register_state_store(StateStoreKind("mysql", "STANDBY_STATE_DSN_SECRET",
                                                  ("STANDBY_STATE_DSN_VERSION",)))
