"""AWS switchers. Each is idempotent (applying the same side twice is harmless) and reads
back what it wrote (``verify``). Pointers are fenced: a write with an older token is
rejected by the pointer item itself (``StaleToken``).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from components.runtime.aws.clients import Clients, error_code
from components.runtime.aws.db_switchers import db_switchers
from components.runtime.engine import SIDES, Side
from components.runtime.errors import StaleToken, SwitchError


def _side_of(values: Mapping[str, Any], value: Any) -> Side | None:
    for side in SIDES:
        if values[side] == value:
            return side
    return None


class _Base:  # shared with db_switchers
    def __init__(self, clients: Clients) -> None:
        self.clients = clients

    def verify(self, target: Mapping[str, Any], to: Side) -> bool:
        try:
            return self.current(target) == to  # type: ignore[attr-defined,no-any-return]
        except (ClientError, BotoCoreError):
            return False


class PointerSwitcher(_Base):
    """One pointer item (``wrapper`` or ``data``) in one region's pointer table."""

    def _write(self, region: str, table: str, key: str, value: str, token: int,
               reason: str) -> None:
        ddb = self.clients.get("dynamodb", region)
        try:
            ddb.update_item(
                TableName=table, Key={"pointer": {"S": key}},
                UpdateExpression="SET active = :v, #tok = :t, reason = :r, switched_at = :now",
                ConditionExpression="attribute_not_exists(#tok) OR #tok < :t "
                                    "OR (#tok = :t AND active = :v)",
                ExpressionAttributeNames={"#tok": "token"},
                ExpressionAttributeValues={":v": {"S": value}, ":t": {"N": str(token)},
                                           ":r": {"S": reason[:500]},
                                           ":now": {"N": f"{time.time():.3f}"}},
            )
        except ClientError as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                raise StaleToken(f"pointer {table}#{key} in {region} holds a newer token "
                                 f"than {token}") from None
            raise SwitchError(f"pointer {table}#{key} in {region}: {exc}") from None
        except BotoCoreError as exc:
            raise SwitchError(f"pointer {table}#{key} in {region}: {exc}") from None

    def _read(self, region: str, table: str, key: str) -> tuple[str | None, int]:
        item = self.clients.get("dynamodb", region).get_item(
            TableName=table, Key={"pointer": {"S": key}}, ConsistentRead=True).get("Item") or {}
        return item.get("active", {}).get("S"), int(item.get("token", {}).get("N", "0"))

    def apply(self, target: Mapping[str, Any], to: Side, token: int, reason: str) -> None:
        self._write(target["region"], target["table"], target["key"], target["values"][to],
                    token, reason)

    def current(self, target: Mapping[str, Any]) -> Side | None:
        value, _ = self._read(target["region"], target["table"], target["key"])
        return _side_of(target["values"], value)


class PointerAllSwitcher(PointerSwitcher):
    """The same pointer in every region's table (the data pointer).

    The table in the region being switched *to* must accept the write; a table in an
    unreachable region (the failed one, typically) is reported and brought in line by the
    heartbeat of every later round, with the committed token.
    """

    def __init__(self, clients: Clients) -> None:
        super().__init__(clients)
        self.lagging: list[str] = []
        """Regions the last ``apply`` could not reach (caught up by ``heartbeat``)."""

    def apply(self, target: Mapping[str, Any], to: Side, token: int, reason: str) -> None:
        value = target["values"][to]
        failures = []
        for t in target["tables"]:
            try:
                self._write(t["region"], t["table"], target["key"], value, token, reason)
            except StaleToken:
                raise
            except SwitchError as exc:
                if t["region"] == value:
                    raise
                failures.append(str(exc))
        self.lagging = failures

    def current(self, target: Mapping[str, Any]) -> Side | None:
        sides = set()
        for t in target["tables"]:
            value, _ = self._read(t["region"], t["table"], target["key"])
            sides.add(_side_of(target["values"], value))
        return sides.pop() if len(sides) == 1 else None

    def heartbeat(self, target: Mapping[str, Any], active: Side, token: int) -> None:
        if token <= 0:
            return
        for t in target["tables"]:
            try:
                value, held = self._read(t["region"], t["table"], target["key"])
                if held < token or value != target["values"][active]:
                    self._write(t["region"], t["table"], target["key"],
                                target["values"][active], token, "catch-up after switch")
            except (StaleToken, SwitchError, ClientError, BotoCoreError):
                continue  # still unreachable or newer: the next round tries again


class StageVariableSwitcher(_Base):
    """REST API stage variable naming the logic function (one UpdateStage call)."""

    def apply(self, target: Mapping[str, Any], to: Side, token: int, reason: str) -> None:
        try:
            self.clients.get("apigateway", target["region"]).update_stage(
                restApiId=target["rest_api_id"], stageName=target["stage"],
                patchOperations=[{"op": "replace", "path": f"/variables/{target['variable']}",
                                  "value": target["values"][to]}],
            )
        except (ClientError, BotoCoreError) as exc:
            raise SwitchError(f"stage {target['rest_api_id']}/{target['stage']}: {exc}") from None

    def current(self, target: Mapping[str, Any]) -> Side | None:
        stage = self.clients.get("apigateway", target["region"]).get_stage(
            restApiId=target["rest_api_id"], stageName=target["stage"])
        return _side_of(target["values"], stage.get("variables", {}).get(target["variable"]))


