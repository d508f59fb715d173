"""Structured JSON logs and CloudWatch embedded-metric-format (EMF) lines, on stdout.

Lambda ships stdout to CloudWatch Logs; EMF lines become metrics without an API call. The
dashboard reads ``ActiveSide``, ``ProbeLatency`` and ``Switches`` with dimensions
``Topology`` and ``Layer``. No secret is ever passed here: callers log names, not values.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any, Protocol


class Writer(Protocol):
    def write(self, s: str, /) -> int: ...


class Log:
    def __init__(self, stream: Writer | None = None, **context: Any) -> None:
        self.stream = stream
        self.context = context

    def _write(self, line: str) -> None:
        (self.stream or sys.stdout).write(line + "\n")

    def emit(self, level: str, msg: str, **fields: Any) -> None:
        self._write(json.dumps(
            {"ts": round(time.time(), 3), "level": level, "msg": msg, **self.context, **fields},
            default=str, sort_keys=True,
        ))

    def info(self, msg: str, **fields: Any) -> None:
        self.emit("INFO", msg, **fields)

    def warning(self, msg: str, **fields: Any) -> None:
        self.emit("WARNING", msg, **fields)

    def error(self, msg: str, **fields: Any) -> None:
        self.emit("ERROR", msg, **fields)

    def metrics(self, namespace: str, dimensions: dict[str, str],
                values: dict[str, tuple[float, str]]) -> None:
        """One EMF document: ``values`` maps metric name to (value, unit)."""
        doc: dict[str, Any] = {
            "_aws": {
                "Timestamp": int(time.time() * 1000),
                "CloudWatchMetrics": [{
                    "Namespace": namespace,
                    "Dimensions": [sorted(dimensions)],
                    "Metrics": [{"Name": k, "Unit": unit} for k, (_, unit) in values.items()],
                }],
            },
            **dimensions,
            **{k: v for k, (v, _) in values.items()},
        }
        self._write(json.dumps(doc, sort_keys=True))
