"""Every AWS API call the run-time code makes, the IAM action(s) it needs, and on what.

Pure data, no ``pulumi`` import: the deploy-time components (policies), the policy pack
(``policy/rules.py``) and the IAM sufficiency test read the same table, so a new call in
``components/runtime`` that is not listed here fails the test instead of failing on AWS.

Three parts:
  ``API_ACTIONS``        boto3 ``(service, method)`` -> IAM actions (AWS Service Authorization
                         Reference). ``transact_write_items`` has no action of its own: each
                         item needs its own action (``TRANSACT_ITEM_ACTIONS``, AWS "Using IAM
                         with DynamoDB transactions"), so a ``ConditionCheck`` needs
                         ``dynamodb:ConditionCheckItem``.
  ``UNITS``              which piece of run-time code (a module's top-level class or function)
                         makes which calls, and on which kind of resource.
  ``PROBE_UNITS`` etc.   which units a role runs for each probe kind, switch kind and part.
"""

from __future__ import annotations

from dataclasses import dataclass

#: boto3 client method -> the IAM actions AWS authorises it with.
API_ACTIONS: dict[tuple[str, str], tuple[str, ...]] = {
    ("dynamodb", "get_item"): ("dynamodb:GetItem",),
    ("dynamodb", "put_item"): ("dynamodb:PutItem",),
    ("dynamodb", "update_item"): ("dynamodb:UpdateItem",),
    ("dynamodb", "delete_item"): ("dynamodb:DeleteItem",),
    ("dynamodb", "query"): ("dynamodb:Query",),
    ("dynamodb", "describe_table"): ("dynamodb:DescribeTable",),
    ("dynamodb", "transact_write_items"): (),  # per item, see TRANSACT_ITEM_ACTIONS
    ("s3", "head_bucket"): ("s3:ListBucket",),
    ("s3", "list_objects_v2"): ("s3:ListBucket",),
    ("s3", "get_object"): ("s3:GetObject",),
    ("s3", "put_object"): ("s3:PutObject",),
    ("s3", "head_object"): ("s3:GetObject",),
    ("lambda", "invoke"): ("lambda:InvokeFunction",),
    ("lambda", "get_function_configuration"): ("lambda:GetFunctionConfiguration",),
    ("apigateway", "get_stage"): ("apigateway:GET",),
    ("apigateway", "update_stage"): ("apigateway:PATCH",),
    ("apigatewayv2", "get_integration"): ("apigateway:GET",),
    ("apigatewayv2", "update_integration"): ("apigateway:PATCH",),
    ("cloudwatch", "put_metric_data"): ("cloudwatch:PutMetricData",),
    ("cloudwatch", "describe_alarms"): ("cloudwatch:DescribeAlarms",),
    ("route53", "change_resource_record_sets"): ("route53:ChangeResourceRecordSets",),
    ("route53", "list_resource_record_sets"): ("route53:ListResourceRecordSets",),
    ("rds", "describe_db_instances"): ("rds:DescribeDBInstances",),
    ("rds", "promote_read_replica"): ("rds:PromoteReadReplica",),
    ("rds", "modify_db_parameter_group"): ("rds:ModifyDBParameterGroup",),
    ("sns", "publish"): ("sns:Publish",),
    ("secretsmanager", "get_secret_value"): ("secretsmanager:GetSecretValue",),
}

#: ``TransactItems`` entry key -> the action that entry needs.
TRANSACT_ITEM_ACTIONS: dict[str, str] = {
    "Put": "dynamodb:PutItem",
    "Update": "dynamodb:UpdateItem",
    "Delete": "dynamodb:DeleteItem",
    "ConditionCheck": "dynamodb:ConditionCheckItem",
}

#: Publishing to a topic encrypted with a customer-managed key: SNS asks KMS on the
#: publisher's behalf (AWS "Encryption at rest" for SNS, "publisher permissions").
SNS_KMS_ACTIONS: tuple[str, ...] = ("kms:Decrypt", "kms:GenerateDataKey")


