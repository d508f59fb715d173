"""The Tencent adapter's probe and switch kinds, registered on import of
``components.runtime.tencent`` (the keys are those the Tencent deploy emits).

Roles: the logic function is what the gateway layer switches (``backend``); a COS bucket is
a ``dependency`` of the data layer (it alerts, never promotes a database). The pointer
kinds keep their rows in the SQL state store; ``tencent_pointer_all`` is the data pointer
that every region's functions read from that one store. ``cdb_dr_switch`` promotes the DR
instance (one way) under a lag guard.
"""

from __future__ import annotations

from components.runtime.registry import ProbeKind, SwitchKind, register_probe, register_switch

PROBES = tuple(register_probe(k) for k in (
    ProbeKind("scf_invoke", "backend", ("scope", "side", "region", "namespace", "function"),
              component="function"),
    ProbeKind("cos_bucket", "dependency", ("scope", "side", "region", "bucket"),
              component="bucket"),
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
    SwitchKind("cdb_dr_switch", ("scope", "region", "instance_ids", "max_lag_s"),
               component="database", lag_guard=True),
))
