"""CloudWatch alarms evaluated as CloudWatch does, over the metrics moto stores, and the
Route 53 health of a CloudWatch-alarm health check.

moto stores alarms and metric data but never evaluates an alarm. This module does, per the
CloudWatch user guide ("Evaluating an alarm", "Configuring how alarms treat missing data"):

- the last ``EvaluationPeriods`` (M) periods of ``Period`` seconds before ``now`` are read
  with the alarm's statistic; ALARM when at least ``DatapointsToAlarm`` (N, default M) of
  them breach the threshold;
- a period without data follows ``TreatMissingData``: ``breaching`` / ``notBreaching``
  count it as such; ``ignore`` keeps the previous state; ``missing`` (the default) leaves
  it out, and with no data in any period the state is INSUFFICIENT_DATA;
- a standard-resolution metric is stored per minute (the sandbox's moto floors its
  timestamps, see ``moto_proc``), so an alarm with a period under 60 s sees it in one
  period out of every 60/period.

Route 53 (``AlarmIdentifier`` in the Route 53 API reference): a health check on an alarm is
healthy in OK, unhealthy in ALARM, and in INSUFFICIENT_DATA takes the check's
``InsufficientDataHealthStatus`` (``LastKnownStatus`` keeps the last one). Route 53 supports
standard-resolution alarms only; the stand-in treats an alarm with a period under 60 s as
giving no usable data (INSUFFICIENT_DATA), and says so in ``unsupported``.

Simplification: CloudWatch evaluates on its own clock, about once a minute and a little
late; here the caller chooses ``now``.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

OK, ALARM, INSUFFICIENT = "OK", "ALARM", "INSUFFICIENT_DATA"

_COMPARE: dict[str, Callable[[float, float], bool]] = {
    "GreaterThanOrEqualToThreshold": lambda v, t: v >= t,
    "GreaterThanThreshold": lambda v, t: v > t,
    "LessThanThreshold": lambda v, t: v < t,
    "LessThanOrEqualToThreshold": lambda v, t: v <= t,
}
_STATISTICS = ("Average", "Minimum", "Maximum", "Sum", "SampleCount")


class AlarmError(ValueError):
    pass


def _period_values(alarm: dict[str, Any], datapoints: list[dict[str, Any]],
                   end: datetime.datetime) -> list[float | None]:
    """One value (or None: no data) per evaluation period, oldest first."""
    period = datetime.timedelta(seconds=int(alarm["Period"]))
    m = int(alarm["EvaluationPeriods"])
    stat = str(alarm.get("Statistic") or "")
    out: list[float | None] = []
    for k in range(m, 0, -1):
        lo, hi = end - k * period, end - (k - 1) * period
        values = [float(p[stat]) for p in datapoints
                  if lo <= _aware(p["Timestamp"]) < hi and stat in p]
        if not values:
            out.append(None)
        elif stat == "Maximum":
            out.append(max(values))
        elif stat == "Minimum":
            out.append(min(values))
        elif stat in ("Sum", "SampleCount"):
            out.append(sum(values))
        else:
            out.append(sum(values) / len(values))
    return out


def _aware(ts: datetime.datetime) -> datetime.datetime:
    return ts if ts.tzinfo else ts.replace(tzinfo=datetime.UTC)


def evaluate(alarm: dict[str, Any], datapoints: list[dict[str, Any]],
             now: datetime.datetime, previous: str = INSUFFICIENT) -> str:
    """The state of ``alarm`` (a ``DescribeAlarms`` entry) at ``now`` given raw datapoints
    (``GetMetricStatistics`` entries with the alarm's statistic, any period)."""
    stat = alarm.get("Statistic")
    if stat not in _STATISTICS:
        raise AlarmError(f"alarm {alarm.get('AlarmName')}: statistic {stat!r}; the sandbox "
                         f"evaluates {', '.join(_STATISTICS)}")
    compare = _COMPARE.get(str(alarm.get("ComparisonOperator")))
    if compare is None:
        raise AlarmError(f"alarm {alarm.get('AlarmName')}: comparison "
                         f"{alarm.get('ComparisonOperator')!r}; allowed: {', '.join(_COMPARE)}")
    period = int(alarm["Period"])
    epoch = int(_aware(now).timestamp())
    end = datetime.datetime.fromtimestamp(epoch - epoch % period, datetime.UTC)
    values = _period_values(alarm, datapoints, end)
    m = len(values)
    n = int(alarm.get("DatapointsToAlarm") or m)
    threshold = float(alarm["Threshold"])
    treat = str(alarm.get("TreatMissingData") or "missing")
    breaching = sum(1 for v in values if v is not None and compare(v, threshold))
    missing = sum(1 for v in values if v is None)
    if treat == "breaching":
        breaching += missing
    elif missing == m:
        if treat == "ignore":
            return previous
        if treat == "missing":
            return INSUFFICIENT
    return ALARM if breaching >= n else OK


@dataclass
class AlarmEvaluator:
    """Reads alarms and metric data from moto and evaluates them (keeps each last state)."""

    client: Callable[[str, str], Any]
    """``client(service, region)``: a boto3 client factory (e.g. ``Deployment.client``)."""
    states: dict[tuple[str, str], str] = field(default_factory=dict)
    unsupported: set[str] = field(default_factory=set)

    def state(self, region: str, name: str, now: datetime.datetime) -> str:
        cw = self.client("cloudwatch", region)
        found = cw.describe_alarms(AlarmNames=[name]).get("MetricAlarms") or []
        if not found:
            raise AlarmError(f"alarm {name} does not exist in {region}")
        alarm = found[0]
        span = int(alarm["Period"]) * (int(alarm["EvaluationPeriods"]) + 1) + 60
        points = cw.get_metric_statistics(
            Namespace=alarm["Namespace"], MetricName=alarm["MetricName"],
            Dimensions=alarm.get("Dimensions") or [],
            StartTime=now - datetime.timedelta(seconds=span),
            EndTime=now + datetime.timedelta(seconds=1), Period=1,
            Statistics=[alarm["Statistic"]])["Datapoints"]
        key = (region, name)
        state = evaluate(alarm, points, now, self.states.get(key, INSUFFICIENT))
        self.states[key] = state
        return state

    def health(self, region: str, name: str, insufficient: str, now: datetime.datetime,
               last_known: bool = True) -> bool:
        """Route 53's view of a CloudWatch-alarm health check: True when healthy."""
        cw = self.client("cloudwatch", region)
        found = cw.describe_alarms(AlarmNames=[name]).get("MetricAlarms") or []
        if found and int(found[0]["Period"]) < 60:
            self.unsupported.add(name)  # Route 53 supports standard-resolution alarms only
            state = INSUFFICIENT
        else:
            state = self.state(region, name, now)
        if state == OK:
            return True
        if state == ALARM:
            return False
        if insufficient == "Healthy":
            return True
        if insufficient == "Unhealthy":
            return False
        return last_known