@dataclass(frozen=True)
class Call:
    service: str
    method: str
    resource: str
    """The kind of resource the call is on; the test resolves it from a role's wiring:
    state_table, pointer_table, data_table, bucket, bucket_probe_object, bucket_object,
    function, rest_stage, http_integration, metric, alarm, hosted_zone, db_instance,
    db_secret, webhook_secret, topic, monitor_function, db_parameter_group."""
    items: tuple[str, ...] = ()
    """``TransactItems`` entry keys, for ``transact_write_items``."""

    @property
    def actions(self) -> tuple[str, ...]:
        return API_ACTIONS[(self.service, self.method)] + tuple(
            TRANSACT_ITEM_ACTIONS[i] for i in self.items)


def _c(service: str, method: str, resource: str, *items: str) -> Call:
    return Call(service, method, resource, tuple(items))


#: ``(module path under components/runtime, top-level class or function)`` -> its calls.
UNITS: dict[tuple[str, str], tuple[Call, ...]] = {
    ("aws/state.py", "DynamoStateStore"): (
        _c("dynamodb", "update_item", "state_table"),
        _c("dynamodb", "get_item", "state_table"),
        _c("dynamodb", "query", "state_table"),
        _c("dynamodb", "put_item", "state_table"),
        _c("dynamodb", "transact_write_items", "state_table", "Update", "Put", "ConditionCheck"),
    ),
    # The witness lease's copy in one region (issue 15); no role runs it yet, so no plan
    # grants it: the wiring adds it to the data monitor's and the witness's units.
    ("aws/quorum_state.py", "DynamoLeaseStore"): (
        _c("dynamodb", "get_item", "state_table"),
        _c("dynamodb", "put_item", "state_table"),
        _c("dynamodb", "update_item", "state_table"),
    ),
    ("aws/alerts.py", "sns_sender"): (_c("sns", "publish", "topic"),),
    ("aws/alerts.py", "webhook_sender"): (
        _c("secretsmanager", "get_secret_value", "webhook_secret"),),
    ("aws/clients.py", "db_credentials"): (
        _c("secretsmanager", "get_secret_value", "db_secret"),),
    ("aws/probes.py", "lambda_probe"): (_c("lambda", "invoke", "function"),),
    ("aws/probes.py", "dynamodb_probe"): (_c("dynamodb", "describe_table", "data_table"),),
    ("aws/probes.py", "bucket_probe"): (
        _c("s3", "head_bucket", "bucket"),
        _c("s3", "put_object", "bucket_probe_object"),
        _c("s3", "get_object", "bucket_probe_object"),
    ),
    ("aws/switchers.py", "PointerSwitcher"): (
        _c("dynamodb", "update_item", "pointer_table"),
        _c("dynamodb", "get_item", "pointer_table"),
    ),
    ("aws/switchers.py", "StageVariableSwitcher"): (
        _c("apigateway", "update_stage", "rest_stage"),
        _c("apigateway", "get_stage", "rest_stage"),
    ),
    ("aws/switchers.py", "IntegrationSwitcher"): (
        _c("apigatewayv2", "update_integration", "http_integration"),
        _c("apigatewayv2", "get_integration", "http_integration"),
    ),
    ("aws/switchers.py", "HealthMetricsSwitcher"): (
        _c("cloudwatch", "put_metric_data", "metric"),
        _c("cloudwatch", "describe_alarms", "alarm"),
    ),
    ("aws/switchers.py", "RecordSwitcher"): (
        _c("route53", "change_resource_record_sets", "hosted_zone"),
        _c("route53", "list_resource_record_sets", "hosted_zone"),
    ),
    ("aws/db_switchers.py", "RdsPromoteSwitcher"): (
        _c("rds", "describe_db_instances", "db_instance"),
        _c("rds", "promote_read_replica", "db_instance"),
    ),
    # Opt-in (`fence: parameter_group`); not in SWITCH_UNITS, so no plan grants it.
    ("aws/db_switchers.py", "fence_by_parameter_group"): (
        _c("rds", "describe_db_instances", "db_instance"),
        _c("rds", "modify_db_parameter_group", "db_parameter_group"),
    ),
    ("aws/data.py", "AwsBackends"): (
        _c("dynamodb", "get_item", "pointer_table"),
        _c("dynamodb", "get_item", "data_table"),
        _c("dynamodb", "put_item", "data_table"),
        _c("dynamodb", "delete_item", "data_table"),
        _c("s3", "get_object", "bucket_object"),
        _c("s3", "put_object", "bucket_object"),
        _c("s3", "head_object", "bucket_object"),
        _c("s3", "list_objects_v2", "bucket"),
    ),
    ("aws/data_client.py", "from_env"): (
        _c("lambda", "invoke", "function"),
        _c("dynamodb", "get_item", "pointer_table"),
    ),
    # The operator's CLI (its own credentials, no function role).
    ("aws/ops.py", "monitor_env"): (
        _c("lambda", "get_function_configuration", "monitor_function"),),
}