class IntegrationSwitcher(_Base):
    """HTTP API integration URI (one UpdateIntegration call)."""

    def apply(self, target: Mapping[str, Any], to: Side, token: int, reason: str) -> None:
        try:
            self.clients.get("apigatewayv2", target["region"]).update_integration(
                ApiId=target["api_id"], IntegrationId=target["integration_id"],
                IntegrationUri=target["values"][to],
            )
        except (ClientError, BotoCoreError) as exc:
            raise SwitchError(f"integration {target['api_id']}/{target['integration_id']}: {exc}") from None  # noqa: E501

    def current(self, target: Mapping[str, Any]) -> Side | None:
        integ = self.clients.get("apigatewayv2", target["region"]).get_integration(
            ApiId=target["api_id"], IntegrationId=target["integration_id"])
        return _side_of(target["values"], integ.get("IntegrationUri"))


class HealthMetricsSwitcher(_Base):
    """Route 53 through its data plane: the DNS monitor publishes ``ForceFailover`` (1 takes
    the region out of DNS) and ``VetoFailover`` (0: let Route 53's own checks decide).

    The alarms behind the calculated health check read these metrics, so the metric must be
    published every round (``heartbeat``); with no data the force alarm is OK (not forced).
    ``verify`` checks that the force alarm exists and watches exactly this metric; the
    alarm itself changes state at its next 10 s evaluation.
    """

    def _put(self, target: Mapping[str, Any], force: float) -> None:
        dims = [{"Name": k, "Value": v} for k, v in target["dimensions"].items()]
        self.clients.get("cloudwatch", target["region"]).put_metric_data(
            Namespace=target["namespace"],
            MetricData=[{"MetricName": target["force_metric"], "Dimensions": dims,
                         "Value": force, "Unit": "Count"},
                        {"MetricName": target["veto_metric"], "Dimensions": dims,
                         "Value": 0.0, "Unit": "Count"}],
        )

    def apply(self, target: Mapping[str, Any], to: Side, token: int, reason: str) -> None:
        try:
            self._put(target, 1.0 if to == "standby" else 0.0)
        except (ClientError, BotoCoreError) as exc:
            raise SwitchError(f"metrics for {target['scope']}: {exc}") from None

    def heartbeat(self, target: Mapping[str, Any], active: Side, token: int) -> None:
        self._put(target, 1.0 if active == "standby" else 0.0)

    def _alarm(self, target: Mapping[str, Any]) -> dict[str, Any] | None:
        alarms = self.clients.get("cloudwatch", target["region"]).describe_alarms(
            AlarmNames=[target["force_alarm"]]).get("MetricAlarms", [])
        return alarms[0] if alarms else None

    def current(self, target: Mapping[str, Any]) -> Side | None:
        alarm = self._alarm(target)
        state = alarm.get("StateValue") if alarm else None
        if state == "ALARM":
            return "standby"
        return "primary" if state == "OK" else None

    def verify(self, target: Mapping[str, Any], to: Side) -> bool:
        try:
            alarm = self._alarm(target)
        except (ClientError, BotoCoreError):
            return False
        if alarm is None:
            return False
        dims = {d["Name"]: d["Value"] for d in alarm.get("Dimensions", [])}
        return (alarm.get("MetricName") == target["force_metric"]
                and alarm.get("Namespace") == target["namespace"]
                and dims == dict(target["dimensions"]))


class RecordSwitcher(_Base):
    """Direct mode: UPSERT the record to the side's gateway target."""

    def apply(self, target: Mapping[str, Any], to: Side, token: int, reason: str) -> None:
        try:
            self.clients.get("route53", "us-east-1").change_resource_record_sets(
                HostedZoneId=target["zone_id"],
                ChangeBatch={"Comment": f"standby token {token}: {reason}"[:256], "Changes": [{
                    "Action": "UPSERT",
                    "ResourceRecordSet": {"Name": target["name"], "Type": target["type"],
                                          "TTL": int(target["ttl"]),
                                          "ResourceRecords": [{"Value": target["values"][to]}]},
                }]},
            )
        except (ClientError, BotoCoreError) as exc:
            raise SwitchError(f"record {target['name']}: {exc}") from None

    def current(self, target: Mapping[str, Any]) -> Side | None:
        out = self.clients.get("route53", "us-east-1").list_resource_record_sets(
            HostedZoneId=target["zone_id"], StartRecordName=target["name"],
            StartRecordType=target["type"], MaxItems="1")
        for rrs in out.get("ResourceRecordSets", []):
            if rrs["Name"].rstrip(".") == str(target["name"]).rstrip("."):
                values = [r["Value"] for r in rrs.get("ResourceRecords", [])]
                return _side_of(target["values"], values[0] if values else None)
        return None


def aws_switchers(clients: Clients) -> dict[str, Any]:
    return {
        "pointer": PointerSwitcher(clients),
        "pointer_all": PointerAllSwitcher(clients),
        "apigw_stage_variable": StageVariableSwitcher(clients),
        "apigw_integration": IntegrationSwitcher(clients),
        "route53_health_metrics": HealthMetricsSwitcher(clients),
        "route53_record": RecordSwitcher(clients),
        **db_switchers(clients),
    }
