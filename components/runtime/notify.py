"""Alerts: chat webhooks (WeCom, DingTalk, Slack) and a cloud topic, sent in the background.

Each webhook gets its documented JSON body; delivery retries with exponential backoff under
a per-alert deadline. ``Notifier.send`` only queues: a slow or failing receiver can never
delay, block or undo a switch. ``drain(deadline_s)`` waits (bounded) before the function
returns, and reports what was delivered.

Formats:
  * WeCom group robot: ``{"msgtype": "markdown", "markdown": {"content": ...}}``; success is
    ``{"errcode": 0}``.
  * DingTalk robot: ``{"msgtype": "markdown", "markdown": {"title": ..., "text": ...}}``;
    success is ``{"errcode": 0}``.
  * Slack incoming webhook: ``{"text": ..., "blocks": [{"type": "section", "text":
    {"type": "mrkdwn", "text": ...}}]}``; success is HTTP 200 with body ``ok``.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

from components.runtime.observe import Log


@dataclass(frozen=True)
class Alert:
    title: str
    text: str
    severity: str = "info"
    """info | warning | critical"""
    fields: dict[str, Any] = field(default_factory=dict)

    def markdown(self) -> str:
        lines = [f"**{self.title}**", "", self.text]
        lines += [f"- {k}: {v}" for k, v in self.fields.items()]
        return "\n".join(lines)


def webhook_body(kind: str, alert: Alert) -> dict[str, Any]:
    if kind == "wecom":
        return {"msgtype": "markdown", "markdown": {"content": alert.markdown()}}
    if kind == "dingtalk":
        return {"msgtype": "markdown", "markdown": {"title": alert.title, "text": alert.markdown()}}
    if kind == "slack":
        text = f"*{alert.title}*\n{alert.text}"
        extra = "\n".join(f"• {k}: {v}" for k, v in alert.fields.items())
        return {"text": text, "blocks": [{"type": "section", "text": {
            "type": "mrkdwn", "text": text + ("\n" + extra if extra else "")}}]}
    raise ValueError(f"webhook kind {kind!r}; allowed: wecom, dingtalk, slack")


def _accepted(kind: str, status: int, body: bytes) -> tuple[bool, str]:
    if status != 200:
        return False, f"HTTP {status}"
    if kind == "slack":
        return body.strip() == b"ok", body[:100].decode(errors="replace")
    try:
        doc = json.loads(body or b"{}")
    except ValueError:
        return False, "response is not JSON"
    return doc.get("errcode") == 0, f"errcode {doc.get('errcode')}: {doc.get('errmsg')}"


def post_webhook(kind: str, url: str, alert: Alert, timeout_s: float) -> tuple[bool, str]:
    data = json.dumps(webhook_body(kind, alert)).encode()
    req = urllib.request.Request(url, data=data, method="POST",
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout_s) as resp:
            return _accepted(kind, resp.status, resp.read(4096))
    except urllib.error.HTTPError as exc:
        return False, f"HTTP {exc.code}"
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        return False, f"{type(exc).__name__}: {getattr(exc, 'reason', exc)}"


Sender = Callable[[Alert], tuple[bool, str]]


@dataclass
class Delivery:
    channel: str
    ok: bool
    attempts: int
    detail: str


class Notifier:
    """Queues alerts on background threads; each channel retries with backoff."""

    def __init__(
        self,
        channels: dict[str, Sender],
        log: Log,
        attempts: int = 3,
        backoff_s: float = 0.5,
        deadline_s: float = 10.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.channels = channels
        self.log = log
        self.attempts = attempts
        self.backoff_s = backoff_s
        self.deadline_s = deadline_s
        self.sleep = sleep
        self._pool = ThreadPoolExecutor(max_workers=max(1, len(channels)),
                                        thread_name_prefix="notify")
        self._pending: list[Future[Delivery]] = []

    def send(self, alert: Alert) -> None:
        for name, sender in self.channels.items():
            self._pending.append(self._pool.submit(self._deliver, name, sender, alert))

    def _deliver(self, name: str, sender: Sender, alert: Alert) -> Delivery:
        start = time.monotonic()
        detail = ""
        for attempt in range(1, self.attempts + 1):
            try:
                ok, detail = sender(alert)
            except Exception as exc:  # a notifier never raises into the monitor
                ok, detail = False, f"{type(exc).__name__}: {exc}"
            if ok:
                return Delivery(name, True, attempt, detail)
            pause = self.backoff_s * 2 ** (attempt - 1)
            if attempt == self.attempts or time.monotonic() - start + pause > self.deadline_s:
                break
            self.sleep(pause)
        self.log.warning("alert not delivered", channel=name, detail=detail,
                         title=alert.title)
        return Delivery(name, False, attempt, detail)

    def drain(self, timeout_s: float) -> list[Delivery]:
        """Wait at most ``timeout_s`` for queued alerts; undelivered ones are reported."""
        done, not_done = wait(self._pending, timeout=max(0.0, timeout_s))
        out = [f.result() for f in done]
        out += [Delivery("?", False, 0, "still sending at the deadline") for _ in not_done]
        self._pending = list(not_done)
        return out

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
