"""AWS switchers. Each is idempotent (applying the same side twice is harmless) and reads
back what it wrote (``verify``).

Every switcher honours the fencing token or is reconciled:

* pointers hold the token and reject an older one in the same conditional write;
* a stage variable (``standbyToken``) and an integration (its description) hold the token
  next to the value, written in the same call; ``apply`` reads it back and refuses an older
  token (``StaleToken``). API Gateway has no conditional update, so a read-then-write race
  remains, and the ``heartbeat`` closes it: every round it brings the target back to the
  committed side unless a newer token owns it;
* a Route 53 record and a CloudWatch metric cannot return a token, so the ``heartbeat``
  reconciles them to the committed side every round.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from typing import Any

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)

from components.runtime.aws.clients import Clients, error_code
from components.runtime.aws.db_switchers import db_switchers
from components.runtime.engine import SIDES, Side
from components.runtime.errors import StaleToken, SwitchError

#: What proves a region's API unreachable from here (nothing answered), as opposed to an
#: answer that refused (AccessDenied, ResourceNotFound, throttling): the region answered, so
#: its wrappers may still be reading that table.
_UNREACHABLE = (EndpointConnectionError, ConnectTimeoutError, ReadTimeoutError,
                ConnectionClosedError)


class RegionUnreachable(SwitchError):
    """A region's API did not answer (connection refused, timed out, dropped)."""


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
        except _UNREACHABLE as exc:
            raise RegionUnreachable(f"pointer {table}#{key} in {region}: {exc}") from None
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

    def _catch_up(self, region: str, table: str, key: str, value: str, token: int) -> None:
        """Write the committed value unless the item already holds it at this token; the
        conditional write leaves a newer token alone (``StaleToken``)."""
        held_value, held = self._read(region, table, key)
        if held < token or held_value != value:
            self._write(region, table, key, value, token, "reconciled to the committed side")

    def heartbeat(self, target: Mapping[str, Any], active: Side, token: int) -> None:
        """Bring the pointer back to the committed side (a switch that crashed between its
        writes, or a hand edit); never before the first switch (token 0: the deploy's
        initial item stands) and never over a newer token."""
        if token <= 0:
            return
        try:
            self._catch_up(target["region"], target["table"], target["key"],
                           target["values"][active], token)
        except StaleToken:
            return
        except (ClientError, BotoCoreError) as exc:
            raise SwitchError(f"pointer {target['table']}#{target['key']} in "
                              f"{target['region']}: heartbeat: {exc}") from None