#: Units every monitor runs, whatever it probes or switches.
MONITOR_UNITS: tuple[tuple[str, str], ...] = (
    ("aws/state.py", "DynamoStateStore"),
    ("aws/alerts.py", "sns_sender"),
)
#: ... and when it has webhooks.
WEBHOOK_UNITS: tuple[tuple[str, str], ...] = (("aws/alerts.py", "webhook_sender"),)

PROBE_UNITS: dict[str, tuple[tuple[str, str], ...]] = {
    "http": (),  # plain HTTPS, no AWS API
    "lambda": (("aws/probes.py", "lambda_probe"),),
    "dynamodb": (("aws/probes.py", "dynamodb_probe"),),
    "bucket": (("aws/probes.py", "bucket_probe"),),
    "sql": (("aws/clients.py", "db_credentials"),),  # then SQL over the network
}

SWITCH_UNITS: dict[str, tuple[tuple[str, str], ...]] = {
    "pointer": (("aws/switchers.py", "PointerSwitcher"),),
    "pointer_all": (("aws/switchers.py", "PointerSwitcher"),),  # a subclass, same calls
    "apigw_stage_variable": (("aws/switchers.py", "StageVariableSwitcher"),),
    "apigw_integration": (("aws/switchers.py", "IntegrationSwitcher"),),
    "route53_health_metrics": (("aws/switchers.py", "HealthMetricsSwitcher"),),
    "route53_record": (("aws/switchers.py", "RecordSwitcher"),),
    "rds_promote": (("aws/db_switchers.py", "RdsPromoteSwitcher"),),
    "sql_promote": (("aws/clients.py", "db_credentials"),),  # then SQL over the network
}

WRAPPER_UNITS: tuple[tuple[str, str], ...] = (
    ("aws/data.py", "AwsBackends"),
    ("aws/clients.py", "db_credentials"),
)
LOGIC_UNITS: tuple[tuple[str, str], ...] = (("aws/data_client.py", "from_env"),)

#: The calls that change what a switch kind points at: the policy pack requires these.
MUTATING: frozenset[tuple[str, str]] = frozenset({
    ("dynamodb", "update_item"), ("dynamodb", "put_item"), ("dynamodb", "delete_item"),
    ("dynamodb", "transact_write_items"), ("apigateway", "update_stage"),
    ("apigatewayv2", "update_integration"), ("cloudwatch", "put_metric_data"),
    ("route53", "change_resource_record_sets"), ("rds", "promote_read_replica"),
})


def calls_of(units: tuple[tuple[str, str], ...]) -> list[Call]:
    return [c for u in units for c in UNITS[u]]


def switch_calls(kind: str, mutating_only: bool = False) -> list[Call]:
    """The calls a switch kind makes (``KeyError`` for a kind not in the table)."""
    calls = calls_of(SWITCH_UNITS[kind])
    if mutating_only:
        calls = [c for c in calls if (c.service, c.method) in MUTATING]
    return calls


#: The actions the state store needs on the state table, derived from the table above.
STATE_STORE_ACTIONS: tuple[str, ...] = tuple(sorted(
    {a for c in UNITS[("aws/state.py", "DynamoStateStore")] for a in c.actions}))
