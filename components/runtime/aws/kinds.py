"""The AWS adapter's probe and switch kinds, registered on import of
``components.runtime.aws`` (the package imports this module), so ``config.load`` accepts an
AWS monitor's environment once its handler has imported the adapter.

Roles (see ``components.runtime.registry``): the logic/wrapper function and the data store
are what their layers switch (``backend``); a bucket is a ``dependency`` of the data layer:
its failure alerts, and no database is ever promoted for it. ``http`` (the entry path) and
``sql`` are cloud-neutral kinds registered by the core.
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
    ProbeKind("lambda", "backend", ("scope", "side", "function"), component="function"),
    ProbeKind("dynamodb", "backend", ("scope", "side", "region", "table"), component="table"),
    ProbeKind("bucket", "dependency", ("scope", "side", "region", "bucket"),
              component="bucket"),
))

SWITCHES = tuple(register_switch(k) for k in (
    # No veto metric or alarm: veto was dead code (always 0) and is removed. An environment
    # from an older deploy that still names them is accepted; the keys are ignored.
    SwitchKind("route53_health_metrics",
               ("scope", "region", "namespace", "dimensions", "force_metric", "force_alarm"),
               component="dns"),
    SwitchKind("route53_record", ("scope", "zone_id", "name", "type", "ttl", "values"),
               component="dns"),
    SwitchKind("apigw_stage_variable",
               ("scope", "region", "rest_api_id", "stage", "variable", "values"),
               component="route"),
    SwitchKind("apigw_integration", ("scope", "region", "api_id", "integration_id", "values"),
               component="route"),
    SwitchKind("pointer", ("scope", "region", "table", "key", "values"), component="pointer"),
    SwitchKind("pointer_all", ("scope", "tables", "key", "values"), component="pointer"),
    SwitchKind("rds_promote", ("scope", "region", "instance_id", "max_lag_s"),
               component="database", lag_guard=True),
    SwitchKind("sql_promote",
               ("scope", "engine", "database", "sides", "max_lag_s", "secret_arn"),
               component="database", lag_guard=True),
))

#: The state, lease and pointer table (``components.runtime.aws.state``).
STATE_STORE = register_state_store(StateStoreKind("dynamodb", "STANDBY_STATE_TABLE"))