class PointerAllSwitcher(PointerSwitcher):
    """The same pointer in every region's table (the data pointer).

    Every table must accept the write, except one in a region whose API is proven
    unreachable (nothing answered: the failed region, typically), which is reported and
    brought in line by the heartbeat of every later round, with the committed token. A
    region that answers with a refusal aborts the switch: its wrappers can still read their
    table, and a pointer left on the old side there would give two writers.
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
            except RegionUnreachable as exc:
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
                self._catch_up(t["region"], t["table"], target["key"],
                               target["values"][active], token)
            except (StaleToken, SwitchError, ClientError, BotoCoreError):
                continue  # still unreachable or newer: the next round tries again


#: The stage variable that holds the fencing token of the switch that set the stage.
TOKEN_VARIABLE = "standbyToken"
_DESCRIPTION_TOKEN = re.compile(r"^standby token (\d{1,18})\b")


def _token(raw: Any) -> int:
    """A recorded token; anything unreadable counts as none recorded (0), so a hand-edited
    value can delay nothing: the heartbeat rewrites it with the committed token."""
    try:
        return max(0, int(str(raw))) if raw is not None else 0
    except ValueError:
        return 0


def _check_token(what: str, held: int, current: Any, token: int, value: Any) -> None:
    """The pointer rule for targets that hold a token: a newer token wins; the same token may
    only repeat its own write (a retry), never move the target elsewhere."""
    if held > token:
        raise StaleToken(f"{what} holds token {held}: a write with token {token} is stale "
                         "(a later switch owns the target)")
    if held == token and current != value:
        raise StaleToken(f"{what} holds token {held} for {current!r}: the same token may "
                         f"only repeat that write, not set {value!r}")


class StageVariableSwitcher(_Base):
    """REST API stage variable naming the logic function. One UpdateStage call sets the
    variable and ``standbyToken`` together; ``apply`` refuses a token older than the one the
    stage holds, and ``heartbeat`` brings a stage that a racing holder or a hand edit left on
    the other side back to the committed one."""

    def _what(self, target: Mapping[str, Any]) -> str:
        return f"stage {target['rest_api_id']}/{target['stage']}"

    def _variables(self, target: Mapping[str, Any]) -> dict[str, Any]:
        stage = self.clients.get("apigateway", target["region"]).get_stage(
            restApiId=target["rest_api_id"], stageName=target["stage"])
        return dict(stage.get("variables") or {})

    def _write(self, target: Mapping[str, Any], value: str, token: int) -> None:
        self.clients.get("apigateway", target["region"]).update_stage(
            restApiId=target["rest_api_id"], stageName=target["stage"],
            patchOperations=[
                {"op": "replace", "path": f"/variables/{target['variable']}", "value": value},
                {"op": "replace", "path": f"/variables/{TOKEN_VARIABLE}", "value": str(token)},
            ],
        )

    def apply(self, target: Mapping[str, Any], to: Side, token: int, reason: str) -> None:
        value = target["values"][to]
        try:
            held = self._variables(target)
            _check_token(self._what(target), _token(held.get(TOKEN_VARIABLE)),
                         held.get(target["variable"]), token, value)
            self._write(target, value, token)
        except (ClientError, BotoCoreError) as exc:
            raise SwitchError(f"{self._what(target)}: {exc}") from None

    def current(self, target: Mapping[str, Any]) -> Side | None:
        return _side_of(target["values"], self._variables(target).get(target["variable"]))

    def heartbeat(self, target: Mapping[str, Any], active: Side, token: int) -> None:
        """Reconcile to the committed state. A newer token on the stage is left alone: the
        committed state this monitor read may be older than a switch that just committed,
        and an interrupted newer switch is resumed or rolled back by its intent, with a
        newer token still."""
        try:
            held = self._variables(target)
            recorded = _token(held.get(TOKEN_VARIABLE))
            value = target["values"][active]
            if recorded > token:
                return
            if held.get(target["variable"]) != value or recorded != token:
                self._write(target, value, token)
        except (ClientError, BotoCoreError) as exc:
            raise SwitchError(f"{self._what(target)}: heartbeat: {exc}") from None


class IntegrationSwitcher(_Base):
    """HTTP API integration URI. One UpdateIntegration call sets the URI and a description
    ``standby token N: reason``; ``apply`` refuses a token older than the one recorded there,
    ``heartbeat`` reconciles as for stage variables."""

    def _what(self, target: Mapping[str, Any]) -> str:
        return f"integration {target['api_id']}/{target['integration_id']}"

    def _get(self, target: Mapping[str, Any]) -> tuple[Any, int]:
        integ = self.clients.get("apigatewayv2", target["region"]).get_integration(
            ApiId=target["api_id"], IntegrationId=target["integration_id"])
        m = _DESCRIPTION_TOKEN.match(str(integ.get("Description") or ""))
        return integ.get("IntegrationUri"), int(m.group(1)) if m else 0

    def _write(self, target: Mapping[str, Any], value: str, token: int, reason: str) -> None:
        self.clients.get("apigatewayv2", target["region"]).update_integration(
            ApiId=target["api_id"], IntegrationId=target["integration_id"],
            IntegrationUri=value, Description=f"standby token {token}: {reason}"[:1024],
        )

    def apply(self, target: Mapping[str, Any], to: Side, token: int, reason: str) -> None:
        value = target["values"][to]
        try:
            current, held = self._get(target)
            _check_token(self._what(target), held, current, token, value)
            self._write(target, value, token, reason)
        except (ClientError, BotoCoreError) as exc:
            raise SwitchError(f"{self._what(target)}: {exc}") from None

    def current(self, target: Mapping[str, Any]) -> Side | None:
        return _side_of(target["values"], self._get(target)[0])

    def heartbeat(self, target: Mapping[str, Any], active: Side, token: int) -> None:
        try:
            current, held = self._get(target)
            value = target["values"][active]
            if held > token:
                return  # a newer switch owns it (see StageVariableSwitcher.heartbeat)
            if current != value or held != token:
                self._write(target, value, token, f"reconciled to committed {active}")
        except (ClientError, BotoCoreError) as exc:
            raise SwitchError(f"{self._what(target)}: heartbeat: {exc}") from None


class HealthMetricsSwitcher(_Base):
    """Route 53 through its data plane: the DNS monitor publishes ``ForceFailover`` (1 takes
    the region out of DNS). A metric holds no token, so it is reconciled instead: the
    ``heartbeat`` publishes the committed side's value every round, which is also what keeps
    the force alarm fed (with no data it is OK: not forced).

    ``verify`` checks that the force alarm exists and watches exactly this metric; the
    alarm itself changes state at its next evaluation period.
    """

    def _put(self, target: Mapping[str, Any], force: float) -> None:
        dims = [{"Name": k, "Value": v} for k, v in target["dimensions"].items()]
        self.clients.get("cloudwatch", target["region"]).put_metric_data(
            Namespace=target["namespace"],
            MetricData=[{"MetricName": target["force_metric"], "Dimensions": dims,
                         "Value": force, "Unit": "Count"}],
        )

    def apply(self, target: Mapping[str, Any], to: Side, token: int, reason: str) -> None:
        try:
            self._put(target, 1.0 if to == "standby" else 0.0)
        except (ClientError, BotoCoreError) as exc:
            raise SwitchError(f"metrics for {target['scope']}: {exc}") from None

    def heartbeat(self, target: Mapping[str, Any], active: Side, token: int) -> None:
        try:
            self._put(target, 1.0 if active == "standby" else 0.0)
        except (ClientError, BotoCoreError) as exc:
            raise SwitchError(f"metrics for {target['scope']}: heartbeat: {exc}") from None

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
    """Direct mode: UPSERT the record to the side's gateway target. The change comment
    carries the token for the audit trail, but Route 53 cannot return it with the record,
    so a stale apply cannot be refused here: the ``heartbeat`` reconciles the record to the
    committed side instead."""

    def _upsert(self, target: Mapping[str, Any], value: str, comment: str) -> None:
        self.clients.get("route53", "us-east-1").change_resource_record_sets(
            HostedZoneId=target["zone_id"],
            ChangeBatch={"Comment": comment[:256], "Changes": [{
                "Action": "UPSERT",
                "ResourceRecordSet": {"Name": target["name"], "Type": target["type"],
                                      "TTL": int(target["ttl"]),
                                      "ResourceRecords": [{"Value": value}]},
            }]},
        )

    def apply(self, target: Mapping[str, Any], to: Side, token: int, reason: str) -> None:
        try:
            self._upsert(target, target["values"][to], f"standby token {token}: {reason}")
        except (ClientError, BotoCoreError) as exc:
            raise SwitchError(f"record {target['name']}: {exc}") from None

    def current(self, target: Mapping[str, Any]) -> Side | None:
        out = self.clients.get("route53", "us-east-1").list_resource_record_sets(
            HostedZoneId=target["zone_id"], StartRecordName=target["name"],
            StartRecordType=target["type"], MaxItems="1")
        for rrs in out.get("ResourceRecordSets", []):
            if (rrs["Name"].rstrip(".") == str(target["name"]).rstrip(".")
                    and rrs.get("Type") == target["type"]):
                values = [r["Value"] for r in rrs.get("ResourceRecords", [])]
                return _side_of(target["values"], values[0] if values else None)
        return None

    def heartbeat(self, target: Mapping[str, Any], active: Side, token: int) -> None:
        try:
            if self.current(target) != active:
                self._upsert(target, target["values"][active],
                             f"standby token {token}: reconciled to committed {active}")
        except (ClientError, BotoCoreError) as exc:
            raise SwitchError(f"record {target['name']}: heartbeat: {exc}") from None


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
